package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/testkit"
)

// TestReproducibleAnywhere bakes caspar twice with the built binary, in two
// environments that differ in everything a card must not depend on: time
// zone, umask, locale, home and cache directories, working directory,
// GOMAXPROCS, the wall clock (the second build starts 2.5 s after the
// first, more than FAT's 2 s resolution; no SOURCE_DATE_EPOCH), and where
// the user overlay is kept (an absolute path, then a copy in another
// directory given by a relative path). The overlay adds a directory on the
// boot partition and one on the root file system. The two cards must have
// the same sha256. What a card does depend on is the same in both: base,
// profile and secrets, overlay content, host key state, magibake.
func TestReproducibleAnywhere(t *testing.T) {
	testkit.RequireTools(t, "sh")
	_, imgXZ := fixture.Image(t, "bookworm")
	bin := buildBinary(t)
	overlay := t.TempDir()
	for name, content := range map[string]string{
		"common/boot/extra/notes.txt":        "a directory of our own on the boot partition\n",
		"common/root/opt/magibake-test/.dir": "",
		"common/root/opt/magibake-test/data": "a directory of our own on the root\n",
	} {
		p := filepath.Join(overlay, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	state := t.TempDir() // the nodes' host keys: an input, shared
	common := []string{"PATH=" + os.Getenv("PATH"), "MAGIBAKE_STATE=" + state}
	for _, kv := range demoEnv {
		if !strings.HasPrefix(kv, "SOURCE_DATE_EPOCH=") { // the wall clock must not matter
			common = append(common, kv)
		}
	}
	// The second environment's overlay: a copy, elsewhere, named relative
	// to its working directory.
	work2 := t.TempDir()
	copyTree(t, overlay, filepath.Join(work2, "my overlays"))
	envs := []struct {
		name, umask, cwd, overlays string
		env                        []string
	}{
		{"first", "022", t.TempDir(), overlay, []string{"TZ=UTC", "LANG=C", "LC_ALL=C", "GOMAXPROCS=1",
			"HOME=" + t.TempDir(), "XDG_CACHE_HOME=" + t.TempDir()}},
		{"second", "077", work2, "my overlays", []string{"TZ=America/St_Johns", "LANG=de_DE.UTF-8", "LC_ALL=de_DE.UTF-8",
			"HOME=" + t.TempDir(), "XDG_CACHE_HOME=" + t.TempDir()}},
	}
	var sums []string
	for i, e := range envs {
		if i > 0 {
			time.Sleep(2500 * time.Millisecond)
		}
		out := filepath.Join(t.TempDir(), "caspar.img")
		cmd := exec.Command("sh", "-c", `umask "$1"; shift; exec "$@"`, "sh", e.umask,
			bin, "build", "caspar", "--base", imgXZ, "--overlays", e.overlays, "-o", out)
		cmd.Dir = e.cwd
		cmd.Env = append(append([]string{}, common...), e.env...)
		if msg, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s build: %v\n%s", e.name, err, msg)
		}
		sums = append(sums, testkit.SHA256File(t, out))
	}
	if sums[0] != sums[1] {
		t.Errorf("the same node baked in two environments differs: sha256 %s and %s", sums[0], sums[1])
	}
}

// copyTree copies the regular files under src to dst, keeping their modes.
func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	err := filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.WriteFile(target, b, info.Mode().Perm()); err != nil {
			return err
		}
		return os.Chmod(target, info.Mode().Perm())
	})
	if err != nil {
		t.Fatal(err)
	}
}
