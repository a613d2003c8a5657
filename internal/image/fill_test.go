package image

import (
	"bytes"
	"context"
	"math/rand"
	"os"
	"path/filepath"
	"testing"
)

// TestAdoptFillsCache: a first build with a cache decompresses beside its
// output, the card takes the file over and changes it, and the cache entry
// filled alongside must still hold the base exactly, with the card's
// changes in memory (small) or copied after the copy (large), in a hole
// of the base or over its data.
func TestAdoptFillsCache(t *testing.T) {
	disk := mkDisk(6<<20, [3]int64{0x0c, 2048, 4096}, [3]int64{0x83, 6144, 4096})
	rand.New(rand.NewSource(9)).Read(disk[1<<20 : 3<<20])
	xzPath := xzFile(t, t.TempDir(), disk)
	for _, tc := range []struct {
		name    string
		maxKept int64
	}{{"originals kept in memory", maxKept}, {"originals copied after the copy", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			out, cacheDir := t.TempDir(), filepath.Join(t.TempDir(), "decompressed")
			b, err := OpenBaseWith(context.Background(), xzPath, Options{TempDir: out, CacheDir: cacheDir, Adoptable: true})
			if err != nil {
				t.Fatal(err)
			}
			if b.Cached || b.fill == nil {
				t.Fatalf("Cached %v, filling %v: want a fresh decompression that fills the cache", b.Cached, b.fill != nil)
			}
			b.fill.maxKept = tc.maxKept
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
			got, _ := os.ReadFile(entries[0])
			if !bytes.Equal(got, disk) {
				i := 0
				for i < min(len(got), len(disk)) && got[i] == disk[i] {
					i++
				}
				t.Fatalf("cache entry differs from the base at byte %d (%d bytes, want %d): the card's changes leaked into it", i, len(got), len(disk))
			}
			again, err := OpenBaseWith(context.Background(), xzPath, Options{TempDir: out, CacheDir: cacheDir, Adoptable: true})
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

// TestNotAdoptedNoEntry: a base that no card took over (the build failed
// before its last card) leaves no cache entry and no temp file.
func TestNotAdoptedNoEntry(t *testing.T) {
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
	for _, dir := range []string{out, cacheDir} {
		left, _ := filepath.Glob(filepath.Join(dir, "*.img"))
		hidden, _ := filepath.Glob(filepath.Join(dir, ".magibake-*"))
		if len(left)+len(hidden) > 0 {
			t.Errorf("%s holds %v %v after a base no card took over", dir, left, hidden)
		}
	}
}

// TestFillKeepsOriginals drives a fill in the order that tests the kept
// originals: the card changes the file before the copy starts, so only
// the originals the card handed over can put the base back.
func TestFillKeepsOriginals(t *testing.T) {
	base := bytes.Repeat([]byte("magibake"), 1<<17)
	temp := filepath.Join(t.TempDir(), "base.img")
	if err := os.WriteFile(temp, base, 0o644); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(temp, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	changed := [][2]int64{{4096, 8192}, {100000, 100001}}
	fl := newFill(context.Background())
	if err := fl.keep(f, changed); err != nil {
		t.Fatal(err)
	}
	for _, r := range changed {
		f.WriteAt(bytes.Repeat([]byte{0}, int(r[1]-r[0])), r[0])
	}
	cacheDir := t.TempDir()
	fl.run(temp, int64(len(base)), cacheDir, "sum")
	if err := fl.finish(true); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(entryPath(cacheDir, "sum"))
	if err != nil || !bytes.Equal(got, base) {
		t.Fatalf("entry is not the base (%v): the originals were not written over the copy", err)
	}
}
