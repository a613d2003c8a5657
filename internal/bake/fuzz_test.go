package bake

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"testing"
	"time"

	"github.com/magibake/magibake/internal/image"
	"github.com/magibake/magibake/internal/plan"
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

// FuzzApply applies decoded plans to a small Pi-OS-shaped card: any error is
// fine, a panic or hang is not, and a plan Apply accepts has been read back
// through freshly opened filesystems (Apply's own Verify), so success means
// every path holds what its last operation asked for.
func FuzzApply(f *testing.F) {
	dir := f.TempDir()
	disk := smallCard(f, dir)
	base, err := image.OpenBase(context.Background(), disk, dir)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { base.Close() })
	layout, err := image.ReadLayout(base, base.Size())
	if err != nil {
		f.Fatal(err)
	}
	f.Add([]byte{0, 0, 0, 3, 0x80, 13, 0, 2, 0x85, 12, 0, 1})         // hostname, config.txt, cmdline
	f.Add([]byte{2, 9, 3, 0, 0, 10, 1, 40, 3, 11, 0, 10, 4, 1, 0, 0}) // mkdir, unit, enable symlink, remove
	f.Add([]byte{0, 3, 0, 255, 0, 3, 0, 1, 0, 6, 0, 200})             // grow, shrink, replace a big file
	f.Add([]byte{3, 16, 0, 2, 0, 17, 0, 9, 0, 7, 0, 3})               // symlinks, a path through a link and a file
	f.Add([]byte{0x80, 14, 0, 0, 0x82, 15, 0, 0, 0x80, 15, 0, 50, 0x84, 14, 0, 0})
	f.Add([]byte{0, 18, 0, 20, 0, 5, 0, 30})
	mtime := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	f.Fuzz(func(t *testing.T, data []byte) {
		p := &plan.Plan{Node: "fuzz", MTime: mtime, Ops: opsFrom(data)}
		dev := image.NewDevice(base, base.Size())
		_, err := Apply(context.Background(), dev, layout, p, Info{Version: "fuzz", ProfileDigest: "d", BaseSHA256: base.SHA256})
		if err != nil && errors.Is(err, context.Canceled) {
			t.Fatal(err)
		}
	})
}
