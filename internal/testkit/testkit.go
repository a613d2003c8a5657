// Package testkit holds the small helpers tests of every package share
// (requiring and running a tool, hashing a file, listing an .xz file's
// blocks, laying out a card); it imports nothing of magibake, so any
// package's tests may use it.
package testkit

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// Packages is the apt-get line that installs every tool the tests use.
const Packages = "e2fsprogs dosfstools mtools isc-dhcp-server xz-utils zstd time fdisk iptables systemd openssh-client shellcheck sudo ansible-core mount util-linux qemu-user-static btrfs-progs"

// ExampleEnv gives the embedded example profiles their secrets (test
// values), for tests that load them with profile.Default; golden files of
// overlay and inventory hold these values.
var ExampleEnv = map[string]string{
	"MAGIBAKE_WIFI_SSID":       "home-wifi",
	"MAGIBAKE_WIFI_PASSPHRASE": "correct horse battery",
	"MAGIBAKE_WIFI_COUNTRY":    "GB",
	"MAGIBAKE_USER":            "pi",
	"MAGIBAKE_PASSWORD_HASH":   "$6$demosalt$tnAG0TAR67is2B2BCnDL02E8NT4E9Vf7A08snGYhECQkn59JkOJZN7d6f9m4kzsb9K7MAL4U84UICB9kjt/KS1",
	"MAGIBAKE_SSH_KEYS":        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMqXgRLKG73K+sIxs5oj3E2nhu/4FHxOcrmAd4Wv7ki7 owner@laptop",
}

// RequireTools fails the test (never skips) when a tool is missing, naming
// the packages to install.
func RequireTools(t testing.TB, tools ...string) {
	t.Helper()
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			if _, err := exec.LookPath(filepath.Join("/usr/sbin", tool)); err == nil {
				continue
			}
			t.Fatalf("%s not found: run `make tools` or `sudo apt-get install -y %s`", tool, Packages)
		}
	}
}

// IndexExt4 runs `e2fsck -fyD` on the ext4 image at p: it indexes every
// directory, as a long-lived root file system has them. Exit 1 (it changed
// something) is what it is for; anything above fails the test.
func IndexExt4(t testing.TB, p string) {
	t.Helper()
	if out, err := exec.Command("e2fsck", "-fyD", p).CombinedOutput(); err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() > 1 {
			t.Fatalf("e2fsck -fyD %s: %v\n%s", p, err, out)
		}
	}
}

// Run runs a tool and returns its combined output; the test fails with
// that output when the tool does.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// SHA256File is the hex sha256 of the file at p.
func SHA256File(t testing.TB, p string) string {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := sha256.New()
	if _, err := io.Copy(h, f); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(h.Sum(nil))
}

// XZBlock is one block of an .xz file as `xz --robot --list -vv` lists it.
type XZBlock struct {
	Offset           int64  // of the block in the file
	UncompressedAt   int64  // of its data in the uncompressed stream
	Size             int64  // compressed, headers and check included
	UncompressedSize int64  //
	CheckType        string // "CRC64", "SHA-256", ...
	Check            string // the check value as xz prints it
}

// Key names a block by where it decodes to, its sizes and its check: a
// block copied verbatim has the same key.
func (b XZBlock) Key() string {
	return strconv.FormatInt(b.UncompressedAt, 10) + "/" + strconv.FormatInt(b.Size, 10) + "/" +
		strconv.FormatInt(b.UncompressedSize, 10) + "/" + b.Check
}

// XZBlocks lists the blocks of the .xz file at p with the real xz.
func XZBlocks(t testing.TB, p string) []XZBlock {
	t.Helper()
	var blocks []XZBlock
	for _, l := range strings.Split(Run(t, "xz", "--robot", "--list", "-vv", p), "\n") {
		f := strings.Split(l, "\t")
		if len(f) < 11 || f[0] != "block" {
			continue
		}
		var n [4]int64
		for i := range n {
			v, err := strconv.ParseInt(f[4+i], 10, 64)
			if err != nil {
				t.Fatalf("xz --list %s: block line %q: %v", p, l, err)
			}
			n[i] = v
		}
		blocks = append(blocks, XZBlock{Offset: n[0], UncompressedAt: n[1], Size: n[2], UncompressedSize: n[3], CheckType: f[9], Check: f[10]})
	}
	return blocks
}

// XZBlockKeys is the Key of every block of the .xz file at p.
func XZBlockKeys(t testing.TB, p string) []string {
	t.Helper()
	var keys []string
	for _, b := range XZBlocks(t, p) {
		keys = append(keys, b.Key())
	}
	return keys
}

// Disk lays out a card image as Raspberry Pi OS does: an MBR with the FAT
// boot partition (type 0x0c) and the ext4 root (0x83), each copied from an
// image file of its own. Offsets and sizes are in bytes, MiB-aligned.
type Disk struct {
	LabelID             string // MBR disk id, e.g. "0x6c1e5a3b"
	Boot, Root          string // the partitions' image files
	BootStart, BootSize int64
	RootStart, RootSize int64
}

// Write makes the sparse card image at p.
func (d Disk) Write(t testing.TB, p string) {
	t.Helper()
	f, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Truncate(d.RootStart + d.RootSize); err != nil {
		t.Fatal(err)
	}
	f.Close()
	cmd := exec.Command("sfdisk", "-q", p)
	cmd.Stdin = strings.NewReader(fmt.Sprintf("label: dos\nlabel-id: %s\nstart=%d, size=%d, type=c\nstart=%d, size=%d, type=83\n",
		d.LabelID, d.BootStart/512, d.BootSize/512, d.RootStart/512, d.RootSize/512))
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("sfdisk: %v\n%s", err, out)
	}
	Run(t, "dd", "if="+d.Boot, "of="+p, "bs=1M", fmt.Sprintf("seek=%d", d.BootStart>>20), "conv=notrunc,sparse", "status=none")
	Run(t, "dd", "if="+d.Root, "of="+p, "bs=1M", fmt.Sprintf("seek=%d", d.RootStart>>20), "conv=notrunc,sparse", "status=none")
}

// HTreeLevels asks debugfs how deep the hash index of dir is in the ext4
// file system spec (a file, or debugfs's "FILE?offset=N"); -1: not indexed.
func HTreeLevels(t testing.TB, spec, dir string) int {
	t.Helper()
	out := Run(t, "debugfs", "-R", "htree "+dir, spec)
	if strings.Contains(out, "Not a hash-indexed directory") {
		return -1
	}
	m := regexp.MustCompile(`Indirect levels: (\d+)`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("debugfs htree %s: no levels in output:\n%.2000s", dir, out)
	}
	n, _ := strconv.Atoi(m[1])
	return n
}

// FirstDiff says where two texts first differ, line by line, for golden
// file tests; "" when they are equal.
func FirstDiff(got, want string) string {
	g, w := strings.Split(got, "\n"), strings.Split(want, "\n")
	for i := 0; i < len(g) || i < len(w); i++ {
		var a, b string
		if i < len(g) {
			a = g[i]
		}
		if i < len(w) {
			b = w[i]
		}
		if a != b {
			return fmt.Sprintf("line %d:\n got: %q\nwant: %q", i+1, a, b)
		}
	}
	return ""
}
