package image

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

// BenchmarkDevice reads a 64 MiB base through the copy-on-write device in
// 1 MiB reads, clean and with one page in a hundred written (a bake
// writes far fewer), against reading the base itself: the reference the
// ratio is taken against, in the same process.
func BenchmarkDevice(b *testing.B) {
	const size = 64 << 20
	data := make([]byte, size)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range data {
		data[i] = byte(rng.Uint32())
	}
	base := bytes.NewReader(data)
	dirty := NewDevice(base, size)
	page := make([]byte, PageSize)
	for p := int64(0); p < size/PageSize; p += 100 {
		dirty.WriteAt(page, p*PageSize)
	}
	buf := make([]byte, 1<<20)
	for _, bc := range []struct {
		name string
		r    interface {
			ReadAt([]byte, int64) (int, error)
		}
	}{
		{"base (reference)", base},
		{"device clean", NewDevice(base, size)},
		{"device 1% pages written", dirty},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				for off := int64(0); off < size; off += int64(len(buf)) {
					if _, err := bc.r.ReadAt(buf, off); err != nil {
						b.Fatal(err)
					}
				}
			}
		})
	}
}
