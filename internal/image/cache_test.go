package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestOpenBaseCached(t *testing.T) {
	dir, tempDir := t.TempDir(), t.TempDir()
	cacheDir := filepath.Join(t.TempDir(), "magibake", "decompressed")
	disk := mkDisk(6<<20, [3]int64{0x0c, 2048, 4096}, [3]int64{0x83, 6144, 4096})
	rand.New(rand.NewSource(4)).Read(disk[1<<20 : 2<<20])
	xzPath := xzFile(t, dir, disk)

	open := func(wantCached bool) {
		t.Helper()
		b, err := OpenBaseWith(context.Background(), xzPath, Options{TempDir: tempDir, CacheDir: cacheDir})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		if b.Cached != wantCached || !b.Compressed {
			t.Errorf("Cached %v, want %v", b.Cached, wantCached)
		}
		got := make([]byte, len(disk))
		if _, err := b.ReadAt(got, 0); err != nil || !bytes.Equal(got, disk) || b.Size() != int64(len(disk)) {
			t.Errorf("content differs (err %v)", err)
		}
		if b.SHA256 == "" {
			t.Error("no SHA256")
		}
		if left, _ := os.ReadDir(tempDir); len(left) > 0 {
			t.Errorf("decompressed beside the output although a cache was given: %d files", len(left))
		}
	}
	open(false)
	entries, _ := filepath.Glob(filepath.Join(cacheDir, "*.img"))
	if len(entries) != 1 {
		t.Fatalf("cache holds %v, want one entry", entries)
	}
	open(true)
	if _, err := os.Stat(entries[0]); err != nil {
		t.Errorf("Close removed the cache entry: %v", err)
	}

	// An entry of the wrong size (a damaged cache) is not used.
	os.Truncate(entries[0], 4096)
	open(false)
	open(true)

	// Cancelled while decompressing into the cache: nothing is left.
	other := xzFile(t, t.TempDir(), append(bytes.Clone(disk), 1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := OpenBaseWith(ctx, other, Options{TempDir: tempDir, CacheDir: cacheDir}); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(cacheDir, "*.img")); len(left) != 1 {
		t.Errorf("cache after a cancelled open: %v", left)
	}

	// A cache that cannot be made says so and names the way around it.
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o644)
	_, err := OpenBaseWith(context.Background(), xzPath, Options{TempDir: tempDir, CacheDir: filepath.Join(notDir, "decompressed")})
	if err == nil || !strings.Contains(err.Error(), "decompressed-base cache") || !strings.Contains(err.Error(), "--no-cache") {
		t.Errorf("unusable cache dir: %v", err)
	}

	// Only the most recent keepCached entries stay.
	for i := range 3 {
		p := xzFile(t, t.TempDir(), append(bytes.Clone(disk), byte(i), 2))
		b, err := OpenBaseWith(context.Background(), p, Options{TempDir: tempDir, CacheDir: cacheDir})
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	if left, _ := filepath.Glob(filepath.Join(cacheDir, "*.img")); len(left) != keepCached {
		t.Errorf("cache holds %d entries, want %d", len(left), keepCached)
	}
}

// TestOnDemand: with OnDemand a multi-block .img.xz is read block by block
// (nothing decompressed up front, reads still exact) and is Verified only
// once MarkVerified recorded it in the cache; a cached decompressed base is
// used in its place; a single-block .img.xz is decompressed as before.
func TestOnDemand(t *testing.T) {
	dir, tempDir := t.TempDir(), t.TempDir()
	cacheDir := filepath.Join(t.TempDir(), "cache")
	disk := mkDisk(6<<20, [3]int64{0x0c, 2048, 4096}, [3]int64{0x83, 6144, 4096})
	rand.New(rand.NewSource(5)).Read(disk[1<<20 : 3<<20])
	xzPath := xzFile(t, dir, disk)
	open := func(o Options) *Base {
		t.Helper()
		o.TempDir = tempDir
		b, err := OpenBaseWith(context.Background(), xzPath, o)
		if err != nil {
			t.Fatal(err)
		}
		got := make([]byte, len(disk))
		if _, err := b.ReadAt(got, 0); err != nil || !bytes.Equal(got, disk) {
			t.Fatalf("content differs (err %v)", err)
		}
		if file, idx := b.CompressedBlocks(); file == nil || idx == nil || len(idx.Blocks) != 6 {
			t.Errorf("CompressedBlocks() gives no index of 6 blocks")
		}
		return b
	}
	for _, tc := range []struct {
		name                   string
		o                      Options
		mark                   bool
		onDemand, verified     bool
		tempFiles, cacheImages int
	}{
		{"no cache", Options{OnDemand: true}, false, true, false, 0, 0},
		{"cache, not verified", Options{OnDemand: true, CacheDir: cacheDir}, true, true, false, 0, 0},
		{"cache, marked verified", Options{OnDemand: true, CacheDir: cacheDir}, false, true, true, 0, 0},
		{"not on demand", Options{CacheDir: cacheDir}, false, false, true, 0, 1},
		{"decompressed base cached", Options{OnDemand: true, CacheDir: cacheDir}, false, false, true, 0, 1},
	} {
		b := open(tc.o)
		if b.OnDemand != tc.onDemand || b.Verified != tc.verified {
			t.Errorf("%s: OnDemand %v Verified %v, want %v %v", tc.name, b.OnDemand, b.Verified, tc.onDemand, tc.verified)
		}
		if tc.mark {
			b.MarkVerified(tc.o.CacheDir)
		}
		b.Close()
		left, _ := os.ReadDir(tempDir)
		imgs, _ := filepath.Glob(filepath.Join(cacheDir, "*.img"))
		if len(left) != tc.tempFiles || len(imgs) != tc.cacheImages {
			t.Errorf("%s: %d temp files, %d cache entries; want %d, %d", tc.name, len(left), len(imgs), tc.tempFiles, tc.cacheImages)
		}
	}

	single := filepath.Join(t.TempDir(), "single.img.xz")
	if out, err := exec.Command("sh", "-c", `xz -T1 -0 -c "$1" > "$2"`, "sh", filepath.Join(dir, "disk.img"), single).CombinedOutput(); err != nil {
		t.Fatalf("xz: %v %s", err, out)
	}
	b, err := OpenBaseWith(context.Background(), single, Options{TempDir: tempDir, OnDemand: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	if file, idx := b.CompressedBlocks(); b.OnDemand || !b.Verified || file != nil || idx != nil {
		t.Errorf("single block: OnDemand %v Verified %v XZ %v %v", b.OnDemand, b.Verified, file, idx)
	}
}

// TestRememberedSum: with a cache, the sha256 of an .img.xz is remembered
// by the file's identity and not computed again, until the file changes;
// it is used only to find the decompressed entry (no blocks of the file
// are offered for copying then). An .img.xz read on demand and a raw .img
// are hashed every time: the card is made of their current bytes.
func TestRememberedSum(t *testing.T) {
	dir, cacheDir := t.TempDir(), filepath.Join(t.TempDir(), "cache")
	disk := mkDisk(4<<20, [3]int64{0x0c, 2048, 2048}, [3]int64{0x83, 4096, 2048})
	xzPath, rawPath := xzFile(t, dir, disk), filepath.Join(dir, "disk.img")
	open := func(p string, onDemand bool) *Base {
		t.Helper()
		b, err := OpenBaseWith(context.Background(), p, Options{TempDir: dir, CacheDir: cacheDir, OnDemand: onDemand})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { b.Close() })
		return b
	}
	real := open(xzPath, false).SHA256
	var mine string
	sums, _ := filepath.Glob(filepath.Join(cacheDir, "*"+sumSuffix))
	for _, s := range sums {
		if b, _ := os.ReadFile(s); string(b) == real {
			mine = s
		}
	}
	if mine == "" {
		t.Fatalf("no remembered sum in %v", sums)
	}
	// A remembered sum that does not match the file (here: no entry under
	// it, as when the entry was evicted) is never attached to bytes nobody
	// hashed: the file is decompressed and hashed, and its own sum replaces
	// the remembered one.
	fake := strings.Repeat("ab", 32)
	os.WriteFile(mine, []byte(fake), 0o644)
	var warned []string
	b, err := OpenBaseWith(context.Background(), xzPath, Options{TempDir: dir, CacheDir: cacheDir, Warn: func(s string) { warned = append(warned, s) }})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	if b.SHA256 != real || b.Cached || len(warned) != 1 || !strings.Contains(warned[0], "not "+fake+" as remembered for it") {
		t.Errorf("remembered sum without its entry: sum %s (file's %s), cached %v, warned %q", b.SHA256, real, b.Cached, warned)
	}
	if got, _ := os.ReadFile(mine); string(got) != real {
		t.Errorf("remembered %s after the file was hashed, want %s", got, real)
	}
	// An entry under the remembered sum is found by it, the file unread;
	// then no blocks of the file are offered for copying.
	os.WriteFile(mine, []byte(fake), 0o644)
	os.Rename(entryPath(cacheDir, real), entryPath(cacheDir, fake))
	recordIdentity(entryPath(cacheDir, fake))
	b = open(xzPath, false)
	if b.SHA256 != fake || !b.Cached {
		t.Errorf("sum %s, cached %v: want the remembered %s finding its entry", b.SHA256, b.Cached, fake)
	}
	if got := open(xzPath, true).SHA256; got != real {
		t.Errorf("on demand: sum %s, want the file's %s", got, real)
	}
	if got, want := open(rawPath, false).SHA256, fmt.Sprintf("%x", sha256.Sum256(disk)); got != want {
		t.Errorf("raw .img: sum %s, want the file's %s", got, want)
	}
	// Rewritten in place with its old mtime: the ctime still moves.
	st, _ := os.Stat(xzPath)
	data, _ := os.ReadFile(xzPath)
	time.Sleep(10 * time.Millisecond)
	os.WriteFile(xzPath, data, 0o644)
	os.Chtimes(xzPath, st.ModTime(), st.ModTime())
	if got := open(xzPath, false).SHA256; got != real {
		t.Errorf("after the file was rewritten (mtime kept), sum %s, want %s", got, real)
	}
}

// TestEvictKeepsEachKind: recording a sum or a marker never costs a
// decompressed entry its place.
func TestEvictKeepsEachKind(t *testing.T) {
	dir := t.TempDir()
	for i, name := range []string{"a.img", "b.img", "s1" + sumSuffix, "m1" + verifiedSuffix} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, nil, 0o644)
		at := time.Now().Add(time.Duration(i-10) * time.Minute)
		os.Chtimes(p, at, at)
	}
	for _, keep := range []string{"s2" + sumSuffix, "m2" + verifiedSuffix} {
		p := filepath.Join(dir, keep)
		os.WriteFile(p, nil, 0o644)
		evict(dir, p)
	}
	if imgs, _ := filepath.Glob(filepath.Join(dir, "*.img")); len(imgs) != keepCached {
		t.Errorf("entries left: %v, want %d", imgs, keepCached)
	}
}

// TestCheckSumBeforeCaching: a base that CheckSum refuses is neither
// decompressed into the cache nor allowed to evict what is there.
func TestCheckSumBeforeCaching(t *testing.T) {
	dir, cacheDir := t.TempDir(), filepath.Join(t.TempDir(), "cache")
	disk := mkDisk(4<<20, [3]int64{0x0c, 2048, 2048}, [3]int64{0x83, 4096, 2048})
	good := xzFile(t, t.TempDir(), disk)
	b, err := OpenBaseWith(context.Background(), good, Options{TempDir: dir, CacheDir: cacheDir})
	if err != nil {
		t.Fatal(err)
	}
	b.Close()
	before, _ := filepath.Glob(filepath.Join(cacheDir, "*.img"))
	refuse := errors.New("sha256 is not the pinned one")
	for i := range keepCached + 1 {
		bad := xzFile(t, t.TempDir(), append(bytes.Clone(disk), byte(i), 7))
		_, err := OpenBaseWith(context.Background(), bad, Options{TempDir: dir, CacheDir: cacheDir, CheckSum: func(string) error { return refuse }})
		if !errors.Is(err, refuse) {
			t.Fatalf("refused base: error %v", err)
		}
	}
	after, _ := filepath.Glob(filepath.Join(cacheDir, "*.img"))
	if len(after) != 1 || len(before) != 1 || after[0] != before[0] {
		t.Errorf("cache before %v, after refused bases %v", before, after)
	}
	if left, _ := os.ReadDir(dir); len(left) > 0 {
		t.Errorf("left beside the output: %d files", len(left))
	}
}

// TestCacheEntryChanged: an entry changed after it was written (same size:
// mounted and edited, or written by a tool) is noticed by its identity,
// said so in one line, and decompressed again; so is an entry without a
// record of how it was written.
func TestCacheEntryChanged(t *testing.T) {
	dir, cacheDir := t.TempDir(), filepath.Join(t.TempDir(), "cache")
	disk := mkDisk(4<<20, [3]int64{0x0c, 2048, 2048}, [3]int64{0x83, 4096, 2048})
	rand.New(rand.NewSource(5)).Read(disk[1<<20 : 2<<20])
	xzPath := xzFile(t, dir, disk)
	open := func(wantCached bool, wantWarning string) {
		t.Helper()
		var warned []string
		b, err := OpenBaseWith(context.Background(), xzPath, Options{TempDir: dir, CacheDir: cacheDir, Warn: func(s string) { warned = append(warned, s) }})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		got := make([]byte, len(disk))
		if _, err := b.ReadAt(got, 0); err != nil || !bytes.Equal(got, disk) {
			t.Errorf("content differs from the base (err %v)", err)
		}
		if b.Cached != wantCached {
			t.Errorf("cached %v, want %v", b.Cached, wantCached)
		}
		switch {
		case wantWarning == "" && len(warned) > 0:
			t.Errorf("warned %q", warned)
		case wantWarning != "" && (len(warned) != 1 || !strings.Contains(warned[0], wantWarning)):
			t.Errorf("warned %q, want one line with %q", warned, wantWarning)
		}
	}
	open(false, "")
	open(true, "")
	entries, _ := filepath.Glob(filepath.Join(cacheDir, "*.img"))
	if len(entries) != 1 {
		t.Fatalf("entries %v", entries)
	}
	f, err := os.OpenFile(entries[0], os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	f.WriteAt([]byte("edited"), 1<<20+100)
	f.Close()
	open(false, "cache entry "+entries[0]+" changed since it was written (written inode ")
	open(true, "")
	os.Remove(entries[0] + idSuffix)
	open(false, "changed since it was written (no record of it as written)")
	open(true, "")
}
