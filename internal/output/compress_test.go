package output

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/testkit"
)

// testImage is shaped like a card, over more than two xz blocks: random
// bytes (like binaries), text, a long zero run, and a tail that ends inside
// a block.
func testImage() []byte {
	img := make([]byte, 2*xzBlock+3*chunk+4321)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := 0; i < xzBlock/4; i += 8 {
		v := rng.Uint64()
		for k := range 8 {
			img[i+k] = byte(v >> (8 * k))
		}
	}
	var text bytes.Buffer
	for i := 0; text.Len() < xzBlock/2; i++ {
		fmt.Fprintf(&text, "line %d: the quick brown fox %d jumps over %x\n", i, i*i, i*7919)
	}
	copy(img[xzBlock/4:], text.Bytes())
	// xzBlock..2*xzBlock stays zero: a whole zero block.
	copy(img[2*xzBlock+chunk:], "data after the zero run")
	copy(img[len(img)-10:], "last bytes")
	return img
}

// TestFormats writes one image as .img, .img.zst and .img.xz and checks the
// compressed files with the real tools: they decode to the bytes of the .img
// output, and xz -t accepts the xz stream and lists one block per xzBlock bytes.
func TestFormats(t *testing.T) {
	testkit.RequireTools(t, "xz", "zstd")
	img := testImage()
	dir := t.TempDir()
	raw := filepath.Join(dir, "card.img")
	if err := Write(context.Background(), raw, bytes.NewReader(img), int64(len(img)), nil); err != nil {
		t.Fatal(err)
	}
	want := testkit.SHA256File(t, raw)
	if s := sha256.Sum256(img); want != hex.EncodeToString(s[:]) {
		t.Fatal("the .img output differs from the image")
	}
	for _, tc := range []struct {
		name   string
		decode []string
	}{
		{"card.img.zst", []string{"zstd", "-dc"}},
		{"card.img.xz", []string{"xz", "-dc"}},
		{"card.IMG.XZ", []string{"xz", "-T0", "-dc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(dir, tc.name)
			var checked []byte
			check := func(r io.ReaderAt, size int64) error {
				checked = make([]byte, size)
				_, err := r.ReadAt(checked, 0)
				return err
			}
			if err := Write(context.Background(), out, bytes.NewReader(img), int64(len(img)), check); err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(checked, img) {
				t.Error("check did not see the image")
			}
			decoded := filepath.Join(t.TempDir(), "decoded.img")
			testkit.Run(t, "sh", "-c", strings.Join(tc.decode, " ")+` "$1" > "$2"`, "sh", out, decoded)
			if testkit.SHA256File(t, decoded) != want {
				t.Errorf("%s %s does not give the .img output", strings.Join(tc.decode, " "), tc.name)
			}
			st, _ := os.Stat(out)
			if st.Size() > int64(len(img))/2 {
				t.Errorf("%s is %d bytes for a %d-byte image that is mostly zeros and text", tc.name, st.Size(), len(img))
			}
			if st.Mode().Perm() != 0o644 {
				t.Errorf("mode %v", st.Mode().Perm())
			}
			if strings.HasSuffix(strings.ToLower(tc.name), ".xz") {
				testkit.Run(t, "xz", "-t", out)
				list := testkit.Run(t, "xz", "--robot", "-lv", out)
				if n := strings.Count(list, "\nblock\t"); n != 3 {
					t.Errorf("xz -lv lists %d blocks, want 3:\n%s", n, list)
				}
				if !strings.Contains(list, "CRC64") {
					t.Errorf("xz -lv shows no CRC64 check:\n%s", list)
				}
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".*")); len(left) > 0 {
				t.Errorf("temp files left: %v", left)
			}
		})
	}
}

// TestCompressedReadBack changes the bytes of a finished compressed stream
// the way a faulty disk would, and checks that the read-back finds each.
func TestCompressedReadBack(t *testing.T) {
	img := testImage()
	type encoded struct {
		file   []byte
		verify verifier
	}
	streams := map[string]encoded{}
	for name, enc := range map[string]encoder{"xz": func(ctx context.Context, w io.Writer, src io.ReaderAt, size int64) (verifier, error) {
		return encodeXZ(ctx, w, src, size, nil, Options{}.progress)
	}, "zstd": func(ctx context.Context, w io.Writer, src io.ReaderAt, size int64) (verifier, error) {
		return encodeZstd(ctx, w, src, size, Options{}.progress)
	}} {
		var buf bytes.Buffer
		verify, err := enc(context.Background(), &buf, bytes.NewReader(img), int64(len(img)))
		if err != nil {
			t.Fatal(err)
		}
		streams[name] = encoded{buf.Bytes(), verify}
	}
	for _, tc := range []struct {
		name string
		enc  string
		at   func(file []byte) int // offset of the byte to flip
		want string
	}{
		{"xz untouched", "xz", nil, ""},
		{"xz stream header", "xz", func([]byte) int { return 7 }, "stream header differs"},
		{"xz first block header", "xz", func([]byte) int { return 12 + 3 }, "block 1 of 3"},
		{"xz data of the first block", "xz", func([]byte) int { return 12 + 4000 }, "block 1 of 3"},
		{"xz last block's check", "xz", func(f []byte) int { return len(f) - 12 - xzIndexLen(f) - 2 }, "block 3 of 3"},
		{"xz index", "xz", func(f []byte) int { return len(f) - 12 - 5 }, "index and stream footer differs"},
		{"xz footer", "xz", func(f []byte) int { return len(f) - 1 }, "index and stream footer differs"},
		{"zstd untouched", "zstd", nil, ""},
		{"zstd frame data", "zstd", func(f []byte) int { return len(f) / 3 }, "zstd"},
		{"zstd last byte", "zstd", func(f []byte) int { return len(f) - 1 }, "zstd"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := streams[tc.enc]
			file := bytes.Clone(e.file)
			if tc.at != nil {
				file[tc.at(file)] ^= 0x40
			}
			err := e.verify(context.Background(), bytes.NewReader(file), int64(len(file)))
			switch {
			case tc.want == "" && err != nil:
				t.Fatal(err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
		})
	}
}

// TestCompressedCheckFails: a card that fails its check is never compressed
// and nothing is left behind.
func TestCompressedCheckFails(t *testing.T) {
	dir := t.TempDir()
	for _, name := range []string{"c.img.xz", "c.img.zst"} {
		out := filepath.Join(dir, name)
		err := Write(context.Background(), out, bytes.NewReader(make([]byte, 4096)), 4096,
			func(io.ReaderAt, int64) error { return fmt.Errorf("content differs") })
		if want := "output " + out + ": check before compressing: content differs"; err == nil || err.Error() != want {
			t.Errorf("error %v, want %q", err, want)
		}
	}
	if left, _ := os.ReadDir(dir); len(left) != 0 {
		t.Errorf("left behind: %v", left)
	}
}

func TestCardName(t *testing.T) {
	for path, want := range map[string]string{
		"caspar.img": "", "caspar.img.xz": "", "CASPAR.IMG.ZST": "",
		"caspar.iso": "output caspar.iso: its name gives no card format; name it .img (raw), .img.xz or .img.zst",
		"caspar.xz":  "its name gives no card format", "caspar": "its name gives no card format",
		"caspar.img.gz": ".gz is not an output format",
	} {
		err := CardName(path)
		if (want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), want)) {
			t.Errorf("%s: %v, want %q", path, err, want)
		}
	}
}

func TestFormatOf(t *testing.T) {
	for _, tc := range []struct {
		path string
		want Format
		err  string
	}{
		{"c.img", Raw, ""}, {"c", Raw, ""}, {"c.img.zst", Zstd, ""}, {"c.img.xz", XZ, ""}, {"C.IMG.ZST", Zstd, ""},
		{"c.img.gz", 0, "output c.img.gz: .gz is not an output format; write a .img, .img.xz or .img.zst"},
		{"c.zip", 0, ".zip is not an output format"},
	} {
		got, err := FormatOf(tc.path)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("%s: error %v, want %q", tc.path, err, tc.err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: %v, %v; want %v", tc.path, got, err, tc.want)
		}
	}
}

// xzIndexLen reads the index size from the stream footer's backward size.
func xzIndexLen(f []byte) int {
	n := len(f)
	backward := int(f[n-8]) | int(f[n-7])<<8 | int(f[n-6])<<16 | int(f[n-5])<<24
	return (backward + 1) * 4
}
