package fetch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// site serves handlers by path on 127.0.0.1 and counts requests.
func site(t *testing.T, routes map[string]http.HandlerFunc) (base string, requests *atomic.Int32) {
	t.Helper()
	requests = &atomic.Int32{}
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		requests.Add(1)
		if h, ok := routes[r.URL.Path]; ok {
			h(w, r)
			return
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(ts.Close)
	if !strings.HasPrefix(ts.URL, "http://127.0.0.1:") {
		t.Fatalf("test server at %s, want 127.0.0.1", ts.URL)
	}
	return ts.URL, requests
}

func body(b []byte) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { w.Write(b) }
}

// lying announces a Content-Length off by delta from what it sends, and
// ignores Range.
func lying(b []byte, delta int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(b)+delta))
		w.Write(b)
	}
}

func redirect(to string) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, to, http.StatusFound) }
}

// lyingChunks announces a Content-Length off by delta and writes in small
// pieces, so a short announcement cuts the body at exactly that length.
func lyingChunks(b []byte, delta int) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Length", strconv.Itoa(len(b)+delta))
		for i := 0; i < len(b); i += 1000 {
			if _, err := w.Write(b[i:min(i+1000, len(b))]); err != nil {
				return
			}
		}
	}
}

// leftovers lists what a failed fetch left in dir.
func leftovers(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	return names
}

func TestFetchPublished(t *testing.T) {
	data, sum := payload(300000)
	_, other := payload(7)
	line := sum + "  base.img.xz\n"
	tests := []struct {
		name   string
		routes map[string]http.HandlerFunc
		url    string // default /base.img.xz
		want   string // error substring; "" for success
		maxReq int32  // at most this many requests (HEAD, .sha256, image); 0: no limit
	}{
		{name: "sha256sum line", routes: map[string]http.HandlerFunc{"/base.img.xz.sha256": body([]byte(line))}},
		{name: "binary marker, CRLF, upper case", routes: map[string]http.HandlerFunc{"/base.img.xz.sha256": body([]byte(strings.ToUpper(sum) + " *base.img.xz\r\n"))}},
		{name: "several files, ours among them", routes: map[string]http.HandlerFunc{"/base.img.xz.sha256": body([]byte(other + "  x.img.xz\n\n" + sum + "  ./base.img.xz\n"))}},
		{name: "a latest link pins where it leads", routes: map[string]http.HandlerFunc{
			"/base.img.xz.sha256": body([]byte(line)), "/latest": redirect("/base.img.xz")},
			url: "/latest"},
		{name: "HEAD not allowed", routes: map[string]http.HandlerFunc{"/base.img.xz.sha256": body([]byte(line)), "/base.img.xz": func(w http.ResponseWriter, r *http.Request) {
			if r.Method == http.MethodHead {
				http.Error(w, "no", http.StatusMethodNotAllowed)
				return
			}
			w.Write(data)
		}}},

		{name: "missing .sha256", routes: map[string]http.HandlerFunc{},
			want: "no published sha256 for {url}: {url}.sha256: HTTP 404 Not Found", maxReq: 2},
		{name: "missing image", routes: map[string]http.HandlerFunc{"/base.img.xz.sha256": body([]byte(line)), "/base.img.xz": http.NotFound},
			want: "{url}: HTTP 404 Not Found", maxReq: 1},
		{name: ".sha256 of another image", routes: map[string]http.HandlerFunc{"/base.img.xz.sha256": body([]byte(sum + "  other.img.xz\n"))},
			want: ".sha256 gives the sha256 of other.img.xz, not of base.img.xz", maxReq: 2},
		{name: "wrong sha256", routes: map[string]http.HandlerFunc{"/base.img.xz.sha256": body([]byte(other + "  base.img.xz\n"))},
			want: "sha256 mismatch: the download (300000 bytes) has sha256 " + sum + " but {url}.sha256 publishes " + other + "; deleted the download"},
		{name: "not a sha256sum line", routes: map[string]http.HandlerFunc{"/base.img.xz.sha256": body([]byte("<html>moved</html>\n"))},
			want: ".sha256 line 1 is not a sha256sum line", maxReq: 2},
		{name: "short hash", routes: map[string]http.HandlerFunc{"/base.img.xz.sha256": body([]byte(sum[:63] + "  base.img.xz\n"))},
			want: "is not a sha256sum line", maxReq: 2},
		{name: "empty .sha256", routes: map[string]http.HandlerFunc{"/base.img.xz.sha256": body(nil)},
			want: ".sha256 is empty", maxReq: 2},
		{name: "huge .sha256", routes: map[string]http.HandlerFunc{"/base.img.xz.sha256": body([]byte(strings.Repeat(line, 2000)))},
			want: "more than the 65536 bytes expected", maxReq: 2},
		{name: ".sha256 shorter than its Content-Length", routes: map[string]http.HandlerFunc{"/base.img.xz.sha256": lying([]byte(line), 10)},
			want: "unexpected EOF", maxReq: 2},
		{name: ".sha256 redirect loop", routes: map[string]http.HandlerFunc{"/base.img.xz.sha256": redirect("/b.sha256"), "/b.sha256": redirect("/base.img.xz.sha256")},
			want: "redirect loop: {base}/b.sha256 redirects back to {url}.sha256", maxReq: 3},
		{name: "image redirect loop", routes: map[string]http.HandlerFunc{"/base.img.xz.sha256": body([]byte(line)), "/base.img.xz": redirect("/base.img.xz")},
			want: "redirect loop: {url} redirects back to {url}", maxReq: 1},
		{name: "image sends less than its Content-Length", routes: map[string]http.HandlerFunc{"/base.img.xz.sha256": body([]byte(line)), "/base.img.xz": lying(data, 5000)},
			want: "the server announces 305000 bytes (Content-Length) but sends 300000, on every request; deleted the partial download", maxReq: 4},
		{name: "image has more than its Content-Length", routes: map[string]http.HandlerFunc{"/base.img.xz.sha256": body([]byte(line)), "/base.img.xz": lyingChunks(data, -5000)},
			want: "sha256 mismatch: the download (295000 bytes) has sha256", maxReq: 3},
		{name: "image writes past its Content-Length", routes: map[string]http.HandlerFunc{"/base.img.xz.sha256": body([]byte(line)), "/base.img.xz": lying(data, -5000)},
			want: "the server announces 295000 bytes (Content-Length) but sends 0, on every request", maxReq: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, ok := tt.routes["/base.img.xz"]; !ok {
				tt.routes["/base.img.xz"] = body(data)
			}
			base, requests := site(t, tt.routes)
			u := base + "/base.img.xz"
			if tt.url != "" {
				u = base + tt.url
			}
			f := &Fetcher{Dir: filepath.Join(t.TempDir(), "bases")}
			p, pin, got, err := f.FetchPublished(context.Background(), u)
			if tt.maxReq > 0 && requests.Load() > tt.maxReq {
				t.Errorf("%d requests, want at most %d", requests.Load(), tt.maxReq)
			}
			if tt.want != "" {
				want := strings.NewReplacer("{url}", u, "{base}", base).Replace(tt.want)
				if err == nil || !strings.Contains(err.Error(), want) || strings.Contains(err.Error(), "\n") {
					t.Fatalf("err = %v\nwant one line with %q", err, want)
				}
				if left := leftovers(t, f.Dir); len(left) != 0 {
					t.Errorf("left in the cache dir: %v", left)
				}
				t.Log(err)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if pin != base+"/base.img.xz" || got != sum || p != filepath.Join(f.Dir, sum+".img.xz") {
				t.Errorf("got %s, pin %s %s; want %s/base.img.xz, sha256 %s, in the cache", p, pin, got, base, sum)
			}
		})
	}
}

// TestRedirects: Fetch stops a redirect loop and a chain longer than the
// limit on the first attempt, rather than once per attempt.
func TestRedirects(t *testing.T) {
	chain := map[string]http.HandlerFunc{}
	for i := 0; i < 20; i++ {
		chain[fmt.Sprintf("/r%d", i)] = redirect(fmt.Sprintf("/r%d", i+1))
	}
	for _, tt := range []struct {
		name     string
		routes   map[string]http.HandlerFunc
		want     string
		requests int32
	}{
		{"loop", map[string]http.HandlerFunc{"/r0": redirect("/a"), "/a": redirect("/b"), "/b": redirect("/a")},
			"fetch {base}/r0: redirect loop: {base}/b redirects back to {base}/a", 3},
		{"chain", chain, "fetch {base}/r0: more than 10 redirects", 10},
	} {
		t.Run(tt.name, func(t *testing.T) {
			base, requests := site(t, tt.routes)
			f := &Fetcher{Dir: t.TempDir()}
			_, err := f.Fetch(context.Background(), base+"/r0", strings.Repeat("0", 64))
			want := strings.ReplaceAll(tt.want, "{base}", base)
			if err == nil || err.Error() != want {
				t.Fatalf("err = %v, want %s", err, want)
			}
			if n := requests.Load(); n != tt.requests {
				t.Errorf("%d requests, want %d (one attempt)", n, tt.requests)
			}
			if left := leftovers(t, f.Dir); len(left) != 0 {
				t.Errorf("left in the cache dir: %v", left)
			}
		})
	}
}

// TestRangeContentLengthMismatch: a resumed response whose Content-Length
// disagrees with its Content-Range is refused before anything is appended.
func TestRangeContentLengthMismatch(t *testing.T) {
	data, sum := payload(100000)
	base, _ := site(t, map[string]http.HandlerFunc{"/base.img.xz": func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Range", fmt.Sprintf("bytes 50000-99999/%d", len(data)))
		w.Header().Set("Content-Length", "60000")
		w.WriteHeader(http.StatusPartialContent)
		w.Write(data[50000:])
	}})
	f := &Fetcher{Dir: t.TempDir()}
	u := base + "/base.img.xz"
	part := f.Path(u, sum) + ".part"
	os.WriteFile(part, data[:50000], 0o644)
	_, err := f.Fetch(context.Background(), u, sum)
	if err == nil || !strings.Contains(err.Error(), "server sent bytes 50000-99999 with Content-Length 60000") {
		t.Fatalf("err = %v", err)
	}
	if st, err := os.Stat(part); err != nil || st.Size() != 50000 {
		t.Errorf(".part after the refusal: %v %v, want the 50000 bytes it had", st, err)
	}
}
