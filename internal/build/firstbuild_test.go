package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/testkit"
)

// TestFirstBuildWithCache: a first build decompresses the base beside its
// outputs, writes its last .img card into that file and fills the cache
// from it alongside. The cache entry must be exactly the decompressed base
// (not the card written into the same file), the output directory must
// hold only the cards, and a re-bake from the entry must give the same
// cards byte for byte.
func TestFirstBuildWithCache(t *testing.T) {
	testkit.RequireTools(t, "xz", "e2fsck", "fsck.fat", "debugfs", "mtype")
	_, baseXZ := fixture.Image(t, "bookworm")
	cache := filepath.Join(t.TempDir(), "cache")
	build := func(out string) string {
		var log strings.Builder
		o := Options{Sources: Sources{Getenv: getenv, Log: &log}, Nodes: []string{"caspar", "melchior"}, OutDir: out,
			Base: baseXZ, Version: "test", CacheDir: cache}
		if err := Run(context.Background(), o); err != nil {
			t.Fatalf("build: %v\n%s", err, log.String())
		}
		return log.String()
	}
	first, second := t.TempDir(), t.TempDir()
	if log := build(first); !strings.Contains(log, "decompressed ") {
		t.Fatalf("first build did not decompress:\n%s", log)
	}
	if left, _ := os.ReadDir(first); len(left) != 2 {
		var names []string
		for _, e := range left {
			names = append(names, e.Name())
		}
		t.Errorf("output directory holds %v, want the two cards", names)
	}
	entries, _ := filepath.Glob(filepath.Join(cache, "*.img"))
	if len(entries) != 1 {
		t.Fatalf("cache holds %v, want one entry", entries)
	}
	want := filepath.Join(t.TempDir(), "base.img")
	if b, err := exec.Command("sh", "-c", `xz -dc "$1" > "$2"`, "sh", baseXZ, want).CombinedOutput(); err != nil {
		t.Fatalf("xz -dc: %v %s", err, b)
	}
	if testkit.SHA256File(t, entries[0]) != testkit.SHA256File(t, want) {
		t.Fatal("the cache entry is not the decompressed base")
	}
	if log := build(second); !strings.Contains(log, "already decompressed in the cache") {
		t.Fatalf("second build did not use the cache:\n%s", log)
	}
	for _, card := range []string{"caspar.img", "melchior.img"} {
		if testkit.SHA256File(t, filepath.Join(first, card)) != testkit.SHA256File(t, filepath.Join(second, card)) {
			t.Errorf("%s from the cache differs from the first build's", card)
		}
	}
	fixture.OpenCard(t, filepath.Join(first, "melchior.img")).Fsck(t)
}
