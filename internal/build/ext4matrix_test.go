package build

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/magibake/magibake/internal/ext4"
	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/image"
	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/testkit"
)

// Sizes of the matrix cards: a FAT32 boot partition as small as FAT32
// allows with 512-byte clusters, and a root partition with 4 KiB blocks like
// Raspberry Pi OS's, small enough to fill.
const (
	matrixBootStart = 8192 * 512
	matrixBootSize  = 64 << 20
	matrixRootStart = matrixBootStart + matrixBootSize
	matrixRootSize  = 64 << 20
	// matrixSlack is how far the filler may miss the free space it aims at.
	matrixSlack = 8
)

// TestExt4Matrix bakes the real plans of a head and a worker, plus a user
// overlay that replaces base files by larger and smaller ones and removes
// one, into Pi-OS-shaped cards whose root filesystem is every combination
// of: the two ext4 feature sets of Raspberry Pi OS images (with
// metadata_csum, as pi-gen makes them now; without, as pi-gen made them
// when it stripped metadata_csum and 64bit from the build host's defaults);
// a small /etc (one linear block, nearly full, so the bake grows it) or a
// large one (an htree); and a roomy or a nearly full filesystem (free space
// the measured need of the roomy bake plus matrixSlack blocks). Every card
// must pass e2fsck -fn and fsck.fat -n and read back as its plan.
func TestExt4Matrix(t *testing.T) {
	testkit.RequireTools(t, "mkfs.ext4", "mkfs.vfat", "mcopy", "sfdisk", "e2fsck", "fsck.fat", "debugfs", "mtype")
	features := []struct {
		name string
		opts string
		csum bool
	}{
		{"metadata_csum", "^64bit,^huge_file", true},
		{"no-metadata_csum", "^metadata_csum,^64bit,^huge_file", false},
	}
	etcs := []struct {
		name    string
		entries int
		htree   bool
	}{
		{"small-etc", 171, false},
		{"large-etc", 1200, true},
	}
	// Make the host keys now: parallel first builds would race to save them.
	if _, _, err := (Sources{Getenv: getenv}).Plan("caspar", mustMTime(t)); err != nil {
		t.Fatal(err)
	}
	var cards, fscks atomic.Int64
	for _, feat := range features {
		for _, etc := range etcs {
			t.Run(feat.name+"/"+etc.name, func(t *testing.T) {
				t.Parallel()
				tree := matrixTree(t, etc.entries)
				ov := matrixOverlay(t)
				nodes := []string{"caspar", "balthasar"}
				need := int64(0) // net blocks the most demanding node's bake took
				for _, fullness := range []string{"roomy", "nearly-full"} {
					t.Run(fullness, func(t *testing.T) {
						o := Options{Sources: Sources{Getenv: getenv, Overlays: ov}, Nodes: nodes, Version: "test"}
						var base string
						var baseFree int64
						if fullness == "roomy" {
							base, baseFree = matrixCard(t, tree, feat.opts, 0)
							checkFixture(t, base, feat.csum, etc.htree)
							o.Base, o.OutDir = base, t.TempDir()
							if err := Run(context.Background(), o); err != nil {
								t.Fatal(err)
							}
						} else {
							// Replacing a file by a smaller one and removing one
							// give blocks back only when their turn comes, so
							// the bake's peak lies between its net need and the
							// net need plus every block it can free.
							free := need + freeable(t, tree, o)
							base, baseFree = matrixCard(t, tree, feat.opts, fillerFor(t, tree, feat.opts, free))
							checkFixture(t, base, feat.csum, etc.htree)
							o.Base, o.OutDir = base, t.TempDir()
							if err := Run(context.Background(), o); err != nil {
								t.Fatalf("%d blocks free (%d wanted): %v", baseFree, free, err)
							}
						}
						for _, n := range o.Nodes {
							card := fixture.OpenCard(t, filepath.Join(o.OutDir, n+".img"))
							card.Fsck(t)
							cards.Add(1)
							fscks.Add(2)
							p, _, err := o.Plan(n, mustMTime(t))
							if err != nil {
								t.Fatal(err)
							}
							card.HoldsPlan(t, p)
							free := rootFreeBlocks(t, card.Path, card.Layout)
							used := baseFree - free
							need = max(need, used)
							levels := testkit.HTreeLevels(t, card.RootSpec(), "/etc")
							size := dirSize(t, card, "/etc")
							t.Logf("%s: %d blocks free before, %d after; /etc %d bytes, htree levels %d",
								n, baseFree, free, size, levels)
							if etc.htree && levels < 0 {
								t.Errorf("%s: /etc lost its index", n)
							}
							if !etc.htree && size <= 4096 {
								t.Errorf("%s: the small /etc did not grow past its block; the case tests nothing", n)
							}
						}
						if fullness == "nearly-full" && baseFree > need+freeable(t, tree, o)+matrixSlack {
							t.Errorf("%d blocks free for a bake that takes %d: not nearly full", baseFree, need)
						}
					})
				}
			})
		}
	}
	t.Cleanup(func() {
		t.Logf("ext4 matrix: %d cases, %d cards, %d fsck runs (e2fsck -fn, fsck.fat -n)", 2*len(features)*len(etcs), cards.Load(), fscks.Load())
	})
}

// matrixTree is a root tree with the paths the plans write over: files the
// bake replaces by larger and smaller ones, and an /etc of entries entries.
func matrixTree(t *testing.T, entries int) string {
	t.Helper()
	dir := t.TempDir()
	write := func(p string, data []byte) {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("etc/hostname", []byte("raspberrypi\n"))                                // replaced by a shorter one
	write("etc/hosts", []byte("127.0.0.1 localhost\n"))                           // by a longer one
	write("etc/dhcp/dhcpd.conf", bytes.Repeat([]byte("# stock example\n"), 1400)) // 6 blocks -> 1
	write("etc/motd", []byte("stock motd\n"))                                     // overlay: 1 block -> 12
	write("usr/lib/stock.so", bytes.Repeat([]byte{0x7f, 'E', 'L', 'F'}, 50000))   // overlay: 49 blocks -> 1
	write("etc/stock-gone.conf", []byte("removed by the overlay\n"))
	for _, d := range []string{"usr/bin", "var/lib", "home"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	for i := range entries - 6 {
		write(fmt.Sprintf("etc/stock-%04d.conf", i), []byte(fmt.Sprintf("setting %d\n", i)))
	}
	return dir
}

// matrixOverlay is a user overlay replacing base files by larger and
// smaller ones and removing one, beside the embedded overlays.
func matrixOverlay(t *testing.T) string {
	t.Helper()
	ov := t.TempDir()
	root := filepath.Join(ov, "common", "root")
	for p, data := range map[string][]byte{
		"etc/motd":                   bytes.Repeat([]byte("welcome to the cluster\n"), 2100),
		"usr/lib/stock.so":           []byte("stripped\n"),
		"etc/stock-gone.conf.remove": nil,
	} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return ov
}

// freeable is how many blocks the bakes of o's nodes can free in the root
// made from tree: the blocks of every base file they replace or remove.
func freeable(t *testing.T, tree string, o Options) int64 {
	t.Helper()
	seen := map[string]bool{}
	var blocks int64
	for _, n := range o.Nodes {
		p, _, err := o.Plan(n, mustMTime(t))
		if err != nil {
			t.Fatal(err)
		}
		for _, op := range p.Ops {
			if op.Partition != plan.Root || seen[op.Path] {
				continue
			}
			seen[op.Path] = true
			if st, err := os.Lstat(filepath.Join(tree, op.Path)); err == nil && st.Mode().IsRegular() {
				blocks += (st.Size() + 4095) / 4096
			}
		}
	}
	return blocks
}

// matrixCard builds a card from tree with mkfs options opts, plus a filler
// file of filler bytes, and returns it with its root's free block count.
func matrixCard(t *testing.T, tree, opts string, filler int64) (string, int64) {
	t.Helper()
	dir := t.TempDir()
	root := mkRoot(t, dir, tree, opts, filler)
	boot := filepath.Join(dir, "boot.fat")
	testkit.Run(t, "mkfs.vfat", "-C", "-F", "32", "-s", "1", "-n", "bootfs", boot, fmt.Sprint(matrixBootSize>>10))
	os.WriteFile(filepath.Join(dir, "cmdline.txt"), []byte("console=serial0,115200 console=tty1 root=PARTUUID=5e3da3da-02 rootfstype=ext4 fsck.repair=yes rootwait quiet init=/usr/lib/raspberrypi-sys-mods/firstboot\n"), 0o644)
	os.WriteFile(filepath.Join(dir, "config.txt"), []byte("[all]\narm_64bit=1\n"), 0o644)
	testkit.Run(t, "mcopy", "-i", boot, filepath.Join(dir, "cmdline.txt"), filepath.Join(dir, "config.txt"), "::/")
	disk := filepath.Join(dir, "base.img")
	testkit.Disk{LabelID: "0x5e3da3da", Boot: boot, Root: root, BootStart: matrixBootStart, BootSize: matrixBootSize,
		RootStart: matrixRootStart, RootSize: matrixRootSize}.Write(t, disk)
	os.Remove(root)
	os.Remove(boot)
	return disk, freeBlocks(t, root+".free")
}

// mkRoot makes the root filesystem image as Raspberry Pi OS's is made
// (mkfs.ext4 -L rootfs -O opts -d tree, 4 KiB blocks), its directories
// indexed by e2fsck -D, and records its free block count beside it.
func mkRoot(t *testing.T, dir, tree, opts string, filler int64) string {
	t.Helper()
	src := tree
	if filler > 0 {
		// A copy of tree with the filler, so the other fullness keeps tree as it is.
		src = filepath.Join(dir, "tree")
		testkit.Run(t, "cp", "-a", tree, src)
		if err := os.WriteFile(filepath.Join(src, "var/lib/filler.bin"), bytes.Repeat([]byte{0xa5}, int(filler)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	root := filepath.Join(dir, "root.ext4")
	testkit.Run(t, "mkfs.ext4", "-q", "-F", "-b", "4096", "-L", "rootfs", "-O", opts, "-E", "root_owner=0:0", "-d", src, root, fmt.Sprint(matrixRootSize>>10)+"k")
	testkit.IndexExt4(t, root)
	if filler > 0 {
		os.RemoveAll(src)
	}
	fh, err := os.Open(root)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	fs, err := ext4.Open(readOnlyFile{fh}, matrixRootSize)
	if err != nil {
		t.Fatal(err)
	}
	os.WriteFile(root+".free", []byte(fmt.Sprint(fs.FreeBytes()/int64(fs.BlockSize()))), 0o644)
	return root
}

// fillerFor returns the size of a filler file that leaves free blocks
// free in a root made from tree: it measures the root without a filler,
// then corrects once for the blocks the filler's own metadata takes.
func fillerFor(t *testing.T, tree, opts string, free int64) int64 {
	t.Helper()
	dir := t.TempDir()
	empty := freeBlocks(t, mkRoot(t, dir, tree, opts, 0)+".free")
	filler := (empty - free) * 4096
	got := freeBlocks(t, mkRoot(t, dir, tree, opts, filler)+".free")
	filler += (got - free) * 4096
	if filler <= 0 {
		t.Fatalf("the bake needs %d blocks of the %d free: nothing to fill", free, empty)
	}
	return filler
}

func freeBlocks(t *testing.T, file string) int64 {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(string(b), 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// rootFreeBlocks reads the free block count of a card's root partition.
func rootFreeBlocks(t *testing.T, path string, l image.Layout) int64 {
	t.Helper()
	fh, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	dev := image.NewDevice(fh, l.Root.Start+l.Root.Size)
	fs, err := ext4.Open(dev.Section(l.Root.Start, l.Root.Size), l.Root.Size)
	if err != nil {
		t.Fatal(err)
	}
	return fs.FreeBytes() / int64(fs.BlockSize())
}

// checkFixture makes sure the base card is the case it claims to be.
func checkFixture(t *testing.T, base string, csum, htree bool) {
	t.Helper()
	card := fixture.OpenCard(t, base)
	feats := card.Debugfs(t, "features")
	if strings.Contains(feats, "metadata_csum") != csum {
		t.Fatalf("base root features %q, want metadata_csum %v", strings.TrimSpace(feats), csum)
	}
	if levels := testkit.HTreeLevels(t, card.RootSpec(), "/etc"); (levels >= 0) != htree {
		t.Fatalf("base /etc htree levels %d, want indexed %v", levels, htree)
	}
	if !htree && dirSize(t, card, "/etc") != 4096 {
		t.Fatalf("base /etc is %d bytes, want one block", dirSize(t, card, "/etc"))
	}
}

func dirSize(t *testing.T, card fixture.Card, dir string) int64 {
	t.Helper()
	m := regexp.MustCompile(`Size: (\d+)`).FindStringSubmatch(card.Debugfs(t, "stat "+dir))
	if m == nil {
		t.Fatalf("debugfs stat %s: no size", dir)
	}
	n, _ := strconv.ParseInt(m[1], 10, 64)
	return n
}

// readOnlyFile refuses writes: the measurements only read.
type readOnlyFile struct{ *os.File }

func (readOnlyFile) WriteAt([]byte, int64) (int, error) { return 0, os.ErrPermission }
