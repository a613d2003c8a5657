// Package fetch downloads a pinned base image into the user cache, resuming
// interrupted downloads with HTTP Range requests and checking the sha256
// before the file is ever handed out.
package fetch

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"io"
	"net/http"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/magibake/magibake/internal/bytesize"
	"github.com/magibake/magibake/internal/ctxio"
)

// ErrChecksum marks a download whose sha256 is not the pinned one.
var ErrChecksum = errors.New("sha256 mismatch")

// Fetcher downloads base images into Dir, one file per sha256.
type Fetcher struct {
	// Dir holds the finished downloads and the .part files of unfinished ones.
	Dir string
	// Client makes the requests; nil means http.DefaultClient.
	Client *http.Client
	// Log receives progress: a redrawn line when Terminal, else one summary
	// line per download. nil discards it.
	Log      io.Writer
	Terminal bool
	// Attempts is how many requests one Fetch makes before giving up when
	// the connection keeps dropping; 0 means 5. Each attempt resumes.
	Attempts int
}

// DefaultDir is os.UserCacheDir()/magibake/bases.
func DefaultDir() (string, error) {
	dir, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("cache directory: %w", err)
	}
	return filepath.Join(dir, "magibake", "bases"), nil
}

var sumRE = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Path is where the image with that sha256 lives once downloaded.
func (f *Fetcher) Path(rawURL, sum string) string {
	ext := ".img.xz"
	if u, err := url.Parse(rawURL); err == nil && strings.HasSuffix(u.Path, ".img") {
		ext = ".img"
	}
	return filepath.Join(f.Dir, strings.ToLower(sum)+ext)
}

// Cached returns the path of the download if it is already complete.
func (f *Fetcher) Cached(rawURL, sum string) (string, bool) {
	p := f.Path(rawURL, sum)
	st, err := os.Stat(p)
	return p, err == nil && st.Mode().IsRegular()
}

// Fetch makes sure the image at rawURL with the given sha256 is in Dir and
// returns its path. A cached file is re-hashed first; an unfinished .part
// file is resumed. A download whose sha256 differs is deleted.
func (f *Fetcher) Fetch(ctx context.Context, rawURL, sum string) (string, error) {
	return f.FetchFrom(ctx, rawURL, sum, "the profile pins")
}

// FetchFrom is Fetch for a sha256 that does not come from the profile:
// pinnedBy says where it comes from in a mismatch error, as in "the
// download has sha256 X but <pinnedBy> Y".
func (f *Fetcher) FetchFrom(ctx context.Context, rawURL, sum, pinnedBy string) (string, error) {
	sum = strings.ToLower(sum)
	if !sumRE.MatchString(sum) {
		return "", fmt.Errorf("fetch %s: pinned sha256 %q is not 64 hex digits", rawURL, sum)
	}
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return "", fmt.Errorf("fetch %s: want an https:// or http:// URL", rawURL)
	}
	if err := os.MkdirAll(f.Dir, 0o755); err != nil {
		return "", fmt.Errorf("fetch %s: %w", rawURL, err)
	}
	final := f.Path(rawURL, sum)
	if p, ok := f.Cached(rawURL, sum); ok {
		got, err := ctxio.SHA256File(ctx, p)
		if err != nil {
			return "", fmt.Errorf("fetch %s: check cached %s: %w", rawURL, p, err)
		}
		if got == sum {
			f.summary("%s: cached, sha256 ok\n", p)
			return p, nil
		}
		// A cache file that changed under us is useless; fetch it again.
		f.summary("%s: cached file has sha256 %s, not %s; downloading again\n", p, got, sum)
		if err := os.Remove(p); err != nil {
			return "", fmt.Errorf("fetch %s: %w", rawURL, err)
		}
	}
	part := final + ".part"
	d := &download{f: f, url: rawURL, part: part, name: path.Base(u.Path), start: time.Now()}
	if err := d.run(ctx); err != nil {
		return "", err
	}
	got := hex.EncodeToString(d.h.Sum(nil))
	if got != sum {
		os.Remove(part)
		return "", fmt.Errorf("fetch %s: %w: the download (%d bytes) has sha256 %s but %s %s; deleted the download", rawURL, ErrChecksum, d.have, got, pinnedBy, sum)
	}
	if err := os.Rename(part, final); err != nil {
		return "", fmt.Errorf("fetch %s: %w", rawURL, err)
	}
	f.done(d, final)
	return final, nil
}

// download is one Fetch in progress.
type download struct {
	f            *Fetcher
	url, part    string
	name         string
	h            hash.Hash // over every byte of part so far
	have, total  int64     // total is -1 when the server does not say
	resumedFrom  int64     // bytes an earlier run left, for the rate
	resumedAt    int64     // where the first resume started, for the summary
	restarts     int       // times the server ignored Range and sent it all again
	shortAt      [2]int64  // have and total where the last 200 answer ended early, else -1s
	liar         bool      // the server announces a size it does not send
	start        time.Time
	lastProgress time.Time
}

func (d *download) run(ctx context.Context) error {
	attempts := d.f.Attempts
	if attempts <= 0 {
		attempts = 5
	}
	if err := d.open(ctx); err != nil {
		return err
	}
	d.total = -1
	d.shortAt = [2]int64{-1, -1}
	var last error
	for i := 0; i < attempts; i++ {
		done, err := d.attempt(ctx)
		if done {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("fetch %s: %w (the partial download %s is kept; run magibake fetch to resume)", d.url, ctx.Err(), d.part)
		}
		var perm permanent
		if errors.As(err, &perm) {
			d.endLine()
			return fmt.Errorf("fetch %s: %w%s", d.url, perm.error, d.dropPart())
		}
		last = err
	}
	d.endLine()
	if d.dropPart(); d.have == 0 {
		return fmt.Errorf("fetch %s: %w (after %d attempts)", d.url, last, attempts)
	}
	return fmt.Errorf("fetch %s: %w (after %d attempts; the partial download %s, %s, is kept: run magibake fetch to resume)", d.url, last, attempts, d.part, bytesize.Format(d.have))
}

// dropPart deletes the .part file when no later run could use it: it is
// empty, or the server announces a size it never sends. It returns what to
// add to the error message.
func (d *download) dropPart() string {
	st, err := os.Stat(d.part)
	switch {
	case err != nil:
		return ""
	case st.Size() == 0:
		os.Remove(d.part)
		return ""
	case d.liar:
		os.Remove(d.part)
		return "; deleted the partial download"
	}
	return ""
}

// open hashes what an earlier run left in the .part file.
func (d *download) open(ctx context.Context) error {
	d.h = sha256.New()
	fh, err := os.Open(d.part)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("fetch %s: %w", d.url, err)
	}
	defer fh.Close()
	n, err := io.Copy(d.h, ctxio.Reader(ctx, fh))
	if err != nil {
		return fmt.Errorf("fetch %s: read %s: %w", d.url, d.part, err)
	}
	d.have, d.resumedFrom, d.resumedAt = n, n, n
	return nil
}

// permanent is an error that another attempt would not cure.
type permanent struct{ error }

var contentRange = regexp.MustCompile(`^bytes (\d+)-(\d+)/(\d+|\*)$`)

// attempt makes one request, appending what arrives to the .part file.
func (d *download) attempt(ctx context.Context) (done bool, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, d.url, nil)
	if err != nil {
		return false, permanent{err}
	}
	if d.have > 0 {
		req.Header.Set("Range", fmt.Sprintf("bytes=%d-", d.have))
	}
	resp, err := d.f.client().Do(req)
	if err != nil {
		if r := redirectErr(err); r != nil {
			return false, permanent{r}
		}
		return false, err
	}
	defer resp.Body.Close()
	flags := os.O_WRONLY | os.O_CREATE | os.O_APPEND
	switch {
	case resp.StatusCode == http.StatusPartialContent && d.have > 0:
		m := contentRange.FindStringSubmatch(resp.Header.Get("Content-Range"))
		if m == nil {
			return false, permanent{fmt.Errorf("server answered the range request with Content-Range %q", resp.Header.Get("Content-Range"))}
		}
		from, _ := strconv.ParseInt(m[1], 10, 64)
		if from != d.have {
			return false, permanent{fmt.Errorf("asked to resume at byte %d, server sent from byte %d", d.have, from)}
		}
		// A Content-Length that disagrees with the range it comes with is a
		// server lying about the size; appending would corrupt the .part.
		if to, _ := strconv.ParseInt(m[2], 10, 64); resp.ContentLength >= 0 && resp.ContentLength != to-from+1 {
			return false, permanent{fmt.Errorf("server sent bytes %d-%d with Content-Length %d", from, to, resp.ContentLength)}
		}
		if d.resumedAt == 0 {
			d.resumedAt = d.have
		}
		if m[3] != "*" {
			d.total, _ = strconv.ParseInt(m[3], 10, 64)
		}
	case resp.StatusCode == http.StatusOK:
		if d.have > 0 {
			// The server ignores Range: start over rather than append a
			// second copy.
			d.restarts++
			d.h.Reset()
			d.have, d.resumedFrom, d.resumedAt = 0, 0, 0
		}
		flags = os.O_WRONLY | os.O_CREATE | os.O_TRUNC
		d.total = resp.ContentLength
	case resp.StatusCode == http.StatusRequestedRangeNotSatisfiable && d.have > 0:
		// The .part file is as long as the image or longer: either complete
		// or garbage. The checksum decides; a wrong one deletes it.
		return true, nil
	default:
		return false, permanent{fmt.Errorf("HTTP %s", resp.Status)}
	}
	out, err := os.OpenFile(d.part, flags, 0o644)
	if err != nil {
		return false, permanent{err}
	}
	buf := make([]byte, 1<<20)
	for {
		n, rerr := resp.Body.Read(buf)
		if n > 0 {
			if _, err := out.Write(buf[:n]); err != nil {
				out.Close()
				return false, permanent{fmt.Errorf("write %s: %w", d.part, err)}
			}
			d.h.Write(buf[:n])
			d.have += int64(n)
			d.progress()
		}
		if rerr == io.EOF {
			break
		}
		if rerr != nil {
			out.Close()
			return false, d.short(resp.StatusCode, fmt.Errorf("connection lost at %s: %w", bytesize.Format(d.have), rerr))
		}
	}
	if err := out.Close(); err != nil {
		return false, permanent{fmt.Errorf("write %s: %w", d.part, err)}
	}
	if d.total >= 0 && d.have < d.total {
		return false, d.short(resp.StatusCode, fmt.Errorf("connection closed at %s of %s", bytesize.Format(d.have), bytesize.Format(d.total)))
	}
	d.endLine()
	return true, nil
}

// short returns err for a body that ended before its announced size. A
// dropped connection is worth another attempt; a server whose whole-file
// answer (200) stops at the same byte of the same announced size twice
// running is not dropping connections but announcing a size it does not
// send, and no number of attempts will complete it.
func (d *download) short(status int, err error) error {
	at := [2]int64{-1, -1}
	if status == http.StatusOK {
		at = [2]int64{d.have, d.total}
	}
	repeat := at[0] >= 0 && d.shortAt == at
	d.shortAt = at
	if repeat && d.total >= 0 {
		d.liar = true
		return permanent{fmt.Errorf("the server announces %d bytes (Content-Length) but sends %d, on every request", d.total, d.have)}
	}
	return err
}

// progress redraws the terminal line at most a few times a second.
func (d *download) progress() {
	if d.f.Log == nil || !d.f.Terminal {
		return
	}
	now := time.Now()
	if now.Sub(d.lastProgress) < 200*time.Millisecond {
		return
	}
	d.lastProgress = now
	d.draw(now)
}

func (d *download) draw(now time.Time) {
	rate := float64(d.have-d.resumedFrom) / now.Sub(d.start).Seconds()
	if d.total > 0 {
		fmt.Fprintf(d.f.Log, "\r%s: %s of %s (%d%%), %s/s   ", d.name, bytesize.Format(d.have), bytesize.Format(d.total), d.have*100/d.total, bytesize.Format(int64(rate)))
	} else {
		fmt.Fprintf(d.f.Log, "\r%s: %s, %s/s   ", d.name, bytesize.Format(d.have), bytesize.Format(int64(rate)))
	}
}

func (d *download) endLine() {
	if d.f.Log != nil && d.f.Terminal && !d.lastProgress.IsZero() {
		d.draw(time.Now()) // the last state, not the one of up to 200ms ago
		fmt.Fprintln(d.f.Log)
		d.lastProgress = time.Time{}
	}
}

func (f *Fetcher) summary(format string, a ...any) {
	if f.Log != nil {
		fmt.Fprintf(f.Log, format, a...)
	}
}

func (f *Fetcher) done(d *download, final string) {
	var notes []string
	if d.resumedAt > 0 {
		notes = append(notes, "resumed at "+bytesize.Format(d.resumedAt))
	}
	if d.restarts > 0 {
		notes = append(notes, "server does not resume; restarted")
	}
	extra := ""
	if len(notes) > 0 {
		extra = ", " + strings.Join(notes, ", ")
	}
	f.summary("fetched %s (%s in %.1fs%s), sha256 ok -> %s\n", d.url, bytesize.Format(d.have), time.Since(d.start).Seconds(), extra, final)
}
