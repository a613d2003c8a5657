// Package build runs the whole pipeline for the CLI: profiles -> plans ->
// base image -> bake -> output files.
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/magibake/magibake/internal/bake"
	"github.com/magibake/magibake/internal/ext4"
	"github.com/magibake/magibake/internal/fetch"
	"github.com/magibake/magibake/internal/hostkey"
	"github.com/magibake/magibake/internal/image"
	"github.com/magibake/magibake/internal/manifest"
	"github.com/magibake/magibake/internal/output"
	"github.com/magibake/magibake/internal/overlay"
	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/profile"
	"github.com/magibake/magibake/internal/redact"
	"github.com/magibake/magibake/internal/tempfile"
	"github.com/magibake/magibake/overlays"
)

// Sources says where profiles and overlays come from.
type Sources struct {
	Profiles string // directory; "" means the embedded default profiles
	Overlays string // extra overlay directory layered over the embedded one; may be ""
	Getenv   func(string) string
	Log      io.Writer // progress and notes (e.g. generated host keys); nil discards
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

// HostKeys attaches every node's SSH host key to c from the state directory
// beside the profiles (see internal/hostkey). Missing keys are made in
// memory; SaveHostKeys writes them.
func (s Sources) HostKeys(c *profile.Cluster) (*hostkey.Generated, error) {
	dir, err := hostkey.Dir(s.Profiles, s.Getenv)
	if err != nil {
		return nil, err
	}
	return hostkey.Attach(c, dir)
}

// SaveHostKeys writes the keys HostKeys made and says so on log.
func SaveHostKeys(g *hostkey.Generated, log io.Writer) error {
	nodes := g.Nodes()
	if err := g.Save(); err != nil {
		return err
	}
	if len(nodes) > 0 && log != nil {
		fmt.Fprintf(log, "generated SSH host keys for %s in %s (keep this directory: it is the nodes' identity)\n",
			strings.Join(nodes, ", "), g.Dir())
	}
	return nil
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

// Plan renders the plan for one node.
func (s Sources) Plan(node string, mtime time.Time) (*plan.Plan, *profile.Cluster, error) {
	c, err := s.Cluster()
	if err != nil {
		return nil, nil, err
	}
	if _, err := c.Node(node); err != nil {
		return nil, nil, err // before any host key is made
	}
	g, err := s.HostKeys(c)
	if err != nil {
		return nil, nil, err
	}
	if err := SaveHostKeys(g, s.Log); err != nil {
		return nil, nil, err
	}
	trees, err := s.Trees()
	if err != nil {
		return nil, nil, err
	}
	p, err := overlay.Render(c, node, trees, mtime)
	return p, c, clusterSecrets(c).Error(err)
}

// clusterSecrets are the secret values of every node of c (host keys
// attached), to mask in logs and error messages.
func clusterSecrets(c *profile.Cluster) *redact.Secrets {
	var all []string
	for i := range c.Nodes {
		all = append(all, overlay.Secrets(c, &c.Nodes[i]).Values()...)
	}
	return redact.New(all...)
}

// MTime is the timestamp given to every baked file when SOURCE_DATE_EPOCH is
// set. Without it MTime is zero and Run takes the base image's root
// filesystem write time (see BaseTime): either way the same inputs give the
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

// BaseTime is the date baked files get from the base: when its root
// filesystem was last written (for a release image, when it was built), or
// the Unix epoch if the superblock records no date at all.
func BaseTime(dev *image.Device, layout image.Layout) (time.Time, error) {
	root, err := ext4.Open(dev.Section(layout.Root.Start, layout.Root.Size), layout.Root.Size)
	if err != nil {
		return time.Time{}, fmt.Errorf("root partition: %w", err)
	}
	if t := root.LastWrite(); !t.IsZero() {
		return t, nil
	}
	return time.Unix(0, 0).UTC(), nil
}

// Options is one `magibake build` call.
type Options struct {
	Sources
	Nodes   []string
	Output  string // -o: one node's output file
	OutDir  string // --out-dir: <node>.img in this directory
	Base    string
	Version string
	// CacheDir keeps decompressed .img.xz bases by sha256 so later builds
	// skip decompression; "" decompresses beside the output every time.
	CacheDir string
	// Progress, if set, shows how a long phase (decompressing the base,
	// writing a card) advances: it starts a display named what and returns
	// update, which may be called from several goroutines, and end, called
	// once when the phase is over, whether it succeeded or not.
	Progress func(what string) (update func(done, total int64), end func())

	// tamper, set only by tests, runs between the write of a staged output
	// and its read-back, to change the file as a faulty disk or writer would.
	tamper func() error
}

// Run bakes every node of o into its output file. Plans are rendered and
// outputs checked before the base is touched, the base is decompressed once,
// each output is read back through a fresh open of its temp file
// (bake.VerifyCard) before any is renamed into place, and the outputs appear
// together, only when all are complete and verified: on any error or
// cancellation none is written. Errors are *Error with their Class.
func Run(ctx context.Context, o Options) (err error) {
	// No secret value reaches a log line or an error message, whatever
	// wrote it; masks is set once the profile is loaded.
	var masks *redact.Secrets
	defer func() { err = masks.Error(err) }()
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	if len(o.Nodes) == 0 {
		return UsageError(errors.New("no node given: name one or more nodes of the profiles, e.g. `magibake build caspar`"))
	}
	if o.Output != "" && o.OutDir != "" {
		return UsageError(errors.New("give -o FILE or --out-dir DIR, not both"))
	}
	if o.Output != "" && len(o.Nodes) > 1 {
		return UsageError(fmt.Errorf("-o names one output file but %d nodes were given; use --out-dir DIR", len(o.Nodes)))
	}
	mtime, err := MTime(o.Getenv)
	if err != nil {
		return InputError(err)
	}
	c, err := o.Cluster()
	if err != nil {
		return InputError(err)
	}
	// New host keys are saved only with the outputs, below.
	keys, err := o.HostKeys(c)
	if err != nil {
		return InputError(err)
	}
	masks = clusterSecrets(c)
	log = masks.Writer(log)
	trees, err := o.Trees()
	if err != nil {
		return InputError(err)
	}
	type job struct {
		plan *plan.Plan
		out  string
	}
	var jobs []job
	seen := map[string]bool{}
	for _, n := range o.Nodes {
		if seen[n] {
			return UsageError(fmt.Errorf("node %s given twice", n))
		}
		seen[n] = true
		p, err := overlay.Render(c, n, trees, mtime)
		if err != nil {
			return InputError(err)
		}
		out := o.Output
		if out == "" {
			out = filepath.Join(o.OutDir, n+".img")
		}
		if err := checkOutput(out, o.Base); err != nil {
			return InputError(err)
		}
		jobs = append(jobs, job{p, out})
	}
	if o.Base == "" {
		return UsageError(noBase(c))
	}
	// The decompressed base's temp file goes beside the first output.
	swept := map[string]bool{}
	for _, j := range jobs {
		if dir := filepath.Dir(j.out); !swept[dir] {
			swept[dir] = true
			sweep(log, dir)
		}
	}
	// Outputs that are all .img.xz copy the base's untouched blocks, so
	// the rest of the base need never be decoded.
	onDemand := true
	for _, j := range jobs {
		if f, _ := output.FormatOf(j.out); f != output.XZ {
			onDemand = false
		}
	}
	start := time.Now()
	update, end := o.progress("decompress " + filepath.Base(o.Base))
	pin := c.Base.SHA256
	checkPin := func(sum string) error {
		if pin != "" && !strings.EqualFold(pin, sum) {
			return fmt.Errorf("base %s: sha256 is %s but the profile pins %s (base.sha256 in cluster.yaml): wrong or corrupt download", o.Base, sum, pin)
		}
		return nil
	}
	// The pin is checked as soon as the sha256 is known, so a wrong file
	// never enters the cache of decompressed bases nor evicts a good one.
	base, err := image.OpenBaseWith(ctx, o.Base, image.Options{TempDir: filepath.Dir(jobs[0].out), CacheDir: o.CacheDir,
		OnDemand: onDemand, Progress: update, CheckSum: checkPin})
	end()
	if err != nil {
		return InputError(err)
	}
	defer base.Close()
	if err := checkPin(base.SHA256); err != nil {
		return InputError(err)
	}
	layout, err := image.ReadLayout(base, base.Size())
	if err != nil {
		return InputError(fmt.Errorf("base %s: %w", o.Base, err))
	}
	switch {
	case base.OnDemand:
		fmt.Fprintf(log, "reading %s (%s) block by block: only what the bake changes is decompressed\n", o.Base, size(base.Size()))
	case base.Cached:
		fmt.Fprintf(log, "base %s (%s) already decompressed in the cache (%s)\n", o.Base, size(base.Size()), o.CacheDir)
	case base.Compressed:
		fmt.Fprintf(log, "decompressed %s (%s) in %.1fs\n", o.Base, size(base.Size()), time.Since(start).Seconds())
	}
	if mtime.IsZero() {
		if mtime, err = BaseTime(image.NewDevice(base, base.Size()), layout); err != nil {
			return InputError(fmt.Errorf("base %s: %w", o.Base, err))
		}
	}
	for _, j := range jobs {
		j.plan.MTime = mtime
	}
	info := manifest.Info{Version: o.Version, ProfileDigest: c.Digest, BaseSHA256: base.SHA256}
	var staged []*output.Staged
	defer func() {
		for _, s := range staged {
			s.Discard()
		}
	}()
	for _, j := range jobs {
		t := time.Now()
		dev := image.NewDevice(base, base.Size())
		m, err := bake.Apply(ctx, dev, layout, j.plan, info)
		if err != nil {
			cls := bakeClass(err)
			if cls == Input {
				// The base's file systems: corrupt, unsupported, or too
				// full for this plan.
				err = fmt.Errorf("base %s: %w", o.Base, err)
			}
			return classed(cls, fmt.Errorf("bake %s: %w", j.plan.Node, err))
		}
		check := func(r io.ReaderAt, size int64) error {
			if o.tamper != nil {
				if err := o.tamper(); err != nil {
					return err
				}
			}
			return bake.VerifyCard(r, size, layout, j.plan, m)
		}
		var reuse *output.Reuse
		if file, idx := base.XZ(); idx != nil {
			// A pinned base is the published file, whose blocks xz made
			// whole; anything else not decoded in full is decoded in the
			// read-back.
			reuse = &output.Reuse{File: file, Index: idx, Untouched: dev.Untouched, Trusted: base.Verified || pin != ""}
		}
		update, end := o.progress("write " + filepath.Base(j.out))
		s, err := output.Stage(ctx, j.out, dev, dev.Size(), check, output.Options{Reuse: reuse, Progress: update})
		end()
		if err != nil {
			cls := Internal
			if hostInput(err) {
				cls = Input
			}
			return classed(cls, fmt.Errorf("bake %s: %w", j.plan.Node, err))
		}
		staged = append(staged, s)
		fmt.Fprintf(log, "%s: %d operations -> %s (%s, %.1fs)\n", j.plan.Node, len(j.plan.Ops), j.out, size(dev.Size()), time.Since(t).Seconds())
	}
	if base.OnDemand && !base.Verified && pin == "" && len(staged) > 0 {
		// Every block is now checked: the changed ones when the bake read
		// them, the copied ones decoded in the read-back of the .img.xz
		// (not trusted: no pin). A pinned base's copied blocks were not
		// decoded, so it earns no marker.
		base.MarkVerified(o.CacheDir)
	}
	if err := SaveHostKeys(keys, log); err != nil {
		return InputError(fmt.Errorf("host key state: %w", err))
	}
	err = output.CommitAll(ctx, staged)
	staged = nil // committed or discarded by CommitAll
	if err != nil {
		cls := Internal
		if hostInput(err) {
			cls = Input
		}
		return classed(cls, err)
	}
	return nil
}

// sweep removes from dir the temp files of builds that were
// killed (kill -9, a power cut) and says so: a decompressed base alone is
// gigabytes. Those of a build still running are locked and stay.
func sweep(log io.Writer, dir string) {
	patterns := append([]string{image.TempPattern}, output.TempPatterns...)
	for _, r := range tempfile.Sweep(dir, patterns...) {
		fmt.Fprintf(log, "removed %s (%s), left by a build that was killed\n", r.Path, size(r.Size))
	}
}

// progress is o.Progress, or no display; update never goes backwards even
// when goroutines report out of order.
func (o Options) progress(what string) (update func(done, total int64), end func()) {
	if o.Progress == nil {
		return nil, func() {}
	}
	up, end := o.Progress(what)
	var mu sync.Mutex
	var last int64
	return func(done, total int64) {
		mu.Lock()
		defer mu.Unlock()
		if done > last {
			last = done
			up(done, total)
		}
	}, end
}

func checkOutput(out, base string) error {
	if err := output.Supported(out); err != nil {
		return err
	}
	dir := filepath.Dir(out)
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return fmt.Errorf("output %s: directory %s does not exist", out, dir)
	}
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return fmt.Errorf("output %s: is a directory", out)
	}
	if base != "" {
		a, errA := os.Stat(out)
		b, errB := os.Stat(base)
		same := errA == nil && errB == nil && os.SameFile(a, b)
		if absOut, err := filepath.Abs(out); err == nil {
			if absBase, err := filepath.Abs(base); err == nil && absOut == absBase {
				same = true
			}
		}
		if same {
			return fmt.Errorf("output %s: is the base image; the base is never overwritten, choose another output", out)
		}
	}
	// Find a read-only or unwritable directory now, before the base is
	// decompressed into it, with the real test: creating a file.
	probe, err := os.CreateTemp(dir, ".magibake-probe-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("output %s: directory %s is not writable: %w", out, dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return nil
}

func noBase(c *profile.Cluster) error {
	switch {
	case c.Base.URL != "" && c.Base.SHA256 == "":
		return fmt.Errorf("no --base given: download %s (sha256 in %s.sha256) and pass it with --base FILE", c.Base.URL, c.Base.URL)
	case c.Base.URL != "":
		return fmt.Errorf("no --base given: download %s (sha256 %s) and pass it with --base FILE", c.Base.URL, c.Base.SHA256)
	}
	return errors.New("no --base given and cluster.yaml pins no base image; " + fetch.PinHint)
}

func size(n int64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.1f GiB", float64(n)/(1<<30))
	default:
		return fmt.Sprintf("%d MiB", n>>20)
	}
}
