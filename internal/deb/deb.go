// Package deb reads the control fields of Debian packages (.deb files) and
// picks, from a directory of them, the ones a set of packages needs: each
// node's first boot installs its own packages from the profile's
// offline_debs, not every .deb there.
package deb

import (
	"archive/tar"
	"bufio"
	"bytes"
	"compress/gzip"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/ulikunitz/xz"
)

// Control is what a .deb's control file says about its package.
type Control struct {
	Package  string
	Provides []string
	// Depends are Pre-Depends and Depends, each a list of alternatives.
	Depends [][]string
}

// File is one .deb of a directory.
type File struct {
	Path string
	Control
}

// ReadDir reads the control of every *.deb in dir, sorted by file name.
func ReadDir(dir string) ([]File, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.deb"))
	if err != nil {
		return nil, err
	}
	sort.Strings(paths)
	var out []File
	seen := map[string]string{}
	for _, p := range paths {
		c, err := ReadControl(p)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
		// apt would be given both and refuse the install: which one the
		// node should get is the owner's to say.
		if first, dup := seen[c.Package]; dup {
			return nil, fmt.Errorf("%s and %s are both package %s: keep one", filepath.Base(first), filepath.Base(p), c.Package)
		}
		seen[c.Package] = p
		out = append(out, File{Path: p, Control: c})
	}
	return out, nil
}

// ReadControl reads the control file of the .deb at path.
func ReadControl(path string) (Control, error) {
	f, err := os.Open(path)
	if err != nil {
		return Control{}, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	magic := make([]byte, 8)
	if _, err := io.ReadFull(r, magic); err != nil || string(magic) != "!<arch>\n" {
		return Control{}, errors.New("not a .deb (no ar archive header)")
	}
	for {
		hdr := make([]byte, 60)
		if _, err := io.ReadFull(r, hdr); err != nil {
			return Control{}, errors.New("not a .deb: no control.tar member")
		}
		name := strings.TrimRight(strings.TrimSpace(string(hdr[:16])), "/")
		size, err := strconv.ParseInt(strings.TrimSpace(string(hdr[48:58])), 10, 64)
		if err != nil || size < 0 {
			return Control{}, fmt.Errorf("not a .deb: bad size of ar member %q", name)
		}
		body := io.LimitReader(r, size)
		if strings.HasPrefix(name, "control.tar") {
			return readControlTar(name, body)
		}
		if _, err := io.Copy(io.Discard, body); err != nil {
			return Control{}, err
		}
		if size%2 == 1 {
			if _, err := r.ReadByte(); err != nil {
				return Control{}, err
			}
		}
	}
}

func readControlTar(name string, body io.Reader) (Control, error) {
	var tr io.Reader
	switch name {
	case "control.tar":
		tr = body
	case "control.tar.gz":
		z, err := gzip.NewReader(body)
		if err != nil {
			return Control{}, fmt.Errorf("%s: %w", name, err)
		}
		tr = z
	case "control.tar.xz":
		z, err := xz.NewReader(body)
		if err != nil {
			return Control{}, fmt.Errorf("%s: %w", name, err)
		}
		tr = z
	default:
		return Control{}, fmt.Errorf("%s: compression not supported (Debian's .debs use xz or gzip)", name)
	}
	t := tar.NewReader(tr)
	for {
		h, err := t.Next()
		if err != nil {
			return Control{}, fmt.Errorf("%s: no control file: %v", name, err)
		}
		if strings.TrimPrefix(h.Name, "./") != "control" {
			continue
		}
		data, err := io.ReadAll(io.LimitReader(t, 1<<20))
		if err != nil {
			return Control{}, fmt.Errorf("%s: %w", name, err)
		}
		return ParseControl(data)
	}
}

// ParseControl reads the fields of one control paragraph.
func ParseControl(data []byte) (Control, error) {
	fields := map[string]string{}
	last := ""
	for _, line := range strings.Split(string(bytes.ReplaceAll(data, []byte("\r\n"), []byte("\n"))), "\n") {
		if line == "" {
			continue
		}
		if (line[0] == ' ' || line[0] == '\t') && last != "" {
			fields[last] += " " + strings.TrimSpace(line)
			continue
		}
		k, v, ok := strings.Cut(line, ":")
		if !ok {
			continue
		}
		last = strings.ToLower(strings.TrimSpace(k))
		fields[last] = strings.TrimSpace(v)
	}
	c := Control{Package: fields["package"]}
	if c.Package == "" {
		return Control{}, errors.New("control file has no Package field")
	}
	for _, alts := range relations(fields["provides"]) {
		c.Provides = append(c.Provides, alts...)
	}
	c.Depends = append(relations(fields["pre-depends"]), relations(fields["depends"])...)
	return c, nil
}

// relations splits a relation field into its package names, each a list of
// alternatives, without versions or architecture qualifiers.
func relations(s string) [][]string {
	var out [][]string
	for _, group := range strings.Split(s, ",") {
		var alts []string
		for _, alt := range strings.Split(group, "|") {
			name := strings.TrimSpace(alt)
			if i := strings.IndexAny(name, " (["); i >= 0 {
				name = name[:i]
			}
			name, _, _ = strings.Cut(name, ":")
			if name != "" {
				alts = append(alts, name)
			}
		}
		if len(alts) > 0 {
			out = append(out, alts)
		}
	}
	return out
}

// Needed returns the files of debs that installing want takes: the .debs of
// the packages named, and of what they depend on, transitively, as far as
// debs holds them (the rest is the base's). Of alternatives, the first that
// debs holds (by name, else by what a .deb provides) is taken, as apt
// prefers the first. In the order of debs.
func Needed(debs []File, want []string) []File {
	byName, byProvides := map[string]int{}, map[string]int{}
	for i, f := range debs {
		byName[f.Package] = i
		for _, p := range f.Provides {
			if _, dup := byProvides[p]; !dup {
				byProvides[p] = i
			}
		}
	}
	held := func(name string) (int, bool) {
		if i, ok := byName[name]; ok {
			return i, true
		}
		i, ok := byProvides[name]
		return i, ok
	}
	take := make([]bool, len(debs))
	var queue []int
	add := func(name string) bool {
		i, ok := held(name)
		if ok && !take[i] {
			take[i] = true
			queue = append(queue, i)
		}
		return ok
	}
	for _, name := range want {
		add(name)
	}
	for len(queue) > 0 {
		i := queue[0]
		queue = queue[1:]
		for _, alts := range debs[i].Depends {
			for _, name := range alts {
				if add(name) {
					break
				}
			}
		}
	}
	var out []File
	for i, f := range debs {
		if take[i] {
			out = append(out, f)
		}
	}
	return out
}
