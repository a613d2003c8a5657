package tempfile

import (
	"os"
	"path/filepath"
	"testing"
)

// TestSweep: a locked temp file survives a Sweep, the same file once its
// lock is released (as when its maker dies) is removed, and files that do
// not match the patterns are never touched.
func TestSweep(t *testing.T) {
	dir := t.TempDir()
	live, liveLock, err := Create(dir, ".a.img.magibake-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	live.WriteString("live")
	live.Close() // the lock outlives the file's own descriptor
	dead, deadLock, err := Create(dir, ".b.img.magibake-*.tmp")
	if err != nil {
		t.Fatal(err)
	}
	dead.WriteString("dead!")
	dead.Close()
	deadLock.Release()
	// Not made by Create, so never locked: stale as soon as seen.
	old := filepath.Join(dir, ".magibake-base-1.img")
	other := filepath.Join(dir, "caspar.img")
	for _, p := range []string{old, other} {
		if err := os.WriteFile(p, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}

	got := Sweep(dir, ".*.magibake-*.tmp", ".magibake-base-*.img")
	want := map[string]int64{dead.Name(): 5, old: 1}
	if len(got) != len(want) {
		t.Errorf("Sweep removed %v, want %v", got, want)
	}
	for _, r := range got {
		if size, ok := want[r.Path]; !ok || size != r.Size {
			t.Errorf("Sweep removed %v, want %v", r, want)
		}
	}
	for _, p := range []string{live.Name(), other} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("%s: %v (removed by Sweep, but it is in use or not a temp file)", p, err)
		}
	}
	liveLock.Release()
	if got := Sweep(dir, ".*.magibake-*.tmp"); len(got) != 1 || got[0].Path != live.Name() {
		t.Errorf("after its lock was released, Sweep removed %v, want %s", got, live.Name())
	}
}
