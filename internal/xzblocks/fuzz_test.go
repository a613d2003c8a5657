package xzblocks

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

// FuzzReader feeds damaged xz files to Open and every way of decoding: no
// panic, no hang, every error is ErrFormat, and whatever decodes has the
// index's size and the same bytes however it was read.
func FuzzReader(f *testing.F) {
	data := sample(64<<10, 8)
	f.Add(xzCompress(f, data, "-0", "--block-size=16384"))
	f.Add(xzCompress(f, data[:5000], "-0", "--check=sha256", "--block-size=2000"))
	f.Add(append(xzCompress(f, data[:3000], "-0", "--check=none"), xzCompress(f, data[:100], "-0", "--check=crc32")...))
	f.Fuzz(func(t *testing.T, in []byte) {
		x, err := Open(bytes.NewReader(in), int64(len(in)))
		if err != nil {
			if !errors.Is(err, ErrFormat) {
				t.Fatalf("Open: %v is not ErrFormat", err)
			}
			return
		}
		if x.Size() > 4<<20 {
			return // a lying index may claim any size; decoding it is not the point
		}
		s := x.NewStream(context.Background(), 2)
		stream, serr := io.ReadAll(s)
		s.Close()
		m := &memFile{}
		derr := x.DecodeTo(context.Background(), m, 2, false)
		for _, err := range []error{serr, derr} {
			if err != nil && !errors.Is(err, ErrFormat) {
				t.Fatalf("decode: %v is not ErrFormat", err)
			}
		}
		if (serr == nil) != (derr == nil) {
			t.Fatalf("stream says %v, DecodeTo says %v", serr, derr)
		}
		if serr != nil {
			return
		}
		at := make([]byte, x.Size())
		if _, err := x.ReadAt(at, 0); err != nil && err != io.EOF {
			t.Fatalf("ReadAt: %v", err)
		}
		into := append(m.buf, make([]byte, int(x.Size())-len(m.buf))...)
		if int64(len(stream)) != x.Size() || !bytes.Equal(stream, into) || !bytes.Equal(stream, at) {
			t.Fatal("the ways of decoding disagree")
		}
	})
}
