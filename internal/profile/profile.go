package profile

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/magibake/magibake/profiles"
)

// Role is what a node does in the cluster.
type Role string

const (
	// RoleHead serves DHCP on the cluster network and routes it to the uplink.
	RoleHead Role = "head"
	// RoleWorker takes its address from the head.
	RoleWorker Role = "worker"
)

// Cluster is a loaded, validated profile with every default applied and every
// secret resolved.
type Cluster struct {
	Name, Domain       string
	Subnet             netip.Prefix // masked
	Head               netip.Prefix // head address with the subnet's prefix length, e.g. 10.3.50.1/24
	DHCPStart, DHCPEnd netip.Addr
	DNS                []netip.Addr
	DefaultLease       int // seconds
	MaxLease           int // seconds
	Uplink             string
	HomeNetwork        netip.Prefix // zero (IsValid()==false) when absent
	// HomeGateway and HomeDNS are the home network's router and name
	// servers, for nodes with a fixed home address (Node.HomeStatic);
	// HomeDNS defaults to the gateway.
	HomeGateway netip.Addr
	HomeDNS     []netip.Addr
	WiFi        *WiFi // nil when absent
	User        User
	Base        Base
	// OfflineDebs is a host directory of .deb files the head's first boot
	// installs from (isc-dhcp-server, iptables and their dependencies), so
	// it needs no network; "" installs with apt instead.
	OfflineDebs string
	// Kubernetes prepares every node for k3s/kubeadm: memory cgroup on the
	// kernel command line, swap off, the bridge modules and sysctls.
	Kubernetes bool
	Nodes      []Node // head first, then workers sorted by hostname
	// Digest is the hex sha256 over the raw profile files (sorted by name,
	// each "name\x00bytes\x00"); secrets given via env or file are not in it.
	Digest string
}

// WiFi is the home network every node joins on the uplink interface.
type WiFi struct {
	SSID, Passphrase, Country string // Country is upper case
	Hidden                    bool
	// Security is SecurityWPA2 (the default) or SecurityWPA3.
	Security string
}

// Wi-Fi security modes a profile may ask for.
const (
	// SecurityWPA2 is WPA2-Personal (PSK); it also joins WPA2/WPA3 mixed networks.
	SecurityWPA2 = "wpa2"
	// SecurityWPA3 is WPA3-Personal only (SAE, management frames protected).
	SecurityWPA3 = "wpa3"
)

// User is the login account created on every node.
type User struct {
	Name, PasswordHash string
	SSHKeys            []string // one authorized_keys line each
	PasswordLogin      bool
}

// Base names the Raspberry Pi OS image to start from; both empty when absent.
// SHA256 alone is empty when the profile leaves the check to the .sha256
// published beside an http(s) URL (the base is then not pinned).
type Base struct {
	URL, SHA256 string // SHA256 is lower-case hex
}

// Node is one machine of the cluster.
type Node struct {
	Hostname string
	Role     Role
	MAC      net.HardwareAddr // nil when absent
	Address  netip.Addr       // head: Head.Addr(); worker: fixed address or zero
	// AddressByOrder: Address was given in hostname order (a worker with a
	// MAC and no address:), so a worker added later can move it.
	AddressByOrder bool
	// Home is where the owner reaches the node on the home network (SSH,
	// Ansible, magibake check): home_address as written (an IPv4 address
	// or a DNS name), else HOSTNAME.local, which Raspberry Pi OS announces
	// over mDNS (avahi-daemon).
	Home string
	// HomeStatic makes Home (then an IPv4 address in HomeNetwork) the
	// node's fixed address on the uplink instead of one from the router's
	// DHCP.
	HomeStatic bool
	// Settings are the node's whole-Pi settings, its own over its role's
	// over the cluster's.
	Settings Settings
	Source   string // display path of its file
}

// Options says where secrets referenced by a profile are read from.
type Options struct {
	// Getenv looks up {env: NAME} values; nil means os.Getenv.
	Getenv func(string) string
	// FileBase is the directory relative {file: PATH} values are read from; "" means ".".
	FileBase string
}

// Error is one problem in a profile, located at a file and line.
type Error struct {
	File  string
	Line  int // 0 when the problem has no single line
	Field string
	Msg   string
}

// Error formats the problem as "FILE:LINE: FIELD: MSG" on one line.
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.File)
	if e.Line > 0 {
		b.WriteString(":")
		b.WriteString(strconv.Itoa(e.Line))
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Msg)
	return b.String()
}

// Node returns the node with the given hostname.
func (c *Cluster) Node(name string) (*Node, error) {
	names := make([]string, len(c.Nodes))
	for i := range c.Nodes {
		if c.Nodes[i].Hostname == name {
			return &c.Nodes[i], nil
		}
		names[i] = c.Nodes[i].Hostname
	}
	return nil, fmt.Errorf("unknown node %q (profiles: %s)", name, strings.Join(names, ", "))
}

// HeadNode returns the head node; a loaded cluster always has exactly one.
func (c *Cluster) HeadNode() *Node {
	for i := range c.Nodes {
		if c.Nodes[i].Role == RoleHead {
			return &c.Nodes[i]
		}
	}
	return nil
}

// SecretValues returns the non-empty secrets of the cluster, so callers can
// check that none of them ends up in logs, plans or manifests.
func (c *Cluster) SecretValues() []string {
	var s []string
	if c.WiFi != nil && c.WiFi.Passphrase != "" {
		s = append(s, c.WiFi.Passphrase)
	}
	if c.User.PasswordHash != "" {
		s = append(s, c.User.PasswordHash)
	}
	return s
}

// Default loads the profile embedded in the binary.
func Default(opt Options) (*Cluster, error) {
	return Load(profiles.FS, "profiles (embedded)", opt)
}

// LoadDir loads the profile in dir; relative file references are read
// relative to dir unless opt.FileBase says otherwise.
func LoadDir(dir string, opt Options) (*Cluster, error) {
	if opt.FileBase == "" {
		opt.FileBase = dir
	}
	return Load(os.DirFS(dir), dir, opt)
}

// clusterFile is the one file of a profile directory that is not a node.
const clusterFile = "cluster.yaml"

// Load reads cluster.yaml and every other *.yaml file (one node each, or
// count workers) from the top of fsys. display names the directory in error
// messages. All problems found are returned together, joined, each an
// *Error.
func Load(fsys fs.FS, display string, opt Options) (*Cluster, error) {
	if opt.Getenv == nil {
		opt.Getenv = os.Getenv
	}
	if opt.FileBase == "" {
		opt.FileBase = "."
	}
	dirErr := func(msg string) error {
		return errors.Join(&Error{File: display, Msg: msg})
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil, dirErr(fmt.Sprintf("read profile directory: %v", err))
	}
	files := map[string][]byte{}
	var names []string // sorted, as fs.ReadDir returns them
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") {
			continue
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			return nil, dirErr(fmt.Sprintf("read %s: %v", e.Name(), err))
		}
		files[e.Name()] = b
		names = append(names, e.Name())
	}
	sort.Strings(names)

	l := &loader{display: display, opt: opt}
	c := &Cluster{Digest: digest(names, files)}
	raw, ok := files[clusterFile]
	if !ok {
		l.errs = append(l.errs, &Error{File: l.path(clusterFile), Msg: "missing: a profile directory needs cluster.yaml and one <hostname>.yaml per node"})
	} else {
		l.cluster(c, raw)
	}
	var nodes []parsedNode
	nodeFiles, roleKnown := 0, true
	for _, name := range names {
		if name == clusterFile {
			continue
		}
		nodeFiles++
		ns, known := l.node(name, files[name])
		nodes = append(nodes, ns...)
		roleKnown = roleKnown && known
	}
	l.nodes(c, nodes, nodeFiles, roleKnown)
	if len(l.errs) > 0 {
		// Checks across files report late; list problems file by file, in
		// the order the files were read, then by line.
		rank := map[string]int{l.path(clusterFile): -1}
		for i, name := range names {
			if name != clusterFile {
				rank[l.path(name)] = i
			}
		}
		fileRank := func(e error) (int, int) {
			pe, ok := e.(*Error)
			if !ok {
				return len(names), 0
			}
			r, ok := rank[pe.File]
			if !ok {
				r = len(names)
			}
			return r, pe.Line
		}
		sort.SliceStable(l.errs, func(i, j int) bool {
			ri, li := fileRank(l.errs[i])
			rj, lj := fileRank(l.errs[j])
			return ri < rj || (ri == rj && li < lj)
		})
		return nil, errors.Join(l.errs...)
	}
	return c, nil
}

// digest hashes the raw files, which hold references to secrets but never
// the secrets themselves.
func digest(names []string, files map[string][]byte) string {
	h := sha256.New()
	for _, name := range names {
		h.Write([]byte(name))
		h.Write([]byte{0})
		h.Write(files[name])
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// loader collects the problems of one Load.
type loader struct {
	display string
	opt     Options
	errs    []error
	// settings and roleSettings are cluster.yaml's, for the nodes.
	settings     *partial
	roleSettings map[Role]*partial
}

func (l *loader) path(name string) string {
	if l.display == "" {
		return name
	}
	return filepath.Join(l.display, name)
}

// NodeNames returns the hostnames the node files of fsys stand for, sorted,
// without reading cluster.yaml or resolving any {env} or {file} value: for
// shell completion, which runs where the secrets may not be set. A file
// with problems gives the names it could read.
func NodeNames(fsys fs.FS) []string {
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		return nil
	}
	l := &loader{opt: Options{Getenv: func(string) string { return "" }, FileBase: "."}}
	var names []string
	for _, e := range entries {
		if e.IsDir() || !strings.HasSuffix(e.Name(), ".yaml") || e.Name() == clusterFile {
			continue
		}
		b, err := fs.ReadFile(fsys, e.Name())
		if err != nil {
			continue
		}
		ns, _ := l.node(e.Name(), b)
		for _, n := range ns {
			if n.Hostname != "" {
				names = append(names, n.Hostname)
			}
		}
	}
	sort.Strings(names)
	return names
}

// DefaultFS is the profile embedded in the binary, for NodeNames.
func DefaultFS() fs.FS { return profiles.FS }
