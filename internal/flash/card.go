package flash

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/klauspost/compress/zstd"
	"github.com/ulikunitz/xz"
	"golang.org/x/sys/unix"

	"github.com/magibake/magibake/internal/compression"
	"github.com/magibake/magibake/internal/ctxio"
	"github.com/magibake/magibake/internal/tempfile"
	"github.com/magibake/magibake/internal/xzblocks"
	"github.com/magibake/magibake/internal/zeros"
)

// unit is the grain of skipping: a run of unit bytes, aligned in the card,
// that is all zero (or a hole) is not written when the device reads zero
// after a discard. 1 MiB, as image and xzblocks leave holes.
const unit = 1 << 20

// chunk is how much of the card one read and one write handle: large
// writes are what SD cards are fast at.
const chunk = 4 * unit

// maxStreamBlock is the largest xz block decoded ahead in memory (xz -T0
// makes 24 MiB blocks at -6); larger ones, up to a single block for the
// whole card, are decoded by one streaming reader instead.
const maxStreamBlock = 64 << 20

// TempPattern matches the names of the files an .img.zst is decompressed
// into.
const TempPattern = ".magibake-flash-*.img"

// Card is a card image opened for flashing: its disk bytes, decompressed
// as they are read.
type Card struct {
	Path string // as given
	Size int64  // of the disk image, decompressed
	// Image is a raw or .img.xz file holding the same disk, for reading
	// the card's partitions (internal/inspect): Path, or for an .img.zst
	// its decompressed temp file.
	Image string

	file    *os.File // the raw disk: the .img or the .img.zst's temp file
	xz      *xzblocks.Reader
	xzf     *os.File
	temp    string
	tempDir string
	lock    *tempfile.Lock
}

// Reads are the files and directories flash reads to write the card at
// path, before it is opened: a device holding any of them is refused.
func Reads(path, tempDir string) []Read {
	return []Read{{Path: path, What: "the card"}, {Path: tempDir, What: "the temp directory"}}
}

// Reads are the files and directories flash reads to write c.
func (c *Card) Reads() []Read {
	out := Reads(c.Path, c.tempDir)
	if c.temp != "" {
		out = append(out, Read{Path: c.temp, What: "the card's decompressed copy"})
	}
	return out
}

// OpenCard opens an .img, .img.xz or .img.zst, recognised by its content.
// The size of an .img.xz is in its index; an .img.zst does not reliably
// record it (magibake's own stream does not), and a device must be checked
// against the size before it is touched, so it is decompressed first into
// a sparse temp file in tempDir, zero runs left as holes.
func OpenCard(ctx context.Context, path, tempDir string) (_ *Card, err error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("card %s: %w", path, errors.Unwrap(err))
	}
	defer func() {
		if err != nil {
			f.Close()
		}
	}()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("card %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("card %s: not a regular file", path)
	}
	head := make([]byte, compression.HeadSize)
	n, _ := io.ReadFull(f, head)
	switch compression.Detect(head[:n]) {
	case compression.XZ:
		x, err := xzblocks.Open(f, st.Size())
		if err != nil {
			return nil, fmt.Errorf("card %s: %w", path, err)
		}
		return &Card{Path: path, Image: path, Size: x.Size(), xz: x, xzf: f, tempDir: tempDir}, nil
	case compression.Zstd:
		c, err := decompressZstd(ctx, f, path, tempDir)
		f.Close()
		return c, err
	case compression.Gzip:
		return nil, fmt.Errorf("card %s: gzip is not a card format; give the .img, .img.xz or .img.zst", path)
	}
	if st.Size() == 0 {
		return nil, fmt.Errorf("card %s: empty file", path)
	}
	return &Card{Path: path, Image: path, Size: st.Size(), file: f, tempDir: tempDir}, nil
}

// decompressZstd decodes the .img.zst f into a sparse temp file.
func decompressZstd(ctx context.Context, f *os.File, path, tempDir string) (_ *Card, err error) {
	tmp, lock, err := tempfile.Create(tempDir, TempPattern)
	if err != nil {
		return nil, fmt.Errorf("card %s: temp file to decompress into: %w", path, err)
	}
	c := &Card{Path: path, Image: tmp.Name(), file: tmp, temp: tmp.Name(), tempDir: tempDir, lock: lock}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	zr, err := zstd.NewReader(ctxio.Reader(ctx, io.NewSectionReader(f, 0, 1<<62)), zstd.WithDecoderLowmem(true))
	if err != nil {
		return nil, fmt.Errorf("card %s: zstd: %w", path, err)
	}
	defer zr.Close()
	buf := make([]byte, unit)
	for {
		n, rerr := io.ReadFull(zr, buf)
		if n > 0 && !zeros.All(buf[:n]) {
			if _, err := tmp.WriteAt(buf[:n], c.Size); err != nil {
				return nil, fmt.Errorf("card %s: decompress into %s: %w", path, tempDir, errors.Unwrap(err))
			}
		}
		c.Size += int64(n)
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF {
			break
		}
		if rerr != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("card %s: zstd data is corrupt: %w", path, rerr)
		}
	}
	if err := tmp.Truncate(c.Size); err != nil {
		return nil, fmt.Errorf("card %s: decompress into %s: %w", path, tempDir, errors.Unwrap(err))
	}
	return c, nil
}

// Close releases the card and removes its temp file.
func (c *Card) Close() error {
	var err error
	if c.file != nil {
		err = c.file.Close()
	}
	if c.xzf != nil {
		err = c.xzf.Close()
	}
	if c.temp != "" {
		os.Remove(c.temp)
		c.lock.Release()
		c.temp = ""
	}
	return err
}

// piece is chunk bytes of the card at off; n of them are the card's (the
// last piece is short).
type piece struct {
	off int64
	n   int
	buf []byte // len chunk, aligned for O_DIRECT
	err error
}

// pieces sends the card's chunks in order on out, each in a buffer taken
// from free, and closes out. With all unset it leaves out the chunks that
// lie in holes of a raw card; the writer still skips zero runs of the
// chunks it gets. An error is sent as the last piece.
func (c *Card) pieces(ctx context.Context, all bool, free <-chan []byte, out chan<- piece) {
	defer close(out)
	send := func(p piece) bool {
		select {
		case out <- p:
			return p.err == nil
		case <-ctx.Done():
			return false
		}
	}
	take := func() ([]byte, bool) {
		select {
		case b := <-free:
			return b, true
		case <-ctx.Done():
			return nil, false
		}
	}
	if c.file != nil {
		data, err := dataChunks(c.file, c.Size, all)
		if err != nil {
			send(piece{err: fmt.Errorf("card %s: %w", c.Path, err)})
			return
		}
		for _, off := range data {
			buf, ok := take()
			if !ok {
				return
			}
			n := int(min(chunk, c.Size-off))
			if _, err := c.file.ReadAt(buf[:n], off); err != nil {
				send(piece{err: fmt.Errorf("card %s: %w", c.Path, err)})
				return
			}
			clear(buf[n:])
			if !send(piece{off: off, n: n, buf: buf}) {
				return
			}
		}
		return
	}
	r, closeR := c.stream(ctx)
	defer closeR()
	for off := int64(0); off < c.Size; off += chunk {
		buf, ok := take()
		if !ok {
			return
		}
		n := int(min(chunk, c.Size-off))
		if _, err := io.ReadFull(r, buf[:n]); err != nil {
			if ctx.Err() == nil {
				send(piece{err: fmt.Errorf("card %s: xz data is corrupt: %w", c.Path, err)})
			}
			return
		}
		clear(buf[n:])
		if !send(piece{off: off, n: n, buf: buf}) {
			return
		}
	}
}

// stream is the .img.xz decompressed in order: blocks decoded ahead in
// parallel when they are small enough to hold, else one streaming decoder.
func (c *Card) stream(ctx context.Context) (io.Reader, func()) {
	large := false
	for _, b := range c.xz.Index().Blocks {
		large = large || b.UncompressedSize > maxStreamBlock
	}
	if !large {
		s := c.xz.NewStream(ctx, 0)
		return s, func() { s.Close() }
	}
	r, err := xz.NewReader(bufio.NewReaderSize(io.NewSectionReader(c.xzf, 0, 1<<62), 1<<20))
	if err != nil {
		return errReader{err}, func() {}
	}
	return ctxio.Reader(ctx, r), func() {}
}

type errReader struct{ err error }

func (e errReader) Read([]byte) (int, error) { return 0, e.err }

// dataChunks lists the offsets of the chunks of the raw card f that hold
// data, by SEEK_DATA and SEEK_HOLE: the holes of a sparse .img are never
// read. With all set, or where the file system cannot tell, every chunk.
func dataChunks(f *os.File, size int64, all bool) ([]int64, error) {
	var out []int64
	every := func() []int64 {
		out = out[:0]
		for off := int64(0); off < size; off += chunk {
			out = append(out, off)
		}
		return out
	}
	if all {
		return every(), nil
	}
	fd := int(f.Fd())
	for pos := int64(0); pos < size; {
		start, err := unix.Seek(fd, pos, unix.SEEK_DATA)
		if errors.Is(err, unix.ENXIO) {
			break // only a hole remains
		}
		if errors.Is(err, unix.EINVAL) || errors.Is(err, unix.EOPNOTSUPP) {
			return every(), nil
		}
		if err != nil {
			return nil, fmt.Errorf("find data: %w", err)
		}
		end, err := unix.Seek(fd, start, unix.SEEK_HOLE)
		if err != nil {
			return nil, fmt.Errorf("find holes: %w", err)
		}
		end = min(end, size)
		for off := start / chunk * chunk; off < end; off += chunk {
			if len(out) == 0 || out[len(out)-1] < off {
				out = append(out, off)
			}
		}
		pos = end
	}
	return out, nil
}
