package image

import (
	"bytes"
	"context"
	"errors"
	"math/rand"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOpenBaseCached(t *testing.T) {
	dir, tempDir := t.TempDir(), t.TempDir()
	cacheDir := filepath.Join(t.TempDir(), "magibake", "decompressed")
	disk := mkDisk(6<<20, [3]int64{0x0c, 2048, 4096}, [3]int64{0x83, 6144, 4096})
	rand.New(rand.NewSource(4)).Read(disk[1<<20 : 2<<20])
	xzPath := xzFile(t, dir, disk)

	open := func(wantCached bool) {
		t.Helper()
		b, err := OpenBaseCached(context.Background(), xzPath, tempDir, cacheDir)
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
	if _, err := OpenBaseCached(ctx, other, tempDir, cacheDir); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	if left, _ := filepath.Glob(filepath.Join(cacheDir, "*")); len(left) != 1 {
		t.Errorf("cache after a cancelled open: %v", left)
	}

	// A cache that cannot be made says so and names the way around it.
	notDir := filepath.Join(t.TempDir(), "file")
	os.WriteFile(notDir, nil, 0o644)
	_, err := OpenBaseCached(context.Background(), xzPath, tempDir, filepath.Join(notDir, "decompressed"))
	if err == nil || !strings.Contains(err.Error(), "decompressed-base cache") || !strings.Contains(err.Error(), "--no-cache") {
		t.Errorf("unusable cache dir: %v", err)
	}

	// Only the most recent keepCached entries stay.
	for i := range 3 {
		p := xzFile(t, t.TempDir(), append(bytes.Clone(disk), byte(i), 2))
		b, err := OpenBaseCached(context.Background(), p, tempDir, cacheDir)
		if err != nil {
			t.Fatal(err)
		}
		b.Close()
	}
	if left, _ := filepath.Glob(filepath.Join(cacheDir, "*")); len(left) != keepCached {
		t.Errorf("cache holds %d entries, want %d", len(left), keepCached)
	}
}
