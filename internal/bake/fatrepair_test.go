package bake

import (
	"bytes"
	"context"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/diskfs/go-diskfs/backend/file"
	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"github.com/magibake/magibake/internal/fatread"
	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/hostkey"
	"github.com/magibake/magibake/internal/image"
	"github.com/magibake/magibake/internal/output"
	"github.com/magibake/magibake/internal/overlay"
	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/profile"
	"github.com/magibake/magibake/internal/testkit"
	"github.com/magibake/magibake/overlays"
)

// fsckFAT runs fsck.fat -n on the FAT image at p and returns its output
// and whether it found the filesystem clean.
func fsckFAT(t *testing.T, p string) (string, bool) {
	t.Helper()
	out, err := exec.Command("fsck.fat", "-n", p).CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
			t.Fatalf("fsck.fat -n %s: %v\n%s", p, err, out)
		}
	}
	return string(out), err == nil
}

// openFATFile opens the FAT32 image at p with go-diskfs.
func openFATFile(t *testing.T, p string) (*os.File, *fat32.FileSystem) {
	t.Helper()
	f, err := os.OpenFile(p, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	fi, err := f.Stat()
	if err != nil {
		t.Fatal(err)
	}
	fsys, err := fat32.Read(file.New(f, false), fi.Size(), 0, 512)
	if err != nil {
		t.Fatal(err)
	}
	return f, fsys
}

func fatPut(t *testing.T, fsys *fat32.FileSystem, name string, flag int, data []byte) {
	t.Helper()
	f, err := fsys.OpenFile(name, flag)
	if err != nil {
		t.Fatal(err)
	}
	if len(data) > 0 {
		if _, err := f.Write(data); err != nil {
			t.Fatal(err)
		}
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestGoDiskfsFATBookkeeping pins what go-diskfs v1.9.4 gets right and
// wrong on its own, as fsck.fat -n sees it; fatWrite and repairFAT are built
// on these facts. A case that fails after a go-diskfs upgrade names a
// workaround to revisit (fatWrite, fatrepair.go's header).
func TestGoDiskfsFATBookkeeping(t *testing.T) {
	testkit.RequireTools(t, "fsck.fat", "mcopy")
	const trunc = os.O_CREATE | os.O_RDWR | os.O_TRUNC
	short := []byte(strings.Repeat("s", 99) + "\n")
	for _, c := range []struct {
		name      string
		do        func(*testing.T, *fat32.FileSystem)
		path      string // read back after do, unless ""
		want      []byte // what path must hold; nil: must not read back
		findings  []string
		forbidden []string
	}{
		{"rewrite shorter with O_TRUNC (4 clusters to 1)",
			func(t *testing.T, f *fat32.FileSystem) { fatPut(t, f, "/config.txt", trunc, short) },
			"/config.txt", short,
			[]string{"Free cluster summary wrong"}, []string{"Reclaimed", "cluster chain length"}},
		{"rewrite longer with O_TRUNC",
			func(t *testing.T, f *fat32.FileSystem) { fatPut(t, f, "/cmdline.txt", trunc, bytes.Repeat(short, 50)) },
			"/cmdline.txt", bytes.Repeat(short, 50),
			[]string{"Free cluster summary wrong"}, []string{"Reclaimed", "cluster chain length"}},
		{"rewrite to empty with O_TRUNC",
			func(t *testing.T, f *fat32.FileSystem) { fatPut(t, f, "/config.txt", trunc, nil) },
			"/config.txt", []byte{},
			[]string{"File size is 0 bytes, cluster chain length is > 0 bytes", "Free cluster summary wrong"}, []string{"Reclaimed"}},
		{"create an empty file",
			func(t *testing.T, f *fat32.FileSystem) { fatPut(t, f, "/ssh", trunc, nil) },
			"/ssh", []byte{},
			[]string{"File size is 0 bytes, cluster chain length is > 0 bytes"}, []string{"Reclaimed"}},
		{"remove",
			func(t *testing.T, f *fat32.FileSystem) {
				if err := f.Remove("/config.txt"); err != nil {
					t.Fatal(err)
				}
			},
			"", nil,
			[]string{"Reclaimed 4 unused clusters"}, nil},
		{"write into an empty file that owns no cluster",
			func(t *testing.T, f *fat32.FileSystem) { fatPut(t, f, "/empty", trunc, short) },
			"/empty", nil,
			[]string{"File size is 100 bytes, cluster chain length is 0 bytes", "Reclaimed 1 unused cluster"}, nil},
		{"mkdir in the root",
			func(t *testing.T, f *fat32.FileSystem) {
				if err := f.Mkdir("/d"); err != nil {
					t.Fatal(err)
				}
			},
			"", nil,
			[]string{"Invalid '..' entry in the second slot"}, []string{"Reclaimed"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			boot := smallBoot(t, dir)
			os.WriteFile(filepath.Join(dir, "empty"), nil, 0o644)
			testkit.Run(t, "mcopy", "-i", boot, filepath.Join(dir, "empty"), "::/")
			_, fsys := openFATFile(t, boot)
			c.do(t, fsys)
			if c.path != "" {
				got, err := fatread.ReadFile(fsys, c.path)
				switch {
				case c.want == nil && err == nil && len(got) > 0:
					t.Errorf("%s reads back (%d bytes): go-diskfs now writes into a file without a cluster", c.path, len(got))
				case c.want != nil && (err != nil || !bytes.Equal(got, c.want)):
					t.Errorf("%s reads back as %d bytes (%v), want %d", c.path, len(got), err, len(c.want))
				}
			}
			out, clean := fsckFAT(t, boot)
			if clean {
				t.Errorf("fsck.fat -n finds nothing wrong: go-diskfs now gets this right\n%s", out)
			}
			for _, s := range c.findings {
				if !strings.Contains(out, s) {
					t.Errorf("fsck.fat -n does not say %q\n%s", s, out)
				}
			}
			for _, s := range c.forbidden {
				if strings.Contains(out, s) {
					t.Errorf("fsck.fat -n says %q\n%s", s, out)
				}
			}
		})
	}
}

// TestRepairFATReports damages a FAT32 volume in each way repairFAT knows,
// once, and checks that it reports each repair, that fsck.fat then finds
// the volume clean, and that a second pass finds nothing to do.
func TestRepairFATReports(t *testing.T) {
	testkit.RequireTools(t, "fsck.fat")
	boot := smallBoot(t, t.TempDir())
	dev, fsys := openFATFile(t, boot)
	if err := fsys.Remove("/config.txt"); err != nil { // leaks its 4 clusters
		t.Fatal(err)
	}
	fatPut(t, fsys, "/flag", os.O_CREATE|os.O_RDWR, nil) // an empty file with a cluster
	if err := fsys.Mkdir("/d"); err != nil {             // '..' names the root's cluster
		t.Fatal(err)
	}
	f, err := fsys.OpenFile("/cmdline.txt", os.O_RDONLY)
	if err != nil {
		t.Fatal(err)
	}
	chain, err := f.(interface{ GetClusterChain() ([]uint32, error) }).GetClusterChain()
	if err != nil || len(chain) != 1 {
		t.Fatalf("cmdline.txt's chain: %v, %v", chain, err)
	}
	// One cluster more on cmdline.txt's chain than its size needs.
	v, err := openFAT(dev)
	if err != nil {
		t.Fatal(err)
	}
	spare := uint32(2)
	for v.next(spare) != 0 {
		spare++
	}
	v.set(chain[0], spare)
	v.set(spare, fatMask)
	for i := range v.nFATs {
		if _, err := dev.WriteAt(v.fat, v.fatStart+int64(i)*v.fatBytes); err != nil {
			t.Fatal(err)
		}
	}

	r, err := repairFAT(dev)
	if err != nil {
		t.Fatal(err)
	}
	if want := (fatRepairs{Leaked: 4, Trimmed: 1, EmptyChains: 1, Dots: 1, FSInfoFree: true}); r != want {
		t.Errorf("repairFAT reports %+v, want %+v", r, want)
	}
	if out, clean := fsckFAT(t, boot); !clean {
		t.Errorf("fsck.fat -n after repairFAT:\n%s", out)
	}
	if r, err := repairFAT(dev); err != nil || r != (fatRepairs{}) {
		t.Errorf("a second repairFAT reports %+v, %v; want nothing", r, err)
	}
}

// demoEnv is what the demo profiles read from the environment.
var demoEnv = map[string]string{
	"MAGIBAKE_WIFI_SSID":       "demo-wifi",
	"MAGIBAKE_WIFI_PASSPHRASE": "demo-passphrase",
	"MAGIBAKE_WIFI_COUNTRY":    "GB",
	"MAGIBAKE_USER":            "pi",
	"MAGIBAKE_PASSWORD_HASH":   "$6$demosalt$0123456789abcdef",
	"MAGIBAKE_SSH_KEYS":        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMqXgRLKG73K+sIxs5oj3E2nhu/4FHxOcrmAd4Wv7ki7 demo",
}

// TestBakeLeavesNothingToRepair writes each demo node's boot partition as a
// bake does (the rendered plan, plus config.txt replaced by a much shorter
// one and a file in a new directory), without the repair: fsck.fat -n must
// find no leaked clusters and no chain longer than its file, and repairFAT
// must find none either. What it may repair is what go-diskfs gets wrong
// on every bake (fatrepair.go): the empty `ssh` file's one-cluster chain,
// the '..' of a directory made in the root, FSInfo's free count.
func TestBakeLeavesNothingToRepair(t *testing.T) {
	testkit.RequireTools(t, "fsck.fat")
	dir := t.TempDir()
	disk := smallCard(t, dir)
	base, layout := fixture.OpenBase(t, disk)
	c, err := profile.Default(profile.Options{Getenv: func(k string) string { return demoEnv[k] }})
	if err != nil {
		t.Fatal(err)
	}
	keys, _, err := hostkey.Load(c, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, n := range c.Nodes {
		t.Run(n.Hostname, func(t *testing.T) {
			p, err := overlay.Render(c, keys, n.Hostname, []overlay.Tree{{FS: overlays.FS, Display: "overlays"}}, mtime)
			if err != nil {
				t.Fatal(err)
			}
			boot := &plan.Plan{Node: p.Node, MTime: p.MTime}
			for _, op := range p.Ops {
				if op.Partition == plan.Boot {
					boot.Ops = append(boot.Ops, op)
				}
			}
			boot.Ops = append(boot.Ops,
				plan.Op{Partition: plan.Boot, Kind: plan.WriteFile, Path: "/config.txt", Content: []byte("[all]\ndtparam=audio=on\n"), Mode: 0o644},
				plan.Op{Partition: plan.Boot, Kind: plan.WriteFile, Path: "/magibake/note.txt", Content: []byte("in a new directory\n"), Mode: 0o644})
			dev := image.NewDevice(base, base.Size())
			if err := writeBoot(dev, layout.Boot, boot.Ops, boot); err != nil {
				t.Fatal(err)
			}
			img := filepath.Join(t.TempDir(), "boot.fat")
			if err := output.Write(context.Background(), img, io.NewSectionReader(dev, layout.Boot.Start, layout.Boot.Size), layout.Boot.Size, nil); err != nil {
				t.Fatal(err)
			}
			out, _ := fsckFAT(t, img)
			t.Logf("fsck.fat -n before the repair:\n%s", out)
			for _, line := range strings.Split(out, "\n") {
				if strings.Contains(line, "Reclaimed") ||
					strings.Contains(line, "cluster chain length is") && !strings.Contains(line, "File size is 0 bytes") {
					t.Errorf("fsck.fat -n before the repair: %s", strings.TrimSpace(line))
				}
			}
			r, err := repairFAT(dev.Section(layout.Boot.Start, layout.Boot.Size))
			if err != nil {
				t.Fatal(err)
			}
			t.Logf("repairFAT: %+v", r)
			if r.Leaked != 0 || r.Trimmed != 0 {
				t.Errorf("repairFAT after writing the boot partition: %d leaked clusters freed, %d chains trimmed; want none", r.Leaked, r.Trimmed)
			}
			empty := 0
			for _, op := range boot.Ops {
				if op.Kind == plan.WriteFile && len(op.Content) == 0 {
					empty++
				}
			}
			if r.EmptyChains > empty {
				t.Errorf("repairFAT dropped the chains of %d empty files; the plan writes %d", r.EmptyChains, empty)
			}
			if err := Verify(dev, layout, boot); err != nil {
				t.Error(err)
			}
			if err := output.Write(context.Background(), img, io.NewSectionReader(dev, layout.Boot.Start, layout.Boot.Size), layout.Boot.Size, nil); err != nil {
				t.Fatal(err)
			}
			if out, clean := fsckFAT(t, img); !clean {
				t.Errorf("fsck.fat -n after the repair:\n%s", out)
			}
		})
	}
}

// TestFATWriteIntoFileWithoutCluster writes content into an empty file that
// mtools made (it owns no cluster, where go-diskfs's in-place Write loses the
// content): fatWrite must recreate it, and leak nothing doing so.
func TestFATWriteIntoFileWithoutCluster(t *testing.T) {
	testkit.RequireTools(t, "fsck.fat", "mcopy")
	dir := t.TempDir()
	boot := smallBoot(t, dir)
	os.WriteFile(filepath.Join(dir, "ssh"), nil, 0o644)
	testkit.Run(t, "mcopy", "-i", boot, filepath.Join(dir, "ssh"), "::/")
	dev, fsys := openFATFile(t, boot)
	content := []byte("no longer empty\n")
	if err := fatWrite(fsys, "/ssh", content, &plan.Plan{MTime: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}); err != nil {
		t.Fatal(err)
	}
	if got, err := fatread.ReadFile(fsys, "/ssh"); err != nil || !bytes.Equal(got, content) {
		t.Errorf("/ssh reads back as %q, %v; want %q", got, err, content)
	}
	out, _ := fsckFAT(t, boot)
	if strings.Contains(out, "Reclaimed") || strings.Contains(out, "cluster chain length") {
		t.Errorf("fsck.fat -n before the repair:\n%s", out)
	}
	if r, err := repairFAT(dev); err != nil || r.Leaked != 0 || r.Trimmed != 0 || r.EmptyChains != 0 {
		t.Errorf("repairFAT reports %+v, %v; want no leaked cluster, trimmed chain or empty file's chain", r, err)
	}
}
