package output

import (
	"bytes"
	"context"
	"io"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/magibake/magibake/internal/zeros"
)

// layered is a card over a sparse base file with some ranges changed.
type layered struct {
	base    *os.File
	img     []byte // what the card reads as
	changed [][2]int64
}

func (l *layered) ReadAt(p []byte, off int64) (int, error) {
	if off >= int64(len(l.img)) {
		return 0, io.EOF
	}
	n := copy(p, l.img[off:])
	if n < len(p) {
		return n, io.EOF
	}
	return n, nil
}
func (l *layered) BaseFile() *os.File  { return l.base }
func (l *layered) Changed() [][2]int64 { return l.changed }
func allocated(t *testing.T, p string) int64 {
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	return st.Sys().(*syscall.Stat_t).Blocks * 512
}

// TestLayeredOutput: a card over a sparse base file comes out as the
// base's data copied by the kernel plus the changed ranges: byte for byte
// the card, with the base's holes still holes.
func TestLayeredOutput(t *testing.T) {
	dir := t.TempDir()
	const size = 64 << 20
	img := make([]byte, size)
	for _, off := range []int64{0, 5 << 20, 33<<20 + 4096, size - 8192} {
		copy(img[off:], bytes.Repeat([]byte("base data "), 700))
	}
	basePath := filepath.Join(dir, "base.img")
	base, err := os.Create(basePath)
	if err != nil {
		t.Fatal(err)
	}
	defer base.Close()
	for off := 0; off < size; off += 4096 {
		if !zeros.All(img[off : off+4096]) {
			base.WriteAt(img[off:off+4096], int64(off))
		}
	}
	base.Truncate(size)
	card := &layered{base: base, img: bytes.Clone(img)}
	for _, r := range [][2]int64{{4096, 8192}, {20 << 20, 20<<20 + 12288}, {size - 4096, size}} {
		copy(card.img[r[0]:r[1]], bytes.Repeat([]byte{0xa5}, int(r[1]-r[0])))
		card.changed = append(card.changed, r)
	}
	// A byte the card reads but neither the base nor Changed holds: only
	// the layered copy leaves it out, which shows that copy was made.
	card.img[40<<20] = 'X'
	out := filepath.Join(dir, "card.img")
	if err := Write(context.Background(), out, card, size, nil); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if got[40<<20] != 0 {
		t.Fatal("the card was copied a chunk at a time, not as base file plus changes")
	}
	card.img[40<<20] = 0
	if !bytes.Equal(got, card.img) {
		t.Fatal("the output is not the card")
	}
	if a := allocated(t, out); a > 1<<20 {
		t.Errorf("the output allocates %d KiB for about 60 KiB of data: holes were filled", a>>10)
	}
}
