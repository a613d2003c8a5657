package ext4

import (
	"encoding/binary"
	"fmt"
)

const (
	extentMagic    = 0xF30A
	maxInitExtent  = 32768
	maxExtentDepth = 5
)

// fileExtent is a leaf extent: logical blocks [logical, logical+length) live
// at physical start. Uninitialised extents read as zeros.
type fileExtent struct {
	extent
	uninit bool
}

// extentTree is what an inode's extent tree holds: the data extents and the
// blocks of the tree's own interior and leaf nodes.
type extentTree struct {
	extents []fileExtent
	nodes   []uint64
}

// readExtents walks the extent tree of in, any depth.
func (f *FS) readExtents(in *inode) (*extentTree, error) {
	if in.flags()&flagExtents == 0 {
		return nil, errUnsupported("inode %d uses block maps, not extents", in.num)
	}
	t := &extentTree{}
	if err := f.walkExtentNode(in, in.blockArea(), -1, t, 0); err != nil {
		return nil, fmt.Errorf("inode %d extent tree: %w", in.num, err)
	}
	return t, nil
}

func (f *FS) walkExtentNode(in *inode, node []byte, wantDepth int, t *extentTree, level int) error {
	if len(node) < 12 || binary.LittleEndian.Uint16(node[0:]) != extentMagic {
		return errCorrupt("bad extent header magic")
	}
	entries := int(binary.LittleEndian.Uint16(node[2:]))
	max := int(binary.LittleEndian.Uint16(node[4:]))
	depth := int(binary.LittleEndian.Uint16(node[6:]))
	if entries > max || 12+12*max > len(node) || depth > maxExtentDepth || level > maxExtentDepth ||
		(wantDepth >= 0 && depth != wantDepth) {
		return errCorrupt("bad extent header (entries %d, max %d, depth %d)", entries, max, depth)
	}
	for e := 0; e < entries; e++ {
		r := node[12+12*e:]
		if depth == 0 {
			length := uint32(binary.LittleEndian.Uint16(r[4:]))
			uninit := false
			if length > maxInitExtent {
				length -= maxInitExtent
				uninit = true
			}
			start := uint64(binary.LittleEndian.Uint16(r[6:]))<<32 | uint64(binary.LittleEndian.Uint32(r[8:]))
			if length == 0 || start+uint64(length) > f.sb.blocksCount() {
				return errCorrupt("extent outside the filesystem")
			}
			t.extents = append(t.extents, fileExtent{extent{binary.LittleEndian.Uint32(r[0:]), start, length}, uninit})
			continue
		}
		child := uint64(binary.LittleEndian.Uint16(r[8:]))<<32 | uint64(binary.LittleEndian.Uint32(r[4:]))
		// A node referenced twice would make the walk exponential (and the
		// tree is corrupt anyway: every node has one parent).
		for _, seen := range t.nodes {
			if seen == child {
				return errCorrupt("extent node %d referenced twice", child)
			}
		}
		if len(t.nodes) > int(f.sb.blocksCount()) {
			return errCorrupt("extent tree larger than the filesystem")
		}
		b, err := f.readBlock(child)
		if err != nil {
			return err
		}
		if f.csum {
			tail := 12 + 12*int(binary.LittleEndian.Uint16(b[4:]))
			if tail+4 <= len(b) {
				if got, want := binary.LittleEndian.Uint32(b[tail:]), crc32c(f.inodeSeed(in.num, in.generation()), b[:tail]); got != want {
					return errCorrupt("extent block %d checksum %#x, expected %#x", child, got, want)
				}
			}
		}
		t.nodes = append(t.nodes, child)
		if err := f.walkExtentNode(in, b, depth-1, t, level+1); err != nil {
			return err
		}
	}
	for i := 1; i < len(t.extents); i++ {
		p := t.extents[i-1]
		if t.extents[i].logical < p.logical+p.length {
			return errCorrupt("extents overlap or are out of order")
		}
	}
	return nil
}

// writeExtents replaces in's extent tree by one holding exts (sorted by
// logical block), allocating node blocks near goal. It returns the number of
// node blocks the tree uses. The caller frees the old tree's nodes first.
func (f *FS) writeExtents(in *inode, exts []fileExtent, goal uint64) (uint64, error) {
	area := in.blockArea()
	clear(area)
	in.put32(0x20, in.flags()|flagExtents)
	if len(exts) <= 4 {
		putExtentNode(area, 4, 0, leafEntries(exts))
		return 0, nil
	}
	perBlock := (int(f.bs) - 12) / 12
	// Build levels bottom-up until the top fits in the inode's four slots.
	type child struct {
		first uint32
		entry []byte
	}
	level := leafEntries(exts)
	firsts := make([]uint32, len(exts))
	for i, e := range exts {
		firsts[i] = e.logical
	}
	var nodes uint64
	depth := 0
	for len(level) > 4 {
		nBlocks := (len(level) + perBlock - 1) / perBlock
		if depth+1 > maxExtentDepth {
			return 0, errUnsupported("extent tree deeper than %d", maxExtentDepth)
		}
		runs, err := f.allocBlocks(goal, uint64(nBlocks), maxInitExtent)
		if err != nil {
			return 0, err
		}
		var blocks []uint64
		for _, r := range runs {
			for i := uint32(0); i < r.length; i++ {
				blocks = append(blocks, r.start+uint64(i))
			}
		}
		nodes += uint64(nBlocks)
		var next [][]byte
		var nextFirsts []uint32
		for b := 0; b < nBlocks; b++ {
			lo, hi := b*perBlock, min((b+1)*perBlock, len(level))
			buf := make([]byte, f.bs)
			putExtentNode(buf, perBlock, depth, level[lo:hi])
			if f.csum {
				tail := 12 + 12*perBlock
				binary.LittleEndian.PutUint32(buf[tail:], crc32c(f.inodeSeed(in.num, in.generation()), buf[:tail]))
			}
			if err := f.writeBlock(blocks[b], buf); err != nil {
				return 0, err
			}
			idx := make([]byte, 12)
			binary.LittleEndian.PutUint32(idx[0:], firsts[lo])
			binary.LittleEndian.PutUint32(idx[4:], uint32(blocks[b]))
			binary.LittleEndian.PutUint16(idx[8:], uint16(blocks[b]>>32))
			next = append(next, idx)
			nextFirsts = append(nextFirsts, firsts[lo])
		}
		level, firsts = next, nextFirsts
		depth++
	}
	putExtentNode(area, 4, depth, level)
	return nodes, nil
}

func leafEntries(exts []fileExtent) [][]byte {
	out := make([][]byte, len(exts))
	for i, e := range exts {
		r := make([]byte, 12)
		binary.LittleEndian.PutUint32(r[0:], e.logical)
		l := e.length
		if e.uninit {
			l += maxInitExtent
		}
		binary.LittleEndian.PutUint16(r[4:], uint16(l))
		binary.LittleEndian.PutUint16(r[6:], uint16(e.start>>32))
		binary.LittleEndian.PutUint32(r[8:], uint32(e.start))
		out[i] = r
	}
	return out
}

func putExtentNode(buf []byte, max, depth int, entries [][]byte) {
	binary.LittleEndian.PutUint16(buf[0:], extentMagic)
	binary.LittleEndian.PutUint16(buf[2:], uint16(len(entries)))
	binary.LittleEndian.PutUint16(buf[4:], uint16(max))
	binary.LittleEndian.PutUint16(buf[6:], uint16(depth))
	binary.LittleEndian.PutUint32(buf[8:], 0)
	for i, e := range entries {
		copy(buf[12+12*i:], e)
	}
}

// mapBlock returns the physical block holding logical block lb of the file,
// or 0 for a hole or an uninitialised extent.
func (t *extentTree) mapBlock(lb uint32) uint64 {
	lo, hi := 0, len(t.extents)
	for lo < hi {
		m := (lo + hi) / 2
		e := t.extents[m]
		switch {
		case lb < e.logical:
			hi = m
		case lb >= e.logical+e.length:
			lo = m + 1
		default:
			if e.uninit {
				return 0
			}
			return e.start + uint64(lb-e.logical)
		}
	}
	return 0
}

// freeTree releases every data and node block of the tree.
func (f *FS) freeTree(t *extentTree) error {
	for _, e := range t.extents {
		if err := f.freeBlocks(e.start, uint64(e.length)); err != nil {
			return err
		}
	}
	for _, n := range t.nodes {
		if err := f.freeBlocks(n, 1); err != nil {
			return err
		}
	}
	return nil
}
