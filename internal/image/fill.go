package image

import (
	"context"
	"errors"
	"os"
	"sync"

	"golang.org/x/sys/unix"

	"github.com/magibake/magibake/internal/extents"
	"github.com/magibake/magibake/internal/tempfile"
)

// A first build decompresses the base into a temp file beside its last
// .img output, and that card is then written into the very file (Adopt):
// the card's bytes are written once, as `xz -dc > card.img` writes them.
// The cache entry is made alongside: a reflink of the finished file where
// the file system has them (btrfs, XFS: no second write at all), otherwise
// every decoded piece is written to the entry as it is written to the
// file, while it is still in the CPU's cache, so that the entry is
// complete when decoding ends and only its sync remains, done while the
// bake runs. Measured on the bench's 2.7 GiB card (docs/bench.md): copying
// the finished file instead (copy_file_range) added 2.2 s after decoding;
// writing the entry with O_DIRECT saved about 1 s of a first build but
// left the entry out of the page cache, and a re-bake right after took
// 3.3-4.0 s instead of 1.3-1.5.

// fill is a new cache entry made from a base being decompressed.
type fill struct {
	f       *os.File
	lock    *tempfile.Lock
	reflink bool          // the entry is cloned from the finished file, not written alongside
	done    chan struct{} // closed when the entry is in place or given up
	err     error         // why it was given up

	// A failed write alongside gives the entry up, not the build.
	failOnce sync.Once
	failed   chan struct{}
}

// newFill makes the entry's temp file in cacheDir for a base decompressed
// into temp, which is still empty: a reflink of it tells whether the
// finished file can be cloned.
func newFill(cacheDir string, temp *os.File) (*fill, error) {
	f, lock, err := tempfile.Create(cacheDir, TempPattern)
	if err != nil {
		return nil, err
	}
	return &fill{f: f, lock: lock, reflink: extents.Clone(f, temp) == nil, failed: make(chan struct{})}, nil
}

// complete makes the entry from the finished base in temp (size bytes):
// a clone, or a copy when the base was not written alongside (written
// false: a single-block .img.xz, decompressed by streaming). It then syncs
// and renames the entry to sum's place in the background; wait waits.
func (fl *fill) complete(ctx context.Context, temp *os.File, size int64, written bool, sum, cacheDir string) {
	fl.done = make(chan struct{})
	var err error
	switch {
	case fl.hasFailed():
		err = fl.err
	case fl.reflink:
		err = extents.Clone(fl.f, temp)
	case !written:
		err = extents.Copy(ctx, fl.f, temp, size, nil)
	}
	if err == nil {
		err = fl.f.Truncate(size)
	}
	if err != nil {
		fl.err = err
		fl.discard()
		close(fl.done)
		return
	}
	go func() {
		defer close(fl.done)
		entry := entryPath(cacheDir, sum)
		if err := fl.f.Sync(); err != nil {
			fl.err = err
		} else if err := fl.f.Close(); err != nil {
			fl.err = err
		} else if err := os.Rename(fl.f.Name(), entry); err != nil {
			fl.err = err
		}
		if fl.err != nil {
			fl.discard()
			return
		}
		fl.lock.Release()
		recordIdentity(entry)
		evict(cacheDir, entry)
	}()
}

// discard removes the entry's temp file.
func (fl *fill) discard() { tempfile.Discard(fl.f, fl.lock) }

// wait waits for the entry made by complete, or discards an entry that
// was never completed (the decompression failed).
func (fl *fill) wait() error {
	if fl.done == nil {
		fl.discard()
		return errors.New("the base was not decompressed")
	}
	<-fl.done
	return fl.err
}

func (fl *fill) fail(err error) {
	fl.failOnce.Do(func() { fl.err = err; close(fl.failed) })
}

func (fl *fill) hasFailed() bool {
	select {
	case <-fl.failed:
		return true
	default:
		return false
	}
}

// writeBack starts writing the range of f to the disk without waiting
// (sync_file_range), so that the syncs at the end of a build find little
// left to write: the kernel would otherwise hold gigabytes of a freshly
// decompressed base in memory until then.
func writeBack(f *os.File, off, n int64) {
	unix.SyncFileRange(int(f.Fd()), off, n, unix.SYNC_FILE_RANGE_WRITE)
}

// teeWriter writes each piece to the decompressed base and, unless nil or
// cloned later, to the cache entry, starting their write-back.
type teeWriter struct {
	base  *os.File
	entry *fill
}

func (t teeWriter) WriteAt(p []byte, off int64) (int, error) {
	n, err := t.base.WriteAt(p, off)
	if err != nil {
		return n, err
	}
	writeBack(t.base, off, int64(n))
	if e := t.entry; e != nil && !e.reflink && !e.hasFailed() {
		if _, err := e.f.WriteAt(p, off); err != nil {
			e.fail(err)
		} else {
			writeBack(e.f, off, int64(n))
		}
	}
	return n, nil
}
