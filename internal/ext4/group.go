package ext4

import (
	"encoding/binary"
	"fmt"
	"math/bits"
)

// Group descriptor flags.
const (
	bgInodeUninit  = 0x1
	bgBlockUninit  = 0x2
	bgItableZeroed = 0x4
)

func (f *FS) desc(g uint32) []byte {
	return f.gdt[g*f.descSize : (g+1)*f.descSize]
}

// field reads a descriptor field split into a 32-bit (or 16-bit) low half
// and, with 64-byte descriptors, a high half.
func (f *FS) descField(g uint32, lo, hi, width int) uint64 {
	d := f.desc(g)
	var v uint64
	if width == 4 {
		v = uint64(binary.LittleEndian.Uint32(d[lo:]))
	} else {
		v = uint64(binary.LittleEndian.Uint16(d[lo:]))
	}
	if f.descSize >= 64 {
		if width == 4 {
			v |= uint64(binary.LittleEndian.Uint32(d[hi:])) << 32
		} else {
			v |= uint64(binary.LittleEndian.Uint16(d[hi:])) << 16
		}
	}
	return v
}

func (f *FS) setDescField(g uint32, lo, hi, width int, v uint64) {
	d := f.desc(g)
	if width == 4 {
		binary.LittleEndian.PutUint32(d[lo:], uint32(v))
		if f.descSize >= 64 {
			binary.LittleEndian.PutUint32(d[hi:], uint32(v>>32))
		}
	} else {
		binary.LittleEndian.PutUint16(d[lo:], uint16(v))
		if f.descSize >= 64 {
			binary.LittleEndian.PutUint16(d[hi:], uint16(v>>16))
		}
	}
	f.dirtyGdt = true
}

func (f *FS) blockBitmapLoc(g uint32) uint64  { return f.descField(g, 0x0, 0x20, 4) }
func (f *FS) inodeBitmapLoc(g uint32) uint64  { return f.descField(g, 0x4, 0x24, 4) }
func (f *FS) inodeTableLoc(g uint32) uint64   { return f.descField(g, 0x8, 0x28, 4) }
func (f *FS) groupFreeBlocks(g uint32) uint64 { return f.descField(g, 0xC, 0x2C, 2) }
func (f *FS) groupFreeInodes(g uint32) uint64 { return f.descField(g, 0xE, 0x2E, 2) }
func (f *FS) groupUsedDirs(g uint32) uint64   { return f.descField(g, 0x10, 0x30, 2) }
func (f *FS) itableUnused(g uint32) uint64    { return f.descField(g, 0x1C, 0x32, 2) }
func (f *FS) groupFlags(g uint32) uint16      { return binary.LittleEndian.Uint16(f.desc(g)[0x12:]) }

func (f *FS) setGroupFlags(g uint32, v uint16) {
	binary.LittleEndian.PutUint16(f.desc(g)[0x12:], v)
	f.dirtyGdt = true
}

// groupHasUninit reports whether the uninit flags mean anything: they are
// only honoured with uninit_bg or metadata_csum.
func (f *FS) uninitHonoured() bool { return f.csum || f.gdtCsum }

func (f *FS) groupFirstBlock(g uint32) uint64 {
	return uint64(f.sb.firstDataBlock()) + uint64(g)*uint64(f.sb.blocksPerGroup())
}

// groupBlocks is the number of blocks in group g (the last one may be short).
func (f *FS) groupBlocks(g uint32) uint64 {
	first := f.groupFirstBlock(g)
	n := uint64(f.sb.blocksPerGroup())
	if first+n > f.sb.blocksCount() {
		n = f.sb.blocksCount() - first
	}
	return n
}

func (f *FS) itableBlocks() uint64 {
	return (uint64(f.sb.inodesPerGroup())*uint64(f.sb.inodeSize()) + uint64(f.bs) - 1) / uint64(f.bs)
}

func (f *FS) checkGroup(g uint32) error {
	n := f.sb.blocksCount()
	bb, ib, it := f.blockBitmapLoc(g), f.inodeBitmapLoc(g), f.inodeTableLoc(g)
	if bb >= n || ib >= n || it+f.itableBlocks() > n || bb == 0 || ib == 0 || it == 0 {
		return errCorrupt("group %d: bitmap or inode table location outside the filesystem", g)
	}
	if f.groupFreeBlocks(g) > f.groupBlocks(g) || f.groupFreeInodes(g) > uint64(f.sb.inodesPerGroup()) ||
		f.itableUnused(g) > uint64(f.sb.inodesPerGroup()) {
		return errCorrupt("group %d: free counts out of range", g)
	}
	if f.csum || f.gdtCsum {
		if got, want := binary.LittleEndian.Uint16(f.desc(g)[0x1E:]), f.groupChecksum(g); got != want {
			return errCorrupt("group %d: descriptor checksum %#04x, expected %#04x", g, got, want)
		}
	}
	return nil
}

func (f *FS) groupChecksum(g uint32) uint16 {
	d := f.desc(g)
	if f.csum {
		c := crc32cU32(f.csumSeed, g)
		c = crc32c(c, d[:0x1E])
		c = crc32c(c, []byte{0, 0})
		if len(d) > 0x20 {
			c = crc32c(c, d[0x20:])
		}
		return uint16(c)
	}
	if f.gdtCsum {
		var gb [4]byte
		binary.LittleEndian.PutUint32(gb[:], g)
		c := crc16(0xFFFF, f.sb.uuid())
		c = crc16(c, gb[:])
		c = crc16(c, d[:0x1E])
		if len(d) > 0x20 {
			c = crc16(c, d[0x20:])
		}
		return c
	}
	return 0
}

func (f *FS) updateGroupChecksum(g uint32) {
	if f.csum || f.gdtCsum {
		binary.LittleEndian.PutUint16(f.desc(g)[0x1E:], f.groupChecksum(g))
	}
}

// hasSuper reports whether group g holds a superblock backup (and so a copy
// of the descriptor table and the reserved GDT blocks).
func (f *FS) hasSuper(g uint32) bool {
	if g <= 1 || f.sb.roCompat()&roSparseSuper == 0 {
		return true
	}
	if g&1 == 0 {
		return false
	}
	for _, p := range []uint32{3, 5, 7} {
		n := p
		for n < g {
			n *= p
		}
		if n == g {
			return true
		}
	}
	return false
}

func (f *FS) gdtBlocks() uint64 {
	return (uint64(f.groups)*uint64(f.descSize) + uint64(f.bs) - 1) / uint64(f.bs)
}

// loadBitmap returns the (cached) block or inode bitmap of group g. A group
// whose bitmap is still uninitialised gets one built the way mke2fs and the
// kernel would, so it can be allocated from.
func (f *FS) loadBitmap(g uint32, inode bool) ([]byte, error) {
	k := bitmapKey{g, inode}
	if b, ok := f.bitmaps[k]; ok {
		return b, nil
	}
	flag, loc := uint16(bgBlockUninit), f.blockBitmapLoc(g)
	if inode {
		flag, loc = bgInodeUninit, f.inodeBitmapLoc(g)
	}
	var b []byte
	if f.uninitHonoured() && f.groupFlags(g)&flag != 0 {
		b = make([]byte, f.bs)
		if inode {
			setPadding(b, uint64(f.sb.inodesPerGroup()))
		} else {
			f.initBlockBitmap(g, b)
		}
	} else {
		var err error
		if b, err = f.readBlock(loc); err != nil {
			return nil, fmt.Errorf("group %d bitmap: %w", g, err)
		}
		if f.csum {
			if err := f.verifyBitmap(g, inode, b); err != nil {
				return nil, err
			}
		}
	}
	f.bitmaps[k] = b
	return b, nil
}

func setPadding(b []byte, used uint64) {
	for i := used; i < uint64(len(b))*8; i++ {
		b[i/8] |= 1 << (i % 8)
	}
}

// initBlockBitmap marks what an uninitialised group's bitmap would hold: its
// superblock backup, descriptor copies and reserved GDT blocks, and every
// group's bitmaps and inode table that flex_bg placed inside it.
func (f *FS) initBlockBitmap(g uint32, b []byte) {
	first, n := f.groupFirstBlock(g), f.groupBlocks(g)
	mark := func(blk uint64) {
		if blk >= first && blk < first+n {
			i := blk - first
			b[i/8] |= 1 << (i % 8)
		}
	}
	if f.hasSuper(g) {
		meta := 1 + f.gdtBlocks() + uint64(f.sb.reservedGdtBlocks())
		for i := uint64(0); i < meta; i++ {
			mark(first + i)
		}
	}
	for o := uint32(0); o < f.groups; o++ {
		mark(f.blockBitmapLoc(o))
		mark(f.inodeBitmapLoc(o))
		for i, it := uint64(0), f.inodeTableLoc(o); i < f.itableBlocks(); i++ {
			mark(it + i)
		}
	}
	setPadding(b, n)
}

func (f *FS) bitmapChecksum(g uint32, inode bool, b []byte) uint32 {
	size := f.sb.blocksPerGroup() / 8
	if inode {
		size = f.sb.inodesPerGroup() / 8
	}
	return crc32c(f.csumSeed, b[:size])
}

func (f *FS) verifyBitmap(g uint32, inode bool, b []byte) error {
	lo, hi := 0x18, 0x38
	what := "block"
	if inode {
		lo, hi, what = 0x1A, 0x3A, "inode"
	}
	want := f.bitmapChecksum(g, inode, b)
	got := uint32(binary.LittleEndian.Uint16(f.desc(g)[lo:]))
	if f.descSize >= 64 {
		got |= uint32(binary.LittleEndian.Uint16(f.desc(g)[hi:])) << 16
	} else {
		want &= 0xFFFF
	}
	if got != want {
		return errCorrupt("group %d: %s bitmap checksum %#x, expected %#x", g, what, got, want)
	}
	return nil
}

func (f *FS) writeBitmap(k bitmapKey) error {
	b := f.bitmaps[k]
	loc, flag, lo, hi := f.blockBitmapLoc(k.group), uint16(bgBlockUninit), 0x18, 0x38
	if k.inode {
		loc, flag, lo, hi = f.inodeBitmapLoc(k.group), bgInodeUninit, 0x1A, 0x3A
	}
	if f.groupFlags(k.group)&flag != 0 {
		f.setGroupFlags(k.group, f.groupFlags(k.group)&^flag)
	}
	if f.csum {
		c := f.bitmapChecksum(k.group, k.inode, b)
		d := f.desc(k.group)
		binary.LittleEndian.PutUint16(d[lo:], uint16(c))
		if f.descSize >= 64 {
			binary.LittleEndian.PutUint16(d[hi:], uint16(c>>16))
		}
		f.dirtyGdt = true
	}
	if err := f.writeBlock(loc, b); err != nil {
		return fmt.Errorf("group %d bitmap: %w", k.group, err)
	}
	return nil
}

func (f *FS) markDirty(g uint32, inode bool) {
	f.dirtyBmp[bitmapKey{g, inode}] = true
	f.dirtyGdt = true
	f.dirtySB = true
}

// extent is a run of physical blocks.
type extent struct {
	logical uint32
	start   uint64
	length  uint32
}

// allocBlocks allocates n blocks, as few runs as it can find, preferring the
// group of goal. Runs never exceed maxRun blocks.
func (f *FS) allocBlocks(goal uint64, n uint64, maxRun uint32) ([]extent, error) {
	if n == 0 {
		return nil, nil
	}
	if n > f.sb.freeBlocks() {
		return nil, fmt.Errorf("%w: need %d more blocks (%d KiB) but only %d are free",
			ErrNoSpace, n, n*uint64(f.bs)/1024, f.sb.freeBlocks())
	}
	var runs []extent
	startGroup := uint32(0)
	if goal >= uint64(f.sb.firstDataBlock()) {
		startGroup = uint32((goal - uint64(f.sb.firstDataBlock())) / uint64(f.sb.blocksPerGroup()))
		if startGroup >= f.groups {
			startGroup = 0
		}
	}
	need := n
	for i := uint32(0); i < f.groups && need > 0; i++ {
		g := (startGroup + i) % f.groups
		if f.groupFreeBlocks(g) == 0 {
			continue
		}
		b, err := f.loadBitmap(g, false)
		if err != nil {
			return nil, err
		}
		first, cnt := f.groupFirstBlock(g), f.groupBlocks(g)
		for bit := uint64(0); bit < cnt && need > 0; bit++ {
			if b[bit/8] == 0xFF && bit%8 == 0 {
				bit += 7
				continue
			}
			if b[bit/8]&(1<<(bit%8)) != 0 {
				continue
			}
			b[bit/8] |= 1 << (bit % 8)
			blk := first + bit
			need--
			if l := len(runs); l > 0 && runs[l-1].start+uint64(runs[l-1].length) == blk && runs[l-1].length < maxRun {
				runs[l-1].length++
			} else {
				runs = append(runs, extent{start: blk, length: 1})
			}
			f.setDescField(g, 0xC, 0x2C, 2, f.groupFreeBlocks(g)-1)
		}
		f.markDirty(g, false)
	}
	if need > 0 {
		return nil, errCorrupt("superblock counts %d free blocks but the bitmaps hold fewer", f.sb.freeBlocks())
	}
	f.sb.setFreeBlocks(f.sb.freeBlocks() - n)
	return runs, nil
}

// freeBlocks releases a run of blocks.
func (f *FS) freeBlocks(start uint64, n uint64) error {
	for n > 0 {
		if start < uint64(f.sb.firstDataBlock()) || start >= f.sb.blocksCount() {
			return errCorrupt("freeing block %d outside the filesystem", start)
		}
		g := uint32((start - uint64(f.sb.firstDataBlock())) / uint64(f.sb.blocksPerGroup()))
		b, err := f.loadBitmap(g, false)
		if err != nil {
			return err
		}
		first, cnt := f.groupFirstBlock(g), f.groupBlocks(g)
		freed := uint64(0)
		for bit := start - first; bit < cnt && n > 0; bit++ {
			if b[bit/8]&(1<<(bit%8)) == 0 {
				return errCorrupt("block %d freed twice", first+bit)
			}
			b[bit/8] &^= 1 << (bit % 8)
			freed++
			n--
			start++
		}
		f.setDescField(g, 0xC, 0x2C, 2, f.groupFreeBlocks(g)+freed)
		f.sb.setFreeBlocks(f.sb.freeBlocks() + freed)
		f.markDirty(g, false)
	}
	return nil
}

// allocInode allocates an inode, preferring group goalGroup.
func (f *FS) allocInode(goalGroup uint32, dir bool) (uint32, error) {
	if f.sb.freeInodes() == 0 {
		return 0, fmt.Errorf("%w: no free inodes", ErrNoSpace)
	}
	ipg := uint64(f.sb.inodesPerGroup())
	for i := uint32(0); i < f.groups; i++ {
		g := (goalGroup + i) % f.groups
		if f.groupFreeInodes(g) == 0 {
			continue
		}
		b, err := f.loadBitmap(g, true)
		if err != nil {
			return 0, err
		}
		for bit := uint64(0); bit < ipg; bit++ {
			if b[bit/8]&(1<<(bit%8)) != 0 {
				continue
			}
			ino := uint64(g)*ipg + bit + 1
			if ino < uint64(f.sb.firstIno()) {
				continue
			}
			b[bit/8] |= 1 << (bit % 8)
			f.setDescField(g, 0xE, 0x2E, 2, f.groupFreeInodes(g)-1)
			if dir {
				f.setDescField(g, 0x10, 0x30, 2, f.groupUsedDirs(g)+1)
			}
			if f.uninitHonoured() {
				if used := ipg - f.itableUnused(g); bit >= used {
					f.setDescField(g, 0x1C, 0x32, 2, ipg-bit-1)
				}
			}
			f.sb.setFreeInodes(f.sb.freeInodes() - 1)
			f.markDirty(g, true)
			return uint32(ino), nil
		}
	}
	return 0, errCorrupt("superblock counts %d free inodes but the bitmaps hold none", f.sb.freeInodes())
}

func (f *FS) freeInode(ino uint32, dir bool) error {
	g, bit := f.inodeGroup(ino)
	b, err := f.loadBitmap(g, true)
	if err != nil {
		return err
	}
	if b[bit/8]&(1<<(bit%8)) == 0 {
		return errCorrupt("inode %d freed twice", ino)
	}
	b[bit/8] &^= 1 << (bit % 8)
	f.setDescField(g, 0xE, 0x2E, 2, f.groupFreeInodes(g)+1)
	if dir {
		f.setDescField(g, 0x10, 0x30, 2, f.groupUsedDirs(g)-1)
	}
	f.sb.setFreeInodes(f.sb.freeInodes() + 1)
	f.markDirty(g, true)
	return nil
}

func (f *FS) inodeGroup(ino uint32) (group uint32, index uint32) {
	return (ino - 1) / f.sb.inodesPerGroup(), (ino - 1) % f.sb.inodesPerGroup()
}

var _ = bits.OnesCount8
