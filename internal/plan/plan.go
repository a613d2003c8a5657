// Package plan holds the Plan: the list of filesystem operations that turns a
// base image into one node's card. It is the seam between the cluster-aware
// front half (profile, overlay) and the image-aware back half (bake).
package plan

import (
	"fmt"
	"io/fs"
	"path"
	"time"

	"github.com/magibake/magibake/internal/redact"
)

// Partition names the partition an operation applies to.
type Partition int

const (
	// Boot is the FAT32 boot partition (p1), mounted at /boot/firmware on the Pi.
	Boot Partition = 1
	// Root is the ext4 root partition (p2).
	Root Partition = 2
)

// String returns the short name used in plan listings ("boot" or "root").
func (p Partition) String() string {
	switch p {
	case Boot:
		return "boot"
	case Root:
		return "root"
	}
	return "p?"
}

// Kind is the kind of one operation.
type Kind string

const (
	// WriteFile creates or replaces a regular file (parents are created).
	WriteFile Kind = "file"
	// Mkdir creates a directory and any missing parents.
	Mkdir Kind = "dir"
	// Symlink creates or replaces a symbolic link.
	Symlink Kind = "symlink"
	// Remove deletes a file or symlink if present (absent is not an error).
	Remove Kind = "remove"
	// EditCmdline edits the one-line kernel command line file in place.
	EditCmdline Kind = "cmdline"
	// EditConfig adds lines to the firmware's config.txt (ApplyConfig).
	EditConfig Kind = "config"
)

// Op is one operation on one partition. Paths are absolute within the
// partition ("/etc/hostname" on Root, "/cmdline.txt" on Boot).
type Op struct {
	Partition Partition
	Kind      Kind
	Path      string
	Mode      fs.FileMode // permission bits only (and setuid/setgid/sticky)
	UID, GID  uint32
	Content   []byte // WriteFile
	Target    string // Symlink
	// EditCmdline: words whose key (text before '=') matches a key in Remove
	// are dropped, then every word in Set replaces a word with the same key
	// or is appended.
	CmdlineSet    []string
	CmdlineRemove []string
	// EditConfig: the lines ApplyConfig adds, in their sections.
	ConfigLines []ConfigLine
	// Secret marks content that must be masked when the plan is printed.
	Secret bool
	// Source says where the operation came from (overlay template path).
	Source string
}

// Plan is everything one node's card needs, in the order it is applied.
type Plan struct {
	Node  string
	Ops   []Op
	MTime time.Time // timestamp given to every file written
	// Secrets are the secret values the plan's files may hold: masked
	// wherever the plan is shown to people. nil masks nothing.
	Secrets *redact.Secrets
	// Expects are files the base's root must hold for the plan to work,
	// checked before anything is written.
	Expects []Expect
}

// Expect is a file (or link) the base's root partition must hold, with a
// line matching Contains (a regular expression, matched at a line's first
// non-blank character) when it is not empty; Why is the one-line error when
// it does not, naming the profile's file and line.
type Expect struct {
	Path, Contains, Why string
}

// Final returns the last operation on each partition and path of p, in the
// order the paths first appear: what a card holds after p, path by path.
func (p *Plan) Final() []Op {
	type key struct {
		part Partition
		path string
	}
	at := map[key]int{}
	var out []Op
	for _, op := range p.Ops {
		// A later operation under a removed path makes it again, as a
		// directory the plan does not describe: its removal is no longer
		// what the card holds.
		for dir := path.Dir(op.Path); dir != "/" && dir != "."; dir = path.Dir(dir) {
			if i, seen := at[key{op.Partition, dir}]; seen && out[i].Kind == Remove {
				out[i].Kind = implicitDir
			}
		}
		k := key{op.Partition, op.Path}
		if i, seen := at[k]; seen {
			out[i] = op
			continue
		}
		at[k] = len(out)
		out = append(out, op)
	}
	kept := out[:0]
	for _, op := range out {
		if op.Kind != implicitDir {
			kept = append(kept, op)
		}
	}
	return kept
}

// implicitDir marks, inside Final, a removed path made again as a parent.
const implicitDir Kind = "implicit dir"

// OctalMode renders permission bits the way chmod takes them ("0644",
// "4755"), including setuid, setgid and sticky.
func OctalMode(m fs.FileMode) string {
	v := uint32(m.Perm())
	if m&fs.ModeSetuid != 0 {
		v |= 0o4000
	}
	if m&fs.ModeSetgid != 0 {
		v |= 0o2000
	}
	if m&fs.ModeSticky != 0 {
		v |= 0o1000
	}
	return fmt.Sprintf("%04o", v)
}
