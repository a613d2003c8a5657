package bake

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
)

// go-diskfs v1.9.4 writes FAT32 files correctly, and a rewrite opened with
// O_TRUNC frees the clusters that shorter content no longer needs, but its
// bookkeeping stays wrong in ways fsck.fat rejects (measured: `fsck.fat -n`
// exits 1 after each of these alone, on a volume mkfs.vfat made):
//   - Remove does not free the removed file's clusters ("Reclaimed N unused
//     clusters"), which is why fatWrite rewrites files in place;
//   - every file it creates, and every file truncated to empty, keeps a
//     one-cluster chain ("File size is 0 bytes, cluster chain length is > 0
//     bytes") — the boot partition's `ssh` flag file is such a file;
//   - it writes back the FSInfo free-cluster count it read, whatever it
//     allocated or freed ("Free cluster summary wrong (N vs. really M)");
//   - Mkdir of a directory in the root writes the root's cluster number in
//     '..' where FAT32 wants 0 ("Invalid '..' entry in the second slot").
// repairFAT puts the bookkeeping back after our operations: it walks the
// directory tree from the root, trims chains to file sizes, frees every
// allocated cluster no entry reaches, fixes '.' and '..', and rewrites
// FSInfo. It refuses (rather than guesses) on anything else inconsistent.
// It says what it repaired, by kind, so that a test can tell the repairs a
// bake always needs from those that mean a leak: after a bake's writes
// (TestBakeLeavesNothingToRepair) only the last three are left, and
// clusters leak only where a plan removes a boot file.

// fatRepairs counts what repairFAT changed, by kind.
type fatRepairs struct {
	// Leaked is the number of clusters allocated but reached by no entry
	// (not counting those the two kinds below release), now free.
	Leaked int
	// Trimmed is the number of files whose chain held more clusters than
	// their size needs, now cut to it.
	Trimmed int
	// EmptyChains is the number of empty files that held a chain, now
	// starting at cluster 0.
	EmptyChains int
	// Dots is the number of '.' and '..' entries that named the wrong cluster.
	Dots int
	// FSInfoFree is whether FSInfo's free-cluster count was wrong.
	FSInfoFree bool
}

type fatVolume struct {
	dev                rwAt
	bps, clusterSize   int64
	fatStart, fatBytes int64
	nFATs              int
	dataStart          int64
	clusters           uint32 // data clusters, numbered 2..clusters+1
	rootCluster        uint32
	fsinfo             int64
	fat, orig          []byte
}

type rwAt interface {
	io.ReaderAt
	io.WriterAt
}

const (
	fatEOC  = 0x0ffffff8
	fatBad  = 0x0ffffff7
	fatMask = 0x0fffffff
)

func openFAT(dev rwAt) (*fatVolume, error) {
	bs := make([]byte, 512)
	if _, err := dev.ReadAt(bs, 0); err != nil {
		return nil, fmt.Errorf("read boot sector: %w", err)
	}
	le := binary.LittleEndian
	v := &fatVolume{dev: dev}
	v.bps = int64(le.Uint16(bs[11:]))
	spc := int64(bs[13])
	reserved := int64(le.Uint16(bs[14:]))
	v.nFATs = int(bs[16])
	total := int64(le.Uint32(bs[32:]))
	fatSectors := int64(le.Uint32(bs[36:]))
	v.rootCluster = le.Uint32(bs[44:])
	v.fsinfo = int64(le.Uint16(bs[48:])) * v.bps
	if bs[510] != 0x55 || bs[511] != 0xaa || v.bps < 512 || spc == 0 || v.nFATs == 0 || fatSectors == 0 || le.Uint16(bs[22:]) != 0 {
		return nil, fmt.Errorf("not a FAT32 filesystem")
	}
	v.clusterSize = v.bps * spc
	v.fatStart = reserved * v.bps
	v.fatBytes = fatSectors * v.bps
	v.dataStart = v.fatStart + int64(v.nFATs)*v.fatBytes
	v.clusters = uint32((total*v.bps - v.dataStart) / v.clusterSize)
	if int64(v.clusters+2)*4 > v.fatBytes {
		return nil, fmt.Errorf("FAT too small for %d clusters", v.clusters)
	}
	v.fat = make([]byte, v.fatBytes)
	if _, err := dev.ReadAt(v.fat, v.fatStart); err != nil {
		return nil, fmt.Errorf("read FAT: %w", err)
	}
	v.orig = bytes.Clone(v.fat)
	return v, nil
}

func (v *fatVolume) next(c uint32) uint32 { return binary.LittleEndian.Uint32(v.fat[4*c:]) & fatMask }

func (v *fatVolume) set(c, val uint32) {
	old := binary.LittleEndian.Uint32(v.fat[4*c:])
	binary.LittleEndian.PutUint32(v.fat[4*c:], old&^fatMask|val&fatMask)
}

func (v *fatVolume) valid(c uint32) bool { return c >= 2 && c < v.clusters+2 }

func (v *fatVolume) clusterOff(c uint32) int64 { return v.dataStart + int64(c-2)*v.clusterSize }

// chain follows a cluster chain, marking it used; it fails on loops, chains
// into free or out-of-range clusters, and clusters already owned by another file.
func (v *fatVolume) chain(start uint32, used []bool) ([]uint32, error) {
	var out []uint32
	for c := start; ; {
		if !v.valid(c) {
			return nil, fmt.Errorf("cluster chain from %d reaches invalid cluster %d", start, c)
		}
		if used[c] {
			return nil, fmt.Errorf("cluster %d is used twice (cross-linked)", c)
		}
		used[c] = true
		out = append(out, c)
		n := v.next(c)
		if n >= fatEOC {
			return out, nil
		}
		if n == 0 || n == fatBad {
			return nil, fmt.Errorf("cluster chain from %d breaks at cluster %d", start, c)
		}
		c = n
	}
}

func repairFAT(dev rwAt) (fatRepairs, error) {
	var r fatRepairs
	v, err := openFAT(dev)
	if err != nil {
		return r, err
	}
	used := make([]bool, v.clusters+2)
	released := make([]bool, v.clusters+2)
	if err := v.walkDir(v.rootCluster, 0, used, released, &r, 0); err != nil {
		return r, err
	}
	free := uint32(0)
	nextFree := uint32(0xffffffff)
	for c := uint32(2); c < v.clusters+2; c++ {
		n := v.next(c)
		if !used[c] && n != 0 && n != fatBad {
			v.set(c, 0)
			if !released[c] {
				r.Leaked++
			}
			n = 0
		}
		if n == 0 {
			free++
			if nextFree == 0xffffffff {
				nextFree = c
			}
		}
	}
	// Write back only the FAT pages that changed, to every FAT copy.
	const page = 4096
	for off := int64(0); off < v.fatBytes; off += page {
		end := min(off+page, v.fatBytes)
		if bytes.Equal(v.fat[off:end], v.orig[off:end]) {
			continue
		}
		for i := range v.nFATs {
			if _, err := dev.WriteAt(v.fat[off:end], v.fatStart+int64(i)*v.fatBytes+off); err != nil {
				return r, fmt.Errorf("write FAT: %w", err)
			}
		}
	}
	fsi := make([]byte, 512)
	if _, err := dev.ReadAt(fsi, v.fsinfo); err != nil {
		return r, fmt.Errorf("read FSInfo: %w", err)
	}
	le := binary.LittleEndian
	if le.Uint32(fsi[0:]) != 0x41615252 || le.Uint32(fsi[484:]) != 0x61417272 {
		return r, nil // no FSInfo sector: nothing to keep in step
	}
	r.FSInfoFree = le.Uint32(fsi[488:]) != free
	le.PutUint32(fsi[488:], free)
	le.PutUint32(fsi[492:], nextFree)
	if _, err := dev.WriteAt(fsi[488:496], v.fsinfo+488); err != nil {
		return r, fmt.Errorf("write FSInfo: %w", err)
	}
	return r, nil
}

// release marks the clusters of the chain from start as freed by a repair
// rather than leaked; it stops, without failing, wherever the chain breaks
// or meets a cluster seen already.
func (v *fatVolume) release(start uint32, used, released []bool) {
	for c := start; v.valid(c) && !used[c] && !released[c]; c = v.next(c) {
		released[c] = true
		if v.next(c) >= fatEOC {
			return
		}
	}
}

// walkDir checks one directory (its chain starting at cl) and everything below it.
// parent is the parent's first cluster, 0 for the root and its children.
func (v *fatVolume) walkDir(cl, parent uint32, used, released []bool, r *fatRepairs, depth int) error {
	if depth > 64 {
		return fmt.Errorf("directories nested deeper than 64 levels")
	}
	clusters, err := v.chain(cl, used)
	if err != nil {
		return err
	}
	buf := make([]byte, v.clusterSize)
	le := binary.LittleEndian
	for i, c := range clusters {
		off := v.clusterOff(c)
		if _, err := v.dev.ReadAt(buf, off); err != nil {
			return fmt.Errorf("read directory cluster %d: %w", c, err)
		}
		dirty := false
		for e := 0; e+32 <= len(buf); e += 32 {
			ent := buf[e : e+32]
			if ent[0] == 0 {
				break
			}
			attr := ent[11]
			if ent[0] == 0xe5 || attr == 0x0f || attr&0x08 != 0 {
				continue
			}
			start := uint32(le.Uint16(ent[20:]))<<16 | uint32(le.Uint16(ent[26:]))
			setStart := func(s uint32) {
				le.PutUint16(ent[20:], uint16(s>>16))
				le.PutUint16(ent[26:], uint16(s))
				dirty = true
			}
			name := string(bytes.TrimRight(ent[0:11], " "))
			if cl != v.rootCluster && i == 0 && (e == 0 || e == 32) && (name == "." || name == "..") {
				want := cl
				if name == ".." {
					want = parent
				}
				if start != want {
					setStart(want)
					r.Dots++
				}
				continue
			}
			if attr&0x10 != 0 {
				self := cl
				if cl == v.rootCluster {
					self = 0 // FAT32 writes the root as 0 in '..'
				}
				if err := v.walkDir(start, self, used, released, r, depth+1); err != nil {
					return err
				}
				continue
			}
			size := le.Uint32(ent[28:])
			if size == 0 {
				if start != 0 {
					setStart(0) // chain on an empty file: fsck.fat rejects it
					v.release(start, used, released)
					r.EmptyChains++
				}
				continue
			}
			chain, err := v.chain(start, used)
			if err != nil {
				return err
			}
			need := (int64(size) + v.clusterSize - 1) / v.clusterSize
			if int64(len(chain)) < need {
				return fmt.Errorf("file %q: %d clusters hold less than its %d bytes", name, len(chain), size)
			}
			if int64(len(chain)) > need {
				v.set(chain[need-1], fatMask)
				for _, c := range chain[need:] {
					used[c] = false
					released[c] = true
				}
				r.Trimmed++
			}
		}
		if dirty {
			if _, err := v.dev.WriteAt(buf, off); err != nil {
				return fmt.Errorf("write directory cluster %d: %w", c, err)
			}
		}
	}
	return nil
}
