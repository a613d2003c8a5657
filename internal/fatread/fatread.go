// Package fatread holds the reads of a go-diskfs v1.9.4 FAT32 filesystem that
// its own API gets wrong; the writer (internal/bake) and the card-vs-plan
// comparison (internal/compare) both go through it.
package fatread

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"strings"

	"github.com/diskfs/go-diskfs/filesystem/fat32"
)

// Exists looks p up case-insensitively, as FAT does; go-diskfs's Stat
// compares names case-sensitively and misses e.g. "ssh" stored as "SSH".
func Exists(fsys *fat32.FileSystem, p string) (fs.FileInfo, bool) {
	// ReadDir wants io/fs paths ("." for the root), unlike the rest of go-diskfs's FAT API.
	dir := strings.TrimPrefix(path.Dir(p), "/")
	if dir == "" {
		dir = "."
	}
	entries, err := fsys.ReadDir(dir)
	if err != nil {
		return nil, false
	}
	for _, e := range entries {
		if strings.EqualFold(e.Name(), path.Base(p)) {
			fi, err := e.Info()
			return fi, err == nil
		}
	}
	return nil, false
}

// ReadFile reads a whole file in one Read call from offset 0. go-diskfs
// v1.9.4's Read, when it starts inside a cluster, reads to the cluster's end
// even past the file's end, so a chunked read (io.ReadAll, os.ReadFile
// style) returns garbage after the content of any file between 513 bytes
// and one cluster (measured: 719 bytes read back as 768).
func ReadFile(fsys *fat32.FileSystem, name string) ([]byte, error) {
	f, err := fsys.OpenFile(name, os.O_RDONLY)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return nil, err
	}
	buf := make([]byte, fi.Size())
	if len(buf) == 0 {
		return buf, nil
	}
	n, err := f.Read(buf)
	if err != nil && !errors.Is(err, io.EOF) {
		return nil, err
	}
	if int64(n) != fi.Size() {
		return nil, fmt.Errorf("read %d of %d bytes", n, fi.Size())
	}
	return buf, nil
}
