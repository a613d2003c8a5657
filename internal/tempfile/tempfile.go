// Package tempfile makes the temp files of a build so that the next build
// can tell a live one from one left by a killed process: each is locked
// (flock) by its maker for as long as it is in use, and the kernel drops the
// lock when the maker dies, however it dies (kill -9 included).
package tempfile

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"
)

// Lock is the lock a maker holds on its temp file; Release drops it.
type Lock struct{ f *os.File }

// Release drops the lock. The file itself stays until removed.
func (l *Lock) Release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}

// Create makes a new file in dir as os.CreateTemp(dir, pattern) does and
// locks it. The lock is held on a descriptor of its own, so the returned
// file may be closed and reopened while the lock stays until Release.
func Create(dir, pattern string) (*os.File, *Lock, error) {
	for {
		f, err := os.CreateTemp(dir, pattern)
		if err != nil {
			return nil, nil, err
		}
		lf, err := os.Open(f.Name())
		if err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, nil, err
		}
		switch err := syscall.Flock(int(lf.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); {
		case errors.Is(err, syscall.EWOULDBLOCK):
			// A Sweep holds it and is about to remove it: make another.
		case err != nil:
			// No locks on this file system (some network ones): the file
			// works, a later Sweep just cannot tell it is stale.
			lf.Close()
			return f, &Lock{}, nil
		case same(lf, f.Name()):
			return f, &Lock{lf}, nil
		}
		// A Sweep that ran between the create and the lock took the file
		// for stale and removed it: make another.
		lf.Close()
		f.Close()
	}
}

// Discard closes f, removes it and drops its lock: the clean-up of a temp
// file whose work failed or was cancelled.
func Discard(f *os.File, l *Lock) {
	f.Close()
	os.Remove(f.Name())
	l.Release()
}

// Removed is a stale temp file Sweep deleted.
type Removed struct {
	Path string
	Size int64
}

// Sweep removes the files in dir whose names match one of patterns
// (filepath.Match) and that no process holds locked: temp files of a build
// that was killed. Files of a build still running are left alone. Files it
// cannot open or remove are left too; Sweep never fails a build.
func Sweep(dir string, patterns ...string) []Removed {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil
	}
	var out []Removed
	for _, e := range entries {
		if !e.Type().IsRegular() || !matches(e.Name(), patterns) {
			continue
		}
		p := filepath.Join(dir, e.Name())
		if r, ok := sweepOne(p); ok {
			out = append(out, r)
		}
	}
	return out
}

func sweepOne(p string) (Removed, bool) {
	f, err := os.Open(p)
	if err != nil {
		return Removed{}, false
	}
	defer f.Close()
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		return Removed{}, false // in use, or no locks on this file system
	}
	st, err := f.Stat()
	if err != nil || !same(f, p) {
		return Removed{}, false
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Removed{}, false
	}
	return Removed{Path: p, Size: st.Size()}, true
}

// same says whether path still names the file f has open.
func same(f *os.File, path string) bool {
	a, err := f.Stat()
	if err != nil {
		return false
	}
	b, err := os.Lstat(path)
	return err == nil && os.SameFile(a, b)
}

func matches(name string, patterns []string) bool {
	for _, p := range patterns {
		if ok, _ := filepath.Match(p, name); ok {
			return true
		}
	}
	return false
}
