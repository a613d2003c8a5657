package testkit

import (
	"os"
	"path/filepath"
	"testing"
)

func TestXZBlocks(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "data")
	data := make([]byte, 3<<20)
	for i := range data {
		data[i] = byte(i * 7 / 5)
	}
	if err := os.WriteFile(p, data, 0o644); err != nil {
		t.Fatal(err)
	}
	Run(t, "xz", "-0", "--block-size=1MiB", "-k", p)
	blocks := XZBlocks(t, p+".xz")
	if len(blocks) != 3 {
		t.Fatalf("%d blocks, want 3: %+v", len(blocks), blocks)
	}
	for i, b := range blocks {
		if b.UncompressedAt != int64(i)<<20 || b.UncompressedSize != 1<<20 || b.CheckType != "CRC64" || len(b.Check) != 16 || b.Offset < 12 || b.Size <= 0 {
			t.Errorf("block %d: %+v", i, b)
		}
	}
	if got := SHA256File(t, p+".xz"); len(got) != 64 {
		t.Errorf("SHA256File: %q", got)
	}
}
