package image

import (
	"bytes"
	"context"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// TestAdoptFillsCache: a first build with a cache decompresses beside its
// output and fills the cache alongside; the card takes the file over and
// changes it (in the base's data and in a hole). The cache entry must
// still hold the base exactly, for an .img.xz of several blocks (written
// alongside) and of one block (decompressed by streaming, copied after).
func TestAdoptFillsCache(t *testing.T) {
	disk := mkDisk(6<<20, [3]int64{0x0c, 2048, 4096}, [3]int64{0x83, 6144, 4096})
	rand.New(rand.NewSource(9)).Read(disk[1<<20 : 3<<20])
	oneBlock := filepath.Join(t.TempDir(), "one.img")
	os.WriteFile(oneBlock, disk, 0o644)
	if out, err := exec.Command("xz", "-T1", "-0", oneBlock).CombinedOutput(); err != nil {
		t.Fatalf("xz: %v %s", err, out)
	}
	for _, tc := range []struct{ name, xz string }{
		{"several blocks", xzFile(t, t.TempDir(), disk)},
		{"one block", oneBlock + ".xz"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, cacheDir := t.TempDir(), filepath.Join(t.TempDir(), "decompressed")
			b, err := OpenBaseWith(context.Background(), tc.xz, Options{TempDir: out, CacheDir: cacheDir, Adoptable: true})
			if err != nil {
				t.Fatal(err)
			}
			if b.Cached || b.fill == nil {
				t.Fatalf("Cached %v, filling %v: want a fresh decompression that fills the cache", b.Cached, b.fill != nil)
			}
			dev := NewDevice(b, b.Size())
			card := bytes.Clone(disk)
			for _, off := range []int64{1<<20 + 100, 2<<20 - 10, 5 << 20} { // data, across pages, a hole
				p := bytes.Repeat([]byte{0xee}, 5000)
				dev.WriteAt(p, off)
				copy(card[off:], p)
			}
			if _, _, ok := dev.Adopt(t.TempDir()); ok {
				t.Fatal("adopted into another directory")
			}
			f, lock, ok := dev.Adopt(out)
			if !ok {
				t.Fatal("not adopted")
			}
			for _, r := range dev.Changed() {
				if _, err := f.WriteAt(card[r[0]:r[1]], r[0]); err != nil {
					t.Fatal(err)
				}
			}
			f.Close()
			if err := b.Close(); err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(f.Name()); !bytes.Equal(got, card) {
				t.Errorf("Close changed or removed the adopted card %s", f.Name())
			}
			lock.Release()
			entries, _ := filepath.Glob(filepath.Join(cacheDir, "*.img"))
			if len(entries) != 1 {
				t.Fatalf("cache holds %v, want one entry", entries)
			}
			if got, _ := os.ReadFile(entries[0]); !bytes.Equal(got, disk) {
				t.Fatalf("cache entry (%d bytes) is not the base (%d bytes)", len(got), len(disk))
			}
			again, err := OpenBaseWith(context.Background(), tc.xz, Options{TempDir: out, CacheDir: cacheDir, Adoptable: true})
			if err != nil {
				t.Fatal(err)
			}
			defer again.Close()
			if !again.Cached {
				t.Error("second open did not use the cache entry")
			}
		})
	}
}

// TestNotAdopted: a base no card took over (a build whose last card is
// not an .img) still fills the cache and leaves no temp file behind.
func TestNotAdopted(t *testing.T) {
	disk := mkDisk(6<<20, [3]int64{0x0c, 2048, 4096}, [3]int64{0x83, 6144, 4096})
	xzPath := xzFile(t, t.TempDir(), disk)
	out, cacheDir := t.TempDir(), filepath.Join(t.TempDir(), "decompressed")
	b, err := OpenBaseWith(context.Background(), xzPath, Options{TempDir: out, CacheDir: cacheDir, Adoptable: true})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if left, _ := os.ReadDir(out); len(left) > 0 {
		t.Errorf("%s holds %d files after the base was closed", out, len(left))
	}
	entries, _ := filepath.Glob(filepath.Join(cacheDir, "*.img"))
	hidden, _ := filepath.Glob(filepath.Join(cacheDir, ".magibake-*"))
	if len(entries) != 1 || len(hidden) > 0 {
		t.Fatalf("cache holds %v and temp files %v, want one entry", entries, hidden)
	}
	if got, _ := os.ReadFile(entries[0]); !bytes.Equal(got, disk) {
		t.Fatal("cache entry is not the base")
	}
}
