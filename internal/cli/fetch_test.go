package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/magibake/magibake/internal/fetch"
	"github.com/magibake/magibake/internal/fixture"
)

// pinnedProfiles copies the example profiles into a temp dir with a base:
// line appended to cluster.yaml.
func pinnedProfiles(t *testing.T, baseLine string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "profiles")
	os.MkdirAll(dir, 0o755)
	for _, n := range []string{"cluster", "caspar", "balthasar", "melchior"} {
		b, err := os.ReadFile("../../profiles/" + n + ".yaml")
		if err != nil {
			t.Fatal(err)
		}
		if n == "cluster" && baseLine != "" {
			b = append(b, []byte("\n"+baseLine+"\n")...)
		}
		if err := os.WriteFile(filepath.Join(dir, n+".yaml"), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// serveFile serves path at /base.img.xz on 127.0.0.1 and counts requests.
func serveFile(t *testing.T, path string) (url string, requests *atomic.Int32) {
	t.Helper()
	requests = &atomic.Int32{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		http.ServeFile(w, r, path)
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/base.img.xz", requests
}

func fileSum(t *testing.T, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestFetchCommand(t *testing.T) {
	setEnv(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	src := filepath.Join(t.TempDir(), "payload")
	os.WriteFile(src, []byte(strings.Repeat("not really an image\n", 5000)), 0o644)
	url, _ := serveFile(t, src)
	sum := fileSum(t, src)

	code, stdout, stderr := execute(t, "fetch", "--profiles", pinnedProfiles(t, "base: {url: "+url+", sha256: "+sum+"}"))
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	want := filepath.Join(os.Getenv("XDG_CACHE_HOME"), "magibake", "bases", sum+".img.xz")
	if strings.TrimSpace(stdout) != want {
		t.Errorf("stdout %q, want the cached path %s", stdout, want)
	}
	// Not a terminal: one summary line, no progress redraws.
	if strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, "sha256 ok") || strings.Contains(stderr, "\r") {
		t.Errorf("stderr %q: want one summary line", stderr)
	}

	wrong := strings.Repeat("0", 64)
	code, _, stderr = execute(t, "fetch", "--profiles", pinnedProfiles(t, "base: {url: "+url+", sha256: "+wrong+"}"))
	if code != 3 || !strings.Contains(stderr, "deleted the download") || !strings.Contains(stderr, sum) {
		t.Errorf("wrong pin: exit %d, stderr %q", code, stderr)
	}
	if _, err := os.Stat(filepath.Join(filepath.Dir(want), wrong+".img.xz.part")); !os.IsNotExist(err) {
		t.Errorf("mismatched download kept: %v", err)
	}

	code, _, stderr = execute(t, "fetch")
	if code != 3 || !strings.Contains(stderr, fetch.PinLine) {
		t.Errorf("no pin: exit %d, stderr %q", code, stderr)
	}
}

// TestBuildFetchesPinnedBase: build without --base downloads the pinned base
// once, checks it and bakes from it; the second build uses the cache.
func TestBuildFetchesPinnedBase(t *testing.T) {
	setEnv(t)
	_, imgXZ := fixture.Image(t, "bookworm") // before XDG_CACHE_HOME moves
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	url, requests := serveFile(t, imgXZ)
	profiles := pinnedProfiles(t, "base: {url: "+url+", sha256: "+fileSum(t, imgXZ)+"}")
	out := t.TempDir()
	for i := 1; i <= 2; i++ {
		code, _, stderr := execute(t, "build", "melchior", "--profiles", profiles, "--out-dir", out)
		if code != 0 {
			t.Fatalf("build %d: exit %d: %s", i, code, stderr)
		}
		if _, err := os.Stat(filepath.Join(out, "melchior.img")); err != nil {
			t.Fatal(err)
		}
		if n := requests.Load(); n != 1 {
			t.Errorf("after build %d: %d requests, want 1", i, n)
		}
	}
	// An unknown node fails before any download.
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	code, _, stderr := execute(t, "build", "gaspar", "--profiles", profiles, "--out-dir", out)
	if code != 3 || !strings.Contains(stderr, `unknown node "gaspar"`) || requests.Load() != 1 {
		t.Errorf("unknown node: exit %d, %d requests, stderr %q", code, requests.Load(), stderr)
	}
}
