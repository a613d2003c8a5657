package cli

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/magibake/magibake/internal/fetch"
	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/testkit"
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

func TestFetchCommand(t *testing.T) {
	setEnv(t)
	t.Setenv("XDG_CACHE_HOME", t.TempDir())
	src := filepath.Join(t.TempDir(), "payload")
	os.WriteFile(src, []byte(strings.Repeat("not really an image\n", 5000)), 0o644)
	url, _ := serveFile(t, src)
	sum := testkit.SHA256File(t, src)

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
	profiles := pinnedProfiles(t, "base: {url: "+url+", sha256: "+testkit.SHA256File(t, imgXZ)+"}")
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

// imageSite serves an image and the routes given on 127.0.0.1; the image
// is at /img/base.img.xz unless a route replaces it.
func imageSite(t *testing.T, data []byte, routes map[string]http.HandlerFunc) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if h, ok := routes[r.URL.Path]; ok {
			h(w, r)
			return
		}
		if r.URL.Path == "/img/base.img.xz" {
			w.Write(data)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(ts.Close)
	if !strings.HasPrefix(ts.URL, "http://127.0.0.1:") {
		t.Fatalf("test server at %s, want 127.0.0.1", ts.URL)
	}
	return ts.URL
}

func text(s string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, s) }
}

// cacheLeftovers lists what is in the bases cache under XDG_CACHE_HOME.
func cacheLeftovers(t *testing.T) []string {
	t.Helper()
	entries, _ := os.ReadDir(filepath.Join(os.Getenv("XDG_CACHE_HOME"), "magibake", "bases"))
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

// TestFetchURL: fetch --url takes the sha256 from URL.sha256 and prints
// the path on stdout and the pin line on stderr; every way the server can
// be wrong is exit 3, one line naming the URL, and an empty cache.
func TestFetchURL(t *testing.T) {
	data := []byte(strings.Repeat("not really an image\n", 5000))
	s := sha256.Sum256(data)
	sum := hex.EncodeToString(s[:])
	other := strings.Repeat("0", 64)
	tests := []struct {
		name   string
		routes map[string]http.HandlerFunc
		args   []string // after fetch; {base} is the server
		code   int
		want   string // stderr substring ("" on success)
	}{
		{name: "published sha256", routes: map[string]http.HandlerFunc{"/img/base.img.xz.sha256": text(sum + "  base.img.xz\n")},
			args: []string{"--url", "{base}/img/base.img.xz"}},
		{name: "latest link", routes: map[string]http.HandlerFunc{"/img/base.img.xz.sha256": text(sum + "  base.img.xz\n"),
			"/latest": func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/img/base.img.xz", http.StatusFound)
			}},
			args: []string{"--url", "{base}/latest"}},
		{name: "missing .sha256", args: []string{"--url", "{base}/img/base.img.xz"},
			code: 3, want: "magibake: no published sha256 for {base}/img/base.img.xz: {base}/img/base.img.xz.sha256: HTTP 404 Not Found\n"},
		{name: "wrong .sha256", routes: map[string]http.HandlerFunc{"/img/base.img.xz.sha256": text(other + "  base.img.xz\n")},
			args: []string{"--url", "{base}/img/base.img.xz"},
			code: 3, want: "but {base}/img/base.img.xz.sha256 publishes " + other + "; deleted the download\n"},
		{name: "redirect loop", routes: map[string]http.HandlerFunc{"/loop": func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) }},
			args: []string{"--url", "{base}/loop"},
			code: 3, want: "magibake: {base}/loop: redirect loop: {base}/loop redirects back to {base}/loop\n"},
		{name: "Content-Length larger than sent", routes: map[string]http.HandlerFunc{
			"/img/base.img.xz.sha256": text(sum + "  base.img.xz\n"),
			"/img/base.img.xz": func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(data)+1))
				w.Write(data)
			}},
			args: []string{"--url", "{base}/img/base.img.xz"},
			code: 3, want: fmt.Sprintf("magibake: fetch {base}/img/base.img.xz: the server announces %d bytes (Content-Length) but sends %d, on every request; deleted the partial download\n", len(data)+1, len(data))},
		{name: "Content-Length smaller than sent", routes: map[string]http.HandlerFunc{
			"/img/base.img.xz.sha256": text(sum + "  base.img.xz\n"),
			"/img/base.img.xz": func(w http.ResponseWriter, r *http.Request) {
				w.Header().Set("Content-Length", strconv.Itoa(len(data)-1000)) // a whole number of writes
				for i := 0; i < len(data); i += 1000 {
					if _, err := w.Write(data[i:min(i+1000, len(data))]); err != nil {
						return
					}
				}
			}},
			args: []string{"--url", "{base}/img/base.img.xz"},
			code: 3, want: fmt.Sprintf("sha256 mismatch: the download (%d bytes) has sha256", len(data)-1000)},
		{name: "not http", args: []string{"--url", "ftp://127.0.0.1/x.img.xz"},
			code: 3, want: "magibake: ftp://127.0.0.1/x.img.xz: want an https:// or http:// URL\n"},
		{name: "with --profiles", args: []string{"--url", "{base}/img/base.img.xz", "--profiles", "."},
			code: 2, want: "--url takes no --profiles"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("XDG_CACHE_HOME", t.TempDir())
			base := imageSite(t, data, tt.routes)
			args := []string{"fetch"}
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "{base}", base))
			}
			code, stdout, stderr := execute(t, args...)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, stderr)
			}
			if tt.code != 0 {
				want := strings.ReplaceAll(tt.want, "{base}", base)
				if !strings.Contains(stderr, want) || strings.Count(stderr, "\n") != 1 || stdout != "" {
					t.Errorf("stdout %q, stderr %q: want one line with %q", stdout, stderr, want)
				}
				if left := cacheLeftovers(t); len(left) != 0 {
					t.Errorf("left in the cache: %v", left)
				}
				return
			}
			cached := filepath.Join(os.Getenv("XDG_CACHE_HOME"), "magibake", "bases", sum+".img.xz")
			if stdout != cached+"\n" {
				t.Errorf("stdout %q, want the cached path %s", stdout, cached)
			}
			pin := "base: {url: " + base + "/img/base.img.xz, sha256: " + sum + "}"
			if !strings.Contains(stderr, "\n"+pin+"\n") {
				t.Errorf("stderr %q: want the pin line %q on a line of its own", stderr, pin)
			}
		})
	}
}

// osList is a small Imager OS list with the Lite image and its Legacy
// sibling in the "Raspberry Pi OS (other)" category, nested as in the
// real os_list_imagingutility_v4.json.
func osList(base, liteSum, legacySum string) string {
	return `{"imager": {}, "os_list": [
  {"name": "Raspberry Pi OS (64-bit)", "url": "` + base + `/desktop.img.xz", "image_download_sha256": "` + liteSum + `", "release_date": "2026-10-06"},
  {"name": "Raspberry Pi OS (other)", "subitems": [
    {"name": "Raspberry Pi OS Lite (64-bit)", "url": "` + base + `/img/lite.img.xz", "image_download_sha256": "` + liteSum + `",
     "image_download_size": 100000, "extract_size": 300000, "extract_sha256": "` + strings.Repeat("e", 64) + `", "release_date": "2026-10-06"},
    {"name": "Raspberry Pi OS Lite (32-bit)", "url": "` + base + `/img/armhf.img.xz", "image_download_sha256": "` + liteSum + `", "release_date": "2026-10-06"},
    {"name": "Raspberry Pi OS (Legacy, 64-bit) Lite", "url": "` + base + `/img/legacy.img.xz", "image_download_sha256": "` + legacySum + `", "release_date": "2026-09-15"}]}]}`
}

// TestFetchLatest: --latest and --list read the OS list from 127.0.0.1
// (--os-list or $MAGIBAKE_OS_LIST), never the real one.
func TestFetchLatest(t *testing.T) {
	lite := []byte(strings.Repeat("lite image\n", 9000))
	legacy := []byte(strings.Repeat("legacy image\n", 9000))
	sumOf := func(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }
	liteSum, legacySum, other := sumOf(lite), sumOf(legacy), strings.Repeat("0", 64)
	list := func(liteSum string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, osList("http://"+r.Host, liteSum, legacySum))
		}
	}
	serve := func(b []byte) http.HandlerFunc { return func(w http.ResponseWriter, r *http.Request) { w.Write(b) } }
	good := map[string]http.HandlerFunc{"/list.json": list(liteSum), "/img/lite.img.xz": serve(lite), "/img/legacy.img.xz": serve(legacy)}
	with := func(path string, h http.HandlerFunc) map[string]http.HandlerFunc {
		m := map[string]http.HandlerFunc{}
		for k, v := range good {
			m[k] = v
		}
		m[path] = h
		return m
	}
	tests := []struct {
		name    string
		routes  map[string]http.HandlerFunc
		env     bool // the list URL through $MAGIBAKE_OS_LIST rather than --os-list
		args    []string
		code    int
		stdout  string // {cache}, {base} replaced; for errors: "". --list columns read as " | "
		stderr  string // substring; for errors: the whole message line
		fetched string // sha256 in the cache after success
	}{
		{name: "latest", routes: good, args: []string{"--latest"},
			stdout: "{cache}/" + liteSum + ".img.xz\n", fetched: liteSum,
			stderr: "Raspberry Pi OS Lite (64-bit), released 2026-10-06\nto pin this base, add to cluster.yaml:\nbase: {url: {base}/img/lite.img.xz, sha256: " + liteSum + "}\n"},
		{name: "legacy, list from the environment", routes: good, env: true, args: []string{"--latest", "--legacy"},
			stdout: "{cache}/" + legacySum + ".img.xz\n", fetched: legacySum,
			stderr: "\nbase: {url: {base}/img/legacy.img.xz, sha256: " + legacySum + "}\n"},
		{name: "list", routes: good, args: []string{"--list"},
			stdout: "NAME | RELEASED | URL | SHA256\n" +
				"Raspberry Pi OS Lite (64-bit) | 2026-10-06 | {base}/img/lite.img.xz | " + liteSum + "\n" +
				"Raspberry Pi OS (Legacy, 64-bit) Lite | 2026-09-15 | {base}/img/legacy.img.xz | " + legacySum + "\n"},

		{name: "list without the entry", routes: with("/list.json", serve([]byte(`{"os_list": [{"name": "Raspberry Pi OS (64-bit)", "url": "https://x/d.img.xz"}]}`))),
			args: []string{"--latest"}, code: 3, stderr: `magibake: OS list {base}/list.json has no "Raspberry Pi OS Lite (64-bit)" entry (1 images listed)`},
		{name: "--list without Lite images", routes: with("/list.json", serve([]byte(`{"os_list": []}`))),
			args: []string{"--list"}, code: 3, stderr: `magibake: OS list {base}/list.json has no 64-bit Lite image (0 images listed)`},
		{name: "not an OS list", routes: with("/list.json", serve([]byte(`[1, 2]`))),
			args: []string{"--latest"}, code: 3, stderr: "magibake: OS list {base}/list.json: no \"os_list\" array: not an Imager OS list"},
		{name: "wrong image_download_sha256", routes: with("/list.json", list(other)), args: []string{"--latest"}, code: 3,
			stderr: "magibake: fetch {base}/img/lite.img.xz: sha256 mismatch: the download (99000 bytes) has sha256 " + liteSum + " but the OS list {base}/list.json gives " + other + "; deleted the download"},
		{name: "list redirect loop", routes: with("/list.json", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/list.json", http.StatusFound) }),
			args: []string{"--list"}, code: 3, stderr: "magibake: OS list: {base}/list.json: redirect loop: {base}/list.json redirects back to {base}/list.json"},
		{name: "image announces more than it sends", routes: with("/img/lite.img.xz", func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Length", strconv.Itoa(len(lite)+10))
			w.Write(lite)
		}), args: []string{"--latest"}, code: 3,
			stderr: "magibake: fetch {base}/img/lite.img.xz: the server announces 99010 bytes (Content-Length) but sends 99000, on every request; deleted the partial download"},
		{name: "list missing", routes: map[string]http.HandlerFunc{}, args: []string{"--latest"}, code: 3,
			stderr: "magibake: OS list: {base}/list.json: HTTP 404 Not Found"},

		{name: "--legacy alone", routes: good, args: []string{"--legacy"}, code: 2, stderr: "magibake: fetch: --legacy goes with --latest"},
		{name: "--latest and --url", routes: good, args: []string{"--latest", "--url", "{base}/img/lite.img.xz"}, code: 2,
			stderr: "magibake: fetch: --url and --latest: give one of them"},
		{name: "--list with --profiles", routes: good, args: []string{"--list", "--profiles", "."}, code: 2,
			stderr: "magibake: fetch: --list takes no --profiles or --overlays: it does not read the profiles"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("XDG_CACHE_HOME", t.TempDir())
			cache := filepath.Join(os.Getenv("XDG_CACHE_HOME"), "magibake", "bases")
			base := imageSite(t, nil, tt.routes)
			// Even a test that forgets --os-list must not reach the real list.
			t.Setenv("MAGIBAKE_OS_LIST", "http://127.0.0.1:1/no-list.json")
			args := []string{"fetch"}
			for _, a := range tt.args {
				args = append(args, strings.ReplaceAll(a, "{base}", base))
			}
			if tt.env {
				t.Setenv("MAGIBAKE_OS_LIST", base+"/list.json")
			} else if tt.code != 2 {
				args = append(args, "--os-list", base+"/list.json")
			}
			code, stdout, stderr := execute(t, args...)
			r := strings.NewReplacer("{base}", base, "{cache}", cache)
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, stderr)
			}
			if tt.code != 0 {
				if want := r.Replace(tt.stderr) + "\n"; stderr != want || stdout != "" {
					t.Errorf("stdout %q, stderr\n%q\nwant\n%q", stdout, stderr, want)
				}
				if left := cacheLeftovers(t); len(left) != 0 {
					t.Errorf("left in the cache: %v", left)
				}
				return
			}
			if tt.name == "list" {
				stdout = regexp.MustCompile(`  +`).ReplaceAllString(stdout, " | ") // columns, whatever their width
			}
			if want := r.Replace(tt.stdout); stdout != want {
				t.Errorf("stdout\n%q\nwant\n%q", stdout, want)
			}
			if want := r.Replace(tt.stderr); !strings.Contains(stderr, want) {
				t.Errorf("stderr\n%q\nwant it to contain\n%q", stderr, want)
			}
			left := cacheLeftovers(t)
			if want := []string{tt.fetched + ".img.xz"}; tt.fetched == "" && len(left) != 0 || tt.fetched != "" && strings.Join(left, " ") != want[0] {
				t.Errorf("cache holds %v, want %v", left, tt.fetched)
			}
		})
	}
}

// TestFetchProfileWithoutSHA256: fetch --profiles with a base: that gives
// a url but no sha256 checks the download against URL.sha256 as --url
// does, keeps it in the cache, prints the path on stdout and the line that
// pins it on stderr; every way the server can be wrong is exit 3, one line
// naming the URL, and an empty cache.
func TestFetchProfileWithoutSHA256(t *testing.T) {
	setEnv(t)
	data := []byte(strings.Repeat("not really an image\n", 5000))
	s := sha256.Sum256(data)
	sum := hex.EncodeToString(s[:])
	other := strings.Repeat("0", 64)
	published := text(sum + "  base.img.xz\n")
	tests := []struct {
		name   string
		url    string // base.url; {base} is the server
		routes map[string]http.HandlerFunc
		runs   int // fetches in a row with the same cache; 0 means 1
		code   int
		want   string // stderr: the error line, or a line of the last run's output on success
		pin    string // the URL the pin line names
	}{
		{name: "published sha256", url: "{base}/img/base.img.xz", routes: map[string]http.HandlerFunc{"/img/base.img.xz.sha256": published},
			pin: "{base}/img/base.img.xz"},
		{name: "second fetch from the cache", url: "{base}/img/base.img.xz", routes: map[string]http.HandlerFunc{"/img/base.img.xz.sha256": published},
			runs: 2, want: "{cache}/" + sum + ".img.xz: cached, sha256 ok", pin: "{base}/img/base.img.xz"},
		{name: "latest link", url: "{base}/latest", routes: map[string]http.HandlerFunc{"/img/base.img.xz.sha256": published,
			"/latest": func(w http.ResponseWriter, r *http.Request) {
				http.Redirect(w, r, "/img/base.img.xz", http.StatusFound)
			}},
			pin: "{base}/img/base.img.xz"},
		{name: "missing .sha256", url: "{base}/img/base.img.xz",
			code: 3, want: "magibake: no published sha256 for {base}/img/base.img.xz: {base}/img/base.img.xz.sha256: HTTP 404 Not Found"},
		{name: ".sha256 of another file", url: "{base}/img/base.img.xz", routes: map[string]http.HandlerFunc{"/img/base.img.xz.sha256": text(sum + "  other.img.xz\n")},
			code: 3, want: "magibake: {base}/img/base.img.xz.sha256 gives the sha256 of other.img.xz, not of base.img.xz"},
		{name: "wrong .sha256", url: "{base}/img/base.img.xz", routes: map[string]http.HandlerFunc{"/img/base.img.xz.sha256": text(other + "  base.img.xz\n")},
			code: 3, want: "magibake: fetch {base}/img/base.img.xz: sha256 mismatch: the download (100000 bytes) has sha256 " + sum + " but {base}/img/base.img.xz.sha256 publishes " + other + "; deleted the download"},
		{name: "download cut short", url: "{base}/img/base.img.xz", routes: map[string]http.HandlerFunc{"/img/base.img.xz.sha256": published,
			"/img/base.img.xz": func(w http.ResponseWriter, r *http.Request) { w.Write(data[:len(data)-1000]) }},
			code: 3, want: "magibake: fetch {base}/img/base.img.xz: sha256 mismatch: the download (99000 bytes) has sha256 "},
		{name: "redirect loop", url: "{base}/loop", routes: map[string]http.HandlerFunc{
			"/loop": func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/loop", http.StatusFound) }},
			code: 3, want: "magibake: {base}/loop: redirect loop: {base}/loop redirects back to {base}/loop"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("XDG_CACHE_HOME", t.TempDir())
			cache := filepath.Join(os.Getenv("XDG_CACHE_HOME"), "magibake", "bases")
			var gets atomic.Int32
			routes := map[string]http.HandlerFunc{"/img/base.img.xz": func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet {
					gets.Add(1)
				}
				w.Write(data)
			}}
			for k, v := range tt.routes {
				routes[k] = v
			}
			base := imageSite(t, nil, routes)
			r := strings.NewReplacer("{base}", base, "{cache}", cache)
			profiles := pinnedProfiles(t, "base: {url: "+r.Replace(tt.url)+"}")
			var code int
			var stdout, stderr string
			for i := 0; i < max(tt.runs, 1); i++ {
				code, stdout, stderr = execute(t, "fetch", "--profiles", profiles)
			}
			if code != tt.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tt.code, stderr)
			}
			if tt.code != 0 {
				if want := r.Replace(tt.want); !strings.HasPrefix(stderr, want) || strings.Count(stderr, "\n") != 1 || stdout != "" {
					t.Errorf("stdout %q, stderr\n%q\nwant one line starting\n%q", stdout, stderr, want)
				}
				if left := cacheLeftovers(t); len(left) != 0 {
					t.Errorf("left in the cache: %v", left)
				}
				return
			}
			if want := filepath.Join(cache, sum+".img.xz") + "\n"; stdout != want {
				t.Errorf("stdout %q, want the cached path %q", stdout, want)
			}
			hint := "base in cluster.yaml has no sha256; to pin it, replace its base: line with: base: {url: " + r.Replace(tt.pin) + ", sha256: " + sum + "}\n"
			if !strings.HasSuffix(stderr, "\n"+hint) {
				t.Errorf("stderr\n%q\nwant its last line to be\n%q", stderr, hint)
			}
			if tt.want != "" && !strings.Contains(stderr, r.Replace(tt.want)+"\n") {
				t.Errorf("stderr\n%q\nwant a line\n%q", stderr, r.Replace(tt.want))
			}
			if n := gets.Load(); n != 1 {
				t.Errorf("image downloaded %d times in %d fetches, want once", n, max(tt.runs, 1))
			}
			if left := cacheLeftovers(t); len(left) != 1 || left[0] != sum+".img.xz" {
				t.Errorf("cache holds %v, want %s.img.xz", left, sum)
			}
		})
	}
}

// TestBuildProfileWithoutSHA256: build without --base, on a profile whose
// base: has a url but no sha256, fetches the base checked against
// URL.sha256, bakes from it, uses the cache the next time and says each
// time how to pin it; a missing or wrong .sha256 fails before the bake:
// exit 3, one line, no card, an empty cache.
func TestBuildProfileWithoutSHA256(t *testing.T) {
	setEnv(t)
	_, imgXZ := fixture.Image(t, "bookworm") // before XDG_CACHE_HOME moves
	data, err := os.ReadFile(imgXZ)
	if err != nil {
		t.Fatal(err)
	}
	sum := testkit.SHA256File(t, imgXZ)
	other := strings.Repeat("0", 64)
	tests := []struct {
		name    string
		sumFile string // served as /img/base.img.xz.sha256; "" for none
		want    string // the error line; "" for success
	}{
		{name: "published sha256", sumFile: sum + "  base.img.xz\n"},
		{name: "missing .sha256",
			want: "magibake: no published sha256 for {base}/img/base.img.xz: {base}/img/base.img.xz.sha256: HTTP 404 Not Found\n"},
		{name: "wrong .sha256", sumFile: other + " *base.img.xz\n",
			want: fmt.Sprintf("magibake: fetch {base}/img/base.img.xz: sha256 mismatch: the download (%d bytes) has sha256 %s but {base}/img/base.img.xz.sha256 publishes %s; deleted the download\n", len(data), sum, other)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("XDG_CACHE_HOME", t.TempDir())
			var gets atomic.Int32
			routes := map[string]http.HandlerFunc{"/img/base.img.xz": func(w http.ResponseWriter, r *http.Request) {
				if r.Method == http.MethodGet {
					gets.Add(1)
				}
				w.Write(data)
			}}
			if tt.sumFile != "" {
				routes["/img/base.img.xz.sha256"] = text(tt.sumFile)
			}
			base := imageSite(t, nil, routes)
			profiles := pinnedProfiles(t, "base: {url: "+base+"/img/base.img.xz}")
			out := t.TempDir()
			runs := 2
			if tt.want != "" {
				runs = 1
			}
			for i := 1; i <= runs; i++ {
				code, stdout, stderr := execute(t, "build", "melchior", "--profiles", profiles, "--out-dir", out)
				if tt.want != "" {
					want := strings.ReplaceAll(tt.want, "{base}", base)
					if code != 3 || stderr != want || stdout != "" {
						t.Errorf("exit %d, stdout %q, stderr\n%q\nwant exit 3 and\n%q", code, stdout, stderr, want)
					}
					if left, _ := os.ReadDir(out); len(left) != 0 {
						t.Errorf("left in the output directory: %v", left)
					}
					if left := cacheLeftovers(t); len(left) != 0 {
						t.Errorf("left in the cache: %v", left)
					}
					return
				}
				if code != 0 {
					t.Fatalf("build %d: exit %d: %s", i, code, stderr)
				}
				if _, err := os.Stat(filepath.Join(out, "melchior.img")); err != nil {
					t.Fatal(err)
				}
				hint := "\nbase in cluster.yaml has no sha256; to pin it, replace its base: line with: base: {url: " + base + "/img/base.img.xz, sha256: " + sum + "}\n"
				if !strings.Contains(stderr, hint) {
					t.Errorf("build %d: stderr\n%s\nlacks the line%s", i, stderr, hint)
				}
				if n := gets.Load(); n != 1 {
					t.Errorf("after build %d: image downloaded %d times, want once", i, n)
				}
			}
		})
	}
}
