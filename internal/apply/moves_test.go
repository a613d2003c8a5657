package apply

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/magibake/magibake/internal/profile"
)

// TestMoves: a node listed in a live /etc/hosts at another cluster address
// than today's profiles give it is a move; lines outside the cluster's
// subnet and nodes without a fixed address are not.
func TestMoves(t *testing.T) {
	c := movesCluster(t)
	tests := []struct {
		name, hosts, want string
	}{
		{"as planned", "127.0.1.1\tmelchior\n10.3.50.1\tcaspar.cluster caspar\n10.3.50.3\tbalthasar.cluster balthasar\n", ""},
		{"artaban took balthasar's", "10.3.50.2\tbalthasar.cluster balthasar\n", "balthasar 10.3.50.2->10.3.50.3 by artaban (by order), by order"},
		{"pinned elsewhere", "10.3.50.9\tmelchior.cluster melchior\n", "melchior 10.3.50.9->10.3.50.40 pinned"},
		{"pinned onto an ordered one's", "10.3.50.40\tnode2\n", "node2 10.3.50.40->10.3.50.5 by melchior (pinned), by order, shared"},
		{"the head's own line and the home network say nothing", "127.0.1.1\tbalthasar\n192.168.0.22\tbalthasar\n", ""},
		{"a comment is not a line", "# 10.3.50.2 balthasar\n10.3.50.3 balthasar # was 10.3.50.2\n", ""},
		{"a node without a fixed address", "10.3.50.15\tnoaddr\n", ""},
		{"one move per node, from its first line", "10.3.50.2\tbalthasar\n10.3.50.7\tbalthasar.cluster\n10.3.50.7\tbalthasar\n", "balthasar 10.3.50.2->10.3.50.3 by artaban (by order), by order"},
		{"a stale line beside the right one", "10.3.50.2\tbalthasar\n10.3.50.3\tbalthasar\n", ""},
		{"only the long name, in capitals", "10.3.50.2\tBalthasar.Cluster\n", "balthasar 10.3.50.2->10.3.50.3 by artaban (by order), by order"},
		{"another domain is another name", "10.3.50.2\tbalthasar.lan\n", ""},
		{"garbage", "not an address balthasar\n\n10.3.50\tbalthasar\n", ""},
	}
	for _, tc := range tests {
		var got []string
		for _, m := range Moves(c, "caspar", tc.hosts) {
			s := m.Node.Hostname + " " + m.From.String() + "->" + m.Node.Address.String()
			if m.Taker != "" {
				s += " by " + m.Taker + map[bool]string{true: " (pinned),", false: " (by order),"}[m.TakerPinned]
			}
			s += map[bool]string{true: " by order", false: " pinned"}[m.Node.AddressByOrder]
			if m.Shared {
				s += ", shared"
			}
			got = append(got, s)
		}
		if g := strings.Join(got, "; "); g != tc.want {
			t.Errorf("%s: Moves = %q, want %q", tc.name, g, tc.want)
		}
	}
	for hosts, want := range map[string]string{
		"10.3.50.2\tbalthasar\n": `/p/balthasar.yaml: balthasar's cluster address would move from 10.3.50.2, as caspar's /etc/hosts has it, to 10.3.50.3 (artaban, numbered in hostname order too, now takes it): workers without address: are numbered in hostname order, so adding or removing one moves others; pin it with "address: 10.3.50.2" there, bake again the cards not yet flashed (their /etc/hosts changes too) and apply again; nothing was changed`,
		"10.3.50.40\tnode2\n":    `/p/workers.yaml: node2's cluster address would move from 10.3.50.40, as caspar's /etc/hosts has it, to 10.3.50.5 (melchior's address: takes it): workers without address: are numbered in hostname order, so adding or removing one moves others; pin it with an addresses: list there (10.3.50.40 for node2) and give melchior another address, bake again the cards not yet flashed (their /etc/hosts changes too) and apply again; nothing was changed`,
	} {
		if got := Moves(c, "caspar", hosts)[0].Error(); got != want {
			t.Errorf("Error() = %q\nwant      %q", got, want)
		}
	}
}

// movesCluster: artaban, balthasar, node1 and node2 (one count file)
// numbered in hostname order from 10.3.50.2 (artaban, added last, before
// balthasar), melchior pinned, noaddr without a MAC.
func movesCluster(t *testing.T) *profile.Cluster {
	t.Helper()
	files := map[string]string{
		"cluster.yaml":   "name: magi\ndomain: cluster\nsubnet: 10.3.50.0/24\nhead_address: 10.3.50.1/24\ndhcp:\n  range: [10.3.50.10, 10.3.50.19]\n  dns: [10.3.50.1]\n  default_lease_time: 600\n  max_lease_time: 7200\nuplink: wlan0\nuser:\n  name: pi\n  ssh_authorized_keys: [ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx7aTqEkmvT6l1XkVmH7B3ZFqPNMmRzD2e0Y6q5c6Jb demo]\n",
		"caspar.yaml":    "hostname: caspar\nrole: head\n",
		"artaban.yaml":   "hostname: artaban\nrole: worker\nmac: dc:a6:32:00:00:0a\n",
		"balthasar.yaml": "hostname: balthasar\nrole: worker\nmac: dc:a6:32:00:00:0b\n",
		"melchior.yaml":  "hostname: melchior\nrole: worker\nmac: dc:a6:32:00:00:0c\naddress: 10.3.50.40\n",
		"noaddr.yaml":    "hostname: noaddr\nrole: worker\n",
		"workers.yaml":   "role: worker\ncount: 2\nhostname: node{n}\nmacs: [dc:a6:32:00:00:01, dc:a6:32:00:00:02]\n",
	}
	fsys := fstest.MapFS{}
	for name, text := range files {
		fsys[name] = &fstest.MapFile{Data: []byte(text)}
	}
	c, err := profile.Load(fsys, "/p", profile.Options{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}
