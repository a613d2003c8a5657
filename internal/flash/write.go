package flash

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
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
}

// hooks lets tests stand in for the device's discard and damage the
// device between writing and verifying.
type hooks struct {
	discard      func(fd int, off, n uint64) error
	beforeVerify func()
}

// Write writes card onto the block device at dev, which the caller has
// checked (Host.Problems), reads every written range back and syncs.
//
// Only ranges that hold data are written: the holes of a raw card and the
// all-zero 1 MiB runs of any card are skipped. A skipped range keeps the
// device's old bytes, and old bytes where the card has zeros are not
// harmless: a stale superblock, bitmap or directory block under the new
// file systems makes e2fsck and fsck.fat find damage, and an old backup
// GPT at the device's end makes partitioning tools see a second table. So
// the whole device is discarded first, and zeros are only skipped when
// the discard provably reads back zero: a few sample blocks are written
// with a pattern before the discard and must read zero after it, read past
// the page cache (BLKDISCARDZEROES is deprecated and always 0 on current
// kernels). When the device cannot discard, or a discarded block still
// holds its pattern, every byte of the card is written, zeros included,
// and the last MiB of the device too (see zeroTail).
func Write(ctx context.Context, card *Card, dev string, o Options) (*Result, error) {
	return write(ctx, card, dev, o, hooks{})
}

func write(ctx context.Context, card *Card, dev string, o Options, h hooks) (*Result, error) {
	if h.discard == nil {
		h.discard = blkdiscard
	}
	// O_EXCL on a block device fails while anything has it mounted or
	// open exclusively: a last guard after Problems.
	fd, err := unix.Open(dev, unix.O_RDWR|unix.O_DIRECT|unix.O_EXCL|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("device %s: open: %w", dev, err)
	}
	d := &device{path: dev, fd: fd}
	defer unix.Close(fd)
	if err := d.probe(); err != nil {
		return nil, err
	}
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
	res.Why, err = d.discardZeroes(card.Size, h.discard)
	if err != nil {
		return fail(err)
	}
	res.Discarded = res.Why == ""
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
	var samples []int64
	for i := range int64(6) {
		samples = append(samples, cardSize/d.block*i/6*d.block)
	}
	samples = append(samples, (cardSize-1)/d.block*d.block, d.size-d.block)
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
