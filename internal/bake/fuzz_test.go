package bake

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os/exec"
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

// fuzzPaths are the paths fuzzed plans touch: existing files and
// directories of smallCard, new ones, deep ones, a file under a file.
var fuzzPaths = []string{
	"/etc/hostname", "/etc/base-007.conf", "/etc/base-300.conf", "/etc/new.conf", "/etc",
	"/etc/sub/dir/deep.conf", "/usr/bin/tool", "/usr/bin/tool/under-a-file", "/home", "/home/pi/.ssh",
	"/etc/systemd/system/x.service", "/etc/systemd/system/multi-user.target.wants/x.service",
	"/cmdline.txt", "/config.txt", "/ssh", "/a/b/c", "/link", "/link/through", "/" + strings.Repeat("n", 200),
}

var fuzzModes = []fs.FileMode{0o644, 0o600, 0o755, 0o700, 0o755 | fs.ModeSetuid, 0o1777&0o777 | fs.ModeSticky, 0}

// opsFrom decodes fuzz bytes into plan operations, 4 bytes each: kind and
// partition, path, mode and owner, content size.
func opsFrom(data []byte) []plan.Op {
	var ops []plan.Op
	for i := 0; i+3 < len(data) && len(ops) < 24; i += 4 {
		b := data[i : i+4]
		op := plan.Op{Partition: plan.Root, Path: fuzzPaths[int(b[1])%len(fuzzPaths)]}
		if b[0]&0x80 != 0 {
			op.Partition = plan.Boot
		}
		op.Mode = fuzzModes[int(b[2])%len(fuzzModes)]
		op.UID, op.GID = uint32(b[2]>>4)*1000/15, uint32(b[2]>>4)
		switch b[0] & 0x7 {
		case 0, 1:
			op.Kind = plan.WriteFile
			op.Content = []byte(strings.Repeat(fmt.Sprintf("%d:", i), int(b[3])*int(b[3])/2))
		case 2:
			op.Kind = plan.Mkdir
		case 3:
			op.Kind, op.Mode = plan.Symlink, 0o777
			op.Target = fuzzPaths[int(b[3])%len(fuzzPaths)]
			if b[3]&1 != 0 {
				op.Target = "../" + strings.Repeat("x", int(b[3])*4) // slow symlink
			}
		case 4:
			op.Kind, op.Mode = plan.Remove, 0
		case 5:
			op.Kind, op.Mode = plan.EditCmdline, 0
			op.CmdlineSet = []string{fmt.Sprintf("k%d=v%d", b[3]%4, b[3])}
			op.CmdlineRemove = []string{fmt.Sprintf("k%d", b[3]%3)}
		default:
			op.Kind = plan.WriteFile
		}
		ops = append(ops, op)
	}
	return ops
}

// Plans that are valid on smallCard by construction: files, directories and
// links each at paths of their own kind, never one under another's file,
// so any mix of them in any order must apply.
var (
	validFiles = []string{"/etc/hostname", "/etc/new.conf", "/etc/sub/dir/deep.conf", "/usr/bin/tool",
		"/etc/systemd/system/x.service", "/" + strings.Repeat("n", 200), "/home/pi/.ssh/authorized_keys"}
	validDirs     = []string{"/home/pi/.ssh", "/a/b/c", "/etc/sub", "/etc"}
	validLinks    = []string{"/link", "/etc/systemd/system/multi-user.target.wants/x.service"}
	validBootFile = []string{"/config.txt", "/ssh", "/new.txt", "/magibake/dir/file.txt"}
	validBootDirs = []string{"/extra", "/magibake/dir"}
)

// validOpsFrom decodes fuzz bytes into a plan that must apply, 4 bytes per
// operation as opsFrom.
func validOpsFrom(data []byte) []plan.Op {
	var ops []plan.Op
	for i := 0; i+3 < len(data) && len(ops) < 24; i += 4 {
		b := data[i : i+4]
		pick := func(l []string) string { return l[int(b[1])%len(l)] }
		op := plan.Op{Partition: plan.Root, Mode: fuzzModes[int(b[2])%(len(fuzzModes)-1)]}
		op.UID, op.GID = uint32(b[2]>>4)*1000/15, uint32(b[2]>>4)
		content := []byte(strings.Repeat(fmt.Sprintf("%d:", i), int(b[3])*int(b[3])/2))
		switch b[0] & 0x7 {
		case 0, 1:
			op.Kind, op.Path, op.Content = plan.WriteFile, pick(validFiles), content
		case 2:
			op.Kind, op.Path = plan.Mkdir, pick(validDirs)
		case 3:
			op.Kind, op.Path, op.Mode = plan.Symlink, pick(validLinks), 0o777
			op.Target = fuzzPaths[int(b[3])%len(fuzzPaths)]
		case 4:
			op.Kind, op.Path, op.Mode = plan.Remove, pick(append(validFiles[:len(validFiles):len(validFiles)], validLinks...)), 0
		case 5:
			op.Partition, op.Kind, op.Path, op.Mode = plan.Boot, plan.EditCmdline, "/cmdline.txt", 0
			op.CmdlineSet = []string{fmt.Sprintf("k%d=v%d", b[3]%4, b[3])}
			op.CmdlineRemove = []string{fmt.Sprintf("k%d", b[3]%3)}
		case 6:
			op.Partition, op.Kind, op.Path, op.Content, op.Mode = plan.Boot, plan.WriteFile, pick(validBootFile), content, 0o644
			op.UID, op.GID = 0, 0
		default:
			op.Partition, op.Kind, op.Path, op.Mode, op.UID, op.GID = plan.Boot, plan.Mkdir, pick(validBootDirs), 0o755, 0, 0
		}
		ops = append(ops, op)
	}
	return ops
}

// invalidOps are operations no base of the smallCard shape can take: each
// contradicts the base or the partition, whatever valid operations came
// before it (their paths are not these).
var invalidOps = []plan.Op{
	{Partition: plan.Root, Kind: plan.WriteFile, Path: "/etc/base-001.conf/under-a-file", Mode: 0o644},
	{Partition: plan.Root, Kind: plan.Mkdir, Path: "/etc/machine-id/sub", Mode: 0o755},
	{Partition: plan.Root, Kind: plan.WriteFile, Path: "/home", Mode: 0o644},
	{Partition: plan.Root, Kind: plan.Symlink, Path: "/etc", Target: "/x", Mode: 0o777},
	{Partition: plan.Boot, Kind: plan.Symlink, Path: "/boot-link", Target: "/x", Mode: 0o777},
	{Partition: plan.Root, Kind: plan.EditCmdline, Path: "/etc/hostname", CmdlineSet: []string{"a=b"}},
	{Partition: plan.Boot, Kind: plan.EditCmdline, Path: "/no-such-cmdline.txt", CmdlineSet: []string{"a=b"}},
	{Partition: plan.Boot, Kind: plan.WriteFile, Path: "/" + strings.Repeat("n", 300), Mode: 0o644},
}

// FuzzApply applies decoded plans to a small Pi-OS-shaped card and checks
// properties, by the first byte: a plan valid by construction (validOpsFrom)
// must apply, and the card must then pass e2fsck -fn and fsck.fat -n (Apply
// has already read every path back through freshly opened file systems);
// the same plan followed by one operation the base cannot take must fail
// with ErrConflict, which the CLI reports as bad input (exit 3); any other
// plan (opsFrom: anything goes) may fail, but must not panic or hang.
func FuzzApply(f *testing.F) {
	testkit.RequireTools(f, "e2fsck", "fsck.fat")
	dir := f.TempDir()
	disk := smallCard(f, dir)
	base, layout := fixture.OpenBase(f, disk)
	for _, mode := range []byte{0, 1, 2} {
		for _, seed := range [][]byte{
			{0, 0, 0, 3, 0x80, 13, 0, 2, 0x85, 12, 0, 1},         // hostname, config.txt, cmdline
			{2, 9, 3, 0, 0, 10, 1, 40, 3, 11, 0, 10, 4, 1, 0, 0}, // mkdir, unit, enable symlink, remove
			{0, 3, 0, 255, 0, 3, 0, 1, 0, 6, 0, 200},             // grow, shrink, replace a big file
			{3, 16, 0, 2, 0, 17, 0, 9, 0, 7, 0, 3},               // symlinks, a path through a link and a file
			{0x80, 14, 0, 0, 0x82, 15, 0, 0, 0x80, 15, 0, 50, 0x84, 14, 0, 0},
			{0, 18, 0, 20, 0, 5, 0, 30, 6, 2, 0, 40, 7, 1, 0, 0},
		} {
			f.Add(append([]byte{mode, byte(len(seed))}, seed...))
		}
	}
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 2 {
			return
		}
		mode, pick, data := data[0]%3, int(data[1]), data[2:]
		p := &plan.Plan{Node: "fuzz", MTime: mtime}
		switch mode {
		case 0:
			p.Ops = opsFrom(data)
		case 1:
			p.Ops = validOpsFrom(data)
		case 2:
			p.Ops = append(validOpsFrom(data), invalidOps[pick%len(invalidOps)])
		}
		dev := image.NewDevice(base, base.Size())
		_, err := Apply(context.Background(), dev, layout, p, manifest.Info{Version: "fuzz", ProfileDigest: "d", BaseSHA256: base.SHA256})
		switch {
		case err != nil && errors.Is(err, context.Canceled):
			t.Fatal(err)
		case mode == 1 && err != nil:
			t.Fatalf("a valid plan failed: %v\nplan: %v", err, p.Ops)
		case mode == 1:
			checkFileSystems(t, dev, layout)
		case mode == 2 && !errors.Is(err, ErrConflict):
			t.Fatalf("a plan ending in %s %s on %s: error %v, want ErrConflict", invalidOps[pick%len(invalidOps)].Kind,
				invalidOps[pick%len(invalidOps)].Path, invalidOps[pick%len(invalidOps)].Partition, err)
		}
	})
}

// checkFileSystems has e2fsck and fsck.fat check the baked partitions.
func checkFileSystems(t *testing.T, dev *image.Device, layout image.Layout) {
	t.Helper()
	dir := t.TempDir()
	for _, c := range []struct {
		part image.Partition
		name string
		cmd  []string
	}{{layout.Root, "root.ext4", []string{"e2fsck", "-fn"}}, {layout.Boot, "boot.fat", []string{"fsck.fat", "-n"}}} {
		p := filepath.Join(dir, c.name)
		if err := output.Write(context.Background(), p, io.NewSectionReader(dev, c.part.Start, c.part.Size), c.part.Size, nil); err != nil {
			t.Fatal(err)
		}
		if out, err := exec.Command(c.cmd[0], append(c.cmd[1:], p)...).CombinedOutput(); err != nil {
			t.Fatalf("%s on the baked %s: %v\n%s", strings.Join(c.cmd, " "), c.name, err, out)
		}
	}
}
