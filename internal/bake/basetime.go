package bake

import (
	"fmt"
	"time"

	"github.com/magibake/magibake/internal/ext4"
	"github.com/magibake/magibake/internal/image"
	"github.com/magibake/magibake/internal/manifest"
)

// BaseTime is the date baked files get from the base when no
// SOURCE_DATE_EPOCH is set: when its root filesystem was last written (for
// a release image, when it was built), or the Unix epoch if the superblock
// records no date at all.
func BaseTime(dev *image.Device, layout image.Layout) (time.Time, error) {
	root, err := ext4.Open(dev.Section(layout.Root.Start, layout.Root.Size), layout.Root.Size)
	if err != nil {
		return time.Time{}, fmt.Errorf("root partition: %w", err)
	}
	if t := root.LastWrite(); !t.IsZero() {
		return t, nil
	}
	return time.Unix(0, 0).UTC(), nil
}

// BakedFor reads the manifest a card baked by magibake holds: a base that
// has one is a card, not a Raspberry Pi OS image. node is the node it
// names ("" when the manifest cannot be read); baked is false for a base
// without a manifest, or whose root cannot be read (ReadLayout and the
// bake report that).
func BakedFor(dev *image.Device, layout image.Layout) (node string, baked bool) {
	root, err := ext4.Open(dev.Section(layout.Root.Start, layout.Root.Size), layout.Root.Size)
	if err != nil {
		return "", false
	}
	data, err := root.ReadFile(manifest.Path)
	if err != nil {
		return "", false
	}
	if m, err := manifest.Parse(data); err == nil {
		return m.Node, true
	}
	return "", true
}
