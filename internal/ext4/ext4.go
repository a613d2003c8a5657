// Package ext4 modifies an existing, cleanly unmounted ext4 filesystem in
// place: the root partition of a Raspberry Pi OS image.
//
// It exists because go-diskfs v1.9.4 panics on 32-byte group descriptors
// (what Raspberry Pi OS ships: mkfs.ext4 -O ^64bit) and does not truncate on
// O_TRUNC. The scope is what node overlays need: resolve paths, read files,
// create/replace/remove regular files and symlinks, mkdir -p, set owner, mode
// and times, with every checksum metadata_csum requires. It writes no
// journal: the filesystem must be offline and clean, and anything it does not
// understand makes Open fail instead of guessing.
//
// Metadata is read lazily (superblock and descriptors at Open, bitmaps,
// inodes and directory blocks on demand); data and inodes are written
// through at once, bitmaps, descriptors and the superblock at Close.
package ext4

import (
	"errors"
	"fmt"
	"io"
	"time"
)

// Device is what the filesystem lives on: offset 0 is the filesystem's first byte.
type Device interface {
	io.ReaderAt
	io.WriterAt
}

var (
	// ErrUnsupported marks a filesystem or file layout this package refuses to modify.
	ErrUnsupported = errors.New("ext4: unsupported")
	// ErrCorrupt marks on-disk structures that are inconsistent.
	ErrCorrupt = errors.New("ext4: corrupt filesystem")
	// ErrNeedsCheck marks a filesystem that must be checked by e2fsck before it is modified.
	ErrNeedsCheck = errors.New("ext4: needs e2fsck")
	// ErrNoSpace marks a filesystem without room for the requested change.
	ErrNoSpace = errors.New("ext4: no space left")
)

func errUnsupported(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrUnsupported, fmt.Sprintf(format, args...))
}

func errCorrupt(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrCorrupt, fmt.Sprintf(format, args...))
}

// FS is an open ext4 filesystem being modified in place.
type FS struct {
	dev       Device
	size      int64
	sb        super
	bs        uint32 // block size in bytes
	groups    uint32
	gdt       []byte // all group descriptors, raw
	descSize  uint32
	csumSeed  uint32 // metadata_csum seed (fs uuid crc or s_checksum_seed)
	csum      bool   // metadata_csum
	gdtCsum   bool   // uninit_bg (gdt_csum) without metadata_csum
	bitmaps   map[bitmapKey][]byte
	dirtyBmp  map[bitmapKey]bool
	dirtyGdt  bool
	dirtySB   bool
	closed    bool
	readBytes int64
}

type bitmapKey struct {
	group uint32
	inode bool
}

// Open reads and checks the superblock and group descriptors of the ext4 on
// dev, which is size bytes long.
func Open(dev Device, size int64) (*FS, error) {
	f := &FS{dev: dev, size: size, bitmaps: map[bitmapKey][]byte{}, dirtyBmp: map[bitmapKey]bool{}}
	if size < superOffset+superSize {
		return nil, errCorrupt("device of %d bytes is too small for ext4", size)
	}
	sb := make([]byte, superSize)
	if err := f.readAt(sb, superOffset); err != nil {
		return nil, fmt.Errorf("ext4: read superblock: %w", err)
	}
	f.sb = super{sb}
	if err := f.sb.check(); err != nil {
		return nil, err
	}
	f.bs = 1024 << f.sb.logBlockSize()
	if uint64(size) < f.sb.blocksCount()*uint64(f.bs) {
		return nil, errCorrupt("filesystem has %d blocks of %d bytes but the partition holds only %d bytes",
			f.sb.blocksCount(), f.bs, size)
	}
	f.csum = f.sb.hasMetadataCsum()
	f.gdtCsum = !f.csum && f.sb.roCompat()&roGdtCsum != 0
	if f.sb.incompat()&incompatCsumSeed != 0 {
		f.csumSeed = f.sb.checksumSeed()
	} else {
		f.csumSeed = crc32c(^uint32(0), f.sb.uuid())
	}
	dataBlocks := f.sb.blocksCount() - uint64(f.sb.firstDataBlock())
	groups := (dataBlocks + uint64(f.sb.blocksPerGroup()) - 1) / uint64(f.sb.blocksPerGroup())
	if groups*uint64(f.sb.inodesPerGroup()) != uint64(f.sb.inodesCount()) {
		return nil, errCorrupt("%d groups of %d inodes do not make the %d inodes the superblock counts",
			groups, f.sb.inodesPerGroup(), f.sb.inodesCount())
	}
	f.groups = uint32(groups)
	f.descSize = uint32(f.sb.descSize())
	if groups*uint64(f.descSize) > uint64(size) {
		return nil, errCorrupt("%d group descriptors do not fit in the filesystem", groups)
	}
	f.gdt = make([]byte, uint64(f.groups)*uint64(f.descSize))
	if err := f.readAt(f.gdt, int64(f.sb.firstDataBlock()+1)*int64(f.bs)); err != nil {
		return nil, fmt.Errorf("ext4: read group descriptors: %w", err)
	}
	for g := uint32(0); g < f.groups; g++ {
		if err := f.checkGroup(g); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// BlockSize returns the filesystem block size in bytes.
func (f *FS) BlockSize() int { return int(f.bs) }

// FreeBytes returns the free space the superblock records.
func (f *FS) FreeBytes() int64 { return int64(f.sb.freeBlocks()) * int64(f.bs) }

// LastWrite returns when the filesystem was last written, as its superblock
// records it (s_wtime, else s_mkfs_time; zero when neither is set). For a
// release image that is its build time: a fixed date that baked files can
// take, so that the same inputs give the same card.
func (f *FS) LastWrite() time.Time {
	for _, off := range [][2]int{{0x30, 0x274}, {0x108, 0x276}} {
		sec := int64(f.sb.u32(off[0])) | int64(f.sb.b[off[1]])<<32
		if sec != 0 {
			return time.Unix(sec, 0).UTC()
		}
	}
	return time.Time{}
}

// BytesRead returns how many bytes were read from the device so far.
func (f *FS) BytesRead() int64 { return f.readBytes }

// Close writes back the bitmaps, group descriptors and superblock. The FS
// must not be used afterwards.
func (f *FS) Close() error {
	if f.closed {
		return nil
	}
	f.closed = true
	return f.flush()
}

func (f *FS) flush() error {
	for k := range f.dirtyBmp {
		if err := f.writeBitmap(k); err != nil {
			return err
		}
	}
	clear(f.dirtyBmp)
	if f.dirtyGdt {
		for g := uint32(0); g < f.groups; g++ {
			f.updateGroupChecksum(g)
		}
		if err := f.writeAt(f.gdt, int64(f.sb.firstDataBlock()+1)*int64(f.bs)); err != nil {
			return fmt.Errorf("ext4: write group descriptors: %w", err)
		}
		f.dirtyGdt = false
	}
	if f.dirtySB {
		f.sb.updateChecksum()
		if err := f.writeAt(f.sb.b, superOffset); err != nil {
			return fmt.Errorf("ext4: write superblock: %w", err)
		}
		f.dirtySB = false
	}
	return nil
}

func (f *FS) readAt(b []byte, off int64) error {
	if off < 0 || off+int64(len(b)) > f.size {
		return errCorrupt("read of %d bytes at %d beyond the end of the %d-byte filesystem", len(b), off, f.size)
	}
	n, err := f.dev.ReadAt(b, off)
	f.readBytes += int64(n)
	if n == len(b) {
		return nil
	}
	if err == nil {
		err = io.ErrUnexpectedEOF
	}
	return err
}

func (f *FS) writeAt(b []byte, off int64) error {
	if off < 0 || off+int64(len(b)) > f.size {
		return errCorrupt("write of %d bytes at %d beyond the end of the %d-byte filesystem", len(b), off, f.size)
	}
	_, err := f.dev.WriteAt(b, off)
	return err
}

func (f *FS) readBlock(blk uint64) ([]byte, error) {
	if blk >= f.sb.blocksCount() || blk < uint64(f.sb.firstDataBlock()) {
		return nil, errCorrupt("block %d outside the filesystem", blk)
	}
	b := make([]byte, f.bs)
	if err := f.readAt(b, int64(blk)*int64(f.bs)); err != nil {
		return nil, fmt.Errorf("ext4: read block %d: %w", blk, err)
	}
	return b, nil
}

func (f *FS) writeBlock(blk uint64, b []byte) error {
	if blk >= f.sb.blocksCount() || blk <= uint64(f.sb.firstDataBlock()) {
		return errCorrupt("refusing to write block %d outside the data area", blk)
	}
	if err := f.writeAt(b, int64(blk)*int64(f.bs)); err != nil {
		return fmt.Errorf("ext4: write block %d: %w", blk, err)
	}
	return nil
}
