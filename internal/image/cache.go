package image

import (
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
// was decoded and checked when it was made (and is used only as it was
// written, see idSuffix): what the card is made of does not depend on the
// file's current bytes. Whenever the file is decompressed, or its bytes
// matter otherwise (a raw .img, an .img.xz read on demand whose blocks are
// copied), it is hashed, and that sum replaces a remembered one.
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

// idSuffix names the record of a cache entry's identity as it was when the
// entry was written (see identity), beside the entry: an entry whose
// identity differs, or that has no record, was changed since (mounted and
// edited, written by a tool) and is not used. Its modification time is the
// entry's last use, for evict: touching the entry itself would change it.
const idSuffix = ".id"

// identity is what a write to the file at p changes: its inode, size, and
// modification and change times (nobody can set the change time).
func identity(p string) string {
	st, err := os.Stat(p)
	if err != nil {
		return ""
	}
	sys, ok := st.Sys().(*syscall.Stat_t)
	if !ok {
		return ""
	}
	return fmt.Sprintf("inode %d, size %d, modified %d, changed %d.%09d",
		sys.Ino, st.Size(), st.ModTime().UnixNano(), sys.Ctim.Sec, sys.Ctim.Nsec)
}

// recordIdentity records the identity of the entry just written.
func recordIdentity(entry string) {
	id := identity(entry)
	tmp := entry + idSuffix + ".tmp"
	if id == "" || os.WriteFile(tmp, []byte(id), 0o644) != nil || os.Rename(tmp, entry+idSuffix) != nil {
		os.Remove(tmp) // without a record the entry is not used: it costs a decompression
	}
}

// openEntry opens the cache entry for sum if there is one of the right size
// (the size the xz index x gives, when it could be read) that is as it was
// written; nil otherwise. An entry changed since is removed, and warn is
// told so.
func openEntry(x *xzblocks.Reader, path, sum, cacheDir string, warn func(string)) *Base {
	entry := entryPath(cacheDir, sum)
	c, err := os.Open(entry)
	if err != nil {
		return nil
	}
	st, err := c.Stat()
	if err != nil || !st.Mode().IsRegular() {
		c.Close()
		return nil
	}
	recorded, err := os.ReadFile(entry + idSuffix)
	now := identity(entry)
	if why := ""; err != nil || string(recorded) != now || x != nil && x.Size() != st.Size() {
		switch {
		case err != nil:
			why = "no record of it as written"
		case string(recorded) != now:
			why = "written " + string(recorded) + "; now " + now
		default:
			why = fmt.Sprintf("%d bytes, the base holds %d", st.Size(), x.Size())
		}
		c.Close()
		os.Remove(entry)
		os.Remove(entry + idSuffix)
		if warn != nil {
			warn(fmt.Sprintf("cache entry %s changed since it was written (%s): decompressing the base again", entry, why))
		}
		return nil
	}
	t := time.Now()
	os.Chtimes(entry+idSuffix, t, t) // most recently used, for evict
	return &Base{Path: path, SHA256: sum, Compressed: true, Cached: true, Verified: true, raw: c, file: c, size: st.Size()}
}

// lastUse is when the entry at p was last used: its record's time.
func lastUse(dir string, e fs.FileInfo) time.Time {
	if st, err := os.Stat(filepath.Join(dir, e.Name()+idSuffix)); err == nil {
		return st.ModTime()
	}
	return e.ModTime()
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
		case strings.HasSuffix(e.Name(), ".img"+idSuffix):
			if _, err := os.Stat(filepath.Join(dir, strings.TrimSuffix(e.Name(), idSuffix))); err != nil {
				os.Remove(filepath.Join(dir, e.Name())) // its entry is gone
			}
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
		slices.SortFunc(l.files, func(a, b fs.FileInfo) int { return lastUse(dir, b).Compare(lastUse(dir, a)) })
		for _, e := range l.files[min(len(l.files), n):] {
			os.Remove(filepath.Join(dir, e.Name()))
			if l.suffix == ".img" {
				os.Remove(filepath.Join(dir, e.Name()+idSuffix))
			}
		}
	}
}
