package ext4

// TEMPORARY CONTRACT STUB: replaced by the real implementation (owned by the
// lead). Other packages code against these signatures.

import (
	"errors"
	"io"
	"io/fs"
	"time"
)

// Device is what the filesystem lives on: the partition's bytes, offset 0 = start of the fs.
type Device interface {
	io.ReaderAt
	io.WriterAt
}

// Stat describes one inode as seen through a path.
type Stat struct {
	Mode   fs.FileMode // type bits (fs.ModeDir, fs.ModeSymlink) + permissions
	UID    uint32
	GID    uint32
	Size   int64
	MTime  time.Time
	Target string // symlink target
}

// FS is an open ext4 filesystem being modified in place.
type FS struct{}

var errStub = errors.New("ext4: not implemented yet")

// Open reads and checks the superblock of the ext4 on dev (size bytes long).
func Open(dev Device, size int64) (*FS, error) { return nil, errStub }

// MkdirAll creates p and any missing parents with the given owner and mode.
func (f *FS) MkdirAll(p string, perm fs.FileMode, uid, gid uint32, mtime time.Time) error {
	return errStub
}

// WriteFile creates or replaces the regular file p (parent must exist).
func (f *FS) WriteFile(p string, data []byte, perm fs.FileMode, uid, gid uint32, mtime time.Time) error {
	return errStub
}

// Symlink creates or replaces the symlink p pointing to target.
func (f *FS) Symlink(target, p string, uid, gid uint32, mtime time.Time) error { return errStub }

// Remove deletes a file or symlink; fs.ErrNotExist (wrapped) if absent.
func (f *FS) Remove(p string) error { return errStub }

// ReadFile returns the content of regular file p.
func (f *FS) ReadFile(p string) ([]byte, error) { return nil, errStub }

// Lstat describes p without following a final symlink.
func (f *FS) Lstat(p string) (Stat, error) { return Stat{}, errStub }

// Close writes back the superblock and group descriptors.
func (f *FS) Close() error { return errStub }
