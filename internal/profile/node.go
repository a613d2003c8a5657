package profile

import (
	"sort"
	"strings"

	"gopkg.in/yaml.v3"
)

// parsedNode is a node file as read, with where each value was written, for
// the checks across files.
type parsedNode struct {
	Node
	d                              *doc
	role, mac, address, host, home *yaml.Node
}

// node parses one node file; ok is false when it holds no usable node.
func (l *loader) node(name string, raw []byte) (parsedNode, bool) {
	d := &doc{file: l.path(name), errs: &l.errs}
	p := parsedNode{d: d}
	p.Source = d.file
	root := d.parse(raw)
	if root == nil {
		return p, false
	}
	want := strings.TrimSuffix(name, ".yaml")
	k, ok := d.mapping(root, "", map[string]func(string, *yaml.Node){
		"hostname": func(f string, v *yaml.Node) {
			s, ok := d.str(f, v)
			if !ok {
				return
			}
			if msg := checkLabel(s); msg != "" {
				d.fail(v, f, "%s", msg)
				return
			}
			if s != want {
				// Still use it, so duplicates are found too.
				d.fail(v, f, "%s does not match the file name %s; name the file %s.yaml", quote(s), name, s)
			}
			p.Hostname, p.host = s, resolve(v)
		},
		"role": func(f string, v *yaml.Node) {
			s, ok := d.scalar(f, v, "head or worker")
			if !ok {
				return
			}
			switch r := Role(s); r {
			case RoleHead, RoleWorker:
				p.Role, p.role = r, resolve(v)
			default:
				d.fail(v, f, "unknown role %s; want head or worker", quote(s))
			}
		},
		"mac": func(f string, v *yaml.Node) {
			s, ok := d.str(f, v)
			if !ok {
				return
			}
			mac, msg := parseMAC(s)
			if msg != "" {
				d.fail(v, f, "%s", msg)
				return
			}
			p.MAC, p.mac = mac, resolve(v)
		},
		"address": func(f string, v *yaml.Node) {
			s, ok := d.scalar(f, v, "an IPv4 address like 10.3.50.2")
			if !ok {
				return
			}
			a, ok := parseIPv4(s)
			if !ok {
				hint := ""
				if strings.Contains(s, "/") {
					hint = " (without a prefix length: the subnet gives it)"
				}
				d.fail(v, f, "want an IPv4 address like 10.3.50.2%s, got %s", hint, quote(s))
				return
			}
			p.Address, p.address = a, resolve(v)
		},
		"home_address": func(f string, v *yaml.Node) {
			s, ok := d.scalar(f, v, "an IPv4 address or DNS name like 192.168.0.20 or caspar.lan")
			if !ok {
				return
			}
			if _, isIP := parseIPv4(s); !isIP {
				if msg := checkDomain(s); msg != "" {
					d.fail(v, f, "want an IPv4 address or DNS name like 192.168.0.20 or caspar.lan, got %s", quote(s))
					return
				}
			}
			p.Home, p.home = s, resolve(v)
		},
	})
	if !ok {
		return p, false
	}
	d.require(k, "", "hostname", "role")
	return p, p.Hostname != ""
}

// nodes checks the nodes against each other and the cluster, and stores
// them in c. files is the number of node files found; roleKnown says every
// one of them has a valid role, so a missing head is a real finding.
func (l *loader) nodes(c *Cluster, nodes []parsedNode, files int, roleKnown bool) {
	if files == 0 {
		l.errs = append(l.errs, &Error{File: l.display, Msg: "no nodes: want one <hostname>.yaml per node beside cluster.yaml"})
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
		if p.Home == "" {
			p.Home = p.Hostname + ".local"
		} else if first := homes[p.Home]; first != nil {
			d.fail(p.home, "home_address", "%s is also the home address of %s (%s)", p.Home, first.Hostname, first.Source)
		} else {
			homes[p.Home] = p
			if a, isIP := parseIPv4(p.Home); isIP {
				switch {
				case c.Subnet.IsValid() && c.Subnet.Contains(a):
					d.fail(p.home, "home_address", "%s is in the cluster subnet %s; want the node's address on the home network", a, c.Subnet)
				case c.HomeNetwork.IsValid() && !c.HomeNetwork.Contains(a):
					d.fail(p.home, "home_address", "%s is outside home_network %s in %s", a, c.HomeNetwork, clusterFile)
				}
			}
		}
		if first := hosts[p.Hostname]; first != nil {
			d.fail(p.host, "hostname", "%s is also the hostname in %s", p.Hostname, first.Source)
		} else {
			hosts[p.Hostname] = p
		}
		if p.MAC != nil {
			key := p.MAC.String()
			if first := macs[key]; first != nil {
				d.fail(p.mac, "mac", "%s is also the MAC of %s (%s)", key, first.Hostname, first.Source)
			} else {
				macs[key] = p
			}
		}
		switch p.Role {
		case RoleHead:
			if head != nil {
				d.fail(p.role, "role", "a second head: %s (%s) is the head already; a cluster has one", head.Hostname, head.Source)
				continue
			}
			head = p
			if c.Head.IsValid() {
				if p.Address.IsValid() && p.Address != c.Head.Addr() {
					d.fail(p.address, "address", "%s differs from head_address %s in %s; the head's address is set there", p.Address, c.Head, clusterFile)
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
				d.fail(p.address, "address", "%s", msg)
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
		p.Address = next
		used[next.String()] = p
	}
}
