package profile

import (
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// maxCount bounds count in a node file: a /24 holds 253 hosts besides the
// head, and a typo like 800 should not bake 800 cards.
const maxCount = 250

// listKeys pairs each key of a node file for one node with its list form
// in a file with count.
var listKeys = []struct{ one, list string }{
	{"mac", "macs"}, {"address", "addresses"}, {"home_address", "home_addresses"},
}

// loc is where a value was written, for problems found later: its YAML
// node and the field name to report ("mac", or "macs[2]" for one entry).
type loc struct {
	n     *yaml.Node
	field string
}

// parsedNode is a node as read, with where each value was written, for the
// checks across files.
type parsedNode struct {
	Node
	d                              *doc
	role, mac, address, host, home loc
	static                         loc
	settings                       *partial
}

// nodeFile is what one node file says before it becomes nodes: the single
// values of a file for one node, or the lists of a file with count.
type nodeFile struct {
	hostname string
	role     Role
	count    int
	mac      net.HardwareAddr
	address  netip.Addr
	home     string
	macs     []net.HardwareAddr
	addrs    []netip.Addr
	homes    []string
	static   bool
	settings *partial
	at       map[string]*yaml.Node   // value node of each key given
	items    map[string][]*yaml.Node // entries of each list given
}

// placeholderRE is the one place in a hostname pattern the number goes:
// {n}, or {n:0W} for n padded with zeros to W digits.
var placeholderRE = regexp.MustCompile(`^\{n(?::0([1-9]))?\}$`)

// pattern splits a hostname pattern like node{n:02} around its placeholder;
// msg says what is wrong with it, worded to follow "hostname: ".
func pattern(s string) (prefix, suffix string, width int, msg string) {
	const want = "want exactly one {n} (or {n:02} to pad with zeros) where the number goes, e.g. node{n}"
	open := strings.IndexByte(s, '{')
	if open < 0 {
		return "", "", 0, fmt.Sprintf("%s is not a pattern: with count, %s", quote(s), want)
	}
	end := strings.IndexByte(s[open:], '}')
	if end < 0 {
		return "", "", 0, fmt.Sprintf("%s: %s", quote(s), want)
	}
	end += open
	m := placeholderRE.FindStringSubmatch(s[open : end+1])
	if m == nil {
		return "", "", 0, fmt.Sprintf("unknown placeholder %s in %s; %s", quote(s[open:end+1]), quote(s), want)
	}
	prefix, suffix = s[:open], s[end+1:]
	if strings.ContainsAny(prefix+suffix, "{}") {
		return "", "", 0, fmt.Sprintf("%s: %s", quote(s), want)
	}
	if m[1] != "" {
		width = int(m[1][0] - '0')
	}
	return prefix, suffix, width, ""
}

// node parses one node file into the nodes it stands for: one, or count
// workers. roleKnown says the file's role is valid and, for a head, that the
// head is among the nodes returned, so a missing head is a real finding.
func (l *loader) node(name string, raw []byte) (nodes []parsedNode, roleKnown bool) {
	d := &doc{file: l.path(name), errs: &l.errs}
	before := len(l.errs)
	root := d.parse(raw)
	if root == nil {
		return nil, false
	}
	f := nodeFile{at: map[string]*yaml.Node{}, items: map[string][]*yaml.Node{}}
	// list reads a list of one value per node; parse reads each entry and
	// reports its problems.
	list := func(key, want string, v *yaml.Node, parse func(field string, n *yaml.Node)) {
		items, ok := d.list(key, v, want)
		if !ok {
			return
		}
		f.items[key] = items
		for i, it := range items {
			parse(item(key, i), it)
		}
	}
	f.settings = &partial{}
	k, ok := d.mapping(root, "", d.withSettings(f.settings, map[string]func(string, *yaml.Node){
		"home_static": func(field string, v *yaml.Node) {
			if b, ok := d.boolean(field, v); ok {
				f.static, f.at[field] = b, resolve(v)
			}
		},
		"hostname": func(field string, v *yaml.Node) {
			if s, ok := d.str(field, v); ok {
				f.hostname, f.at[field] = s, resolve(v)
			}
		},
		"role": func(field string, v *yaml.Node) {
			s, ok := d.scalar(field, v, "head or worker")
			if !ok {
				return
			}
			switch r := Role(s); r {
			case RoleHead, RoleWorker:
				f.role, f.at[field] = r, resolve(v)
			default:
				d.fail(v, field, "unknown role %s; want head or worker", quote(s))
			}
		},
		"count": func(field string, v *yaml.Node) {
			want := fmt.Sprintf("a whole number of nodes from 1 to %d", maxCount)
			s, ok := d.scalar(field, v, want)
			if !ok {
				return
			}
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > maxCount {
				d.fail(v, field, "want %s, got %s", want, quote(s))
				return
			}
			f.count, f.at[field] = n, resolve(v)
		},
		"mac": func(field string, v *yaml.Node) {
			if mac, ok := d.mac(field, v); ok {
				f.mac, f.at[field] = mac, resolve(v)
			}
		},
		"address": func(field string, v *yaml.Node) {
			if a, ok := d.address(field, v); ok {
				f.address, f.at[field] = a, resolve(v)
			}
		},
		"home_address": func(field string, v *yaml.Node) {
			if s, ok := d.home(field, v); ok {
				f.home, f.at[field] = s, resolve(v)
			}
		},
		"macs": func(field string, v *yaml.Node) {
			list(field, "a list of MAC addresses, one per node", v, func(field string, n *yaml.Node) {
				mac, _ := d.mac(field, n)
				f.macs = append(f.macs, mac)
			})
		},
		"addresses": func(field string, v *yaml.Node) {
			list(field, "a list of IPv4 addresses, one per node", v, func(field string, n *yaml.Node) {
				a, _ := d.address(field, n)
				f.addrs = append(f.addrs, a)
			})
		},
		"home_addresses": func(field string, v *yaml.Node) {
			list(field, "a list of IPv4 addresses or DNS names, one per node", v, func(field string, n *yaml.Node) {
				s, _ := d.home(field, n)
				f.homes = append(f.homes, s)
			})
		},
	}))
	if !ok {
		return nil, false
	}
	d.require(k, "", "hostname", "role")
	if k.has("count") || k.has("macs") || k.has("addresses") || k.has("home_addresses") {
		nodes = expand(d, k, &f, len(l.errs) > before)
	} else {
		nodes = single(d, name, &f)
	}
	return nodes, f.role == RoleWorker || (f.role == RoleHead && len(nodes) > 0)
}

// single is the node of a file without count, named after its file.
func single(d *doc, name string, f *nodeFile) []parsedNode {
	if f.hostname == "" {
		return nil
	}
	hostNode := f.at["hostname"]
	s := f.hostname
	if strings.ContainsAny(s, "{}") {
		d.fail(hostNode, "hostname", "%s is a pattern: it needs count, the number of workers it names", quote(s))
		return nil
	}
	if msg := labelProblem(s); msg != "" {
		d.fail(hostNode, "hostname", "%s", msg)
		return nil
	}
	if want := strings.TrimSuffix(name, ".yaml"); s != want {
		// Still use it, so duplicates are found too.
		d.fail(hostNode, "hostname", "%s does not match the file name %s; name the file %s.yaml", quote(s), name, s)
	}
	p := parsedNode{d: d}
	p.Hostname, p.Role, p.MAC, p.Address, p.Home, p.Source = s, f.role, f.mac, f.address, f.home, d.file
	p.host, p.role = loc{hostNode, "hostname"}, loc{f.at["role"], "role"}
	p.mac, p.address, p.home = loc{f.at["mac"], "mac"}, loc{f.at["address"], "address"}, loc{f.at["home_address"], "home_address"}
	p.HomeStatic, p.static, p.settings = f.static, loc{f.at["home_static"], "home_static"}, f.settings
	return []parsedNode{p}
}

// expand turns a file with count into its workers, node{n} for n from 1 to
// count, each with the n-th entry of each list. Nothing is made when the
// file has a problem (bad says one was reported already), so that each
// mistake is reported once.
func expand(d *doc, k keys, f *nodeFile, bad bool) []parsedNode {
	if !k.has("count") {
		for _, kk := range listKeys {
			if k.has(kk.list) {
				d.fail(k.at[kk.list], kk.list, "a list needs count, the number of workers this file names; a file for one node takes %s", kk.one)
			}
		}
		return nil
	}
	if f.role == RoleHead {
		d.fail(f.at["count"], "count", "only workers come in numbers: a cluster has one head (role: head)")
		bad = true
	}
	for _, kk := range listKeys {
		if k.has(kk.one) {
			d.fail(k.at[kk.one], kk.one, "not with count: use the list form %s: [...], one entry per node", kk.list)
			bad = true
		}
	}
	for _, kk := range listKeys {
		if items, given := f.items[kk.list]; given && len(items) != f.count && f.count > 0 {
			key := kk.list
			d.fail(k.at[key], key, "want %d entries, one per node (count: %d), got %d", f.count, f.count, len(items))
			bad = true
		}
	}
	_, addrs := f.items["addresses"]
	if _, macs := f.items["macs"]; addrs && !macs {
		d.fail(k.at["addresses"], "addresses", "fixed addresses need macs: dhcpd hands fixed addresses out by MAC address")
		bad = true
	}
	var prefix, suffix string
	var width int
	if f.hostname != "" {
		var msg string
		if prefix, suffix, width, msg = pattern(f.hostname); msg != "" {
			d.fail(f.at["hostname"], "hostname", "%s", msg)
			bad = true
		}
	}
	if bad || f.count == 0 || f.hostname == "" || f.role == "" {
		return nil
	}
	nodes := make([]parsedNode, f.count)
	for i := range nodes {
		name := fmt.Sprintf("%s%0*d%s", prefix, width, i+1, suffix)
		if msg := labelProblem(name); msg != "" {
			d.fail(f.at["hostname"], "hostname", "node %d of %d: %s", i+1, f.count, msg)
			return nil
		}
		p := parsedNode{d: d}
		p.Hostname, p.Role, p.Source = name, f.role, d.file
		p.host, p.role = loc{f.at["hostname"], "hostname"}, loc{f.at["role"], "role"}
		p.HomeStatic, p.static, p.settings = f.static, loc{f.at["home_static"], "home_static"}, f.settings
		if f.macs != nil {
			p.MAC, p.mac = f.macs[i], loc{f.items["macs"][i], item("macs", i)}
		}
		if f.addrs != nil {
			p.Address, p.address = f.addrs[i], loc{f.items["addresses"][i], item("addresses", i)}
		}
		if f.homes != nil {
			p.Home, p.home = f.homes[i], loc{f.items["home_addresses"][i], item("home_addresses", i)}
		}
		nodes[i] = p
	}
	return nodes
}

// mac reads a MAC address.
func (d *doc) mac(field string, v *yaml.Node) (net.HardwareAddr, bool) {
	s, ok := d.str(field, v)
	if !ok {
		return nil, false
	}
	mac, msg := parseMAC(s)
	if msg != "" {
		d.fail(resolve(v), field, "%s", msg)
		return nil, false
	}
	return mac, true
}

// address reads a worker's fixed address.
func (d *doc) address(field string, v *yaml.Node) (netip.Addr, bool) {
	s, ok := d.scalar(field, v, "an IPv4 address like 10.3.50.2")
	if !ok {
		return netip.Addr{}, false
	}
	a, ok := parseIPv4(s)
	if !ok {
		hint := ""
		if strings.Contains(s, "/") {
			hint = " (without a prefix length: the subnet gives it)"
		}
		d.fail(resolve(v), field, "want an IPv4 address like 10.3.50.2%s, got %s", hint, quote(s))
		return netip.Addr{}, false
	}
	return a, true
}

// home reads a home address: an IPv4 address or a DNS name.
func (d *doc) home(field string, v *yaml.Node) (string, bool) {
	const want = "an IPv4 address or DNS name like 192.168.0.20 or caspar.lan"
	s, ok := d.scalar(field, v, want)
	if !ok {
		return "", false
	}
	if _, isIP := parseIPv4(s); isIP {
		return s, true
	}
	if domainProblem(s) != "" {
		d.fail(resolve(v), field, "want %s, got %s", want, quote(s))
		return "", false
	}
	if numericName.MatchString(s) {
		// ssh and the C library read such a name as an address
		// (inet_aton: "123" is 0.0.0.123, "10.1" is 10.0.0.1).
		d.fail(resolve(v), field, "%s would be read as a numeric address; write an IPv4 address as a.b.c.d, or a name with a letter in it", quote(s))
		return "", false
	}
	return s, true
}

// numericName matches names whose every label is a number, decimal, octal
// or hex, as inet_aton reads them.
var numericName = regexp.MustCompile(`^((0x[0-9a-f]*|[0-9]+)(\.|$))+$`)

// nodes checks the nodes against each other and the cluster, and stores
// them in c. files is the number of node files found; roleKnown says every
// one of them has a valid role, so a missing head is a real finding.
func (l *loader) nodes(c *Cluster, nodes []parsedNode, files int, roleKnown bool) {
	if files == 0 {
		l.errs = append(l.errs, &Error{File: l.display, Msg: "no nodes: want one <hostname>.yaml per node (or a file with count for several workers) beside cluster.yaml"})
		return
	}
	var head *parsedNode
	hosts := map[string]*parsedNode{}
	macs := map[string]*parsedNode{}
	addrs := map[string]*parsedNode{}
	homes := map[string]*parsedNode{}
	for i := range nodes {
		p := &nodes[i]
		d := p.d
		if p.HomeStatic {
			a, isIP := parseIPv4(p.Home)
			switch {
			case !isIP:
				d.fail(p.static.n, p.static.field, "needs home_address as an IPv4 address (the node's fixed address), got %s", quote(p.Home))
			case c.WiFi == nil:
				d.fail(p.static.n, p.static.field, "needs the wifi section in %s: the fixed address is set on the Wi-Fi uplink", clusterFile)
			case !c.HomeGateway.IsValid():
				d.fail(p.static.n, p.static.field, "needs home_network and home_gateway (the router) in %s", clusterFile)
			case a == c.HomeGateway:
				d.fail(p.home.n, p.home.field, "%s is home_gateway, the router's address", a)
			case c.HomeNetwork.Contains(a) && hostAddr(c.HomeNetwork, a) != "":
				d.fail(p.home.n, p.home.field, "%s", hostAddr(c.HomeNetwork, a))
			}
		}
		if p.Home == "" {
			p.Home = p.Hostname + ".local"
		} else if first := homes[p.Home]; first != nil {
			d.fail(p.home.n, p.home.field, "%s is also the home address of %s (%s)", p.Home, first.Hostname, first.Source)
		} else {
			homes[p.Home] = p
			if a, isIP := parseIPv4(p.Home); isIP {
				switch {
				case c.Subnet.IsValid() && c.Subnet.Contains(a):
					d.fail(p.home.n, p.home.field, "%s is in the cluster subnet %s; want the node's address on the home network", a, c.Subnet)
				case c.HomeNetwork.IsValid() && !c.HomeNetwork.Contains(a):
					d.fail(p.home.n, p.home.field, "%s is outside home_network %s in %s", a, c.HomeNetwork, clusterFile)
				}
			}
		}
		if first := hosts[p.Hostname]; first != nil {
			d.fail(p.host.n, p.host.field, "%s is also the hostname in %s", p.Hostname, first.Source)
		} else {
			hosts[p.Hostname] = p
		}
		if p.MAC != nil {
			key := p.MAC.String()
			if first := macs[key]; first != nil {
				d.fail(p.mac.n, p.mac.field, "%s is also the MAC of %s (%s)", key, first.Hostname, first.Source)
			} else {
				macs[key] = p
			}
		}
		switch p.Role {
		case RoleHead:
			if head != nil {
				d.fail(p.role.n, p.role.field, "a second head: %s (%s) is the head already; a cluster has one", head.Hostname, head.Source)
				continue
			}
			head = p
			if c.Head.IsValid() {
				if p.Address.IsValid() && p.Address != c.Head.Addr() {
					d.fail(p.address.n, p.address.field, "%s differs from head_address %s in %s; the head's address is set there", p.Address, c.Head, clusterFile)
				}
				p.Address = c.Head.Addr()
			}
		case RoleWorker:
			if !p.Address.IsValid() {
				continue
			}
			a := p.Address
			msg := ""
			switch {
			case p.MAC == nil:
				msg = "a fixed address needs mac: dhcpd hands fixed addresses out by MAC address"
			case c.Subnet.IsValid() && hostAddr(c.Subnet, a) != "":
				msg = hostAddr(c.Subnet, a)
			case c.Head.IsValid() && a == c.Head.Addr():
				msg = a.String() + " is the head's address"
			case c.DHCPStart.IsValid() && inRange(a, c.DHCPStart, c.DHCPEnd):
				msg = a.String() + " is inside the DHCP range " + c.DHCPStart.String() + "-" + c.DHCPEnd.String() + "; fixed addresses must lie outside it"
			case addrs[a.String()] != nil:
				first := addrs[a.String()]
				msg = a.String() + " is also the address of " + first.Hostname + " (" + first.Source + ")"
			}
			if msg != "" {
				d.fail(p.address.n, p.address.field, "%s", msg)
				continue
			}
			addrs[a.String()] = p
		}
	}
	if head == nil && roleKnown {
		l.errs = append(l.errs, &Error{File: l.display, Field: "role", Msg: "no node has role: head; a cluster needs exactly one"})
	}

	sort.SliceStable(nodes, func(i, j int) bool {
		hi, hj := nodes[i].Role == RoleHead, nodes[j].Role == RoleHead
		if hi != hj {
			return hi
		}
		return nodes[i].Hostname < nodes[j].Hostname
	})
	if len(l.errs) == 0 {
		assignFixed(c, nodes, addrs)
	}
	c.Nodes = make([]Node, len(nodes))
	for i := range nodes {
		c.Nodes[i] = nodes[i].Node
		c.Nodes[i].Settings = merge(l.settings, l.roleSettings[nodes[i].Role], nodes[i].settings)
	}
}

// assignFixed gives each worker that has a MAC but no address the first free
// address above the head's, outside the DHCP range, in hostname order: a MAC
// means "always the same address", and dhcpd, /etc/hosts and the plan must
// agree on which one. `address:` pins it instead.
func assignFixed(c *Cluster, nodes []parsedNode, used map[string]*parsedNode) {
	if !c.Subnet.IsValid() || !c.Head.IsValid() {
		return
	}
	next := c.Head.Addr()
	for i := range nodes {
		p := &nodes[i]
		if p.Role != RoleWorker || p.MAC == nil || p.Address.IsValid() {
			continue
		}
		for next = next.Next(); c.Subnet.Contains(next) && hostAddr(c.Subnet, next) == ""; next = next.Next() {
			if next != c.Head.Addr() && !inRange(next, c.DHCPStart, c.DHCPEnd) && used[next.String()] == nil {
				break
			}
		}
		if !c.Subnet.Contains(next) || hostAddr(c.Subnet, next) != "" {
			return // the subnet is full; dhcpd falls back to the range
		}
		p.Address, p.AddressByOrder = next, true
		used[next.String()] = p
	}
}
