// Package zeros tells whether bytes are all zero: the test behind every
// sparse copy and skipped run (image, output, xzblocks) and ext4's checks
// of unused fields.
package zeros

import "encoding/binary"

// All reports whether every byte of b is zero. It reads eight bytes at a
// time: it runs over every byte of every card written.
func All(b []byte) bool {
	for len(b) >= 32 {
		if binary.LittleEndian.Uint64(b)|binary.LittleEndian.Uint64(b[8:])|
			binary.LittleEndian.Uint64(b[16:])|binary.LittleEndian.Uint64(b[24:]) != 0 {
			return false
		}
		b = b[32:]
	}
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}
