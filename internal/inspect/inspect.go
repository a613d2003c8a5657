// Package inspect reads a card image without changing it: its partitions,
// disk signature, OS release and baked manifest, and what a re-bake with
// today's plan would change.
package inspect

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strconv"
	"strings"

	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"github.com/magibake/magibake/internal/ext4"
	"github.com/magibake/magibake/internal/image"
	"github.com/magibake/magibake/internal/manifest"
)

// Partition is one MBR partition table entry, in bytes.
type Partition struct {
	Index    int    `json:"index"`
	Type     string `json:"type"` // e.g. "0x0c"
	TypeName string `json:"type_name"`
	Start    int64  `json:"start"`
	Size     int64  `json:"size"`
	Bootable bool   `json:"bootable,omitempty"`
}

// Report is what Inspect finds.
type Report struct {
	Path          string            `json:"path"`
	SHA256        string            `json:"sha256"` // of the file as given
	Size          int64             `json:"size"`   // of the disk image, decompressed
	DiskSignature string            `json:"disk_signature"`
	Partitions    []Partition       `json:"partitions"`
	OSRelease     map[string]string `json:"os_release,omitempty"`
	// Release is VERSION_CODENAME (bookworm, trixie), or "" when unknown.
	Release  string             `json:"release,omitempty"`
	Manifest *manifest.Manifest `json:"manifest,omitempty"`
	// RootError says why the root filesystem could not be read; the
	// partition table is still reported.
	RootError string `json:"root_error,omitempty"`
}

// Image is an opened card image, read-only.
type Image struct {
	Path   string
	base   *image.Base
	layout image.Layout
	dev    *image.Device
	root   *ext4.FS
	boot   *fat32.FileSystem
}

// Open opens an .img or .img.xz for reading. An .img.xz of many blocks (as
// xz -T0 and magibake make them) is read block by block, so only the few
// blocks that hold the partition table and the files read are decoded;
// one of a single block is decompressed into tempDir. Nothing is ever
// written to the file: filesystems are read through a copy-on-write device.
func Open(ctx context.Context, p, tempDir string) (*Image, error) {
	b, err := image.OpenBaseWith(ctx, p, image.Options{TempDir: tempDir, OnDemand: true, Noun: "card"})
	if err != nil {
		return nil, err
	}
	layout, err := image.ReadLayout(b, b.Size())
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("card %s: %w", p, err)
	}
	return &Image{Path: p, base: b, layout: layout, dev: image.NewDevice(b, b.Size())}, nil
}

// Close releases the image and any temp file.
func (im *Image) Close() error { return im.base.Close() }

// Root opens the ext4 root filesystem.
func (im *Image) Root() (*ext4.FS, error) {
	if im.root == nil {
		r := im.layout.Root
		fsys, err := ext4.Open(im.dev.Section(r.Start, r.Size), r.Size)
		if err != nil {
			return nil, fmt.Errorf("%s: root partition %d: %w", im.Path, r.Index, err)
		}
		im.root = fsys
	}
	return im.root, nil
}

// Boot opens the FAT boot filesystem.
func (im *Image) Boot() (*fat32.FileSystem, error) {
	if im.boot == nil {
		b := im.layout.Boot
		fsys, err := fat32.Read(im.dev, b.Size, b.Start, 512)
		if err != nil {
			return nil, fmt.Errorf("%s: boot partition %d: %w", im.Path, b.Index, err)
		}
		im.boot = fsys
	}
	return im.boot, nil
}

// Report reads the partition table, the OS release and the manifest.
func (im *Image) Report() (*Report, error) {
	r := &Report{Path: im.Path, SHA256: im.base.SHA256, Size: im.base.Size(),
		DiskSignature: fmt.Sprintf("0x%08x", im.layout.DiskID)}
	var err error
	if r.Partitions, err = Partitions(im.base); err != nil {
		return nil, fmt.Errorf("%s: %w", im.Path, err)
	}
	root, err := im.Root()
	if err != nil {
		r.RootError = err.Error()
		return r, nil
	}
	for _, p := range []string{"/etc/os-release", "/usr/lib/os-release"} {
		data, err := root.ReadFile(p)
		if err == nil {
			r.OSRelease = ParseOSRelease(data)
			r.Release = r.OSRelease["VERSION_CODENAME"]
			break
		}
	}
	if r.Manifest, err = im.manifestIn(root); err != nil {
		return nil, err
	}
	return r, nil
}

// Manifest is the manifest a bake left on the card, or nil for an image
// without one (a Raspberry Pi OS image, or a card of another tool).
func (im *Image) Manifest() (*manifest.Manifest, error) {
	root, err := im.Root()
	if err != nil {
		return nil, err
	}
	return im.manifestIn(root)
}

func (im *Image) manifestIn(root *ext4.FS) (*manifest.Manifest, error) {
	data, err := root.ReadFile(manifest.Path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, nil
	case err != nil:
		return nil, fmt.Errorf("%s: read %s: %w", im.Path, manifest.Path, err)
	}
	m, err := manifest.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", im.Path, err)
	}
	return m, nil
}

// ParseOSRelease reads os-release(5) KEY=VALUE lines, unquoting values.
func ParseOSRelease(data []byte) map[string]string {
	m := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		k, v, ok := strings.Cut(line, "=")
		if !ok || strings.HasPrefix(line, "#") {
			continue
		}
		if uq, err := strconv.Unquote(v); err == nil && strings.HasPrefix(v, `"`) {
			v = uq
		} else {
			v = strings.Trim(v, `'"`)
		}
		m[k] = v
	}
	return m
}

var typeNames = map[byte]string{
	0x0b: "FAT32", 0x0c: "FAT32 (LBA)", 0x0e: "FAT16 (LBA)", 0x06: "FAT16", 0x83: "Linux",
	0x82: "Linux swap", 0x05: "extended", 0x0f: "extended (LBA)", 0x8e: "Linux LVM", 0xee: "GPT protective",
}

// Partitions lists the used primary entries of the MBR at the start of r.
func Partitions(r io.ReaderAt) ([]Partition, error) {
	mbr := make([]byte, 512)
	if _, err := r.ReadAt(mbr, 0); err != nil {
		return nil, fmt.Errorf("read partition table: %w", err)
	}
	var parts []Partition
	for i := range 4 {
		e := mbr[446+16*i : 446+16*i+16]
		typ := e[4]
		if typ == 0 {
			continue
		}
		name := typeNames[typ]
		if name == "" {
			name = "unknown"
		}
		parts = append(parts, Partition{Index: i + 1, Type: fmt.Sprintf("0x%02x", typ), TypeName: name,
			Start:    int64(binary.LittleEndian.Uint32(e[8:])) * 512,
			Size:     int64(binary.LittleEndian.Uint32(e[12:])) * 512,
			Bootable: e[0] == 0x80})
	}
	return parts, nil
}
