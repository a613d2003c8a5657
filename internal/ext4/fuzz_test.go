package ext4

import (
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"path"
	"testing"
	"time"
)

// memDev is an in-memory device that refuses out-of-range access.
type memDev []byte

func (m memDev) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m)) {
		return 0, io.ErrUnexpectedEOF
	}
	return copy(p, m[off:]), nil
}

func (m memDev) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > int64(len(m)) {
		return 0, errors.New("write out of range")
	}
	return copy(m[off:], p), nil
}

func loadFuzzBase(t testing.TB) []byte {
	t.Helper()
	fh, err := os.Open("testdata/fuzz-base.img.gz")
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	zr, err := gzip.NewReader(fh)
	if err != nil {
		t.Fatal(err)
	}
	b, err := io.ReadAll(zr)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// patches encodes (offset, xor) pairs as fuzz input: 3 bytes of offset, 1 of value.
func patches(pairs ...int) []byte {
	var out []byte
	for i := 0; i+1 < len(pairs); i += 2 {
		out = append(out, byte(pairs[i]), byte(pairs[i]>>8), byte(pairs[i]>>16), byte(pairs[i+1]))
	}
	return out
}

// FuzzCorruptImage corrupts a small real ext4 (1 KiB blocks, metadata_csum,
// an indexed /etc, fast and slow symlinks) and drives the read and write
// paths over it: errors are fine, panics and hangs are not.
func FuzzCorruptImage(f *testing.F) {
	base := loadFuzzBase(f)
	f.Add([]byte{})
	f.Add(patches(1024+0x38, 0xff))                // superblock magic
	f.Add(patches(1024+0x18, 0x07))                // block size
	f.Add(patches(1024+0x28, 0x40, 1024+0x3FC, 1)) // inodes per group, checksum
	f.Add(patches(2048+0x08, 0x11))                // inode table location
	f.Add(patches(2048+0x1E, 0x01))                // descriptor checksum
	f.Add(patches(5*1024+256+0x28, 0x0A))          // root inode extent magic
	f.Add(patches(5*1024+256+0x04, 0xFF, 5*1024+256+0x07, 0x7F))
	f.Fuzz(func(t *testing.T, data []byte) {
		img := bytes.Clone(base)
		for i := 0; i+3 < len(data); i += 4 {
			off := int(data[i]) | int(data[i+1])<<8 | int(data[i+2])<<16
			img[off%len(img)] ^= data[i+3]
		}
		exerciseFS(memDev(img), int64(len(img)))
	})
}

// FuzzCorruptMetadataCsumOff runs the same with checksums switched off, so
// corruption reaches the parsers instead of stopping at a checksum.
func FuzzCorruptMetadataCsumOff(f *testing.F) {
	base := loadFuzzBase(f)
	sb := super{base[1024:2048]}
	sb.put32(0x64, sb.roCompat()&^roMetadataCsum)
	f.Add([]byte{})
	f.Add(patches(5*1024+256+0x28, 0x0A))
	f.Add(patches(2048+0x08, 0x11))
	f.Fuzz(func(t *testing.T, data []byte) {
		img := bytes.Clone(base)
		for i := 0; i+3 < len(data); i += 4 {
			off := int(data[i]) | int(data[i+1])<<8 | int(data[i+2])<<16
			img[off%len(img)] ^= data[i+3]
		}
		exerciseFS(memDev(img), int64(len(img)))
	})
}

func exerciseFS(dev Device, size int64) {
	f, err := Open(dev, size)
	if err != nil {
		return
	}
	budget := 400
	var visit func(dir string, depth int)
	visit = func(dir string, depth int) {
		ents, err := f.ReadDir(dir)
		if err != nil || depth > 8 {
			return
		}
		for _, e := range ents {
			if budget--; budget < 0 {
				return
			}
			p := path.Join(dir, e.Name)
			st, err := f.Lstat(p)
			if err != nil {
				continue
			}
			switch {
			case st.Mode.IsDir():
				visit(p, depth+1)
			case st.Mode.IsRegular():
				_, _ = f.ReadFile(p)
			default:
				_, _ = f.Readlink(p)
			}
		}
	}
	visit("/", 0)
	now := time.Unix(1700000000, 0)
	_ = f.WriteFile("/etc/hostname", []byte("caspar\n"), 0o644, 0, 0, now)
	_ = f.WriteFile("/etc/conf7", bytes.Repeat([]byte("x"), 5000), 0o644, 0, 0, now)
	_ = f.MkdirAll("/etc/a/b", 0o755, 0, 0, now)
	_ = f.Symlink("/"+string(bytes.Repeat([]byte("s"), 80)), "/etc/a/b/l", 0, 0, now)
	_ = f.Remove("/etc/conf3")
	_ = f.Remove("/etc/slow")
	for i := 0; i < 40; i++ {
		_ = f.WriteFile("/etc/new-"+string(rune('a'+i%26))+string(rune('a'+i/26)), []byte{byte(i)}, 0o644, 0, 0, now)
	}
	_ = f.Close()
}

func TestFuzzBaseIsValid(t *testing.T) {
	base := loadFuzzBase(t)
	f, err := Open(memDev(base), int64(len(base)))
	if err != nil {
		t.Fatalf("fuzz base does not open: %v", err)
	}
	if _, err := f.ReadFile("/etc/conf1"); err != nil {
		t.Fatal(err)
	}
	if le := binary.LittleEndian.Uint16(base[1024+0x38:]); le != superMagic {
		t.Fatalf("magic %#x", le)
	}
}
