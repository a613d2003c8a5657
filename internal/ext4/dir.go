package ext4

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"sort"
)

// Directory entry file types (incompat filetype).
const (
	ftUnknown         = 0
	ftReg             = 1
	ftDir             = 2
	ftSymlink         = 7
	tailSize          = 12
	tailType          = 0xDE
	flagsUnsignedHash = 0x2
)

// dirent is one directory entry as parsed from a leaf block.
type dirent struct {
	off    int
	ino    uint32
	recLen int
	ftype  uint8
	name   []byte
}

func direntSize(nameLen int) int { return (8 + nameLen + 3) &^ 3 }

// leafEnd is where entries stop in a directory block: before the checksum
// tail when metadata_csum is on.
func (f *FS) leafEnd() int {
	if f.csum {
		return int(f.bs) - tailSize
	}
	return int(f.bs)
}

// hasTail reports whether b ends in a dirent checksum tail.
func hasTail(b []byte) bool {
	t := b[len(b)-tailSize:]
	return binary.LittleEndian.Uint32(t) == 0 && binary.LittleEndian.Uint16(t[4:]) == tailSize &&
		t[6] == 0 && t[7] == tailType
}

// parseLeaf returns the entries of a directory block (including empty
// ones, ino 0). dx nodes parse as one empty entry.
func (f *FS) parseLeaf(b []byte) ([]dirent, error) {
	end := len(b)
	if f.csum && hasTail(b) {
		end -= tailSize
	}
	var out []dirent
	for off := 0; off < end; {
		if off+8 > end {
			return nil, errCorrupt("directory entry at %d runs past the block", off)
		}
		d := dirent{off: off, ino: binary.LittleEndian.Uint32(b[off:]),
			recLen: int(binary.LittleEndian.Uint16(b[off+4:])), ftype: b[off+7]}
		nl := int(b[off+6])
		if d.recLen < 8 || d.recLen%4 != 0 || off+d.recLen > end || 8+nl > d.recLen {
			return nil, errCorrupt("bad directory entry at offset %d (rec_len %d, name_len %d)", off, d.recLen, nl)
		}
		d.name = b[off+8 : off+8+nl]
		out = append(out, d)
		off += d.recLen
	}
	return out, nil
}

func (f *FS) setLeafTail(dirIno *inode, b []byte) {
	if !f.csum {
		return
	}
	t := b[len(b)-tailSize:]
	clear(t)
	binary.LittleEndian.PutUint16(t[4:], tailSize)
	t[7] = tailType
	binary.LittleEndian.PutUint32(t[8:], crc32c(f.inodeSeed(dirIno.num, dirIno.generation()), b[:len(b)-tailSize]))
}

func (f *FS) verifyLeaf(dirIno *inode, lblk uint32, b []byte) error {
	if !f.csum || !hasTail(b) {
		return nil
	}
	want := crc32c(f.inodeSeed(dirIno.num, dirIno.generation()), b[:len(b)-tailSize])
	if got := binary.LittleEndian.Uint32(b[len(b)-4:]); got != want {
		return errCorrupt("directory inode %d block %d: checksum %#x, expected %#x", dirIno.num, lblk, got, want)
	}
	return nil
}

// packLeaf writes entries one after another into a fresh block; the last
// one's rec_len runs to the end (or to the tail).
func (f *FS) packLeaf(dir *inode, ents []dirent) ([]byte, bool) {
	b := make([]byte, f.bs)
	end := f.leafEnd()
	off := 0
	for i, e := range ents {
		size := direntSize(len(e.name))
		if off+size > end {
			return nil, false
		}
		rec := size
		if i == len(ents)-1 {
			rec = end - off
		}
		f.putDirent(b[off:], e.ino, rec, e.ftype, e.name)
		off += size
	}
	if len(ents) == 0 {
		f.putDirent(b, 0, end, 0, nil)
	}
	f.setLeafTail(dir, b)
	return b, true
}

func (f *FS) putDirent(b []byte, ino uint32, recLen int, ftype uint8, name []byte) {
	binary.LittleEndian.PutUint32(b[0:], ino)
	binary.LittleEndian.PutUint16(b[4:], uint16(recLen))
	b[6] = uint8(len(name))
	if f.sb.incompat()&incompatFiletype == 0 {
		ftype = 0
	}
	b[7] = ftype
	copy(b[8:], name)
	for i := 8 + len(name); i < direntSize(len(name)) && i < recLen; i++ {
		b[i] = 0
	}
}

// dirHandle is a directory opened for lookup or modification.
type dirHandle struct {
	in   *inode
	tree *extentTree
}

func (f *FS) openDir(in *inode) (*dirHandle, error) {
	if !in.isDir() {
		return nil, errCorrupt("inode %d is not a directory", in.num)
	}
	if in.flags()&flagInline != 0 {
		return nil, errUnsupported("inline-data directory (inode %d)", in.num)
	}
	if in.flags()&flagEncrypt != 0 {
		return nil, errUnsupported("encrypted directory (inode %d)", in.num)
	}
	t, err := f.readExtents(in)
	if err != nil {
		return nil, err
	}
	if in.size()%uint64(f.bs) != 0 || in.size()/uint64(f.bs) > 1<<31 {
		return nil, errCorrupt("directory inode %d has size %d", in.num, in.size())
	}
	return &dirHandle{in: in, tree: t}, nil
}

func (d *dirHandle) nblocks(f *FS) uint32 { return uint32(d.in.size() / uint64(f.bs)) }

func (f *FS) dirBlock(d *dirHandle, lblk uint32) ([]byte, uint64, error) {
	p := d.tree.mapBlock(lblk)
	if p == 0 {
		return nil, 0, errCorrupt("directory inode %d has a hole at block %d", d.in.num, lblk)
	}
	b, err := f.readBlock(p)
	return b, p, err
}

// entries lists every live entry of the directory.
func (f *FS) entries(d *dirHandle) ([]dirent, error) {
	var out []dirent
	for lb := uint32(0); lb < d.nblocks(f); lb++ {
		b, _, err := f.dirBlock(d, lb)
		if err != nil {
			return nil, err
		}
		if err := f.verifyLeaf(d.in, lb, b); err != nil {
			return nil, err
		}
		ents, err := f.parseLeaf(b)
		if err != nil {
			return nil, fmt.Errorf("directory inode %d block %d: %w", d.in.num, lb, err)
		}
		for _, e := range ents {
			if e.ino != 0 {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// lookup finds name in the directory; ino 0 means absent.
func (f *FS) lookup(d *dirHandle, name []byte) (uint32, uint8, error) {
	if d.in.flags()&flagIndex != 0 {
		if ino, ft, ok, err := f.htreeFind(d, name); err != nil || ok {
			return ino, ft, err
		}
	}
	ents, err := f.entries(d)
	if err != nil {
		return 0, 0, err
	}
	for _, e := range ents {
		if bytes.Equal(e.name, name) {
			return e.ino, e.ftype, nil
		}
	}
	return 0, 0, nil
}

// insertInLeaf tries to fit a new entry into block b; it reports whether it did.
func (f *FS) insertInLeaf(b []byte, ino uint32, ftype uint8, name []byte) (bool, error) {
	ents, err := f.parseLeaf(b)
	if err != nil {
		return false, err
	}
	need := direntSize(len(name))
	for _, e := range ents {
		used := 0
		if e.ino != 0 {
			used = direntSize(len(e.name))
		}
		if e.recLen-used < need {
			continue
		}
		if e.ino == 0 {
			f.putDirent(b[e.off:], ino, e.recLen, ftype, name)
			return true, nil
		}
		binary.LittleEndian.PutUint16(b[e.off+4:], uint16(used))
		f.putDirent(b[e.off+used:], ino, e.recLen-used, ftype, name)
		return true, nil
	}
	return false, nil
}

// addEntry links name -> ino into the directory.
func (f *FS) addEntry(d *dirHandle, name []byte, ino uint32, ftype uint8) error {
	if d.in.flags()&flagIndex != 0 {
		done, err := f.htreeAdd(d, name, ino, ftype)
		if err != nil || done {
			return err
		}
		// The index could not take the entry: fall back to a linear
		// directory, which every ext4 reader accepts.
		if err := f.linearize(d); err != nil {
			return err
		}
	}
	for lb := uint32(0); lb < d.nblocks(f); lb++ {
		b, p, err := f.dirBlock(d, lb)
		if err != nil {
			return err
		}
		ok, err := f.insertInLeaf(b, ino, ftype, name)
		if err != nil {
			return fmt.Errorf("directory inode %d block %d: %w", d.in.num, lb, err)
		}
		if ok {
			f.setLeafTail(d.in, b)
			return f.writeBlock(p, b)
		}
	}
	b, _ := f.packLeaf(d.in, []dirent{{ino: ino, ftype: ftype, name: name}})
	_, err := f.appendDirBlock(d, b)
	return err
}

// appendDirBlock adds block content b at the end of the directory and
// returns its logical number.
func (f *FS) appendDirBlock(d *dirHandle, b []byte) (uint32, error) {
	lblk := d.nblocks(f)
	goal := uint64(0)
	if n := len(d.tree.extents); n > 0 {
		last := d.tree.extents[n-1]
		goal = last.start + uint64(last.length)
	}
	runs, err := f.allocBlocks(goal, 1, maxInitExtent)
	if err != nil {
		return 0, err
	}
	p := runs[0].start
	if err := f.writeBlock(p, b); err != nil {
		return 0, err
	}
	exts := append([]fileExtent(nil), d.tree.extents...)
	if n := len(exts); n > 0 && !exts[n-1].uninit && exts[n-1].start+uint64(exts[n-1].length) == p &&
		exts[n-1].logical+exts[n-1].length == lblk && exts[n-1].length < maxInitExtent {
		exts[n-1].length++
	} else {
		exts = append(exts, fileExtent{extent: extent{logical: lblk, start: p, length: 1}})
	}
	if err := f.rewriteExtents(d.in, d.tree, exts, p); err != nil {
		return 0, err
	}
	d.in.setSize(d.in.size() + uint64(f.bs))
	if err := f.writeInode(d.in); err != nil {
		return 0, err
	}
	t, err := f.readExtents(d.in)
	if err != nil {
		return 0, err
	}
	d.tree = t
	return lblk, nil
}

// rewriteExtents replaces the inode's tree (old) by one holding exts and
// fixes i_blocks. The inode is not written.
func (f *FS) rewriteExtents(in *inode, old *extentTree, exts []fileExtent, goal uint64) error {
	for _, n := range old.nodes {
		if err := f.freeBlocks(n, 1); err != nil {
			return err
		}
	}
	nodes, err := f.writeExtents(in, exts, goal)
	if err != nil {
		return err
	}
	data := uint64(0)
	for _, e := range exts {
		data += uint64(e.length)
	}
	in.setBlocks(data+nodes+f.xattrBlocks(in), f.bs)
	return nil
}

func (f *FS) xattrBlocks(in *inode) uint64 {
	if in.xattrBlock() != 0 {
		return 1
	}
	return 0
}

// removeEntry unlinks name from the directory block that holds it.
func (f *FS) removeEntry(d *dirHandle, name []byte) error {
	for lb := uint32(0); lb < d.nblocks(f); lb++ {
		b, p, err := f.dirBlock(d, lb)
		if err != nil {
			return err
		}
		ents, err := f.parseLeaf(b)
		if err != nil {
			return fmt.Errorf("directory inode %d block %d: %w", d.in.num, lb, err)
		}
		for i, e := range ents {
			if e.ino == 0 || !bytes.Equal(e.name, name) {
				continue
			}
			if i == 0 {
				binary.LittleEndian.PutUint32(b[e.off:], 0)
			} else {
				prev := ents[i-1]
				binary.LittleEndian.PutUint16(b[prev.off+4:], uint16(prev.recLen+e.recLen))
			}
			f.setLeafTail(d.in, b)
			return f.writeBlock(p, b)
		}
	}
	return errCorrupt("directory inode %d: entry %q vanished", d.in.num, name)
}

// setEntryType updates the file type recorded for name.
func (f *FS) setEntryType(d *dirHandle, name []byte, ftype uint8) error {
	if f.sb.incompat()&incompatFiletype == 0 {
		return nil
	}
	for lb := uint32(0); lb < d.nblocks(f); lb++ {
		b, p, err := f.dirBlock(d, lb)
		if err != nil {
			return err
		}
		ents, err := f.parseLeaf(b)
		if err != nil {
			return err
		}
		for _, e := range ents {
			if e.ino != 0 && bytes.Equal(e.name, name) {
				b[e.off+7] = ftype
				f.setLeafTail(d.in, b)
				return f.writeBlock(p, b)
			}
		}
	}
	return nil
}

// ---- htree ----

type dxNode struct {
	lblk uint32
	phys uint64
	b    []byte
	off  int // offset of the count/limit header
}

func (n *dxNode) limit() int     { return int(binary.LittleEndian.Uint16(n.b[n.off:])) }
func (n *dxNode) count() int     { return int(binary.LittleEndian.Uint16(n.b[n.off+2:])) }
func (n *dxNode) setCount(c int) { binary.LittleEndian.PutUint16(n.b[n.off+2:], uint16(c)) }
func (n *dxNode) hash(i int) uint32 {
	if i == 0 {
		return 0
	}
	return binary.LittleEndian.Uint32(n.b[n.off+8*i:])
}
func (n *dxNode) block(i int) uint32 { return binary.LittleEndian.Uint32(n.b[n.off+8*i+4:]) }
func (n *dxNode) entry(i int) []byte { return n.b[n.off+8*i : n.off+8*i+8] }

func (f *FS) dxLimit(off int) int {
	l := (int(f.bs) - off) / 8
	if f.csum {
		l--
	}
	return l
}

func (f *FS) dxChecksum(dir *inode, n *dxNode) {
	if !f.csum {
		return
	}
	tail := n.off + 8*n.limit()
	if tail+8 > len(n.b) {
		return
	}
	c := crc32c(f.inodeSeed(dir.num, dir.generation()), n.b[:n.off+8*n.count()])
	c = crc32c(c, n.b[tail:tail+4])
	c = crc32c(c, []byte{0, 0, 0, 0}) // dt_checksum itself, as zero
	binary.LittleEndian.PutUint32(n.b[tail+4:], c)
}

func (f *FS) writeDx(dir *inode, n *dxNode) error {
	f.dxChecksum(dir, n)
	return f.writeBlock(n.phys, n.b)
}

func (f *FS) readDx(d *dirHandle, lblk uint32, root bool) (*dxNode, error) {
	b, p, err := f.dirBlock(d, lblk)
	if err != nil {
		return nil, err
	}
	n := &dxNode{lblk: lblk, phys: p, b: b, off: 8}
	if root {
		n.off = 24 + int(b[24+5])
	}
	if n.off+8 > len(b) || n.count() == 0 || n.count() > n.limit() || n.off+8*n.limit() > len(b) {
		return nil, errCorrupt("directory inode %d: bad htree node at block %d", d.in.num, lblk)
	}
	return n, nil
}

func (f *FS) htreeParams(d *dirHandle, root *dxNode) (version int, levels int, err error) {
	version = int(root.b[24+4])
	levels = int(root.b[24+6])
	if version <= hashTEA && f.sb.flags()&flagsUnsignedHash != 0 {
		version += 3
	}
	maxLevels := 2
	if f.sb.incompat()&incompatLargedir != 0 {
		maxLevels = 3
	}
	if levels >= maxLevels {
		return 0, 0, errCorrupt("directory inode %d: htree depth %d", d.in.num, levels)
	}
	return version, levels, nil
}

func (f *FS) maxDxLevels() int {
	if f.sb.incompat()&incompatLargedir != 0 {
		return 2
	}
	return 1
}

// htreeAdd inserts into an indexed directory. It returns false (and no
// error) when the index cannot take the entry without a rebuild; the caller
// then turns the directory into a linear one.
func (f *FS) htreeAdd(d *dirHandle, name []byte, ino uint32, ftype uint8) (bool, error) {
	root, err := f.readDx(d, 0, true)
	if err != nil {
		return false, err
	}
	version, levels, err := f.htreeParams(d, root)
	if err != nil {
		return false, err
	}
	h, err := dirHash(version, name, f.sb.hashSeed())
	if err != nil {
		return false, err
	}
	path := []*dxNode{root}
	idx := []int{}
	n := root
	for lvl := 0; ; lvl++ {
		i := n.count() - 1
		for i > 0 && n.hash(i) > h {
			i--
		}
		idx = append(idx, i)
		if lvl == levels {
			break
		}
		if n, err = f.readDx(d, n.block(i), false); err != nil {
			return false, err
		}
		path = append(path, n)
	}
	leafL := path[len(path)-1].block(idx[len(idx)-1])
	leaf, leafP, err := f.dirBlock(d, leafL)
	if err != nil {
		return false, err
	}
	ok, err := f.insertInLeaf(leaf, ino, ftype, name)
	if err != nil {
		return false, fmt.Errorf("directory inode %d block %d: %w", d.in.num, leafL, err)
	}
	if ok {
		f.setLeafTail(d.in, leaf)
		return true, f.writeBlock(leafP, leaf)
	}
	// Split the leaf: all entries plus the new one, sorted by hash, cut
	// where the hash changes so no collision chain spans two blocks.
	ents, err := f.parseLeaf(leaf)
	if err != nil {
		return false, err
	}
	type hashed struct {
		dirent
		h uint32
	}
	var all []hashed
	for _, e := range ents {
		if e.ino == 0 {
			continue
		}
		eh, err := dirHash(version, e.name, f.sb.hashSeed())
		if err != nil {
			return false, err
		}
		all = append(all, hashed{e, eh})
	}
	all = append(all, hashed{dirent{ino: ino, ftype: ftype, name: name}, h})
	sort.SliceStable(all, func(a, b int) bool { return all[a].h < all[b].h })
	cut := -1
	for delta := 0; delta < len(all); delta++ {
		for _, c := range []int{len(all)/2 + delta, len(all)/2 - delta} {
			if c > 0 && c < len(all) && all[c].h != all[c-1].h && cut < 0 {
				cut = c
			}
		}
		if cut >= 0 {
			break
		}
	}
	if cut < 0 {
		return false, nil
	}
	split := func(part []hashed) []dirent {
		out := make([]dirent, len(part))
		for i, p := range part {
			out[i] = p.dirent
		}
		return out
	}
	lower, ok1 := f.packLeaf(d.in, split(all[:cut]))
	upper, ok2 := f.packLeaf(d.in, split(all[cut:]))
	if !ok1 || !ok2 {
		return false, nil
	}
	// Make sure the index has room before touching anything.
	if !f.dxHasRoom(path, levels) {
		return false, nil
	}
	newL, err := f.appendDirBlock(d, upper)
	if err != nil {
		return false, err
	}
	if err := f.writeBlock(leafP, lower); err != nil {
		return false, err
	}
	// Nodes were read before the directory grew; their physical blocks
	// did not move (only the inode's extent tree changed).
	return true, f.dxInsert(d, path, idx, len(path)-1, all[cut].h, newL)
}

// dxHasRoom reports whether inserting one entry at the bottom index level
// can succeed by splitting nodes or adding a level.
func (f *FS) dxHasRoom(path []*dxNode, levels int) bool {
	for k := len(path) - 1; k >= 0; k-- {
		if path[k].count() < path[k].limit() {
			return true
		}
	}
	return levels < f.maxDxLevels()
}

// dxInsert puts (hash, blk) right after entry idx[k] of path[k], splitting
// full nodes upwards and adding a level below the root when needed.
func (f *FS) dxInsert(d *dirHandle, path []*dxNode, idx []int, k int, hash uint32, blk uint32) error {
	n := path[k]
	if n.count() < n.limit() {
		at := idx[k] + 1
		c := n.count()
		copy(n.b[n.off+8*(at+1):n.off+8*(c+1)], n.b[n.off+8*at:n.off+8*c])
		binary.LittleEndian.PutUint32(n.b[n.off+8*at:], hash)
		binary.LittleEndian.PutUint32(n.b[n.off+8*at+4:], blk)
		n.setCount(c + 1)
		return f.writeDx(d.in, n)
	}
	if k == 0 {
		// Full root: move its entries into a new node one level down.
		child := make([]byte, f.bs)
		f.putDirent(child, 0, int(f.bs), 0, nil)
		cn := &dxNode{b: child, off: 8}
		binary.LittleEndian.PutUint16(child[8:], uint16(f.dxLimit(8)))
		c := n.count()
		copy(child[8:8+8*c], n.b[n.off:n.off+8*c])
		binary.LittleEndian.PutUint16(child[8:], uint16(f.dxLimit(8)))
		cn.setCount(c)
		f.dxChecksum(d.in, cn)
		lblk, err := f.appendDirBlock(d, child)
		if err != nil {
			return err
		}
		cn.lblk = lblk
		cn.phys = d.tree.mapBlock(lblk)
		n.setCount(1)
		binary.LittleEndian.PutUint32(n.b[n.off+4:], lblk)
		n.b[24+6]++
		if err := f.writeDx(d.in, n); err != nil {
			return err
		}
		newPath := append([]*dxNode{n, cn}, path[1:]...)
		newIdx := append([]int{0, idx[0]}, idx[1:]...)
		return f.dxInsert(d, newPath, newIdx, k+1, hash, blk)
	}
	// Full interior node: move its upper half to a new node and index that
	// node in the parent.
	c := n.count()
	half := c / 2
	nb := make([]byte, f.bs)
	f.putDirent(nb, 0, int(f.bs), 0, nil)
	nn := &dxNode{b: nb, off: 8}
	binary.LittleEndian.PutUint16(nb[8:], uint16(f.dxLimit(8)))
	splitHash := n.hash(half)
	copy(nb[8+8:8+8*(c-half)], n.b[n.off+8*(half+1):n.off+8*c])
	binary.LittleEndian.PutUint32(nb[8+4:], n.block(half))
	nn.setCount(c - half)
	n.setCount(half)
	target, at := n, idx[k]
	if at >= half {
		target, at = nn, at-half
	}
	// Insert into the chosen half before writing, then write both.
	tc := target.count()
	copy(target.b[target.off+8*(at+2):target.off+8*(tc+1)], target.b[target.off+8*(at+1):target.off+8*tc])
	binary.LittleEndian.PutUint32(target.b[target.off+8*(at+1):], hash)
	binary.LittleEndian.PutUint32(target.b[target.off+8*(at+1)+4:], blk)
	target.setCount(tc + 1)
	f.dxChecksum(d.in, nn)
	lblk, err := f.appendDirBlock(d, nn.b)
	if err != nil {
		return err
	}
	if err := f.writeDx(d.in, n); err != nil {
		return err
	}
	return f.dxInsert(d, path, idx, k-1, splitHash, lblk)
}

// linearize drops the htree index: dx blocks become empty leaf blocks and
// the index flag is cleared. Leaf blocks are already valid linear blocks.
func (f *FS) linearize(d *dirHandle) error {
	root, err := f.readDx(d, 0, true)
	if err != nil {
		return err
	}
	_, levels, err := f.htreeParams(d, root)
	if err != nil {
		return err
	}
	dxBlocks := []uint32{0}
	frontier := []*dxNode{root}
	for lvl := 0; lvl < levels; lvl++ {
		var next []*dxNode
		for _, n := range frontier {
			for i := 0; i < n.count(); i++ {
				c, err := f.readDx(d, n.block(i), false)
				if err != nil {
					return err
				}
				dxBlocks = append(dxBlocks, c.lblk)
				next = append(next, c)
			}
		}
		frontier = next
	}
	for _, lb := range dxBlocks {
		b, p, err := f.dirBlock(d, lb)
		if err != nil {
			return err
		}
		nb := make([]byte, f.bs)
		if lb == 0 {
			f.putDirent(nb, binary.LittleEndian.Uint32(b[0:]), 12, ftDir, []byte("."))
			f.putDirent(nb[12:], binary.LittleEndian.Uint32(b[12:]), f.leafEnd()-12, ftDir, []byte(".."))
		} else {
			f.putDirent(nb, 0, f.leafEnd(), 0, nil)
		}
		f.setLeafTail(d.in, nb)
		if err := f.writeBlock(p, nb); err != nil {
			return err
		}
	}
	d.in.put32(0x20, d.in.flags()&^flagIndex)
	return f.writeInode(d.in)
}

// htreeFind looks name up through the index, reading only the blocks on its
// hash path. ok is false when the answer needs a full scan (a collision
// chain that leaves the bottom index node).
func (f *FS) htreeFind(d *dirHandle, name []byte) (ino uint32, ftype uint8, ok bool, err error) {
	root, err := f.readDx(d, 0, true)
	if err != nil {
		return 0, 0, false, err
	}
	version, levels, err := f.htreeParams(d, root)
	if err != nil {
		return 0, 0, false, err
	}
	h, err := dirHash(version, name, f.sb.hashSeed())
	if err != nil {
		return 0, 0, false, err
	}
	n, i := root, 0
	for lvl := 0; ; lvl++ {
		i = n.count() - 1
		for i > 0 && n.hash(i) > h {
			i--
		}
		if lvl == levels {
			break
		}
		if n, err = f.readDx(d, n.block(i), false); err != nil {
			return 0, 0, false, err
		}
	}
	for {
		b, _, err := f.dirBlock(d, n.block(i))
		if err != nil {
			return 0, 0, false, err
		}
		if err := f.verifyLeaf(d.in, n.block(i), b); err != nil {
			return 0, 0, false, err
		}
		ents, err := f.parseLeaf(b)
		if err != nil {
			return 0, 0, false, fmt.Errorf("directory inode %d block %d: %w", d.in.num, n.block(i), err)
		}
		for _, e := range ents {
			if e.ino != 0 && bytes.Equal(e.name, name) {
				return e.ino, e.ftype, true, nil
			}
		}
		// A set low bit on the next entry's hash marks a collision chain
		// that continues into the next block.
		i++
		if i >= n.count() {
			return 0, 0, false, nil
		}
		if n.hash(i)&1 == 0 || n.hash(i)&^1 != h {
			return 0, 0, true, nil
		}
	}
}
