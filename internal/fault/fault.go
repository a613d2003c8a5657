// Package fault says whose fault a failure is (the command line, the user's
// input or host, magibake itself, or an interruption); build and every
// command mark their errors with it and the CLI turns it into the exit code.
package fault

import (
	"context"
	"errors"
	"io/fs"
	"syscall"
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
	// Findings is a command that ran to its end and found problems: a
	// failed check of magibake check. Exit code 4.
	Findings
)

// Error is a failure with its class. Its message is the wrapped error's.
type Error struct {
	Class Class
	Err   error
}

func (e *Error) Error() string { return e.Err.Error() }
func (e *Error) Unwrap() error { return e.Err }

// Of returns the class of err: Interrupted when the context was cancelled
// anywhere below, else the outermost *Error's class, else Internal.
func Of(err error) Class {
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
func UsageError(err error) error { return Classed(Usage, err) }

// InputError marks err as a problem with the user's input or host.
func InputError(err error) error { return Classed(Input, err) }

// Classed marks err with class c; nil stays nil and a cancellation stays
// unmarked, so it is always reported as an interruption.
func Classed(c Class, err error) error {
	if err == nil || errors.Is(err, context.Canceled) {
		return err
	}
	return &Error{Class: c, Err: err}
}

// HostOrInternal classes an I/O error: the host's state (disk full,
// read-only file system, permissions) is something the user can fix, so
// Input; anything else is magibake's, Internal.
func HostOrInternal(err error) error {
	for _, e := range []error{syscall.ENOSPC, syscall.EDQUOT, syscall.EROFS, syscall.EACCES, syscall.EPERM, fs.ErrPermission} {
		if errors.Is(err, e) {
			return Classed(Input, err)
		}
	}
	return Classed(Internal, err)
}
