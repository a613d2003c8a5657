package profile

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// Lease times dhcpd uses when the profile gives none.
const (
	defaultLease = 600
	maxLease     = 7200
)

// cluster parses cluster.yaml into c, reporting every problem.
func (l *loader) cluster(c *Cluster, raw []byte) {
	d := &doc{file: l.path(clusterFile), errs: &l.errs}
	root := d.parse(raw)
	if root == nil {
		return
	}
	var headNode *yaml.Node
	var rangeNodes []*yaml.Node
	l.settings = &partial{}
	l.roleSettings = map[Role]*partial{}
	k, ok := d.mapping(root, "", d.withSettings(l.settings, map[string]func(string, *yaml.Node){
		"name": func(f string, v *yaml.Node) {
			if s, ok := d.str(f, v); ok {
				if msg := labelProblem(s); msg != "" {
					d.fail(v, f, "%s", msg)
				} else {
					c.Name = s
				}
			}
		},
		"domain": func(f string, v *yaml.Node) {
			if s, ok := d.str(f, v); ok {
				if msg := domainProblem(s); msg != "" {
					d.fail(v, f, "%s", msg)
				} else {
					c.Domain = s
				}
			}
		},
		"subnet": func(f string, v *yaml.Node) {
			if p, ok := d.prefix(f, v, "an IPv4 prefix like 10.3.50.0/24"); ok {
				c.Subnet = p
			}
		},
		"head_address": func(f string, v *yaml.Node) {
			const want = "an IPv4 address with prefix length like 10.3.50.1/24"
			s, ok := d.scalar(f, v, want)
			if !ok {
				return
			}
			headNode = resolve(v)
			if a, ok := parseIPv4(s); ok {
				bits := 24
				if c.Subnet.IsValid() {
					bits = c.Subnet.Bits()
				}
				d.fail(v, f, "%s needs a prefix length, e.g. %s/%d: without it the kernel adds no route for the subnet", a, a, bits)
				return
			}
			p, err := netip.ParsePrefix(s)
			if err != nil || !p.Addr().Is4() {
				d.fail(v, f, "want %s, got %s", want, quote(s))
				return
			}
			c.Head = p
		},
		"dhcp": func(f string, v *yaml.Node) {
			l.dhcp(d, c, f, v, &rangeNodes)
		},
		"uplink": func(f string, v *yaml.Node) {
			if s, ok := d.str(f, v); ok {
				if msg := interfaceProblem(s); msg != "" {
					d.fail(v, f, "%s", msg)
				} else {
					c.Uplink = s
				}
			}
		},
		"offline_debs": func(f string, v *yaml.Node) {
			s, _, ok := d.value(f, v, l.opt)
			if !ok || s == "" {
				return
			}
			dir, msg := checkDebsDir(s, l.opt.FileBase)
			if msg != "" {
				d.fail(v, f, "%s", msg)
				return
			}
			c.OfflineDebs = dir
		},
		"home_network": func(f string, v *yaml.Node) {
			if p, ok := d.prefix(f, v, "an IPv4 prefix like 192.168.0.0/24"); ok {
				c.HomeNetwork = p
			}
		},
		"wifi": func(f string, v *yaml.Node) {
			c.WiFi = l.wifi(d, f, v)
		},
		"user": func(f string, v *yaml.Node) {
			l.user(d, c, f, v)
		},
		"base": func(f string, v *yaml.Node) {
			l.base(d, c, f, v)
		},
		"kubernetes": func(f string, v *yaml.Node) {
			if b, ok := d.boolean(f, v); ok {
				c.Kubernetes = b
			}
		},
		"home_gateway": func(f string, v *yaml.Node) {
			if a, ok := d.address(f, v); ok {
				c.HomeGateway = a
			}
		},
		"home_dns": func(f string, v *yaml.Node) {
			items, ok := d.list(f, v, "a list of IPv4 addresses like [192.168.0.1]")
			if !ok {
				return
			}
			for i, it := range items {
				if a, ok := d.address(item(f, i), it); ok {
					c.HomeDNS = append(c.HomeDNS, a)
				}
			}
		},
		"roles": func(f string, v *yaml.Node) {
			d.roles(f, v, l.roleSettings)
		},
	}))
	if !ok {
		return
	}
	d.require(k, "", "name", "domain", "subnet", "head_address", "dhcp", "uplink", "user")
	if !k.has("dhcp") {
		c.DefaultLease, c.MaxLease = defaultLease, maxLease
	}

	// Checks between fields, made only when the fields themselves are good
	// so that one mistake is reported once.
	if c.Subnet.IsValid() && c.Head.IsValid() {
		switch {
		case c.Head.Bits() != c.Subnet.Bits():
			d.fail(headNode, "head_address", "prefix length /%d differs from the subnet's /%d; want %s/%d", c.Head.Bits(), c.Subnet.Bits(), c.Head.Addr(), c.Subnet.Bits())
			c.Head = netip.Prefix{}
		default:
			if msg := hostAddr(c.Subnet, c.Head.Addr()); msg != "" {
				d.fail(headNode, "head_address", "%s", msg)
				c.Head = netip.Prefix{}
			}
		}
	}
	if c.Subnet.IsValid() && c.DHCPStart.IsValid() {
		for i, a := range []netip.Addr{c.DHCPStart, c.DHCPEnd} {
			if msg := hostAddr(c.Subnet, a); msg != "" {
				d.fail(rangeNodes[i], item("dhcp.range", i), "%s", msg)
				c.DHCPStart, c.DHCPEnd = netip.Addr{}, netip.Addr{}
				break
			}
		}
	}
	if c.Head.IsValid() && c.DHCPStart.IsValid() && inRange(c.Head.Addr(), c.DHCPStart, c.DHCPEnd) {
		d.fail(rangeNodes[0], "dhcp.range", "%s-%s contains the head address %s", c.DHCPStart, c.DHCPEnd, c.Head.Addr())
		c.DHCPStart, c.DHCPEnd = netip.Addr{}, netip.Addr{}
	}
	if c.Subnet.IsValid() && c.HomeNetwork.IsValid() && c.Subnet.Overlaps(c.HomeNetwork) {
		d.fail(k.at["home_network"], "home_network", "%s overlaps the cluster subnet %s", c.HomeNetwork, c.Subnet)
		c.HomeNetwork = netip.Prefix{}
	}
	if c.HomeGateway.IsValid() {
		switch {
		case !k.has("home_network"):
			d.fail(k.at["home_gateway"], "home_gateway", "needs home_network, the prefix the gateway is in")
			c.HomeGateway = netip.Addr{}
		case c.HomeNetwork.IsValid():
			if msg := hostAddr(c.HomeNetwork, c.HomeGateway); msg != "" {
				d.fail(k.at["home_gateway"], "home_gateway", "%s", msg)
				c.HomeGateway = netip.Addr{}
			}
		}
	}
	if len(c.HomeDNS) > 0 && !k.has("home_gateway") {
		d.fail(k.at["home_dns"], "home_dns", "needs home_gateway: the DNS servers are for nodes with a fixed home address (home_static)")
	}
	if len(c.HomeDNS) == 0 && c.HomeGateway.IsValid() {
		c.HomeDNS = []netip.Addr{c.HomeGateway}
	}
}

// prefix parses a masked IPv4 prefix.
func (d *doc) prefix(f string, v *yaml.Node, want string) (netip.Prefix, bool) {
	s, ok := d.scalar(f, v, want)
	if !ok {
		return netip.Prefix{}, false
	}
	p, err := netip.ParsePrefix(s)
	if err != nil || !p.Addr().Is4() {
		d.fail(v, f, "want %s, got %s", want, quote(s))
		return netip.Prefix{}, false
	}
	if p.Masked() != p {
		d.fail(v, f, "%s has host bits set; want the network address %s", p, p.Masked())
		return netip.Prefix{}, false
	}
	if p.Bits() > 30 {
		d.fail(v, f, "%s leaves no room for hosts; want a prefix length of at most /30", p)
		return netip.Prefix{}, false
	}
	return p, true
}

func inRange(a, start, end netip.Addr) bool {
	return a.Compare(start) >= 0 && a.Compare(end) <= 0
}

func (l *loader) dhcp(d *doc, c *Cluster, f string, v *yaml.Node, rangeNodes *[]*yaml.Node) {
	c.DefaultLease, c.MaxLease = defaultLease, maxLease
	var defNode *yaml.Node
	k, ok := d.mapping(v, f, map[string]func(string, *yaml.Node){
		"range": func(f string, v *yaml.Node) {
			const want = "a list of two addresses like [10.3.50.10, 10.3.50.20]"
			items, ok := d.list(f, v, want)
			if !ok {
				return
			}
			if len(items) != 2 {
				d.fail(v, f, "want %s (first and last address), got %d", want, len(items))
				return
			}
			var a [2]netip.Addr
			good := true
			for i, n := range items {
				s, ok := d.scalar(item(f, i), n, "an IPv4 address")
				if !ok {
					good = false
					continue
				}
				if a[i], ok = parseIPv4(s); !ok {
					d.fail(n, item(f, i), "want an IPv4 address, got %s", quote(s))
					good = false
				}
			}
			if !good {
				return
			}
			if a[0].Compare(a[1]) > 0 {
				d.fail(v, f, "range is reversed: %s comes after %s", a[0], a[1])
				return
			}
			c.DHCPStart, c.DHCPEnd = a[0], a[1]
			*rangeNodes = []*yaml.Node{resolve(items[0]), resolve(items[1])}
		},
		"dns": func(f string, v *yaml.Node) {
			items, ok := d.list(f, v, "a list of IPv4 addresses like [8.8.8.8, 8.8.4.4]")
			if !ok {
				return
			}
			if len(items) == 0 {
				d.fail(v, f, "want at least one DNS server")
				return
			}
			var dns []netip.Addr
			for i, n := range items {
				s, ok := d.scalar(item(f, i), n, "an IPv4 address")
				if !ok {
					continue
				}
				if a, ok := parseIPv4(s); ok {
					dns = append(dns, a)
				} else {
					d.fail(n, item(f, i), "want an IPv4 address, got %s", quote(s))
				}
			}
			if len(dns) == len(items) {
				c.DNS = dns
			}
		},
		"default_lease_time": func(f string, v *yaml.Node) {
			if n, ok := d.seconds(f, v); ok {
				c.DefaultLease, defNode = n, resolve(v)
			}
		},
		"max_lease_time": func(f string, v *yaml.Node) {
			if n, ok := d.seconds(f, v); ok {
				c.MaxLease = n
			}
		},
	})
	if !ok {
		return
	}
	d.require(k, f, "range", "dns")
	if c.DefaultLease > c.MaxLease {
		n := defNode
		if n == nil {
			n = k.at["max_lease_time"]
		}
		d.fail(n, join(f, "default_lease_time"), "%d seconds is more than max_lease_time (%d)", c.DefaultLease, c.MaxLease)
	}
}

func (l *loader) wifi(d *doc, f string, v *yaml.Node) *WiFi {
	w := &WiFi{}
	good := true
	// secret reads a required string field; check returns the value to keep
	// and the problem, if any.
	secret := func(dst *string, check func(string) (string, string)) func(string, *yaml.Node) {
		return func(f string, v *yaml.Node) {
			s, absent, ok := d.value(f, v, l.opt)
			switch {
			case !ok:
				good = false
				return
			case absent != "":
				d.fail(v, f, "required, but %s is empty or missing", absent)
				good = false
				return
			}
			s, msg := check(s)
			if msg != "" {
				d.fail(v, f, "%s", msg)
				good = false
				return
			}
			*dst = s
		}
	}
	plain := func(check func(string) string) func(string) (string, string) {
		return func(s string) (string, string) { return s, check(s) }
	}
	k, ok := d.mapping(v, f, map[string]func(string, *yaml.Node){
		"ssid":       secret(&w.SSID, plain(ssidProblem)),
		"passphrase": secret(&w.Passphrase, plain(passphraseProblem)),
		"country":    secret(&w.Country, country),
		"hidden": func(f string, v *yaml.Node) {
			if b, ok := d.boolean(f, v); ok {
				w.Hidden = b
			} else {
				good = false
			}
		},
		"security": func(f string, v *yaml.Node) {
			s, ok := d.str(f, v)
			switch {
			case !ok:
				good = false
			case s != SecurityWPA2 && s != SecurityWPA3:
				d.fail(v, f, "want wpa2 or wpa3, got %s", quote(s))
				good = false
			default:
				w.Security = s
			}
		},
	})
	if !ok {
		return nil
	}
	d.require(k, f, "ssid", "passphrase", "country")
	if !good || w.SSID == "" || w.Passphrase == "" || w.Country == "" {
		return nil
	}
	if w.Security == "" {
		w.Security = SecurityWPA2
	}
	// SAE works from the passphrase itself; a raw PSK is WPA2's alone.
	if w.Security == SecurityWPA3 && len(w.Passphrase) == 64 && hexRE.MatchString(w.Passphrase) {
		d.fail(k.at["passphrase"], join(f, "passphrase"), "security wpa3 (SAE) needs the passphrase itself; a 64-hex-digit PSK works only with wpa2")
		return nil
	}
	return w
}

func (l *loader) user(d *doc, c *Cluster, f string, v *yaml.Node) {
	u := &c.User
	var loginNode *yaml.Node
	loginSet := false
	// credBad says a password hash or key was given but is unusable, which
	// was reported already and must not read as "no way to log in" too.
	credBad := false
	var absent []string // optional references that found nothing
	k, ok := d.mapping(v, f, map[string]func(string, *yaml.Node){
		"name": func(f string, v *yaml.Node) {
			s, absent, ok := d.value(f, v, l.opt)
			if !ok {
				return
			}
			if absent != "" {
				d.fail(v, f, "required, but %s is empty or missing", absent)
				return
			}
			if msg := userNameProblem(s); msg != "" {
				d.fail(v, f, "%s", msg)
				return
			}
			u.Name = s
		},
		"password_hash": func(f string, v *yaml.Node) {
			s, none, ok := d.value(f, v, l.opt)
			if !ok {
				credBad = true
				return
			}
			if none != "" {
				absent = append(absent, none)
				return
			}
			if msg := passwordHashProblem(s); msg != "" {
				d.fail(v, f, "%s", msg)
				credBad = true
				return
			}
			u.PasswordHash = s
		},
		"ssh_authorized_keys": func(f string, v *yaml.Node) {
			items, ok := d.list(f, v, "a list of SSH public keys, each a string, {env: NAME} or {file: PATH}")
			if !ok {
				credBad = true
				return
			}
			for i, n := range items {
				s, none, ok := d.value(item(f, i), n, l.opt)
				if !ok {
					credBad = true
					continue
				}
				if none != "" {
					absent = append(absent, none)
					continue
				}
				keys, msg := sshKeys(s)
				if msg != "" {
					d.fail(n, item(f, i), "%s", msg)
					credBad = true
					continue
				}
				u.SSHKeys = append(u.SSHKeys, keys...)
			}
		},
		"password_login": func(f string, v *yaml.Node) {
			if b, ok := d.boolean(f, v); ok {
				u.PasswordLogin, loginSet, loginNode = b, true, resolve(v)
			}
		},
	})
	if !ok {
		return
	}
	d.require(k, f, "name")
	if !loginSet {
		u.PasswordLogin = len(u.SSHKeys) == 0
	}
	switch {
	case credBad:
	case u.PasswordHash == "" && len(u.SSHKeys) == 0:
		hint := ""
		if len(absent) > 0 {
			hint = " (" + strings.Join(absent, ", ") + ": empty or missing)"
		}
		d.fail(k.node, f, "no way to log in: give password_hash, ssh_authorized_keys, or both%s", hint)
	case u.PasswordLogin && u.PasswordHash == "":
		d.fail(loginNode, join(f, "password_login"), "true needs a password_hash")
	}
}

func (l *loader) base(d *doc, c *Cluster, f string, v *yaml.Node) {
	var b Base
	good := true
	k, ok := d.mapping(v, f, map[string]func(string, *yaml.Node){
		"url": func(f string, v *yaml.Node) {
			s, absent, ok := d.value(f, v, l.opt)
			if !ok || absent != "" {
				good = good && ok
				return
			}
			if msg := urlProblem(s); msg != "" {
				d.fail(v, f, "%s", msg)
				good = false
				return
			}
			b.URL = s
		},
		"sha256": func(f string, v *yaml.Node) {
			s, absent, ok := d.value(f, v, l.opt)
			if !ok || absent != "" {
				good = good && ok
				return
			}
			sum, msg := parseSHA256(s)
			if msg != "" {
				d.fail(v, f, "%s", msg)
				good = false
				return
			}
			b.SHA256 = sum
		},
	})
	if !ok || !good {
		return
	}
	// sha256 may be left out: fetch and build then check the download
	// against the .sha256 published beside url and print the line that pins
	// it. A sha256 without its url names nothing to download.
	d.require(k, f, "url")
	switch {
	case b.URL == "" && b.SHA256 != "":
		if k.has("url") {
			d.fail(k.node, f, "sha256 needs a url; an optional reference left url empty")
		}
		return
	case b.SHA256 == "" && strings.HasPrefix(strings.ToLower(b.URL), "file:"):
		d.fail(k.node, join(f, "sha256"), "a file:// base needs its sha256: only an http(s) URL has a published .sha256 to check it against")
		return
	}
	c.Base = b
}

// checkDebsDir resolves a directory of .deb files (relative to base) and
// checks it holds at least one.
func checkDebsDir(dir, base string) (string, string) {
	if rest, ok := strings.CutPrefix(dir, "~/"); ok {
		if home, err := os.UserHomeDir(); err == nil {
			dir = filepath.Join(home, rest)
		}
	} else if !filepath.IsAbs(dir) {
		dir = filepath.Join(base, dir)
	}
	debs, err := filepath.Glob(filepath.Join(dir, "*.deb"))
	if st, serr := os.Stat(dir); serr != nil || !st.IsDir() {
		return "", fmt.Sprintf("%s is not a directory", dir)
	}
	if err != nil || len(debs) == 0 {
		return "", fmt.Sprintf("%s holds no .deb files", dir)
	}
	return dir, ""
}
