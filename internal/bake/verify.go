package bake

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"github.com/magibake/magibake/internal/compare"
	"github.com/magibake/magibake/internal/ext4"
	"github.com/magibake/magibake/internal/image"
	"github.com/magibake/magibake/internal/manifest"
	"github.com/magibake/magibake/internal/plan"
)

// VerifyCard checks a finished card image, size bytes read through r (the
// output file opened afresh, not the device it was copied from): its
// partition table must still be layout, the one Apply baked into, and every
// path of p and the manifest m that Apply returned must read back as written.
func VerifyCard(r io.ReaderAt, size int64, layout image.Layout, p *plan.Plan, m *manifest.Manifest) error {
	got, err := image.ReadLayout(r, size)
	if err != nil {
		// ReadLayout speaks of a base image; here the card is what we wrote.
		return fmt.Errorf("verify: partition table: %s", strings.TrimPrefix(err.Error(), image.ErrBadImage.Error()+": "))
	}
	if got != layout {
		return fmt.Errorf("verify: partition table reads back as %+v, the card was baked as %+v", got, layout)
	}
	written, err := manifest.With(p, m)
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
		r, err := compare.Op(root, boot, op)
		if err == nil {
			err = unverified(op, r)
		}
		if err != nil {
			return fmt.Errorf("verify %s on %s: %w", op.Path, op.Partition, err)
		}
	}
	return nil
}

// unverified words the first difference r found, or is nil. The order is
// that of a write's steps: the path, its owner, its type and mode, then its
// bytes; an edited cmdline.txt is judged by the words the edit names.
func unverified(op plan.Op, r compare.Result) error {
	st := r.Stat
	switch {
	case r.Present:
		return errors.New("still present after removal")
	case r.Missing && r.Lookup != nil:
		return r.Lookup
	case r.Missing && op.Kind == plan.Mkdir:
		return errors.New("directory missing")
	case r.Missing:
		return errors.New("file missing")
	case r.Owner:
		return fmt.Errorf("owner %d:%d, want %d:%d", st.UID, st.GID, op.UID, op.GID)
	case op.Kind == plan.WriteFile && (r.Type || r.Mode):
		return fmt.Errorf("mode %v, want regular file %v", st.Mode, op.Mode)
	case op.Kind == plan.Mkdir && (r.Type || r.Mode):
		return fmt.Errorf("mode %v, want directory %v", st.Mode, op.Mode)
	case op.Kind == plan.Symlink && (r.Type || r.Target):
		return fmt.Errorf("symlink to %q (mode %v), want symlink to %q", st.Target, st.Mode, op.Target)
	case op.Kind == plan.EditCmdline && r.NotOneLine:
		return fmt.Errorf("not exactly one line: %q", r.Current)
	case op.Kind == plan.EditCmdline && len(r.Unset) > 0:
		return fmt.Errorf("missing %q", r.Unset[0])
	case op.Kind == plan.EditCmdline && len(r.Kept) > 0:
		return fmt.Errorf("still has %q", r.Kept[0])
	case op.Kind == plan.EditConfig && len(r.Unapplied) > 0:
		return fmt.Errorf("lacks %q in [%s]", r.Unapplied[0].Line, r.Unapplied[0].Section)
	case op.Kind == plan.WriteFile && r.Content && op.Partition == plan.Boot && len(op.Content) == 0:
		return fmt.Errorf("%d bytes, want an empty file", len(r.Current))
	case op.Kind == plan.WriteFile && r.Content:
		return fmt.Errorf("content differs from what was written (%d bytes, want %d)", len(r.Current), len(op.Content))
	}
	return nil
}
