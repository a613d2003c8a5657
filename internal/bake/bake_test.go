package bake

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/image"
	"github.com/magibake/magibake/internal/manifest"
	"github.com/magibake/magibake/internal/output"
	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/testkit"
)

const (
	bootStart = 16384 * 512
	bootSize  = 300 << 20
	rootSize  = 64 << 20
	rootStart = bootStart + bootSize
)

// smallCard builds a Pi-OS-shaped card small enough for a unit test: MBR,
// FAT32 boot (-s 4 like Pi OS) and an ext4 root made like Pi OS's, with an
// htree /etc.
func smallCard(t testing.TB, dir string) string {
	testkit.RequireTools(t, "mkfs.vfat", "mcopy", "mkfs.ext4", "e2fsck", "sfdisk")
	tree := filepath.Join(dir, "tree")
	for _, d := range []string{"etc/systemd/system/multi-user.target.wants", "usr/bin", "home"} {
		os.MkdirAll(filepath.Join(tree, d), 0o755)
	}
	for i := range 320 {
		os.WriteFile(filepath.Join(tree, "etc", fmt.Sprintf("base-%03d.conf", i)), []byte(strings.Repeat("x", i)), 0o644)
	}
	os.WriteFile(filepath.Join(tree, "etc/hostname"), []byte("raspberrypi\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "etc/hosts"), []byte("127.0.0.1 localhost\n127.0.1.1 raspberrypi\n"), 0o644)
	os.WriteFile(filepath.Join(tree, "etc/machine-id"), []byte("uninitialized\n"), 0o444)
	os.WriteFile(filepath.Join(tree, "usr/bin/tool"), bytes.Repeat([]byte{1, 2, 3}, 100000), 0o755)
	root := filepath.Join(dir, "root.ext4")
	testkit.Run(t, "mkfs.ext4", "-q", "-F", "-L", "rootfs", "-O", "^64bit,^huge_file", "-d", tree, root, fmt.Sprint(rootSize>>10)+"k")
	testkit.IndexExt4(t, root)
	boot := smallBoot(t, dir)
	disk := filepath.Join(dir, "card.img")
	testkit.Disk{LabelID: "0x6c1e5a3b", Boot: boot, Root: root, BootStart: bootStart, BootSize: bootSize, RootStart: rootStart, RootSize: rootSize}.Write(t, disk)
	return disk
}

// smallBoot makes smallCard's boot partition, dir/boot.fat: FAT32 with 2 KiB
// clusters (-s 4 like Pi OS) holding a cmdline.txt of one cluster and a
// config.txt of four, both written by mtools.
func smallBoot(t testing.TB, dir string) string {
	testkit.RequireTools(t, "mkfs.vfat", "mcopy")
	boot := filepath.Join(dir, "boot.fat")
	testkit.Run(t, "mkfs.vfat", "-C", "-F", "32", "-s", "4", "-n", "bootfs", boot, fmt.Sprint(bootSize>>10))
	os.WriteFile(filepath.Join(dir, "cmdline.txt"), []byte("console=serial0,115200 console=tty1 root=PARTUUID=6c1e5a3b-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "config.txt"), []byte("[all]\n"+strings.Repeat("# padding line for a long config\n", 200)), 0o644)
	testkit.Run(t, "mcopy", "-i", boot, filepath.Join(dir, "cmdline.txt"), filepath.Join(dir, "config.txt"), "::/")
	return boot
}

func fileSum(t *testing.T, p string) [32]byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sha256.Sum256(b)
}

func TestApplyToSmallCard(t *testing.T) {
	testkit.RequireTools(t, "debugfs", "fsck.fat", "mtype", "mdir")
	dir := t.TempDir()
	disk := smallCard(t, dir)
	before := fileSum(t, disk)

	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	p := &plan.Plan{Node: "caspar", MTime: mtime}
	add := func(op plan.Op) { p.Ops = append(p.Ops, op) }
	file := func(part plan.Partition, path, content string, mode fs.FileMode, uid uint32) {
		add(plan.Op{Partition: part, Kind: plan.WriteFile, Path: path, Content: []byte(content), Mode: mode, UID: uid, GID: uid})
	}
	file(plan.Boot, "/ssh", "", 0o644, 0)
	file(plan.Boot, "/userconf.txt", "pi:$y$j9T$salt$hash\n", 0o644, 0)
	file(plan.Boot, "/config.txt", "[all]\ndtparam=audio=on\n", 0o644, 0) // replaced by a much shorter file
	file(plan.Boot, "/magibake/nested/note.txt", "in a new directory\n", 0o644, 0)
	// Sizes around go-diskfs's sector and cluster (2048 bytes) edges: its Read
	// over-reads past the end of a file that ends inside a cluster.
	for _, n := range []int{1, 511, 512, 513, 719, 2047, 2048, 2049, 5000} {
		file(plan.Boot, fmt.Sprintf("/user-data-%d", n), strings.Repeat("u", n-1)+"\n", 0o644, 0)
	}
	add(plan.Op{Partition: plan.Boot, Kind: plan.EditCmdline, Path: "/cmdline.txt", CmdlineSet: []string{"cfg80211.ieee80211_regdom=GB"}})
	file(plan.Root, "/etc/hostname", "caspar\n", 0o644, 0)
	file(plan.Root, "/etc/hosts", strings.Repeat("10.3.50.1 caspar.cluster caspar\n", 300), 0o644, 0) // longer than one block
	for i := range 300 {
		file(plan.Root, fmt.Sprintf("/etc/magibake-test-%03d.conf", i), fmt.Sprintf("file %d\n", i), 0o600, 0)
	}
	file(plan.Root, "/usr/bin/tool", "#!/bin/sh\necho smaller now\n", 0o755|fs.ModeSetuid, 0) // shorter: blocks are freed
	add(plan.Op{Partition: plan.Root, Kind: plan.Mkdir, Path: "/home/pi/.ssh", Mode: 0o700, UID: 1000, GID: 1000})
	file(plan.Root, "/home/pi/.ssh/authorized_keys", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG test\n", 0o600, 1000)
	file(plan.Root, "/etc/systemd/system/magibake-test.service", "[Unit]\nDescription=t\n[Service]\nExecStart=/bin/true\n[Install]\nWantedBy=multi-user.target\n", 0o644, 0)
	add(plan.Op{Partition: plan.Root, Kind: plan.Symlink, Path: "/etc/systemd/system/multi-user.target.wants/magibake-test.service", Target: "/etc/systemd/system/magibake-test.service"})
	add(plan.Op{Partition: plan.Root, Kind: plan.Remove, Path: "/etc/base-007.conf"})
	add(plan.Op{Partition: plan.Root, Kind: plan.Remove, Path: "/etc/never-existed"})

	base, layout := fixture.OpenBase(t, disk)
	if layout.Boot.Start != bootStart || layout.Root.Start != rootStart || layout.DiskID != 0x6c1e5a3b {
		t.Fatalf("layout %+v", layout)
	}
	dev := image.NewDevice(base, base.Size())
	m, err := Apply(context.Background(), dev, layout, p, manifest.Info{Version: "test", ProfileDigest: "d", BaseSHA256: base.SHA256})
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Files) != len(p.Ops) {
		t.Errorf("manifest has %d entries for %d ops", len(m.Files), len(p.Ops))
	}
	out := filepath.Join(dir, "out.img")
	if err := output.Write(context.Background(), out, dev, dev.Size(), func(r io.ReaderAt, size int64) error {
		return VerifyCard(r, size, layout, p, m)
	}); err != nil {
		t.Fatal(err)
	}
	if fileSum(t, disk) != before {
		t.Fatal("the base image changed")
	}
	card := fixture.OpenCard(t, out)
	card.Fsck(t)
	card.HoldsPlan(t, p)

	// Everything outside the two partitions' changed blocks is the base's.
	a, _ := os.ReadFile(disk)
	b, _ := os.ReadFile(out)
	if !bytes.Equal(a[:bootStart], b[:bootStart]) {
		t.Error("partition table / gap before p1 changed")
	}
}

// TestFATDirectoriesDated bakes the same plan twice, more than FAT's 2 s
// time resolution apart, with new directories on the boot partition (one
// from a Mkdir, one made for a file): the two boot partitions must be the
// same bytes. go-diskfs stamps new directory entries ("." and ".." inside
// too) with the wall clock; the bake dates them as it dates files.
func TestFATDirectoriesDated(t *testing.T) {
	dir := t.TempDir()
	disk := smallCard(t, dir)
	p := &plan.Plan{Node: "caspar", MTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC), Ops: []plan.Op{
		{Partition: plan.Boot, Kind: plan.Mkdir, Path: "/extra", Mode: 0o755},
		{Partition: plan.Boot, Kind: plan.WriteFile, Path: "/magibake/nested/note.txt", Content: []byte("in new directories\n"), Mode: 0o644},
	}}
	var boots [][]byte
	for i := range 2 {
		if i > 0 {
			time.Sleep(2100 * time.Millisecond)
		}
		base, err := image.OpenBase(context.Background(), disk, dir)
		if err != nil {
			t.Fatal(err)
		}
		layout, err := image.ReadLayout(base, base.Size())
		if err != nil {
			t.Fatal(err)
		}
		dev := image.NewDevice(base, base.Size())
		if _, err := Apply(context.Background(), dev, layout, p, manifest.Info{Version: "test"}); err != nil {
			t.Fatal(err)
		}
		b := make([]byte, layout.Boot.Size)
		if _, err := dev.ReadAt(b, layout.Boot.Start); err != nil {
			t.Fatal(err)
		}
		boots = append(boots, b)
		base.Close()
	}
	if !bytes.Equal(boots[0], boots[1]) {
		n, first := 0, -1
		for i := range boots[0] {
			if boots[0][i] != boots[1][i] {
				if first < 0 {
					first = i
				}
				n++
			}
		}
		t.Errorf("two bakes 2.1 s apart differ in %d bytes of the boot partition, the first at offset %d", n, first)
	}
}
