// Package compression recognises how a disk image file is compressed, by
// its first bytes rather than its name: base images, cards to flash and
// cards to inspect are all recognised here.
package compression

import "bytes"

// Kind is how an image file is stored.
type Kind int

// The kinds of image files.
const (
	Raw  Kind = iota // a plain disk image
	XZ               // .img.xz
	Zstd             // .img.zst
	Gzip             // .img.gz: recognised to be refused by name
)

// XZMagic starts every xz stream (its header magic).
var XZMagic = []byte{0xfd, '7', 'z', 'X', 'Z', 0x00}

var (
	zstdMagic = []byte{0x28, 0xb5, 0x2f, 0xfd}
	gzipMagic = []byte{0x1f, 0x8b}
)

// HeadSize is how many first bytes of a file Detect needs.
const HeadSize = 6

// Detect says how the file whose first bytes are head (up to HeadSize) is
// stored.
func Detect(head []byte) Kind {
	switch {
	case bytes.HasPrefix(head, XZMagic):
		return XZ
	case bytes.HasPrefix(head, zstdMagic):
		return Zstd
	case bytes.HasPrefix(head, gzipMagic):
		return Gzip
	}
	return Raw
}
