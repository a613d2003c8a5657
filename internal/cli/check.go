package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/magibake/magibake/internal/build"
	"github.com/magibake/magibake/internal/check"
	"github.com/magibake/magibake/internal/fault"
	"github.com/magibake/magibake/internal/hostkey"
	"github.com/magibake/magibake/internal/profile"
	"github.com/magibake/magibake/internal/remote"
)

func newCheck() *cobra.Command {
	var (
		s         build.Sources
		addresses []string
		sshConfig string
		upstream  string
		asJSON    bool
	)
	cmd := &cobra.Command{
		Use:   "check [NODE...]",
		Short: "Check over SSH that live nodes are what their profiles say",
		Long: `check logs in to each node (all of them by default) over SSH and checks the
running system against its profile and today's plan: hostname, the baked host
key, system state and failed units, the OS's first boot (cloud-init or
firstboot done, root file system grown), the login users and /etc/hosts (a
cloud-init seed rewritten by Raspberry Pi Imager's OS customisation is named
as the cause), the head's cluster address, route,
forwarding, NAT rules (each exactly once) and DHCP server with its leases, a
worker's lease, default route through the head and the upstream beyond it,
the home Wi-Fi (joined, home address, regulatory domain), and every file the
card baked, by sha256 (secrets are compared, never printed).

A node is reached at its profile's home_address (default NAME.local), or at
--address NAME=HOST. SSH trusts only the node's baked host key (see
known-hosts): a node that presents another key is not checked. ssh runs as
the profile's user with your own keys, agent and ~/.ssh/config (or
--ssh-config FILE). The checks run as root through sudo: the password comes
from $MAGIBAKE_SUDO_PASSWORD, else from a prompt on the terminal; a user
without a password hash needs none.

It prints one line per check and a summary; --json prints the results. Exit
code 4 when any check fails.`,
		Example: `  magibake check
  magibake check caspar --profiles ~/cluster
  magibake check --address caspar=192.168.0.20 --json`,
		Args:              argsRule(cobra.ArbitraryArgs),
		ValidArgsFunction: completeNodes(0),
		RunE: func(cmd *cobra.Command, args []string) error {
			s.Log = cmd.ErrOrStderr()
			l, err := loadLive(cmd, s, addresses, args)
			if err != nil {
				return err
			}
			c, nodes, keys, gen := l.c, l.nodes, l.keys, l.gen
			up, err := upstreamOf(c, upstream)
			if err != nil {
				return fault.UsageError(fmt.Errorf("%s: %w", cmd.CommandPath(), err))
			}
			mtime, err := build.MTime(nil)
			if err != nil {
				return fault.InputError(err)
			}
			password, err := sudoPassword(c, cmd.ErrOrStderr())
			if err != nil {
				return fault.InputError(err)
			}
			session := remote.Session{SSHConfig: sshConfig, Password: password}
			// Every plan first (a profile error stops before any login),
			// then every node at once: each check waits on its own
			// machine. The results keep the nodes' order.
			perNode := make([][]check.Result, len(nodes))
			var jobs []func()
			for i, n := range nodes {
				if slices.Contains(gen.Nodes(), n.Hostname) {
					perNode[i] = []check.Result{{Node: n.Hostname, Check: "reach", Detail: fmt.Sprintf(
						"no baked SSH host key in %s: build the node's card first (check trusts only that key)", gen.Dir())}}
					continue
				}
				p, err := s.PlanWith(c, keys, n.Hostname, mtime)
				if err != nil {
					return fault.InputError(err)
				}
				t := check.Target{Cluster: c, Node: n, Plan: p, HostKey: keys[n.Hostname].Public, Upstream: up}
				jobs = append(jobs, func() { perNode[i] = checkNode(cmd.Context(), session, t, l.remote(n)) })
			}
			var wg sync.WaitGroup
			for _, job := range jobs {
				wg.Go(job)
			}
			wg.Wait()
			if err := cmd.Context().Err(); err != nil {
				return err
			}
			results := slices.Concat(perNode...)
			if err := printResults(cmd.OutOrStdout(), results, asJSON); err != nil {
				return err
			}
			if failed := countFailed(results); failed > 0 {
				return fault.Classed(fault.Findings, fmt.Errorf("%d of %d checks failed", failed, len(results)))
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&s.Profiles, "profiles", "", "profiles directory (default: the embedded example cluster)")
	cmd.Flags().StringVar(&s.Overlays, "overlays", "", "the extra overlay directory the cards were built with")
	cmd.Flags().StringArrayVar(&addresses, "address", nil, "NODE=HOST: reach NODE at HOST instead of its home_address (repeatable)")
	cmd.Flags().StringVar(&sshConfig, "ssh-config", "", "ssh configuration file to use instead of ~/.ssh/config")
	cmd.Flags().StringVar(&upstream, "upstream", "", "an address beyond the head's uplink that workers must reach (default: the first DNS server of the profile)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the results as JSON")
	return cmd
}

// liveNodes is what check and apply read before logging in to any node.
type liveNodes struct {
	c     *profile.Cluster
	nodes []*profile.Node // the nodes named, or all of them
	hosts map[string]string
	keys  hostkey.Keys
	gen   *hostkey.Generated
}

func loadLive(cmd *cobra.Command, s build.Sources, addresses, args []string) (liveNodes, error) {
	var l liveNodes
	var err error
	if l.c, err = s.Cluster(); err != nil {
		return l, fault.InputError(err)
	}
	if l.hosts, err = parseAddresses(l.c, addresses); err != nil {
		return l, fault.UsageError(fmt.Errorf("%s: %w", cmd.CommandPath(), err))
	}
	if l.nodes, err = checkNodes(l.c, args); err != nil {
		return l, fault.InputError(err)
	}
	if l.keys, l.gen, err = s.HostKeys(l.c); err != nil {
		return l, fault.InputError(err)
	}
	return l, nil
}

// host is where n is reached: --address, else its home address.
func (l liveNodes) host(n *profile.Node) string {
	if h := l.hosts[n.Hostname]; h != "" {
		return h
	}
	return n.Home
}

// remote is how n is logged in to: at its host, as the profile's user,
// trusting only its baked key.
func (l liveNodes) remote(n *profile.Node) remote.Node {
	return remote.Node{Name: n.Hostname, Host: l.host(n), User: l.c.User.Name, HostKey: l.keys[n.Hostname].Public,
		KeyFile: filepath.Join(l.gen.Dir(), n.Hostname, hostkey.File)}
}

func parseAddresses(c *profile.Cluster, flags []string) (map[string]string, error) {
	m := map[string]string{}
	for _, f := range flags {
		name, host, ok := strings.Cut(f, "=")
		if !ok || host == "" {
			return nil, fmt.Errorf("--address %q: want NODE=HOST", f)
		}
		if _, err := c.Node(name); err != nil {
			return nil, fmt.Errorf("--address %q: %w", f, err)
		}
		m[name] = host
	}
	return m, nil
}

func checkNodes(c *profile.Cluster, args []string) ([]*profile.Node, error) {
	if len(args) == 0 {
		var all []*profile.Node
		for i := range c.Nodes {
			all = append(all, &c.Nodes[i])
		}
		return all, nil
	}
	var out []*profile.Node
	for _, a := range args {
		n, err := c.Node(a)
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func upstreamOf(c *profile.Cluster, flag string) (netip.Addr, error) {
	if flag != "" {
		a, err := netip.ParseAddr(flag)
		if err != nil || !a.Is4() {
			return netip.Addr{}, fmt.Errorf("--upstream %q: want an IPv4 address", flag)
		}
		return a, nil
	}
	if len(c.DNS) == 0 {
		return netip.Addr{}, errors.New("the profile names no DNS server to use as the upstream: give --upstream ADDR")
	}
	return c.DNS[0], nil
}

// sudoPassword is the profile user's password for sudo on the nodes: from
// $MAGIBAKE_SUDO_PASSWORD, else asked on the terminal; "" when the profile
// has no password hash (sudo then asks for none) or nobody can be asked.
func sudoPassword(c *profile.Cluster, prompt io.Writer) (string, error) {
	if v, ok := os.LookupEnv(remote.PasswordVar); ok {
		return v, nil
	}
	if c.User.PasswordHash == "" {
		return "", nil
	}
	tty, err := os.Open("/dev/tty")
	if err != nil {
		return "", nil // no terminal: sudo's refusal will say what is missing
	}
	defer tty.Close()
	if !term.IsTerminal(int(tty.Fd())) {
		return "", nil
	}
	fmt.Fprintf(prompt, "sudo password of %s on the nodes: ", c.User.Name)
	b, err := term.ReadPassword(int(tty.Fd()))
	fmt.Fprintln(prompt)
	if err != nil {
		return "", fmt.Errorf("read the sudo password: %w", err)
	}
	return string(b), nil
}

// checkNode runs the check script on one node and judges what it printed.
// A node that cannot be reached, or where sudo refuses, is one failed
// check saying why.
func checkNode(ctx context.Context, s remote.Session, t check.Target, n remote.Node) []check.Result {
	name := t.Node.Hostname
	fail := func(format string, a ...any) []check.Result {
		return []check.Result{{Node: name, Check: "reach", Detail: fmt.Sprintf(format, a...)}}
	}
	r := s.Run(ctx, n, check.Script(t))
	facts, perr := check.Parse(r.Stdout)
	if perr != nil {
		if !r.LoggedIn() {
			return fail("%s", r.Why(n))
		}
		return fail("%s: %v", r.Why(n), perr)
	}
	return append([]check.Result{{Node: name, Check: "reach", OK: true, Detail: "ssh " + n.User + "@" + n.Host + ", baked host key"}},
		check.Evaluate(t, facts)...)
}

func countFailed(rs []check.Result) int {
	n := 0
	for _, r := range rs {
		if !r.OK {
			n++
		}
	}
	return n
}

func printResults(w io.Writer, rs []check.Result, asJSON bool) error {
	if asJSON {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rs)
	}
	per := map[string][2]int{}
	var order []string
	for _, r := range rs {
		status := "PASS"
		if !r.OK {
			status = "FAIL"
		}
		fmt.Fprintf(w, "%s  %-10s %-18s %s\n", status, r.Node, r.Check, r.Detail)
		c, seen := per[r.Node]
		if !seen {
			order = append(order, r.Node)
		}
		c[0]++
		if !r.OK {
			c[1]++
		}
		per[r.Node] = c
	}
	var parts []string
	for _, n := range order {
		parts = append(parts, fmt.Sprintf("%s %d/%d", n, per[n][0]-per[n][1], per[n][0]))
	}
	_, err := fmt.Fprintf(w, "check: %d of %d checks passed (%s)\n", len(rs)-countFailed(rs), len(rs), strings.Join(parts, ", "))
	return err
}
