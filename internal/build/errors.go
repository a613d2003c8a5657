package build

import (
	"context"
	"errors"
	"io/fs"
	"syscall"

	"github.com/magibake/magibake/internal/bake"
	"github.com/magibake/magibake/internal/ext4"
)

// Class says whose fault a failure is; the CLI turns it into the exit code.
type Class int

const (
	// Internal is a failure magibake cannot blame on its input: a bug, or an
	// I/O error it did not expect. Exit code 1.
	Internal Class = iota
	// Usage is a malformed command line: missing or extra arguments, unknown
	// flags, flags that exclude each other. Exit code 2.
	Usage
	// Input is a problem with what the user gave: profiles, overlays, the
	// base image, the output path, or the host (disk full, read-only
	// directory). Exit code 3.
	Input
	// Interrupted is a build stopped by SIGINT or SIGTERM. Exit code 130.
	Interrupted
)

// Error is a failure with its class. Its message is the wrapped error's.
type Error struct {
	Class Class
	Err   error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// ClassOf returns the class of err: Interrupted when the context was
// cancelled anywhere below, else the outermost *Error's class, else Internal.
func ClassOf(err error) Class {
	if errors.Is(err, context.Canceled) {
		return Interrupted
	}
	var e *Error
	if errors.As(err, &e) {
		return e.Class
	}
	return Internal
}

// UsageError marks err as a command-line mistake.
func UsageError(err error) error { return classed(Usage, err) }

// InputError marks err as a problem with the user's input or host.
func InputError(err error) error { return classed(Input, err) }

func classed(c Class, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	return &Error{Class: c, Err: err}
}

// hostInput says whether an I/O error is the host's state (disk full,
// read-only file system, permissions), which the user can fix, rather than
// something magibake did wrong.
func hostInput(err error) bool {
	for _, e := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EACCES, syscall.EPERM, fs.ErrPermission} {
		if errors.Is(err, e) {
			return true
		}
	}
	return false
}

// bakeClass classifies a failure of bake.Apply: the base's root filesystem
// being full, corrupt, dirty or using features the ext4 writer refuses is
// the base's problem; anything else is ours.
func bakeClass(err error) Class {
	for _, e := range []error{ext4.ErrNoSpace, bake.ErrBootFull, bake.ErrConflict, ext4.ErrUnsupported, ext4.ErrCorrupt, ext4.ErrNeedsCheck} {
		if errors.Is(err, e) {
			return Input
		}
	}
	return Internal
}
