package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/testkit"
)

// TestOutputFormats bakes caspar from the fixture as .img, .img.zst and
// .img.xz. Each compressed card, decompressed by the real tool, must be the
// .img card byte for byte, pass e2fsck -fn and fsck.fat -n and hold the
// plan; the xz card must pass xz -t.
func TestOutputFormats(t *testing.T) {
	testkit.RequireTools(t, "xz", "zstd", "e2fsck", "fsck.fat", "debugfs", "mtype")
	img, _ := fixture.Image(t, "bookworm")
	bake := func(name string) string {
		out := filepath.Join(t.TempDir(), name)
		o := Options{Sources: Sources{Getenv: getenv}, Nodes: []string{"caspar"}, Output: out, Base: img, Version: "test"}
		if err := Run(context.Background(), o); err != nil {
			t.Fatalf("build -o %s: %v", name, err)
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), ".*")); len(left) > 0 {
			t.Errorf("temp files left: %v", left)
		}
		return out
	}
	raw := bake("caspar.img")
	want := testkit.SHA256File(t, raw)
	p, _, err := Options{Sources: Sources{Getenv: getenv}}.Plan("caspar", mustMTime(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		decompress func(in, out string) *exec.Cmd
	}{
		{"caspar.img.zst", func(in, out string) *exec.Cmd { return exec.Command("zstd", "-q", "-d", in, "-o", out) }},
		{"caspar.img.xz", func(in, out string) *exec.Cmd {
			return exec.Command("sh", "-c", `xz -T0 -dc "$1" | cp --sparse=always /dev/stdin "$2"`, "sh", in, out)
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := bake(tc.name)
			if strings.HasSuffix(tc.name, ".xz") {
				if b, err := exec.Command("xz", "-t", out).CombinedOutput(); err != nil {
					t.Fatalf("xz -t %s: %v\n%s", out, err, b)
				}
			}
			dec := filepath.Join(t.TempDir(), "decoded.img")
			if b, err := tc.decompress(out, dec).CombinedOutput(); err != nil {
				t.Fatalf("decompress %s: %v\n%s", out, err, b)
			}
			if testkit.SHA256File(t, dec) != want {
				t.Fatalf("%s decompresses to other bytes than caspar.img", tc.name)
			}
			card := fixture.OpenCard(t, dec)
			card.Fsck(t)
			card.HoldsPlan(t, p)
			if st, _ := os.Stat(out); st.Size() > 200<<20 {
				t.Errorf("%s is %d MiB for a card of 50 MB of data", tc.name, st.Size()>>20)
			}
		})
	}
}

// TestXZFromXZ bakes caspar from the fixture's multi-block .img.xz into an
// .img.xz, read block by block, with and without a pin: the result passes
// xz -t, decodes to exactly the .img baked from the same base, holds a
// clean card, and keeps all but a few of the base's blocks verbatim.
func TestXZFromXZ(t *testing.T) {
	testkit.RequireTools(t, "xz", "e2fsck", "fsck.fat", "debugfs", "mtype")
	_, baseXZ := fixture.Image(t, "bookworm")
	var log strings.Builder
	cache := ""
	bake := func(name, profiles string) string {
		out := filepath.Join(t.TempDir(), name)
		o := Options{Sources: Sources{Profiles: profiles, Getenv: getenv, Log: &log}, Nodes: []string{"caspar"}, Output: out, Base: baseXZ, Version: "test", CacheDir: cache}
		if err := Run(context.Background(), o); err != nil {
			t.Fatalf("build -o %s: %v", name, err)
		}
		return out
	}
	baseBlocks := map[string]bool{}
	for _, k := range testkit.XZBlockKeys(t, baseXZ) {
		baseBlocks[k] = true
	}
	for _, pinned := range []bool{false, true} {
		log.Reset()
		profiles := ""
		if pinned {
			profiles = pinnedProfiles(t, testkit.SHA256File(t, baseXZ))
		}
		cache = ""
		want := testkit.SHA256File(t, bake("caspar.img", profiles))
		// Planned after the first bake, which saved caspar's host key in
		// the state directory: a plan made before it holds a key made in
		// memory that no card carries.
		p, _, err := Options{Sources: Sources{Getenv: getenv}}.Plan("caspar", mustMTime(t))
		if err != nil {
			t.Fatal(err)
		}
		log.Reset()
		cache = filepath.Join(t.TempDir(), "cache")
		out := bake("caspar.img.xz", profiles)
		// Only an unpinned base has its copied blocks decoded in the
		// read-back, and so earns the cache's marker of a checked file.
		if marks, _ := filepath.Glob(filepath.Join(cache, "*.verified")); len(marks) != map[bool]int{false: 1, true: 0}[pinned] {
			t.Errorf("pinned=%v: markers %v", pinned, marks)
		}
		if !strings.Contains(log.String(), "block by block") {
			t.Errorf("pinned=%v: the base was decompressed up front:\n%s", pinned, log.String())
		}
		if b, err := exec.Command("xz", "-t", out).CombinedOutput(); err != nil {
			t.Fatalf("xz -t %s: %v\n%s", out, err, b)
		}
		dec := filepath.Join(t.TempDir(), "decoded.img")
		if b, err := exec.Command("sh", "-c", `xz -T0 -dc "$1" | cp --sparse=always /dev/stdin "$2"`, "sh", out, dec).CombinedOutput(); err != nil {
			t.Fatalf("decompress %s: %v\n%s", out, err, b)
		}
		if testkit.SHA256File(t, dec) != want {
			t.Fatalf("pinned=%v: caspar.img.xz decompresses to other bytes than caspar.img", pinned)
		}
		card := fixture.OpenCard(t, dec)
		card.Fsck(t)
		card.HoldsPlan(t, p)
		blocks := testkit.XZBlockKeys(t, out)
		kept := 0
		for _, k := range blocks {
			if baseBlocks[k] {
				kept++
			}
		}
		if kept < len(baseBlocks)*3/4 {
			t.Errorf("pinned=%v: %d of %d output blocks are the base's (base has %d distinct): not copied", pinned, kept, len(blocks), len(baseBlocks))
		}
		t.Logf("pinned=%v: %d of %d output blocks copied from the base", pinned, kept, len(blocks))
	}
}

// pinnedProfiles is a copy of the default profiles whose cluster pins the
// base's sha256.
func pinnedProfiles(t *testing.T, sha string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"cluster", "caspar", "balthasar", "melchior"} {
		b, err := os.ReadFile(filepath.Join("..", "..", "profiles", n+".yaml"))
		if err != nil {
			t.Fatal(err)
		}
		if n == "cluster" {
			b = append(b, "\nbase: {url: https://example.invalid/base.img.xz, sha256: "+sha+"}\n"...)
		}
		if err := os.WriteFile(filepath.Join(dir, n+".yaml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestProgress: a build reports the decompression of the base and the
// writing of each card, each from nothing to its total, never backwards,
// and ends every display it starts.
func TestProgress(t *testing.T) {
	_, baseXZ := fixture.Image(t, "bookworm")
	st, err := os.Stat(baseXZ)
	if err != nil {
		t.Fatal(err)
	}
	for _, out := range []string{"caspar.img", "caspar.img.xz", "caspar.img.zst"} {
		type phase struct {
			last, total int64
			backwards   bool
			ended       int
		}
		var mu sync.Mutex
		phases := map[string]*phase{}
		progress := func(what string) (func(done, total int64), func()) {
			mu.Lock()
			defer mu.Unlock()
			p := &phase{}
			phases[what] = p
			return func(done, total int64) {
					mu.Lock()
					defer mu.Unlock()
					p.backwards = p.backwards || done < p.last
					p.last, p.total = done, total
				}, func() {
					mu.Lock()
					defer mu.Unlock()
					p.ended++
				}
		}
		o := Options{Sources: Sources{Getenv: getenv}, Nodes: []string{"caspar"}, Output: filepath.Join(t.TempDir(), out),
			Base: baseXZ, Version: "test", CacheDir: filepath.Join(t.TempDir(), "cache"), Progress: progress}
		if err := Run(context.Background(), o); err != nil {
			t.Fatal(err)
		}
		want := map[string]int64{"write " + out: 0}
		if !strings.HasSuffix(out, ".xz") { // an .img.xz card reads the base block by block
			want["decompress "+filepath.Base(baseXZ)] = st.Size()
		}
		for what, total := range want {
			p := phases[what]
			switch {
			case p == nil:
				t.Errorf("%s: no %q display (had %v)", out, what, phases)
			case p.backwards || p.ended != 1 || p.last != p.total || p.total == 0 || total > 0 && p.total != total:
				t.Errorf("%s: %q went to %d of %d (want %d), backwards %v, ended %d times", out, what, p.last, p.total, total, p.backwards, p.ended)
			}
		}
	}
}
