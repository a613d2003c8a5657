package image

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/magibake/magibake/internal/tempfile"
	"github.com/magibake/magibake/internal/xzblocks"
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

// sumSuffix names the files that remember the sha256 of an .img.xz by its
// identity (path, device, inode, size, mtime, ctime), so that a re-bake does
// not read 800 MB again only to find its cache entry: hashing took 1.2 s of
// a 3.2 s re-bake. A file written since gets a new ctime, so a new hash.
// A remembered sum is only ever used to find a cache entry, whose content
// was decoded and checked when it was made: what the card is made of does
// not depend on the file's current bytes. Where they matter (a raw .img, an
// .img.xz read on demand whose blocks are copied) the file is hashed.
const sumSuffix = ".sha256"

// keepSums is how many remembered sums evict keeps (they are tiny).
const keepSums = 16

// statKey names the remembered sum of f, or "" if f cannot be identified.
func statKey(f *os.File, path string) string {
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return ""
	}
	// ctime too: a rewrite that restores the mtime (touch -r, curl -R)
	// still changes it, and nobody can set it.
	id := fmt.Sprintf("%s\x00%d\x00%d\x00%d\x00%d\x00%d.%d", abs, sys.Dev, sys.Ino, st.Size(), st.ModTime().UnixNano(), sys.Ctim.Sec, sys.Ctim.Nsec)
	h := sha256.Sum256([]byte(id))
	return hex.EncodeToString(h[:12])
}

// cachedSum is hashFile through the remembered sums of cacheDir;
// remembered says the file was not read.
func cachedSum(ctx context.Context, f *os.File, path, cacheDir string) (sum string, remembered bool, err error) {
	if sum, ok := rememberedSum(f, path, cacheDir); ok {
		return sum, true, nil
	}
	if sum, err = hashFile(ctx, f); err != nil {
		return "", false, err
	}
	rememberSum(f, path, cacheDir, sum)
	return sum, false, nil
}

// rememberedSum is the sum cacheDir remembers for f, if any.
func rememberedSum(f *os.File, path, cacheDir string) (string, bool) {
	key := statKey(f, path)
	if key == "" {
		return "", false
	}
	p := filepath.Join(cacheDir, key+sumSuffix)
	b, err := os.ReadFile(p)
	if err != nil || len(b) != 64 {
		return "", false
	}
	if _, err := hex.DecodeString(string(b)); err != nil {
		return "", false
	}
	now := time.Now()
	os.Chtimes(p, now, now) // most recently used, for evict
	return string(b), true
}

// rememberSum records sum, just computed from f's bytes, for f's identity.
func rememberSum(f *os.File, path, cacheDir, sum string) {
	key := statKey(f, path)
	if key == "" || os.MkdirAll(cacheDir, 0o755) != nil {
		return
	}
	p := filepath.Join(cacheDir, key+sumSuffix)
	tmp := p + ".tmp"
	if os.WriteFile(tmp, []byte(sum), 0o644) == nil && os.Rename(tmp, p) == nil {
		evict(cacheDir, p)
	}
}

// entryPath is where the cache keeps the .img.xz whose sha256 is sum.
func entryPath(cacheDir, sum string) string { return filepath.Join(cacheDir, sum+".img") }

// decompressCached decompresses the .img.xz f, whose sha256 is sum, into
// cacheDir, where later builds find it (openEntry).
func decompressCached(ctx context.Context, f *os.File, fileSize int64, path, sum, cacheDir string, progress func(done, total int64)) (*Base, error) {
	entry := entryPath(cacheDir, sum)
	if err := os.MkdirAll(cacheDir, 0o755); err != nil {
		return nil, fmt.Errorf("base %s: decompressed-base cache: %w (--no-cache decompresses beside the output instead)", path, err)
	}
	b, err := decompressAny(ctx, f, fileSize, path, cacheDir, sum, "", progress)
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
func openEntry(x *xzblocks.Reader, path, sum, entry string) *Base {
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

// evict removes all but the keepCached most recently used entries, the
// keepVerified most recent markers and keepSums remembered sums (keep is
// always kept), and the temp files of killed builds. Failures only leave
// more files behind.
func evict(dir, keep string) {
	tempfile.Sweep(dir, TempPattern)
	var entries, markers, sums []fs.FileInfo
	list, _ := os.ReadDir(dir)
	for _, e := range list {
		if strings.HasPrefix(e.Name(), ".magibake-base-") {
			continue // temp files: swept above
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
		case strings.HasSuffix(e.Name(), sumSuffix):
			sums = append(sums, info)
		}
	}
	for _, l := range []struct {
		files  []fs.FileInfo
		keep   int
		suffix string
	}{{entries, keepCached, ".img"}, {markers, keepVerified, verifiedSuffix}, {sums, keepSums, sumSuffix}} {
		n := l.keep
		if strings.HasSuffix(keep, l.suffix) {
			n-- // keep itself is one of them
		}
		slices.SortFunc(l.files, func(a, b fs.FileInfo) int { return b.ModTime().Compare(a.ModTime()) })
		for _, e := range l.files[min(len(l.files), n):] {
			os.Remove(filepath.Join(dir, e.Name()))
		}
	}
}
