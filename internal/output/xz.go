package output

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math"
	"math/bits"
	"sync"

	"github.com/ulikunitz/xz/lzma"

	"github.com/magibake/magibake/internal/compression"
	"github.com/magibake/magibake/internal/xzblocks"
	"github.com/magibake/magibake/internal/zeros"
)

// The .xz output is one xz stream of independent LZMA2 blocks, each at
// most xzBlock bytes of the image, compressed in parallel and written in
// order, with both sizes in every block header and an index at the end:
// `xz -T0 -d` can decode it in parallel too. Baked from an .img.xz of many
// blocks (Reuse), it keeps the base's blocks: each one whose bytes the bake
// left untouched is copied verbatim, and only the others are compressed
// again, so that a bake, which changes a few blocks of a hundred, costs
// seconds rather than the minutes of compressing 2.7 GiB.
// ulikunitz/xz's own Writer makes one block at a time on one core; its
// lzma.Writer2 makes the raw LZMA2 data of a block, and the container
// around it is written here (format: https://tukaani.org/xz/xz-file-format.txt).
//
// Block and dictionary size bound the memory: each worker holds a block in,
// a block out and an encoder of about 9 times the dictionary (ulikunitz's
// hash table). With 16 MiB blocks and 8 MiB dictionaries (xz -6's) a build
// on two cores peaked at 316 MiB RSS; 8 MiB and 4 MiB stay near 190 MiB,
// within issue 6's 300 MiB, for a slightly larger file.
const (
	xzBlock   = 8 << 20
	xzDictCap = 4 << 20
)

var (
	errXZCorrupt = errors.New("xz stream is corrupt")
)

// Reuse is the .img.xz a card was baked from, for the .xz encoder to copy
// the blocks the bake left untouched.
type Reuse struct {
	File  io.ReaderAt     // the base .img.xz
	Index *xzblocks.Index // its blocks
	// Untouched reports whether the card's bytes [off, off+n) are the base's.
	Untouched func(off, n int64) bool
	// Trusted says every block of File is known to decode to what its
	// check says: the file was decoded in full before (so it is in the
	// cache), or it has the sha256 the profile pins. Otherwise the
	// read-back decodes the copied blocks too, as xz -t would.
	Trusted bool
}

// segment is a run of image bytes that becomes one block of the output:
// compressed, or when from is set, a copy of that block of the base.
type segment struct {
	off, n int64
	from   *xzblocks.Block
}

// planXZ cuts the image into the output's blocks and picks the stream's
// check type: the base's when its blocks are copied (a stream has one
// check type), else CRC64 as xz's default.
func planXZ(size int64, reuse *Reuse) ([]segment, byte) {
	compress := func(segs []segment, off, n int64) []segment {
		for end := off + n; off < end; off += xzBlock {
			segs = append(segs, segment{off: off, n: min(xzBlock, end-off)})
		}
		return segs
	}
	if reuse != nil && reuse.Index != nil && reuse.Index.Size == size && len(reuse.Index.Blocks) > 1 {
		bs := reuse.Index.Blocks
		uniform := true
		for _, b := range bs {
			uniform = uniform && b.Check == bs[0].Check
		}
		if uniform {
			var segs []segment
			for i := range bs {
				b := &bs[i]
				if b.UncompressedSize > 0 && reuse.Untouched(b.UncompressedOffset, b.UncompressedSize) {
					segs = append(segs, segment{off: b.UncompressedOffset, n: b.UncompressedSize, from: b})
				} else {
					segs = compress(segs, b.UncompressedOffset, b.UncompressedSize)
				}
			}
			return segs, bs[0].Check
		}
	}
	return compress(nil, 0, size), xzblocks.CheckCRC64
}

// xzBlockOut is one compressed block, ready to write.
type xzBlockOut struct {
	header   []byte // block header, with both sizes
	data     []byte // LZMA2 data and block padding
	check    []byte
	usize    int64
	unpadded int64    // header + LZMA2 data + check, without padding
	sum      [32]byte // sha256 of the uncompressed block, for the read-back
	err      error
}

// encodeXZ writes size bytes of src to w as one multi-block xz stream,
// copying blocks of reuse (nil: none) where it can. One goroutine hands
// out the blocks to compress in order, workers() goroutines compress them,
// and the caller's goroutine writes every block in order, copying reused
// ones straight from the base; at most 2*workers() blocks are in memory.
func encodeXZ(ctx context.Context, w io.Writer, src io.ReaderAt, size int64, reuse *Reuse, progress func(done, total int64)) (verifier, error) {
	segs, checkType := planXZ(size, reuse)
	if _, _, err := xzblocks.NewCheck(checkType); err != nil {
		return nil, err
	}
	flags := []byte{0, checkType}
	ctx, cancel := context.WithCancel(ctx)
	n := workers()
	type job struct {
		seg  segment
		done chan *xzBlockOut
	}
	jobs := make(chan job)
	order := make(chan job, n)
	var wg sync.WaitGroup
	var zero zeroBlocks
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			buf := make([]byte, xzBlock)
			for j := range jobs {
				l := int(j.seg.n)
				b := &xzBlockOut{usize: int64(l)}
				if _, err := src.ReadAt(buf[:l], j.seg.off); err != nil && !(errors.Is(err, io.EOF) && l > 0) {
					b.err = fmt.Errorf("read image at %d: %w", j.seg.off, err)
				} else {
					b.err = compressBlock(buf[:l], b, &zero, checkType)
				}
				j.done <- b
			}
		}()
	}
	go func() {
		defer close(order)
		defer close(jobs)
		for _, s := range segs {
			j := job{s, make(chan *xzBlockOut, 1)}
			select {
			case order <- j:
			case <-ctx.Done():
				return
			}
			if s.from != nil {
				continue // copied by the writer
			}
			select {
			case jobs <- j:
			case <-ctx.Done():
				return
			}
		}
	}()
	defer func() { cancel(); wg.Wait() }()

	cw := &countWriter{w: w}
	stream := append(append([]byte{}, compression.XZMagic...), flags...)
	stream = binary.LittleEndian.AppendUint32(stream, crc32.ChecksumIEEE(flags))
	if _, err := cw.Write(stream); err != nil {
		return nil, err
	}
	var blocks []blockRecord
	for j := range order {
		if f := j.seg.from; f != nil {
			rec, err := copyBlock(ctx, cw, reuse.File, *f)
			if err != nil {
				return nil, err
			}
			blocks = append(blocks, rec)
			progress(j.seg.off+j.seg.n, size)
			continue
		}
		var b *xzBlockOut
		select {
		case b = <-j.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if b.err != nil {
			return nil, b.err
		}
		blocks = append(blocks, blockRecord{off: cw.n, imgOff: j.seg.off, header: b.header,
			length: int64(len(b.header) + len(b.data) + len(b.check)), usize: b.usize, unpadded: b.unpadded, sum: b.sum})
		for _, p := range [][]byte{b.header, b.data, b.check} {
			if _, err := cw.Write(p); err != nil {
				return nil, err
			}
		}
		progress(j.seg.off+j.seg.n, size)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tail := xzIndexAndFooter(blocks, flags)
	indexOff := cw.n
	if _, err := cw.Write(tail); err != nil {
		return nil, err
	}
	total := cw.n
	trusted := reuse != nil && reuse.Trusted
	return func(ctx context.Context, r io.ReaderAt, fileSize int64) error {
		return verifyXZ(ctx, r, fileSize, total, stream, tail, indexOff, blocks, checkType, trusted)
	}, nil
}

// copyBlock copies block b of the base file verbatim to cw.
func copyBlock(ctx context.Context, cw *countWriter, file io.ReaderAt, b xzblocks.Block) (blockRecord, error) {
	if err := ctx.Err(); err != nil {
		return blockRecord{}, err
	}
	rec := blockRecord{off: cw.n, imgOff: b.UncompressedOffset, length: b.Len(), usize: b.UncompressedSize,
		unpadded: b.UnpaddedSize, copied: true}
	h := sha256.New()
	n, err := io.Copy(io.MultiWriter(cw, h), io.NewSectionReader(file, b.Offset, rec.length))
	if err == nil && n != rec.length {
		err = io.ErrUnexpectedEOF
	}
	if err != nil {
		return rec, fmt.Errorf("copy block at byte %d of the base: %w", b.Offset, err)
	}
	rec.sum = [32]byte(h.Sum(nil))
	return rec, nil
}

// blockRecord is what the read-back needs to know of a written block.
type blockRecord struct {
	off, length     int64 // in the file: header, data, padding and check
	imgOff          int64 // where its bytes are in the image
	header          []byte
	usize, unpadded int64
	// sum is the sha256 of the uncompressed block, or for a copied block
	// of the bytes copied.
	sum    [32]byte
	copied bool
}

// zeroBlocks remembers the compressed form of an all-zero block: a card
// is mostly unused space, and LZMA2 output depends only on the input.
type zeroBlocks struct {
	mu   sync.Mutex
	outs map[int]*xzBlockOut
}

// compressBlock fills b with the xz block of p, with a check of checkType.
func compressBlock(p []byte, b *xzBlockOut, zero *zeroBlocks, checkType byte) error {
	if zeros.All(p) {
		zero.mu.Lock()
		defer zero.mu.Unlock()
		if z, ok := zero.outs[len(p)]; ok {
			*b = *z
			return nil
		}
		if err := compressBlockData(p, b, checkType); err != nil {
			return err
		}
		if zero.outs == nil {
			zero.outs = map[int]*xzBlockOut{}
		}
		z := *b
		zero.outs[len(p)] = &z
		return nil
	}
	return compressBlockData(p, b, checkType)
}

// compressBlockData makes the LZMA2 data of one block. LZMA2 can store a
// chunk of up to 64 KiB as it is, and ulikunitz/xz's encoder manages only
// about 1 MB/s on data that does not compress (it tries LZMA first), so
// each 64 KiB segment that looks incompressible (compressed files,
// firmware, random bytes) is stored, and each run of the others is
// compressed by a fresh lzma.Writer2, whose first chunk resets dictionary,
// state and properties, as the format allows anywhere in a block.
func compressBlockData(p []byte, b *xzBlockOut, checkType byte) error {
	// Room for the worst case, stored chunks (3 bytes per 64 KiB), so the
	// buffer is never regrown: a regrowth would double it.
	var data bytes.Buffer
	data.Grow(len(p) + 3*(len(p)/lzma2Chunk+1) + 64)
	segs := make([]bool, (len(p)+lzma2Chunk-1)/lzma2Chunk)
	for i := range segs {
		segs[i] = incompressible(p[i*lzma2Chunk : min((i+1)*lzma2Chunk, len(p))])
	}
	first := true
	for i := 0; i < len(segs); {
		stored := segs[i]
		j := i
		for j < len(segs) && segs[j] == stored {
			j++
		}
		run := p[i*lzma2Chunk : min(j*lzma2Chunk, len(p))]
		i = j
		if stored {
			for k := 0; k < len(run); k += lzma2Chunk {
				c := run[k:min(k+lzma2Chunk, len(run))]
				ctrl := byte(0x02) // uncompressed, no dictionary reset
				if first {
					ctrl = 0x01 // uncompressed, dictionary reset: a block's first chunk must reset
				}
				data.Write([]byte{ctrl, byte((len(c) - 1) >> 8), byte(len(c) - 1)})
				data.Write(c)
				first = false
			}
		} else {
			// A dictionary as big as the run, rounded up, is all the run can
			// use; the encoder's tables grow with it.
			dc := min(xzDictCap, max(lzma2Chunk, 1<<bits.Len(uint(len(run)-1))))
			lw, err := lzma.Writer2Config{DictCap: dc}.NewWriter2(&data)
			if err != nil {
				return fmt.Errorf("xz: %w", err)
			}
			if _, err := lw.Write(run); err != nil {
				return fmt.Errorf("xz: %w", err)
			}
			if err := lw.Flush(); err != nil { // no end marker: more chunks may follow
				return fmt.Errorf("xz: %w", err)
			}
			first = false
		}
	}
	data.WriteByte(0) // LZMA2 end marker
	csize := int64(data.Len())
	h, checkLen, err := xzblocks.NewCheck(checkType)
	if err != nil {
		return err
	}
	b.header = xzBlockHeader(csize, int64(len(p)))
	b.unpadded = int64(len(b.header)) + csize + int64(checkLen)
	for (int64(len(b.header))+int64(data.Len()))%4 != 0 {
		data.WriteByte(0)
	}
	b.data = data.Bytes()
	if h != nil {
		h.Write(p)
		b.check = xzblocks.CheckBytes(h, checkType)
	}
	b.usize = int64(len(p))
	b.sum = sha256.Sum256(p)
	return nil
}

// lzma2Chunk is the most an LZMA2 chunk stored uncompressed can hold.
const lzma2Chunk = 64 << 10

// incompressible says whether p looks like data LZMA cannot shrink: the
// order-0 entropy of its bytes is within 1% of 8 bits. Text and code sit
// far below (4-6 bits); compressed and random data at 7.99 and above.
func incompressible(p []byte) bool {
	if len(p) < 4096 {
		return false
	}
	var hist [256]int
	for _, c := range p {
		hist[c]++
	}
	n := float64(len(p))
	h := 0.0
	for _, k := range hist {
		if k > 0 {
			q := float64(k) / n
			h -= q * math.Log2(q)
		}
	}
	return h > 7.92
}

// xzBlockHeader is a block header with compressed and uncompressed sizes
// and one filter, LZMA2 with xzDictCap.
func xzBlockHeader(csize, usize int64) []byte {
	h := []byte{0, 0x40 | 0x80} // size byte filled in below; one filter, both sizes present
	h = appendVLI(h, uint64(csize))
	h = appendVLI(h, uint64(usize))
	h = append(h, 0x21, 1, lzma.EncodeDictCap(xzDictCap)) // filter LZMA2, 1 byte of properties
	for (len(h)+4)%4 != 0 {
		h = append(h, 0)
	}
	h[0] = byte((len(h)+4)/4 - 1)
	return binary.LittleEndian.AppendUint32(h, crc32.ChecksumIEEE(h))
}

// xzIndexAndFooter is the index of blocks and the stream footer.
func xzIndexAndFooter(blocks []blockRecord, flags []byte) []byte {
	idx := []byte{0}
	idx = appendVLI(idx, uint64(len(blocks)))
	for _, b := range blocks {
		idx = appendVLI(idx, uint64(b.unpadded))
		idx = appendVLI(idx, uint64(b.usize))
	}
	for len(idx)%4 != 0 {
		idx = append(idx, 0)
	}
	idx = binary.LittleEndian.AppendUint32(idx, crc32.ChecksumIEEE(idx))
	footer := binary.LittleEndian.AppendUint32(nil, uint32(len(idx)/4-1))
	footer = append(footer, flags...)
	out := binary.LittleEndian.AppendUint32(idx, crc32.ChecksumIEEE(footer))
	out = append(out, footer...)
	return append(out, 'Y', 'Z')
}

func appendVLI(b []byte, x uint64) []byte {
	for x >= 0x80 {
		b = append(b, byte(x)|0x80)
		x >>= 7
	}
	return append(b, byte(x))
}

type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// verifyXZ reads the written file back: the stream header, the index and
// the footer must be the bytes written; every compressed block, decoded
// from the file in parallel, must have the header written, decode to
// exactly its image bytes (sha256) and carry its check; every copied block
// must be the bytes copied, and unless trusted decode to its check too.
func verifyXZ(ctx context.Context, r io.ReaderAt, fileSize, total int64, head, tail []byte, indexOff int64, blocks []blockRecord, checkType byte, trusted bool) error {
	if fileSize != total {
		return fmt.Errorf("file is %d bytes, %d were written", fileSize, total)
	}
	for _, part := range []struct {
		off  int64
		want []byte
		what string
	}{{0, head, "stream header"}, {indexOff, tail, "index and stream footer"}} {
		got := make([]byte, len(part.want))
		if _, err := r.ReadAt(got, part.off); err != nil {
			return fmt.Errorf("xz %s: %w", part.what, err)
		}
		if !bytes.Equal(got, part.want) {
			return fmt.Errorf("%w: %s differs from what was written", errXZCorrupt, part.what)
		}
	}
	next := make(chan int)
	errs := make(chan error, workers())
	var wg sync.WaitGroup
	for range workers() {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				b := blocks[i]
				if err := verifyBlock(r, b, checkType, trusted); err != nil {
					what := "compressed"
					if b.copied {
						what = "copied from the base"
					}
					errs <- fmt.Errorf("block %d of %d (image bytes %d-%d, %s): %w", i+1, len(blocks), b.imgOff, b.imgOff+b.usize, what, err)
					return
				}
			}
		}()
	}
	var err error
feed:
	for i := range blocks {
		select {
		case next <- i:
		case err = <-errs:
			break feed
		case <-ctx.Done():
			err = ctx.Err()
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err == nil {
		select {
		case err = <-errs:
		default:
		}
	}
	return err
}

func verifyBlock(r io.ReaderAt, b blockRecord, checkType byte, trusted bool) error {
	blk := xzblocks.Block{Offset: b.off, UnpaddedSize: b.unpadded, UncompressedSize: b.usize, Check: checkType}
	if b.copied {
		h := sha256.New()
		if _, err := io.Copy(h, io.NewSectionReader(r, b.off, b.length)); err != nil {
			return err
		}
		if !bytes.Equal(h.Sum(nil), b.sum[:]) {
			return fmt.Errorf("%w: the bytes differ from the base's block", errXZCorrupt)
		}
		if trusted {
			return nil
		}
		if err := xzblocks.DecodeBlockAt(r, blk, io.Discard); err != nil {
			return fmt.Errorf("the base's block is damaged: %w", err)
		}
		return nil
	}
	hdr := make([]byte, len(b.header))
	if _, err := r.ReadAt(hdr, b.off); err != nil {
		return err
	}
	if !bytes.Equal(hdr, b.header) {
		return fmt.Errorf("%w: block header differs from what was written", errXZCorrupt)
	}
	h := sha256.New()
	if err := xzblocks.DecodeBlockAt(r, blk, h); err != nil {
		return fmt.Errorf("%w: %v", errXZCorrupt, err)
	}
	if !bytes.Equal(h.Sum(nil), b.sum[:]) {
		return fmt.Errorf("decodes to other bytes than the image's")
	}
	return nil
}
