// Package build runs the whole pipeline for `magibake build`: profiles ->
// plans -> base image -> bake -> output files; the CLI is its only user.
package build

import (
	"context"
	"errors"
	"fmt"
	"io"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/magibake/magibake/internal/bake"
	"github.com/magibake/magibake/internal/bytesize"
	"github.com/magibake/magibake/internal/fault"
	"github.com/magibake/magibake/internal/hostkey"
	"github.com/magibake/magibake/internal/image"
	"github.com/magibake/magibake/internal/manifest"
	"github.com/magibake/magibake/internal/output"
	"github.com/magibake/magibake/internal/overlay"
	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/profile"
	"github.com/magibake/magibake/internal/redact"
	"github.com/magibake/magibake/internal/tempfile"
	"github.com/magibake/magibake/internal/termtext"
)

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

// Run bakes every node of o into its output file, in phases: read the
// inputs, render every plan and check every output path, open the base,
// bake and stage each card, commit them all. Nothing is written before the
// plans and outputs are known good; each card is read back (bake.VerifyCard)
// before any is renamed into place; the cards appear together or not at
// all; new host keys are saved only with them. Errors are *fault.Error with
// their class, and no secret value reaches a log line or an error message.
func Run(ctx context.Context, o Options) (err error) {
	if err := checkArgs(o); err != nil {
		return err
	}
	log := o.Log
	if log == nil {
		log = io.Discard
	}
	in, err := readInputs(o)
	if err != nil {
		return err
	}
	defer func() { err = in.secrets.Error(err) }()
	log = in.secrets.Writer(log)
	if o.OutDir != "" {
		undo, mkErr := makeOutDir(o.OutDir)
		if mkErr != nil {
			return fault.InputError(mkErr)
		}
		defer func() {
			if err != nil { // Run's result
				undo()
			}
		}()
	}
	jobs, err := in.render(o)
	if err != nil {
		return err
	}
	if o.Base == "" {
		return fault.UsageError(noBase(in.cluster, o.Profiles == ""))
	}
	sweepOutputDirs(log, jobs)
	b, err := openBase(ctx, o, in, jobs, log)
	if err != nil {
		return err
	}
	defer b.Close()
	staged, done, err := bakeAll(ctx, o, in, b, jobs, log)
	if err != nil {
		return err
	}
	b.markVerified(o.CacheDir)
	return commit(ctx, in.newKeys, staged, done, log)
}

func checkArgs(o Options) error {
	switch {
	case len(o.Nodes) == 0:
		return fault.UsageError(errors.New("no node given: name one or more nodes of the profiles, e.g. `magibake build caspar`"))
	case o.Output != "" && o.OutDir != "":
		return fault.UsageError(errors.New("give -o FILE or --out-dir DIR, not both"))
	case o.Output != "" && len(o.Nodes) > 1:
		return fault.UsageError(fmt.Errorf("-o names one output file but %d nodes were given; use --out-dir DIR", len(o.Nodes)))
	}
	if o.Output != "" {
		if err := output.CardName(o.Output); err != nil {
			return fault.UsageError(err)
		}
	}
	return nil
}

// inputs is everything a build reads before it opens the base.
type inputs struct {
	cluster *profile.Cluster
	keys    hostkey.Keys
	newKeys *hostkey.Generated // made in memory, saved only with the cards
	trees   []overlay.Tree
	mtime   time.Time // SOURCE_DATE_EPOCH, or zero: then the base's date
	secrets *redact.Secrets
}

func readInputs(o Options) (*inputs, error) {
	mtime, err := MTime(o.Getenv)
	if err != nil {
		return nil, fault.InputError(err)
	}
	c, err := o.Cluster()
	if err != nil {
		return nil, fault.InputError(err)
	}
	keys, gen, err := o.HostKeys(c)
	if err != nil {
		return nil, fault.InputError(err)
	}
	secrets := secretsOf(c, keys)
	trees, err := o.Trees()
	if err != nil {
		return nil, secrets.Error(fault.InputError(err))
	}
	return &inputs{cluster: c, keys: keys, newKeys: gen, trees: trees, mtime: mtime, secrets: secrets}, nil
}

// job is one card: its node's plan and the file it goes to.
type job struct {
	plan *plan.Plan
	out  string
}

// render makes every node's plan and checks its output path, so that a
// mistake in any node's files or paths is found before the base is opened.
func (in *inputs) render(o Options) ([]job, error) {
	var jobs []job
	seen := map[string]bool{}
	for _, n := range o.Nodes {
		if seen[n] {
			return nil, fault.UsageError(fmt.Errorf("node %s given twice", n))
		}
		seen[n] = true
		p, err := overlay.Render(in.cluster, in.keys, n, in.trees, in.mtime)
		if err != nil {
			return nil, fault.InputError(err)
		}
		out := o.Output
		if out == "" {
			out = filepath.Join(o.OutDir, n+".img")
		}
		if err := checkOutput(out, o.Base); err != nil {
			return nil, fault.InputError(err)
		}
		jobs = append(jobs, job{p, out})
	}
	return jobs, nil
}

// sweepOutputDirs removes from the output directories the temp files of
// builds that were killed (kill -9, a power cut) and says so: a
// decompressed base alone is gigabytes. Those of a build still running are
// locked and stay.
func sweepOutputDirs(log io.Writer, jobs []job) {
	patterns := append([]string{image.TempPattern}, output.TempPatterns...)
	swept := map[string]bool{}
	for _, j := range jobs {
		dir := filepath.Dir(j.out)
		if swept[dir] {
			continue
		}
		swept[dir] = true
		for _, r := range tempfile.Sweep(dir, patterns...) {
			fmt.Fprintf(log, "removed %s (%s), left by a build that was killed\n", r.Path, bytesize.Format(r.Size))
		}
	}
}

// base is the opened base image with what the bake needs from it.
type base struct {
	*image.Base
	layout image.Layout
	pinned bool // the profile pins its sha256, and it matched
}

// openBase opens (and if need be decompresses) the base, checks it against
// the profile's pin, reads its partitions and dates the plans.
func openBase(ctx context.Context, o Options, in *inputs, jobs []job, log io.Writer) (_ *base, err error) {
	// Outputs that are all .img.xz copy the base's untouched blocks, so
	// the rest of the base need never be decoded.
	onDemand := true
	for _, j := range jobs {
		if f, _ := output.FormatOf(j.out); f != output.XZ {
			onDemand = false
		}
	}
	pin := in.cluster.Base.SHA256
	checkPin := func(sum string) error {
		if pin != "" && !strings.EqualFold(pin, sum) {
			return fmt.Errorf("base %s: sha256 is %s but the profile pins %s (base.sha256 in cluster.yaml): wrong or corrupt download", o.Base, sum, pin)
		}
		return nil
	}
	start := time.Now()
	update, end := o.progress("decompress " + filepath.Base(o.Base))
	// The pin is checked as soon as the sha256 is known, so a wrong file
	// never enters the cache of decompressed bases nor evicts a good one.
	// The decompressed base's temp file goes beside the last .img output,
	// which is written into it (see adopter), or else beside the first.
	tempDir := filepath.Dir(jobs[0].out)
	if a := adopter(jobs); a >= 0 {
		tempDir = filepath.Dir(jobs[a].out)
	}
	ib, err := image.OpenBaseWith(ctx, o.Base, image.Options{TempDir: tempDir, CacheDir: o.CacheDir,
		OnDemand: onDemand, Progress: update, CheckSum: checkPin, Adoptable: adopter(jobs) >= 0,
		Warn: func(s string) { fmt.Fprintln(log, s) }})
	end()
	if err != nil {
		return nil, fault.InputError(err)
	}
	defer func() {
		if err != nil {
			ib.Close()
		}
	}()
	if err := checkPin(ib.SHA256); err != nil {
		return nil, fault.InputError(err)
	}
	layout, err := image.ReadLayout(ib, ib.Size())
	if err != nil {
		return nil, fault.InputError(fmt.Errorf("base %s: %w", o.Base, err))
	}
	// A card baked before holds its node's files: baked on again, another
	// node's card would carry them, and diff could not tell.
	if node, baked := bake.BakedFor(image.NewDevice(ib, ib.Size()), layout); baked {
		what := "a card magibake baked"
		if node != "" {
			what += " for node " + termtext.Line(node)
		}
		return nil, fault.InputError(fmt.Errorf("base %s is %s (it holds %s), not a Raspberry Pi OS image: give the Raspberry Pi OS .img.xz as the base", o.Base, what, manifest.Path))
	}
	switch {
	case ib.OnDemand:
		fmt.Fprintf(log, "reading %s (%s) block by block: only what the bake changes is decompressed\n", o.Base, bytesize.Format(ib.Size()))
	case ib.Cached:
		fmt.Fprintf(log, "base %s (%s) already decompressed in the cache (%s)\n", o.Base, bytesize.Format(ib.Size()), o.CacheDir)
	case ib.Compressed:
		fmt.Fprintf(log, "decompressed %s (%s) in %.1fs\n", o.Base, bytesize.Format(ib.Size()), time.Since(start).Seconds())
	}
	mtime := in.mtime
	if mtime.IsZero() {
		if mtime, err = bake.BaseTime(image.NewDevice(ib, ib.Size()), layout); err != nil {
			return nil, fault.InputError(fmt.Errorf("base %s: %w", o.Base, err))
		}
	}
	for _, j := range jobs {
		j.plan.MTime = mtime
	}
	return &base{Base: ib, layout: layout, pinned: pin != ""}, nil
}

// adopter is the job whose card takes over a decompressed base's temp
// file (image.Base.Adopt), so that a first build writes the base's bytes
// once: the last .img output, baked after every other card has read the
// base. -1 if there is none.
func adopter(jobs []job) int {
	for i := len(jobs) - 1; i >= 0; i-- {
		if f, _ := output.FormatOf(jobs[i].out); f == output.Raw {
			return i
		}
	}
	return -1
}

// markVerified leaves the cache's marker that every block of an .img.xz
// read on demand has been checked: the changed ones when the bake read
// them, the copied ones decoded in the read-back of the .img.xz (not
// trusted: no pin). A pinned base's copied blocks were not decoded, so it
// earns no marker.
func (b *base) markVerified(cacheDir string) {
	if b.OnDemand && !b.Verified && !b.pinned {
		b.MarkVerified(cacheDir)
	}
}

// bakeAll bakes each job's plan onto its own view of the base and stages
// the card beside its output, read back and verified; done holds the line
// to print for each once it is in place. On error the cards staged so far
// are discarded.
func bakeAll(ctx context.Context, o Options, in *inputs, b *base, jobs []job, log io.Writer) (staged []*output.Staged, done []string, err error) {
	defer func() {
		if err != nil {
			for _, s := range staged {
				s.Discard()
			}
		}
	}()
	info := manifest.Info{Cluster: in.cluster.Name, Version: o.Version, ProfileDigest: in.cluster.Digest, BaseSHA256: b.SHA256}
	last := adopter(jobs)
	for i, j := range jobs {
		s, line, err := bakeOne(ctx, o, b, j, info, i == last, log)
		if err != nil {
			return staged, done, err
		}
		staged = append(staged, s)
		done = append(done, line)
	}
	return staged, done, nil
}

// bakeOne bakes and stages one card; the line says what it became, to be
// printed once it is in place (a card staged, then taken back by an
// interrupt, was never written).
func bakeOne(ctx context.Context, o Options, b *base, j job, info manifest.Info, adopt bool, log io.Writer) (*output.Staged, string, error) {
	start := time.Now()
	dev := image.NewDevice(b, b.Size())
	m, err := bake.Apply(ctx, dev, b.layout, j.plan, info)
	if err != nil {
		if bake.InputProblem(err) {
			return nil, "", fault.InputError(fmt.Errorf("bake %s: base %s: %w", j.plan.Node, o.Base, err))
		}
		return nil, "", fault.Classed(fault.Internal, fmt.Errorf("bake %s: %w", j.plan.Node, err))
	}
	check := func(r io.ReaderAt, size int64) error {
		if o.tamper != nil {
			if err := o.tamper(); err != nil {
				return err
			}
		}
		return bake.VerifyCard(r, size, b.layout, j.plan, m)
	}
	var reuse *output.Reuse
	if file, idx := b.CompressedBlocks(); idx != nil {
		// A pinned base is the published file, whose blocks xz made
		// whole; anything else not decoded in full is decoded in the
		// read-back.
		reuse = &output.Reuse{File: file, Index: idx, Untouched: dev.Untouched, Trusted: b.Verified || b.pinned}
	}
	update, end := o.progress("write " + filepath.Base(j.out))
	s, err := output.Stage(ctx, j.out, dev, dev.Size(), check, output.Options{Reuse: reuse, Progress: update, Adopt: adopt})
	end()
	if err != nil {
		return nil, "", fault.HostOrInternal(fmt.Errorf("bake %s: %w", j.plan.Node, err))
	}
	size := bytesize.Format(dev.Size())
	if f, _ := output.FormatOf(j.out); f != output.Raw {
		n, err := s.FileSize()
		if err != nil {
			s.Discard()
			return nil, "", fault.HostOrInternal(fmt.Errorf("bake %s: %w", j.plan.Node, err))
		}
		size = fmt.Sprintf("%s card in %s", size, bytesize.Format(n))
	}
	return s, fmt.Sprintf("%s: %d operations -> %s (%s, %.1fs)", j.plan.Node, len(j.plan.Ops), j.out, size, time.Since(start).Seconds()), nil
}

// commit saves the host keys made for this build, then puts every staged
// card in place, all or none (output.CommitAll). A build that puts no card
// in place keeps no key: the keys are taken back with the cards, and kept
// only when a card that carries them could not be taken back.
func commit(ctx context.Context, newKeys *hostkey.Generated, staged []*output.Staged, done []string, log io.Writer) error {
	discard := func() {
		for _, s := range staged {
			s.Discard()
		}
	}
	if err := ctx.Err(); err != nil {
		discard()
		return err
	}
	if err := newKeys.Save(); err != nil {
		discard()
		return fault.InputError(fmt.Errorf("host key state: %w", err))
	}
	if err := output.CommitAll(ctx, staged); err != nil {
		if !errors.Is(err, output.ErrNotTakenBack) {
			newKeys.TakeBack()
		}
		return fault.HostOrInternal(err)
	}
	for _, line := range done {
		fmt.Fprintln(log, line)
	}
	if nodes := newKeys.Nodes(); len(nodes) > 0 {
		fmt.Fprintf(log, "generated SSH host keys for %s in %s (keep this directory: it is the nodes' identity)\n",
			strings.Join(nodes, ", "), newKeys.Dir())
	}
	return nil
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
