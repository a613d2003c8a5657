package fetch

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path"
	"strings"
)

// maxRedirects is as many as net/http follows by default.
const maxRedirects = 10

// redirectError is a redirect chain magibake refuses to follow further.
type redirectError struct{ msg string }

func (e *redirectError) Error() string { return e.msg }

// checkRedirect stops at a URL already visited in the chain: a loop would
// otherwise be retried until the redirect limit, on every attempt.
func checkRedirect(req *http.Request, via []*http.Request) error {
	for _, v := range via {
		if v.URL.String() == req.URL.String() {
			return &redirectError{fmt.Sprintf("redirect loop: %s redirects back to %s", via[len(via)-1].URL, req.URL)}
		}
	}
	if len(via) >= maxRedirects {
		return &redirectError{fmt.Sprintf("more than %d redirects", maxRedirects)}
	}
	return nil
}

// redirectErr returns the redirectError inside a client error, or nil.
// net/http wraps it in a *url.Error naming the last Location as given,
// often a bare path; callers name the URL they asked for instead.
func redirectErr(err error) error {
	var r *redirectError
	if errors.As(err, &r) {
		return r
	}
	return nil
}

// client is f.Client (or http.DefaultClient) with checkRedirect, unless
// the caller chose its own redirect policy.
func (f *Fetcher) client() *http.Client {
	c := f.Client
	if c == nil {
		c = http.DefaultClient
	}
	if c.CheckRedirect != nil {
		return c
	}
	cc := *c
	cc.CheckRedirect = checkRedirect
	return &cc
}

// get reads a small document (a .sha256 file, the OS list) into memory.
// Nothing is written to disk, so a failure leaves nothing behind. A body
// shorter than its Content-Length is an error (net/http reports it); one
// longer than limit is refused rather than read without end.
func (f *Fetcher) get(ctx context.Context, rawURL string, limit int64) ([]byte, error) {
	if err := checkHTTPURL(rawURL); err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", rawURL, err)
	}
	resp, err := f.client().Do(req)
	if err != nil {
		if r := redirectErr(err); r != nil {
			return nil, fmt.Errorf("%s: %w", rawURL, r)
		}
		return nil, err // a *url.Error: it names the method and URL
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: HTTP %s", rawURL, resp.Status)
	}
	if resp.ContentLength > limit {
		return nil, fmt.Errorf("%s: %d bytes, more than the %d expected", rawURL, resp.ContentLength, limit)
	}
	b, err := io.ReadAll(io.LimitReader(resp.Body, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s: read after %d bytes: %w", rawURL, len(b), err)
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s: more than the %d bytes expected", rawURL, limit)
	}
	return b, nil
}

func checkHTTPURL(rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%s: want an https:// or http:// URL", rawURL)
	}
	return nil
}

// maxSumFile bounds a .sha256 file; the real ones are one line.
const maxSumFile = 64 << 10

// PublishedSum reads the checksum file published beside an image,
// rawURL + ".sha256", in the format sha256sum writes ("<64 hex>  <file>",
// or " *<file>" in binary mode), and returns the sha256 of the line naming
// the image's file.
func (f *Fetcher) PublishedSum(ctx context.Context, rawURL string) (string, error) {
	sumURL := rawURL + ".sha256"
	if err := checkHTTPURL(rawURL); err != nil {
		return "", err
	}
	b, err := f.get(ctx, sumURL, maxSumFile)
	if err != nil {
		return "", fmt.Errorf("no published sha256 for %s: %w", rawURL, err)
	}
	u, _ := url.Parse(rawURL)
	want := path.Base(u.Path)
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), maxSumFile)
	var named []string
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if strings.TrimSpace(line) == "" {
			continue
		}
		sum, file, ok := parseSumLine(line)
		if !ok {
			return "", fmt.Errorf("%s line %d is not a sha256sum line (\"<64 hex digits>  <file>\"): %q", sumURL, n, clip(line))
		}
		if path.Base(file) == want {
			return sum, nil
		}
		named = append(named, file)
	}
	if len(named) == 0 {
		return "", fmt.Errorf("%s is empty: no sha256 for %s", sumURL, want)
	}
	return "", fmt.Errorf("%s gives the sha256 of %s, not of %s", sumURL, strings.Join(named, ", "), want)
}

func parseSumLine(line string) (sum, file string, ok bool) {
	if len(line) < 66 || !sumRE.MatchString(strings.ToLower(line[:64])) || line[64] != ' ' {
		return "", "", false
	}
	file = line[65:]
	if file[0] == ' ' || file[0] == '*' {
		file = file[1:]
	}
	if file == "" {
		return "", "", false
	}
	return strings.ToLower(line[:64]), file, true
}

// clip shortens what a server sent before it goes into a one-line error.
func clip(s string) string {
	if len(s) > 100 {
		return s[:100] + "..."
	}
	return s
}

// FetchPublished downloads the image at rawURL into Dir, checked against
// the sha256 published beside it (PublishedSum), and returns its path and
// the pin to keep in cluster.yaml: the URL and sha256. When rawURL
// redirects (a "latest" link), the pin names where it led, since the
// link's target changes with each release while the sha256 would not.
func (f *Fetcher) FetchPublished(ctx context.Context, rawURL string) (p, pinURL, sum string, err error) {
	pinURL, err = f.resolve(ctx, rawURL)
	if err != nil {
		return "", "", "", err
	}
	sum, err = f.PublishedSum(ctx, pinURL)
	if err != nil {
		return "", "", "", err
	}
	p, err = f.FetchFrom(ctx, pinURL, sum, pinURL+".sha256 publishes")
	if err != nil {
		return "", "", "", err
	}
	return p, pinURL, sum, nil
}

// resolve follows rawURL's redirects with a HEAD request and returns where
// they end. A server that does not answer HEAD leaves rawURL as it is.
func (f *Fetcher) resolve(ctx context.Context, rawURL string) (string, error) {
	if err := checkHTTPURL(rawURL); err != nil {
		return "", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodHead, rawURL, nil)
	if err != nil {
		return "", fmt.Errorf("%s: %w", rawURL, err)
	}
	resp, err := f.client().Do(req)
	if err != nil {
		if r := redirectErr(err); r != nil {
			return "", fmt.Errorf("%s: %w", rawURL, r)
		}
		return "", err
	}
	resp.Body.Close()
	switch {
	case resp.StatusCode == http.StatusMethodNotAllowed || resp.StatusCode == http.StatusNotImplemented:
		return rawURL, nil
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return "", fmt.Errorf("%s: HTTP %s", resp.Request.URL, resp.Status)
	}
	return resp.Request.URL.String(), nil
}
