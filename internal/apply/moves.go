package apply

import (
	"fmt"
	"net/netip"
	"slices"
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
	// Taker is the node today's profiles give From to, or "";
	// TakerPinned says its own address: gives it.
	Taker       string
	TakerPinned bool
	// Shared: Node's file stands for several nodes (count), whose
	// addresses are pinned with an addresses: list.
	Shared bool
}

// Error says why apply refuses the move of a worker numbered in hostname
// order: adding or removing a worker renumbers the others, and the head
// would hand a running node's address to another.
func (m Move) Error() string {
	by, pin := "", fmt.Sprintf("pin it with \"address: %s\" there", m.From)
	if m.Shared {
		pin = fmt.Sprintf("pin it with an addresses: list there (%s for %s)", m.From, m.Node.Hostname)
	}
	switch {
	case m.Taker != "" && m.TakerPinned:
		by = fmt.Sprintf(" (%s's address: takes it)", m.Taker)
		pin += " and give " + m.Taker + " another address"
	case m.Taker != "":
		by = fmt.Sprintf(" (%s, numbered in hostname order too, now takes it)", m.Taker)
	}
	return fmt.Sprintf("%s: %s's cluster address would move from %s, as %s's /etc/hosts has it, to %s%s: workers without address: are numbered in hostname order, so adding or removing one moves others; %s, bake again the cards not yet flashed (their /etc/hosts changes too) and apply again; nothing was changed",
		m.Node.Source, m.Node.Hostname, m.From, m.Seen, m.Node.Address, by, pin)
}

// Moves compares every fixed cluster address in c with hosts, the live
// /etc/hosts of node seen: a node listed there only at other addresses of
// the cluster's subnet is a move. Lines outside the subnet (127.0.1.1, the
// home network) say nothing about the cluster's addresses; a name is the
// short one or NAME.DOMAIN, in any case.
func Moves(c *profile.Cluster, seen, hosts string) []Move {
	planned := map[string]profile.Node{}
	owner := map[netip.Addr]profile.Node{}
	files := map[string]int{}
	for _, n := range c.Nodes {
		files[n.Source]++
		if n.Address.IsValid() {
			planned[n.Hostname] = n
			owner[n.Address] = n
		}
	}
	live := map[string][]netip.Addr{}
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
			name = strings.TrimSuffix(strings.ToLower(name), "."+strings.ToLower(c.Domain))
			if _, ok := planned[name]; !ok || slices.Contains(live[name], a) {
				continue
			}
			live[name] = append(live[name], a)
		}
	}
	var out []Move
	for name, addrs := range live {
		n := planned[name]
		if slices.Contains(addrs, n.Address) {
			continue // a stale line beside the right one moves nothing
		}
		m := Move{Node: n, From: addrs[0], Seen: seen, Shared: files[n.Source] > 1}
		if t, ok := owner[m.From]; ok {
			m.Taker, m.TakerPinned = t.Hostname, !t.AddressByOrder
		}
		out = append(out, m)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Node.Hostname < out[j].Node.Hostname })
	return out
}
