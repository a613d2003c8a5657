package ext4

import (
	"encoding/binary"
	"hash/crc32"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// crc32c is the kernel's crc32c_le(seed, buf): no pre- or post-inversion,
// unlike Go's crc32.Update, hence the double complement.
func crc32c(seed uint32, buf []byte) uint32 {
	return ^crc32.Update(^seed, castagnoli, buf)
}

func crc32cU32(seed, v uint32) uint32 {
	var b [4]byte
	binary.LittleEndian.PutUint32(b[:], v)
	return crc32c(seed, b[:])
}

// crc16 is e2fsprogs' ext2fs_crc16 (ANSI polynomial, reflected), used for
// group descriptor checksums on filesystems with uninit_bg but no metadata_csum.
func crc16(crc uint16, buf []byte) uint16 {
	for _, b := range buf {
		crc ^= uint16(b)
		for i := 0; i < 8; i++ {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xA001
			} else {
				crc >>= 1
			}
		}
	}
	return crc
}
