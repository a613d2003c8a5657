package image

import (
	"encoding/binary"
	"fmt"
	"io"
	"io/fs"

	"github.com/diskfs/go-diskfs/partition/mbr"
)

// Partition is one MBR partition, in bytes.
type Partition struct {
	Index       int // 1-based, as in PARTUUID suffixes
	Type        byte
	Start, Size int64
}

// Layout is what the partition table says about a Raspberry Pi OS card.
type Layout struct {
	// DiskID is the MBR disk signature; PARTUUIDs are "%08x-%02d" of it.
	DiskID uint32
	Boot   Partition // the FAT32 boot partition
	Root   Partition // the ext4 root partition
}

// PartUUID returns the PARTUUID the kernel gives partition p.
func (l Layout) PartUUID(p Partition) string { return fmt.Sprintf("%08x-%02d", l.DiskID, p.Index) }

const sector = 512

// ReadLayout reads the MBR (with go-diskfs) and finds the boot (FAT32) and
// root (Linux) partitions, refusing tables we cannot bake safely.
func ReadLayout(r io.ReaderAt, size int64) (Layout, error) {
	var boot [sector]byte
	if size < sector {
		return Layout{}, fmt.Errorf("%w: not a disk image (%d bytes, smaller than a partition table)", ErrBadImage, size)
	}
	if err := readFull(r, boot[:], 0); err != nil {
		return Layout{}, err
	}
	if boot[510] != 0x55 || boot[511] != 0xaa {
		return Layout{}, fmt.Errorf("%w: not a disk image (no MBR boot signature)", ErrBadImage)
	}
	l := Layout{DiskID: binary.LittleEndian.Uint32(boot[440:444])}
	for i := range 4 {
		if typ := boot[446+16*i+4]; typ == 0xee {
			return Layout{}, fmt.Errorf("%w: GPT disk; magibake needs an MBR (DOS) partition table like Raspberry Pi OS's", ErrBadImage)
		}
	}
	table, err := mbr.Read(&readerFile{r, size}, sector, sector)
	if err != nil {
		return Layout{}, fmt.Errorf("%w: not a disk image: %v", ErrBadImage, err)
	}
	var parts []Partition
	for _, e := range table.Partitions {
		if e.Type == mbr.Empty {
			continue
		}
		p := Partition{Index: e.Index, Type: byte(e.Type), Start: int64(e.Start) * sector, Size: int64(e.Size) * sector}
		if p.Start == 0 || p.Size == 0 {
			return Layout{}, fmt.Errorf("%w: partition %d starts at sector 0 or is empty", ErrBadImage, p.Index)
		}
		if p.Start+p.Size > size {
			return Layout{}, fmt.Errorf("%w: partition %d ends at byte %d, beyond the end of the %d-byte image (truncated image?)", ErrBadImage, p.Index, p.Start+p.Size, size)
		}
		for _, q := range parts {
			if p.Start < q.Start+q.Size && q.Start < p.Start+p.Size {
				return Layout{}, fmt.Errorf("%w: partitions %d and %d overlap", ErrBadImage, q.Index, p.Index)
			}
		}
		parts = append(parts, p)
	}
	for _, p := range parts {
		switch p.Type {
		case 0x0b, 0x0c:
			if l.Boot.Index == 0 {
				l.Boot = p
			}
		case 0x83:
			if l.Root.Index == 0 {
				l.Root = p
			}
		}
	}
	if l.Boot.Index == 0 {
		return Layout{}, fmt.Errorf("%w: no FAT32 boot partition (type 0x0b or 0x0c) in the partition table", ErrBadImage)
	}
	if l.Root.Index == 0 {
		return Layout{}, fmt.Errorf("%w: no Linux root partition (type 0x83) in the partition table", ErrBadImage)
	}
	return l, nil
}

// readerFile adapts an io.ReaderAt to the backend.File go-diskfs's MBR reader takes.
type readerFile struct {
	r    io.ReaderAt
	size int64
}

func (f *readerFile) ReadAt(p []byte, off int64) (int, error) { return f.r.ReadAt(p, off) }
func (f *readerFile) Read([]byte) (int, error)                { return 0, io.EOF }
func (f *readerFile) Seek(int64, int) (int64, error)          { return 0, nil }
func (f *readerFile) Close() error                            { return nil }
func (f *readerFile) Stat() (fs.FileInfo, error)              { return deviceInfo{f.size}, nil }
