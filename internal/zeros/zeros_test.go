package zeros

import "testing"

func TestAll(t *testing.T) {
	for n := 0; n <= 100; n++ {
		b := make([]byte, n)
		if !All(b) {
			t.Fatalf("%d zero bytes: not all zero", n)
		}
		for i := range b {
			b[i] = 1
			if All(b) {
				t.Fatalf("%d bytes with byte %d set: all zero", n, i)
			}
			b[i] = 0
		}
	}
}

func BenchmarkAll(b *testing.B) {
	buf := make([]byte, 1<<20)
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		if !All(buf) {
			b.Fatal("not zero")
		}
	}
}
