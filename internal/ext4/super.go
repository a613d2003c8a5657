package ext4

import (
	"encoding/binary"
	"fmt"
)

const (
	superOffset = 1024
	superSize   = 1024
	superMagic  = 0xEF53
)

// Feature bits (Documentation/filesystems/ext4/super.rst).
const (
	compatHasJournal   = 0x4
	compatExtAttr      = 0x8
	compatResizeInode  = 0x10
	compatDirIndex     = 0x20
	compatSparseSuper2 = 0x200
	compatExclude      = 0x80 | 0x100

	incompatCompression = 0x1
	incompatFiletype    = 0x2
	incompatRecover     = 0x4
	incompatJournalDev  = 0x8
	incompatMetaBG      = 0x10
	incompatExtents     = 0x40
	incompat64bit       = 0x80
	incompatMMP         = 0x100
	incompatFlexBG      = 0x200
	incompatEAInode     = 0x400
	incompatDirData     = 0x1000
	incompatCsumSeed    = 0x2000
	incompatLargedir    = 0x4000
	incompatInlineData  = 0x8000
	incompatEncrypt     = 0x10000
	incompatCasefold    = 0x20000

	roSparseSuper   = 0x1
	roLargeFile     = 0x2
	roHugeFile      = 0x8
	roGdtCsum       = 0x10
	roDirNlink      = 0x20
	roExtraIsize    = 0x40
	roQuota         = 0x100
	roBigalloc      = 0x200
	roMetadataCsum  = 0x400
	roReadonly      = 0x1000
	roProject       = 0x2000
	roVerity        = 0x8000
	roOrphanPresent = 0x10000
)

// Features this writer handles; anything else set in incompat or ro_compat
// makes Open refuse the filesystem rather than guess.
const (
	knownIncompat = incompatFiletype | incompatExtents | incompat64bit | incompatFlexBG |
		incompatCsumSeed | incompatLargedir | incompatEAInode
	knownRoCompat = roSparseSuper | roLargeFile | 0x4 /* btree_dir, unused */ | roHugeFile |
		roGdtCsum | roDirNlink | roExtraIsize | roMetadataCsum | roVerity
)

var incompatNames = map[uint32]string{
	incompatCompression: "compression", incompatRecover: "needs_recovery",
	incompatJournalDev: "journal_dev", incompatMetaBG: "meta_bg", incompatMMP: "mmp",
	incompatDirData: "dirdata", incompatInlineData: "inline_data",
	incompatEncrypt: "encrypt", incompatCasefold: "casefold",
}

var roCompatNames = map[uint32]string{
	roQuota: "quota", roBigalloc: "bigalloc", roReadonly: "read-only",
	roProject: "project", roOrphanPresent: "orphan_present", 0x80: "snapshot",
	0x800: "replica", 0x4000: "shared_blocks",
}

// super is the primary superblock, kept as raw bytes so that fields this
// package does not know survive untouched.
type super struct{ b []byte }

func (s super) u16(off int) uint16      { return binary.LittleEndian.Uint16(s.b[off:]) }
func (s super) u32(off int) uint32      { return binary.LittleEndian.Uint32(s.b[off:]) }
func (s super) put32(off int, v uint32) { binary.LittleEndian.PutUint32(s.b[off:], v) }

func (s super) inodesCount() uint32    { return s.u32(0x0) }
func (s super) firstDataBlock() uint32 { return s.u32(0x14) }
func (s super) logBlockSize() uint32   { return s.u32(0x18) }
func (s super) blocksPerGroup() uint32 { return s.u32(0x20) }
func (s super) inodesPerGroup() uint32 { return s.u32(0x28) }
func (s super) magic() uint16          { return s.u16(0x38) }
func (s super) state() uint16          { return s.u16(0x3A) }
func (s super) revLevel() uint32       { return s.u32(0x4C) }
func (s super) firstIno() uint32 {
	if s.revLevel() == 0 {
		return 11
	}
	return s.u32(0x54)
}
func (s super) inodeSize() uint16 {
	if s.revLevel() == 0 {
		return 128
	}
	return s.u16(0x58)
}
func (s super) compat() uint32            { return s.u32(0x5C) }
func (s super) incompat() uint32          { return s.u32(0x60) }
func (s super) roCompat() uint32          { return s.u32(0x64) }
func (s super) uuid() []byte              { return s.b[0x68:0x78] }
func (s super) reservedGdtBlocks() uint16 { return s.u16(0xCE) }
func (s super) hashSeed() (seed [4]uint32) {
	for i := range seed {
		seed[i] = s.u32(0xEC + 4*i)
	}
	return seed
}
func (s super) defHashVersion() uint8 { return s.b[0xFC] }
func (s super) descSize() uint16 {
	if s.incompat()&incompat64bit == 0 {
		return 32
	}
	return s.u16(0xFE)
}
func (s super) wantExtraIsize() uint16 { return s.u16(0x15E) }
func (s super) flags() uint32          { return s.u32(0x160) }
func (s super) checksumSeed() uint32   { return s.u32(0x270) }
func (s super) errorCount() uint32     { return s.u32(0x194) }

func (s super) blocksCount() uint64 {
	n := uint64(s.u32(0x4))
	if s.incompat()&incompat64bit != 0 {
		n |= uint64(s.u32(0x150)) << 32
	}
	return n
}

func (s super) freeBlocks() uint64 {
	n := uint64(s.u32(0xC))
	if s.incompat()&incompat64bit != 0 {
		n |= uint64(s.u32(0x158)) << 32
	}
	return n
}

func (s super) setFreeBlocks(n uint64) {
	s.put32(0xC, uint32(n))
	if s.incompat()&incompat64bit != 0 {
		s.put32(0x158, uint32(n>>32))
	}
}

func (s super) freeInodes() uint32     { return s.u32(0x10) }
func (s super) setFreeInodes(n uint32) { s.put32(0x10, n) }

func (s super) hasMetadataCsum() bool { return s.roCompat()&roMetadataCsum != 0 }

// updateChecksum recomputes s_checksum over the first 1020 bytes.
func (s super) updateChecksum() {
	if s.hasMetadataCsum() {
		s.put32(0x3FC, crc32c(^uint32(0), s.b[:0x3FC]))
	}
}

func (s super) checksumOK() bool {
	return !s.hasMetadataCsum() || s.u32(0x3FC) == crc32c(^uint32(0), s.b[:0x3FC])
}

// check refuses anything this writer cannot modify safely.
func (s super) check() error {
	if s.magic() != superMagic {
		return fmt.Errorf("%w: bad superblock magic %#04x (not ext2/3/4)", ErrCorrupt, s.magic())
	}
	if !s.checksumOK() {
		return fmt.Errorf("%w: superblock checksum mismatch", ErrCorrupt)
	}
	if s.logBlockSize() > 6 {
		return fmt.Errorf("%w: block size 2^(10+%d)", ErrCorrupt, s.logBlockSize())
	}
	if s.logBlockSize() > 2 {
		return errUnsupported("block size %d (only 1024..4096)", 1024<<s.logBlockSize())
	}
	if in := s.incompat() &^ knownIncompat; in != 0 {
		return errUnsupported("incompatible feature %s", featureList(in, incompatNames))
	}
	if ro := s.roCompat() &^ knownRoCompat; ro != 0 {
		return errUnsupported("feature %s", featureList(ro, roCompatNames))
	}
	if c := s.compat() & (compatSparseSuper2 | compatExclude); c != 0 {
		return errUnsupported("compat feature %#x (sparse_super2/exclude bitmaps)", c)
	}
	if s.incompat()&incompatExtents == 0 {
		return errUnsupported("filesystem without the extent feature (ext2/ext3)")
	}
	if s.state()&1 == 0 {
		return fmt.Errorf("%w: filesystem was not cleanly unmounted (run e2fsck first)", ErrNeedsCheck)
	}
	if s.state()&2 != 0 || s.errorCount() != 0 {
		return fmt.Errorf("%w: filesystem has recorded errors (run e2fsck first)", ErrNeedsCheck)
	}
	if s.blocksPerGroup() == 0 || s.inodesPerGroup() == 0 || s.blocksPerGroup() > 8<<(10+s.logBlockSize()) ||
		s.inodesPerGroup() > 8<<(10+s.logBlockSize()) || s.inodeSize() < 128 ||
		int(s.inodeSize()) > 1024<<s.logBlockSize() || s.inodeSize()&(s.inodeSize()-1) != 0 {
		return fmt.Errorf("%w: implausible geometry (blocks/group %d, inodes/group %d, inode size %d)",
			ErrCorrupt, s.blocksPerGroup(), s.inodesPerGroup(), s.inodeSize())
	}
	if ds := s.descSize(); ds < 32 || ds > 1024 || ds&(ds-1) != 0 {
		return fmt.Errorf("%w: group descriptor size %d", ErrCorrupt, ds)
	}
	if s.blocksCount() <= uint64(s.firstDataBlock()) {
		return fmt.Errorf("%w: block count %d", ErrCorrupt, s.blocksCount())
	}
	return nil
}

func featureList(bitsSet uint32, names map[uint32]string) string {
	out := ""
	for bit := uint32(1); bit != 0; bit <<= 1 {
		if bitsSet&bit == 0 {
			continue
		}
		if out != "" {
			out += ", "
		}
		if n, ok := names[bit]; ok {
			out += n
		} else {
			out += fmt.Sprintf("unknown %#x", bit)
		}
	}
	return out
}
