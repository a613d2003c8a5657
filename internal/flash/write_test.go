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

// flashTo writes c onto the loop device dev as flash does: checked
// first, and forced (a loop device is not removable).
func flashTo(ctx context.Context, t testing.TB, c *Card, dev string, o Options, hk hooks) (*Result, error) {
	t.Helper()
	target, err := Host{}.Inspect(dev)
	must(t, err)
	return Host{}.write(ctx, c, target, true, o, hk)
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
			res, err := flashTo(context.Background(), t, c, dev, Options{Progress: func(what string, done, total int64) {
				if what == "flash" {
					last = done
				}
			}}, hooks{})
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
			res, err := flashTo(context.Background(), t, c, dev, Options{}, hooks{discard: tc.discard})
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
			_, err = flashTo(context.Background(), t, c, dev, Options{}, hooks{})
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
	_, err = flashTo(context.Background(), t, c, dev, Options{}, hooks{beforeVerify: func() {
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
	_, err = flashTo(ctx, t, c, dev, Options{Progress: func(what string, done, total int64) {
		if done > 20<<20 {
			cancel()
		}
	}}, hooks{})
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

// TestWriteSkippedStale flashes a device full of random bytes whose discard
// zeroes exactly the blocks the pre-check samples and nothing else: the
// samples of the skipped ranges read after the write find the old bytes,
// and every skipped range is written with zeros after all.
func TestWriteSkippedStale(t *testing.T) {
	cards := testCard(t)
	want, err := os.ReadFile(cards["img"])
	must(t, err)
	const size = 96 << 20
	dev := loopDevice(t, size, true)
	c, err := OpenCard(context.Background(), cards["img.xz"], t.TempDir())
	must(t, err)
	defer c.Close()
	sampled := func(fd int, _, _ uint64) error {
		d := &device{fd: fd, size: size, block: 512}
		zero := alignedBuf(512)
		for _, off := range d.samples(c.Size) {
			if _, err := unix.Pwrite(fd, zero, off); err != nil {
				return err
			}
		}
		return nil
	}
	res, err := flashTo(context.Background(), t, c, dev, Options{}, hooks{discard: sampled})
	must(t, err)
	if res.Discarded || !strings.HasPrefix(res.Why, "a skipped block (at byte ") {
		t.Errorf("discarded %v, why %q: the stale skipped ranges were not found", res.Discarded, res.Why)
	}
	checkDevice(t, dev, want, false)
}

// TestWriteSamples says how much of a well discarded device's skipped
// ranges is read back: one 4 KiB block per skipped MiB, and the last MiB.
func TestWriteSamples(t *testing.T) {
	cards := testCard(t)
	dev := loopDevice(t, 96<<20, true)
	c, err := OpenCard(context.Background(), cards["img"], t.TempDir())
	must(t, err)
	defer c.Close()
	res, err := flashTo(context.Background(), t, c, dev, Options{}, hooks{})
	must(t, err)
	skipped := (c.Size - res.Written) / unit
	if !res.Discarded || res.Samples != skipped*sampleSize+unit {
		t.Errorf("discarded %v, sampled %d bytes; want %d skipped MiB sampled (%d bytes) and the last MiB",
			res.Discarded, res.Samples, skipped, skipped*sampleSize)
	}
}

// TestWriteChecksDevice: the device written is the one checked, and it is
// still free when the write begins.
func TestWriteChecksDevice(t *testing.T) {
	cards := testCard(t)
	c, err := OpenCard(context.Background(), cards["img"], t.TempDir())
	must(t, err)
	defer c.Close()
	untouched := func(t *testing.T, dev string) {
		t.Helper()
		if b := readDevice(t, dev); !bytes.Equal(b, make([]byte, len(b))) {
			t.Errorf("%s was written", dev)
		}
	}

	t.Run("another device at the path", func(t *testing.T) {
		checked, plugged := loopDevice(t, 96<<20, false), loopDevice(t, 96<<20, false)
		link := filepath.Join(t.TempDir(), "sdcard")
		must(t, os.Symlink(checked, link))
		target, err := Host{}.Inspect(link)
		must(t, err)
		must(t, os.Remove(link))
		must(t, os.Symlink(plugged, link))
		_, err = Host{}.Write(context.Background(), c, target, true, Options{})
		if err == nil || !strings.Contains(err.Error(), link+" is no longer the device that was checked") {
			t.Errorf("write after the path changed device: %v", err)
		}
		untouched(t, plugged)
		untouched(t, checked)
	})

	// Write runs the checks again itself: a device that fails them now is
	// not written, whatever was checked before.
	t.Run("checks again", func(t *testing.T) {
		self := filepath.Join(t.TempDir(), "self.img")
		must(t, os.WriteFile(self, bytes.Repeat([]byte{0x5a}, 64<<20), 0o644))
		before, err := os.ReadFile(self)
		must(t, err)
		dev := strings.TrimSpace(testkit.Run(t, "losetup", "--find", "--show", self))
		defer testkit.Run(t, "losetup", "--detach", dev)
		over, err := OpenCard(context.Background(), self, t.TempDir())
		must(t, err)
		defer over.Close()
		target, err := Host{}.Inspect(dev)
		must(t, err)
		_, err = Host{}.Write(context.Background(), over, target, true, Options{})
		if err == nil || !strings.Contains(err.Error(), dev+" no longer passes the checks: "+dev+" is a loop device over the card "+self+" itself") {
			t.Errorf("write to a loop device over the card: %v", err)
		}
		if after, err := os.ReadFile(self); err != nil || !bytes.Equal(after, before) {
			t.Errorf("the card %s was changed", self)
		}
	})

	// Held exclusively as a mounted file system or a partitioning tool
	// holds it, which neither sysfs nor mountinfo shows: O_EXCL refuses.
	t.Run("held exclusively", func(t *testing.T) {
		dev := loopDevice(t, 96<<20, false)
		target, err := Host{}.Inspect(dev)
		must(t, err)
		fd, err := unix.Open(dev, unix.O_RDONLY|unix.O_EXCL|unix.O_CLOEXEC, 0)
		must(t, err)
		defer unix.Close(fd)
		_, err = Host{}.Write(context.Background(), c, target, true, Options{})
		if !errors.Is(err, unix.EBUSY) {
			t.Errorf("write to a device held exclusively: %v", err)
		}
		untouched(t, dev)
	})
}
