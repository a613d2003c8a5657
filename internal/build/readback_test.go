package build

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magibake/magibake/internal/bake"
	"github.com/magibake/magibake/internal/fault"
	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/image"
	"github.com/magibake/magibake/internal/manifest"
	"github.com/magibake/magibake/internal/output"
)

// TestOutputReadBack changes the staged output between its write and its
// read-back, as a faulty disk or a writer that dropped a range would, and
// checks that the build fails naming the output and what reads back wrong,
// leaves nothing in the output directory, and that an untouched output
// passes the same read-back.
func TestOutputReadBack(t *testing.T) {
	img, _ := fixture.Image(t, "bookworm")
	layout := fixture.OpenCard(t, img).Layout
	root, boot := layout.Root, layout.Boot
	for _, tc := range []struct {
		name   string
		tamper func(t *testing.T, f *os.File)
		want   string // "" for a build that must succeed
	}{
		{"untouched", func(*testing.T, *os.File) {}, ""},
		{"one byte of the manifest flipped", func(t *testing.T, f *os.File) {
			off := find(t, f, root.Start, root.Size, []byte(`"tool": "magibake"`))
			writeAt(t, f, []byte{'T'}, off+1)
		}, "verify " + manifest.Path + " on root: content differs from what was written"},
		{"the manifest's first block dropped (zeros)", func(t *testing.T, f *os.File) {
			off := find(t, f, root.Start, root.Size, []byte(`"tool": "magibake"`))
			block := root.Start + (off-root.Start)/4096*4096
			writeAt(t, f, make([]byte, 4096), block)
		}, "verify " + manifest.Path + " on root: content differs from what was written"},
		{"cmdline.txt edited on the boot partition", func(t *testing.T, f *os.File) {
			off := find(t, f, boot.Start, boot.Size, []byte("cfg80211.ieee80211_regdom=GB"))
			writeAt(t, f, []byte("XX"), off+int64(len("cfg80211.ieee80211_regdom=")))
		}, `verify /cmdline.txt on boot: missing "cfg80211.ieee80211_regdom=GB"`},
		{"partition table wiped", func(t *testing.T, f *os.File) {
			writeAt(t, f, make([]byte, 64), 446)
		}, "verify: partition table: no FAT32 boot partition"},
		{"root superblock zeroed", func(t *testing.T, f *os.File) {
			writeAt(t, f, make([]byte, 1024), root.Start+1024)
		}, "verify: reopen root partition: ext4:"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := t.TempDir()
			target := filepath.Join(out, "caspar.img")
			calls := 0
			o := Options{Sources: Sources{Getenv: getenv}, Nodes: []string{"caspar"}, Output: target, Base: img, Version: "test"}
			o.tamper = func() error {
				calls++
				tmps, _ := filepath.Glob(filepath.Join(out, ".caspar.img.magibake-*.tmp"))
				if len(tmps) != 1 {
					return errors.New("test: want one staged temp file")
				}
				f, err := os.OpenFile(tmps[0], os.O_RDWR, 0)
				if err != nil {
					return err
				}
				defer f.Close()
				tc.tamper(t, f)
				return f.Sync()
			}
			err := Run(context.Background(), o)
			if calls != 1 {
				t.Errorf("the staged output was read back %d times, want once", calls)
			}
			left, _ := os.ReadDir(out)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				if len(left) != 1 || left[0].Name() != "caspar.img" {
					t.Errorf("output directory holds %v, want caspar.img alone", left)
				}
				return
			}
			if err == nil {
				t.Fatal("the build succeeded with a corrupted output")
			}
			msg := err.Error()
			t.Logf("error: %s", msg)
			prefix := "bake caspar: output " + target + ": read back after writing: "
			if !strings.HasPrefix(msg, prefix) || !strings.Contains(msg, tc.want) || strings.Contains(msg, "\n") {
				t.Errorf("error %q, want one line starting %q and holding %q", msg, prefix, tc.want)
			}
			if c := fault.Of(err); c != fault.Internal {
				t.Errorf("class %d, want Internal (exit 1)", c)
			}
			if len(left) != 0 {
				t.Errorf("left in the output directory: %v", left)
			}
		})
	}
}

// find returns the offset of the first needle in the n bytes of f from off,
// failing the test if there is none.
func find(t *testing.T, f *os.File, off, n int64, needle []byte) int64 {
	t.Helper()
	const chunk = 8 << 20
	buf := make([]byte, chunk+len(needle))
	for pos := off; pos < off+n; pos += chunk {
		m, err := f.ReadAt(buf[:min(int64(len(buf)), off+n-pos)], pos)
		if err != nil && !errors.Is(err, io.EOF) {
			t.Fatal(err)
		}
		if i := bytes.Index(buf[:m], needle); i >= 0 {
			return pos + int64(i)
		}
	}
	t.Fatalf("%q not found in bytes %d-%d of %s", needle, off, off+n, f.Name())
	return 0
}

func writeAt(t *testing.T, f *os.File, b []byte, off int64) {
	t.Helper()
	if _, err := f.WriteAt(b, off); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkReadBack measures what the read-back of a staged output costs:
// the time bake.VerifyCard takes inside Stage of one baked card, against the
// rest of Stage (the sparse copy and fsync), and as a percentage of it.
func BenchmarkReadBack(b *testing.B) {
	img, _ := fixture.Image(b, "bookworm")
	o := Sources{Getenv: getenv}
	p, c, err := o.Plan("caspar", mustMTimeB(b))
	if err != nil {
		b.Fatal(err)
	}
	base, layout := fixture.OpenBase(b, img)
	dev := image.NewDevice(base, base.Size())
	m, err := bake.Apply(context.Background(), dev, layout, p, manifest.Info{Version: "bench", ProfileDigest: c.Digest, BaseSHA256: base.SHA256})
	if err != nil {
		b.Fatal(err)
	}
	var write, readBack time.Duration
	verify := func(r io.ReaderAt, size int64) error {
		start := time.Now()
		defer func() { readBack += time.Since(start) }()
		return bake.VerifyCard(r, size, layout, p, m)
	}
	dir := b.TempDir()
	for b.Loop() {
		start := time.Now()
		s, err := output.Stage(context.Background(), filepath.Join(dir, "c.img"), dev, dev.Size(), verify, output.Options{})
		if err != nil {
			b.Fatal(err)
		}
		write += time.Since(start)
		s.Discard()
	}
	write -= readBack
	b.ReportMetric(float64(write.Milliseconds())/float64(b.N), "write-ms/op")
	b.ReportMetric(float64(readBack.Microseconds())/1000/float64(b.N), "readback-ms/op")
	b.ReportMetric(100*float64(readBack)/float64(write), "readback-%")
}

func mustMTimeB(b *testing.B) time.Time {
	b.Helper()
	v, err := MTime(getenv)
	if err != nil {
		b.Fatal(err)
	}
	return v
}
