package image

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// mkDisk builds a disk of size bytes whose table holds the given entries.
func mkDisk(size int64, parts ...[3]int64) []byte {
	d := make([]byte, size)
	binary.LittleEndian.PutUint32(d[440:], 0x6c1e5a3b)
	for i, p := range parts {
		e := d[446+16*i:]
		e[4] = byte(p[0])
		binary.LittleEndian.PutUint32(e[8:], uint32(p[1]))
		binary.LittleEndian.PutUint32(e[12:], uint32(p[2]))
	}
	d[510], d[511] = 0x55, 0xaa
	return d
}

func TestReadLayout(t *testing.T) {
	const size = 64 << 20
	good := mkDisk(size, [3]int64{0x0c, 16384, 32768}, [3]int64{0x83, 49152, 65536})
	l, err := ReadLayout(bytes.NewReader(good), size)
	if err != nil {
		t.Fatal(err)
	}
	if l.Boot.Start != 16384*512 || l.Boot.Size != 32768*512 || l.Root.Index != 2 || l.Root.Start != 49152*512 {
		t.Errorf("layout %+v", l)
	}
	if got := l.PartUUID(l.Root); got != "6c1e5a3b-02" {
		t.Errorf("PartUUID = %s", got)
	}
	old := mkDisk(size, [3]int64{0x0c, 8192, 32768}, [3]int64{0x83, 40960, 65536})
	if l, err := ReadLayout(bytes.NewReader(old), size); err != nil || l.Boot.Start != 8192*512 {
		t.Errorf("pre-2025 layout: %+v, %v", l, err)
	}

	noSig := mkDisk(size, [3]int64{0x0c, 16384, 32768})
	noSig[510] = 0
	tests := []struct {
		name string
		disk []byte
		want string
	}{
		{"text file", append([]byte("hello, I am not a disk\n"), make([]byte, 1000)...), "not a disk image (no MBR boot signature)"},
		{"tiny", []byte("x"), "smaller than a partition table"},
		{"no signature", noSig, "no MBR boot signature"},
		{"gpt", mkDisk(size, [3]int64{0xee, 1, 100000}), "GPT disk"},
		{"no fat", mkDisk(size, [3]int64{0x83, 49152, 65536}), "no FAT32 boot partition"},
		{"no ext4", mkDisk(size, [3]int64{0x0c, 16384, 32768}), "no Linux root partition"},
		{"beyond end", mkDisk(size, [3]int64{0x0c, 16384, 32768}, [3]int64{0x83, 49152, 1 << 20}), "beyond the end"},
		{"overlap", mkDisk(size, [3]int64{0x0c, 16384, 32768}, [3]int64{0x83, 40000, 1000}), "overlap"},
		{"empty partition", mkDisk(size, [3]int64{0x0c, 16384, 0}), "empty"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ReadLayout(bytes.NewReader(tt.disk), int64(len(tt.disk)))
			if err == nil || !strings.Contains(err.Error(), tt.want) || !errors.Is(err, ErrBadImage) {
				t.Errorf("err = %v, want ErrBadImage containing %q", err, tt.want)
			}
		})
	}
}

func TestDeviceCopyOnWrite(t *testing.T) {
	base := make([]byte, 3*PageSize+100)
	rand.New(rand.NewSource(1)).Read(base)
	orig := bytes.Clone(base)
	d := NewDevice(bytes.NewReader(base), int64(len(base)))
	want := bytes.Clone(base)
	writes := []struct {
		off  int64
		data string
	}{{10, "hello"}, {PageSize - 2, "across"}, {3 * PageSize, "tail"}, {int64(len(base)) - 1, "!"}}
	for _, w := range writes {
		if _, err := d.WriteAt([]byte(w.data), w.off); err != nil {
			t.Fatal(err)
		}
		copy(want[w.off:], w.data)
	}
	got := make([]byte, len(base))
	if _, err := d.ReadAt(got, 0); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Error("device content differs from base+writes")
	}
	if !bytes.Equal(base, orig) {
		t.Error("the base was written")
	}
	if n := len(d.DirtyPages()); n != 3 {
		t.Errorf("%d dirty pages, want 3", n)
	}
	if _, err := d.WriteAt([]byte("xx"), int64(len(base))-1); err == nil {
		t.Error("write past the end succeeded")
	}
	// A read crossing the end returns the bytes there are and io.EOF.
	n, err := d.ReadAt(make([]byte, 10), int64(len(base))-4)
	if n != 4 || err == nil {
		t.Errorf("read across end: n=%d err=%v", n, err)
	}
	s := d.Section(PageSize, PageSize)
	buf := make([]byte, 4)
	s.ReadAt(buf, 0)
	if string(buf) != "ross" {
		t.Errorf("section read %q", buf)
	}
	if _, err := s.WriteAt([]byte("toolong"), PageSize-2); err == nil {
		t.Error("write past the section succeeded")
	}
}

func xzFile(t *testing.T, dir string, data []byte) string {
	t.Helper()
	if _, err := exec.LookPath("xz"); err != nil {
		t.Fatal("xz not found: apt-get install -y xz-utils")
	}
	raw := filepath.Join(dir, "disk.img")
	os.WriteFile(raw, data, 0o644)
	out, err := exec.Command("xz", "-T2", "-0", "--block-size=1MiB", "-k", "-f", raw).CombinedOutput()
	if err != nil {
		t.Fatalf("xz: %v %s", err, out)
	}
	return raw + ".xz"
}

func TestOpenBase(t *testing.T) {
	dir := t.TempDir()
	disk := mkDisk(6<<20, [3]int64{0x0c, 2048, 4096}, [3]int64{0x83, 6144, 4096})
	rand.New(rand.NewSource(2)).Read(disk[2<<20 : 3<<20])
	xzPath := xzFile(t, dir, disk)
	xzData, _ := os.ReadFile(xzPath)

	for _, p := range []string{filepath.Join(dir, "disk.img"), xzPath} {
		sumBefore := sha256.Sum256(mustRead(t, p))
		b, err := OpenBase(context.Background(), p, dir)
		if err != nil {
			t.Fatalf("%s: %v", p, err)
		}
		got := make([]byte, len(disk))
		if _, err := b.ReadAt(got, 0); err != nil || !bytes.Equal(got, disk) || b.Size() != int64(len(disk)) {
			t.Errorf("%s: content differs (err %v)", p, err)
		}
		if b.SHA256 != hex.EncodeToString(sumBefore[:]) {
			t.Errorf("%s: SHA256 %s is not the file's", p, b.SHA256)
		}
		b.Close()
		if sha256.Sum256(mustRead(t, p)) != sumBefore {
			t.Errorf("%s changed", p)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, ".magibake-base-*")); len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}

	corrupt := bytes.Clone(xzData)
	corrupt[len(corrupt)/2] ^= 0xff
	bad := map[string][]byte{
		"truncated.img.xz": xzData[:len(xzData)*2/3],
		"corrupt.img.xz":   corrupt,
		"trailing.img.xz":  append(bytes.Clone(xzData), []byte("garbage after the stream")...),
		"headonly.img.xz":  xzData[:12],
		"zstd.img.zst":     {0x28, 0xb5, 0x2f, 0xfd, 1, 2, 3},
	}
	wants := map[string]string{
		"truncated.img.xz": "truncated",
		"corrupt.img.xz":   "corrupt",
		"trailing.img.xz":  "corrupt",
		"headonly.img.xz":  "xz",
		"zstd.img.zst":     "not supported",
	}
	for name, data := range bad {
		t.Run(name, func(t *testing.T) {
			p := filepath.Join(dir, name)
			os.WriteFile(p, data, 0o644)
			_, err := OpenBase(context.Background(), p, dir)
			if err == nil || !strings.Contains(err.Error(), wants[name]) || !strings.Contains(err.Error(), p) {
				t.Errorf("err = %v, want one naming %s and saying %q", err, p, wants[name])
			}
			if left, _ := filepath.Glob(filepath.Join(dir, ".magibake-base-*")); len(left) > 0 {
				t.Errorf("temp files left: %v", left)
			}
		})
	}
	if _, err := OpenBase(context.Background(), filepath.Join(dir, "missing.img"), dir); err == nil || !strings.Contains(err.Error(), "missing.img: no such file") {
		t.Errorf("missing base: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := OpenBase(ctx, xzPath, dir); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
}

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
