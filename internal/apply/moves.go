package apply

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/magibake/magibake/internal/profile"
)

// Move is a node whose fixed cluster address today's profiles change from
// the one a live node's /etc/hosts gives it.
type Move struct {
	// Node is the moving node, as today's profiles have it (Address is
	// where it goes).
	Node profile.Node
	// From is its address in the live /etc/hosts of Seen.
	From netip.Addr
	Seen string
	// Taker is the node today's profiles give From to, or "".
	Taker string
}

// Error says why apply refuses a move that only hostname order made: a
// worker added to the profiles took the address of one already running.
func (m Move) Error() string {
	by := ""
	if m.Taker != "" {
		by = fmt.Sprintf(" (%s now sorts first and takes it)", m.Taker)
	}
	return fmt.Sprintf("%s: %s's cluster address would move from %s, as %s's /etc/hosts has it, to %s%s: workers without address: are numbered in hostname order; pin it with \"address: %s\" there and apply again; nothing was changed",
		m.Node.Source, m.Node.Hostname, m.From, m.Seen, m.Node.Address, by, m.From)
}

// Moves compares every fixed cluster address in c with hosts, the live
// /etc/hosts of node seen: a name listed there at another address of the
// cluster's subnet is a move. Lines outside the subnet (127.0.1.1, the
// home network) say nothing about the cluster's addresses.
func Moves(c *profile.Cluster, seen, hosts string) []Move {
	planned := map[string]profile.Node{}
	owner := map[netip.Addr]string{}
	for _, n := range c.Nodes {
		if n.Address.IsValid() {
			planned[n.Hostname] = n
			owner[n.Address] = n.Hostname
		}
	}
	var out []Move
	moved := map[string]bool{}
	for _, line := range strings.Split(hosts, "\n") {
		line, _, _ = strings.Cut(line, "#")
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		a, err := netip.ParseAddr(f[0])
		if err != nil || !c.Subnet.Contains(a) {
			continue
		}
		for _, name := range f[1:] {
			n, ok := planned[name]
			if !ok || n.Address == a || moved[name] {
				continue
			}
			moved[name] = true
			out = append(out, Move{Node: n, From: a, Seen: seen, Taker: owner[a]})
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node.Hostname < out[j].Node.Hostname })
	return out
}
