// Package xzblocks reads .xz files by their index: it finds every block from the
// stream footers and indexes at the end of the file, then decodes blocks
// independently, so they can be decoded in parallel (streaming, or straight
// into a file) and on demand (random reads).
//
// Only what Raspberry Pi OS images use is supported: LZMA2 blocks without
// BCJ or delta filters, with check None, CRC32, CRC64 or SHA-256. Anything
// else is refused with an error naming it.
package xzblocks

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"

	"github.com/magibake/magibake/internal/compression"
	"github.com/magibake/magibake/internal/zeros"
)

// ErrFormat marks input that is not a well-formed xz file this package can
// decode; the wrapping message says what is wrong and where.
var ErrFormat = errors.New("xz")

var (
	footerMagic = []byte{'Y', 'Z'}
)

const (
	streamHeaderLen = 12
	streamFooterLen = 12
	// maxIndexLen bounds the memory an index may ask for: a 2.7 GiB image
	// in 1 MiB blocks has an index of about 20 KiB.
	maxIndexLen = 64 << 20
)

// Check types of the xz format.
const (
	CheckNone   = 0x00
	CheckCRC32  = 0x01
	CheckCRC64  = 0x04
	CheckSHA256 = 0x0a
)

// Block is one xz block as the index describes it.
type Block struct {
	// Offset is where the block header starts in the file.
	Offset int64
	// UnpaddedSize is header + compressed data + check, without padding.
	UnpaddedSize int64
	// UncompressedOffset is where the block's data starts in the output.
	UncompressedOffset int64
	// UncompressedSize is how many bytes the block decodes to.
	UncompressedSize int64
	// Check is the check type of the block's stream.
	Check byte
}

// Index lists every block of every stream of an xz file, in file order.
type Index struct {
	Blocks []Block
	// Streams is the number of xz streams (concatenated files).
	Streams int
	// Size is the total decompressed size.
	Size int64
}

func errorf(format string, args ...any) error {
	return fmt.Errorf("%w: "+format, append([]any{ErrFormat}, args...)...)
}

func checkSize(check byte) (int, error) {
	switch check {
	case CheckNone:
		return 0, nil
	case CheckCRC32:
		return 4, nil
	case CheckCRC64:
		return 8, nil
	case CheckSHA256:
		return 32, nil
	}
	return 0, errorf("unsupported check type %#x (only None, CRC32, CRC64 and SHA-256)", check)
}

// ReadIndex reads the stream footers and indexes of the xz file r of the
// given size, walking back from the end over every stream and its padding.
// It validates each stream header against its footer, so a file cut short,
// with trailing garbage or with a damaged index is an error here.
func ReadIndex(r io.ReaderAt, size int64) (*Index, error) {
	var streams [][]Block
	pos := size
	for pos > 0 {
		var err error
		if pos, err = skipPadding(r, pos); err != nil {
			return nil, err
		}
		if pos == 0 {
			if len(streams) == 0 {
				return nil, errorf("no xz stream (only zero bytes)")
			}
			return nil, errorf("stream padding before the first stream")
		}
		blocks, start, err := readStream(r, pos)
		if err != nil {
			return nil, err
		}
		streams = append(streams, blocks)
		pos = start
	}
	if len(streams) == 0 {
		return nil, errorf("empty file")
	}
	idx := &Index{Streams: len(streams)}
	for i := len(streams) - 1; i >= 0; i-- {
		for _, b := range streams[i] {
			b.UncompressedOffset = idx.Size
			if idx.Size+b.UncompressedSize < idx.Size {
				return nil, errorf("index: uncompressed size overflows")
			}
			idx.Size += b.UncompressedSize
			idx.Blocks = append(idx.Blocks, b)
		}
	}
	return idx, nil
}

// skipPadding steps back over stream padding (zero bytes, a multiple of
// four) ending at pos.
func skipPadding(r io.ReaderAt, pos int64) (int64, error) {
	buf := make([]byte, 4096)
	for pos > 0 {
		n := min(int64(len(buf)), pos)
		chunk := buf[:n]
		if _, err := r.ReadAt(chunk, pos-n); err != nil {
			return 0, errorf("read at %d: %v", pos-n, err)
		}
		trimmed := bytes.TrimRight(chunk, "\x00")
		zeros := int64(len(chunk) - len(trimmed))
		// Padding comes in 4-byte units; a footer ends with "YZ", never zero.
		zeros -= zeros % 4
		pos -= zeros
		if zeros < n {
			break
		}
	}
	return pos, nil
}

// readStream reads the stream whose footer ends at end and returns its
// blocks (Offset, sizes and Check set) and the offset of its header.
func readStream(r io.ReaderAt, end int64) ([]Block, int64, error) {
	if end < streamHeaderLen+streamFooterLen {
		return nil, 0, errorf("file too short for an xz stream (truncated?)")
	}
	footer := make([]byte, streamFooterLen)
	if _, err := r.ReadAt(footer, end-streamFooterLen); err != nil {
		return nil, 0, errorf("read stream footer: %v", err)
	}
	if !bytes.Equal(footer[10:], footerMagic) {
		return nil, 0, errorf("no stream footer at byte %d (truncated, or data after the stream)", end-streamFooterLen)
	}
	if crc32.ChecksumIEEE(footer[4:10]) != binary.LittleEndian.Uint32(footer) {
		return nil, 0, errorf("stream footer at byte %d: CRC32 mismatch", end-streamFooterLen)
	}
	flags := footer[8:10]
	if flags[0] != 0 || flags[1]&0xf0 != 0 {
		return nil, 0, errorf("stream footer at byte %d: reserved flags set", end-streamFooterLen)
	}
	check := flags[1]
	csize, err := checkSize(check)
	if err != nil {
		return nil, 0, err
	}
	indexLen := (int64(binary.LittleEndian.Uint32(footer[4:])) + 1) * 4
	indexStart := end - streamFooterLen - indexLen
	if indexLen > maxIndexLen || indexStart < streamHeaderLen {
		return nil, 0, errorf("stream footer at byte %d: index size %d does not fit the file", end-streamFooterLen, indexLen)
	}
	raw := make([]byte, indexLen)
	if _, err := r.ReadAt(raw, indexStart); err != nil {
		return nil, 0, errorf("read index: %v", err)
	}
	blocks, err := parseIndex(raw, indexStart)
	if err != nil {
		return nil, 0, err
	}
	var blocksLen int64
	for i := range blocks {
		b := &blocks[i]
		if b.UnpaddedSize < 5+int64(csize) {
			return nil, 0, errorf("index at byte %d: block %d has impossible size %d", indexStart, i, b.UnpaddedSize)
		}
		b.Check = check
		b.Offset = blocksLen // relative until the stream start is known
		blocksLen += (b.UnpaddedSize + 3) &^ 3
		if blocksLen > indexStart {
			return nil, 0, errorf("index at byte %d: blocks larger than the file", indexStart)
		}
	}
	start := indexStart - blocksLen - streamHeaderLen
	if start < 0 {
		return nil, 0, errorf("index at byte %d: blocks larger than the file", indexStart)
	}
	header := make([]byte, streamHeaderLen)
	if _, err := r.ReadAt(header, start); err != nil {
		return nil, 0, errorf("read stream header: %v", err)
	}
	if !bytes.Equal(header[:6], compression.XZMagic) {
		return nil, 0, errorf("no stream header at byte %d where the index puts it (damaged index?)", start)
	}
	if !bytes.Equal(header[6:8], flags) || crc32.ChecksumIEEE(header[6:8]) != binary.LittleEndian.Uint32(header[8:]) {
		return nil, 0, errorf("stream header at byte %d does not match its footer", start)
	}
	for i := range blocks {
		blocks[i].Offset += start + streamHeaderLen
	}
	return blocks, start, nil
}

// parseIndex decodes an index field (indicator, records, padding, CRC32).
func parseIndex(raw []byte, at int64) ([]Block, error) {
	bad := func(what string) error { return errorf("index at byte %d: %s", at, what) }
	if len(raw) < 8 || raw[0] != 0 {
		return nil, bad("no index indicator")
	}
	body := raw[:len(raw)-4]
	if crc32.ChecksumIEEE(body) != binary.LittleEndian.Uint32(raw[len(raw)-4:]) {
		return nil, bad("CRC32 mismatch")
	}
	p := body[1:]
	count, n := uvarint(p)
	if n <= 0 || count > uint64(len(p)/2) {
		return nil, bad("bad record count")
	}
	p = p[n:]
	blocks := make([]Block, count)
	for i := range blocks {
		unpadded, n := uvarint(p)
		if n <= 0 {
			return nil, bad("bad record")
		}
		p = p[n:]
		uncomp, n := uvarint(p)
		if n <= 0 {
			return nil, bad("bad record")
		}
		p = p[n:]
		if unpadded > 1<<62 || uncomp > 1<<62 {
			return nil, bad("record out of range")
		}
		blocks[i] = Block{UnpaddedSize: int64(unpadded), UncompressedSize: int64(uncomp)}
	}
	if len(p) > 3 || !zeros.All(p) {
		return nil, bad("bad padding after the records")
	}
	return blocks, nil
}

// uvarint decodes an xz multibyte integer (at most 9 bytes, no redundant
// trailing zero byte); n <= 0 means malformed.
func uvarint(p []byte) (uint64, int) {
	var v uint64
	for i := 0; i < 9 && i < len(p); i++ {
		b := p[i]
		v |= uint64(b&0x7f) << (7 * i)
		if b&0x80 == 0 {
			if b == 0 && i > 0 {
				return 0, -1
			}
			return v, i + 1
		}
	}
	return 0, -1
}
