package build

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/fixture"
)

// TestOutputFormats bakes caspar from the fixture as .img, .img.zst and
// .img.xz. Each compressed card, decompressed by the real tool, must be the
// .img card byte for byte, pass e2fsck -fn and fsck.fat -n and hold the
// plan; the xz card must pass xz -t.
func TestOutputFormats(t *testing.T) {
	fixture.RequireTools(t, "xz", "zstd", "e2fsck", "fsck.fat", "debugfs", "mtype")
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
	want := sum(t, raw)
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
			if sum(t, dec) != want {
				t.Fatalf("%s decompresses to other bytes than caspar.img", tc.name)
			}
			card := fixture.OpenCard(t, dec)
			card.Fsck(t)
			card.CheckPlan(t, p)
			if st, _ := os.Stat(out); st.Size() > 200<<20 {
				t.Errorf("%s is %d MiB for a card of 50 MB of data", tc.name, st.Size()>>20)
			}
		})
	}
}
