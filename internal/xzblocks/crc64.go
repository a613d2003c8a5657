package xzblocks

import (
	"hash"
	"hash/crc64"
	"sync"

	"github.com/magibake/magibake/internal/zeros"
)

// zeroRun is the length of the all-zero pieces crc64Digest skips over.
const zeroRun = 64 << 10

// crc64Digest is hash/crc64's ECMA CRC-64 (xz's default check) that steps
// over all-zero 64 KiB pieces in one matrix product instead of feeding them
// byte by byte: an empty part of a card is a block of zeros whose check
// took as long as decoding it (about 1.7 GB/s, half the time of such a
// block; BenchmarkCRC64).
type crc64Digest struct{ crc uint64 }

// zeroRunOp is the linear map that appending zeroRun zero bytes applies to
// the CRC register (without the pre- and post-inversion crc64.Update does):
// column i is the register 1<<i after the run.
var zeroRunOp = sync.OnceValue(func() *[64]uint64 {
	var op [64]uint64
	z := make([]byte, zeroRun)
	for i := range op {
		op[i] = ^crc64.Update(^(uint64(1) << i), crc64Table, z)
	}
	return &op
})

func (d *crc64Digest) Write(p []byte) (int, error) {
	n := len(p)
	for len(p) > 0 {
		k := min(len(p), zeroRun)
		if k == zeroRun && zeros.All(p[:k]) {
			op, r := zeroRunOp(), ^d.crc
			var out uint64
			for i := 0; r != 0; i, r = i+1, r>>1 {
				out ^= op[i] & -(r & 1)
			}
			d.crc = ^out
		} else {
			d.crc = crc64.Update(d.crc, crc64Table, p[:k])
		}
		p = p[k:]
	}
	return n, nil
}

// Sum appends the CRC big-endian, as hash/crc64 does.
func (d *crc64Digest) Sum(b []byte) []byte {
	c := d.crc
	return append(b, byte(c>>56), byte(c>>48), byte(c>>40), byte(c>>32), byte(c>>24), byte(c>>16), byte(c>>8), byte(c))
}

func (d *crc64Digest) Reset()         { d.crc = 0 }
func (d *crc64Digest) Size() int      { return crc64.Size }
func (d *crc64Digest) BlockSize() int { return 1 }

var _ hash.Hash = (*crc64Digest)(nil)
