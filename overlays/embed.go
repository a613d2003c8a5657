// Package overlays holds the default overlay trees, one per role plus common,
// embedded into the binary. Under each tree, boot/ mirrors the FAT boot
// partition and root/ the ext4 root filesystem; see internal/overlay for the
// rules (templates, modes, edits, symlinks).
package overlays

import "embed"

// FS holds common/, head/ and worker/.
//
//go:embed all:common all:head all:worker
var FS embed.FS
