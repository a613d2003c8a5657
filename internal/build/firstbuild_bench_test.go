package build

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// BenchmarkFirstBuild is a first build of caspar.img from the .img.xz in
// $MAGIBAKE_BENCH_BASE (scripts/bench's workload), fresh cache each time:
// a representative bake to profile (-cpuprofile), as docs/bench.md did to
// try profile-guided optimisation.
func BenchmarkFirstBuild(b *testing.B) {
	base := os.Getenv("MAGIBAKE_BENCH_BASE")
	if base == "" {
		b.Skip("MAGIBAKE_BENCH_BASE names no .img.xz (scripts/bench's workload)")
	}
	for b.Loop() {
		dir := b.TempDir()
		o := Options{Sources: Sources{Getenv: getenv}, Nodes: []string{"caspar"}, Output: filepath.Join(dir, "caspar.img"),
			Base: base, Version: "bench", CacheDir: filepath.Join(dir, "cache")}
		if err := Run(context.Background(), o); err != nil {
			b.Fatal(err)
		}
	}
}
