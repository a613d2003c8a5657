package xzblocks

import (
	"bytes"
	"hash/crc64"
	"math/rand/v2"
	"testing"
)

// TestCRC64 gives crc64Digest zero runs of every kind (whole pieces, runs
// that start or end inside a piece, a last byte set) in writes of several
// sizes: its sum must be hash/crc64's.
func TestCRC64(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	random := func(n int) []byte {
		p := make([]byte, n)
		for i := range p {
			p[i] = byte(rng.Uint32())
		}
		return p
	}
	oneAtEnd := make([]byte, 3*zeroRun)
	oneAtEnd[len(oneAtEnd)-1] = 1
	for _, tc := range []struct {
		name string
		data []byte
	}{
		{"empty", nil},
		{"random", random(5*zeroRun + 17)},
		{"zeros", make([]byte, 7*zeroRun)},
		{"zeros, not whole pieces", make([]byte, 3*zeroRun+100)},
		{"one non-zero byte at the end of a run", oneAtEnd},
		{"mixed", bytes.Join([][]byte{random(100), make([]byte, 2*zeroRun+5), random(zeroRun), make([]byte, 4*zeroRun)}, nil)},
	} {
		for _, write := range []int{1 << 30, zeroRun, 4096, 12345} {
			want := crc64.New(crc64Table)
			got := &crc64Digest{}
			for p := tc.data; len(p) > 0; p = p[min(len(p), write):] {
				want.Write(p[:min(len(p), write)])
				got.Write(p[:min(len(p), write)])
			}
			if g, w := got.Sum(nil), want.Sum(nil); !bytes.Equal(g, w) {
				t.Errorf("%s in writes of %d: sum %x, hash/crc64 %x", tc.name, write, g, w)
			}
		}
	}
}

// BenchmarkCRC64 compares crc64Digest with hash/crc64 on a block of zeros
// (an empty part of a card) and on random data.
func BenchmarkCRC64(b *testing.B) {
	for _, in := range []struct {
		name string
		data []byte
	}{{"zeros", make([]byte, 24<<20)}, {"random", bytes.Repeat([]byte{1, 2, 3, 4, 5, 6, 7, 250}, 3<<20)}} {
		b.Run(in.name+"/ours", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			d := &crc64Digest{}
			for b.Loop() {
				d.Write(in.data)
			}
		})
		b.Run(in.name+"/hash_crc64", func(b *testing.B) {
			b.SetBytes(int64(len(in.data)))
			d := crc64.New(crc64Table)
			for b.Loop() {
				d.Write(in.data)
			}
		})
	}
}
