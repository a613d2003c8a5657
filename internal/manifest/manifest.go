// Package manifest holds the record of a bake that every card carries at
// Path: bake writes it, inspect (and any other reader of cards) parses it.
package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"time"

	"github.com/magibake/magibake/internal/plan"
)

// Path is where the manifest lives on the root partition.
const Path = "/etc/magibake/manifest.json"

// Info is what the manifest records besides the files.
type Info struct {
	Cluster       string // the profile's cluster name
	Version       string // magibake version
	ProfileDigest string // sha256 of the profile files
	BaseSHA256    string // sha256 of the base image file as given
}

// Manifest is the record baked into every card at Path.
type Manifest struct {
	Tool    string `json:"tool"`
	Version string `json:"version"`
	Node    string `json:"node"`
	// Cluster is empty in cards baked before magibake recorded it.
	Cluster       string    `json:"cluster,omitempty"`
	ProfileDigest string    `json:"profile_digest"`
	BaseSHA256    string    `json:"base_sha256"`
	BakedAt       time.Time `json:"baked_at"` // the plan's fixed timestamp, not the wall clock
	Files         []Entry   `json:"files"`
}

// Entry is one operation of the plan as applied.
type Entry struct {
	Partition string `json:"partition"`
	Kind      string `json:"kind"`
	Path      string `json:"path"`
	Mode      string `json:"mode,omitempty"`
	UID       uint32 `json:"uid"`
	GID       uint32 `json:"gid"`
	Size      int    `json:"size,omitempty"`
	SHA256    string `json:"sha256,omitempty"` // of the content written; never the content itself
	// Secret marks content that holds a secret: it has no sha256 here, which
	// would let whoever reads the manifest test guesses of the secret.
	Secret bool   `json:"secret,omitempty"`
	Target string `json:"target,omitempty"`
	Source string `json:"source,omitempty"`
}

// New records every operation of p, as bake is about to apply it.
func New(p *plan.Plan, info Info) *Manifest {
	m := &Manifest{Tool: "magibake", Version: info.Version, Node: p.Node, Cluster: info.Cluster, ProfileDigest: info.ProfileDigest,
		BaseSHA256: info.BaseSHA256, BakedAt: p.MTime.UTC(), Files: []Entry{}}
	for _, op := range p.Ops {
		e := Entry{Partition: op.Partition.String(), Kind: string(op.Kind), Path: op.Path,
			UID: op.UID, GID: op.GID, Target: op.Target, Source: op.Source}
		if op.Kind == plan.WriteFile || op.Kind == plan.Mkdir {
			e.Mode = plan.OctalMode(op.Mode)
		}
		if op.Kind == plan.WriteFile {
			e.Size = len(op.Content)
			if op.Secret {
				e.Secret = true
			} else {
				sum := sha256.Sum256(op.Content)
				e.SHA256 = hex.EncodeToString(sum[:])
			}
		}
		if op.Secret && op.Kind != plan.WriteFile {
			e.Secret, e.Target = true, "" // a secret in a link target
		}
		m.Files = append(m.Files, e)
	}
	return m
}

// Op is the plan operation that writes m itself, so that it is applied and
// verified like any other file.
func (m *Manifest) Op() (plan.Op, error) {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return plan.Op{}, fmt.Errorf("manifest: %w", err)
	}
	return plan.Op{Partition: plan.Root, Kind: plan.WriteFile, Path: Path, Mode: 0o644,
		Content: append(data, '\n'), Source: "magibake"}, nil
}

// With is p followed by the operation that writes m: everything a bake
// writes, and so everything a verification reads back.
func With(p *plan.Plan, m *Manifest) (*plan.Plan, error) {
	mop, err := m.Op()
	if err != nil {
		return nil, err
	}
	ops := append(append(make([]plan.Op, 0, len(p.Ops)+1), p.Ops...), mop)
	return &plan.Plan{Node: p.Node, Ops: ops, MTime: p.MTime}, nil
}

// Parse reads the manifest a card holds at Path.
func Parse(data []byte) (*Manifest, error) {
	var m Manifest
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf("%s is not a magibake manifest: %w", Path, err)
	}
	return &m, nil
}
