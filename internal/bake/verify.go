package bake

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"

	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"github.com/magibake/magibake/internal/ext4"
	"github.com/magibake/magibake/internal/fatfs"
	"github.com/magibake/magibake/internal/image"
	"github.com/magibake/magibake/internal/plan"
)

// VerifyCard checks a finished card image, size bytes read through r (the
// output file opened afresh, not the device it was copied from): its
// partition table must still be layout, the one Apply baked into, and every
// path of p and the manifest m that Apply returned must read back as written.
func VerifyCard(r io.ReaderAt, size int64, layout image.Layout, p *plan.Plan, m *Manifest) error {
	got, err := image.ReadLayout(r, size)
	if err != nil {
		// ReadLayout speaks of a base image; here the card is what we wrote.
		return fmt.Errorf("verify: partition table: %s", strings.TrimPrefix(err.Error(), image.ErrBadBase.Error()+": "))
	}
	if got != layout {
		return fmt.Errorf("verify: partition table reads back as %+v, the card was baked as %+v", got, layout)
	}
	written, err := withManifest(p, m)
	if err != nil {
		return err
	}
	// The device only reads through to r: it has no pages of its own.
	return Verify(image.NewDevice(r, size), layout, written)
}

// Verify reads every path of p back through freshly opened filesystems on
// dev and checks it holds what the last operation on that path asked for.
func Verify(dev *image.Device, layout image.Layout, p *plan.Plan) error {
	root, err := ext4.Open(dev.Section(layout.Root.Start, layout.Root.Size), layout.Root.Size)
	if err != nil {
		return fmt.Errorf("verify: reopen root partition: %w", err)
	}
	boot, err := fat32.Read(dev, layout.Boot.Size, layout.Boot.Start, 512)
	if err != nil {
		return fmt.Errorf("verify: reopen boot partition: %w", err)
	}
	for _, op := range p.Final() {
		var err error
		if op.Partition == plan.Root {
			err = verifyExt4(root, op)
		} else {
			err = verifyFAT(boot, op)
		}
		if err != nil {
			return fmt.Errorf("verify %s on %s: %w", op.Path, op.Partition, err)
		}
	}
	return nil
}

func verifyExt4(fsys *ext4.FS, op plan.Op) error {
	st, err := fsys.Lstat(op.Path)
	if op.Kind == plan.Remove {
		if err == nil {
			return errors.New("still present after removal")
		}
		if errors.Is(err, fs.ErrNotExist) {
			return nil
		}
		return err
	}
	if err != nil {
		return err
	}
	if st.UID != op.UID || st.GID != op.GID {
		return fmt.Errorf("owner %d:%d, want %d:%d", st.UID, st.GID, op.UID, op.GID)
	}
	switch op.Kind {
	case plan.WriteFile:
		if !st.Mode.IsRegular() || st.Mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != op.Mode {
			return fmt.Errorf("mode %v, want regular file %v", st.Mode, op.Mode)
		}
		got, err := fsys.ReadFile(op.Path)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, op.Content) {
			return fmt.Errorf("content differs from what was written (%d bytes, want %d)", len(got), len(op.Content))
		}
	case plan.Mkdir:
		if !st.Mode.IsDir() || st.Mode&(fs.ModePerm|fs.ModeSetuid|fs.ModeSetgid|fs.ModeSticky) != op.Mode {
			return fmt.Errorf("mode %v, want directory %v", st.Mode, op.Mode)
		}
	case plan.Symlink:
		if st.Mode&fs.ModeSymlink == 0 || st.Target != op.Target {
			return fmt.Errorf("symlink to %q (mode %v), want symlink to %q", st.Target, st.Mode, op.Target)
		}
	}
	return nil
}

func verifyFAT(fsys *fat32.FileSystem, op plan.Op) error {
	switch op.Kind {
	case plan.Remove:
		if _, ok := fatfs.Exists(fsys, op.Path); ok {
			return errors.New("still present after removal")
		}
	case plan.Mkdir:
		fi, ok := fatfs.Exists(fsys, op.Path)
		if !ok || !fi.IsDir() {
			return errors.New("directory missing")
		}
	case plan.WriteFile:
		fi, ok := fatfs.Exists(fsys, op.Path)
		if !ok || fi.IsDir() {
			return errors.New("file missing")
		}
		if len(op.Content) == 0 {
			// go-diskfs cannot open an empty file that has no cluster
			// (the correct form): "invalid start cluster: 0".
			if fi.Size() != 0 {
				return fmt.Errorf("%d bytes, want an empty file", fi.Size())
			}
			return nil
		}
		got, err := fatfs.ReadFile(fsys, op.Path)
		if err != nil {
			return err
		}
		if !bytes.Equal(got, op.Content) {
			return fmt.Errorf("content differs from what was written (%d bytes, want %d)", len(got), len(op.Content))
		}
	case plan.EditCmdline:
		got, err := fatfs.ReadFile(fsys, op.Path)
		if err != nil {
			return err
		}
		line := string(got)
		if strings.Count(line, "\n") != 1 || !strings.HasSuffix(line, "\n") {
			return fmt.Errorf("not exactly one line: %q", line)
		}
		words := strings.Fields(line)
		for _, w := range op.CmdlineSet {
			if !contains(words, w) {
				return fmt.Errorf("missing %q", w)
			}
		}
		for _, r := range op.CmdlineRemove {
			for _, w := range words {
				// A removed key may come back as a word the edit sets.
				if (w == r || strings.HasPrefix(w, r+"=")) && !contains(op.CmdlineSet, w) {
					return fmt.Errorf("still has %q", w)
				}
			}
		}
	}
	return nil
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
