package image

import (
	"context"
	"fmt"
	"os"

	"github.com/magibake/magibake/internal/extents"
	"github.com/magibake/magibake/internal/tempfile"
)

// A first build decompresses the base into a temp file beside its output,
// and the last card is written into that very file (Adopt): the base's
// bytes are written once, as `xz -dc > card.img` writes them. The cache of
// decompressed bases is filled from the same file in the background of the
// bake: by a reflink where the file system has them, otherwise by the
// kernel copying the file's data (copy_file_range). The card may change the
// file before the copy has passed the ranges it writes, so the card hands
// over their original bytes first (keep), and they are written over the
// copy before the entry is synced and renamed into place.

// maxKept bounds the original bytes the card hands over in memory; a card
// that changes more waits for the copy to pass, and the originals go from
// file to file.
const maxKept = 64 << 20

// fill is a cache entry being made from a decompressed temp file.
type fill struct {
	ctx    context.Context
	cancel context.CancelFunc
	copied chan struct{} // closed when the copy is done (err set if it failed)
	kept   chan []patch  // the card's originals; closed without them if the base was not adopted
	done   chan struct{} // closed when the entry is in place or given up
	err    error         // why it was given up
	// maxKept is the package's maxKept but for tests of the other path.
	maxKept int64
}

// patch is an original range of the base: data at off.
type patch struct {
	off  int64
	data []byte
}

// startFill begins copying the decompressed base in temp (size bytes) into
// a new entry of cacheDir named by sum.
func startFill(ctx context.Context, temp string, size int64, cacheDir, sum string) *fill {
	fl := newFill(ctx)
	go fl.run(temp, size, cacheDir, sum)
	return fl
}

func newFill(ctx context.Context) *fill {
	ctx, cancel := context.WithCancel(ctx)
	return &fill{ctx: ctx, cancel: cancel, copied: make(chan struct{}), kept: make(chan []patch, 1), done: make(chan struct{}), maxKept: maxKept}
}

// run makes the entry, then closes done; err says why it did not.
func (fl *fill) run(temp string, size int64, cacheDir, sum string) {
	defer close(fl.done)
	fl.err = fl.make(temp, size, cacheDir, sum)
}

func (fl *fill) make(temp string, size int64, cacheDir, sum string) (err error) {
	ctx := fl.ctx
	copiedOnce := false
	copied := func() {
		if !copiedOnce {
			copiedOnce = true
			close(fl.copied)
		}
	}
	defer copied()
	src, err := os.Open(temp)
	if err != nil {
		return err
	}
	defer src.Close()
	dst, lock, err := tempfile.Create(cacheDir, TempPattern)
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			tempfile.Discard(dst, lock)
		}
	}()
	if extents.Clone(dst, src) != nil {
		if err := extents.Copy(ctx, dst, src, size, nil); err != nil {
			return err
		}
	}
	if err := dst.Truncate(size); err != nil {
		return err
	}
	copied()
	// The entry is made only once the card has handed over its originals
	// (Adopt closes kept); a base that is not adopted cancels ctx.
kept:
	for {
		select {
		case ps, ok := <-fl.kept:
			if !ok {
				break kept
			}
			for _, p := range ps {
				if _, err := dst.WriteAt(p.data, p.off); err != nil {
					return err
				}
			}
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	if err := dst.Sync(); err != nil {
		return err
	}
	entry := entryPath(cacheDir, sum)
	if err := dst.Close(); err != nil {
		return err
	}
	if err := os.Rename(dst.Name(), entry); err != nil {
		return err
	}
	lock.Release()
	evict(cacheDir, entry)
	return nil
}

// keep hands over the original bytes of the ranges of base (the temp
// file) the card is about to change: in memory, without waiting; or, for a
// card that changes more than maxKept, a MiB at a time once the copy is
// done. Then the entry can be made.
func (fl *fill) keep(base *os.File, changed [][2]int64) error {
	var total int64
	for _, r := range changed {
		total += r[1] - r[0]
	}
	large := total > fl.maxKept
	if large {
		<-fl.copied
	}
	var patches []patch
	for _, r := range changed {
		for off := r[0]; off < r[1]; {
			n := r[1] - off
			if large {
				n = min(n, 1<<20)
			}
			p := patch{off: off, data: make([]byte, n)}
			if _, err := base.ReadAt(p.data, off); err != nil {
				return fmt.Errorf("keep the base's bytes at %d for the cache: %w", off, err)
			}
			if large {
				if !fl.send([]patch{p}) {
					return fmt.Errorf("the cache entry was given up: %w", fl.err)
				}
			} else {
				patches = append(patches, p)
			}
			off += n
		}
	}
	if !fl.send(patches) {
		return fmt.Errorf("the cache entry was given up: %w", fl.err)
	}
	close(fl.kept)
	return nil
}

// send hands ps to run, unless run has ended.
func (fl *fill) send(ps []patch) bool {
	select {
	case fl.kept <- ps:
		return true
	case <-fl.done:
		return false
	}
}

// finish waits for the entry when the base was adopted, and gives it up
// otherwise: the file it is copied from may then be anything.
func (fl *fill) finish(adopted bool) error {
	if !adopted {
		fl.cancel()
	}
	<-fl.done
	fl.cancel()
	return fl.err
}
