package extents

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"syscall"
	"testing"
)

// TestCopy copies sparse files (data at the start, in the middle, at the
// end, none) into new files: the copy must read back equal and keep the
// holes as holes (no more blocks allocated than the source).
func TestCopy(t *testing.T) {
	const size = 8 << 20
	for _, tc := range []struct {
		name string
		data [][2]int64 // offset, length
	}{
		{"no data", nil},
		{"data at both ends", [][2]int64{{0, 5000}, {size - 70000, 70000}}},
		{"data in the middle", [][2]int64{{3 << 20, 1 << 20}}},
		{"larger than a piece", [][2]int64{{0, size}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			want := make([]byte, size)
			src, err := os.Create(filepath.Join(dir, "src"))
			if err != nil {
				t.Fatal(err)
			}
			defer src.Close()
			for i, d := range tc.data {
				p := bytes.Repeat([]byte{byte(i + 1)}, int(d[1]))
				copy(want[d[0]:], p)
				src.WriteAt(p, d[0])
			}
			src.Truncate(size)
			dst, err := os.Create(filepath.Join(dir, "dst"))
			if err != nil {
				t.Fatal(err)
			}
			defer dst.Close()
			var last int64
			if err := Copy(context.Background(), dst, src, size, func(done int64) { last = done }); err != nil {
				t.Fatal(err)
			}
			dst.Truncate(size)
			got, _ := os.ReadFile(dst.Name())
			if !bytes.Equal(got, want) || last != size {
				t.Fatalf("copy differs from the source (progress ended at %d of %d)", last, size)
			}
			if a, b := blocks(t, src), blocks(t, dst); b > a {
				t.Errorf("copy allocates %d blocks, the source %d: holes filled", b, a)
			}
		})
	}
}

// TestCopyCancelled stops before copying anything.
func TestCopyCancelled(t *testing.T) {
	dir := t.TempDir()
	src, _ := os.Create(filepath.Join(dir, "src"))
	defer src.Close()
	src.Write(make([]byte, 1<<20))
	src.WriteAt([]byte{1}, 0)
	dst, _ := os.Create(filepath.Join(dir, "dst"))
	defer dst.Close()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := Copy(ctx, dst, src, 1<<20, nil); err != context.Canceled {
		t.Fatalf("cancelled copy: %v", err)
	}
}

// TestClone either shares the blocks (a file system with reflinks) or says
// it cannot; it never leaves a wrong copy.
func TestClone(t *testing.T) {
	dir := t.TempDir()
	src, _ := os.Create(filepath.Join(dir, "src"))
	defer src.Close()
	want := bytes.Repeat([]byte("reflink!"), 4096)
	src.Write(want)
	dst, _ := os.Create(filepath.Join(dir, "dst"))
	defer dst.Close()
	if err := Clone(dst, src); err != nil {
		t.Logf("no reflinks here: %v", err)
		if st, _ := dst.Stat(); st.Size() != 0 {
			t.Errorf("failed clone left %d bytes", st.Size())
		}
		return
	}
	if got, _ := os.ReadFile(dst.Name()); !bytes.Equal(got, want) {
		t.Error("clone differs from the source")
	}
}

func blocks(t *testing.T, f *os.File) int64 {
	t.Helper()
	f.Sync()
	var st syscall.Stat_t
	if err := syscall.Fstat(int(f.Fd()), &st); err != nil {
		t.Fatal(err)
	}
	return st.Blocks
}
