package image

import (
	"context"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/magibake/magibake/internal/xzra"
)

// keepCached is how many decompressed bases the cache keeps: the one in use
// and the one before it (a Pi OS base is 2.7 GiB decompressed, sparse).
const keepCached = 2

// verifiedSuffix names the marker the cache keeps for an .img.xz read on
// demand whose every block a build has decoded and checked (MarkVerified):
// its next build need not decode them again.
const verifiedSuffix = ".verified"

// keepVerified is how many markers evict keeps (they are empty files).
const keepVerified = 16

// MarkVerified records in cacheDir that every block of the base's .img.xz
// has been decoded and its check verified, so that later opens of the same
// file (by sha256) are Verified. It does nothing for a base that is not an
// .img.xz or without a cache; failing to write it only costs time later.
func (b *Base) MarkVerified(cacheDir string) {
	if cacheDir == "" || !b.Compressed || b.SHA256 == "" {
		return
	}
	if os.MkdirAll(cacheDir, 0o755) != nil {
		return
	}
	p := filepath.Join(cacheDir, b.SHA256+verifiedSuffix)
	if f, err := os.Create(p); err == nil {
		f.Close()
		evict(cacheDir, p)
	}
	b.Verified = true
}

// markedVerified says whether MarkVerified was done for the .img.xz whose
// sha256 is sum.
func markedVerified(cacheDir, sum string) bool {
	if cacheDir == "" {
		return false
	}
	p := filepath.Join(cacheDir, sum+verifiedSuffix)
	if _, err := os.Stat(p); err != nil {
		return false
	}
	now := time.Now()
	os.Chtimes(p, now, now) // most recently used, for evict
	return true
}

// entryPath is where the cache keeps the .img.xz whose sha256 is sum.
func entryPath(cacheDir, sum string) string { return filepath.Join(cacheDir, sum+".img") }

// decompressCached decompresses the .img.xz f, whose sha256 is sum, into
// cacheDir, where later builds find it (openEntry).
func decompressCached(ctx context.Context, f *os.File, fileSize int64, path, sum, cacheDir string) (*Base, error) {
	entry := entryPath(cacheDir, sum)
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("base %s: decompressed-base cache: %w (--no-cache decompresses beside the output instead)", path, err)
	}
	b, err := decompressAny(ctx, f, fileSize, path, cacheDir, sum)
	if err != nil {
		if strings.Contains(err.Error(), "decompress into "+cacheDir) {
			err = fmt.Errorf("%w (--no-cache decompresses beside the output instead)", err)
		}
		return nil, err
	}
	// The temp file becomes the entry: complete, or not there at all.
	if err := b.file.Sync(); err == nil {
		if err := os.Rename(b.temp, entry); err == nil {
			b.temp = ""
			evict(cacheDir, entry)
		}
	}
	return b, nil
}

// openEntry opens a cache entry if there is one of the right size (the
// size the xz index x gives, when it could be read); nil otherwise.
func openEntry(x *xzra.Reader, path, sum, entry string) *Base {
	c, err := os.Open(entry)
	if err != nil {
		return nil
	}
	st, err := c.Stat()
	if err != nil || !st.Mode().IsRegular() {
		c.Close()
		return nil
	}
	if x != nil && x.Size() != st.Size() {
		c.Close()
		return nil
	}
	now := time.Now()
	os.Chtimes(entry, now, now) // most recently used, for evict
	return &Base{Path: path, SHA256: sum, Compressed: true, Cached: true, Verified: true, raw: c, file: c, size: st.Size()}
}

// evict removes all but the keepCached most recently used entries and the
// keepVerified most recent markers (keep is always kept), and temp files a
// killed build left a day ago or more. Failures only leave more files behind.
func evict(dir, keep string) {
	var entries, markers []fs.FileInfo
	list, _ := os.ReadDir(dir)
	for _, e := range list {
		if strings.HasPrefix(e.Name(), ".magibake-base-") {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > 24*time.Hour {
				os.Remove(filepath.Join(dir, e.Name()))
			}
			continue
		}
		info, err := e.Info()
		if err != nil || strings.HasPrefix(e.Name(), ".") || filepath.Join(dir, e.Name()) == keep {
			continue
		}
		switch {
		case strings.HasSuffix(e.Name(), ".img"):
			entries = append(entries, info)
		case strings.HasSuffix(e.Name(), verifiedSuffix):
			markers = append(markers, info)
		}
	}
	for _, l := range []struct {
		files []fs.FileInfo
		keep  int
	}{{entries, keepCached}, {markers, keepVerified}} {
		slices.SortFunc(l.files, func(a, b fs.FileInfo) int { return b.ModTime().Compare(a.ModTime()) })
		for _, e := range l.files[min(len(l.files), l.keep-1):] {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
