package flash

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"strings"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/magibake/magibake/internal/zeros"
)

// ErrIncomplete marks a failure or interruption after the device was
// changed: what it holds now is neither the old contents nor the card.
var ErrIncomplete = errors.New("the device is incomplete and will not boot: flash it again")

// Options says how Write reports what it does.
type Options struct {
	// Progress, if set, is told how far through the card the write is,
	// then how far the read-back is.
	Progress func(what string, done, total int64)
}

// Result is what Write did.
type Result struct {
	Written int64 // bytes written to the device, verification excluded
	// Discarded says the device was discarded and read back zero, so the
	// card's zero runs were skipped; otherwise they were written.
	Discarded bool
	// Why says why the zero runs had to be written, when they were.
	Why string
	// Samples is how many bytes of the skipped zero runs were read back
	// after the write (see Write).
	Samples int64
}

// hooks lets tests stand in for the device's discard and damage the
// device between writing and verifying.
type hooks struct {
	discard      func(fd int, off, n uint64) error
	beforeVerify func()
}

// Write writes card onto t, a device checked with Problems, reads every
// written range back and syncs.
//
// The device is opened exclusively (O_EXCL fails while anything has it
// mounted or open exclusively), and the open descriptor must be the device
// that was checked, which must pass the same checks again: a device
// plugged in while the owner answered the prompt can take the same path.
//
// Only ranges that hold data are written: the holes of a raw card and the
// all-zero 1 MiB runs of any card are skipped. A skipped range keeps the
// device's old bytes, and old bytes where the card has zeros are not
// harmless: a stale superblock, bitmap or directory block under the new
// file systems makes e2fsck and fsck.fat find damage, and an old backup
// GPT at the device's end makes partitioning tools see a second table. So
// the whole device is discarded first, and zeros are only skipped when
// the discard reads back zero: a few sample blocks are written with a
// pattern before the discard and must read zero after it, read past the
// page cache (BLKDISCARDZEROES is deprecated and always 0 on current
// kernels). After the write, one sample block of every skipped MiB and
// all of the device's last MiB are read back; should any of them not be
// zero, every skipped range is written with zeros after all. When the
// device cannot discard, or a discarded block still holds its pattern,
// every byte of the card is written, zeros included, and the last MiB of
// the device too (see zeroTail).
func (h Host) Write(ctx context.Context, card *Card, t *Target, force bool, o Options) (*Result, error) {
	return h.write(ctx, card, t, force, o, hooks{})
}

func (h Host) write(ctx context.Context, card *Card, t *Target, force bool, o Options, hk hooks) (*Result, error) {
	d, err := openDevice(t.Path)
	if err != nil {
		return nil, err
	}
	defer unix.Close(d.fd)
	var st unix.Stat_t
	if err := unix.Fstat(d.fd, &st); err != nil {
		return nil, fmt.Errorf("device %s: %w", t.Path, err)
	}
	if st.Mode&unix.S_IFMT != unix.S_IFBLK || devString(st.Rdev) != t.Dev {
		return nil, fmt.Errorf("%s is no longer the device that was checked (%s, now %s): nothing was written",
			t.Path, t.Dev, devString(st.Rdev))
	}
	now, err := h.inspect(t.Path, st.Rdev)
	if err != nil {
		return nil, err
	}
	problems, err := h.Problems(now, card.Size, force, card.Reads())
	if err != nil {
		return nil, fmt.Errorf("device %s: %w", t.Path, err)
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("%s no longer passes the checks: %s; nothing was written", t.Path, strings.Join(problems, "; "))
	}
	return d.write(ctx, card, o, hk)
}

// openDevice opens the block device at path for writing past the page
// cache, exclusively: a last guard after Problems, since it fails while
// anything has the device mounted or open exclusively.
func openDevice(path string) (*device, error) {
	fd, err := unix.Open(path, unix.O_RDWR|unix.O_DIRECT|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("device %s: open: %w", path, err)
	}
	d := &device{path: path, fd: fd}
	if err := d.probe(); err != nil {
		unix.Close(fd)
		return nil, err
	}
	return d, nil
}

func (d *device) write(ctx context.Context, card *Card, o Options, h hooks) (*Result, error) {
	if h.discard == nil {
		h.discard = blkdiscard
	}
	dev, fd := d.path, d.fd
	if d.size < card.Size {
		return nil, fmt.Errorf("device %s holds %d bytes, the card needs %d", dev, d.size, card.Size)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	res := &Result{}
	// From here on the device is changed: every error says so.
	fail := func(err error) (*Result, error) {
		unix.Fsync(fd)
		if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("device %s: stopped before the end (%w)", dev, err)
		}
		return res, fmt.Errorf("%w; %w", err, ErrIncomplete)
	}
	why, err := d.discardZeroes(card.Size, h.discard)
	if err != nil {
		return fail(err)
	}
	res.Why = why
	res.Discarded = why == ""
	if err := ctx.Err(); err != nil {
		return fail(err)
	}
	var sums []rangeSum
	if !res.Discarded {
		s, err := d.zeroTail(card.Size)
		if err != nil {
			return fail(err)
		}
		sums = append(sums, s...)
		for _, s := range s {
			res.Written += s.n
		}
	}
	s, n, err := d.writeCard(ctx, card, !res.Discarded, o.Progress)
	sums = append(sums, s...)
	res.Written += n
	if err != nil {
		return fail(err)
	}
	if err := unix.Fsync(fd); err != nil {
		return fail(fmt.Errorf("device %s: sync: %w", dev, err))
	}
	if h.beforeVerify != nil {
		h.beforeVerify()
	}
	if res.Discarded {
		skipped := gaps(sums, card.Size)
		stale, samples, err := d.staleSkipped(ctx, skipped, card.Size)
		if err != nil {
			return fail(err)
		}
		res.Samples = samples
		if stale >= 0 {
			res.Discarded = false
			res.Why = fmt.Sprintf("a skipped block (at byte %d) did not read back zero after the discard", stale)
			s, err := d.zeroRanges(ctx, skipped)
			if err == nil {
				var tail []rangeSum
				tail, err = d.zeroTail(card.Size)
				s = append(s, tail...)
			}
			sums = append(sums, s...)
			for _, s := range s {
				res.Written += s.n
			}
			if err != nil {
				return fail(err)
			}
			if err := unix.Fsync(fd); err != nil {
				return fail(fmt.Errorf("device %s: sync: %w", dev, err))
			}
		}
	}
	if err := d.verify(ctx, sums, o.Progress); err != nil {
		return fail(err)
	}
	if err := unix.Fsync(fd); err != nil {
		return fail(fmt.Errorf("device %s: sync: %w", dev, err))
	}
	// Let the kernel see the card's partitions now rather than after the
	// device is plugged in again; a device without partitions (a loop
	// device) refuses, which changes nothing.
	unix.IoctlSetInt(fd, unix.BLKRRPART, 0)
	return res, nil
}

// span is the bytes [start, end) of the device.
type span struct{ start, end int64 }

// gaps are the ranges of the card's first size bytes that were not
// written, from the written ranges in order.
func gaps(written []rangeSum, size int64) []span {
	var out []span
	pos := int64(0)
	for _, w := range written {
		if w.off > pos {
			out = append(out, span{pos, min(w.off, size)})
		}
		pos = max(pos, w.off+w.n)
	}
	if pos < size {
		out = append(out, span{pos, size})
	}
	return out
}

// sampleSize is how much of each skipped MiB is read back after a write.
const sampleSize = 4096

// staleSkipped reads back, past the page cache, one sample block of every
// MiB of the skipped ranges (at a place that moves from one MiB to the
// next, through all 256 places of a MiB every 256 MiB) and all of the
// device's last MiB past the card, and returns the offset of the first
// byte that is not zero (-1 when all are) and how many bytes it read.
func (d *device) staleSkipped(ctx context.Context, skipped []span, cardSize int64) (int64, int64, error) {
	grain := max(d.block, sampleSize)
	buf := alignedBuf(int(grain))
	var read int64
	check := func(b []byte, off int64) (bool, error) {
		if _, err := unix.Pread(d.fd, b, off); err != nil {
			return false, fmt.Errorf("device %s: read back a skipped range at %d: %w", d.path, off, err)
		}
		read += int64(len(b))
		return zeros.All(b), nil
	}
	for _, s := range skipped {
		for u := s.start; u < s.end; u += unit {
			if err := ctx.Err(); err != nil {
				return -1, read, err
			}
			places := (min(u+unit, s.end) - u) / grain
			if places == 0 {
				continue // less than a block: the tail of an odd-sized card
			}
			off := u + (u/unit*97)%places*grain
			if ok, err := check(buf, off); err != nil || !ok {
				return off, read, err
			}
		}
	}
	start := max(cardSize, d.size-unit)
	start = (start + d.block - 1) / d.block * d.block
	if start < d.size {
		tail := alignedBuf(int(d.size - start))
		if ok, err := check(tail, start); err != nil || !ok {
			return start, read, err
		}
	}
	return -1, read, nil
}

// zeroRanges writes zeros over the given ranges of the card, rounded out
// to the device's blocks, and returns what it wrote (zeroTail does the
// device's last MiB).
func (d *device) zeroRanges(ctx context.Context, spans []span) ([]rangeSum, error) {
	buf := alignedBuf(chunk)
	var sums []rangeSum
	for _, s := range spans {
		start := s.start / d.block * d.block
		end := min((s.end+d.block-1)/d.block*d.block, d.size)
		for off := start; off < end; off += chunk {
			if err := ctx.Err(); err != nil {
				return sums, err
			}
			b := buf[:min(chunk, end-off)]
			if _, err := unix.Pwrite(d.fd, b, off); err != nil {
				return sums, fmt.Errorf("device %s: write zeros at %d: %w", d.path, off, err)
			}
			sums = append(sums, rangeSum{off: off, n: int64(len(b)), sum: sha256.Sum256(b)})
		}
	}
	return sums, nil
}

// device is the open block device.
type device struct {
	path  string
	fd    int
	size  int64
	block int64 // logical block size: the grain of O_DIRECT
}

func (d *device) probe() error {
	size, err := unix.IoctlGetUint64(d.fd, unix.BLKGETSIZE64)
	if err != nil {
		return fmt.Errorf("device %s: size: %w", d.path, err)
	}
	block, err := unix.IoctlGetInt(d.fd, unix.BLKSSZGET)
	if err != nil {
		return fmt.Errorf("device %s: block size: %w", d.path, err)
	}
	d.size, d.block = int64(size), int64(block)
	return nil
}

func blkdiscard(fd int, off, n uint64) error {
	r := [2]uint64{off, n}
	_, _, e := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), unix.BLKDISCARD, uintptr(unsafe.Pointer(&r)))
	if e != 0 {
		return e
	}
	return nil
}

// discardZeroes discards the whole device and says why the card's zeros
// must be written anyway ("" when they need not be). The samples lie in
// the card's range or the device's last MiB, so after a failed discard
// they are overwritten with the card or zeroed by zeroTail.
func (d *device) discardZeroes(cardSize int64, discard func(int, uint64, uint64) error) (string, error) {
	buf := alignedBuf(int(d.block))
	samples := d.samples(cardSize)
	for _, off := range samples {
		pattern(buf, off)
		if _, err := unix.Pwrite(d.fd, buf, off); err != nil {
			return "", fmt.Errorf("device %s: write at %d: %w", d.path, off, err)
		}
	}
	if err := unix.Fsync(d.fd); err != nil {
		return "", fmt.Errorf("device %s: sync: %w", d.path, err)
	}
	if err := discard(d.fd, 0, uint64(d.size)); err != nil {
		return fmt.Sprintf("the device cannot discard (%v)", err), nil
	}
	for _, off := range samples {
		if _, err := unix.Pread(d.fd, buf, off); err != nil {
			return "", fmt.Errorf("device %s: read at %d: %w", d.path, off, err)
		}
		if !zeros.All(buf) {
			return fmt.Sprintf("a discarded block (at byte %d) does not read back zero", off), nil
		}
	}
	return "", nil
}

// samples are the blocks discardZeroes tries: six spread over the card,
// the card's last block and the device's last.
func (d *device) samples(cardSize int64) []int64 {
	var out []int64
	for i := range int64(6) {
		out = append(out, cardSize/d.block*i/6*d.block)
	}
	return append(out, (cardSize-1)/d.block*d.block, d.size-d.block)
}

// pattern fills b with bytes no card block is likely to hold.
func pattern(b []byte, off int64) {
	for i := range b {
		b[i] = byte(0xa5 ^ i ^ int(off>>20))
	}
}

// zeroTail zeroes the last MiB of the device, when it lies past the card:
// the card's own bytes cover the start of the device (its MBR, and any
// old GPT, LVM or md header there), but the old backup GPT header and
// table live in the device's last 33 sectors and md 0.90/1.0 superblocks
// within its last 128 KiB, where tools still find them. A MiB holds them
// on any sector size. The rest past the card is free space that nothing
// reads before Raspberry Pi OS grows the root partition into it, and
// resize2fs initialises what it adds.
func (d *device) zeroTail(cardSize int64) ([]rangeSum, error) {
	start := max(cardSize, d.size-unit)
	start = (start + d.block - 1) / d.block * d.block
	if start >= d.size {
		return nil, nil
	}
	buf := alignedBuf(int(d.size - start))
	if _, err := unix.Pwrite(d.fd, buf, start); err != nil {
		return nil, fmt.Errorf("device %s: zero the last MiB: %w", d.path, err)
	}
	return []rangeSum{{off: start, n: int64(len(buf)), sum: sha256.Sum256(buf)}}, nil
}

// rangeSum is one written range and the sha256 of what was written.
type rangeSum struct {
	off, n int64
	sum    [32]byte
}

// writeCard writes the card's data, in chunks read ahead by a second
// goroutine (the decoders of an .img.xz run in parallel with the
// writes). With all set, zero runs are written too.
func (d *device) writeCard(ctx context.Context, card *Card, all bool, progress func(string, int64, int64)) ([]rangeSum, int64, error) {
	const buffers = 3
	free := make(chan []byte, buffers)
	for range buffers {
		b := alignedBuf(chunk)
		free <- b
	}
	pctx, stop := context.WithCancel(ctx)
	out := make(chan piece)
	done := make(chan struct{})
	go func() {
		card.pieces(pctx, all, free, out)
		close(done)
	}()
	defer func() {
		stop()
		for range out {
		}
		<-done
	}()
	var sums []rangeSum
	var written int64
	for p := range out {
		if p.err != nil {
			return sums, written, p.err
		}
		if err := ctx.Err(); err != nil {
			return sums, written, err
		}
		s, err := d.writePiece(p, all)
		sums = append(sums, s...)
		for _, s := range s {
			written += s.n
		}
		if err != nil {
			return sums, written, err
		}
		free <- p.buf
		if progress != nil {
			progress("flash", p.off+int64(p.n), card.Size)
		}
	}
	if err := ctx.Err(); err != nil {
		return sums, written, err
	}
	if progress != nil {
		progress("flash", card.Size, card.Size) // past the last hole
	}
	return sums, written, nil
}

// writePiece writes the runs of p that are not all zero (all of it, with
// all set), each as one write. The last run is rounded up to the device's
// block size for O_DIRECT; the bytes added are zeros past the card's end,
// and the device, being a whole number of blocks and no smaller than the
// card, has room for them.
func (d *device) writePiece(p piece, all bool) ([]rangeSum, error) {
	var sums []rangeSum
	for i := 0; i < p.n; {
		j := i
		for j < p.n && (all || !zeros.All(p.buf[j:min(j+unit, p.n)])) {
			j = min(j+unit, p.n)
		}
		if j == i {
			i = min(i+unit, p.n)
			continue
		}
		end := (int64(j) + d.block - 1) / d.block * d.block
		b := p.buf[i:end]
		off := p.off + int64(i)
		if _, err := unix.Pwrite(d.fd, b, off); err != nil {
			return sums, fmt.Errorf("device %s: write %d bytes at %d: %w", d.path, len(b), off, err)
		}
		sums = append(sums, rangeSum{off: off, n: int64(len(b)), sum: sha256.Sum256(b)})
		i = j
	}
	return sums, nil
}

// verify reads every written range back past the page cache (the device
// is open O_DIRECT) and compares its sha256 with what was written.
func (d *device) verify(ctx context.Context, sums []rangeSum, progress func(string, int64, int64)) error {
	var total, done int64
	for _, s := range sums {
		total += s.n
	}
	buf := alignedBuf(chunk)
	for _, s := range sums {
		if err := ctx.Err(); err != nil {
			return err
		}
		b := buf[:s.n]
		if _, err := unix.Pread(d.fd, b, s.off); err != nil {
			return fmt.Errorf("device %s: read back %d bytes at %d: %w", d.path, s.n, s.off, err)
		}
		if got := sha256.Sum256(b); got != s.sum {
			return fmt.Errorf("device %s: bytes %d to %d read back differ from what was written (sha256 %x, wrote %x)",
				d.path, s.off, s.off+s.n, got[:8], s.sum[:8])
		}
		done += s.n
		if progress != nil {
			progress("verify", done, total)
		}
	}
	return nil
}

// alignedBuf is n zero bytes starting on a page boundary, as O_DIRECT
// needs (Go's heap does not move objects).
func alignedBuf(n int) []byte {
	const page = 4096
	b := make([]byte, n+page)
	skip := int(-uintptr(unsafe.Pointer(&b[0])) & (page - 1))
	return b[skip : skip+n : skip+n]
}
