package output

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"

	"github.com/klauspost/compress/zstd"

	"github.com/magibake/magibake/internal/ctxio"
)

// Format is the encoding of an output file, chosen by its name.
type Format int

// The formats Write can produce.
const (
	Raw  Format = iota // .img: sparse, zero runs left as holes
	Zstd               // .zst: one zstd stream, multi-threaded encoder
	XZ                 // .xz: one xz stream of independent blocks, encoded in parallel
)

// FormatOf says which format path names, or why it names none Write can produce.
func FormatOf(path string) (Format, error) {
	lower := strings.ToLower(path)
	switch {
	case strings.HasSuffix(lower, ".zst"):
		return Zstd, nil
	case strings.HasSuffix(lower, ".xz"):
		return XZ, nil
	}
	for _, ext := range []string{".gz", ".zip", ".bz2", ".lz4", ".7z"} {
		if strings.HasSuffix(lower, ext) {
			return 0, fmt.Errorf("output %s: %s is not an output format; write a .img, .img.xz or .img.zst", path, ext)
		}
	}
	return Raw, nil
}

// CardName says what is wrong with path as the name of a card a user asks
// for: it must say the card's format, .img, .img.xz or .img.zst (a card
// named caspar.iso would be a raw image under a misleading name).
func CardName(path string) error {
	if _, err := FormatOf(path); err != nil {
		return err
	}
	lower := strings.ToLower(path)
	for _, ext := range []string{".img", ".img.xz", ".img.zst"} {
		if strings.HasSuffix(lower, ext) {
			return nil
		}
	}
	return fmt.Errorf("output %s: its name gives no card format; name it .img (raw), .img.xz or .img.zst", path)
}

// workers is how many blocks are compressed at once.
func workers() int { return max(1, runtime.GOMAXPROCS(0)) }

// encoder writes size bytes of src to w in one compressed format and returns
// a verifier for the finished file.
type encoder func(ctx context.Context, w io.Writer, src io.ReaderAt, size int64) (verifier, error)

// verifier decodes the finished file, read through r, and says whether it
// holds exactly the bytes the encoder was given.
type verifier func(ctx context.Context, r io.ReaderAt, fileSize int64) error

// stageCompressed is Stage for compressed formats. The card cannot be
// checked in place inside a compressed file, so integrity after write is
// proved in two steps: check runs on the raw image before it is compressed,
// and once the temp file is synced and closed it is opened again and
// decoded in full, and what it decodes to must be the checked bytes (equal
// SHA-256, block by block for xz).
func stageCompressed(ctx context.Context, path string, src io.ReaderAt, size int64, check Check, enc encoder) (_ *Staged, err error) {
	if check != nil {
		if err := check(src, size); err != nil {
			return nil, fmt.Errorf("output %s: check before compressing: %w", path, err)
		}
	}
	tmp, lock, err := createTemp(path)
	if err != nil {
		return nil, err
	}
	defer discardOnError(&err, tmp, lock)
	bw := bufio.NewWriterSize(tmp, 1<<20)
	verify, err := enc(ctx, bw, src, size)
	if err == nil {
		err = bw.Flush()
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("output %s: %w", path, unwrapPath(err))
	}
	if err := finish(tmp); err != nil {
		return nil, fmt.Errorf("output %s: %w", path, unwrapPath(err))
	}
	f, err := os.Open(tmp.Name())
	if err != nil {
		return nil, fmt.Errorf("output %s: read back after writing: %w", path, unwrapPath(err))
	}
	defer f.Close()
	st, err := f.Stat()
	if err == nil {
		err = verify(ctx, f, st.Size())
	}
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("output %s: read back after writing: %w", path, unwrapPath(err))
	}
	return &Staged{path: path, tmp: tmp.Name(), lock: lock}, nil
}

// progressReader reports to fn how many bytes were read through it.
type progressReader struct {
	r     io.Reader
	done  int64
	total int64
	fn    func(done, total int64)
}

func (p *progressReader) Read(b []byte) (int, error) {
	n, err := p.r.Read(b)
	p.done += int64(n)
	p.fn(p.done, p.total)
	return n, err
}

// encodeZstd compresses with klauspost/compress's encoder at its fastest
// level on every core: .img.zst is the quick format for CI artifacts, where
// time matters more than the last few percent of size.
func encodeZstd(ctx context.Context, w io.Writer, src io.ReaderAt, size int64, progress func(done, total int64)) (verifier, error) {
	zw, err := zstd.NewWriter(w, zstd.WithEncoderLevel(zstd.SpeedFastest), zstd.WithEncoderConcurrency(workers()))
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	h := sha256.New()
	in := io.TeeReader(&progressReader{r: ctxio.Reader(ctx, io.NewSectionReader(src, 0, size)), total: size, fn: progress}, h)
	if _, err := io.CopyBuffer(zw, in, make([]byte, 4<<20)); err != nil {
		zw.Close()
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	want := h.Sum(nil)
	return func(ctx context.Context, r io.ReaderAt, fileSize int64) error {
		zr, err := zstd.NewReader(ctxio.Reader(ctx, io.NewSectionReader(r, 0, fileSize)),
			zstd.WithDecoderConcurrency(workers()), zstd.WithDecoderLowmem(true))
		if err != nil {
			return fmt.Errorf("zstd: %w", err)
		}
		defer zr.Close()
		h := sha256.New()
		n, err := io.CopyBuffer(h, zr, make([]byte, 1<<20))
		if err != nil {
			return fmt.Errorf("zstd: decode: %w", err)
		}
		if n != size {
			return fmt.Errorf("zstd stream decodes to %d bytes, the image has %d", n, size)
		}
		if !equal(h.Sum(nil), want) {
			return errors.New("zstd stream does not decode to the image (sha256 differs)")
		}
		return nil
	}, nil
}

func equal(a, b []byte) bool { return string(a) == string(b) }
