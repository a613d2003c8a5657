package xzblocks

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"hash"
	"hash/crc32"
	"hash/crc64"
	"io"
	"sync"

	"github.com/ulikunitz/xz/lzma"

	"github.com/magibake/magibake/internal/lzma2"
	"github.com/magibake/magibake/internal/zeros"
)

const lzma2FilterID = 0x21

// maxDictCap bounds the dictionary a block header may ask for, so a hostile
// header cannot make each worker allocate 4 GiB.
const maxDictCap = 1 << 30

var crc64Table = crc64.MakeTable(crc64.ECMA)

// filterNames names the filters xz knows, for the refusal message.
var filterNames = map[uint64]string{
	0x03: "delta", 0x04: "x86 BCJ", 0x05: "PowerPC BCJ", 0x06: "IA-64 BCJ",
	0x07: "ARM BCJ", 0x08: "ARM-Thumb BCJ", 0x09: "SPARC BCJ", 0x0a: "ARM64 BCJ",
	0x0b: "RISC-V BCJ", 0x21: "LZMA2",
}

func newCheck(check byte) hash.Hash {
	switch check {
	case CheckCRC32:
		return crc32.NewIEEE()
	case CheckCRC64:
		return &crc64Digest{}
	case CheckSHA256:
		return sha256.New()
	}
	return nil
}

var checkNames = map[byte]string{CheckNone: "None", CheckCRC32: "CRC32", CheckCRC64: "CRC64", CheckSHA256: "SHA-256"}

// decodeBlock decodes block i of the file r into w, verifying its header,
// sizes, padding and check. buf is scratch space for the copy.
func decodeBlock(r io.ReaderAt, b Block, i int, w io.Writer, buf []byte) error {
	csize, err := checkSize(b.Check)
	if err != nil {
		return err
	}
	first := make([]byte, 1)
	if _, err := r.ReadAt(first, b.Offset); err != nil {
		return errorf("block %d: read header: %v", i, err)
	}
	if first[0] == 0 {
		return errorf("block %d at byte %d: an index where the index says a block is (damaged index?)", i, b.Offset)
	}
	hlen := (int64(first[0]) + 1) * 4
	if hlen+int64(csize) >= b.UnpaddedSize {
		return errorf("block %d at byte %d: header larger than the block", i, b.Offset)
	}
	hdr := make([]byte, hlen)
	if _, err := r.ReadAt(hdr, b.Offset); err != nil {
		return errorf("block %d: read header: %v", i, err)
	}
	if crc32.ChecksumIEEE(hdr[:hlen-4]) != binary.LittleEndian.Uint32(hdr[hlen-4:]) {
		return errorf("block %d at byte %d: header CRC32 mismatch", i, b.Offset)
	}
	compLen := b.UnpaddedSize - hlen - int64(csize)
	dictCap, err := parseBlockHeader(hdr[1:hlen-4], i, compLen, b.UncompressedSize)
	if err != nil {
		return err
	}
	// A dictionary larger than the block's output is never used.
	dictCap = max(lzma.MinDictCap, min(dictCap, b.UncompressedSize))
	if dictCap > maxDictCap {
		return errorf("block %d: dictionary of %d bytes is too large", i, dictCap)
	}

	sum := newCheck(b.Check)
	if b.UncompressedSize <= maxFlat && compLen <= maxFlatIn(b.UncompressedSize) {
		if err := decodeFlat(r, b, i, hlen, compLen, int(dictCap), sum, w); err != nil {
			return err
		}
	} else if err := decodeStream(r, b, i, hlen, compLen, int(dictCap), sum, w, buf); err != nil {
		return err
	}
	pad := (4 - compLen%4) % 4
	tail := make([]byte, pad+int64(csize))
	if _, err := r.ReadAt(tail, b.Offset+hlen+compLen); err != nil {
		return errorf("block %d: read check: %v", i, err)
	}
	if !zeros.All(tail[:pad]) {
		return errorf("block %d: non-zero block padding", i)
	}
	if sum != nil && !bytes.Equal(tail[pad:], stored(sum, b.Check)) {
		return errorf("checksum error for block %d (%s)", i, checkNames[b.Check])
	}
	return nil
}

// maxFlat is the largest block decoded whole into memory by internal/lzma2,
// several times faster than ulikunitz/xz's streaming decoder; xz -T0 makes
// blocks of 3 dictionaries, 24 MiB at -6, 192 MiB at -9, which stream.
const maxFlat = 64 << 20

// maxFlatIn bounds the compressed size of a block decoded whole: LZMA2
// stores what does not compress with 3 bytes per 64 KiB chunk, so anything
// much larger than the output is damage, and is not read into memory.
func maxFlatIn(usize int64) int64 { return usize + usize/1024 + 1<<16 }

// decodeFlat decodes block i, whose LZMA2 data is compLen bytes after its
// hlen-byte header, in memory with internal/lzma2, and writes it to w in
// 1 MiB pieces (the unit of the sparse writer and of cancellation).
func decodeFlat(r io.ReaderAt, b Block, i int, hlen, compLen int64, dictCap int, sum hash.Hash, w io.Writer) error {
	inBuf, outBuf := getBuf(&flatIn, compLen), getBuf(&flatOut, b.UncompressedSize)
	defer flatIn.Put(inBuf)
	defer flatOut.Put(outBuf)
	in := (*inBuf)[:compLen]
	if _, err := r.ReadAt(in, b.Offset+hlen); err != nil {
		return errorf("block %d: read data: %v", i, err)
	}
	// The capacity is the index's size: Decode never writes past it.
	// Whole 1 MiB pieces are hashed and written as soon as they are
	// decoded, still in the CPU's cache; the rest at the end.
	done := 0
	emit := func(out []byte, all bool) error {
		for len(out)-done >= copyBuf || all && done < len(out) {
			p := out[done:min(len(out), done+copyBuf)]
			if sum != nil {
				sum.Write(p)
			}
			if _, err := w.Write(p); err != nil {
				return err
			}
			done += len(p)
		}
		return nil
	}
	var werr error
	out, n, err := lzma2.DecodeFunc((*outBuf)[:0:b.UncompressedSize], in, dictCap, func(out []byte) error {
		werr = emit(out, false)
		return werr
	})
	switch {
	case werr != nil:
		return werr
	case errors.Is(err, lzma2.ErrTooLong):
		return errorf("block %d decodes to more than the %d bytes the index says", i, b.UncompressedSize)
	case err != nil:
		return errorf("block %d: %v", i, err)
	case int64(len(out)) != b.UncompressedSize:
		return errorf("block %d decodes to %d bytes, the index says %d", i, len(out), b.UncompressedSize)
	case int64(n) != compLen:
		return errorf("block %d: data after the LZMA2 end marker", i)
	}
	return emit(out, true)
}

// flatIn and flatOut keep decodeFlat's input and output buffers for the
// next block: allocating them anew had the runtime clear 24 MiB per block
// (7% of the time of an empty block), and they are written in full before
// being read.
var flatIn, flatOut sync.Pool

// getBuf is a buffer of pool with room for n bytes.
func getBuf(pool *sync.Pool, n int64) *[]byte {
	if p, ok := pool.Get().(*[]byte); ok && int64(cap(*p)) >= n {
		return p
	}
	b := make([]byte, n)
	return &b
}

// decodeStream decodes block i with ulikunitz/xz's LZMA2 reader, a buffer
// at a time: for blocks too large to hold whole.
func decodeStream(r io.ReaderAt, b Block, i int, hlen, compLen int64, dictCap int, sum hash.Hash, w io.Writer, buf []byte) error {
	src := bufio.NewReaderSize(io.NewSectionReader(r, b.Offset+hlen, compLen), 1<<18)
	lr, err := lzma.Reader2Config{DictCap: dictCap}.NewReader2(src)
	if err != nil {
		return errorf("block %d: %v", i, err)
	}
	var n int64
	for {
		k, rerr := io.ReadFull(lr, buf)
		if k > 0 {
			n += int64(k)
			if n > b.UncompressedSize {
				return errorf("block %d decodes to more than the %d bytes the index says", i, b.UncompressedSize)
			}
			if sum != nil {
				sum.Write(buf[:k])
			}
			if _, err := w.Write(buf[:k]); err != nil {
				return err
			}
		}
		if rerr == io.EOF || rerr == io.ErrUnexpectedEOF && lr.EOS() {
			break
		}
		if rerr != nil {
			return errorf("block %d: LZMA2 data is corrupt: %v", i, rerr)
		}
	}
	if !lr.EOS() {
		return errorf("block %d: LZMA2 data ends without its end marker", i)
	}
	if n != b.UncompressedSize {
		return errorf("block %d decodes to %d bytes, the index says %d", i, n, b.UncompressedSize)
	}
	if _, err := src.ReadByte(); err != io.EOF {
		return errorf("block %d: data after the LZMA2 end marker", i)
	}
	return nil
}

// stored is the check as the file stores it: CRCs little-endian, SHA-256
// as is (Go's hashes give the CRCs big-endian).
func stored(h hash.Hash, check byte) []byte {
	s := h.Sum(nil)
	if check == CheckCRC32 || check == CheckCRC64 {
		for i, j := 0, len(s)-1; i < j; i, j = i+1, j-1 {
			s[i], s[j] = s[j], s[i]
		}
	}
	return s
}

// parseBlockHeader checks the block flags, optional sizes and filter flags
// (p excludes the size byte and the CRC32) and returns the LZMA2 dictionary
// size.
func parseBlockHeader(p []byte, i int, compLen, uncompLen int64) (int64, error) {
	flags := p[0]
	p = p[1:]
	if flags&0x3c != 0 {
		return 0, errorf("block %d: reserved header flags set", i)
	}
	if flags&0x40 != 0 {
		v, n := uvarint(p)
		if n <= 0 || int64(v) != compLen {
			return 0, errorf("block %d: compressed size in its header does not match the index", i)
		}
		p = p[n:]
	}
	if flags&0x80 != 0 {
		v, n := uvarint(p)
		if n <= 0 || int64(v) != uncompLen {
			return 0, errorf("block %d: uncompressed size in its header does not match the index", i)
		}
		p = p[n:]
	}
	nfilters := int(flags&3) + 1
	var dictCap int64
	for f := 0; f < nfilters; f++ {
		id, n := uvarint(p)
		if n <= 0 {
			return 0, errorf("block %d: bad filter flags", i)
		}
		p = p[n:]
		plen, n := uvarint(p)
		if n <= 0 || plen > uint64(len(p)-n) {
			return 0, errorf("block %d: bad filter flags", i)
		}
		props := p[n : n+int(plen)]
		p = p[n+int(plen):]
		if id != lzma2FilterID || nfilters != 1 {
			name := filterNames[id]
			if name == "" {
				name = "unknown"
			}
			return 0, errorf("block %d uses the %s filter (%#x); only plain LZMA2 blocks are supported (no BCJ or delta filters)", i, name, id)
		}
		if len(props) != 1 {
			return 0, errorf("block %d: bad LZMA2 filter properties", i)
		}
		dc, err := lzma.DecodeDictCap(props[0])
		if err != nil {
			return 0, errorf("block %d: bad LZMA2 dictionary size", i)
		}
		dictCap = dc
	}
	if !zeros.All(p) {
		return 0, errorf("block %d: non-zero header padding", i)
	}
	return dictCap, nil
}

// DecodeBlockAt decodes the block b of the xz data r (b.Offset is where its
// header starts in r) into w, verifying it as Reader.DecodeBlock does: for
// a block copied from one file into another, checked where it now lies.
func DecodeBlockAt(r io.ReaderAt, b Block, w io.Writer) error {
	return decodeBlock(r, b, 0, w, make([]byte, copyBuf))
}

// Len is the number of bytes block b takes in the file: header,
// compressed data, padding and check.
func (b Block) Len() int64 {
	cs, _ := checkSize(b.Check)
	data := b.UnpaddedSize - int64(cs)
	return (data+3)&^3 + int64(cs)
}

// NewCheck returns the hash of an xz check type (nil for None) and the
// number of bytes it takes in a block.
func NewCheck(check byte) (hash.Hash, int, error) {
	n, err := checkSize(check)
	if err != nil {
		return nil, 0, err
	}
	return newCheck(check), n, nil
}

// CheckBytes is the sum of h as an xz block stores it for check type check.
func CheckBytes(h hash.Hash, check byte) []byte {
	if h == nil {
		return nil
	}
	return stored(h, check)
}
