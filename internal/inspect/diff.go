package inspect

import (
	"errors"
	"fmt"

	"github.com/magibake/magibake/internal/compare"
	"github.com/magibake/magibake/internal/manifest"
	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/redact"
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
		r, err := compare.Op(root, boot, op)
		if err == nil && op.Kind == plan.EditCmdline && r.Missing {
			err = errors.New("the image has no cmdline.txt to edit")
		}
		if err != nil {
			return nil, fmt.Errorf("%s: %s on %s: %w", im.Path, op.Path, op.Partition, err)
		}
		out = append(out, change(op, r, p.Secrets))
	}
	if data, err := root.ReadFile(manifest.Path); err == nil {
		if m, err := manifest.Parse(data); err == nil {
			planned := map[string]bool{}
			for _, op := range final {
				planned[op.Partition.String()+op.Path] = true
			}
			for _, e := range m.Files {
				if !planned[e.Partition+e.Path] && e.Path != manifest.Path {
					out = append(out, Change{Status: Dropped, Partition: e.Partition, Kind: e.Kind, Path: e.Path,
						Detail: "written by the last bake, not by today's plan", Current: e.SHA256})
				}
			}
		}
	}
	return out, nil
}

// change words what a re-bake would do about r: the first difference in the
// order a reader cares about (content before mode before owner).
func change(op plan.Op, r compare.Result, secrets *redact.Secrets) Change {
	c := Change{Status: Changed, Partition: op.Partition.String(), Kind: string(op.Kind), Path: op.Path}
	if !op.Secret {
		// A hash of a secret file lets whoever reads it test guesses.
		c.Current, c.Planned = r.CurrentSHA256(), r.PlannedSHA256()
	}
	st := r.Stat
	switch {
	case r.Present:
		c.Status = Delete
	case r.Missing:
		c.Status = Add
	case op.Kind == plan.WriteFile && r.Type:
		c.Detail = fmt.Sprintf("is %v, plan writes a file", st.Mode.Type())
	case r.Target:
		c.Detail = compare.TargetDiffers(op, secrets, st.Target)
	case r.Type || r.Content:
		c.Detail = "content differs"
	case r.Mode:
		c.Detail = fmt.Sprintf("mode %s, plan %s", plan.OctalMode(st.Mode), plan.OctalMode(op.Mode))
	case r.Owner:
		c.Detail = fmt.Sprintf("owner %d:%d, plan %d:%d", st.UID, st.GID, op.UID, op.GID)
	default:
		c.Status = Same
	}
	return c
}
