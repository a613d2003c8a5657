package image

import (
	"context"
	"errors"
	"os"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/magibake/magibake/internal/extents"
	"github.com/magibake/magibake/internal/tempfile"
)

// A first build decompresses the base into a temp file beside its last
// .img output, and that card is then written into the very file (Adopt):
// the base's bytes are written once, as `xz -dc > card.img` writes them.
// The cache entry is made alongside: a reflink of the finished file where
// the file system has them (btrfs, XFS: no second write at all), otherwise
// every decoded piece is written to the entry as it is written to the
// file, with O_DIRECT (see writeAlongside), so that the entry is complete
// when decoding ends and only its sync remains, done while the bake runs.
// Copying the finished file (copy_file_range) instead cost 2.2 s after
// decoding on the bench's 2.7 GiB card; written alongside through the page
// cache, 2.7 s of CPU; with O_DIRECT, about 1 s of CPU and 1.5 s of wall
// time over a build without a cache (docs/bench.md).

// fill is a new cache entry made from a base being decompressed.
type fill struct {
	f      *os.File
	direct *os.File // f opened with O_DIRECT, or nil where the file system has none
	// Pieces for O_DIRECT go through a writer goroutine, so that decoding
	// does not wait for the disk: queue, the buffers free for it, and
	// written, closed when the writer has stopped.
	queue    chan directPiece
	free     chan []byte
	written  chan struct{}
	stopOnce sync.Once
	lock     *tempfile.Lock
	reflink  bool          // the entry is cloned from the finished file, not written alongside
	done     chan struct{} // closed when the entry is in place or given up
	err      error         // why it was given up

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
	fl := &fill{f: f, lock: lock, reflink: extents.Clone(f, temp) == nil, failed: make(chan struct{})}
	if !fl.reflink {
		if fl.direct, _ = os.OpenFile(f.Name(), os.O_WRONLY|unix.O_DIRECT, 0); fl.direct != nil {
			fl.queue, fl.free, fl.written = make(chan directPiece, directBuffers), make(chan []byte, directBuffers), make(chan struct{})
			for range directBuffers {
				fl.free <- alignedBuffer(directPieceSize)
			}
			go fl.writeDirect()
		}
	}
	return fl, nil
}

// directPiece is a piece of the base to write with O_DIRECT at off.
type directPiece struct {
	data []byte
	off  int64
}

// directBuffers of directPieceSize bytes bound what waits for the disk.
const (
	directBuffers   = 8
	directPieceSize = 1 << 20
)

// alignedBuffer is n bytes at an address O_DIRECT accepts.
func alignedBuffer(n int) []byte {
	b := make([]byte, n+directAlign)
	skip := (directAlign - int(uintptr(unsafe.Pointer(unsafe.SliceData(b)))%directAlign)) % directAlign
	return b[skip : skip+n : skip+n]
}

// writeDirect writes the queued pieces until the queue is closed.
func (fl *fill) writeDirect() {
	defer close(fl.written)
	for p := range fl.queue {
		if !fl.hasFailed() {
			if _, err := fl.direct.WriteAt(p.data, p.off); err != nil {
				fl.fail(err)
			}
		}
		fl.free <- p.data[:cap(p.data)]
	}
}

// stopDirect lets the writer finish what is queued and closes the
// O_DIRECT file.
func (fl *fill) stopDirect() {
	fl.stopOnce.Do(func() {
		if fl.direct != nil {
			close(fl.queue)
			<-fl.written
			fl.direct.Close()
		}
	})
}

func (fl *fill) fail(err error) {
	fl.failOnce.Do(func() { fl.err = err; close(fl.failed) })
}

// directAlign is the alignment O_DIRECT asks of buffers, offsets and
// lengths (the logical block size; 4096 covers every disk).
const directAlign = 4096

// writeAlongside writes a piece of the base to the entry: with O_DIRECT
// when it is aligned, from a buffer of the writer goroutine straight to
// the disk, since copying 1.6 GB into the page cache a second time cost as
// much CPU as 2 s of decoding here (copy_folio_from_iter, 25% of a first
// build, 11% with O_DIRECT).
func (fl *fill) writeAlongside(p []byte, off int64) error {
	if fl.direct == nil || len(p)%directAlign != 0 || off%directAlign != 0 {
		if _, err := fl.f.WriteAt(p, off); err != nil {
			return err
		}
		writeBack(fl.f, off, int64(len(p)))
		return nil
	}
	for len(p) > 0 {
		n := min(len(p), directPieceSize)
		buf := <-fl.free
		copy(buf, p[:n])
		fl.queue <- directPiece{buf[:n], off}
		p, off = p[n:], off+int64(n)
	}
	return nil
}

// complete makes the entry from the finished base in temp (size bytes):
// a clone, or a copy when the base was not written alongside (written
// false: a single-block .img.xz, decompressed by streaming). It then syncs
// and renames the entry to sum's place in the background; wait waits.
func (fl *fill) complete(temp *os.File, size int64, written bool, sum, cacheDir string) {
	fl.done = make(chan struct{})
	fl.stopDirect()
	var err error
	switch {
	case fl.hasFailed():
		err = fl.err
	case fl.reflink:
		err = extents.Clone(fl.f, temp)
	case !written:
		err = extents.Copy(context.Background(), fl.f, temp, size, nil)
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
		evict(cacheDir, entry)
	}()
}

// discard removes the entry's temp file.
func (fl *fill) discard() {
	fl.stopDirect()
	tempfile.Discard(fl.f, fl.lock)
}

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

// writeBack starts writing the range of f to the disk without waiting
// (sync_file_range), so that the sync at the end of a build finds little
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
		if err := e.writeAlongside(p, off); err != nil {
			e.fail(err)
		}
	}
	return n, nil
}

func (fl *fill) hasFailed() bool {
	select {
	case <-fl.failed:
		return true
	default:
		return false
	}
}
