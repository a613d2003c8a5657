// Package image gives random access to a Raspberry Pi OS base image (.img or
// .img.xz), finds its partitions, and layers a copy-on-write device over it so
// the base is never modified.
package image

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"

	"github.com/ulikunitz/xz"

	"github.com/magibake/magibake/internal/compression"
	"github.com/magibake/magibake/internal/ctxio"
	"github.com/magibake/magibake/internal/tempfile"
	"github.com/magibake/magibake/internal/xzblocks"
	"github.com/magibake/magibake/internal/zeros"
)

// ErrBadImage marks an image (a base or a card) that cannot be used; the
// message says why.
var ErrBadImage = errors.New("unusable image")

// Base is an opened base image: the raw disk bytes, read-only.
type Base struct {
	// Path is the file the user named.
	Path string
	// SHA256 is the hex digest of that file as given (compressed if it was).
	SHA256 string
	// Compressed says whether the file was an .img.xz.
	Compressed bool
	// Cached says the decompressed .img.xz came from the cache: it was not
	// decompressed this time.
	Cached bool
	// OnDemand says the .img.xz is read by decoding the blocks a read
	// needs (Options.OnDemand); nothing was decompressed up front.
	OnDemand bool
	// Verified says every block of an .img.xz has been decoded and its
	// check verified, now or when it entered the cache. An .img.xz read on
	// demand is not: only the blocks read were. A raw .img has nothing to verify.
	Verified bool

	raw    io.ReaderAt // the .img, the decompressed temp or cache file, or the on-demand decoder
	file   *os.File    // the file behind raw; nil on demand
	xzFile *os.File    // the .img.xz, kept open for XZ; nil if it has no usable index
	xz     *xzblocks.Index
	size   int64
	temp   string // temp file to delete on Close
	lock   *tempfile.Lock
	fill   *fill // the cache entry being made from temp, or nil
}

// TempPattern matches the names of the temp files bases are decompressed
// into, beside the output or in the cache.
const TempPattern = ".magibake-base-*.img"

// Options says how OpenBaseWith opens a base.
type Options struct {
	// TempDir holds the decompressed .img.xz when it is not cached.
	TempDir string
	// CacheDir keeps decompressed .img.xz bases by sha256 ("" for none):
	// one already there is not decompressed again, and a new one is
	// decompressed into it rather than into TempDir.
	CacheDir string
	// Progress, if set, is told how many bytes of an .img.xz have been
	// read while it is decompressed up front (total: the file's size).
	// It may be called from several goroutines at once.
	Progress func(done, total int64)
	// CheckSum, if set, is given the sha256 of an .img.xz as soon as it is
	// known with a cache (before anything is decompressed into the cache
	// or evicted from it); an error from it is returned as is.
	CheckSum func(sum string) error
	// Warn, if set, is told in one line about what the cache had to
	// correct: an entry changed since it was written, a remembered sum
	// that did not match the file.
	Warn func(string)
	// OnDemand reads an .img.xz of many small blocks (xz -T0 makes them)
	// by decoding only the blocks a read needs, unless it is in the cache:
	// for builds whose outputs are all .img.xz, which copy the blocks the
	// bake leaves alone (see XZ), and for inspect, which reads a few blocks
	// (the whole file is still read once, to hash it).
	OnDemand bool
	// Noun is what the image is to the user, as messages call it: "base"
	// (the default) or "card".
	Noun string
	// Adoptable decompresses an .img.xz that is not in the cache into
	// TempDir even with a CacheDir, for the last card to be written into
	// (Adopt); the cache is filled from it alongside.
	Adoptable bool
}

// maxOnDemandBlock is the largest block OnDemand reads on demand: the
// decoder keeps a few decoded blocks in memory (xz -T0 -6 makes 24 MiB
// blocks, -9 makes 192 MiB ones, which are decompressed up front instead).
const maxOnDemandBlock = 64 << 20

// OpenBase opens a base image read-only. An .img.xz (recognised by its magic,
// not its name) is decompressed once into a sparse temp file in tempDir, which
// Close removes; the original is never opened for writing. A multi-block
// .img.xz is decoded in parallel, one block per core.
func OpenBase(ctx context.Context, path, tempDir string) (*Base, error) {
	return OpenBaseWith(ctx, path, Options{TempDir: tempDir})
}

// OpenBaseWith is OpenBase with the choices of o. A cached file is only
// ever read. Errors start with the image's role and path ("base X: ...").
func OpenBaseWith(ctx context.Context, path string, o Options) (*Base, error) {
	b, err := openImage(ctx, path, o)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", o.noun(), path, err)
	}
	return b, nil
}

// noun is what the image is to the user, for messages.
func (o Options) noun() string {
	if o.Noun == "" {
		return "base"
	}
	return o.Noun
}

func openImage(ctx context.Context, path string, o Options) (*Base, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, errors.Unwrap(err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return nil, err
	}
	if !st.Mode().IsRegular() {
		f.Close()
		return nil, fmt.Errorf("%w: not a regular file", ErrBadImage)
	}
	head := make([]byte, compression.HeadSize)
	n, _ := io.ReadFull(f, head)
	switch compression.Detect(head[:n]) {
	case compression.XZ:
		return openXZ(ctx, f, st.Size(), path, o)
	case compression.Zstd, compression.Gzip:
		f.Close()
		return nil, fmt.Errorf("%w: zstd/gzip compression is not supported; give the .img or the .img.xz", ErrBadImage)
	}
	b := &Base{Path: path, raw: f, file: f, size: st.Size(), Verified: true}
	// The card is made of this file's bytes: hash them every time.
	if b.SHA256, err = hashFile(ctx, f); err != nil {
		f.Close()
		return nil, err
	}
	return b, nil
}

// openXZ opens the .img.xz f: from the cache, on demand, or decompressed.
// f stays open with the Base when its index is usable for XZ.
func openXZ(ctx context.Context, f *os.File, fileSize int64, path string, o Options) (_ *Base, err error) {
	var idx *xzblocks.Index
	x, xerr := xzblocks.Open(f, fileSize)
	if xerr == nil && len(x.Index().Blocks) > 1 {
		idx = x.Index()
	}
	var b *Base
	defer func() {
		switch {
		case err != nil || idx == nil:
			f.Close()
		default:
			b.xzFile, b.xz = f, idx
		}
	}()
	onDemand := o.OnDemand && idx != nil && maxBlock(idx) <= maxOnDemandBlock
	if o.CacheDir != "" && !onDemand {
		b, err = fromCache(ctx, f, x, fileSize, path, o)
		if b != nil && b.Cached {
			idx = nil // found by a remembered sum: its blocks are not offered for copying (XZ)
		}
		return b, err
	}
	if !onDemand {
		b, err = decompressAny(ctx, f, fileSize, path, o.TempDir, "", o.Progress)
		return b, err
	}
	// On demand, blocks of this very file are copied into the card and
	// trusted by this sum: hash it.
	sum, err := hashFile(ctx, f)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, err
	}
	if o.CheckSum != nil {
		if err := o.CheckSum(sum); err != nil {
			return nil, err
		}
	}
	if o.CacheDir != "" {
		if b = openEntry(x, path, sum, o.CacheDir, o.Warn); b != nil {
			return b, nil
		}
	}
	b = &Base{Path: path, SHA256: sum, Compressed: true, OnDemand: true, raw: x, size: x.Size(),
		Verified: markedVerified(o.CacheDir, sum)}
	return b, nil
}

// fromCache opens the .img.xz f through the cache: the one way its
// entries are found and made. A file whose sum is remembered (see
// sumSuffix) is looked up by it, after the sum passed o.CheckSum. Otherwise
// it is decompressed, hashed as it is read, into the cache (the temp file
// then becomes the entry) or, to be adopted by a card, into o.TempDir with
// the entry filled alongside (see fill). Every decompression hashes what
// it reads, and its sum, not a remembered one, is what o.CheckSum sees,
// what the Base carries and what names the entry.
func fromCache(ctx context.Context, f *os.File, x *xzblocks.Reader, fileSize int64, path string, o Options) (*Base, error) {
	if err := os.MkdirAll(o.CacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("decompressed-base cache: %w (--no-cache decompresses beside the output instead)", err)
	}
	sum, remembered := rememberedSum(f, path, o.CacheDir)
	if remembered {
		if o.CheckSum != nil {
			if err := o.CheckSum(sum); err != nil {
				return nil, err
			}
		}
		if b := openEntry(x, path, sum, o.CacheDir, o.Warn); b != nil {
			return b, nil
		}
	}
	dir, fillDir := o.CacheDir, ""
	if o.Adoptable {
		dir, fillDir = o.TempDir, o.CacheDir
	}
	b, err := decompressAny(ctx, f, fileSize, path, dir, fillDir, o.Progress)
	if err != nil {
		if dir == o.CacheDir && strings.Contains(err.Error(), "decompress into "+o.CacheDir) {
			err = fmt.Errorf("%w (--no-cache decompresses beside the output instead)", err)
		}
		return nil, err
	}
	if remembered && b.SHA256 != sum && o.Warn != nil {
		o.Warn(fmt.Sprintf("%s %s: its sha256 is %s, not %s as remembered for it: the remembered sum is replaced", o.noun(), path, b.SHA256, sum))
	}
	if !remembered || b.SHA256 != sum {
		if o.CheckSum != nil {
			if err := o.CheckSum(b.SHA256); err != nil {
				b.Close()
				return nil, err
			}
		}
		rememberSum(f, path, o.CacheDir, b.SHA256)
	}
	b.keep(ctx, o.CacheDir)
	return b, nil
}

// keep makes the decompressed b the cache's entry for its sum, unless
// there is one already (made under another identity of the same file):
// its temp file is renamed into place when it was decompressed into the
// cache, else the entry is filled from it (see fill).
func (b *Base) keep(ctx context.Context, cacheDir string) {
	entry := entryPath(cacheDir, b.SHA256)
	_, err := os.Stat(entry)
	there := err == nil
	if b.fill == nil && b.temp != "" && sameDir(filepath.Dir(b.temp), cacheDir) {
		// Complete, or not there at all.
		if !there && b.file.Sync() == nil && os.Rename(b.temp, entry) == nil {
			b.temp = ""
			recordIdentity(entry)
			evict(cacheDir, entry)
		}
		return
	}
	written := b.fill != nil
	if !written && !there {
		// Decompressed by streaming: the entry is copied afterwards.
		b.fill, _ = newFill(cacheDir, b.file)
	}
	if b.fill == nil {
		return
	}
	if there {
		b.fill.discard()
		b.fill = nil
		return
	}
	b.fill.complete(ctx, b.file, b.size, written, b.SHA256, cacheDir)
}

// Adopt hands the decompressed temp file over to the card that will be
// written into it (output.Adopter), if the file is in dir. A cache entry
// made from it is complete by then (see fill). The base cannot be read
// afterwards.
func (b *Base) Adopt(dir string) (*os.File, *tempfile.Lock, bool) {
	if b.temp == "" || b.file == nil || !sameDir(filepath.Dir(b.temp), dir) {
		return nil, nil, false
	}
	f, lock := b.file, b.lock
	b.raw, b.file, b.temp, b.lock = adoptedBase{}, nil, "", nil
	return f, lock, true
}

// adoptedBase is what an adopted base reads: nothing.
type adoptedBase struct{}

func (adoptedBase) ReadAt([]byte, int64) (int, error) {
	return 0, errors.New("the decompressed base was taken over by a card")
}

// sameDir says whether a and b name the same directory.
func sameDir(a, b string) bool {
	sa, err1 := os.Stat(a)
	sb, err2 := os.Stat(b)
	return err1 == nil && err2 == nil && os.SameFile(sa, sb)
}

func maxBlock(idx *xzblocks.Index) int64 {
	var m int64
	for _, b := range idx.Blocks {
		m = max(m, b.UncompressedSize)
	}
	return m
}

// CompressedBlocks returns the base's .img.xz file and its block index when it is an
// .img.xz of several blocks, so that an .img.xz output can copy the blocks
// a bake leaves untouched instead of compressing them again; nil otherwise.
func (b *Base) CompressedBlocks() (io.ReaderAt, *xzblocks.Index) {
	if b.xz == nil {
		return nil, nil
	}
	return b.xzFile, b.xz
}

// hashFile is the sha256 of all of f, wherever its offset stands.
func hashFile(ctx context.Context, f *os.File) (string, error) {
	return ctxio.SHA256(ctx, io.NewSectionReader(f, 0, 1<<62))
}

// decompressAny decompresses the .img.xz f into a temp file in dir, in
// parallel when it has several blocks, and hashes f as it goes. With a
// fillDir, the cache entry is filled there alongside.
func decompressAny(ctx context.Context, f *os.File, fileSize int64, path, dir, fillDir string, progress func(done, total int64)) (*Base, error) {
	in := &counter{r: f, total: fileSize, fn: progress}
	if b, ok, err := decompressParallel(ctx, f, in, fileSize, path, dir, fillDir); ok {
		return b, err
	}
	in.n.Store(0)
	return decompress(ctx, f, in, path, dir)
}

// counter reports to fn how many bytes were read through it.
type counter struct {
	r     io.ReaderAt
	n     atomic.Int64
	total int64
	fn    func(done, total int64)
}

func (c *counter) ReadAt(p []byte, off int64) (int, error) {
	n, err := c.r.ReadAt(p, off)
	if c.fn != nil {
		c.fn(min(c.n.Add(int64(n)), c.total), c.total)
	}
	return n, err
}

// decompressParallel decodes a multi-block .img.xz straight into a sparse
// temp file, one block per core at a time, hashing the file alongside. It
// reports ok=false (and leaves nothing behind) when the file has a single
// block or its index cannot be read: streaming then does the work and names
// the damage (truncated, trailing data) as it always has.
func decompressParallel(ctx context.Context, f *os.File, in io.ReaderAt, fileSize int64, path, tempDir, cacheDir string) (*Base, bool, error) {
	x, err := xzblocks.Open(in, fileSize)
	if err != nil || x.Index().Streams == 1 && len(x.Index().Blocks) <= 1 {
		return nil, false, nil
	}
	tmp, lock, err := tempfile.Create(tempDir, TempPattern)
	if err != nil {
		return nil, true, fmt.Errorf("temp file for decompression: %w", err)
	}
	b := &Base{Path: path, Compressed: true, Verified: true, raw: tmp, file: tmp, temp: tmp.Name(), lock: lock}
	if cacheDir != "" {
		// No entry, no cache this time: the build goes on.
		b.fill, _ = newFill(cacheDir, tmp)
	}
	hctx, stopHash := context.WithCancel(ctx)
	defer stopHash()
	sum := make(chan error, 1)
	go func() {
		var err error
		b.SHA256, err = hashFile(hctx, f)
		sum <- err
	}()
	err = x.DecodeTo(ctx, teeWriter{base: tmp, entry: b.fill}, 0, true)
	if err == nil {
		err = tmp.Truncate(x.Size())
	}
	if err != nil {
		stopHash()
	}
	if herr := <-sum; err == nil {
		err = herr
	}
	if err != nil {
		b.Close()
		if ctx.Err() != nil {
			return nil, true, ctx.Err()
		}
		var pe *os.PathError
		if errors.As(err, &pe) && pe.Path == tmp.Name() {
			return nil, true, fmt.Errorf("decompress into %s: %w", filepath.Dir(pe.Path), pe.Err)
		}
		if errors.Is(err, xzblocks.ErrFormat) {
			return nil, true, fmt.Errorf("%w: xz data is corrupt: %v", ErrBadImage, err)
		}
		return nil, true, err
	}
	b.size = x.Size()
	return b, true, nil
}

// decompress streams the .img.xz f (read through in, which may count it)
// into a sparse temp file, hashing the compressed bytes on the way.
func decompress(ctx context.Context, f *os.File, in io.ReaderAt, path, tempDir string) (*Base, error) {
	h := sha256.New()
	// ulikunitz/xz reads byte by byte from its source: unbuffered it is ~8x slower.
	src := bufio.NewReaderSize(io.TeeReader(io.NewSectionReader(in, 0, 1<<62), h), 1<<20)
	// One stream, as xz and the Raspberry Pi OS images make: anything after
	// it is reported as "unexpected data after stream", not misread as the
	// bad header of a second stream.
	zr, err := xz.ReaderConfig{SingleStream: true}.NewReader(src)
	if err != nil {
		return nil, fmt.Errorf("%w: not a valid xz file: %v", ErrBadImage, err)
	}
	tmp, lock, err := tempfile.Create(tempDir, TempPattern)
	if err != nil {
		return nil, fmt.Errorf("temp file for decompression: %w", err)
	}
	b := &Base{Path: path, Compressed: true, Verified: true, raw: tmp, file: tmp, temp: tmp.Name(), lock: lock}
	size, err := copySparse(tmp, ctxio.Reader(ctx, zr))
	if err == nil && !endsWithFooter(f) {
		// ulikunitz/xz reports a stream cut right after its header as a
		// clean, empty end; every complete stream ends with the footer magic.
		err = io.ErrUnexpectedEOF
	}
	if err == nil {
		// Drain what the xz reader left so trailing garbage and the final
		// checks (index, stream footer) are seen, and hash the whole file.
		if _, err = io.Copy(io.Discard, src); err == nil {
			err = tmp.Truncate(size)
		}
	}
	if err != nil {
		b.Close()
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return nil, fmt.Errorf("%w: xz data is truncated (incomplete download?)", ErrBadImage)
		}
		var pe *os.PathError
		if errors.As(err, &pe) {
			// Name the directory: the temp file is gone and not the user's.
			return nil, fmt.Errorf("decompress into %s: %w", filepath.Dir(pe.Path), pe.Err)
		}
		return nil, fmt.Errorf("%w: xz data is corrupt: %v", ErrBadImage, err)
	}
	b.size = size
	b.SHA256 = hex.EncodeToString(h.Sum(nil))
	return b, nil
}

// endsWithFooter reports whether the file ends with the xz stream footer
// magic, allowing for stream padding (zero bytes) after it.
func endsWithFooter(f *os.File) bool {
	st, err := f.Stat()
	if err != nil || st.Size() < 32 {
		return false
	}
	tail := make([]byte, min(st.Size(), 4096))
	if _, err := f.ReadAt(tail, st.Size()-int64(len(tail))); err != nil {
		return false
	}
	tail = bytes.TrimRight(tail, "\x00")
	return len(tail) == 0 || bytes.HasSuffix(tail, []byte("YZ"))
}

// copySparse copies r to f, seeking over all-zero chunks so they stay holes.
// Only io.EOF ends the copy: a decoder's io.ErrUnexpectedEOF means truncation.
func copySparse(f *os.File, r io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	var off int64
	for {
		n := 0
		var err error
		for n < len(buf) && err == nil {
			var m int
			m, err = r.Read(buf[n:])
			n += m
		}
		if n > 0 && !zeros.All(buf[:n]) {
			if _, werr := f.WriteAt(buf[:n], off); werr != nil {
				return off, werr
			}
		}
		off += int64(n)
		if err == io.EOF {
			return off, nil
		}
		if err != nil {
			return off, err
		}
	}
}

// File is the plain file holding the raw disk bytes (the .img, or the
// decompressed .img.xz), or nil when an .img.xz is read on demand.
func (b *Base) File() *os.File { return b.file }

// Size is the size of the raw disk image in bytes.
func (b *Base) Size() int64 { return b.size }

// ReadAt reads raw disk bytes.
func (b *Base) ReadAt(p []byte, off int64) (int, error) { return b.raw.ReadAt(p, off) }

// Close releases the base and deletes the decompressed temp file, if any.
func (b *Base) Close() error {
	var err error
	if b.fill != nil {
		// The entry's failure only costs the next build its time.
		b.fill.wait()
		b.fill = nil
	}
	for _, f := range []*os.File{b.file, b.xzFile} {
		if f != nil {
			err = errors.Join(err, f.Close())
		}
	}
	b.file, b.xzFile = nil, nil
	if b.temp != "" {
		if rerr := os.Remove(b.temp); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			err = errors.Join(err, rerr)
		}
		b.temp = ""
	}
	b.lock.Release()
	return err
}
