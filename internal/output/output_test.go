package output

import (
	"bytes"
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"
)

// TestStageReadBack checks that the check sees the temp file as written (a
// fresh open, holes read as zeros, the full length), and that a failing
// check leaves nothing behind and is reported against the output's name.
func TestStageReadBack(t *testing.T) {
	src := make([]byte, 3*chunk+123)
	copy(src[10:], "head")
	copy(src[2*chunk+5:], "tail data after a hole")
	src[len(src)-1] = 0xff
	for _, tc := range []struct {
		name    string
		failure error
	}{{"check passes", nil}, {"check fails", errors.New("content differs")}} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			out := filepath.Join(dir, "card.img")
			var seen []byte
			check := func(r io.ReaderAt, size int64) error {
				if _, ok := r.(*os.File); !ok {
					t.Errorf("check got a %T, want the reopened file", r)
				}
				seen = make([]byte, size)
				if _, err := r.ReadAt(seen, 0); err != nil {
					return err
				}
				return tc.failure
			}
			err := Write(context.Background(), out, bytes.NewReader(src), int64(len(src)), check)
			if !bytes.Equal(seen, src) {
				t.Errorf("check read %d bytes that differ from the %d written", len(seen), len(src))
			}
			left, _ := os.ReadDir(dir)
			if tc.failure == nil {
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := os.ReadFile(out); !bytes.Equal(got, src) {
					t.Error("the output differs from the source")
				}
				if len(left) != 1 {
					t.Errorf("directory holds %v", left)
				}
				return
			}
			want := "output " + out + ": read back after writing: content differs"
			if err == nil || err.Error() != want {
				t.Errorf("error %v, want %q", err, want)
			}
			if len(left) != 0 {
				t.Errorf("left behind: %v", left)
			}
		})
	}
}
