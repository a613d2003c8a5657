package output

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"hash/crc64"
	"io"
	"math"
	"math/bits"
	"sync"

	"github.com/ulikunitz/xz/lzma"
)

// The .xz output is one xz stream (CRC64 checks) of independent LZMA2
// blocks, each xzBlock bytes of the image, compressed in parallel and
// written in order, with both sizes in every block header and an index at
// the end: `xz -T0 -d` can decode it in parallel too, and a later version
// can copy untouched blocks of the base instead of recompressing them.
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
	xzCheck   = 8 // CRC64
)

var (
	xzMagic      = []byte{0xfd, '7', 'z', 'X', 'Z', 0}
	xzFlags      = []byte{0, 0x04} // check type CRC64
	crc64Table   = crc64.MakeTable(crc64.ECMA)
	errXZCorrupt = errors.New("xz stream is corrupt")
)

// xzBlockOut is one compressed block, ready to write.
type xzBlockOut struct {
	header   []byte // block header, with both sizes
	data     []byte // LZMA2 data and block padding
	check    [xzCheck]byte
	usize    int64
	unpadded int64    // header + LZMA2 data + check, without padding
	sum      [32]byte // sha256 of the uncompressed block, for the read-back
	err      error
}

// encodeXZ writes size bytes of src to w as one multi-block xz stream. One
// goroutine reads the image in order, workers() goroutines compress blocks,
// and the caller's goroutine writes them in order; at most 2*workers()
// blocks are in memory at once.
func encodeXZ(ctx context.Context, w io.Writer, src io.ReaderAt, size int64) (verifier, error) {
	ctx, cancel := context.WithCancel(ctx)
	n := workers()
	type job struct {
		off  int64
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
				l := int(min(xzBlock, size-j.off))
				b := &xzBlockOut{usize: int64(l)}
				if _, err := src.ReadAt(buf[:l], j.off); err != nil && !(errors.Is(err, io.EOF) && l > 0) {
					b.err = fmt.Errorf("read image at %d: %w", j.off, err)
				} else {
					b.err = compressBlock(buf[:l], b, &zero)
				}
				j.done <- b
			}
		}()
	}
	go func() {
		defer close(order)
		defer close(jobs)
		for off := int64(0); off < size; off += xzBlock {
			j := job{off, make(chan *xzBlockOut, 1)}
			select {
			case order <- j:
			case <-ctx.Done():
				return
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
	stream := append(append([]byte{}, xzMagic...), xzFlags...)
	stream = binary.LittleEndian.AppendUint32(stream, crc32.ChecksumIEEE(xzFlags))
	if _, err := cw.Write(stream); err != nil {
		return nil, err
	}
	var blocks []blockRecord
	for j := range order {
		var b *xzBlockOut
		select {
		case b = <-j.done:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		if b.err != nil {
			return nil, b.err
		}
		blocks = append(blocks, blockRecord{off: cw.n, header: b.header, length: int64(len(b.header) + len(b.data) + xzCheck),
			usize: b.usize, unpadded: b.unpadded, check: b.check, sum: b.sum})
		for _, p := range [][]byte{b.header, b.data, b.check[:]} {
			if _, err := cw.Write(p); err != nil {
				return nil, err
			}
		}
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	tail := xzIndexAndFooter(blocks)
	indexOff := cw.n
	if _, err := cw.Write(tail); err != nil {
		return nil, err
	}
	total := cw.n
	return func(ctx context.Context, r io.ReaderAt, fileSize int64) error {
		return verifyXZ(ctx, r, fileSize, total, stream, tail, indexOff, blocks)
	}, nil
}

// blockRecord is what the read-back needs to know of a written block.
type blockRecord struct {
	off, length     int64 // in the file: header, data, padding and check
	header          []byte
	usize, unpadded int64
	check           [xzCheck]byte
	sum             [32]byte
}

// zeroBlocks remembers the compressed form of an all-zero block: a card
// is mostly unused space, and LZMA2 output depends only on the input.
type zeroBlocks struct {
	mu   sync.Mutex
	outs map[int]*xzBlockOut
}

// compressBlock fills b with the xz block of p.
func compressBlock(p []byte, b *xzBlockOut, zero *zeroBlocks) error {
	if allZero(p) {
		zero.mu.Lock()
		defer zero.mu.Unlock()
		if z, ok := zero.outs[len(p)]; ok {
			*b = *z
			return nil
		}
		if err := compressBlockData(p, b); err != nil {
			return err
		}
		if zero.outs == nil {
			zero.outs = map[int]*xzBlockOut{}
		}
		z := *b
		zero.outs[len(p)] = &z
		return nil
	}
	return compressBlockData(p, b)
}

// compressBlockData makes the LZMA2 data of one block. LZMA2 can store a
// chunk of up to 64 KiB as it is, and ulikunitz/xz's encoder manages only
// about 1 MB/s on data that does not compress (it tries LZMA first), so
// each 64 KiB segment that looks incompressible (compressed files,
// firmware, random bytes) is stored, and each run of the others is
// compressed by a fresh lzma.Writer2, whose first chunk resets dictionary,
// state and properties, as the format allows anywhere in a block.
func compressBlockData(p []byte, b *xzBlockOut) error {
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
	b.header = xzBlockHeader(csize, int64(len(p)))
	b.unpadded = int64(len(b.header)) + csize + xzCheck
	for (int64(len(b.header))+int64(data.Len()))%4 != 0 {
		data.WriteByte(0)
	}
	b.data = data.Bytes()
	binary.LittleEndian.PutUint64(b.check[:], crc64.Checksum(p, crc64Table))
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
func xzIndexAndFooter(blocks []blockRecord) []byte {
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
	footer = append(footer, xzFlags...)
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
// the footer must be the bytes written, and every block, decoded from the
// file by ulikunitz/xz's LZMA2 reader in parallel, must have the header
// written, decode to exactly its image bytes (sha256) and carry its CRC64.
func verifyXZ(ctx context.Context, r io.ReaderAt, fileSize, total int64, head, tail []byte, indexOff int64, blocks []blockRecord) error {
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
				if err := verifyBlock(r, blocks[i]); err != nil {
					errs <- fmt.Errorf("block %d of %d (image bytes %d-%d): %w", i+1, len(blocks), int64(i)*xzBlock, int64(i)*xzBlock+blocks[i].usize, err)
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

func verifyBlock(r io.ReaderAt, b blockRecord) error {
	raw := make([]byte, b.length)
	if _, err := r.ReadAt(raw, b.off); err != nil {
		return err
	}
	if !bytes.Equal(raw[:len(b.header)], b.header) {
		return fmt.Errorf("%w: block header differs from what was written", errXZCorrupt)
	}
	csize := b.unpadded - int64(len(b.header)) - xzCheck
	lr, err := lzma.Reader2Config{DictCap: xzDictCap}.NewReader2(bytes.NewReader(raw[len(b.header) : int64(len(b.header))+csize]))
	if err != nil {
		return err
	}
	h := sha256.New()
	c := crc64.New(crc64Table)
	n, err := io.Copy(io.MultiWriter(h, c), lr)
	if err != nil {
		return fmt.Errorf("%w: %v", errXZCorrupt, err)
	}
	if !lr.EOS() {
		return fmt.Errorf("%w: LZMA2 data has no end marker", errXZCorrupt)
	}
	if n != b.usize || !bytes.Equal(h.Sum(nil), b.sum[:]) {
		return fmt.Errorf("decodes to other bytes than the image's (%d bytes, want %d)", n, b.usize)
	}
	check := raw[len(raw)-xzCheck:]
	if !bytes.Equal(check, b.check[:]) || binary.LittleEndian.Uint64(check) != c.Sum64() {
		return fmt.Errorf("%w: CRC64 check differs", errXZCorrupt)
	}
	for _, p := range raw[int64(len(b.header))+csize : len(raw)-xzCheck] {
		if p != 0 {
			return fmt.Errorf("%w: block padding is not zero", errXZCorrupt)
		}
	}
	return nil
}
