package ext4

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"strings"
	"syscall"
	"time"
)

const maxSymlinkFollows = 40

// Stat describes one inode as seen through a path.
type Stat struct {
	Ino    uint32
	Mode   fs.FileMode // type bits (fs.ModeDir, fs.ModeSymlink) and permissions
	UID    uint32
	GID    uint32
	Size   int64
	Links  uint16
	MTime  time.Time
	Target string // symlink target
}

// DirEntry is one name in a directory.
type DirEntry struct {
	Name  string
	Ino   uint32
	IsDir bool
}

func pathErr(op, p string, err error) error {
	return &fs.PathError{Op: op, Path: p, Err: err}
}

func splitPath(p string) ([]string, error) {
	clean := path.Clean("/" + p)
	if clean == "/" {
		return nil, nil
	}
	parts := strings.Split(clean[1:], "/")
	for _, c := range parts {
		if len(c) > 255 {
			return nil, fmt.Errorf("name %q longer than 255 bytes", c)
		}
	}
	return parts, nil
}

// walk resolves the directory components of parts (all but the last, or
// all when full is set), following symlinks the way the kernel does for
// intermediate components. It returns the inode of the last resolved
// directory. Symlinks resolve inside this filesystem: "/" is its root.
func (f *FS) walk(parts []string, follows *int) (*inode, error) {
	cur, err := f.readInode(rootIno)
	if err != nil {
		return nil, err
	}
	for i := 0; i < len(parts); i++ {
		c := parts[i]
		d, err := f.openDir(cur)
		if err != nil {
			return nil, err
		}
		ino, _, err := f.lookup(d, []byte(c))
		if err != nil {
			return nil, err
		}
		if ino == 0 {
			return nil, fs.ErrNotExist
		}
		next, err := f.readInode(ino)
		if err != nil {
			return nil, err
		}
		if next.isLink() {
			*follows++
			if *follows > maxSymlinkFollows {
				return nil, errors.New("too many levels of symbolic links")
			}
			target, err := f.readlink(next)
			if err != nil {
				return nil, err
			}
			base := "/" + strings.Join(parts[:i], "/")
			if strings.HasPrefix(target, "/") {
				base = "/"
			}
			rest, err := splitPath(path.Join(base, target, strings.Join(parts[i+1:], "/")))
			if err != nil {
				return nil, err
			}
			return f.walk(rest, follows)
		}
		if !next.isDir() {
			return nil, errNotDir
		}
		cur = next
	}
	return cur, nil
}

// parent resolves the directory that holds p's last component.
func (f *FS) parent(p string) (*dirHandle, []byte, error) {
	parts, err := splitPath(p)
	if err != nil {
		return nil, nil, err
	}
	if len(parts) == 0 {
		return nil, nil, errors.New("the root directory cannot be replaced")
	}
	follows := 0
	dirIn, err := f.walk(parts[:len(parts)-1], &follows)
	if err != nil {
		return nil, nil, err
	}
	d, err := f.openDir(dirIn)
	return d, []byte(parts[len(parts)-1]), err
}

func (f *FS) lstatInode(p string) (*inode, error) {
	d, name, err := f.parent(p)
	if err != nil {
		return nil, err
	}
	ino, _, err := f.lookup(d, name)
	if err != nil {
		return nil, err
	}
	if ino == 0 {
		return nil, fs.ErrNotExist
	}
	return f.readInode(ino)
}

// Lstat describes p without following a final symlink.
func (f *FS) Lstat(p string) (Stat, error) {
	in, err := f.lstatPath(p)
	if err != nil {
		return Stat{}, pathErr("lstat", p, err)
	}
	st := Stat{Ino: in.num, Mode: in.fileMode(), UID: in.uid(), GID: in.gid(), Size: int64(in.size()),
		Links: in.links(), MTime: in.mtime()}
	if in.isLink() {
		if st.Target, err = f.readlink(in); err != nil {
			return Stat{}, pathErr("lstat", p, err)
		}
	}
	return st, nil
}

func (f *FS) lstatPath(p string) (*inode, error) {
	parts, err := splitPath(p)
	if err != nil {
		return nil, err
	}
	if len(parts) == 0 {
		return f.readInode(rootIno)
	}
	return f.lstatInode(p)
}

// Readlink returns the target of symlink p.
func (f *FS) Readlink(p string) (string, error) {
	in, err := f.lstatPath(p)
	if err != nil {
		return "", pathErr("readlink", p, err)
	}
	if !in.isLink() {
		return "", pathErr("readlink", p, errors.New("not a symbolic link"))
	}
	t, err := f.readlink(in)
	if err != nil {
		return "", pathErr("readlink", p, err)
	}
	return t, nil
}

func (f *FS) readlink(in *inode) (string, error) {
	size := in.size()
	if size >= uint64(f.bs) {
		return "", errCorrupt("symlink inode %d of %d bytes", in.num, size)
	}
	if size < 60 {
		// e2fsprogs and the kernel call a symlink fast exactly when its
		// target fits in i_block.
		return string(in.blockArea()[:size]), nil
	}
	data, err := f.readData(in)
	if err != nil {
		return "", err
	}
	return string(data), nil
}

// ReadFile returns the content of regular file p (final symlinks followed).
func (f *FS) ReadFile(p string) ([]byte, error) {
	parts, err := splitPath(p)
	if err != nil {
		return nil, pathErr("read", p, err)
	}
	follows := 0
	in, err := f.resolveFile(parts, &follows)
	if err != nil {
		return nil, pathErr("read", p, err)
	}
	if !in.isReg() {
		return nil, pathErr("read", p, errors.New("not a regular file"))
	}
	data, err := f.readData(in)
	if err != nil {
		return nil, pathErr("read", p, err)
	}
	return data, nil
}

var errNotDir error = syscall.ENOTDIR // "not a directory"

// resolveFile follows symlinks through every component, the last included.
func (f *FS) resolveFile(parts []string, follows *int) (*inode, error) {
	if len(parts) == 0 {
		return f.readInode(rootIno)
	}
	dirIn, err := f.walk(parts[:len(parts)-1], follows)
	if err != nil {
		return nil, err
	}
	d, err := f.openDir(dirIn)
	if err != nil {
		return nil, err
	}
	ino, _, err := f.lookup(d, []byte(parts[len(parts)-1]))
	if err != nil {
		return nil, err
	}
	if ino == 0 {
		return nil, fs.ErrNotExist
	}
	in, err := f.readInode(ino)
	if err != nil || !in.isLink() {
		return in, err
	}
	*follows++
	if *follows > maxSymlinkFollows {
		return nil, errors.New("too many levels of symbolic links")
	}
	target, err := f.readlink(in)
	if err != nil {
		return nil, err
	}
	base := "/" + strings.Join(parts[:len(parts)-1], "/")
	if strings.HasPrefix(target, "/") {
		base = "/"
	}
	next, err := splitPath(path.Join(base, target))
	if err != nil {
		return nil, err
	}
	return f.resolveFile(next, follows)
}

func (f *FS) readData(in *inode) ([]byte, error) {
	if in.flags()&flagInline != 0 {
		return nil, errUnsupported("inline data (inode %d)", in.num)
	}
	if in.flags()&flagEncrypt != 0 {
		return nil, errUnsupported("encrypted file (inode %d)", in.num)
	}
	size := in.size()
	if size > f.sb.blocksCount()*uint64(f.bs) {
		return nil, errCorrupt("inode %d claims %d bytes, more than the filesystem holds", in.num, size)
	}
	t, err := f.readExtents(in)
	if err != nil {
		return nil, err
	}
	out := make([]byte, size)
	for _, e := range t.extents {
		if e.uninit {
			continue
		}
		off := uint64(e.logical) * uint64(f.bs)
		if off >= size {
			continue
		}
		n := min(uint64(e.length)*uint64(f.bs), size-off)
		if err := f.readAt(out[off:off+n], int64(e.start)*int64(f.bs)); err != nil {
			return nil, fmt.Errorf("read inode %d data: %w", in.num, err)
		}
	}
	return out, nil
}

// ReadDir lists directory p (symlinks followed), without "." and "..".
func (f *FS) ReadDir(p string) ([]DirEntry, error) {
	parts, err := splitPath(p)
	if err != nil {
		return nil, pathErr("readdir", p, err)
	}
	follows := 0
	in, err := f.walk(parts, &follows)
	if err != nil {
		return nil, pathErr("readdir", p, err)
	}
	d, err := f.openDir(in)
	if err != nil {
		return nil, pathErr("readdir", p, err)
	}
	ents, err := f.entries(d)
	if err != nil {
		return nil, pathErr("readdir", p, err)
	}
	var out []DirEntry
	for _, e := range ents {
		if n := string(e.name); n != "." && n != ".." {
			out = append(out, DirEntry{Name: n, Ino: e.ino, IsDir: e.ftype == ftDir})
		}
	}
	return out, nil
}

// MkdirAll creates p and any missing parents with the given owner, mode
// and time. Existing directories are left as they are.
func (f *FS) MkdirAll(p string, perm fs.FileMode, uid, gid uint32, mtime time.Time) error {
	parts, err := splitPath(p)
	if err != nil {
		return pathErr("mkdir", p, err)
	}
	for i := range parts {
		sub := "/" + strings.Join(parts[:i+1], "/")
		d, name, err := f.parent(sub)
		if err != nil {
			return pathErr("mkdir", p, err)
		}
		ino, _, err := f.lookup(d, name)
		if err != nil {
			return pathErr("mkdir", p, err)
		}
		if ino != 0 {
			follows := 0
			if _, err := f.walk(parts[:i+1], &follows); err != nil {
				return pathErr("mkdir", sub, err)
			}
			continue
		}
		if err := f.mkdir(d, name, perm, uid, gid, mtime); err != nil {
			return pathErr("mkdir", sub, err)
		}
	}
	return f.flush()
}

func (f *FS) mkdir(parent *dirHandle, name []byte, perm fs.FileMode, uid, gid uint32, t time.Time) error {
	in, err := f.newInode(parent.in.num, sIFDIR, perm, uid, gid, t)
	if err != nil {
		return err
	}
	in.put16(0x1A, 2)
	g, _ := f.inodeGroup(in.num)
	runs, err := f.allocBlocks(f.groupFirstBlock(g), 1, maxInitExtent)
	if err != nil {
		return err
	}
	b, _ := f.packLeaf(in, []dirent{{ino: in.num, ftype: ftDir, name: []byte(".")},
		{ino: parent.in.num, ftype: ftDir, name: []byte("..")}})
	if err := f.writeBlock(runs[0].start, b); err != nil {
		return err
	}
	if _, err := f.writeExtents(in, []fileExtent{{extent: runs[0]}}, 0); err != nil {
		return err
	}
	in.setSize(uint64(f.bs))
	in.setBlocks(1, f.bs)
	if err := f.writeInode(in); err != nil {
		return err
	}
	if err := f.addEntry(parent, name, in.num, ftDir); err != nil {
		return err
	}
	// A subdirectory's ".." is a link to the parent; with dir_nlink a
	// count that would overflow becomes 1, meaning "many".
	if l := parent.in.links(); l > 1 {
		if l >= 64999 && f.sb.roCompat()&roDirNlink != 0 {
			parent.in.put16(0x1A, 1)
		} else if l < 64999 {
			parent.in.put16(0x1A, l+1)
		} else {
			return fmt.Errorf("%w: too many subdirectories", ErrNoSpace)
		}
	}
	return f.writeInode(parent.in)
}

// WriteFile creates or replaces the regular file p (its directory must
// exist). A symlink or other non-directory at p is replaced by the file.
func (f *FS) WriteFile(p string, data []byte, perm fs.FileMode, uid, gid uint32, mtime time.Time) error {
	if err := f.writeFile(p, data, perm, uid, gid, mtime); err != nil {
		return pathErr("write", p, err)
	}
	return f.flush()
}

func (f *FS) writeFile(p string, data []byte, perm fs.FileMode, uid, gid uint32, mtime time.Time) error {
	d, name, err := f.parent(p)
	if err != nil {
		return err
	}
	ino, _, err := f.lookup(d, name)
	if err != nil {
		return err
	}
	if err := f.checkSpace(uint64(len(data)), ino); err != nil {
		return err
	}
	var in *inode
	if ino != 0 {
		old, err := f.readInode(ino)
		if err != nil {
			return err
		}
		switch {
		case old.isDir():
			return syscall.EISDIR
		case old.isReg() && old.links() == 1 && old.flags()&(flagInline|flagEncrypt|flagEAInode) == 0:
			if err := f.truncate(old); err != nil {
				return err
			}
			in = old
			in.put16(0x0, sIFREG|unixPerm(perm))
			in.setOwner(uid, gid)
			in.setTimes(mtime)
		default:
			if err := f.unlink(d, name, old); err != nil {
				return err
			}
		}
	}
	created := in == nil
	if created {
		if in, err = f.newInode(d.in.num, sIFREG, perm, uid, gid, mtime); err != nil {
			return err
		}
	}
	if err := f.fill(in, data); err != nil {
		if created {
			if ferr := f.freeInode(in.num, false); ferr != nil {
				return errors.Join(err, ferr)
			}
		}
		return err
	}
	if err := f.writeInode(in); err != nil {
		return err
	}
	if created {
		return f.addEntry(d, name, in.num, ftReg)
	}
	return nil
}

// checkSpace fails early, before anything is changed, when size bytes (plus
// extent tree and a directory block) cannot fit. The blocks of the file
// being replaced (ino, if non-zero) count as free.
func (f *FS) checkSpace(size uint64, ino uint32) error {
	n := (size + uint64(f.bs) - 1) / uint64(f.bs)
	need := n + n/uint64((f.bs-12)/12) + 2
	have := f.sb.freeBlocks()
	if ino != 0 {
		if old, err := f.readInode(ino); err == nil && old.isReg() {
			have += old.blocks(f.bs)
		}
	}
	if need > have {
		return fmt.Errorf("%w: %d bytes need %d blocks (%d KiB) but only %d are free (%d KiB): the root filesystem needs %d KiB more",
			ErrNoSpace, size, need, need*uint64(f.bs)/1024, have, have*uint64(f.bs)/1024, (need-have)*uint64(f.bs)/1024)
	}
	return nil
}

// truncate frees every block of a regular file and leaves it empty.
func (f *FS) truncate(in *inode) error {
	t, err := f.readExtents(in)
	if err != nil {
		return err
	}
	if err := f.freeTree(t); err != nil {
		return err
	}
	if _, err := f.writeExtents(in, nil, 0); err != nil {
		return err
	}
	in.setSize(0)
	in.setBlocks(f.xattrBlocks(in), f.bs)
	return nil
}

// fill gives an empty inode data as its content.
func (f *FS) fill(in *inode, data []byte) error {
	n := (uint64(len(data)) + uint64(f.bs) - 1) / uint64(f.bs)
	g, _ := f.inodeGroup(in.num)
	runs, err := f.allocBlocks(f.groupFirstBlock(g), n, maxInitExtent)
	if err != nil {
		return err
	}
	exts := make([]fileExtent, len(runs))
	lb := uint32(0)
	for i, r := range runs {
		r.logical = lb
		exts[i] = fileExtent{extent: r}
		off := uint64(lb) * uint64(f.bs)
		chunk := data[off:min(off+uint64(r.length)*uint64(f.bs), uint64(len(data)))]
		buf := chunk
		if uint64(len(chunk))%uint64(f.bs) != 0 {
			buf = make([]byte, uint64(r.length)*uint64(f.bs))
			copy(buf, chunk)
		}
		if err := f.writeAt(buf, int64(r.start)*int64(f.bs)); err != nil {
			return fmt.Errorf("write data: %w", err)
		}
		lb += r.length
	}
	nodes, err := f.writeExtents(in, exts, f.groupFirstBlock(g))
	if err != nil {
		return err
	}
	in.setSize(uint64(len(data)))
	in.setBlocks(n+nodes+f.xattrBlocks(in), f.bs)
	return nil
}

// Symlink creates or replaces the symlink p pointing to target.
func (f *FS) Symlink(target, p string, uid, gid uint32, mtime time.Time) error {
	if err := f.symlink(target, p, uid, gid, mtime); err != nil {
		return pathErr("symlink", p, err)
	}
	return f.flush()
}

func (f *FS) symlink(target, p string, uid, gid uint32, mtime time.Time) error {
	if target == "" || len(target) >= int(f.bs) {
		return fmt.Errorf("symlink target of %d bytes", len(target))
	}
	d, name, err := f.parent(p)
	if err != nil {
		return err
	}
	ino, _, err := f.lookup(d, name)
	if err != nil {
		return err
	}
	if ino != 0 {
		old, err := f.readInode(ino)
		if err != nil {
			return err
		}
		if old.isDir() {
			return syscall.EISDIR
		}
		if err := f.unlink(d, name, old); err != nil {
			return err
		}
	}
	in, err := f.newInode(d.in.num, sIFLNK, 0777, uid, gid, mtime)
	if err != nil {
		return err
	}
	if len(target) < 60 {
		copy(in.blockArea(), target)
		in.setSize(uint64(len(target)))
	} else if err := f.fill(in, []byte(target)); err != nil {
		return err
	}
	if err := f.writeInode(in); err != nil {
		return err
	}
	return f.addEntry(d, name, in.num, ftSymlink)
}

// Remove deletes the file or symlink p. A missing p gives an error that
// matches fs.ErrNotExist; directories are refused.
func (f *FS) Remove(p string) error {
	if err := f.remove(p); err != nil {
		return pathErr("remove", p, err)
	}
	return f.flush()
}

func (f *FS) remove(p string) error {
	d, name, err := f.parent(p)
	if err != nil {
		return err
	}
	ino, _, err := f.lookup(d, name)
	if err != nil {
		return err
	}
	if ino == 0 {
		return fs.ErrNotExist
	}
	in, err := f.readInode(ino)
	if err != nil {
		return err
	}
	if in.isDir() {
		return syscall.EISDIR
	}
	return f.unlink(d, name, in)
}

// unlink removes name from d and releases in when it was the last link.
func (f *FS) unlink(d *dirHandle, name []byte, in *inode) error {
	if err := f.removeEntry(d, name); err != nil {
		return err
	}
	if l := in.links(); l > 1 {
		in.put16(0x1A, l-1)
		return f.writeInode(in)
	}
	if in.flags()&flagEAInode != 0 || in.xattrBlock() != 0 {
		// Shared xattr blocks carry a reference count we would have to
		// maintain; refuse rather than leak or corrupt it.
		return errUnsupported("removing inode %d with extended attributes in a block", in.num)
	}
	fastLink := in.isLink() && in.size() < 60
	if !fastLink && (in.isReg() || in.isLink()) {
		t, err := f.readExtents(in)
		if err != nil {
			return err
		}
		if err := f.freeTree(t); err != nil {
			return err
		}
	} else if !fastLink {
		if in.blocks(f.bs) != 0 {
			return errUnsupported("removing inode %d of mode %#o", in.num, in.mode())
		}
	}
	in.put16(0x1A, 0)
	in.put32(0x14, in.u32(0x10)) // dtime: the kernel stamps deletion time
	in.setSize(0)
	in.setBlocks(0, f.bs)
	if err := f.writeInode(in); err != nil {
		return err
	}
	return f.freeInode(in.num, false)
}

// SetAttr sets the mode, owner and times of p (symlinks not followed).
func (f *FS) SetAttr(p string, perm fs.FileMode, uid, gid uint32, mtime time.Time) error {
	in, err := f.lstatPath(p)
	if err != nil {
		return pathErr("chmod", p, err)
	}
	if !in.isLink() {
		in.put16(0x0, in.mode()&sIFMT|unixPerm(perm))
	}
	in.setOwner(uid, gid)
	in.setTimes(mtime)
	if err := f.writeInode(in); err != nil {
		return pathErr("chmod", p, err)
	}
	return nil
}
