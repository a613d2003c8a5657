package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/testkit"
)

// TestBuildCachesDecompressedBase: the first build from an .img.xz
// decompresses it into the user cache, the second does not decompress and
// bakes the same card, and --no-cache decompresses without the cache.
func TestBuildCachesDecompressedBase(t *testing.T) {
	setEnv(t)
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600")
	_, imgXZ := fixture.Image(t, "bookworm")
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	entries := func() []string {
		m, _ := filepath.Glob(filepath.Join(cache, "magibake", "decompressed", "*.img"))
		return m
	}
	decompressed := "decompressed " + imgXZ + " ("
	cached := ") already decompressed in the cache"

	var cards []string
	for i, c := range []struct {
		args   []string
		want   string
		unwant string
	}{
		{nil, decompressed, cached},
		{nil, cached, decompressed},
		{[]string{"--no-cache"}, decompressed, cached},
	} {
		out := t.TempDir()
		code, _, stderr := execute(t, append([]string{"build", "caspar", "--base", imgXZ, "--out-dir", out}, c.args...)...)
		if code != 0 {
			t.Fatalf("build %d: exit %d: %s", i+1, code, stderr)
		}
		if !strings.Contains(stderr, c.want) || strings.Contains(stderr, c.unwant) {
			t.Errorf("build %d %v: log %q, want %q and not %q", i+1, c.args, stderr, c.want, c.unwant)
		}
		if e := entries(); len(e) != 1 {
			t.Errorf("after build %d the cache holds %v, want one decompressed base", i+1, e)
		}
		cards = append(cards, testkit.SHA256File(t, filepath.Join(out, "caspar.img")))
		if left, _ := filepath.Glob(filepath.Join(out, ".magibake-base-*")); len(left) > 0 {
			t.Errorf("build %d left %v", i+1, left)
		}
	}
	if cards[0] != cards[1] || cards[1] != cards[2] {
		t.Errorf("the cards differ: %v", cards)
	}
	if _, err := os.Stat(imgXZ); err != nil {
		t.Fatal(err)
	}
}
