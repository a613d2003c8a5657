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

// openCached serves the .img.xz f from cacheDir, keyed by its sha256, or
// decompresses it into the cache first.
func openCached(ctx context.Context, f *os.File, fileSize int64, path, cacheDir string) (*Base, error) {
	sum, err := hashFile(ctx, f)
	if err != nil {
		if ctx.Err() != nil {
			return nil, ctx.Err()
		}
		return nil, fmt.Errorf("base %s: %w", path, err)
	}
	entry := filepath.Join(cacheDir, sum+".img")
	if b := openEntry(f, fileSize, path, sum, entry); b != nil {
		return b, nil
	}
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
	if err := b.raw.Sync(); err == nil {
		if err := os.Rename(b.temp, entry); err == nil {
			b.temp = ""
			evict(cacheDir, entry)
		}
	}
	return b, nil
}

// openEntry opens a cache entry if there is one of the right size (the
// size the xz index gives, when it can be read cheaply); nil otherwise.
func openEntry(f *os.File, fileSize int64, path, sum, entry string) *Base {
	c, err := os.Open(entry)
	if err != nil {
		return nil
	}
	st, err := c.Stat()
	if err != nil || !st.Mode().IsRegular() {
		c.Close()
		return nil
	}
	if x, err := xzra.Open(f, fileSize); err == nil && x.Size() != st.Size() {
		c.Close()
		return nil
	}
	now := time.Now()
	os.Chtimes(entry, now, now) // most recently used, for evict
	return &Base{Path: path, SHA256: sum, Compressed: true, Cached: true, raw: c, size: st.Size()}
}

// evict removes all but the keepCached most recently used entries (keep
// is always kept), and temp files a killed build left a day ago or more.
// Failures only leave more files behind.
func evict(dir, keep string) {
	var entries []fs.FileInfo
	list, _ := os.ReadDir(dir)
	for _, e := range list {
		if strings.HasPrefix(e.Name(), ".magibake-base-") {
			if info, err := e.Info(); err == nil && time.Since(info.ModTime()) > 24*time.Hour {
				os.Remove(filepath.Join(dir, e.Name()))
			}
			continue
		}
		if !strings.HasSuffix(e.Name(), ".img") || strings.HasPrefix(e.Name(), ".") {
			continue
		}
		if info, err := e.Info(); err == nil && filepath.Join(dir, e.Name()) != keep {
			entries = append(entries, info)
		}
	}
	slices.SortFunc(entries, func(a, b fs.FileInfo) int { return b.ModTime().Compare(a.ModTime()) })
	for _, e := range entries[min(len(entries), keepCached-1):] {
		os.Remove(filepath.Join(dir, e.Name()))
	}
}
