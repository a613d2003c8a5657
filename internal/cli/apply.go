package cli

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/spf13/cobra"

	"github.com/magibake/magibake/internal/apply"
	"github.com/magibake/magibake/internal/build"
	"github.com/magibake/magibake/internal/check"
	"github.com/magibake/magibake/internal/fault"
	"github.com/magibake/magibake/internal/manifest"
	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/profile"
	"github.com/magibake/magibake/internal/remote"
	"github.com/magibake/magibake/internal/termtext"
)

func newApply() *cobra.Command {
	var (
		s         build.Sources
		addresses []string
		sshConfig string
		via       string
		all, yes  bool
	)
	cmd := &cobra.Command{
		Use:   "apply NODE...|--all",
		Short: "Bring running nodes' files to today's plan over SSH, without reflashing",
		Long: `apply logs in to each named node (or every node with --all) as check does,
compares every file today's plan writes with the node's, and lists what
differs, when each change takes effect and what it needs: "now" (written,
then what reads it is reloaded or restarted: dhcpd.conf after dhcpd -t
accepts it, NetworkManager's profiles reloaded, the NAT rules restored,
units reloaded and restarted if they run), "after a reboot" (written; read at
boot only: config.txt, boot-time units), or "takes effect when reflashed"
(not written: what only a card's first boot reads, such as userconf.txt, the
cloud-init seed, cmdline.txt and the first-boot unit). Secrets are compared,
never printed.

Nothing changes before you confirm: type yes on the terminal, or give
--yes. Each file is then written beside its place, checked, fsynced and
renamed into place; what it replaces is kept on the node under
/var/lib/magibake/apply/TIME, with an undo script. A check that refuses a
file changes nothing; a command that fails after the files are in place
(a restart) puts that node's previous files back and runs the same
commands again; the other nodes go on. The node's manifest records what
it holds.

A node whose host key is not the baked one is refused before anything is
sent; one whose hostname or manifest names another node or cluster, after
the read-only look and before anything is written. A run that would move
the cluster address of a worker numbered in hostname order (no address:,
so adding or removing a worker moves others) is refused before anything
is written, exit 3, naming the address to pin.
--via HEAD reaches the nodes through the head (ssh jumps over the cluster
network, trusting the head's baked key too): give each worker's cluster
address with --address.

Exit code 4 when any node failed, was refused or did not answer.`,
		Example: `  magibake apply --all
  magibake apply caspar --yes
  magibake apply melchior --via caspar --address melchior=10.3.50.12`,
		Args:              argsRule(cobra.ArbitraryArgs),
		ValidArgsFunction: completeNodes(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.Log = cmd.ErrOrStderr()
			args = once(args)
			if all == (len(args) > 0) {
				return fault.UsageError(fmt.Errorf("%s: name the nodes to change, or give --all", cmd.CommandPath()))
			}
			l, err := loadLive(cmd, s, addresses, args)
			if err != nil {
				return err
			}
			c, keys, gen := l.c, l.keys, l.gen
			session := remote.Session{SSHConfig: sshConfig}
			if via != "" {
				h, err := c.Node(via)
				if err != nil {
					return fault.UsageError(fmt.Errorf("%s: --via: %w", cmd.CommandPath(), err))
				}
				v := l.remote(h)
				session.Via = &v
			}
			mtime, err := build.MTime(nil)
			if err != nil {
				return fault.InputError(err)
			}
			// Every plan first: a profile error stops before any login.
			targets := make([]applyTarget, len(l.nodes))
			for i, n := range l.nodes {
				if slices.Contains(gen.Nodes(), n.Hostname) {
					return fault.InputError(fmt.Errorf("%s has no baked SSH host key in %s: build its card first (apply trusts only that key)", n.Hostname, gen.Dir()))
				}
				p, err := s.PlanWith(c, keys, n.Hostname, mtime)
				if err != nil {
					return fault.InputError(err)
				}
				targets[i] = applyTarget{node: l.remote(n), plan: p}
			}
			session.Password, err = sudoPassword(c, cmd.ErrOrStderr())
			if err != nil {
				return fault.InputError(err)
			}
			ctx := cmd.Context()
			each(targets, func(t *applyTarget) { t.probe(ctx, session, c) })
			out := cmd.OutOrStdout()
			if err := refuseMoves(out, c, targets); err != nil {
				return fault.InputError(err)
			}
			pending := 0
			for _, t := range targets {
				t.printChanges(out)
				if t.err == nil && t.writes() > 0 {
					pending++
				}
			}
			if pending > 0 {
				if !yes {
					ok, err := confirmApply(cmd.InOrStdin(), cmd.ErrOrStderr(), pending)
					if err != nil {
						return fault.UsageError(fmt.Errorf("%s: %w", cmd.CommandPath(), err))
					}
					if !ok {
						return fault.UsageError(fmt.Errorf("%s: not confirmed; nothing changed", cmd.CommandPath()))
					}
				}
				info := manifest.Info{Cluster: c.Name, Version: toolVersion(), ProfileDigest: c.Digest}
				stamp := time.Now().UTC().Format("20060102T150405.000Z")
				each(targets, func(t *applyTarget) {
					if t.err == nil && t.writes() > 0 {
						t.apply(ctx, session, info, stamp)
					}
				})
				for _, t := range targets {
					t.printApplied(out)
				}
			}
			if err := ctx.Err(); err != nil {
				return err
			}
			var failed []string
			for _, t := range targets {
				if t.err != nil {
					failed = append(failed, t.node.Name)
				}
			}
			if len(failed) > 0 {
				return fault.Classed(fault.Findings, fmt.Errorf("%d of %d nodes failed: %s", len(failed), len(targets), strings.Join(failed, ", ")))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&s.Profiles, "profiles", "", "profiles directory (default: the embedded example cluster)")
	cmd.Flags().StringVar(&s.Overlays, "overlays", "", "an extra overlay directory, as build's")
	cmd.Flags().StringArrayVar(&addresses, "address", nil, "NODE=HOST: reach NODE at HOST instead of its home_address (repeatable)")
	cmd.Flags().StringVar(&sshConfig, "ssh-config", "", "ssh configuration file to use instead of ~/.ssh/config")
	cmd.Flags().StringVar(&via, "via", "", "HEAD: reach the nodes through this node over the cluster network")
	cmd.Flags().BoolVar(&all, "all", false, "every node of the profiles")
	cmd.Flags().BoolVar(&yes, "yes", false, "change the nodes without asking")
	return cmd
}

// applyTarget is one node through apply's steps.
type applyTarget struct {
	node    remote.Node
	plan    *plan.Plan
	old     *manifest.Manifest
	changes []apply.Change
	// hosts is the node's /etc/hosts, as the probe read it.
	hosts string
	// report is what the node's apply script said, its "@@magibake-apply" lines.
	report []string
	// err is why the node failed or was refused; nil while it goes on.
	err error
	// attempted: the node was sent its apply script; applied: it ran to
	// its end.
	attempted, applied bool
}

func (t *applyTarget) writes() int {
	n := 0
	for _, c := range t.changes {
		if c.Effect != apply.Reflash {
			n++
		}
	}
	return n
}

// probe reads the node and computes its changes.
func (t *applyTarget) probe(ctx context.Context, s remote.Session, c *profile.Cluster) {
	r := s.Run(ctx, t.node, apply.Probe(t.plan))
	f, err := check.Parse(r.Stdout)
	if err != nil {
		if !r.LoggedIn() {
			t.err = errors.New(r.Why(t.node))
		} else {
			t.err = fmt.Errorf("%s: %v", r.Why(t.node), err)
		}
		return
	}
	t.hosts = f["hosts"]
	t.changes, t.err = apply.Changes(t.plan, c.Name, f)
	if t.err == nil {
		t.old, t.err = manifest.Parse([]byte(f["manifest"]))
	}
}

// refuseMoves stops apply before anything is written when today's profiles
// move the fixed cluster address of a worker numbered in hostname order (a
// worker added or removed since renumbers the others): the head would hand
// its address to another node while it still holds it. A move that an
// address: or head_address asks for is said and goes on.
func refuseMoves(w io.Writer, c *profile.Cluster, ts []applyTarget) error {
	seen := map[string]bool{}
	var refused []error
	for _, t := range ts {
		if t.err != nil {
			continue
		}
		for _, m := range apply.Moves(c, t.node.Name, t.hosts) {
			if seen[m.Node.Hostname] {
				continue
			}
			seen[m.Node.Hostname] = true
			if m.Node.AddressByOrder {
				refused = append(refused, m)
				continue
			}
			says := m.Node.Source + "'s address:"
			if m.Node.Role == profile.RoleHead {
				says = "head_address"
			}
			fmt.Fprintf(w, "note: %s's cluster address moves from %s, as %s's /etc/hosts has it, to %s, as %s says\n",
				m.Node.Hostname, m.From, m.Seen, m.Node.Address, says)
		}
	}
	return errors.Join(refused...)
}

// apply sends the node its script and reads what it said.
func (t *applyTarget) apply(ctx context.Context, s remote.Session, info manifest.Info, stamp string) {
	t.attempted = true
	info.BaseSHA256 = t.old.BaseSHA256
	m, err := apply.NewManifest(t.old, t.plan, t.changes, info)
	if err != nil {
		t.err = err
		return
	}
	r := s.Run(ctx, t.node, apply.Script(t.changes, manifest.Path, m, stamp))
	for _, l := range strings.Split(r.Stdout, "\n") {
		if v, ok := strings.CutPrefix(l, "@@magibake-apply "); ok {
			t.report = append(t.report, termtext.Line(v))
		}
	}
	last := ""
	if len(t.report) > 0 {
		last = t.report[len(t.report)-1]
	}
	switch {
	case r.Err == nil && last == "finished":
		t.applied = true
	case !r.LoggedIn():
		t.err = errors.New(r.Why(t.node))
	case last == "rolled back":
		t.err = errors.New("a step failed; its previous files are back (" + stamp + ")")
	case strings.HasPrefix(last, "refused "):
		t.err = errors.New(strings.TrimPrefix(last, "refused ") + "; nothing was replaced")
	default:
		// Stopped where nobody can say what it holds: the report says
		// how far it got, and the node keeps the way back.
		t.err = fmt.Errorf("the apply script stopped (%s); what it replaced is kept in %s/%s, with its undo script", orDash(strings.TrimSpace(r.Why(t.node))), apply.StateDir, stamp)
	}
}

func (t *applyTarget) printChanges(w io.Writer) {
	name := t.node.Name
	if t.err != nil {
		fmt.Fprintf(w, "%s: %v\n", name, t.err)
		return
	}
	if len(t.changes) == 0 {
		fmt.Fprintf(w, "%s: nothing differs from the plan\n", name)
		return
	}
	fmt.Fprintf(w, "%s: %d of %d planned paths differ\n", name, len(t.changes), len(t.plan.Final()))
	for _, c := range t.changes {
		fmt.Fprintf(w, "  %s: %s\n    %s: %s\n", c.Path, c.Problem, c.Effect, c.Why)
	}
}

func (t *applyTarget) printApplied(w io.Writer) {
	if !t.attempted {
		return
	}
	for _, l := range t.report {
		fmt.Fprintf(w, "%s: %s\n", t.node.Name, l)
	}
	if t.applied {
		fmt.Fprintf(w, "%s: applied\n", t.node.Name)
	} else {
		fmt.Fprintf(w, "%s: FAILED: %v\n", t.node.Name, t.err)
	}
}

// once is names without repeats, in their order: a node named twice gets
// one apply script, not two at once.
func once(names []string) []string {
	var out []string
	for _, n := range names {
		if !slices.Contains(out, n) {
			out = append(out, n)
		}
	}
	return out
}

// each runs f on every target at once: each waits on its own node.
func each(ts []applyTarget, f func(*applyTarget)) {
	var wg sync.WaitGroup
	for i := range ts {
		wg.Go(func() { f(&ts[i]) })
	}
	wg.Wait()
}

// confirmApply asks on the terminal in for "yes", as flash asks for the
// device's name.
func confirmApply(in io.Reader, prompt io.Writer, nodes int) (bool, error) {
	if !isTTY(in) {
		return false, errors.New("not a terminal: give --yes to change the nodes without asking; nothing changed")
	}
	fmt.Fprintf(prompt, "Change %d node(s) as listed? Type yes to go on: ", nodes)
	line, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && strings.TrimSpace(line) == "" {
		return false, fmt.Errorf("no answer; nothing changed")
	}
	return strings.TrimSpace(line) == "yes", nil
}
