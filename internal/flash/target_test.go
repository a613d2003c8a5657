package flash

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
)

// fakeHost is a sysfs tree, mountinfo and swaps with the devices of a
// laptop: its system disk nvme0n1 (root on p2, swap on p3), a USB card
// reader sdb with a mounted partition, an SD slot mmcblk0, an internal
// SATA disk sda with an LVM volume mounted from its partition, and a small
// USB stick sdc. Device nodes are made with mknod (the tests run as root)
// and never opened.
func fakeHost(t *testing.T) (Host, string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatal("the flash target tests make device nodes with mknod: run them as root (as make test and CI do)")
	}
	root := t.TempDir()
	sys := filepath.Join(root, "sys")
	devDir := filepath.Join(root, "dev")
	must(t, os.MkdirAll(devDir, 0o755))
	type dev struct {
		name, parent, bus string
		major, minor      uint32
		sectors           int64
		removable         string
		model             string
	}
	devs := []dev{
		{"nvme0n1", "", "pci0000:00/0000:00:1d.0/nvme/nvme0", 259, 0, 1 << 30, "0", "Samsung SSD 980"},
		{"nvme0n1p1", "nvme0n1", "", 259, 1, 1 << 20, "", ""},
		{"nvme0n1p2", "nvme0n1", "", 259, 2, 1 << 29, "", ""},
		{"nvme0n1p3", "nvme0n1", "", 259, 3, 1 << 24, "", ""},
		{"sdb", "", "pci0000:00/0000:00:14.0/usb2/2-1/2-1:1.0/host6/target6:0:0/6:0:0:0", 8, 16, 62333952, "1", "Generic STORAGE DEVICE"},
		{"sdb1", "sdb", "", 8, 17, 1 << 20, "", ""},
		{"mmcblk0", "", "platform/mmc_host/mmc0/mmc0:aaaa", 179, 0, 62333952, "0", ""},
		{"sda", "", "pci0000:00/0000:00:17.0/ata1/host0/target0:0:0/0:0:0:0", 8, 0, 1 << 31, "0", "ATA WDC WD20"},
		{"sda1", "sda", "", 8, 1, 1 << 31, "", ""},
		{"dm-0", "", "virtual", 253, 0, 1 << 30, "0", ""},
		{"sdc", "", "pci0000:00/0000:00:14.0/usb2/2-2/2-2:1.0/host7/target7:0:0/7:0:0:0", 8, 32, 1 << 20, "1", "Tiny Stick"},
		// LVM on LUKS on a USB disk: dm-2 (vg-home) on dm-1 (luks) on sdd1.
		{"sdd", "", "pci0000:00/0000:00:14.0/usb2/2-3/2-3:1.0/host8/target8:0:0/8:0:0:0", 8, 48, 62333952, "1", "Crypt Disk"},
		{"sdd1", "sdd", "", 8, 49, 62333000, "", ""},
		{"dm-1", "", "virtual", 253, 1, 62333000, "0", ""},
		{"dm-2", "", "virtual", 253, 2, 62333000, "0", ""},
		// A two-device btrfs, mounted from sdf1, with its second device on
		// sde.
		{"sde", "", "pci0000:00/0000:00:14.0/usb2/2-4/2-4:1.0/host9/target9:0:0/9:0:0:0", 8, 64, 62333952, "1", "Btrfs Stick"},
		{"sdf", "", "pci0000:00/0000:00:14.0/usb2/2-5/2-5:1.0/host10/target10:0:0/10:0:0:0", 8, 80, 62333952, "1", "Other Stick"},
		{"sdf1", "sdf", "", 8, 81, 62333000, "", ""},
		// A software RAID of sdg1 and sdh1, with an LVM volume on it.
		{"sdg", "", "pci0000:00/0000:00:14.0/usb2/2-6/2-6:1.0/host11/target11:0:0/11:0:0:0", 8, 96, 62333952, "1", "Raid A"},
		{"sdg1", "sdg", "", 8, 97, 62333000, "", ""},
		{"md0", "", "virtual", 9, 0, 62333000, "0", ""},
		{"dm-3", "", "virtual", 253, 3, 62333000, "0", ""},
	}
	for _, d := range devs {
		var dir string
		if d.parent == "" {
			dir = filepath.Join(sys, "devices", d.bus, "block", d.name)
		} else {
			var parent string
			for _, p := range devs {
				if p.name == d.parent {
					parent = filepath.Join(sys, "devices", p.bus, "block", p.name)
				}
			}
			dir = filepath.Join(parent, d.name)
			writeFile(t, filepath.Join(dir, "partition"), "1")
		}
		mm := strconv.Itoa(int(d.major)) + ":" + strconv.Itoa(int(d.minor))
		writeFile(t, filepath.Join(dir, "dev"), mm)
		writeFile(t, filepath.Join(dir, "size"), strconv.FormatInt(d.sectors, 10))
		if d.removable != "" {
			writeFile(t, filepath.Join(dir, "removable"), d.removable)
		}
		if d.model != "" {
			writeFile(t, filepath.Join(dir, "device", "model"), d.model)
		}
		must(t, os.MkdirAll(filepath.Join(sys, "dev", "block"), 0o755))
		rel, _ := filepath.Rel(filepath.Join(sys, "dev", "block"), dir)
		must(t, os.Symlink(rel, filepath.Join(sys, "dev", "block", mm)))
		must(t, os.MkdirAll(filepath.Join(sys, "class", "block"), 0o755))
		rel, _ = filepath.Rel(filepath.Join(sys, "class", "block"), dir)
		must(t, os.Symlink(rel, filepath.Join(sys, "class", "block", d.name)))
		must(t, syscall.Mknod(filepath.Join(devDir, d.name), syscall.S_IFBLK|0o600, int(mkdev(d.major, d.minor))))
	}
	// The LVM volume dm-0 sits on sda1; the rest as said above.
	for _, h := range [][2]string{{"sda/sda1", "dm-0"}, {"sdd/sdd1", "dm-1"}, {"dm-1", "dm-2"}, {"sdg/sdg1", "md0"}, {"md0", "dm-3"}} {
		must(t, os.MkdirAll(filepath.Join(sys, "class", "block", h[0], "holders", h[1]), 0o755))
	}
	for _, m := range []string{"sdf1", "sde"} {
		must(t, os.MkdirAll(filepath.Join(sys, "fs", "btrfs", "6e1c0a2f-0d1e-4b8e-9a65-4f0c2c1d2e3f", "devices", m), 0o755))
	}
	mountinfo := filepath.Join(root, "mountinfo")
	writeFile(t, mountinfo, strings.Join([]string{
		"22 1 0:21 / /proc rw - proc proc rw",
		"29 1 259:2 / / rw,relatime - ext4 /dev/nvme0n1p2 rw",
		"31 29 259:1 / /boot/efi rw - vfat /dev/nvme0n1p1 rw",
		"40 29 8:17 / /media/me/NO\\040NAME rw - vfat /dev/sdb1 rw",
		"41 29 253:0 / /srv rw - ext4 /dev/mapper/vg-srv rw",
		"42 29 253:2 / /home rw - ext4 /dev/mapper/vg-home rw",
		"43 29 0:51 / /data rw - btrfs " + filepath.Join(devDir, "sdf1") + " rw,space_cache=v2,subvolid=5,subvol=/",
		"44 29 253:3 / /var/lib/raid rw - xfs /dev/mapper/vg-raid rw",
	}, "\n")+"\n")
	swaps := filepath.Join(root, "swaps")
	writeFile(t, swaps, "Filename\tType\tSize\tUsed\tPriority\n"+filepath.Join(devDir, "nvme0n1p3")+"\tpartition\t8388604\t0\t-2\n/swapfile\tfile\t1024\t0\t-3\n")
	return Host{Sys: sys, MountInfo: mountinfo, Swaps: swaps}, devDir
}

func TestProblems(t *testing.T) {
	h, dev := fakeHost(t)
	const card = 2700 << 20
	for _, tc := range []struct {
		name  string
		force bool
		want  []string // substrings, one per problem, in order
	}{
		{"mmcblk0", false, nil},
		{"nvme0n1", false, []string{"is the running system's root at / (nvme0n1p2)", "is mounted at /boot/efi (nvme0n1p1)", "is in use as swap", "not a removable, USB or SD/MMC device"}},
		{"nvme0n1", true, []string{"running system's root", "mounted at /boot/efi", "swap"}},
		{"nvme0n1p2", false, []string{"is partition nvme0n1p2 of /dev/nvme0n1: give the whole device", "running system's root", "not a removable"}},
		{"sdb", false, []string{"is mounted at /media/me/NO NAME (sdb1): unmount it first"}},
		{"sda", false, []string{"is mounted at /srv (dm-0)", "not a removable"}},
		{"sda", true, []string{"is mounted at /srv (dm-0)"}},
		{"sdc", false, []string{"holds 536870912 bytes, the card needs 2831155200"}},
		{"sdd", false, []string{"is mounted at /home (dm-2)"}},
		{"sde", false, []string{"is mounted at /data (sde)"}},
		{"sdf", false, []string{"is mounted at /data (sdf1)"}},
		{"sdg", false, []string{"is mounted at /var/lib/raid (dm-3)"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			target, err := h.Inspect(filepath.Join(dev, tc.name))
			if err != nil {
				t.Fatal(err)
			}
			got, err := h.Problems(target, card, tc.force, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("force=%v: problems %q, want %d like %q", tc.force, got, len(tc.want), tc.want)
			}
			for i := range got {
				if !strings.Contains(got[i], tc.want[i]) {
					t.Errorf("problem %d: %q, want it to hold %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestInspect(t *testing.T) {
	h, dev := fakeHost(t)
	sdb, err := h.Inspect(filepath.Join(dev, "sdb"))
	if err != nil {
		t.Fatal(err)
	}
	if sdb.Name != "sdb" || !sdb.USB || !sdb.Removable || sdb.MMC || sdb.Size != 62333952*512 || sdb.Model != "Generic STORAGE DEVICE" ||
		len(sdb.Partitions) != 1 || sdb.Partitions[0].Name != "sdb1" || sdb.Partitions[0].Dev != "8:17" {
		t.Errorf("sdb: %+v", sdb)
	}
	mmc, err := h.Inspect(filepath.Join(dev, "mmcblk0"))
	if err != nil || !mmc.MMC || mmc.USB {
		t.Errorf("mmcblk0: %+v, %v", mmc, err)
	}
	file := filepath.Join(t.TempDir(), "card.img")
	writeFile(t, file, "")
	if _, err := h.Inspect(file); err == nil || !strings.Contains(err.Error(), "not a block device") {
		t.Errorf("a plain file: %v", err)
	}
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func writeFile(t *testing.T, p, s string) {
	t.Helper()
	must(t, os.MkdirAll(filepath.Dir(p), 0o755))
	must(t, os.WriteFile(p, []byte(s+"\n"), 0o644))
}

// mkdev is the inverse of unixMajor/unixMinor.
func mkdev(major, minor uint32) uint64 {
	return uint64(minor&0xff) | uint64(major&0xfff)<<8 | uint64(minor&^0xff)<<12 | uint64(major&^0xfff)<<32
}
