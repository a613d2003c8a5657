package inspect

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"

	"github.com/diskfs/go-diskfs/filesystem/fat32"

	"github.com/magibake/magibake/internal/bake"
	"github.com/magibake/magibake/internal/ext4"
	"github.com/magibake/magibake/internal/fatfs"
	"github.com/magibake/magibake/internal/plan"
)

// Status says what a re-bake would do to one path.
type Status string

// The statuses Diff reports.
const (
	Same    Status = "same"    // the image already holds what the plan writes
	Add     Status = "add"     // the plan writes a path the image lacks
	Changed Status = "change"  // content, target, mode or owner differ
	Delete  Status = "delete"  // the plan removes a path the image has
	Dropped Status = "dropped" // the image's manifest lists it, today's plan does not
)

// Change is one path compared.
type Change struct {
	Status    Status `json:"status"`
	Partition string `json:"partition"`
	Kind      string `json:"kind"`
	Path      string `json:"path"`
	Detail    string `json:"detail,omitempty"` // what differs
	Current   string `json:"current_sha256,omitempty"`
	Planned   string `json:"planned_sha256,omitempty"`
}

// Diff compares the last operation of p on each path with what the image
// holds, and lists the files the image's manifest records that p no longer
// writes. The manifest itself is left out: it changes with every bake.
func (im *Image) Diff(p *plan.Plan) ([]Change, error) {
	root, err := im.Root()
	if err != nil {
		return nil, err
	}
	boot, err := im.Boot()
	if err != nil {
		return nil, err
	}
	final := p.Final()
	var out []Change
	for _, op := range final {
		var c Change
		if op.Partition == plan.Root {
			c, err = compareExt4(root, op)
		} else {
			c, err = compareFAT(boot, op)
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s on %s: %w", im.Path, op.Path, op.Partition, err)
		}
		c.Partition, c.Kind, c.Path = op.Partition.String(), string(op.Kind), op.Path
		if op.Secret {
			// A hash of a secret file lets whoever reads it test guesses.
			c.Current, c.Planned = "", ""
			if op.Kind == plan.Symlink && c.Detail != "" {
				c.Detail = "secret link target differs"
			}
		}
		out = append(out, c)
	}
	if data, err := root.ReadFile(bake.ManifestPath); err == nil {
		var m bake.Manifest
		if json.Unmarshal(data, &m) == nil {
			planned := map[string]bool{}
			for _, op := range final {
				planned[op.Partition.String()+op.Path] = true
			}
			for _, e := range m.Files {
				if !planned[e.Partition+e.Path] && e.Path != bake.ManifestPath {
					out = append(out, Change{Status: Dropped, Partition: e.Partition, Kind: e.Kind, Path: e.Path,
						Detail: "written by the last bake, not by today's plan", Current: e.SHA256})
				}
			}
		}
	}
	return out, nil
}

func sum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

const permBits = fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky

func compareExt4(fsys *ext4.FS, op plan.Op) (Change, error) {
	st, err := fsys.Lstat(op.Path)
	exists := err == nil
	if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return Change{}, err
	}
	switch op.Kind {
	case plan.Remove:
		if exists {
			return Change{Status: Delete}, nil
		}
		return Change{Status: Same}, nil
	case plan.WriteFile:
		c := Change{Planned: sum(op.Content)}
		if !exists {
			c.Status = Add
			return c, nil
		}
		if !st.Mode.IsRegular() {
			c.Status, c.Detail = Changed, fmt.Sprintf("is %v, plan writes a file", st.Mode.Type())
			return c, nil
		}
		data, err := fsys.ReadFile(op.Path)
		if err != nil {
			return Change{}, err
		}
		c.Current = sum(data)
		return attrs(c, c.Current != c.Planned, st, op), nil
	case plan.Mkdir:
		if !exists {
			return Change{Status: Add}, nil
		}
		return attrs(Change{}, !st.Mode.IsDir(), st, op), nil
	case plan.Symlink:
		if !exists {
			return Change{Status: Add}, nil
		}
		c := attrs(Change{}, st.Mode&fs.ModeSymlink == 0 || st.Target != op.Target, st, op)
		if c.Status == Changed && st.Target != op.Target {
			c.Detail = fmt.Sprintf("points to %q, plan %q", st.Target, op.Target)
		}
		return c, nil
	}
	return Change{}, fmt.Errorf("operation %s is not supported on the root partition", op.Kind)
}

// attrs finishes a comparison of an existing path: content (differs), then
// mode and owner.
func attrs(c Change, differs bool, st ext4.Stat, op plan.Op) Change {
	c.Status = Same
	switch {
	case differs:
		c.Status, c.Detail = Changed, "content differs"
	case op.Kind != plan.Symlink && st.Mode&permBits != op.Mode&permBits:
		c.Status, c.Detail = Changed, fmt.Sprintf("mode %s, plan %s", plan.OctalMode(st.Mode), plan.OctalMode(op.Mode))
	case st.UID != op.UID || st.GID != op.GID:
		c.Status, c.Detail = Changed, fmt.Sprintf("owner %d:%d, plan %d:%d", st.UID, st.GID, op.UID, op.GID)
	}
	return c
}

func compareFAT(fsys *fat32.FileSystem, op plan.Op) (Change, error) {
	fi, exists := fatfs.Exists(fsys, op.Path)
	switch op.Kind {
	case plan.Remove:
		if exists {
			return Change{Status: Delete}, nil
		}
		return Change{Status: Same}, nil
	case plan.Mkdir:
		if exists && fi.IsDir() {
			return Change{Status: Same}, nil
		}
		return Change{Status: Add}, nil
	case plan.WriteFile, plan.EditCmdline:
		if !exists || fi.IsDir() {
			if op.Kind == plan.EditCmdline {
				return Change{}, errors.New("the image has no cmdline.txt to edit")
			}
			return Change{Status: Add, Planned: sum(op.Content)}, nil
		}
		var data []byte
		if fi.Size() > 0 {
			var err error
			if data, err = fatfs.ReadFile(fsys, op.Path); err != nil {
				return Change{}, err
			}
		}
		want := op.Content
		if op.Kind == plan.EditCmdline {
			// An edit keeps what it does not name, so compare the card's line
			// with itself edited again.
			want = []byte(plan.ApplyCmdline(string(data), op.CmdlineSet, op.CmdlineRemove))
		}
		c := Change{Current: sum(data), Planned: sum(want), Status: Same}
		if !bytes.Equal(data, want) {
			c.Status, c.Detail = Changed, "content differs"
		}
		return c, nil
	}
	return Change{}, fmt.Errorf("operation %s is not supported on the boot partition", op.Kind)
}
