package build

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"time"

	"github.com/magibake/magibake/internal/hostkey"
	"github.com/magibake/magibake/internal/overlay"
	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/profile"
	"github.com/magibake/magibake/internal/redact"
	"github.com/magibake/magibake/overlays"
)

// Sources says where profiles and overlays come from. Reading them never
// writes anything: only Run saves host keys, with its outputs.
type Sources struct {
	Profiles string // directory; "" means the embedded default profiles
	Overlays string // extra overlay directory layered over the embedded one; may be ""
	Getenv   func(string) string
	Log      io.Writer // progress and notes; nil discards
}

// Cluster loads and validates the profiles.
func (s Sources) Cluster() (*profile.Cluster, error) {
	opt := profile.Options{Getenv: s.Getenv}
	if s.Profiles == "" {
		return profile.Default(opt)
	}
	if st, err := os.Stat(s.Profiles); err != nil || !st.IsDir() {
		return nil, fmt.Errorf("profiles %s: not a directory", s.Profiles)
	}
	return profile.LoadDir(s.Profiles, opt)
}

// HostKeys reads every node's SSH host key from the state directory beside
// the profiles (see internal/hostkey). Keys that do not exist yet are made
// in memory and listed in the Generated; nothing is written.
func (s Sources) HostKeys(c *profile.Cluster) (hostkey.Keys, *hostkey.Generated, error) {
	dir, err := hostkey.Dir(s.Profiles, s.Getenv)
	if err != nil {
		return nil, nil, err
	}
	return hostkey.Load(c, dir)
}

// Trees returns the overlay trees in the order they apply.
func (s Sources) Trees() ([]overlay.Tree, error) {
	trees := []overlay.Tree{{FS: overlays.FS, Display: "overlays (embedded)", Origin: "magibake"}}
	if s.Overlays != "" {
		if st, err := os.Stat(s.Overlays); err != nil || !st.IsDir() {
			return nil, fmt.Errorf("overlays %s: not a directory", s.Overlays)
		}
		trees = append(trees, overlay.Tree{FS: os.DirFS(s.Overlays), Display: s.Overlays, Origin: "--overlays"})
	}
	return trees, nil
}

// Plan renders the plan for one node, as `magibake plan` and `diff` show
// it, without writing anything: a node whose host key does not exist yet
// gets one made for this plan alone, and Log says so.
func (s Sources) Plan(node string, mtime time.Time) (*plan.Plan, *profile.Cluster, error) {
	c, err := s.Cluster()
	if err != nil {
		return nil, nil, err
	}
	if _, err := c.Node(node); err != nil {
		return nil, nil, err
	}
	keys, gen, err := s.HostKeys(c)
	if err != nil {
		return nil, nil, err
	}
	if s.Log != nil && slices.Contains(gen.Nodes(), node) {
		fmt.Fprintf(s.Log, "note: %s has no SSH host key in %s yet: this plan shows one made for it alone; `magibake build` makes the key the node keeps\n", node, gen.Dir())
	}
	p, err := s.PlanWith(c, keys, node, mtime)
	return p, c, err
}

// PlanWith renders node's plan from a cluster and host keys already
// loaded, for a command that renders many nodes (check): the profiles and
// the host key state are read once, not once per node.
func (s Sources) PlanWith(c *profile.Cluster, keys hostkey.Keys, node string, mtime time.Time) (*plan.Plan, error) {
	trees, err := s.Trees()
	if err != nil {
		return nil, err
	}
	p, err := overlay.Render(c, keys, node, trees, mtime)
	if err != nil {
		return nil, secretsOf(c, keys).Error(err)
	}
	return p, nil
}

// secretsOf are the secret values of every node of c, to mask in logs and
// error messages.
func secretsOf(c *profile.Cluster, keys hostkey.Keys) *redact.Secrets {
	var all []string
	for _, n := range c.Nodes {
		all = append(all, overlay.Secrets(c, keys[n.Hostname]).Values()...)
	}
	return redact.New(all...)
}

// MTime is the timestamp given to every baked file when SOURCE_DATE_EPOCH is
// set. Without it MTime is zero and Run takes the base image's root
// filesystem write time (bake.BaseTime): either way the same inputs give the
// same card, byte for byte.
func MTime(getenv func(string) string) (time.Time, error) {
	if getenv == nil {
		getenv = os.Getenv
	}
	if v := getenv("SOURCE_DATE_EPOCH"); v != "" {
		sec, err := strconv.ParseInt(v, 10, 64)
		if err != nil || sec < 0 {
			return time.Time{}, fmt.Errorf("SOURCE_DATE_EPOCH=%q: want seconds since 1970", v)
		}
		return time.Unix(sec, 0).UTC(), nil
	}
	return time.Time{}, nil
}
