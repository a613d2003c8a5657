// Package inventory renders a loaded cluster for the owner's own tools: an
// Ansible inventory (YAML or INI) and ~/.ssh/config Host blocks. The cli's
// inventory and ssh-config commands use it; it holds no secret, so its
// output may be kept anywhere.
package inventory

import (
	"bytes"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/magibake/magibake/internal/profile"
)

// The inventory formats Ansible writes: YAML, and Ansible's INI format.
const (
	YAML = "yaml"
	INI  = "ini"
)

// Formats returns the inventory formats Ansible writes, the default first.
func Formats() []string { return []string{YAML, INI} }

// Group names of the inventory besides the cluster's own.
const (
	HeadGroup    = "head"
	WorkersGroup = "workers"
)

// variable is one inventory variable; order is kept as written.
type variable struct{ name, value string }

// host is one node as the inventory lists it.
type host struct {
	name string
	vars []variable
}

// model is the whole inventory: the cluster group with its variables and
// the two child groups, each in the order profile.Cluster.Nodes gives.
type model struct {
	cluster       string
	vars          []variable
	head, workers []host
}

func newModel(c *profile.Cluster) (*model, error) {
	switch c.Name {
	case "all", "ungrouped", HeadGroup, WorkersGroup:
		return nil, fmt.Errorf("cluster name %q is also a group of the Ansible inventory (all, ungrouped, %s, %s): give the cluster another name in cluster.yaml", c.Name, HeadGroup, WorkersGroup)
	}
	m := &model{cluster: c.Name}
	m.vars = appendVar(m.vars, "cluster_subnet", c.Subnet.String())
	m.vars = appendVar(m.vars, "cluster_head_address", c.Head.Addr().String())
	m.vars = appendVar(m.vars, "cluster_domain", c.Domain)
	m.vars = appendVar(m.vars, "cluster_uplink", c.Uplink)
	for _, n := range c.Nodes {
		h := host{name: n.Hostname}
		h.vars = appendVar(h.vars, "ansible_host", n.Home)
		h.vars = appendVar(h.vars, "ansible_user", c.User.Name)
		if n.Address.IsValid() {
			h.vars = appendVar(h.vars, "cluster_address", n.Address.String())
		}
		if n.MAC != nil {
			h.vars = appendVar(h.vars, "cluster_mac", n.MAC.String())
		}
		h.vars = appendVar(h.vars, "role", string(n.Role))
		// What the card set, for playbooks that would otherwise set it again.
		h.vars = appendVar(h.vars, "timezone", n.Settings.Timezone)
		h.vars = appendVar(h.vars, "locale", n.Settings.Locale)
		if k := n.Settings.Keyboard; k != nil {
			h.vars = appendVar(h.vars, "keyboard_layout", k.Layout)
		}
		if n.Role == profile.RoleHead {
			m.head = append(m.head, h)
		} else {
			m.workers = append(m.workers, h)
		}
	}
	return m, nil
}

// appendVar leaves out empty values: Ansible would read them as "" or null.
func appendVar(vars []variable, name, value string) []variable {
	if value == "" {
		return vars
	}
	return append(vars, variable{name, value})
}

// Ansible returns the cluster as an Ansible inventory in format ("yaml" or
// "ini"): a group named after the cluster with the children head and
// workers, every node's ansible_host (its home address) and ansible_user,
// and the cluster's network as group variables.
func Ansible(c *profile.Cluster, format string) ([]byte, error) {
	m, err := newModel(c)
	if err != nil {
		return nil, err
	}
	switch format {
	case YAML:
		return m.yaml()
	case INI:
		return m.ini()
	}
	return nil, fmt.Errorf("inventory format %q: want one of %s", format, strings.Join(Formats(), ", "))
}

func (m *model) header(format string) string {
	return fmt.Sprintf("# Ansible inventory of the %s cluster, from its magibake profiles (magibake inventory --format %s).\n", m.cluster, format)
}

// yaml writes the model with yaml.v3, whose string encoding quotes every
// value YAML 1.1 (Ansible's PyYAML) would read as something else: a MAC
// like 12:34:56:01:02:03 is a base-60 number there.
func (m *model) yaml() ([]byte, error) {
	var y yamlBuilder
	hosts := func(hs []host) *yaml.Node {
		list := y.mapping()
		for _, h := range hs {
			vars := y.mapping()
			for _, v := range h.vars {
				y.add(vars, v.name, y.str(v.value))
			}
			y.add(list, h.name, vars)
		}
		g := y.mapping()
		if len(hs) > 0 {
			y.add(g, "hosts", list)
		}
		return g
	}
	children := y.mapping()
	y.add(children, HeadGroup, hosts(m.head))
	y.add(children, WorkersGroup, hosts(m.workers))
	vars := y.mapping()
	for _, v := range m.vars {
		y.add(vars, v.name, y.str(v.value))
	}
	cluster := y.mapping()
	y.add(cluster, "children", children)
	y.add(cluster, "vars", vars)
	doc := y.mapping()
	y.add(doc, m.cluster, cluster)
	if y.err != nil {
		return nil, fmt.Errorf("inventory: %w", y.err)
	}

	var b bytes.Buffer
	b.WriteString(m.header(YAML))
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("inventory: %w", err)
	}
	return b.Bytes(), nil
}

// yamlBuilder builds a YAML document in a fixed order; err keeps the first
// failure.
type yamlBuilder struct{ err error }

func (y *yamlBuilder) mapping() *yaml.Node { return &yaml.Node{Kind: yaml.MappingNode} }

// str encodes s as yaml.v3 encodes a Go string, quoting it when needed.
func (y *yamlBuilder) str(s string) *yaml.Node {
	n := &yaml.Node{}
	if err := n.Encode(s); err != nil && y.err == nil {
		y.err = fmt.Errorf("encode %q: %w", s, err)
	}
	return n
}

func (y *yamlBuilder) add(m *yaml.Node, key string, value *yaml.Node) {
	m.Content = append(m.Content, y.str(key), value)
}

// iniSafe is what a name or value in the INI inventory may hold: every
// value magibake writes (names, addresses, MACs) fits it, and none of these
// characters means anything to Ansible's shlex split of a host line.
var iniSafe = regexp.MustCompile(`^[A-Za-z0-9._:/-]+$`)

// ini writes the model in Ansible's INI inventory format.
func (m *model) ini() ([]byte, error) {
	var b strings.Builder
	b.WriteString(m.header(INI))
	fmt.Fprintf(&b, "[%s:children]\n%s\n%s\n", m.cluster, HeadGroup, WorkersGroup)
	fmt.Fprintf(&b, "\n[%s:vars]\n", m.cluster)
	for _, v := range m.vars {
		val, err := iniValue(v)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(&b, "%s=%s\n", v.name, val)
	}
	for _, g := range []struct {
		name  string
		hosts []host
	}{{HeadGroup, m.head}, {WorkersGroup, m.workers}} {
		fmt.Fprintf(&b, "\n[%s]\n", g.name)
		for _, h := range g.hosts {
			b.WriteString(h.name)
			for _, v := range h.vars {
				val, err := iniValue(v)
				if err != nil {
					return nil, err
				}
				if strings.HasPrefix(val, "'") {
					// A host line is split like a shell line first, which
					// would take the quotes away before the literal is read.
					val = `"` + val + `"`
				}
				fmt.Fprintf(&b, " %s=%s", v.name, val)
			}
			b.WriteString("\n")
		}
	}
	return []byte(b.String()), nil
}

// iniValue writes v for Ansible's INI parser, which reads every value as a
// Python literal when it can: a domain like 1.5 or a home address like 123
// would become a number, so such a value is written as a quoted string.
// Addresses, prefixes and MACs are never Python literals and stay plain.
func iniValue(v variable) (string, error) {
	if !iniSafe.MatchString(v.value) {
		return "", fmt.Errorf("inventory: %s %q cannot be written in an INI inventory", v.name, v.value)
	}
	// Starting with a letter it is a Python name or expression of names,
	// not a literal; True, False and None are the exceptions.
	if c := v.value[0]; (c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') &&
		v.value != "True" && v.value != "False" && v.value != "None" {
		return v.value, nil
	}
	if _, err := netip.ParseAddr(v.value); err == nil {
		return v.value, nil
	}
	if _, err := netip.ParsePrefix(v.value); err == nil {
		return v.value, nil
	}
	if _, err := net.ParseMAC(v.value); err == nil {
		return v.value, nil
	}
	return "'" + v.value + "'", nil
}
