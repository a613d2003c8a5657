package xzblocks

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"io"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ulikunitz/xz"
)

// sample is data shaped like a disk image: random (incompressible) runs,
// text (compressible) runs and zero runs.
func sample(size int, seed int64) []byte {
	rng := rand.New(rand.NewSource(seed))
	data := make([]byte, size)
	for off := 0; off < size; {
		n := min(size-off, 1+rng.Intn(200<<10))
		switch rng.Intn(3) {
		case 0:
			rng.Read(data[off : off+n])
		case 1:
			for i := range n {
				data[off+i] = "magibake bakes cards\n"[i%21]
			}
		}
		off += n
	}
	return data
}

// xzCompress runs the real xz on data with args and returns the .xz bytes.
func xzCompress(t testing.TB, data []byte, args ...string) []byte {
	t.Helper()
	if _, err := exec.LookPath("xz"); err != nil {
		t.Fatal("xz not found: apt-get install -y xz-utils")
	}
	cmd := exec.Command("xz", append([]string{"-c"}, args...)...)
	cmd.Stdin = bytes.NewReader(data)
	var out, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("xz %v: %v %s", args, err, stderr.Bytes())
	}
	return out.Bytes()
}

// xzDecompress is the reference: `xz -dc`.
func xzDecompress(t testing.TB, xzData []byte) []byte {
	t.Helper()
	cmd := exec.Command("xz", "-dc")
	cmd.Stdin = bytes.NewReader(xzData)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz -dc: %v", err)
	}
	return out
}

// noHang runs f and fails the test if it does not return: the limit only
// detects a hang, it is not a speed target.
func noHang(t *testing.T, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() { defer close(done); f() }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		t.Fatal("hung")
	}
}

// memFile is an in-memory io.WriterAt.
type memFile struct {
	mu  sync.Mutex
	buf []byte
}

func (m *memFile) WriteAt(p []byte, off int64) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if end := int(off) + len(p); end > len(m.buf) {
		m.buf = append(m.buf, make([]byte, end-len(m.buf))...)
	}
	return copy(m.buf[off:], p), nil
}

// decodeAll decodes xzData the three ways: stream, DecodeTo and ReadAt.
func decodeAll(t *testing.T, xzData []byte, workers int) (stream, into, at []byte, err error) {
	x, err := Open(bytes.NewReader(xzData), int64(len(xzData)))
	if err != nil {
		return nil, nil, nil, err
	}
	s := x.NewStream(context.Background(), workers)
	stream, err = io.ReadAll(s)
	s.Close()
	if err != nil {
		return nil, nil, nil, err
	}
	m := &memFile{}
	if err := x.DecodeTo(context.Background(), m, workers, true); err != nil {
		return nil, nil, nil, err
	}
	into = append(m.buf, make([]byte, int(x.Size())-len(m.buf))...)
	at = make([]byte, x.Size())
	// Odd-sized reads at odd offsets cross block boundaries.
	for off := 0; off < len(at); off += 77777 {
		end := min(off+77777, len(at))
		if _, err := x.ReadAt(at[off:end], int64(off)); err != nil && !(err == io.EOF && end == len(at)) {
			return nil, nil, nil, err
		}
	}
	return stream, into, at, nil
}

func TestMatchesXZ(t *testing.T) {
	data := sample(3<<20+12345, 1)
	other := sample(1<<20+3, 2)
	multi := xzCompress(t, data, "-T2", "-1", "--block-size=256KiB")
	pad := make([]byte, 8)
	cases := map[string][]byte{
		"multi-block":         multi,
		"single-block":        xzCompress(t, data, "-1"),
		"multi-stream":        append(bytes.Clone(multi), xzCompress(t, other, "-0", "--block-size=100000")...),
		"padded":              append(bytes.Clone(multi), pad...),
		"padded between":      append(append(bytes.Clone(multi), pad[:4]...), xzCompress(t, other, "-0", "--block-size=100000")...),
		"check none":          xzCompress(t, data, "-0", "--check=none", "--block-size=300000"),
		"check crc32":         xzCompress(t, data, "-0", "--check=crc32", "--block-size=300000"),
		"check crc64":         xzCompress(t, data, "-0", "--check=crc64", "--block-size=300000"),
		"check sha256":        xzCompress(t, data, "-0", "--check=sha256", "--block-size=300000"),
		"empty":               xzCompress(t, nil),
		"uncompressed chunks": xzCompress(t, sample(1<<20, 3)[:1<<20], "-0", "--block-size=65536"),
	}
	for name, xzData := range cases {
		t.Run(name, func(t *testing.T) {
			want := xzDecompress(t, xzData)
			for _, workers := range []int{1, 3} {
				noHang(t, func() {
					stream, into, at, err := decodeAll(t, xzData, workers)
					if err != nil {
						t.Fatalf("workers %d: %v", workers, err)
					}
					for how, got := range map[string][]byte{"stream": stream, "DecodeTo": into, "ReadAt": at} {
						if !bytes.Equal(got, want) {
							t.Errorf("workers %d, %s: %d bytes differ from xz -dc's %d", workers, how, len(got), len(want))
						}
					}
				})
			}
		})
	}
	x, err := Open(bytes.NewReader(multi), int64(len(multi)))
	if err != nil || len(x.Index().Blocks) < 10 || x.Index().Streams != 1 {
		t.Fatalf("multi-block file: %v, index %+v", err, x)
	}
}

// fixIndexCRC recomputes the CRC32 of the index of a one-stream file after
// a test edited it, so only the edit itself is wrong.
func indexRange(t *testing.T, xzData []byte) (start, end int) {
	footer := xzData[len(xzData)-12:]
	size := (int(binary.LittleEndian.Uint32(footer[4:])) + 1) * 4
	end = len(xzData) - 12
	return end - size, end
}

func TestBadInput(t *testing.T) {
	data := sample(2<<20, 4)
	good := xzCompress(t, data, "-T2", "-0", "--block-size=200000")
	x, err := Open(bytes.NewReader(good), int64(len(good)))
	if err != nil {
		t.Fatal(err)
	}
	b3 := x.Index().Blocks[3]
	is, ie := indexRange(t, good)

	flip := func(off int) []byte { d := bytes.Clone(good); d[off] ^= 0x55; return d }
	// Change a record's uncompressed size and fix the index CRC: the index
	// is self-consistent, the block disagrees.
	lying := bytes.Clone(good)
	idx := lying[is:ie]
	// Records start after the indicator and the count; the first record's
	// uncompressed size follows its unpadded size.
	_, n1 := uvarint(idx[1:])
	_, n2 := uvarint(idx[1+n1:])
	idx[1+n1+n2] ^= 0x01
	binary.LittleEndian.PutUint32(idx[len(idx)-4:], crc32.ChecksumIEEE(idx[:len(idx)-4]))

	checkFlip := bytes.Clone(good)
	checkFlip[b3.Offset+b3.UnpaddedSize-1] ^= 0x01

	bcj := xzCompress(t, data, "--x86", "--lzma2=preset=0", "--block-size=200000")

	cases := map[string]struct {
		data []byte
		want string
	}{
		"flipped byte in a block":     {flip(int(b3.Offset + b3.UnpaddedSize/2)), "block 3"},
		"flipped block header":        {flip(int(b3.Offset + 2)), "block 3"},
		"flipped check":               {checkFlip, "checksum error for block 3 (CRC64)"},
		"flipped index":               {flip(is + 3), "index"},
		"lying index":                 {lying, "block 0"},
		"flipped footer":              {flip(len(good) - 5), "footer"},
		"flipped stream header":       {flip(7), "stream header"},
		"trailing garbage":            {append(bytes.Clone(good), "garbage"...), "no stream footer"},
		"truncated by one":            {good[:len(good)-1], "no stream footer"},
		"truncated half":              {good[:len(good)/2], "no stream footer"},
		"truncated to header":         {good[:12], "too short"},
		"padding not a multiple of 4": {append(bytes.Clone(good), 0, 0), "no stream footer"},
		"only zeros":                  {make([]byte, 64), "only zero bytes"},
		"empty":                       {nil, "empty"},
		"BCJ filter":                  {bcj, "x86 BCJ filter"},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			noHang(t, func() {
				for _, workers := range []int{1, 2} {
					_, _, _, err := decodeAll(t, c.data, workers)
					if err == nil || !errors.Is(err, ErrFormat) || !strings.Contains(err.Error(), c.want) {
						t.Errorf("workers %d: err = %v, want an xz error saying %q", workers, err, c.want)
					}
				}
			})
		})
	}
}

// TestEveryByte flips each byte of a small multi-block file in turn: no
// flip hangs, panics or yields wrong data. Most are errors; a flip the
// decoder does not depend on (the compressed-size field of an LZMA2 chunk
// that ends at its end marker anyway) may decode to the original bytes,
// which the block check then confirms.
func TestEveryByte(t *testing.T) {
	data := sample(40000, 5)
	good := xzCompress(t, data, "-0", "--block-size=10000")
	tolerated := 0
	noHang(t, func() {
		for i := range good {
			d := bytes.Clone(good)
			d[i] ^= 0x80
			stream, into, at, err := decodeAll(t, d, 2)
			if err == nil && !(bytes.Equal(stream, data) && bytes.Equal(into, data) && bytes.Equal(at, data)) {
				t.Errorf("flip at byte %d of %d: wrong data and no error", i, len(good))
			}
			if err == nil {
				tolerated++
			}
		}
	})
	// Only the two compressed-size bytes of each block's one chunk.
	if tolerated > 2*4 {
		t.Errorf("%d of %d flips went unnoticed", tolerated, len(good))
	}
}

func TestCancel(t *testing.T) {
	data := sample(4<<20, 6)
	xzData := xzCompress(t, data, "-0", "--block-size=100000")
	x, err := Open(bytes.NewReader(xzData), int64(len(xzData)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	noHang(t, func() {
		if err := x.DecodeTo(ctx, &memFile{}, 2, false); !errors.Is(err, context.Canceled) {
			t.Errorf("DecodeTo after cancel: %v", err)
		}
		s := x.NewStream(context.Background(), 2)
		if _, err := io.ReadFull(s, make([]byte, 1000)); err != nil {
			t.Error(err)
		}
		s.Close() // must not hang with decoders still running
		if _, err := s.Read(make([]byte, 1)); err == nil {
			t.Error("read after Close succeeded")
		}
	})
}

// BenchmarkDecode compares single-threaded streaming (ulikunitz/xz's reader,
// the path OpenBase takes for single-block files) and this package with one
// goroutine against one goroutine per core, on a multi-block file, and
// reports the speed-ups as ratios.
func BenchmarkDecode(b *testing.B) {
	data := sample(32<<20, 7)
	path := filepath.Join(b.TempDir(), "bench.xz")
	os.WriteFile(path, xzCompress(b, data, "-T0", "-6", "--block-size=2MiB"), 0o644)
	f, err := os.Open(path)
	if err != nil {
		b.Fatal(err)
	}
	defer f.Close()
	st, _ := f.Stat()
	x, err := Open(f, st.Size())
	if err != nil {
		b.Fatal(err)
	}
	run := func(workers int) time.Duration {
		start := time.Now()
		s := x.NewStream(context.Background(), workers)
		n, err := io.Copy(io.Discard, s)
		s.Close()
		if err != nil || n != int64(len(data)) {
			b.Fatalf("%d bytes, %v", n, err)
		}
		return time.Since(start)
	}
	streaming := func() time.Duration {
		start := time.Now()
		zr, err := xz.NewReader(bufio.NewReaderSize(io.NewSectionReader(f, 0, st.Size()), 1<<20))
		if err != nil {
			b.Fatal(err)
		}
		n, err := io.Copy(io.Discard, zr)
		if err != nil || n != int64(len(data)) {
			b.Fatalf("%d bytes, %v", n, err)
		}
		return time.Since(start)
	}
	var stream, one, all time.Duration
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		stream += streaming()
		one += run(1)
		all += run(0)
	}
	b.ReportMetric(float64(stream)/float64(all), "speedup-vs-streaming")
	b.ReportMetric(float64(one)/float64(all), "speedup-vs-1-goroutine")
	b.ReportMetric(float64(len(data))*float64(b.N)/one.Seconds()/1e6, "MB/s-1-goroutine")
	b.ReportMetric(float64(len(data))*float64(b.N)/all.Seconds()/1e6, "MB/s-parallel")
}
