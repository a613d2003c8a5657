// Package output writes finished card images: sparse .img, .img.zst or
// .img.xz, to a temp file beside the target, renamed into place only when
// complete and verified.
package output

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"github.com/magibake/magibake/internal/extents"
	"github.com/magibake/magibake/internal/tempfile"
	"github.com/magibake/magibake/internal/zeros"
)

// chunk is the unit of the sparse copy: all-zero chunks become holes.
const chunk = 1 << 20

// Supported says whether path names a format Write can produce, and if not why.
func Supported(path string) error {
	_, err := FormatOf(path)
	return err
}

// Check reads a staged output back through r, a fresh read-only open of
// its temp file holding size bytes, and says what is wrong with it, if anything.
type Check func(r io.ReaderAt, size int64) error

// Write copies size bytes of src to path: into a temp file in the same
// directory, zero runs left as holes, synced, read back by check (see
// Stage), then renamed over path. On any error or cancellation the temp file
// is removed and path is untouched.
func Write(ctx context.Context, path string, src io.ReaderAt, size int64, check Check) error {
	s, err := Stage(ctx, path, src, size, check, Options{})
	if err != nil {
		return err
	}
	return s.Commit(ctx)
}

// Staged is a complete, synced output in its temp file, not yet in place.
// Exactly one of Commit, CommitAll or Discard must follow.
type Staged struct {
	path, tmp string
	lock      *tempfile.Lock // held until committed or discarded: the temp file is in use
}

// Options are what Stage may use besides the card.
type Options struct {
	// Reuse, when not nil, is the .img.xz the card was baked from: an .xz
	// output copies its untouched blocks. Other formats ignore it.
	Reuse *Reuse
	// Progress, if set, is told how many bytes of the card have been
	// written (total: its size), from one goroutine at a time.
	Progress func(done, total int64)
	// Adopt lets an .img card take over its base file (see Adopter): for
	// the last card a build writes, when no other card needs the base.
	Adopt bool
}

// progress reports done of total to o.Progress, if any.
func (o Options) progress(done, total int64) {
	if o.Progress != nil {
		o.Progress(min(done, total), total)
	}
}

// Stage does the work of Write except the final rename, so that several
// outputs can appear together or not at all. Once the temp file is synced
// and closed, Stage opens it again and hands it to check (nil: no check):
// what is verified is what the file holds, not the source it was copied
// from. The read goes through the kernel's page cache, so it proves the
// copy, the holes and the length, not the storage medium.
//
// Compressed formats (.zst, .xz) cannot be checked in place: check runs on
// src before it is compressed, and the temp file is then opened again and
// decoded, and must decode to exactly the checked bytes (for blocks of an
// .xz copied from o.Reuse: hold exactly the bytes copied).
func Stage(ctx context.Context, path string, src io.ReaderAt, size int64, check Check, o Options) (_ *Staged, err error) {
	format, err := FormatOf(path)
	if err != nil {
		return nil, err
	}
	switch format {
	case Zstd:
		return stageCompressed(ctx, path, src, size, check, func(ctx context.Context, w io.Writer, src io.ReaderAt, size int64) (verifier, error) {
			return encodeZstd(ctx, w, src, size, o.progress)
		})
	case XZ:
		return stageCompressed(ctx, path, src, size, check, func(ctx context.Context, w io.Writer, src io.ReaderAt, size int64) (verifier, error) {
			return encodeXZ(ctx, w, src, size, o.Reuse, o.progress)
		})
	}
	var tmp *os.File
	var lock *tempfile.Lock
	adopted := false
	if a, ok := src.(Adopter); ok && o.Adopt {
		tmp, lock, adopted = a.Adopt(filepath.Dir(path))
	}
	if !adopted {
		if tmp, lock, err = createTemp(path); err != nil {
			return nil, err
		}
	}
	defer discardOnError(&err, tmp, lock)
	if l, ok := src.(Layered); ok && adopted {
		err = writeChanged(tmp, l, src, size)
		o.progress(size, size)
	} else if ok && l.BaseFile() != nil {
		err = copyLayered(ctx, tmp, l, src, size, o.progress)
	} else {
		err = copySparse(ctx, tmp, src, size, o.progress)
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("output %s: %w", path, unwrapPath(err))
	}
	if err := tmp.Truncate(size); err != nil {
		return nil, fmt.Errorf("output %s: %w", path, unwrapPath(err))
	}
	if err := finish(tmp); err != nil {
		return nil, fmt.Errorf("output %s: %w", path, unwrapPath(err))
	}
	if check != nil {
		if err := readBack(ctx, tmp.Name(), size, check); err != nil {
			return nil, fmt.Errorf("output %s: read back after writing: %w", path, err)
		}
	}
	return &Staged{path: path, tmp: tmp.Name(), lock: lock}, nil
}

// copySparse copies size bytes of src to tmp a chunk at a time, leaving
// all-zero chunks as holes.
func copySparse(ctx context.Context, tmp *os.File, src io.ReaderAt, size int64, progress func(done, total int64)) error {
	buf := make([]byte, chunk)
	for off := int64(0); off < size; off += chunk {
		if err := ctx.Err(); err != nil {
			return err
		}
		n := int(min(chunk, size-off))
		if _, err := src.ReadAt(buf[:n], off); err != nil && !(errors.Is(err, io.EOF) && n > 0) {
			return fmt.Errorf("read image at %d: %w", off, err)
		}
		progress(off+int64(n), size)
		if zeros.All(buf[:n]) {
			continue
		}
		if _, err := tmp.WriteAt(buf[:n], off); err != nil {
			return err
		}
	}
	return nil
}

// Layered is a card that is a plain file with some byte ranges changed,
// as image.Device is over an .img or a decompressed base. Its raw output
// is made by the kernel copying the file's data extents (copy_file_range,
// through os.File.ReadFrom), its holes skipped, and then the changed ranges
// written: no pass over gigabytes in user space, which took 4.7 s of a
// 6.5 s re-bake of a 2.7 GiB card.
type Layered interface {
	// BaseFile is the file under the changes, or nil if there is none
	// (the card is then copied as any other source).
	BaseFile() *os.File
	// Changed lists the changed byte ranges [start, end), in order.
	Changed() [][2]int64
}

// Adopter is a Layered card whose base file is a temp file decompressed
// for this build, which the last card may take over: the card is then
// written where the base's bytes already are, and only the changed ranges
// are written again.
type Adopter interface {
	Layered
	// Adopt hands over the base file, locked as in use, if it is a temp
	// file in dir (the same directory, so that the rename is atomic);
	// ok false otherwise. The card is its only reader afterwards.
	Adopt(dir string) (f *os.File, lock *tempfile.Lock, ok bool)
}

// copyLayered writes the card l (read through src) to tmp as described at
// Layered. A filesystem that cannot list holes gets copySparse.
func copyLayered(ctx context.Context, tmp *os.File, l Layered, src io.ReaderAt, size int64, progress func(done, total int64)) error {
	err := extents.Copy(ctx, tmp, l.BaseFile(), size, func(done int64) { progress(done, size) })
	if errors.Is(err, extents.ErrNoHoles) {
		return copySparse(ctx, tmp, src, size, progress)
	}
	if err != nil {
		return err
	}
	return writeChanged(tmp, l, src, size)
}

// writeChanged writes the ranges of l that the bake changed, read through
// src, into tmp, which holds l's base.
func writeChanged(tmp *os.File, l Layered, src io.ReaderAt, size int64) error {
	var buf []byte
	for _, r := range l.Changed() {
		n := int(min(r[1], size) - r[0])
		if n <= 0 {
			continue
		}
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		if _, err := src.ReadAt(buf[:n], r[0]); err != nil && !(errors.Is(err, io.EOF) && n > 0) {
			return fmt.Errorf("read image at %d: %w", r[0], err)
		}
		if _, err := tmp.WriteAt(buf[:n], r[0]); err != nil {
			return err
		}
	}
	return nil
}

// TempPatterns match the names of every temp file Stage and CommitAll
// make beside an output: the staged card (.tmp) and the earlier file at
// the output's path, kept until all cards are in place (.old).
var TempPatterns = []string{".*.magibake-*.tmp", ".*.magibake-*.old"}

// createTemp makes the temp file for path in the same directory, so that the
// final rename is atomic, locked as in use (see internal/tempfile).
func createTemp(path string) (*os.File, *tempfile.Lock, error) {
	dir, name := filepath.Split(path)
	if dir == "" {
		dir = "."
	}
	tmp, lock, err := tempfile.Create(dir, "."+name+".magibake-*.tmp")
	if err != nil {
		return nil, nil, fmt.Errorf("output %s: %w", path, unwrapPath(err))
	}
	return tmp, lock, nil
}

// discardOnError removes a temp file whose write failed: deferred with the
// staging function's named error.
func discardOnError(err *error, tmp *os.File, lock *tempfile.Lock) {
	if *err != nil {
		tempfile.Discard(tmp, lock)
	}
}

// finish syncs, sets the mode of and closes a written temp file.
func finish(tmp *os.File) error {
	if err := tmp.Sync(); err != nil {
		return err
	}
	if err := tmp.Chmod(0o644); err != nil {
		return err
	}
	return tmp.Close()
}

// readBack opens the written temp file afresh, read-only, and runs check on it.
func readBack(ctx context.Context, tmp string, size int64, check Check) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f, err := os.Open(tmp)
	if err != nil {
		return unwrapPath(err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return unwrapPath(err)
	}
	if st.Size() != size {
		return fmt.Errorf("file is %d bytes, %d were written", st.Size(), size)
	}
	return check(f, size)
}

// Commit renames the staged file over its path, unless ctx was cancelled, in
// which case the temp file is removed.
func (s *Staged) Commit(ctx context.Context) error {
	return CommitAll(ctx, []*Staged{s})
}

// Discard removes the staged temp file.
// FileSize is the size of the staged file: the card's size for an .img,
// what the card compressed to for the other formats.
func (s *Staged) FileSize() (int64, error) {
	fi, err := os.Stat(s.tmp)
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

func (s *Staged) Discard() {
	os.Remove(s.tmp)
	s.lock.Release()
}

// ErrNotTakenBack marks a CommitAll failure after which some outputs could
// not be taken back: they are in place although the call failed.
var ErrNotTakenBack = errors.New("left in place, not taken back")

// CommitAll puts every staged output in place, all of them or none:
// whatever fails (a rename, a cancellation between two renames), the
// outputs already renamed are taken back and a file that was at an
// output's path before is restored, so the directory holds what it held
// before the call. The directories are synced once the outputs are in.
// A kill -9 between two renames cannot be undone: it leaves some outputs
// new, some old, and the next build's Sweep removes what it left.
func CommitAll(ctx context.Context, staged []*Staged) error {
	return commitAll(ctx, staged, fsOps{os.Link, os.Rename, os.Remove})
}

// fsOps are the file system calls commitAll makes, so tests can make any
// of them fail.
type fsOps struct {
	link, rename func(from, to string) error
	remove       func(string) error
}

func commitAll(ctx context.Context, staged []*Staged, ops fsOps) error {
	type done struct {
		s   *Staged
		old string // the earlier file at s.path, moved aside; "" if none
	}
	var placed []done
	fail := func(err error) error {
		var msgs, kept []string
		for i := len(placed) - 1; i >= 0; i-- {
			d := placed[i]
			var rerr error
			if d.old != "" {
				rerr = ops.rename(d.old, d.s.path)
				// Still the same file (the card's rename failed): rename
				// between two links of one file does nothing.
				ops.remove(d.old)
			} else {
				rerr = ops.remove(d.s.path)
			}
			if rerr != nil {
				kept = append(kept, fmt.Sprintf("%s (could not take it back: %v)", d.s.path, unwrapPath(rerr)))
			} else if d.old != "" {
				msgs = append(msgs, d.s.path+" (the earlier file is back)")
			} else {
				msgs = append(msgs, d.s.path)
			}
		}
		for _, s := range staged {
			s.Discard()
		}
		syncDirs(staged)
		switch {
		case len(kept) > 0:
			err = fmt.Errorf("%w; %w: %s", err, ErrNotTakenBack, strings.Join(kept, ", "))
		case len(msgs) > 0:
			err = fmt.Errorf("%w; no card is left in place, took back %s", err, strings.Join(msgs, ", "))
		}
		return err
	}
	for _, s := range staged {
		if err := ctx.Err(); err != nil {
			return fail(err)
		}
		d := done{s: s}
		if st, err := os.Lstat(s.path); err == nil && st.Mode().IsRegular() {
			// Kept, not lost to the rename, until every output is in: a
			// failure later puts it back. A hard link keeps s.path in
			// place meanwhile; a file system without them (FAT) gets a
			// rename, and s.path is missing until the next one.
			d.old = strings.TrimSuffix(s.tmp, ".tmp") + ".old"
			if err := ops.link(s.path, d.old); err != nil {
				if err := ops.rename(s.path, d.old); err != nil {
					return fail(fmt.Errorf("output %s: keep the earlier file: %w", s.path, unwrapPath(err)))
				}
			}
		}
		if err := ops.rename(s.tmp, s.path); err != nil {
			if d.old != "" {
				// fail puts the earlier file back.
				placed = append(placed, done{s: &Staged{path: s.path}, old: d.old})
			}
			return fail(fmt.Errorf("output %s: %w", s.path, unwrapPath(err)))
		}
		placed = append(placed, d)
	}
	for _, d := range placed {
		if d.old != "" {
			os.Remove(d.old)
		}
		d.s.lock.Release()
	}
	syncDirs(staged)
	return nil
}

// syncDirs fsyncs the directories of the outputs, so that the renames
// survive a power cut. Best effort: some file systems refuse it.
func syncDirs(staged []*Staged) {
	seen := map[string]bool{}
	for _, s := range staged {
		dir := filepath.Dir(s.path)
		if seen[dir] {
			continue
		}
		seen[dir] = true
		if d, err := os.Open(dir); err == nil {
			d.Sync()
			d.Close()
		}
	}
}

// unwrapPath drops the temp file name from an *os.PathError: the user named
// the output, not our temp file.
func unwrapPath(err error) error {
	var pe *os.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	var le *os.LinkError
	if errors.As(err, &le) {
		return le.Err
	}
	return err
}
