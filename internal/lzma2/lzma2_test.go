package lzma2

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ulikunitz/xz/lzma"
)

// sample is data shaped like a card: random bytes (binaries, compressed
// files), text, long zero runs and short repeats.
func sample(n int, seed uint64) []byte {
	rng := rand.New(rand.NewPCG(seed, 1))
	var b bytes.Buffer
	for b.Len() < n {
		switch rng.IntN(4) {
		case 0:
			p := make([]byte, rng.IntN(8192))
			for i := range p {
				p[i] = byte(rng.Uint32())
			}
			b.Write(p)
		case 1:
			for range rng.IntN(200) {
				fmt.Fprintf(&b, "line %d: the quick brown fox %x\n", rng.IntN(1000), rng.Uint32()%4096)
			}
		case 2:
			b.Write(make([]byte, rng.IntN(300000)))
		case 3:
			pat := []byte{byte(rng.Uint32()), byte(rng.Uint32()), 0, 1}[:1+rng.IntN(4)]
			b.Write(bytes.Repeat(pat, rng.IntN(5000)))
		}
	}
	return b.Bytes()[:n]
}

// rawLZMA2 compresses p with the real xz into raw LZMA2 data (no container).
// With MAGIBAKE_XZ_RECORD=DIR it also keeps each output in DIR; with
// MAGIBAKE_XZ_REPLAY=DIR it starts no xz and reads them from there. make
// unit runs the 32-bit ARM build under qemu-user that way: qemu-user 7.2
// sometimes hangs a Go program that starts a process (golang/go#68976; one
// run here hung 10 minutes in forkExec).
func rawLZMA2(t testing.TB, p []byte, filter string) []byte {
	t.Helper()
	sum := sha256.Sum256(append([]byte(filter+"\x00"), p...))
	name := hex.EncodeToString(sum[:12]) + ".lzma2"
	if dir := os.Getenv("MAGIBAKE_XZ_REPLAY"); dir != "" {
		out, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("MAGIBAKE_XZ_REPLAY: no recorded xz output for --lzma2=%s of %d bytes: %v", filter, len(p), err)
		}
		return out
	}
	cmd := exec.Command("xz", "--format=raw", "--lzma2="+filter, "-c")
	cmd.Stdin = bytes.NewReader(p)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("xz --format=raw --lzma2=%s: %v (is xz-utils installed?)", filter, err)
	}
	if dir := os.Getenv("MAGIBAKE_XZ_RECORD"); dir != "" {
		if err := os.WriteFile(filepath.Join(dir, name), out, 0o644); err != nil {
			t.Fatalf("MAGIBAKE_XZ_RECORD: %v", err)
		}
	}
	return out
}

// TestMatchesXZ decodes what xz makes with every kind of setting a block
// can have (presets, lc/lp/pb, small dictionaries, uncompressed chunks from
// random data) and must give back exactly the input.
func TestMatchesXZ(t *testing.T) {
	data := sample(5<<20, 1)
	// Seeded, so that a recorded xz output matches it (MAGIBAKE_XZ_REPLAY).
	rng := rand.New(rand.NewPCG(5, 5))
	random := make([]byte, 300000)
	for i := range random {
		random[i] = byte(rng.Uint32())
	}
	for _, tc := range []struct {
		name, filter string
		data         []byte
	}{
		{"preset 0", "preset=0", data},
		{"preset 6", "preset=6", data},
		{"preset 9e", "preset=9e,dict=8MiB", data},
		{"lc0 lp0 pb0", "preset=6,lc=0,lp=0,pb=0", data},
		{"lc4 lp0 pb4", "preset=6,lc=4,lp=0,pb=4", data},
		{"lc0 lp4 pb2", "preset=6,lc=0,lp=4,pb=2", data},
		{"lc1 lp3 pb1", "preset=6,lc=1,lp=3,pb=1", data},
		{"dict 4 KiB", "preset=6,dict=4KiB", data},
		{"fast mode hc3", "preset=1,mf=hc3", data},
		{"random: stored chunks", "preset=6", random},
		{"empty", "preset=6", nil},
		{"one byte", "preset=6", []byte{42}},
		{"zeros", "preset=6", make([]byte, 3<<20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			raw := rawLZMA2(t, tc.data, tc.filter)
			got, n, err := Decode(make([]byte, 0, len(tc.data)), raw, 64<<20)
			if err != nil {
				t.Fatal(err)
			}
			if n != len(raw) {
				t.Errorf("took %d of %d bytes", n, len(raw))
			}
			if !bytes.Equal(got, tc.data) {
				t.Fatalf("decoded %d bytes differ from the %d input bytes", len(got), len(tc.data))
			}
		})
	}
}

// TestBadInput: damaged data is an error, never a panic, a hang or output
// beyond the capacity given.
func TestBadInput(t *testing.T) {
	data := sample(1<<20, 2)
	raw := rawLZMA2(t, data, "preset=6")
	flip := func(at int) []byte { b := bytes.Clone(raw); b[at] ^= 0x10; return b }
	for _, tc := range []struct {
		name string
		in   []byte
		cap  int
		want error
	}{
		{"empty", nil, len(data), ErrCorrupt},
		{"no end marker", raw[:len(raw)-1], len(data), ErrCorrupt},
		{"truncated", raw[:len(raw)/2], len(data), ErrCorrupt},
		{"bad control byte", append([]byte{0x03}, raw[1:]...), len(data), ErrCorrupt},
		{"no dictionary reset first", append([]byte{0x02}, raw[1:]...), len(data), ErrCorrupt},
		{"first LZMA chunk keeps the dictionary", append([]byte{0x80 | raw[0]&0x1f}, raw[1:]...), len(data), ErrCorrupt},
		{"bad properties", append(append([]byte{}, raw[:5]...), append([]byte{255}, raw[6:]...)...), len(data), ErrCorrupt},
		{"too long for the index", raw, len(data) - 1, ErrTooLong},
		{"flipped byte in the data", flip(len(raw) / 3), len(data), nil},
		{"flipped byte near the start", flip(8), len(data), nil},
		{"flipped chunk size", flip(3), len(data), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, _, err := Decode(make([]byte, 0, tc.cap), tc.in, 64<<20)
			if len(got) > tc.cap {
				t.Fatalf("wrote %d bytes past a capacity of %d", len(got), tc.cap)
			}
			switch {
			case tc.want != nil && !errors.Is(err, tc.want):
				t.Fatalf("error %v, want %v", err, tc.want)
			case tc.want == nil && err == nil && bytes.Equal(got, data):
				t.Fatal("damaged data decoded to the original")
			}
		})
	}
}

// FuzzDecode: any input is an error or decodes, never a panic or a write
// past the capacity; what both decode, ulikunitz/xz's decoder and ours
// must decode alike.
func FuzzDecode(f *testing.F) {
	for i, filter := range []string{"preset=0", "preset=6,lc=0,lp=4,pb=0", "preset=6,lc=4,pb=4,dict=4KiB"} {
		f.Add(rawLZMA2(f, sample(50000, uint64(i)), filter), 50000)
	}
	f.Add([]byte{0x01, 0x00, 0x00, 'x', 0x00}, 1)
	f.Fuzz(func(t *testing.T, in []byte, size int) {
		size = max(0, min(size, 1<<20))
		got, _, err := Decode(make([]byte, 0, size), in, 1<<20)
		if len(got) > size {
			t.Fatalf("wrote %d bytes past a capacity of %d", len(got), size)
		}
		if err != nil {
			return
		}
		r, rerr := lzma.Reader2Config{DictCap: 1 << 20}.NewReader2(bytes.NewReader(in))
		if rerr != nil {
			return
		}
		want, rerr := io.ReadAll(io.LimitReader(r, int64(size)+1))
		if rerr == nil && !bytes.Equal(got, want) {
			t.Fatalf("ours decodes %d bytes, ulikunitz/xz %d, and they differ", len(got), len(want))
		}
	})
}

// BenchmarkDecode measures the card-shaped sample at xz -6 against
// ulikunitz/xz's LZMA2 reader, the decoder this package replaces.
func BenchmarkDecode(b *testing.B) {
	data := sample(16<<20, 3)
	raw := rawLZMA2(b, data, "preset=6")
	b.Run("lzma2", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		buf := make([]byte, 0, len(data))
		for b.Loop() {
			if _, _, err := Decode(buf, raw, 8<<20); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("ulikunitz", func(b *testing.B) {
		b.SetBytes(int64(len(data)))
		for b.Loop() {
			r, err := lzma.Reader2Config{DictCap: 8 << 20}.NewReader2(bytes.NewReader(raw))
			if err != nil {
				b.Fatal(err)
			}
			if _, err := io.Copy(io.Discard, r); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// TestRandomChunks feeds LZMA chunks of random bytes behind valid headers:
// each is an error or decodes, never a panic. `make test` runs this package
// for 32-bit ARM too (GOARCH=arm), where an int is 32 bits and a distance
// near 2^32 once turned negative and passed the bounds checks.
func TestRandomChunks(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 7))
	for i := range 20000 {
		body := make([]byte, 5+rng.IntN(300))
		for k := range body {
			body[k] = byte(rng.Uint32())
		}
		body[0] = 0 // the range coder's first byte
		unpacked := 1 + rng.IntN(4096)
		in := []byte{0xe0, byte((unpacked - 1) >> 8), byte(unpacked - 1), byte((len(body) - 1) >> 8), byte(len(body) - 1), byte(rng.IntN(9 * 5 * 5))}
		in = append(append(in, body...), 0)
		func() {
			defer func() {
				if r := recover(); r != nil {
					t.Fatalf("input %d (%x) panics: %v", i, in, r)
				}
			}()
			Decode(make([]byte, 0, unpacked), in, 1<<20)
		}()
	}
}

// TestDecodeFunc: the callback sees the output grow chunk by chunk to the
// whole, each time a prefix of the result, and its error stops decoding.
func TestDecodeFunc(t *testing.T) {
	data := sample(6<<20, 11)
	raw := rawLZMA2(t, data, "preset=6")
	var calls, last int
	got, _, err := DecodeFunc(make([]byte, 0, len(data)), raw, 8<<20, func(out []byte) error {
		calls++
		if len(out) < last || len(out)-last > maxUncompressedLen || !bytes.Equal(out, data[:len(out)]) {
			t.Fatalf("call %d: %d bytes after %d, or not a prefix of the data", calls, len(out), last)
		}
		last = len(out)
		return nil
	})
	if err != nil || !bytes.Equal(got, data) || last != len(data) || calls < 3 {
		t.Fatalf("err %v, %d calls, last saw %d of %d bytes", err, calls, last, len(data))
	}
	stop := errors.New("stop")
	if _, _, err := DecodeFunc(make([]byte, 0, len(data)), raw, 8<<20, func([]byte) error { return stop }); err != stop {
		t.Fatalf("callback error: %v, want it returned as is", err)
	}
}
