package output

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/testkit"
	"github.com/magibake/magibake/internal/xzblocks"
)

// xzBase compresses img with the real xz into blocks of 1 MiB with the given
// check, as `xz -T0` makes an official image, and returns the file and its index.
func xzBase(t *testing.T, img []byte, check string) ([]byte, *xzblocks.Index) {
	t.Helper()
	p := filepath.Join(t.TempDir(), "base.img")
	if err := os.WriteFile(p, img, 0o644); err != nil {
		t.Fatal(err)
	}
	testkit.Run(t, "xz", "-T2", "-3", "--block-size=1MiB", "-C", check, "-k", p)
	file, err := os.ReadFile(p + ".xz")
	if err != nil {
		t.Fatal(err)
	}
	idx, err := xzblocks.ReadIndex(bytes.NewReader(file), int64(len(file)))
	if err != nil {
		t.Fatal(err)
	}
	return file, idx
}

// changed is a card: img with some byte ranges rewritten, and what a
// copy-on-write device would say of them.
type changed struct {
	img   []byte
	dirty [][2]int64
}

func (c *changed) write(off int64, p string) {
	copy(c.img[off:], p)
	c.dirty = append(c.dirty, [2]int64{off, off + int64(len(p))})
}

func (c *changed) untouched(off, n int64) bool {
	for _, d := range c.dirty {
		if d[0] < off+n && d[1] > off {
			return false
		}
	}
	return true
}

// TestXZReuse bakes .img.xz outputs from multi-block bases: the blocks the
// "bake" left alone must be the base's, byte for byte, only the others are
// compressed again, the stream keeps the base's check type, and xz -t and
// xz -dc accept the result, which decodes to exactly the changed card.
func TestXZReuse(t *testing.T) {
	testkit.RequireTools(t, "xz")
	img := testImage()
	for _, check := range []string{"crc64", "crc32", "sha256", "none"} {
		t.Run(check, func(t *testing.T) {
			file, idx := xzBase(t, img, check)
			card := &changed{img: bytes.Clone(img)}
			card.write(4096, "new boot file")            // block 0
			card.write(16<<20+17, "changed inode table") // block 16
			card.write(18<<20-5, "straddles two blocks") // blocks 17 and 18
			basePath := filepath.Join(t.TempDir(), "base.img.xz")
			if err := os.WriteFile(basePath, file, 0o644); err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "card.img.xz")
			reuse := &Reuse{File: bytes.NewReader(file), Index: idx, Untouched: card.untouched}
			s, err := Stage(context.Background(), out, bytes.NewReader(card.img), int64(len(card.img)), nil, Options{Reuse: reuse})
			if err != nil {
				t.Fatal(err)
			}
			if err := s.Commit(context.Background()); err != nil {
				t.Fatal(err)
			}
			testkit.Run(t, "xz", "-t", out)
			decoded := filepath.Join(t.TempDir(), "decoded.img")
			testkit.Run(t, "sh", "-c", `xz -dc "$1" > "$2"`, "sh", out, decoded)
			if s := sha256.Sum256(card.img); testkit.SHA256File(t, decoded) != hex.EncodeToString(s[:]) {
				t.Fatal("the output does not decode to the changed card")
			}
			base := map[string]bool{}
			for _, k := range testkit.XZBlockKeys(t, basePath) {
				base[k] = true
			}
			kept := 0
			for _, k := range testkit.XZBlockKeys(t, out) {
				if base[k] {
					kept++
				}
			}
			if want := len(idx.Blocks) - 4; kept != want {
				t.Errorf("%d blocks of the base kept, want %d of %d", kept, want, len(idx.Blocks))
			}
			name := map[string]string{"crc64": "CRC64", "crc32": "CRC32", "sha256": "SHA-256", "none": "None"}[check]
			if list := testkit.Run(t, "xz", "--robot", "-lv", out); !strings.Contains(list, "\t"+name+"\t") {
				t.Errorf("check type is not %s:\n%s", name, list)
			}
		})
	}
}

// TestXZReuseDamagedBase: a block copied from a base that was never decoded
// in full is decoded in the read-back, so a damaged base block fails the
// build, naming it; a trusted base (pinned, or decoded before) is not
// decoded again.
func TestXZReuseDamagedBase(t *testing.T) {
	testkit.RequireTools(t, "xz")
	img := testImage()
	file, idx := xzBase(t, img, "crc64")
	b := idx.Blocks[len(idx.Blocks)/2]
	file[b.Offset+b.UnpaddedSize/2] ^= 0x55 // inside the LZMA2 data of an untouched block
	for _, trusted := range []bool{false, true} {
		out := filepath.Join(t.TempDir(), "card.img.xz")
		reuse := &Reuse{File: bytes.NewReader(file), Index: idx, Untouched: func(int64, int64) bool { return true }, Trusted: trusted}
		s, err := Stage(context.Background(), out, bytes.NewReader(img), int64(len(img)), nil, Options{Reuse: reuse})
		if trusted {
			if err != nil {
				t.Fatalf("trusted: %v", err)
			}
			s.Discard()
			continue
		}
		if err == nil || !strings.Contains(err.Error(), "copied from the base") || !strings.Contains(err.Error(), "damaged") {
			t.Fatalf("untrusted damaged base: error %v", err)
		}
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(out), "*")); len(left) > 0 {
			t.Errorf("left behind: %v", left)
		}
	}
}

// TestXZReuseFallback: a base that is not the card's size, or mixes check
// types across streams, gives nothing to copy: every block is compressed.
func TestXZReuseFallback(t *testing.T) {
	testkit.RequireTools(t, "xz")
	img := testImage()
	a, _ := xzBase(t, img[:len(img)/2], "crc64")
	b, _ := xzBase(t, img[len(img)/2:], "crc32")
	mixed := append(bytes.Clone(a), b...)
	mixedIdx, err := xzblocks.ReadIndex(bytes.NewReader(mixed), int64(len(mixed)))
	if err != nil {
		t.Fatal(err)
	}
	_, aIdx := xzBase(t, img[:len(img)/2], "crc64")
	for name, r := range map[string]*Reuse{
		"mixed checks": {File: bytes.NewReader(mixed), Index: mixedIdx, Untouched: func(int64, int64) bool { return true }},
		"other size":   {File: bytes.NewReader(a), Index: aIdx, Untouched: func(int64, int64) bool { return true }},
	} {
		segs, check := planXZ(int64(len(img)), r)
		for _, s := range segs {
			if s.from != nil {
				t.Errorf("%s: copies a block", name)
				break
			}
		}
		if check != xzblocks.CheckCRC64 {
			t.Errorf("%s: check %#x", name, check)
		}
	}
}
