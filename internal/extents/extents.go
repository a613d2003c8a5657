// Package extents copies the data of a sparse file, which holds gigabytes
// of holes, with the kernel: the data extents by copy_file_range, the holes
// skipped, or the whole file shared by a reflink where the file system has
// them. output uses it to copy a decompressed base into a card, image to
// fill the cache of decompressed bases.
package extents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// ErrNoHoles is returned by Copy on a file system that cannot list a
// file's holes (SEEK_DATA): the caller copies some other way.
var ErrNoHoles = errors.New("the file system cannot list the holes of a file")

// lseek whence values for the data and holes of a sparse file (Linux).
const (
	seekData = 3
	seekHole = 4
)

// piece is how much one copy_file_range call may copy, so that a
// cancelled build stops within one piece.
const piece = 64 << 20

// Copy writes the data of src's first size bytes into dst at the same
// offsets; dst's bytes in src's holes are left as they are (holes in a new
// file). It moves both files' offsets. progress, if set, is told how far
// it has come.
func Copy(ctx context.Context, dst, src *os.File, size int64, progress func(done int64)) error {
	if progress == nil {
		progress = func(int64) {}
	}
	if _, err := src.Seek(0, seekData); err != nil && !errors.Is(err, syscall.ENXIO) {
		return ErrNoHoles
	}
	for off := int64(0); off < size; {
		start, err := src.Seek(off, seekData)
		if errors.Is(err, syscall.ENXIO) {
			break // no data after off
		}
		if err != nil {
			return fmt.Errorf("find data in %s: %w", src.Name(), err)
		}
		if start >= size {
			break
		}
		end, err := src.Seek(start, seekHole)
		if err != nil {
			return fmt.Errorf("find holes in %s: %w", src.Name(), err)
		}
		end = min(end, size)
		for p := start; p < end; {
			if err := ctx.Err(); err != nil {
				return err
			}
			n := min(end-p, piece)
			if _, err := src.Seek(p, io.SeekStart); err != nil {
				return err
			}
			if _, err := dst.Seek(p, io.SeekStart); err != nil {
				return err
			}
			// os.File.ReadFrom is copy_file_range between two files.
			w, err := dst.ReadFrom(io.LimitReader(src, n))
			if err == nil && w != n {
				err = fmt.Errorf("copied %d of %d bytes of %s at %d", w, n, src.Name(), p)
			}
			if err != nil {
				return err
			}
			p += n
			progress(p)
		}
		off = end
	}
	progress(size)
	return nil
}

// ficlone is the FICLONE ioctl request (linux/fs.h: _IOW(0x94, 9, int)).
const ficlone = 0x40049409

// Clone makes dst share all of src's blocks (a reflink: btrfs, XFS,
// bcachefs), in no time and no space. It fails where the file system has
// no reflinks (ext4, tmpfs) or the two are on different file systems.
func Clone(dst, src *os.File) error {
	if _, _, errno := syscall.Syscall(syscall.SYS_IOCTL, dst.Fd(), ficlone, src.Fd()); errno != 0 {
		return fmt.Errorf("reflink %s to %s: %w", src.Name(), dst.Name(), errno)
	}
	return nil
}
