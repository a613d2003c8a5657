package image

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"sort"
	"time"

	"github.com/diskfs/go-diskfs/backend"

	"github.com/magibake/magibake/internal/tempfile"
)

// PageSize is the granularity of the copy-on-write layer. 4 KiB matches the
// ext4 block size and a multiple of the FAT sector size, so one filesystem
// write dirties as few pages as possible.
const PageSize = 4096

// Device is a copy-on-write view of a base image: reads come from the base
// unless a page was written, writes land in memory. The base is never
// written, so one decompressed base serves any number of nodes.
type Device struct {
	base  io.ReaderAt
	size  int64
	pages map[int64][]byte
	pos   int64 // for the io.Seeker / io.Reader that go-diskfs's interface demands
}

var _ backend.Storage = (*Device)(nil)

// NewDevice returns a copy-on-write device of size bytes over base.
func NewDevice(base io.ReaderAt, size int64) *Device {
	return &Device{base: base, size: size, pages: map[int64][]byte{}}
}

// Size is the size of the device in bytes.
func (d *Device) Size() int64 { return d.size }

// DirtyPages returns the indexes of written pages, in ascending order.
func (d *Device) DirtyPages() []int64 {
	idx := make([]int64, 0, len(d.pages))
	for i := range d.pages {
		idx = append(idx, i)
	}
	sort.Slice(idx, func(a, b int) bool { return idx[a] < idx[b] })
	return idx
}

// BaseFile is the plain file the device reads its clean pages from (an
// .img, or a decompressed base), or nil (an .img.xz read on demand).
func (d *Device) BaseFile() *os.File {
	if f, ok := d.base.(interface{ File() *os.File }); ok {
		return f.File()
	}
	return nil
}

// Changed lists the written byte ranges [start, end), in order, adjacent
// pages merged.
func (d *Device) Changed() [][2]int64 {
	var out [][2]int64
	for _, p := range d.DirtyPages() {
		start, end := p*PageSize, min((p+1)*PageSize, d.size)
		if n := len(out); n > 0 && out[n-1][1] == start {
			out[n-1][1] = end
			continue
		}
		out = append(out, [2]int64{start, end})
	}
	return out
}

// Untouched reports whether no byte of [off, off+n) was written: there the
// device reads exactly as its base.
func (d *Device) Untouched(off, n int64) bool {
	if n <= 0 {
		return true
	}
	first, last := off/PageSize, (off+n-1)/PageSize
	if int64(len(d.pages)) < last-first+1 {
		for p := range d.pages {
			if p >= first && p <= last {
				return false
			}
		}
		return true
	}
	for p := first; p <= last; p++ {
		if _, ok := d.pages[p]; ok {
			return false
		}
	}
	return true
}

// ReadAt reads from the written pages where there are some, else from the base.
func (d *Device) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 {
		return 0, fmt.Errorf("read at negative offset %d", off)
	}
	if off >= d.size {
		return 0, io.EOF
	}
	want := len(p)
	if rest := d.size - off; int64(want) > rest {
		p = p[:rest]
	}
	n := 0
	for n < len(p) {
		cur := off + int64(n)
		page := cur / PageSize
		in := int(cur % PageSize)
		chunk := min(len(p)-n, PageSize-in)
		if buf, ok := d.pages[page]; ok {
			copy(p[n:n+chunk], buf[in:])
			n += chunk
			continue
		}
		// Read the longest run of clean pages from the base in one call.
		end := n + chunk
		for end < len(p) {
			next := (off + int64(end)) / PageSize
			if _, dirty := d.pages[next]; dirty {
				break
			}
			end = min(len(p), end+PageSize)
		}
		if err := readFull(d.base, p[n:end], cur); err != nil {
			return n, err
		}
		n = end
	}
	if n < want {
		return n, io.EOF
	}
	return n, nil
}

// WriteAt records p in the copy-on-write layer.
func (d *Device) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > d.size {
		return 0, fmt.Errorf("write of %d bytes at %d is outside the %d-byte image", len(p), off, d.size)
	}
	n := 0
	for n < len(p) {
		cur := off + int64(n)
		page := cur / PageSize
		in := int(cur % PageSize)
		chunk := min(len(p)-n, PageSize-in)
		buf, ok := d.pages[page]
		if !ok {
			buf = make([]byte, PageSize)
			start := page * PageSize
			l := min(int64(PageSize), d.size-start)
			if err := readFull(d.base, buf[:l], start); err != nil {
				return n, err
			}
			d.pages[page] = buf
		}
		copy(buf[in:], p[n:n+chunk])
		n += chunk
	}
	return n, nil
}

func readFull(r io.ReaderAt, p []byte, off int64) error {
	n, err := r.ReadAt(p, off)
	if n == len(p) {
		return nil
	}
	if err == nil || errors.Is(err, io.EOF) {
		err = io.ErrUnexpectedEOF
	}
	return fmt.Errorf("read base at %d: %w", off, err)
}

// Read and Seek exist because backend.Storage embeds fs.File and io.Seeker.
func (d *Device) Read(p []byte) (int, error) {
	n, err := d.ReadAt(p, d.pos)
	d.pos += int64(n)
	return n, err
}

// Seek sets the offset for Read.
func (d *Device) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += d.pos
	case io.SeekEnd:
		offset += d.size
	default:
		return d.pos, fmt.Errorf("seek: bad whence %d", whence)
	}
	if offset < 0 {
		return d.pos, fmt.Errorf("seek to negative offset %d", offset)
	}
	d.pos = offset
	return offset, nil
}

// Close is a no-op: the device owns no file.
func (d *Device) Close() error { return nil }

// Stat reports the device size.
func (d *Device) Stat() (fs.FileInfo, error) { return deviceInfo{d.size}, nil }

// Sys reports that there is no OS file behind the device.
func (d *Device) Sys() (*os.File, error) {
	return nil, errors.New("copy-on-write device has no OS file")
}

// Writable returns the device itself: writes go to the overlay.
func (d *Device) Writable() (backend.WritableFile, error) { return d, nil }

// Path is empty: the device is not a file.
func (d *Device) Path() string { return "" }

// Section is a device limited to one partition, with offsets relative to it.
type Section struct {
	d        *Device
	off, len int64
}

// Section returns the bytes [off, off+n) of the device as a read/write device.
func (d *Device) Section(off, n int64) *Section { return &Section{d, off, n} }

// ReadAt reads within the section.
func (s *Section) ReadAt(p []byte, off int64) (int, error) {
	if off < 0 || off >= s.len {
		return 0, io.EOF
	}
	short := false
	if rest := s.len - off; int64(len(p)) > rest {
		p, short = p[:rest], true
	}
	n, err := s.d.ReadAt(p, s.off+off)
	if err == nil && short {
		err = io.EOF
	}
	return n, err
}

// WriteAt writes within the section.
func (s *Section) WriteAt(p []byte, off int64) (int, error) {
	if off < 0 || off+int64(len(p)) > s.len {
		return 0, fmt.Errorf("write of %d bytes at %d is outside the %d-byte partition", len(p), off, s.len)
	}
	return s.d.WriteAt(p, s.off+off)
}

type deviceInfo struct{ size int64 }

func (i deviceInfo) Name() string       { return "image" }
func (i deviceInfo) Size() int64        { return i.size }
func (i deviceInfo) Mode() fs.FileMode  { return 0o644 }
func (i deviceInfo) ModTime() time.Time { return time.Time{} }
func (i deviceInfo) IsDir() bool        { return false }
func (i deviceInfo) Sys() any           { return nil }

// Adopt hands the base's decompressed temp file over to the card written
// from this device (see Base.Adopt and output.Adopter), when the base is
// such a file in dir. The device cannot read its base afterwards.
func (d *Device) Adopt(dir string) (*os.File, *tempfile.Lock, bool) {
	if b, ok := d.base.(interface {
		Adopt(dir string) (*os.File, *tempfile.Lock, bool)
	}); ok {
		return b.Adopt(dir)
	}
	return nil, nil, false
}
