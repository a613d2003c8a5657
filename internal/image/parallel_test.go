package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/xzblocks"
)

// TestOpenBaseParallel covers the multi-block path: the decoded disk, the
// hash of the file as given, multi-stream input, and a bad block check
// reported with the wording docs/reliability.md gives.
func TestOpenBaseParallel(t *testing.T) {
	dir := t.TempDir()
	disk := mkDisk(6<<20, [3]int64{0x0c, 2048, 4096}, [3]int64{0x83, 6144, 4096})
	rand.New(rand.NewSource(3)).Read(disk[1<<20 : 4<<20])
	xzData := mustRead(t, xzFile(t, dir, disk))
	x, err := xzblocks.Open(bytes.NewReader(xzData), int64(len(xzData)))
	if err != nil || len(x.Index().Blocks) < 4 {
		t.Fatalf("want a multi-block file: %v", err)
	}

	// Two streams: the disk split in two, compressed separately.
	var twoStreams []byte
	for _, half := range [][]byte{disk[:3<<20], disk[3<<20:]} {
		cmd := exec.Command("xz", "-c", "-0", "--block-size=1MiB")
		cmd.Stdin = bytes.NewReader(half)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("xz: %v", err)
		}
		twoStreams = append(twoStreams, out...)
	}

	for name, data := range map[string][]byte{"multi-block": xzData, "multi-stream": twoStreams} {
		p := filepath.Join(dir, name+".img.xz")
		os.WriteFile(p, data, 0o644)
		b, err := OpenBase(context.Background(), p, dir)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		got := make([]byte, len(disk))
		if _, err := b.ReadAt(got, 0); err != nil || !bytes.Equal(got, disk) || b.Size() != int64(len(disk)) {
			t.Errorf("%s: content differs (err %v)", name, err)
		}
		if sum := sha256.Sum256(data); b.SHA256 != hex.EncodeToString(sum[:]) || !b.Compressed {
			t.Errorf("%s: SHA256 %s is not the file's", name, b.SHA256)
		}
		b.Close()
	}

	// The last check byte of block 2 (its check ends the unpadded block).
	blk := x.Index().Blocks[2]
	bad := bytes.Clone(xzData)
	bad[blk.Offset+blk.UnpaddedSize-1] ^= 1
	p := filepath.Join(dir, "badcheck.img.xz")
	os.WriteFile(p, bad, 0o644)
	_, err = OpenBase(context.Background(), p, dir)
	want := "base " + p + ": unusable image: xz data is corrupt: xz: checksum error for block 2"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("bad check: %v, want %q", err, want)
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".magibake-base-*")); len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}
}
