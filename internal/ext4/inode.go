package ext4

import (
	"encoding/binary"
	"fmt"
	"io/fs"
	"time"

	"github.com/magibake/magibake/internal/zeros"
)

// Inode flags and mode bits.
const (
	flagIndex    = 0x1000
	flagHugeFile = 0x40000
	flagExtents  = 0x80000
	flagEAInode  = 0x200000
	flagInline   = 0x10000000
	flagEncrypt  = 0x800

	sIFMT   = 0xF000
	sIFREG  = 0x8000
	sIFDIR  = 0x4000
	sIFLNK  = 0xA000
	rootIno = 2
)

// inode is one raw on-disk inode record (s_inode_size bytes).
type inode struct {
	num uint32
	b   []byte
}

func (i *inode) u16(off int) uint16      { return binary.LittleEndian.Uint16(i.b[off:]) }
func (i *inode) u32(off int) uint32      { return binary.LittleEndian.Uint32(i.b[off:]) }
func (i *inode) put16(off int, v uint16) { binary.LittleEndian.PutUint16(i.b[off:], v) }
func (i *inode) put32(off int, v uint32) { binary.LittleEndian.PutUint32(i.b[off:], v) }

func (i *inode) mode() uint16       { return i.u16(0x0) }
func (i *inode) isDir() bool        { return i.mode()&sIFMT == sIFDIR }
func (i *inode) isReg() bool        { return i.mode()&sIFMT == sIFREG }
func (i *inode) isLink() bool       { return i.mode()&sIFMT == sIFLNK }
func (i *inode) flags() uint32      { return i.u32(0x20) }
func (i *inode) links() uint16      { return i.u16(0x1A) }
func (i *inode) generation() uint32 { return i.u32(0x64) }
func (i *inode) uid() uint32        { return uint32(i.u16(0x2)) | uint32(i.u16(0x78))<<16 }
func (i *inode) gid() uint32        { return uint32(i.u16(0x18)) | uint32(i.u16(0x7A))<<16 }
func (i *inode) size() uint64       { return uint64(i.u32(0x4)) | uint64(i.u32(0x6C))<<32 }
func (i *inode) blockArea() []byte  { return i.b[0x28 : 0x28+60] }
func (i *inode) xattrBlock() uint64 { return uint64(i.u32(0x68)) | uint64(i.u16(0x76))<<32 }

func (i *inode) extraIsize() int {
	if len(i.b) <= 128 {
		return 0
	}
	return int(i.u16(0x80))
}

func (i *inode) setSize(n uint64) {
	i.put32(0x4, uint32(n))
	i.put32(0x6C, uint32(n>>32))
}

func (i *inode) setOwner(uid, gid uint32) {
	i.put16(0x2, uint16(uid))
	i.put16(0x78, uint16(uid>>16))
	i.put16(0x18, uint16(gid))
	i.put16(0x7A, uint16(gid>>16))
}

// setBlocks stores the 512-byte sector count of fs blocks held.
func (i *inode) setBlocks(fsBlocks uint64, bs uint32) {
	sectors := fsBlocks * uint64(bs/512)
	i.put32(0x1C, uint32(sectors))
	i.put16(0x74, uint16(sectors>>32))
	i.put32(0x20, i.flags()&^flagHugeFile)
}

func (i *inode) blocks(bs uint32) uint64 {
	n := uint64(i.u32(0x1C)) | uint64(i.u16(0x74))<<32
	if i.flags()&flagHugeFile != 0 {
		return n
	}
	return n / uint64(bs/512)
}

// setTimes sets atime, ctime, mtime (and crtime where there is room) with
// their nanosecond and epoch-extension fields.
func (i *inode) setTimes(t time.Time) {
	sec := t.Unix()
	lo := uint32(sec)
	extra := uint32(uint64(sec-int64(int32(lo)))>>32)&3 | uint32(t.Nanosecond())<<2
	for _, off := range []int{0x8, 0xC, 0x10} {
		i.put32(off, lo)
	}
	e := i.extraIsize()
	for _, p := range [][2]int{{0x84, 0}, {0x88, 0}, {0x8C, 0}, {0x94, 0x90}} {
		if 128+e >= p[0]+4 {
			i.put32(p[0], extra)
		}
		if p[1] != 0 && 128+e >= p[1]+4 {
			i.put32(p[1], lo)
		}
	}
}

func (i *inode) mtime() time.Time {
	sec := int64(int32(i.u32(0x10)))
	var nsec int64
	if 128+i.extraIsize() >= 0x88+4 {
		extra := i.u32(0x88)
		sec += int64(extra&3) << 32
		nsec = int64(extra >> 2)
	}
	return time.Unix(sec, nsec).UTC()
}

// fileMode converts the on-disk mode to an fs.FileMode.
func (i *inode) fileMode() fs.FileMode {
	m := i.mode()
	fm := fs.FileMode(m & 0777)
	if m&04000 != 0 {
		fm |= fs.ModeSetuid
	}
	if m&02000 != 0 {
		fm |= fs.ModeSetgid
	}
	if m&01000 != 0 {
		fm |= fs.ModeSticky
	}
	switch m & sIFMT {
	case sIFDIR:
		fm |= fs.ModeDir
	case sIFLNK:
		fm |= fs.ModeSymlink
	case sIFREG:
	case 0x2000:
		fm |= fs.ModeDevice | fs.ModeCharDevice
	case 0x6000:
		fm |= fs.ModeDevice
	case 0x1000:
		fm |= fs.ModeNamedPipe
	case 0xC000:
		fm |= fs.ModeSocket
	default:
		fm |= fs.ModeIrregular
	}
	return fm
}

// unixPerm converts permission and special bits of an fs.FileMode.
func unixPerm(m fs.FileMode) uint16 {
	p := uint16(m.Perm())
	if m&fs.ModeSetuid != 0 {
		p |= 04000
	}
	if m&fs.ModeSetgid != 0 {
		p |= 02000
	}
	if m&fs.ModeSticky != 0 {
		p |= 01000
	}
	return p
}

func (f *FS) inodeOffset(ino uint32) (int64, error) {
	if ino == 0 || ino > f.sb.inodesCount() {
		return 0, errCorrupt("inode number %d out of range", ino)
	}
	g, idx := f.inodeGroup(ino)
	return int64(f.inodeTableLoc(g))*int64(f.bs) + int64(idx)*int64(f.sb.inodeSize()), nil
}

// inodeSeed is the per-inode checksum seed for the inode and the blocks it owns.
func (f *FS) inodeSeed(ino uint32, gen uint32) uint32 {
	return crc32cU32(crc32cU32(f.csumSeed, ino), gen)
}

func (f *FS) inodeChecksum(in *inode) uint32 {
	c := f.inodeSeed(in.num, in.generation())
	var zero [2]byte
	c = crc32c(c, in.b[:0x7C])
	c = crc32c(c, zero[:])
	c = crc32c(c, in.b[0x7E:0x80])
	if len(in.b) > 128 {
		if in.extraIsize() >= 4 {
			c = crc32c(c, in.b[0x80:0x82])
			c = crc32c(c, zero[:])
			c = crc32c(c, in.b[0x84:])
		} else {
			c = crc32c(c, in.b[0x80:])
		}
	}
	return c
}

func (f *FS) readInode(ino uint32) (*inode, error) {
	off, err := f.inodeOffset(ino)
	if err != nil {
		return nil, err
	}
	in := &inode{num: ino, b: make([]byte, f.sb.inodeSize())}
	if err := f.readAt(in.b, off); err != nil {
		return nil, fmt.Errorf("ext4: read inode %d: %w", ino, err)
	}
	if len(in.b) > 128 && 128+in.extraIsize() > len(in.b) {
		return nil, errCorrupt("inode %d: extra size %d too large", ino, in.extraIsize())
	}
	if f.csum {
		want := f.inodeChecksum(in)
		got := uint32(in.u16(0x7C))
		if in.extraIsize() >= 4 {
			got |= uint32(in.u16(0x82)) << 16
		} else {
			want &= 0xFFFF
		}
		if got != want && !zeros.All(in.b) {
			return nil, errCorrupt("inode %d: checksum %#x, expected %#x", ino, got, want)
		}
	}
	return in, nil
}

func (f *FS) writeInode(in *inode) error {
	if f.csum {
		c := f.inodeChecksum(in)
		in.put16(0x7C, uint16(c))
		if in.extraIsize() >= 4 {
			in.put16(0x82, uint16(c>>16))
		}
	}
	off, err := f.inodeOffset(in.num)
	if err != nil {
		return err
	}
	if err := f.writeAt(in.b, off); err != nil {
		return fmt.Errorf("ext4: write inode %d: %w", in.num, err)
	}
	return nil
}

// newInode allocates and initialises an inode of the given type and owner.
func (f *FS) newInode(parentIno uint32, ifmt uint16, perm fs.FileMode, uid, gid uint32, t time.Time) (*inode, error) {
	pg, _ := f.inodeGroup(parentIno)
	ino, err := f.allocInode(pg, ifmt == sIFDIR)
	if err != nil {
		return nil, err
	}
	in := &inode{num: ino, b: make([]byte, f.sb.inodeSize())}
	in.put16(0x0, ifmt|unixPerm(perm))
	in.setOwner(uid, gid)
	in.put16(0x1A, 1)
	if len(in.b) > 128 {
		extra := f.sb.wantExtraIsize()
		if extra < 32 {
			extra = 32
		}
		if int(extra)+128 > len(in.b) {
			extra = uint16(len(in.b) - 128)
		}
		in.put16(0x80, extra)
	}
	// Deterministic generation: reproducible images matter more here than
	// NFS handle uniqueness.
	in.put32(0x64, ino*0x9E3779B9)
	in.setTimes(t)
	return in, nil
}
