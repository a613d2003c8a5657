package flash

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/magibake/magibake/internal/testkit"
)

// loopDevice attaches a loop device over a new sparse file of size bytes,
// filled with random bytes when random is set (a used card), and detaches
// it when the test ends.
func loopDevice(t testing.TB, size int64, random bool) string {
	t.Helper()
	testkit.RequireTools(t, "losetup")
	if os.Geteuid() != 0 {
		t.Fatal("the flash tests attach loop devices: run them as root (as make test and CI do)")
	}
	backing := filepath.Join(t.TempDir(), "device")
	f, err := os.Create(backing)
	must(t, err)
	if random {
		r := rand.NewChaCha8([32]byte{7})
		_, err = io.CopyN(f, r, size)
		must(t, err)
	}
	must(t, f.Truncate(size))
	must(t, f.Close())
	dev := strings.TrimSpace(testkit.Run(t, "losetup", "--find", "--show", backing))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v\n%s", dev, err, out)
		}
	})
	return dev
}

// smallCard makes a Raspberry Pi OS-shaped card of 60 MiB in dir: an MBR,
// a FAT boot partition at 4 MiB with a kernel-sized file, an ext4 root at
// 20 MiB with random and text files and long zero runs between them, and
// returns its .img, .img.xz (multi-block, as xz -T0 makes), single-block
// .img.xz and .img.zst.
func smallCard(t testing.TB, dir string) map[string]string {
	t.Helper()
	testkit.RequireTools(t, "mkfs.vfat", "mcopy", "mkfs.ext4", "sfdisk", "xz", "zstd")
	r := rand.NewChaCha8([32]byte{1})
	random := func(p string, n int64) {
		f, err := os.Create(p)
		must(t, err)
		_, err = io.CopyN(f, r, n)
		must(t, err)
		must(t, f.Close())
	}
	boot, root := filepath.Join(dir, "boot.fat"), filepath.Join(dir, "root.ext4")
	must(t, os.WriteFile(boot, nil, 0o644))
	must(t, os.Truncate(boot, 16<<20))
	testkit.Run(t, "mkfs.vfat", "-n", "bootfs", boot)
	random(filepath.Join(dir, "kernel8.img"), 3<<20)
	testkit.Run(t, "mcopy", "-i", boot, filepath.Join(dir, "kernel8.img"), "::kernel8.img")
	tree := filepath.Join(dir, "tree")
	must(t, os.MkdirAll(filepath.Join(tree, "etc", "magibake"), 0o755))
	must(t, os.WriteFile(filepath.Join(tree, "etc", "hostname"), []byte("caspar\n"), 0o644))
	random(filepath.Join(tree, "usr-lib-blob"), 5<<20+123)
	testkit.Run(t, "mkfs.ext4", "-q", "-L", "rootfs", "-E", "root_owner=0:0", "-d", tree, root, "40M")
	img := filepath.Join(dir, "card.img")
	testkit.Disk{LabelID: "0x6c1e5a3b", Boot: boot, Root: root, BootStart: 4 << 20, BootSize: 16 << 20, RootStart: 20 << 20, RootSize: 40 << 20}.Write(t, img)
	testkit.Run(t, "xz", "-T2", "--block-size=4MiB", "-k", "-0", img)
	testkit.Run(t, "sh", "-c", fmt.Sprintf("xz -T1 -0 -c %s > %s.single.xz && zstd -q -k %s -o %s.zst", img, img, img, img))
	return map[string]string{"img": img, "img.xz": img + ".xz", "single-block img.xz": img + ".single.xz", "img.zst": img + ".zst"}
}

var (
	cardOnce  sync.Once
	cardFiles map[string]string
	cardDir   string
)

// testCard is smallCard, made once per test binary.
func testCard(t *testing.T) map[string]string {
	cardOnce.Do(func() {
		dir, err := os.MkdirTemp("", "magibake-flash-test-")
		must(t, err)
		cardDir = dir
		cardFiles = smallCard(t, dir)
	})
	if cardFiles == nil {
		t.Fatal("making the test card failed in an earlier test")
	}
	return cardFiles
}

func TestMain(m *testing.M) {
	code := m.Run()
	if cardDir != "" {
		os.RemoveAll(cardDir)
	}
	os.Exit(code)
}

// readDevice reads all of dev past the page cache's stale pages.
func readDevice(t testing.TB, dev string) []byte {
	t.Helper()
	f, err := os.Open(dev)
	must(t, err)
	defer f.Close()
	must(t, unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0))
	b, err := io.ReadAll(f)
	must(t, err)
	return b
}

// checkDevice fails unless dev starts with the card's bytes and, when
// zeroEnd is set, its last MiB is zero (after discard: all of the rest).
func checkDevice(t *testing.T, dev string, card []byte, restZero bool) {
	t.Helper()
	got := readDevice(t, dev)
	if !bytes.Equal(got[:len(card)], card) {
		for i := range card {
			if got[i] != card[i] {
				t.Fatalf("%s differs from the card first at byte %d (MiB %d): %#x, card %#x", dev, i, i>>20, got[i], card[i])
			}
		}
	}
	tail := got[len(got)-unit:]
	if restZero {
		tail = got[len(card):]
	}
	if i := bytes.IndexFunc(tail, func(r rune) bool { return r != 0 }); i >= 0 {
		t.Fatalf("%s: byte %d past the card is not zero", dev, len(got)-len(tail)+i)
	}
}

func TestWriteFormats(t *testing.T) {
	cards := testCard(t)
	want, err := os.ReadFile(cards["img"])
	must(t, err)
	for _, format := range []string{"img", "img.xz", "single-block img.xz", "img.zst"} {
		t.Run(format, func(t *testing.T) {
			dev := loopDevice(t, 96<<20, true)
			c, err := OpenCard(context.Background(), cards[format], t.TempDir())
			must(t, err)
			defer c.Close()
			if c.Size != int64(len(want)) {
				t.Fatalf("card size %d, want %d", c.Size, len(want))
			}
			var last int64
			res, err := Write(context.Background(), c, dev, Options{Progress: func(what string, done, total int64) {
				if what == "flash" {
					last = done
				}
			}})
			must(t, err)
			if !res.Discarded {
				t.Errorf("a loop device over a file discards: %q", res.Why)
			}
			if last != c.Size {
				t.Errorf("progress ended at %d of %d", last, c.Size)
			}
			// The card is 60 MiB of which about 12 hold data.
			if res.Written > 20<<20 {
				t.Errorf("wrote %d bytes: zero runs were not skipped", res.Written)
			}
			checkDevice(t, dev, want, true)
		})
	}
}

// TestWriteUsedDevice flashes a device full of random bytes whose discard
// fails, or claims to work but leaves the old bytes: the card's zeros must
// be written then, and the device's last MiB zeroed.
func TestWriteUsedDevice(t *testing.T) {
	cards := testCard(t)
	want, err := os.ReadFile(cards["img"])
	must(t, err)
	for _, tc := range []struct {
		name    string
		discard func(fd int, off, n uint64) error
		why     string
	}{
		{"unsupported", func(int, uint64, uint64) error { return unix.EOPNOTSUPP }, "the device cannot discard (operation not supported)"},
		{"not zeroing", func(int, uint64, uint64) error { return nil }, "a discarded block (at byte 0) does not read back zero"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dev := loopDevice(t, 96<<20, true)
			c, err := OpenCard(context.Background(), cards["img.xz"], t.TempDir())
			must(t, err)
			defer c.Close()
			res, err := write(context.Background(), c, dev, Options{}, hooks{discard: tc.discard})
			must(t, err)
			if res.Discarded || res.Why != tc.why {
				t.Errorf("discarded %v, why %q; want %q", res.Discarded, res.Why, tc.why)
			}
			if res.Written != c.Size+unit {
				t.Errorf("wrote %d bytes, want the card's %d and the last MiB", res.Written, c.Size)
			}
			checkDevice(t, dev, want, false)
		})
	}
}

// TestWriteOddSize flashes a raw card whose size is not a whole number of
// MiB, nor of 4 KiB, onto a device exactly its size rounded to a sector.
func TestWriteOddSize(t *testing.T) {
	card := make([]byte, 5<<20+1536)
	rand.NewChaCha8([32]byte{3}).Read(card[1<<20:])
	clear(card[2<<20 : 4<<20])
	p := filepath.Join(t.TempDir(), "odd.img")
	must(t, os.WriteFile(p, card, 0o644))
	for _, size := range []int64{int64(len(card)), 8 << 20} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			dev := loopDevice(t, size, true)
			c, err := OpenCard(context.Background(), p, t.TempDir())
			must(t, err)
			defer c.Close()
			_, err = Write(context.Background(), c, dev, Options{})
			must(t, err)
			checkDevice(t, dev, card, true)
		})
	}
}

// TestWriteVerify damages the device between writing and reading back.
func TestWriteVerify(t *testing.T) {
	cards := testCard(t)
	dev := loopDevice(t, 96<<20, false)
	c, err := OpenCard(context.Background(), cards["img"], t.TempDir())
	must(t, err)
	defer c.Close()
	_, err = write(context.Background(), c, dev, Options{}, hooks{beforeVerify: func() {
		f, err := os.OpenFile(dev, os.O_WRONLY, 0)
		must(t, err)
		_, err = f.WriteAt([]byte("rot"), 4<<20+100)
		must(t, err)
		must(t, f.Sync())
		must(t, f.Close())
	}})
	if err == nil || !strings.Contains(err.Error(), "bytes 4194304 to ") || !strings.Contains(err.Error(), "read back differ from what was written") ||
		!errors.Is(err, ErrIncomplete) {
		t.Fatalf("damaged device: %v", err)
	}
}

// TestWriteCancel stops a flash half way: the error says the device is
// incomplete, and is a cancellation.
func TestWriteCancel(t *testing.T) {
	cards := testCard(t)
	dev := loopDevice(t, 96<<20, false)
	c, err := OpenCard(context.Background(), cards["img.xz"], t.TempDir())
	must(t, err)
	defer c.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	_, err = Write(ctx, c, dev, Options{Progress: func(what string, done, total int64) {
		if done > 20<<20 {
			cancel()
		}
	}})
	if !errors.Is(err, context.Canceled) || !errors.Is(err, ErrIncomplete) {
		t.Fatalf("cancelled flash: %v", err)
	}
}

// TestOpenCard refuses what is not a card.
func TestOpenCard(t *testing.T) {
	dir := t.TempDir()
	for name, data := range map[string][]byte{
		"empty.img":   nil,
		"card.img.gz": {0x1f, 0x8b, 8, 0},
		"bad.img.xz":  append([]byte{0xfd, '7', 'z', 'X', 'Z', 0}, make([]byte, 64)...),
		"bad.img.zst": append([]byte{0x28, 0xb5, 0x2f, 0xfd}, bytes.Repeat([]byte{0xff}, 64)...),
	} {
		p := filepath.Join(dir, name)
		must(t, os.WriteFile(p, data, 0o644))
		c, err := OpenCard(context.Background(), p, dir)
		if err == nil {
			c.Close()
			t.Errorf("%s: opened", name)
			continue
		}
		if !strings.HasPrefix(err.Error(), "card "+p+": ") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if left, _ := filepath.Glob(filepath.Join(dir, TempPattern)); len(left) > 0 {
		t.Errorf("temp files left: %v", left)
	}
}
