package cli

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/magibake/magibake/internal/flash"
	"github.com/magibake/magibake/internal/testkit"
)

// flashLoop attaches a loop device over backing, first made a new sparse
// file of size bytes unless size is 0, and detaches it when the test ends.
func flashLoop(t *testing.T, backing string, size int64) string {
	t.Helper()
	testkit.RequireTools(t, "losetup", "mount")
	if os.Geteuid() != 0 {
		t.Fatal("the flash tests attach loop devices: run them as root (as make test and CI do)")
	}
	if size > 0 {
		if err := os.WriteFile(backing, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(backing, size); err != nil {
			t.Fatal(err)
		}
	}
	dev := strings.TrimSpace(testkit.Run(t, "losetup", "--find", "--show", backing))
	t.Cleanup(func() {
		if out, err := exec.Command("losetup", "--detach", dev).CombinedOutput(); err != nil {
			t.Errorf("losetup --detach %s: %v\n%s", dev, err, out)
			return
		}
		// The kernel lets go of the backing file when the device's last
		// user closes it, which can come after losetup returns: until then
		// the file system holding the file cannot be unmounted (a loaded
		// CI host saw "target is busy").
		backingFile := filepath.Join("/sys/block", filepath.Base(dev), "loop", "backing_file")
		for i := 0; i < 600; i++ {
			if _, err := os.Stat(backingFile); err != nil {
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Errorf("%s still holds %s a minute after losetup --detach", dev, backing)
	})
	return dev
}

// flashMount mounts dev on mnt and unmounts it when the test ends, waiting
// while the kernel still reports it busy (a loop device over one of its
// files being released).
func flashMount(t *testing.T, fs, dev, mnt string, opts ...string) {
	t.Helper()
	testkit.Run(t, "mount", append(append([]string{"-t", fs}, opts...), dev, mnt)...)
	t.Cleanup(func() {
		var out []byte
		var err error
		for i := 0; i < 600; i++ {
			if out, err = exec.Command("umount", mnt).CombinedOutput(); err == nil || !bytes.Contains(out, []byte("busy")) {
				break
			}
			time.Sleep(100 * time.Millisecond)
		}
		if err != nil {
			t.Errorf("umount %s: %v\n%s", mnt, err, out)
		}
	})
}

// flashCard makes a 40 MiB card of node caspar in dir, as bake lays one
// out (FAT boot, ext4 root with /etc/magibake/manifest.json), and its
// .img.xz.
func flashCard(t *testing.T, dir string) (img, imgXZ string) {
	t.Helper()
	testkit.RequireTools(t, "mkfs.vfat", "mkfs.ext4", "sfdisk", "xz")
	boot, root := filepath.Join(dir, "boot.fat"), filepath.Join(dir, "root.ext4")
	if err := os.WriteFile(boot, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(boot, 8<<20); err != nil {
		t.Fatal(err)
	}
	testkit.Run(t, "mkfs.vfat", "-n", "bootfs", boot)
	tree := filepath.Join(dir, "tree")
	if err := os.MkdirAll(filepath.Join(tree, "etc", "magibake"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(tree, "etc", "magibake", "manifest.json"), []byte(`{"tool":"magibake","node":"caspar"}`), 0o644); err != nil {
		t.Fatal(err)
	}
	testkit.Run(t, "mkfs.ext4", "-q", "-L", "rootfs", "-O", "^64bit,^huge_file", "-E", "root_owner=0:0", "-d", tree, root, "28M")
	img = filepath.Join(dir, "caspar.img")
	testkit.Disk{LabelID: "0x6c1e5a3b", Boot: boot, Root: root, BootStart: 4 << 20, BootSize: 8 << 20, RootStart: 12 << 20, RootSize: 28 << 20}.Write(t, img)
	testkit.Run(t, "xz", "-T2", "--block-size=4MiB", "-k", "-0", img)
	return img, img + ".xz"
}

// runFlashCmd runs magibake as Execute does, with stdin in and a context
// cancelled at its cancelled'th check (0: never), and returns its exit code
// and output.
func runFlashCmd(t *testing.T, in io.Reader, cancelled int32, args ...string) (int, string, string) {
	t.Helper()
	var ctx context.Context = context.Background()
	if cancelled > 0 {
		c := &stopAt{Context: ctx}
		c.left.Store(cancelled)
		ctx = c
	}
	var out, errb bytes.Buffer
	root := NewRoot(&out, &errb)
	root.SetIn(in)
	code := run(ctx, root, args, &errb)
	return code, out.String(), errb.String()
}

func TestFlash(t *testing.T) {
	dir := t.TempDir()
	img, imgXZ := flashCard(t, dir)
	want, err := os.ReadFile(img)
	if err != nil {
		t.Fatal(err)
	}
	dev := flashLoop(t, filepath.Join(dir, "device"), 64<<20)
	small := flashLoop(t, filepath.Join(dir, "small"), 32<<20)
	// A device holding a mounted file system (this kernel makes no
	// partitions of loop devices: a mounted partition and a partition
	// given are tested on a fake sysfs in internal/flash).
	used := filepath.Join(dir, "used.ext4")
	testkit.Run(t, "mkfs.ext4", "-q", used, "48M")
	usedDev := flashLoop(t, used, 0)
	mnt := t.TempDir()
	flashMount(t, "ext4", usedDev, mnt, "-o", "ro")
	name := filepath.Base(dev)
	noTTY := strings.NewReader("")

	for _, tc := range []struct {
		name      string
		args      []string
		cancelled int32 // the context is cancelled at its cancelled'th check; 0: never
		code      int
		stderr    []string // lines, in order
	}{
		{"not removable", []string{imgXZ, dev, "--yes"}, 0, 3, []string{
			"magibake: " + dev + " is not a removable, USB or SD/MMC device; if it really is the card, give --force"}},
		{"too small", []string{imgXZ, small, "--yes", "--force"}, 0, 3, []string{
			"magibake: " + small + " holds 33554432 bytes, the card needs 41943040"}},
		{"mounted", []string{img, usedDev, "--yes"}, 0, 3, []string{
			"magibake: " + usedDev + " is mounted at " + mnt + " (" + filepath.Base(usedDev) + "): unmount it first",
			"magibake: " + usedDev + " is not a removable, USB or SD/MMC device; if it really is the card, give --force"}},
		{"a file", []string{img, used, "--yes", "--force"}, 0, 3, []string{"magibake: " + used + ": not a block device"}},
		{"no terminal", []string{imgXZ, dev, "--force"}, 0, 2, []string{
			"magibake: not a terminal: pass --yes to flash " + dev + " without asking"}},
		{"interrupted before writing", []string{img, dev, "--yes", "--force"}, 1, 130, []string{
			"magibake: interrupted; no output was written"}},
		{"interrupted", []string{img, dev, "--yes", "--force"}, 4, 130, []string{
			"magibake: interrupted: device " + dev + ": stopped before the end (context canceled); the device is incomplete and will not boot: flash it again"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runFlashCmd(t, noTTY, tc.cancelled, append([]string{"flash"}, tc.args...)...)
			if code != tc.code || stderr != strings.Join(tc.stderr, "\n")+"\n" {
				t.Errorf("exit %d, stderr:\n%s\nwant exit %d, stderr:\n%s", code, stderr, tc.code, strings.Join(tc.stderr, "\n"))
			}
		})
	}

	t.Run("yes", func(t *testing.T) {
		code, stdout, stderr := runFlashCmd(t, noTTY, 0, "flash", imgXZ, dev, "--yes", "--force")
		if code != 0 || !strings.HasPrefix(stdout, "flashed "+imgXZ+" onto "+dev+": ") || !strings.Contains(stdout, "read back and verified") {
			t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
		}
		if got := readBlock(t, dev, len(want)); !bytes.Equal(got, want) {
			t.Error("the device does not hold the card")
		}
	})

	// The prompt tells what the device holds, from its own partition table
	// when the kernel shows no partitions (as for loop devices): the card
	// written by "yes" has two.
	t.Run("asks/holds a card", func(t *testing.T) {
		_, _, stderr := runFlashCmd(t, pty(t, "nobody\n"), 0, "flash", img, dev, "--force")
		if !strings.Contains(stderr, "device  "+dev+": unknown model, 64.0 MiB\n        2 partition(s) in its partition table (none known to the kernel)\n") {
			t.Errorf("the prompt does not show the device's two partitions:\n%s", stderr)
		}
	})
	for _, answer := range []string{"caspar", name, "melchior"} {
		t.Run("asks/"+answer, func(t *testing.T) {
			wipe(t, dev)
			tty := pty(t, answer+"\n")
			code, stdout, stderr := runFlashCmd(t, tty, 0, "flash", img, dev, "--force")
			for _, s := range []string{"device  " + dev + ": unknown model, 64.0 MiB\n        no partitions (its partition table is empty or absent)\n", "card    " + img + ": node caspar, 40.0 MiB\n",
				"Everything on " + dev + " will be lost. Type caspar or " + name + " to flash it: "} {
				if !strings.Contains(stderr, s) {
					t.Errorf("stderr lacks %q:\n%s", s, stderr)
				}
			}
			got := readBlock(t, dev, len(want))
			if answer == "melchior" {
				if code != 3 || !strings.HasSuffix(stderr, `magibake: "melchior" is not caspar or `+name+"; nothing was written to "+dev+"\n") || bytes.Equal(got, want) {
					t.Errorf("wrong answer: exit %d, stderr:\n%s", code, stderr)
				}
				return
			}
			if code != 0 || !strings.HasPrefix(stdout, "flashed ") || !bytes.Equal(got, want) {
				t.Errorf("exit %d, the device holds the card: %v\nstdout: %s\nstderr: %s", code, bytes.Equal(got, want), stdout, stderr)
			}
		})
	}
}

// stopAt is a context that reports itself cancelled from its left'th call
// of Err on: an interruption at a chosen point of the work.
type stopAt struct {
	context.Context
	left atomic.Int32
}

func (c *stopAt) Err() error {
	if c.left.Add(-1) <= 0 {
		return context.Canceled
	}
	return nil
}

// readBlock reads the first n bytes of dev past the page cache.
func readBlock(t *testing.T, dev string, n int) []byte {
	t.Helper()
	f, err := os.Open(dev)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if err := unix.IoctlSetInt(int(f.Fd()), unix.BLKFLSBUF, 0); err != nil {
		t.Fatal(err)
	}
	b := make([]byte, n)
	if _, err := io.ReadFull(f, b); err != nil {
		t.Fatal(err)
	}
	return b
}

// wipe discards all of dev.
func wipe(t *testing.T, dev string) {
	t.Helper()
	testkit.RequireTools(t, "blkdiscard")
	testkit.Run(t, "blkdiscard", dev)
}

// pty returns the terminal end of a new pseudo-terminal whose input holds
// typed.
func pty(t *testing.T, typed string) *os.File {
	t.Helper()
	master, err := os.OpenFile("/dev/ptmx", os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { master.Close() })
	if err := unix.IoctlSetPointerInt(int(master.Fd()), unix.TIOCSPTLCK, 0); err != nil {
		t.Fatal(err)
	}
	n, err := unix.IoctlGetInt(int(master.Fd()), unix.TIOCGPTN)
	if err != nil {
		t.Fatal(err)
	}
	tty, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tty.Close() })
	if _, err := master.WriteString(typed); err != nil {
		t.Fatal(err)
	}
	// Drain the echo, so the terminal never blocks writing it.
	go io.Copy(io.Discard, master)
	return tty
}

// TestFlashHoldsCard refuses, on real loop devices, every device that holds
// what flash would read: the card's own file as the device, the card on a
// file system of the device (directly, through a loop device over a file on
// it, and on a btrfs), and the temp directory an .img.zst is decompressed
// into. The refusals come before the card is opened or decompressed, and
// the card is never changed.
func TestFlashHoldsCard(t *testing.T) {
	testkit.RequireTools(t, "mkfs.btrfs")
	dir := t.TempDir()
	img, _ := flashCard(t, dir)
	sum := func(p string) [32]byte {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		return sha256.Sum256(b)
	}
	// mounted makes a file system of type fs in a new file, attaches a loop
	// device over it and mounts it; it returns the device and mount point.
	mounted := func(backing, fs string, size int64, mkfs ...string) (string, string) {
		if err := os.WriteFile(backing, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(backing, size); err != nil {
			t.Fatal(err)
		}
		testkit.Run(t, mkfs[0], append(mkfs[1:], backing)...)
		dev := flashLoop(t, backing, 0)
		mnt := t.TempDir()
		flashMount(t, fs, dev, mnt)
		return dev, mnt
	}
	copyTo := func(mnt string) string {
		p := filepath.Join(mnt, "caspar.img")
		testkit.Run(t, "cp", img, p)
		return p
	}
	stick, stickMnt := mounted(filepath.Join(dir, "stick.ext4"), "ext4", 200<<20, "mkfs.ext4", "-q")
	onStick := copyTo(stickMnt)
	// A loop device over a file on the stick, holding a file system with
	// the card in it.
	inner, innerMnt := mounted(filepath.Join(stickMnt, "inner.ext4"), "ext4", 100<<20, "mkfs.ext4", "-q")
	onInner := copyTo(innerMnt)
	btrfs, btrfsMnt := mounted(filepath.Join(dir, "stick.btrfs"), "btrfs", 200<<20, "mkfs.btrfs", "-q")
	onBtrfs := copyTo(btrfsMnt)
	self := filepath.Join(dir, "self.img")
	testkit.Run(t, "cp", img, self)
	selfDev := flashLoop(t, self, 0)
	// A corrupt .img.zst: decompressing it would fail, so a refusal proves
	// flash did not decompress first.
	badZst := filepath.Join(dir, "bad.img.zst")
	if err := os.WriteFile(badZst, append([]byte{0x28, 0xb5, 0x2f, 0xfd}, bytes.Repeat([]byte{0xff}, 64)...), 0o644); err != nil {
		t.Fatal(err)
	}
	notRemovable := func(dev string) string {
		return "magibake: " + dev + " is not a removable, USB or SD/MMC device; if it really is the card, give --force"
	}
	base := filepath.Base
	for _, tc := range []struct {
		name   string
		args   []string
		tmpdir string
		stderr []string
	}{
		{"loop over the card", []string{self, selfDev, "--yes"}, "", []string{
			"magibake: " + selfDev + " is a loop device over the card " + self + " itself (" + base(selfDev) + "): writing it would destroy what flash is reading",
			notRemovable(selfDev)}},
		{"card on the device", []string{onStick, stick, "--yes", "--force"}, "", []string{
			"magibake: " + stick + " holds the card " + onStick + " (on " + base(stick) + "): writing it would destroy what flash is reading; copy it to another disk first",
			"magibake: " + stick + " is mounted at " + stickMnt + " (" + base(stick) + "): unmount it first",
			"magibake: " + stick + " is mounted at " + innerMnt + " (" + base(inner) + "): unmount it first"}},
		{"card on a loop device over a file on the device", []string{onInner, stick, "--yes", "--force"}, "", []string{
			"magibake: " + stick + " holds the card " + onInner + " (on " + base(inner) + "): writing it would destroy what flash is reading; copy it to another disk first",
			"magibake: " + stick + " is mounted at " + stickMnt + " (" + base(stick) + "): unmount it first",
			"magibake: " + stick + " is mounted at " + innerMnt + " (" + base(inner) + "): unmount it first"}},
		{"card on a btrfs", []string{onBtrfs, btrfs, "--yes", "--force"}, "", []string{
			"magibake: " + btrfs + " holds the card " + onBtrfs + " (on " + base(btrfs) + "): writing it would destroy what flash is reading; copy it to another disk first",
			"magibake: " + btrfs + " is mounted at " + btrfsMnt + " (" + base(btrfs) + "): unmount it first"}},
		{"temp directory on the device", []string{badZst, stick, "--yes", "--force"}, stickMnt, []string{
			"magibake: " + stick + " holds the temp directory " + stickMnt + " (on " + base(stick) + "): writing it would destroy what flash is reading; copy it to another disk first",
			"magibake: " + stick + " is mounted at " + stickMnt + " (" + base(stick) + "): unmount it first",
			"magibake: " + stick + " is mounted at " + innerMnt + " (" + base(inner) + "): unmount it first"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.tmpdir != "" {
				t.Setenv("TMPDIR", tc.tmpdir)
			}
			card := tc.args[0]
			before := sum(card)
			code, _, stderr := runFlashCmd(t, strings.NewReader(""), 0, append([]string{"flash"}, tc.args...)...)
			if code != 3 || stderr != strings.Join(tc.stderr, "\n")+"\n" {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 3, stderr:\n%s", code, stderr, strings.Join(tc.stderr, "\n"))
			}
			if sum(card) != before {
				t.Errorf("%s changed", card)
			}
			if left, _ := filepath.Glob(filepath.Join(tc.tmpdir, flash.TempPattern)); tc.tmpdir != "" && len(left) > 0 {
				t.Errorf("decompressed before refusing: %v", left)
			}
		})
	}
}
