package xzblocks

import (
	"crypto/aes"
	"crypto/cipher"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// BenchmarkAgainstLiblzma decodes .xz files with this package and with
// liblzma (`xz -dc > /dev/null`, same machine, same run): a file of one
// block with DecodeBlock against `xz -T1`, a file of several blocks with
// DecodeTo on every core against `xz -T0`. Checks are verified on both
// sides. scripts/bench names blocks of its workload in
// $MAGIBAKE_BENCH_XZ (space-separated); without it the file is a 24 MiB
// block made here like the workload's mixed ones: two thirds the host's
// /usr/bin, one third AES-CTR keystream.
func BenchmarkAgainstLiblzma(b *testing.B) {
	files := strings.Fields(os.Getenv("MAGIBAKE_BENCH_XZ"))
	if len(files) == 0 {
		files = []string{mixedBlock(b)}
	}
	for _, path := range files {
		f, err := os.Open(path)
		if err != nil {
			b.Fatal(err)
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			b.Fatal(err)
		}
		x, err := Open(f, st.Size())
		if err != nil {
			b.Fatalf("%s: %v", path, err)
		}
		one := len(x.Index().Blocks) == 1
		b.Run(filepath.Base(path)+"/magibake", func(b *testing.B) {
			b.SetBytes(x.Size())
			for b.Loop() {
				var err error
				if one {
					err = x.DecodeBlock(0, io.Discard)
				} else {
					err = x.DecodeTo(b.Context(), discardAt{}, 0, true)
				}
				if err != nil {
					b.Fatal(err)
				}
			}
		})
		threads := map[bool]string{true: "-T1", false: "-T0"}[one]
		b.Run(filepath.Base(path)+"/xz"+threads, func(b *testing.B) {
			b.SetBytes(x.Size())
			for b.Loop() {
				if out, err := exec.Command("xz", threads, "-dc", path).CombinedOutput(); err != nil {
					b.Fatalf("xz %s -dc %s: %v %s", threads, path, err, out[:min(len(out), 200)])
				}
			}
		})
	}
}

// discardAt is an io.WriterAt that keeps nothing.
type discardAt struct{}

func (discardAt) WriteAt(p []byte, off int64) (int, error) { return len(p), nil }

// mixedBlock writes a one-block .xz of 24 MiB shaped like the bench
// workload's mixed blocks and returns its path.
func mixedBlock(b *testing.B) string {
	b.Helper()
	var host []byte
	bins, _ := filepath.Glob("/usr/bin/*")
	for _, p := range bins {
		if len(host) >= 16<<20 {
			break
		}
		if d, err := os.ReadFile(p); err == nil {
			host = append(host, d...)
		}
	}
	block, _ := aes.NewCipher(make([]byte, 16))
	stream := cipher.NewCTR(block, make([]byte, 16))
	var data []byte
	for len(data) < 24<<20 {
		// 4 MiB files, two of the host's for one of keystream.
		for range 2 {
			n := min(4<<20, len(host))
			data = append(data, host[:n]...)
			host = append(host[n:], host[:n]...)
		}
		k := make([]byte, 4<<20)
		stream.XORKeyStream(k, k)
		data = append(data, k...)
	}
	raw := filepath.Join(b.TempDir(), "mixed")
	if err := os.WriteFile(raw, data[:24<<20], 0o644); err != nil {
		b.Fatal(err)
	}
	if out, err := exec.Command("xz", "-T1", "-6", raw).CombinedOutput(); err != nil {
		b.Fatalf("xz: %v %s", err, out)
	}
	return raw + ".xz"
}
