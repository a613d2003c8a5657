// Package bake applies a Plan to a card image: the FAT32 boot partition
// through go-diskfs (with its bookkeeping repaired afterwards), the ext4 root
// through our own writer, and a manifest of everything written.
package bake

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"regexp"
	"strings"
	"syscall"
	"time"
	"unicode/utf16"

	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"github.com/magibake/magibake/internal/bytesize"
	"github.com/magibake/magibake/internal/ext4"
	"github.com/magibake/magibake/internal/fatread"
	"github.com/magibake/magibake/internal/image"
	"github.com/magibake/magibake/internal/manifest"
	"github.com/magibake/magibake/internal/plan"
)

// Apply writes every operation of p into dev, then the manifest, then checks
// by reading everything back through freshly opened filesystems.
func Apply(ctx context.Context, dev *image.Device, layout image.Layout, p *plan.Plan, info manifest.Info) (*manifest.Manifest, error) {
	m := manifest.New(p, info)
	written, err := manifest.With(p, m)
	if err != nil {
		return nil, err
	}
	if err := expect(dev, layout, p.Expects); err != nil {
		return nil, err
	}
	all := written.Ops
	for _, part := range []plan.Partition{plan.Boot, plan.Root} {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var ops []plan.Op
		for _, op := range all {
			if op.Partition == part {
				ops = append(ops, op)
			}
		}
		if len(ops) == 0 {
			continue
		}
		if part == plan.Boot {
			err = applyBoot(dev, layout.Boot, ops, p)
		} else {
			err = applyRoot(dev.Section(layout.Root.Start, layout.Root.Size), layout.Root.Size, ops, p)
		}
		if err != nil {
			return nil, err
		}
	}
	if err := Verify(dev, layout, written); err != nil {
		return nil, err
	}
	return m, nil
}

// ErrExpect marks a base that lacks a file the profile's settings need (a
// time zone, locale or keyboard layout it does not ship): bad input.
var ErrExpect = errors.New("the base lacks what the profile needs")

// expect checks, before anything is written, that the base's root holds
// every file the plan expects.
func expect(dev *image.Device, layout image.Layout, want []plan.Expect) error {
	if len(want) == 0 {
		return nil
	}
	fsys, err := ext4.Open(dev.Section(layout.Root.Start, layout.Root.Size), layout.Root.Size)
	if err != nil {
		return fmt.Errorf("open root partition: %w", err)
	}
	defer fsys.Close() // reads only: nothing to write back
	for _, e := range want {
		st, err := fsys.Lstat(e.Path)
		switch {
		case errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR):
			return fmt.Errorf("%w: %s (no %s)", ErrExpect, e.Why, e.Path)
		case err != nil:
			return fmt.Errorf("root partition: %s: %w", e.Path, err)
		case st.Mode.IsDir():
			return fmt.Errorf("%w: %s (%s is a directory)", ErrExpect, e.Why, e.Path)
		}
		if e.Contains == "" {
			continue
		}
		re, err := regexp.Compile(`(?m)^\s*` + e.Contains)
		if err != nil {
			return fmt.Errorf("expect %s: %w", e.Path, err)
		}
		data, err := fsys.ReadFile(e.Path)
		if err != nil {
			return fmt.Errorf("root partition: %s: %w", e.Path, err)
		}
		if !re.Match(data) {
			return fmt.Errorf("%w: %s", ErrExpect, e.Why)
		}
	}
	return nil
}

// bootBytes is what the plan writes to the boot partition.
func bootBytes(ops []plan.Op) int64 {
	var n int64
	for _, op := range ops {
		n += int64(len(op.Content))
	}
	return n
}

// ErrConflict marks an operation the base cannot take: a path through a
// file, a file where a directory is, a name too long, a kind of operation
// the partition cannot hold. The plan (profiles, overlays) does not fit the
// base: bad input, not a fault of magibake.
var ErrConflict = errors.New("the plan does not fit the base")

// conflict is an error that is also ErrConflict, with the message of err.
type conflict struct{ error }

func (c conflict) Unwrap() error        { return c.error }
func (c conflict) Is(target error) bool { return target == ErrConflict }

// errKind is an operation of a kind the partition cannot hold.
var errKind = errors.New("operation not possible")

func opErr(op plan.Op, err error) error {
	for _, e := range []error{fs.ErrExist, fs.ErrNotExist, fs.ErrInvalid, syscall.ENOTDIR, syscall.EISDIR,
		syscall.ENAMETOOLONG, syscall.ELOOP, syscall.ENOTEMPTY, errKind} {
		if errors.Is(err, e) {
			err = conflict{err}
			break
		}
	}
	return fmt.Errorf("%s %s on %s: %w", verb(op.Kind), op.Path, op.Partition, err)
}

func verb(k plan.Kind) string {
	switch k {
	case plan.WriteFile:
		return "write"
	case plan.Mkdir:
		return "mkdir"
	case plan.Symlink:
		return "symlink"
	case plan.Remove:
		return "remove"
	case plan.EditCmdline, plan.EditConfig:
		return "edit"
	}
	return string(k)
}

func applyRoot(sec *image.Section, size int64, ops []plan.Op, p *plan.Plan) error {
	fsys, err := ext4.Open(sec, size)
	if err != nil {
		return fmt.Errorf("open root partition: %w", err)
	}
	for _, op := range ops {
		if err := applyExt4(fsys, op, p); err != nil {
			return opErr(op, err)
		}
	}
	return fsys.Close()
}

func applyExt4(fsys *ext4.FS, op plan.Op, p *plan.Plan) error {
	parent := path.Dir(op.Path)
	switch op.Kind {
	case plan.WriteFile:
		if err := fsys.MkdirAll(parent, 0o755, 0, 0, p.MTime); err != nil {
			return err
		}
		return fsys.WriteFile(op.Path, op.Content, op.Mode, op.UID, op.GID, p.MTime)
	case plan.Mkdir:
		if err := fsys.MkdirAll(op.Path, op.Mode, op.UID, op.GID, p.MTime); err != nil {
			return err
		}
		// An existing directory gets the mode and owner the plan asks for.
		return fsys.SetAttr(op.Path, op.Mode, op.UID, op.GID, p.MTime)
	case plan.Symlink:
		if err := fsys.MkdirAll(parent, 0o755, 0, 0, p.MTime); err != nil {
			return err
		}
		return fsys.Symlink(op.Target, op.Path, op.UID, op.GID, p.MTime)
	case plan.Remove:
		if err := fsys.Remove(op.Path); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		return nil
	}
	return fmt.Errorf("%w: %q on the ext4 root partition", errKind, op.Kind)
}

// ErrBootFull marks a plan whose files do not fit on the FAT boot partition.
var ErrBootFull = errors.New("the boot partition is full")

func applyBoot(dev *image.Device, part image.Partition, ops []plan.Op, p *plan.Plan) error {
	if err := writeBoot(dev, part, ops, p); err != nil {
		return err
	}
	if _, err := repairFAT(dev.Section(part.Start, part.Size)); err != nil {
		return fmt.Errorf("boot partition after writing: %w", err)
	}
	return nil
}

// writeBoot is applyBoot without the repair, apart so that a test can see
// what go-diskfs alone leaves behind.
func writeBoot(dev *image.Device, part image.Partition, ops []plan.Op, p *plan.Plan) error {
	fsys, err := fat32.Read(dev, part.Size, part.Start, 512)
	if err != nil {
		return fmt.Errorf("open boot partition: %w", err)
	}
	for _, op := range ops {
		if err := applyFAT(fsys, op, p); err != nil {
			// go-diskfs says so only in words (no error value to test).
			if strings.Contains(err.Error(), "no space left on device") {
				return fmt.Errorf("%w (%s): writing %s (%s) failed: %v; this bake writes %s to it in all",
					ErrBootFull, bytesize.Format(part.Size), op.Path, bytesize.Format(int64(len(op.Content))), err, bytesize.Format(bootBytes(ops)))
			}
			return opErr(op, err)
		}
	}
	return nil
}

// fatMaxName is the longest name FAT's long file names hold, in UTF-16
// units; go-diskfs writes longer ones, which fsck.fat then rejects.
const fatMaxName = 255

func applyFAT(fsys *fat32.FileSystem, op plan.Op, p *plan.Plan) error {
	for _, name := range strings.Split(strings.Trim(op.Path, "/"), "/") {
		if len(utf16.Encode([]rune(name))) > fatMaxName {
			return fmt.Errorf("%w: a FAT name holds at most %d characters", syscall.ENAMETOOLONG, fatMaxName)
		}
	}
	switch op.Kind {
	case plan.WriteFile:
		return fatWrite(fsys, op.Path, op.Content, p)
	case plan.EditCmdline:
		// go-diskfs says "does not exist" only in words.
		if _, ok := fatread.Exists(fsys, op.Path); !ok {
			return fmt.Errorf("read: %w", fs.ErrNotExist)
		}
		old, err := fatread.ReadFile(fsys, op.Path)
		if err != nil {
			return fmt.Errorf("read: %w", err)
		}
		return fatWrite(fsys, op.Path, []byte(plan.ApplyCmdline(string(old), op.CmdlineSet, op.CmdlineRemove)), p)
	case plan.EditConfig:
		// A base without config.txt gets one: the firmware reads none as
		// all defaults, and the lines are then all it says.
		var old []byte
		if fi, ok := fatread.Exists(fsys, op.Path); ok && fi.Size() > 0 {
			var err error
			if old, err = fatread.ReadFile(fsys, op.Path); err != nil {
				return fmt.Errorf("read: %w", err)
			}
		}
		return fatWrite(fsys, op.Path, []byte(plan.ApplyConfig(string(old), op.ConfigLines)), p)
	case plan.Mkdir:
		return fatMkdir(fsys, op.Path, p.MTime)
	case plan.Remove:
		if _, ok := fatread.Exists(fsys, op.Path); !ok {
			return nil
		}
		return fsys.Remove(op.Path)
	}
	return fmt.Errorf("%w: %q on the FAT boot partition", errKind, op.Kind)
}

// fatMkdir makes dir and its missing parents, each dated mtime: go-diskfs
// dates a new directory's entry, and its "." and "..", with the wall clock
// (SOURCE_DATE_EPOCH aside), and a card must not depend on when it was
// baked. Directories already there keep their dates.
func fatMkdir(fsys *fat32.FileSystem, dir string, mtime time.Time) error {
	if dir == "/" {
		return nil
	}
	if fi, ok := fatread.Exists(fsys, dir); ok {
		if !fi.IsDir() {
			return fmt.Errorf("%s is a file", dir)
		}
		return nil
	}
	if err := fatMkdir(fsys, path.Dir(dir), mtime); err != nil {
		return err
	}
	if err := fsys.Mkdir(dir); err != nil {
		return err
	}
	for _, p := range []string{dir, dir + "/.", dir + "/.."} {
		if err := fsys.Chtimes(p, mtime, mtime, mtime); err != nil {
			return fmt.Errorf("date %s: %w", p, err)
		}
	}
	return nil
}

// fatWrite rewrites an existing file in place: go-diskfs's O_TRUNC frees
// the clusters that shorter content no longer needs, whereas its Remove
// frees none, so removing and recreating leaked the old file's whole chain
// (see fatrepair.go).
func fatWrite(fsys *fat32.FileSystem, name string, data []byte, p *plan.Plan) error {
	if dir := path.Dir(name); dir != "/" {
		if err := fatMkdir(fsys, dir, p.MTime); err != nil {
			return fmt.Errorf("mkdir %s: %w", dir, err)
		}
	}
	if fi, ok := fatread.Exists(fsys, name); ok {
		if fi.IsDir() {
			return fmt.Errorf("is a directory")
		}
		// An empty file made by another tool (mkfs, mtools, Linux) owns no
		// cluster, and go-diskfs's Write then allocates a chain it never
		// links to the entry: the content is lost (measured: fsck.fat
		// "File size is 100 bytes, cluster chain length is 0 bytes").
		// Removing such an entry frees nothing, so recreating it leaks nothing.
		if fi.Size() == 0 && len(data) > 0 && !ownsCluster(fsys, name) {
			if err := fsys.Remove(name); err != nil {
				return fmt.Errorf("replace: %w", err)
			}
		}
	}
	f, err := fsys.OpenFile(name, os.O_CREATE|os.O_RDWR|os.O_TRUNC)
	if err != nil {
		return err
	}
	if len(data) > 0 {
		if _, err := f.Write(data); err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Close(); err != nil {
		return err
	}
	return fsys.Chtimes(name, p.MTime, p.MTime, p.MTime)
}

// ownsCluster reports whether the entry of file name starts a cluster
// chain; go-diskfs exposes the start cluster only through the chain, and
// fails to list one that starts at cluster 0.
func ownsCluster(fsys *fat32.FileSystem, name string) bool {
	f, err := fsys.OpenFile(name, os.O_RDONLY)
	if err != nil {
		return false
	}
	defer f.Close()
	c, ok := f.(interface{ GetClusterChain() ([]uint32, error) })
	if !ok {
		return false
	}
	chain, err := c.GetClusterChain()
	return err == nil && len(chain) > 0 && chain[0] >= 2
}
