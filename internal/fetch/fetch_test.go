package fetch

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"math/rand"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// server serves data at /base.img.xz on 127.0.0.1 and records the Range
// header of every request. dropFirst cuts the first N responses off after
// about half the body, a little earlier each time as a flaky connection
// would (the same cut twice running is a server announcing a size it does
// not send); noRange ignores Range headers.
type server struct {
	data []byte
	opts

	mu     sync.Mutex
	ranges []string
}

type opts struct {
	dropFirst int
	noRange   bool
	status    int // non-zero: answer every request with it
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.ranges = append(s.ranges, r.Header.Get("Range"))
	n := len(s.ranges)
	s.mu.Unlock()
	if s.status != 0 {
		http.Error(w, http.StatusText(s.status), s.status)
		return
	}
	if r.URL.Path != "/base.img.xz" {
		http.NotFound(w, r)
		return
	}
	if n <= s.dropFirst {
		// Promise the whole file, send half, then cut the connection.
		w.Header().Set("Content-Length", strconv.Itoa(len(s.data)))
		w.WriteHeader(http.StatusOK)
		w.Write(s.data[:len(s.data)/2-(n-1)*1000])
		w.(http.Flusher).Flush()
		conn, _, err := w.(http.Hijacker).Hijack()
		if err == nil {
			conn.Close()
		}
		return
	}
	if s.noRange {
		w.Header().Set("Content-Length", strconv.Itoa(len(s.data)))
		w.Write(s.data)
		return
	}
	http.ServeContent(w, r, "base.img.xz", time.Unix(0, 0), bytes.NewReader(s.data))
}

func (s *server) rangesSeen() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.ranges...)
}

func start(t *testing.T, s *server) string {
	t.Helper()
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	if !strings.HasPrefix(ts.URL, "http://127.0.0.1:") {
		t.Fatalf("test server at %s, want 127.0.0.1", ts.URL)
	}
	return ts.URL + "/base.img.xz"
}

func payload(n int) ([]byte, string) {
	b := make([]byte, n)
	rand.New(rand.NewSource(1)).Read(b)
	sum := sha256.Sum256(b)
	return b, hex.EncodeToString(sum[:])
}

func TestFetch(t *testing.T) {
	data, sum := payload(3<<20 + 12345)
	tests := []struct {
		name       string
		srv        opts
		attempts   int
		wantErr    string
		wantRanges []string // Range header of each request
		wantLog    string
	}{
		{name: "normal", wantRanges: []string{""}, wantLog: "fetched "},
		{name: "dropped connection resumes with Range", srv: opts{dropFirst: 1},
			wantRanges: []string{"", "bytes=" + strconv.Itoa(len(data)/2) + "-"}, wantLog: "resumed at 1.5 MiB"},
		{name: "server without Range support restarts", srv: opts{dropFirst: 1, noRange: true},
			wantRanges: []string{"", "bytes=" + strconv.Itoa(len(data)/2) + "-"}, wantLog: "server does not resume; restarted"},
		{name: "404", srv: opts{status: 404}, wantErr: "HTTP 404 Not Found", wantRanges: []string{""}},
		{name: "500 is not retried forever", srv: opts{status: 500}, wantErr: "HTTP 500", wantRanges: []string{""}},
		{name: "gives up after attempts, keeps the part", srv: opts{dropFirst: 10}, attempts: 2,
			wantErr: "after 2 attempts; the partial download", wantRanges: []string{"", "bytes=" + strconv.Itoa(len(data)/2) + "-"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := &server{data: data, opts: tt.srv}
			u := start(t, s)
			var log bytes.Buffer
			f := &Fetcher{Dir: filepath.Join(t.TempDir(), "bases"), Log: &log, Attempts: tt.attempts}
			p, err := f.Fetch(context.Background(), u, sum)
			if got := s.rangesSeen(); strings.Join(got, "|") != strings.Join(tt.wantRanges, "|") {
				t.Errorf("Range headers %q, want %q", got, tt.wantRanges)
			}
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				if _, ok := f.Cached(u, sum); ok {
					t.Error("a failed fetch left a finished file")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if p != filepath.Join(f.Dir, sum+".img.xz") {
				t.Errorf("path %s", p)
			}
			got, _ := os.ReadFile(p)
			if !bytes.Equal(got, data) {
				t.Errorf("downloaded %d bytes, not the served file", len(got))
			}
			if _, err := os.Stat(p + ".part"); !errors.Is(err, os.ErrNotExist) {
				t.Errorf(".part left behind: %v", err)
			}
			if !strings.Contains(log.String(), tt.wantLog) || strings.Count(log.String(), "\n") != 1 {
				t.Errorf("log %q: want one line with %q", log.String(), tt.wantLog)
			}
		})
	}
}

// TestResumeAcrossRuns: a fetch that gave up leaves its .part, and the next
// run asks only for the rest.
func TestResumeAcrossRuns(t *testing.T) {
	data, sum := payload(1<<20 + 7)
	s := &server{data: data, opts: opts{dropFirst: 1}}
	u := start(t, s)
	f := &Fetcher{Dir: t.TempDir(), Attempts: 1}
	if _, err := f.Fetch(context.Background(), u, sum); err == nil || !strings.Contains(err.Error(), "run magibake fetch to resume") {
		t.Fatalf("first run: %v", err)
	}
	part := f.Path(u, sum) + ".part"
	if st, err := os.Stat(part); err != nil || st.Size() != int64(len(data)/2) {
		t.Fatalf(".part after the drop: %v %v", st, err)
	}
	p, err := f.Fetch(context.Background(), u, sum)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Error("resumed file differs")
	}
	want := []string{"", "bytes=" + strconv.Itoa(len(data)/2) + "-"}
	if got := s.rangesSeen(); strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("Range headers %q, want %q", got, want)
	}
}

func TestWrongChecksum(t *testing.T) {
	data, _ := payload(100000)
	_, other := payload(5)
	u := start(t, &server{data: data})
	f := &Fetcher{Dir: t.TempDir()}
	_, err := f.Fetch(context.Background(), u, other)
	if !errors.Is(err, ErrChecksum) || !strings.Contains(err.Error(), "deleted the download") || !strings.Contains(err.Error(), other) {
		t.Fatalf("err = %v", err)
	}
	left, _ := os.ReadDir(f.Dir)
	if len(left) != 0 {
		t.Errorf("files left after a wrong checksum: %v", left)
	}
}

// TestCached: a finished download is re-hashed, not fetched again; a cache
// file that no longer matches is replaced.
func TestCached(t *testing.T) {
	data, sum := payload(200000)
	s := &server{data: data}
	u := start(t, s)
	var log bytes.Buffer
	f := &Fetcher{Dir: t.TempDir(), Log: &log}
	p, err := f.Fetch(context.Background(), u, sum)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.Fetch(context.Background(), u, sum); err != nil {
		t.Fatal(err)
	}
	if n := len(s.rangesSeen()); n != 1 {
		t.Errorf("%d requests, want 1 (second fetch from the cache)", n)
	}
	if !strings.Contains(log.String(), "cached, sha256 ok") {
		t.Errorf("log %q", log.String())
	}
	os.WriteFile(p, []byte("corrupted"), 0o644)
	if _, err := f.Fetch(context.Background(), u, sum); err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Error("corrupted cache file not replaced")
	}
	if n := len(s.rangesSeen()); n != 2 {
		t.Errorf("%d requests, want 2", n)
	}
}

// TestCompletePart: a .part that already holds the whole file (the process
// died before the rename) gets 416 from the server and is checked as is.
func TestCompletePart(t *testing.T) {
	data, sum := payload(50000)
	s := &server{data: data}
	u := start(t, s)
	f := &Fetcher{Dir: t.TempDir()}
	os.WriteFile(f.Path(u, sum)+".part", data, 0o644)
	p, err := f.Fetch(context.Background(), u, sum)
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p); !bytes.Equal(got, data) {
		t.Error("content differs")
	}
	if got := s.rangesSeen(); len(got) != 1 || got[0] != "bytes=50000-" {
		t.Errorf("Range headers %q", got)
	}
}

func TestBadPin(t *testing.T) {
	f := &Fetcher{Dir: t.TempDir()}
	for _, tt := range []struct{ url, sum, want string }{
		{"http://127.0.0.1:1/x.img.xz", "abc", "not 64 hex digits"},
		{"ftp://127.0.0.1/x.img.xz", strings.Repeat("a", 64), "want an https:// or http:// URL"},
	} {
		if _, err := f.Fetch(context.Background(), tt.url, tt.sum); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Fetch(%s, %s) = %v, want %q", tt.url, tt.sum, err, tt.want)
		}
	}
}

func TestPathExtension(t *testing.T) {
	f := &Fetcher{Dir: "/c"}
	sum := strings.Repeat("ab", 32)
	if p := f.Path("https://h/x/a.img", sum); p != "/c/"+sum+".img" {
		t.Error(p)
	}
	if p := f.Path("https://h/x/a.img.xz", strings.ToUpper(sum)); p != "/c/"+sum+".img.xz" {
		t.Error(p)
	}
}
