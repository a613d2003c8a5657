package profile

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
)

// Public keys with well-formed blobs (random key material).
const (
	keyA   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMqXgRLKG73K+sIxs5oj3E2nhu/4FHxOcrmAd4Wv7ki7"
	keyB   = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAID4j6BYAOVlKM4lPZWThsTSLvXoAiNQsSstz7q7VnACd"
	keyRSA = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAAABQDBI0Vn"
	hash   = "$y$j9T$c2FsdHNhbHQ$aGFzaGhhc2hoYXNo"
	sum    = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
)

// validCluster is a complete cluster.yaml; the test cases below refer to its
// line numbers, so keep them stable.
const validCluster = `name: magi
domain: cluster
subnet: 10.3.50.0/24
head_address: 10.3.50.1/24
dhcp:
  range: [10.3.50.10, 10.3.50.20]
  dns: [8.8.8.8, 8.8.4.4]
  default_lease_time: 600
  max_lease_time: 7200
uplink: wlan0
home_network: 192.168.0.0/24
wifi:
  ssid: home
  passphrase: correct horse
  country: gb
  hidden: false
user:
  name: pi
  password_hash: ` + hash + `
  ssh_authorized_keys: [` + keyA + ` me@laptop]
  password_login: false
base:
  url: https://downloads.raspberrypi.com/raspios_lite_arm64/images/x.img.xz
  sha256: ` + sum + `
`

func validFiles() map[string]string {
	return map[string]string{
		"cluster.yaml":   validCluster,
		"caspar.yaml":    "hostname: caspar\nrole: head\nmac: dc:a6:32:01:02:03\n",
		"balthasar.yaml": "hostname: balthasar\nrole: worker\nmac: dc:a6:32:01:02:04\naddress: 10.3.50.2\nhome_address: 192.168.0.21\n",
		"melchior.yaml":  "hostname: melchior\nrole: worker\n",
	}
}

// writeDir writes files into a new temporary directory; an empty content
// leaves the file out.
func writeDir(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		if content == "" {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// edit returns the valid files with cluster.yaml rewritten by the old, new
// pairs in sub and the files in override replacing (or, when empty,
// removing) the defaults.
func edit(t *testing.T, sub []string, override map[string]string) map[string]string {
	t.Helper()
	files := validFiles()
	for i := 0; i+1 < len(sub); i += 2 {
		if !strings.Contains(files["cluster.yaml"], sub[i]) {
			t.Fatalf("cluster.yaml has no %q", sub[i])
		}
		files["cluster.yaml"] = strings.Replace(files["cluster.yaml"], sub[i], sub[i+1], 1)
	}
	for name, content := range override {
		files[name] = content
	}
	return files
}

func noEnv(string) string { return "" }

// problems splits a Load error into its *Error values, failing the test on
// anything else.
func problems(t *testing.T, err error) []*Error {
	t.Helper()
	if err == nil {
		return nil
	}
	var list []error
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		list = j.Unwrap()
	} else {
		list = []error{err}
	}
	var out []*Error
	for _, e := range list {
		pe, ok := e.(*Error)
		if !ok {
			t.Fatalf("problem %v is a %T, want *profile.Error", e, e)
		}
		if strings.Contains(pe.Error(), "\n") {
			t.Errorf("problem spans several lines: %q", pe.Error())
		}
		out = append(out, pe)
	}
	return out
}

func TestValidProfile(t *testing.T) {
	dir := writeDir(t, validFiles())
	c, err := LoadDir(dir, Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, c)
	if c.WiFi == nil || c.WiFi.Country != "GB" || c.WiFi.Security != SecurityWPA2 {
		t.Errorf("WiFi = %+v, want country stored upper case, security wpa2 by default", c.WiFi)
	}
	if got := c.HomeNetwork; got != netip.MustParsePrefix("192.168.0.0/24") {
		t.Errorf("HomeNetwork = %v", got)
	}
	if c.User.SSHKeys[0] != keyA+" me@laptop" || c.User.PasswordLogin {
		t.Errorf("User = %+v", c.User)
	}
	if c.Base != (Base{URL: "https://downloads.raspberrypi.com/raspios_lite_arm64/images/x.img.xz", SHA256: sum}) {
		t.Errorf("Base = %+v", c.Base)
	}
	b, err := c.Node("balthasar")
	if err != nil {
		t.Fatal(err)
	}
	if b.Address != netip.MustParseAddr("10.3.50.2") || b.MAC.String() != "dc:a6:32:01:02:04" || b.Source != filepath.Join(dir, "balthasar.yaml") || b.Home != "192.168.0.21" {
		t.Errorf("balthasar = %+v", b)
	}
	if m, _ := c.Node("melchior"); m.Home != "melchior.local" {
		t.Errorf("melchior's home address = %q, want the mDNS name melchior.local", m.Home)
	}
	if got := c.SecretValues(); !reflect.DeepEqual(got, []string{"correct horse", hash}) {
		t.Errorf("SecretValues = %q", got)
	}
	files := validFiles()
	files["cluster.yaml"] = strings.Replace(files["cluster.yaml"], "hidden: false", "hidden: true\n  security: wpa3", 1)
	w, err := LoadDir(writeDir(t, files), Options{Getenv: noEnv})
	if err != nil || !w.WiFi.Hidden || w.WiFi.Security != SecurityWPA3 {
		t.Errorf("hidden wpa3 network: %+v, %v", w.WiFi, err)
	}
}

// TestFixedAddresses: a worker with a MAC and no address gets the first free
// address above the head's, outside the DHCP range, in hostname order.
func TestFixedAddresses(t *testing.T) {
	tests := []struct {
		name  string
		nodes map[string]string
		want  map[string]string // hostname -> address ("" for none)
	}{
		{"mac only", map[string]string{
			"balthasar.yaml": "hostname: balthasar\nrole: worker\nmac: dc:a6:32:01:02:04\n",
			"melchior.yaml":  "hostname: melchior\nrole: worker\nmac: dc:a6:32:01:02:05\n",
		}, map[string]string{"balthasar": "10.3.50.2", "melchior": "10.3.50.3"}},
		{"pinned address is skipped", map[string]string{
			"balthasar.yaml": "hostname: balthasar\nrole: worker\nmac: dc:a6:32:01:02:04\n",
			"melchior.yaml":  "hostname: melchior\nrole: worker\nmac: dc:a6:32:01:02:05\naddress: 10.3.50.2\n",
		}, map[string]string{"balthasar": "10.3.50.3", "melchior": "10.3.50.2"}},
		{"no mac, no address", map[string]string{
			"balthasar.yaml": "hostname: balthasar\nrole: worker\n",
			"melchior.yaml":  "hostname: melchior\nrole: worker\nmac: dc:a6:32:01:02:05\n",
		}, map[string]string{"balthasar": "", "melchior": "10.3.50.2"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files := map[string]string{"cluster.yaml": validCluster, "caspar.yaml": "hostname: caspar\nrole: head\n"}
			for k, v := range tt.nodes {
				files[k] = v
			}
			c, err := LoadDir(writeDir(t, files), Options{Getenv: noEnv})
			if err != nil {
				t.Fatal(err)
			}
			for host, want := range tt.want {
				n, err := c.Node(host)
				if err != nil {
					t.Fatal(err)
				}
				got := ""
				if n.Address.IsValid() {
					got = n.Address.String()
				}
				if got != want {
					t.Errorf("%s address %q, want %q", host, got, want)
				}
			}
		})
	}
}

func TestDefault(t *testing.T) {
	env := map[string]string{
		"MAGIBAKE_WIFI_SSID":       "magi-uplink",
		"MAGIBAKE_WIFI_PASSPHRASE": "not a real passphrase",
		"MAGIBAKE_WIFI_COUNTRY":    "de",
		"MAGIBAKE_USER":            "nerv",
		"MAGIBAKE_PASSWORD_HASH":   hash,
		"MAGIBAKE_SSH_KEYS":        keyA + " a@host\n\n# old laptop\n" + keyRSA + "\n",
	}
	c, err := Default(Options{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	const src = "profiles (embedded)/"
	want := &Cluster{
		Name:         "magi",
		Domain:       "cluster",
		Subnet:       netip.MustParsePrefix("10.3.50.0/24"),
		Head:         netip.MustParsePrefix("10.3.50.1/24"),
		DHCPStart:    netip.MustParseAddr("10.3.50.10"),
		DHCPEnd:      netip.MustParseAddr("10.3.50.20"),
		DNS:          []netip.Addr{netip.MustParseAddr("8.8.8.8"), netip.MustParseAddr("8.8.4.4")},
		DefaultLease: 600,
		MaxLease:     7200,
		Uplink:       "wlan0",
		HomeNetwork:  netip.MustParsePrefix("192.168.0.0/24"),
		WiFi:         &WiFi{SSID: "magi-uplink", Passphrase: "not a real passphrase", Country: "DE", Security: SecurityWPA2},
		User:         User{Name: "nerv", PasswordHash: hash, SSHKeys: []string{keyA + " a@host", keyRSA}},
		Nodes: []Node{
			{Hostname: "caspar", Role: RoleHead, Address: netip.MustParseAddr("10.3.50.1"), Home: "caspar.local", Source: src + "caspar.yaml"},
			{Hostname: "balthasar", Role: RoleWorker, Home: "balthasar.local", Source: src + "balthasar.yaml"},
			{Hostname: "melchior", Role: RoleWorker, Home: "melchior.local", Source: src + "melchior.yaml"},
		},
		Digest: c.Digest,
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("Default =\n%+v\nwant\n%+v", c, want)
	}
	checkInvariants(t, c)
	if len(c.Digest) != 64 {
		t.Errorf("Digest = %q, want 64 hex digits", c.Digest)
	}
	if h := c.HeadNode(); h == nil || h.Hostname != "caspar" {
		t.Errorf("HeadNode = %+v", h)
	}
	if _, err := c.Node("foo"); err == nil || err.Error() != `unknown node "foo" (profiles: caspar, balthasar, melchior)` {
		t.Errorf("Node(foo) error = %v", err)
	}

	// Secrets come from the environment, so they do not change the digest.
	env["MAGIBAKE_WIFI_PASSPHRASE"] = "another passphrase"
	delete(env, "MAGIBAKE_PASSWORD_HASH")
	c2, err := Default(Options{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	if c2.Digest != c.Digest {
		t.Errorf("digest changed with the secrets")
	}
	if c2.User.PasswordHash != "" || c2.User.PasswordLogin {
		t.Errorf("without a hash: User = %+v, want no password and no password login", c2.User)
	}
}

func TestDigest(t *testing.T) {
	files := validFiles()
	a, err := LoadDir(writeDir(t, files), Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	b, err := Load(fstest.MapFS{
		"cluster.yaml":   {Data: []byte(files["cluster.yaml"])},
		"caspar.yaml":    {Data: []byte(files["caspar.yaml"])},
		"balthasar.yaml": {Data: []byte(files["balthasar.yaml"])},
		"melchior.yaml":  {Data: []byte(files["melchior.yaml"])},
		"README.md":      {Data: []byte("not a profile")},
	}, "elsewhere", Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if a.Digest != b.Digest {
		t.Errorf("same files, different digests")
	}
	files["melchior.yaml"] += "# a comment\n"
	c, err := LoadDir(writeDir(t, files), Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	if c.Digest == a.Digest {
		t.Errorf("digest did not change with a file")
	}
}

func TestErrorFormat(t *testing.T) {
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "p/cluster.yaml", Line: 7, Field: "dhcp.rangee", Msg: "unknown key"}, "p/cluster.yaml:7: dhcp.rangee: unknown key"},
		{Error{File: "p", Field: "role", Msg: "no head"}, "p: role: no head"},
		{Error{File: "p/x.yaml", Line: 2, Msg: "YAML: bad"}, "p/x.yaml:2: YAML: bad"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
	}
}

// TestProblems checks that each problem is reported once, at the right
// place. where is FILE:LINE: FIELD relative to the profile directory ("" for
// the directory itself).
func TestProblems(t *testing.T) {
	node := func(name, body string) map[string]string { return map[string]string{name: body} }
	for _, tc := range []struct {
		name     string
		sub      []string
		override map[string]string
		where    string
		msg      string
	}{
		// Strict YAML.
		{name: "unknown key", sub: []string{"  dns:", "  rangee: x\n  dns:"}, where: "cluster.yaml:7: dhcp.rangee", msg: "unknown key"},
		{name: "unknown top-level key", sub: []string{"uplink:", "uplinks: eth1\nuplink:"}, where: "cluster.yaml:10: uplinks", msg: "unknown key"},
		{name: "unknown node key", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nip: 10.3.50.3\n"), where: "melchior.yaml:3: ip", msg: "unknown key"},
		{name: "unknown key, typo", sub: []string{"  max_lease_time: 7200", "  max_lease_tme: 7200"}, where: "cluster.yaml:9: dhcp.max_lease_tme", msg: `unknown key (did you mean "max_lease_time"?)`},
		{name: "unknown key, typo at the top", sub: []string{"uplink:", "uplnik: eth1\nuplink:"}, where: "cluster.yaml:10: uplnik", msg: `unknown key (did you mean "uplink"?)`},
		{name: "wrong type", sub: []string{"subnet: 10.3.50.0/24", "subnet: x"}, where: "cluster.yaml:3: subnet", msg: `want an IPv4 prefix like 10.3.50.0/24, got "x"`},
		{name: "wrong type list", sub: []string{"subnet: 10.3.50.0/24", "subnet: [10.3.50.0/24]"}, where: "cluster.yaml:3: subnet", msg: "got a list"},
		{name: "wrong type nested", sub: []string{"default_lease_time: 600", "default_lease_time: ten minutes"}, where: "cluster.yaml:8: dhcp.default_lease_time", msg: `want a whole number of seconds, got "ten minutes"`},
		{name: "wrong type nested bool", sub: []string{"hidden: false", "hidden: maybe"}, where: "cluster.yaml:16: wifi.hidden", msg: "want true or false"},
		{name: "wrong type section", sub: []string{"dhcp:\n  range: [10.3.50.10, 10.3.50.20]\n  dns: [8.8.8.8, 8.8.4.4]\n  default_lease_time: 600\n  max_lease_time: 7200\n", "dhcp: 5\n"}, where: "cluster.yaml:5: dhcp", msg: `want a mapping, got "5"`},
		{name: "wrong type in value", sub: []string{"ssid: home", "ssid: [home]"}, where: "cluster.yaml:13: wifi.ssid", msg: "want a string, {env: NAME} or {file: PATH}, got a list"},
		{name: "offline debs dir missing", sub: []string{"uplink: wlan0", "uplink: wlan0\noffline_debs: /nonexistent/debs"}, where: "cluster.yaml:11: offline_debs", msg: "/nonexistent/debs is not a directory"},
		{name: "offline debs dir without debs", sub: []string{"uplink: wlan0", "uplink: wlan0\noffline_debs: /"}, where: "cluster.yaml:11: offline_debs", msg: "holds no .deb files"},
		{name: "duplicate key", sub: []string{"uplink: wlan0", "uplink: wlan0\nuplink: eth1"}, where: "cluster.yaml:11: uplink", msg: "given twice (first on line 10)"},
		{name: "syntax error", sub: []string{"domain: cluster", "domain: [cluster"}, where: "cluster.yaml:2", msg: "YAML: "},
		{name: "syntax error on line 1", sub: []string{"name: magi", "name: [magi"}, where: "cluster.yaml:2", msg: "YAML: did not find expected ',' or ']'"},
		{name: "syntax error in block", sub: []string{"  ssid: home", "  ssid: home\n - x"}, where: "cluster.yaml:14", msg: "YAML: "},
		{name: "tab indentation", sub: []string{"  ssid: home", "\tssid: home"}, where: "cluster.yaml:13", msg: "YAML: "},
		{name: "two documents", override: node("melchior.yaml", "hostname: melchior\nrole: worker\n---\nhostname: x\n"), where: "melchior.yaml:3", msg: "more than one YAML document"},
		{name: "empty node file", override: node("melchior.yaml", "# nothing yet\n"), where: "melchior.yaml", msg: "empty file"},
		{name: "not a mapping", override: node("melchior.yaml", "- melchior\n"), where: "melchior.yaml:1", msg: "want a mapping, got a list"},
		{name: "missing key", sub: []string{"uplink: wlan0\n", ""}, where: "cluster.yaml:1: uplink", msg: "missing"},
		{name: "missing nested key", sub: []string{"  dns: [8.8.8.8, 8.8.4.4]\n", ""}, where: "cluster.yaml:5: dhcp.dns", msg: "missing"},
		{name: "empty value", sub: []string{"uplink: wlan0", "uplink:"}, where: "cluster.yaml:10: uplink", msg: "no value given"},
		{name: "missing cluster.yaml", override: map[string]string{"cluster.yaml": ""}, where: "cluster.yaml", msg: "missing"},
		{name: "value with env and file", sub: []string{"ssid: home", "ssid: {env: A, file: b}"}, where: "cluster.yaml:13: wifi.ssid", msg: "exactly one of env: NAME or file: PATH"},
		{name: "value with unknown key", sub: []string{"ssid: home", "ssid: {environment: A}"}, where: "cluster.yaml:13: wifi.ssid", msg: `unknown key "environment"`},

		// Addresses.
		{name: "subnet host bits", sub: []string{"subnet: 10.3.50.0/24", "subnet: 10.3.50.7/24"}, where: "cluster.yaml:3: subnet", msg: "want the network address 10.3.50.0/24"},
		{name: "subnet IPv6", sub: []string{"subnet: 10.3.50.0/24", "subnet: fd00::/64"}, where: "cluster.yaml:3: subnet", msg: "want an IPv4 prefix"},
		{name: "head outside subnet", sub: []string{"head_address: 10.3.50.1/24", "head_address: 10.3.51.1/24"}, where: "cluster.yaml:4: head_address", msg: "10.3.51.1 is outside the subnet 10.3.50.0/24"},
		{name: "head without prefix length", sub: []string{"head_address: 10.3.50.1/24", "head_address: 10.3.50.1"}, where: "cluster.yaml:4: head_address", msg: "10.3.50.1 needs a prefix length, e.g. 10.3.50.1/24: without it the kernel adds no route for the subnet"},
		{name: "head prefix length differs", sub: []string{"head_address: 10.3.50.1/24", "head_address: 10.3.50.1/16"}, where: "cluster.yaml:4: head_address", msg: "prefix length /16 differs from the subnet's /24"},
		{name: "head network address", sub: []string{"head_address: 10.3.50.1/24", "head_address: 10.3.50.0/24"}, where: "cluster.yaml:4: head_address", msg: "network address"},
		{name: "head broadcast address", sub: []string{"head_address: 10.3.50.1/24", "head_address: 10.3.50.255/24"}, where: "cluster.yaml:4: head_address", msg: "broadcast address"},
		{name: "head not an address", sub: []string{"head_address: 10.3.50.1/24", "head_address: caspar"}, where: "cluster.yaml:4: head_address", msg: `want an IPv4 address with prefix length like 10.3.50.1/24, got "caspar"`},
		{name: "range outside subnet", sub: []string{"range: [10.3.50.10, 10.3.50.20]", "range: [10.3.50.10, 10.3.51.20]"}, where: "cluster.yaml:6: dhcp.range[1]", msg: "outside the subnet"},
		{name: "range contains head", sub: []string{"range: [10.3.50.10, 10.3.50.20]", "range: [10.3.50.1, 10.3.50.20]"}, where: "cluster.yaml:6: dhcp.range", msg: "contains the head address 10.3.50.1"},
		{name: "range reversed", sub: []string{"range: [10.3.50.10, 10.3.50.20]", "range: [10.3.50.20, 10.3.50.10]"}, where: "cluster.yaml:6: dhcp.range", msg: "reversed"},
		{name: "range of one", sub: []string{"range: [10.3.50.10, 10.3.50.20]", "range: [10.3.50.10]"}, where: "cluster.yaml:6: dhcp.range", msg: "got 1"},
		{name: "range of three", sub: []string{"range: [10.3.50.10, 10.3.50.20]", "range: [10.3.50.10, 10.3.50.15, 10.3.50.20]"}, where: "cluster.yaml:6: dhcp.range", msg: "got 3"},
		{name: "range not addresses", sub: []string{"range: [10.3.50.10, 10.3.50.20]", "range: 10.3.50.10-10.3.50.20"}, where: "cluster.yaml:6: dhcp.range", msg: "want a list of two addresses"},
		{name: "range bad address", sub: []string{"range: [10.3.50.10, 10.3.50.20]", "range: [10.3.50.10, 10.3.50.300]"}, where: "cluster.yaml:6: dhcp.range[1]", msg: `want an IPv4 address, got "10.3.50.300"`},
		{name: "dns IPv6", sub: []string{"dns: [8.8.8.8, 8.8.4.4]", "dns: [8.8.8.8, 2001:4860:4860::8888]"}, where: "cluster.yaml:7: dhcp.dns[1]", msg: "want an IPv4 address"},
		{name: "dns name", sub: []string{"dns: [8.8.8.8, 8.8.4.4]", "dns:\n  - dns.google"}, where: "cluster.yaml:8: dhcp.dns[0]", msg: `got "dns.google"`},
		{name: "dns empty", sub: []string{"dns: [8.8.8.8, 8.8.4.4]", "dns: []"}, where: "cluster.yaml:7: dhcp.dns", msg: "at least one"},
		{name: "home network overlaps", sub: []string{"home_network: 192.168.0.0/24", "home_network: 10.3.0.0/16"}, where: "cluster.yaml:11: home_network", msg: "overlaps the cluster subnet"},
		{name: "lease zero", sub: []string{"default_lease_time: 600", "default_lease_time: 0"}, where: "cluster.yaml:8: dhcp.default_lease_time", msg: "positive"},
		{name: "lease negative", sub: []string{"max_lease_time: 7200", "max_lease_time: -1"}, where: "cluster.yaml:9: dhcp.max_lease_time", msg: "positive"},
		{name: "default lease above max", sub: []string{"default_lease_time: 600", "default_lease_time: 9000"}, where: "cluster.yaml:8: dhcp.default_lease_time", msg: "9000 seconds is more than max_lease_time (7200)"},
		{name: "default lease above implied max", sub: []string{"default_lease_time: 600", "default_lease_time: 9000", "  max_lease_time: 7200\n", ""}, where: "cluster.yaml:8: dhcp.default_lease_time", msg: "more than max_lease_time (7200)"},
		{name: "uplink slash", sub: []string{"uplink: wlan0", "uplink: wlan0/1"}, where: "cluster.yaml:10: uplink", msg: "want a network interface name"},
		{name: "uplink too long", sub: []string{"uplink: wlan0", "uplink: wlx0123456789abcd"}, where: "cluster.yaml:10: uplink", msg: "1-15 characters"},
		{name: "uplink space", sub: []string{"uplink: wlan0", "uplink: 'wlan 0'"}, where: "cluster.yaml:10: uplink", msg: "want a network interface name"},
		{name: "domain upper case", sub: []string{"domain: cluster", "domain: Cluster"}, where: "cluster.yaml:2: domain", msg: "want a DNS domain"},

		// Nodes.
		{name: "duplicate hostname", override: node("zeruel.yaml", "hostname: melchior\nrole: worker\n"), where: "zeruel.yaml:1: hostname", msg: "melchior is also the hostname in "},
		{name: "hostname upper case", override: node("melchior.yaml", "hostname: Melchior\nrole: worker\n"), where: "melchior.yaml:1: hostname", msg: "lower-case"},
		{name: "hostname leading dash", override: node("melchior.yaml", "hostname: -melchior\nrole: worker\n"), where: "melchior.yaml:1: hostname", msg: "not starting or ending with '-'"},
		{name: "hostname too long", override: node("melchior.yaml", "hostname: "+strings.Repeat("m", 64)+"\nrole: worker\n"), where: "melchior.yaml:1: hostname", msg: "1-63"},
		{name: "hostname underscore", override: node("melchior.yaml", "hostname: mel_chior\nrole: worker\n"), where: "melchior.yaml:1: hostname", msg: "lower-case letters, digits and '-'"},
		{name: "hostname not file name", override: node("melchior.yaml", "hostname: melchior2\nrole: worker\n"), where: "melchior.yaml:1: hostname", msg: `"melchior2" does not match the file name melchior.yaml`},
		{name: "missing hostname", override: node("melchior.yaml", "role: worker\n"), where: "melchior.yaml:1: hostname", msg: "missing"},
		{name: "unknown role", override: node("melchior.yaml", "hostname: melchior\nrole: boss\n"), where: "melchior.yaml:2: role", msg: `unknown role "boss"; want head or worker`},
		{name: "no head", override: node("caspar.yaml", "hostname: caspar\nrole: worker\n"), where: ": role", msg: "no node has role: head"},
		{name: "two heads", override: node("melchior.yaml", "hostname: melchior\nrole: head\n"), where: "melchior.yaml:2: role", msg: "a second head: caspar"},
		{name: "no nodes", override: map[string]string{"caspar.yaml": "", "balthasar.yaml": "", "melchior.yaml": ""}, where: "", msg: "no nodes"},
		{name: "MAC short", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nmac: dc:a6:32:01:02\n"), where: "melchior.yaml:3: mac", msg: "want a MAC address like dc:a6:32:01:02:03"},
		{name: "MAC eight octets", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nmac: dc:a6:32:01:02:03:04:05\n"), where: "melchior.yaml:3: mac", msg: "want a MAC address"},
		{name: "MAC multicast", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nmac: 01:00:5e:00:00:01\n"), where: "melchior.yaml:3: mac", msg: "multicast"},
		{name: "MAC broadcast", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nmac: ff:ff:ff:ff:ff:ff\n"), where: "melchior.yaml:3: mac", msg: "multicast"},
		{name: "MAC zero", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nmac: 00:00:00:00:00:00\n"), where: "melchior.yaml:3: mac", msg: "not a real MAC"},
		{name: "duplicate MAC", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nmac: DC:A6:32:01:02:03\n"), where: "melchior.yaml:3: mac", msg: "dc:a6:32:01:02:03 is also the MAC of caspar"},
		{name: "duplicate address", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nmac: dc:a6:32:01:02:05\naddress: 10.3.50.2\n"), where: "melchior.yaml:4: address", msg: "10.3.50.2 is also the address of balthasar"},
		{name: "address without MAC", override: node("melchior.yaml", "hostname: melchior\nrole: worker\naddress: 10.3.50.3\n"), where: "melchior.yaml:3: address", msg: "needs mac"},
		{name: "address outside subnet", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nmac: dc:a6:32:01:02:05\naddress: 10.3.51.3\n"), where: "melchior.yaml:4: address", msg: "outside the subnet"},
		{name: "address is head", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nmac: dc:a6:32:01:02:05\naddress: 10.3.50.1\n"), where: "melchior.yaml:4: address", msg: "the head's address"},
		{name: "address network", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nmac: dc:a6:32:01:02:05\naddress: 10.3.50.0\n"), where: "melchior.yaml:4: address", msg: "network address"},
		{name: "address broadcast", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nmac: dc:a6:32:01:02:05\naddress: 10.3.50.255\n"), where: "melchior.yaml:4: address", msg: "broadcast address"},
		{name: "address in DHCP range", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nmac: dc:a6:32:01:02:05\naddress: 10.3.50.15\n"), where: "melchior.yaml:4: address", msg: "inside the DHCP range 10.3.50.10-10.3.50.20"},
		{name: "address with prefix", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nmac: dc:a6:32:01:02:05\naddress: 10.3.50.3/24\n"), where: "melchior.yaml:4: address", msg: "without a prefix length"},
		{name: "home address not a name", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nhome_address: \"melchior local\"\n"), where: "melchior.yaml:3: home_address", msg: `want an IPv4 address or DNS name like 192.168.0.20 or caspar.lan, got "melchior local"`},
		{name: "home address numeric", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nhome_address: \"123\"\n"), where: "melchior.yaml:3: home_address", msg: `"123" would be read as a numeric address`},
		{name: "home address short dotted", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nhome_address: 10.1\n"), where: "melchior.yaml:3: home_address", msg: `"10.1" would be read as a numeric address`},
		{name: "home address hex", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nhome_address: 0xc0a80014\n"), where: "melchior.yaml:3: home_address", msg: `"0xc0a80014" would be read as a numeric address`},
		{name: "home address outside home network", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nhome_address: 192.168.1.22\n"), where: "melchior.yaml:3: home_address", msg: "192.168.1.22 is outside home_network 192.168.0.0/24 in cluster.yaml"},
		{name: "home address in cluster subnet", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nhome_address: 10.3.50.30\n"), where: "melchior.yaml:3: home_address", msg: "10.3.50.30 is in the cluster subnet 10.3.50.0/24"},
		{name: "duplicate home address", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nhome_address: 192.168.0.21\n"), where: "melchior.yaml:3: home_address", msg: "192.168.0.21 is also the home address of balthasar"},
		{name: "head address differs", override: node("caspar.yaml", "hostname: caspar\nrole: head\naddress: 10.3.50.5\n"), where: "caspar.yaml:3: address", msg: "differs from head_address"},

		// Several workers in one file (count). Lines: role 1, count 2, hostname 3, lists from 4.
		{name: "count with head", override: node("workers.yaml", "role: head\ncount: 3\nhostname: node{n}\n"), where: "workers.yaml:2: count", msg: "only workers come in numbers: a cluster has one head (role: head)"},
		{name: "count zero", override: node("workers.yaml", "role: worker\ncount: 0\nhostname: node{n}\n"), where: "workers.yaml:2: count", msg: `want a whole number of nodes from 1 to 250, got "0"`},
		{name: "count too big", override: node("workers.yaml", "role: worker\ncount: 251\nhostname: node{n}\n"), where: "workers.yaml:2: count", msg: `want a whole number of nodes from 1 to 250, got "251"`},
		{name: "count not a number", override: node("workers.yaml", "role: worker\ncount: eight\nhostname: node{n}\n"), where: "workers.yaml:2: count", msg: `got "eight"`},
		{name: "count a list", override: node("workers.yaml", "role: worker\ncount: [8]\nhostname: node{n}\n"), where: "workers.yaml:2: count", msg: "got a list"},
		{name: "count without hostname", override: node("workers.yaml", "role: worker\ncount: 2\n"), where: "workers.yaml:1: hostname", msg: "missing"},
		{name: "mac with count", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: node{n}\nmac: dc:a6:32:00:00:01\n"), where: "workers.yaml:4: mac", msg: "not with count: use the list form macs: [...], one entry per node"},
		{name: "address with count", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: node{n}\naddress: 10.3.50.31\n"), where: "workers.yaml:4: address", msg: "use the list form addresses: [...]"},
		{name: "home address with count", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: node{n}\nhome_address: 192.168.0.31\n"), where: "workers.yaml:4: home_address", msg: "use the list form home_addresses: [...]"},
		{name: "macs too few", override: node("workers.yaml", "role: worker\ncount: 3\nhostname: node{n}\nmacs: [dc:a6:32:00:00:01, dc:a6:32:00:00:02]\n"), where: "workers.yaml:4: macs", msg: "want 3 entries, one per node (count: 3), got 2"},
		{name: "addresses too many", override: node("workers.yaml", "role: worker\ncount: 1\nhostname: node{n}\nmacs: [dc:a6:32:00:00:01]\naddresses:\n  - 10.3.50.31\n  - 10.3.50.32\n"), where: "workers.yaml:5: addresses", msg: "want 1 entries, one per node (count: 1), got 2"},
		{name: "home addresses too few", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: node{n}\nhome_addresses: [192.168.0.31]\n"), where: "workers.yaml:4: home_addresses", msg: "want 2 entries, one per node (count: 2), got 1"},
		{name: "macs empty", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: node{n}\nmacs: []\naddresses: [10.3.50.31, 10.3.50.32]\n"), where: "workers.yaml:4: macs", msg: "want 2 entries, one per node (count: 2), got 0"},
		{name: "addresses without macs", override: node("workers.yaml", "role: worker\ncount: 1\nhostname: node{n}\naddresses: [10.3.50.31]\n"), where: "workers.yaml:4: addresses", msg: "fixed addresses need macs: dhcpd hands fixed addresses out by MAC address"},
		{name: "macs not a list", override: node("workers.yaml", "role: worker\ncount: 1\nhostname: node{n}\nmacs: dc:a6:32:00:00:01\n"), where: "workers.yaml:4: macs", msg: `want a list of MAC addresses, one per node, got "dc:a6:32:00:00:01"`},
		{name: "bad entry in macs", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: node{n}\nmacs:\n  - dc:a6:32:00:00:01\n  - dc:a6:32:00:00\n"), where: "workers.yaml:6: macs[1]", msg: "want a MAC address like dc:a6:32:01:02:03"},
		{name: "bad entry in addresses", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: node{n}\nmacs: [dc:a6:32:00:00:01, dc:a6:32:00:00:02]\naddresses:\n  - 10.3.50.31\n  - 10.3.50.32/24\n"), where: "workers.yaml:7: addresses[1]", msg: "without a prefix length"},
		{name: "bad entry in home addresses", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: node{n}\nhome_addresses:\n  - node1.lan\n  - node 2\n"), where: "workers.yaml:6: home_addresses[1]", msg: `got "node 2"`},
		{name: "entry in addresses in DHCP range", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: node{n}\nmacs: [dc:a6:32:00:00:01, dc:a6:32:00:00:02]\naddresses:\n  - 10.3.50.31\n  - 10.3.50.12\n"), where: "workers.yaml:7: addresses[1]", msg: "10.3.50.12 is inside the DHCP range 10.3.50.10-10.3.50.20"},
		{name: "entry in home addresses outside home network", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: node{n}\nhome_addresses:\n  - 192.168.0.31\n  - 192.168.1.32\n"), where: "workers.yaml:6: home_addresses[1]", msg: "192.168.1.32 is outside home_network 192.168.0.0/24"},
		{name: "pattern without placeholder", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: node\n"), where: "workers.yaml:3: hostname", msg: `"node" is not a pattern: with count, want exactly one {n} (or {n:02} to pad with zeros) where the number goes, e.g. node{n}`},
		{name: "pattern with two placeholders", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: r{n}-node{n}\n"), where: "workers.yaml:3: hostname", msg: `"r{n}-node{n}": want exactly one {n}`},
		{name: "pattern unknown placeholder", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: node{i}\n"), where: "workers.yaml:3: hostname", msg: `unknown placeholder "{i}" in "node{i}"`},
		{name: "pattern padding without zero", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: node{n:2}\n"), where: "workers.yaml:3: hostname", msg: `unknown placeholder "{n:2}"`},
		{name: "pattern unclosed", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: node{n\n"), where: "workers.yaml:3: hostname", msg: `"node{n": want exactly one {n}`},
		{name: "pattern gives a bad name", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: Node{n}\n"), where: "workers.yaml:3: hostname", msg: `node 1 of 2: want 1-63 lower-case letters, digits and '-', not starting or ending with '-', got "Node1"`},
		{name: "pattern gives too long a name", override: node("workers.yaml", "role: worker\ncount: 10\nhostname: "+strings.Repeat("n", 62)+"{n}\n"), where: "workers.yaml:3: hostname", msg: "node 10 of 10: want 1-63"},
		{name: "pattern without count", override: node("melchior.yaml", "hostname: melchior{n}\nrole: worker\n"), where: "melchior.yaml:1: hostname", msg: `"melchior{n}" is a pattern: it needs count, the number of workers it names`},
		{name: "macs without count", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nmacs: [dc:a6:32:00:00:01]\n"), where: "melchior.yaml:3: macs", msg: "a list needs count, the number of workers this file names; a file for one node takes mac"},
		{name: "addresses without count", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nmac: dc:a6:32:00:00:01\naddresses: [10.3.50.31]\n"), where: "melchior.yaml:4: addresses", msg: "a file for one node takes address"},
		{name: "home addresses without count", override: node("melchior.yaml", "hostname: melchior\nrole: worker\nhome_addresses: [192.168.0.31]\n"), where: "melchior.yaml:3: home_addresses", msg: "a file for one node takes home_address"},

		// Duplicates between a file with count and other files, both ways
		// round: the later file (in name order) is reported, at the entry.
		{name: "hostname twice, single file first", override: map[string]string{"node2.yaml": "hostname: node2\nrole: worker\n", "workers.yaml": "role: worker\ncount: 3\nhostname: node{n}\n"},
			where: "workers.yaml:3: hostname", msg: "node2 is also the hostname in "},
		{name: "hostname twice, count file first", override: map[string]string{"node2.yaml": "hostname: node2\nrole: worker\n", "a-workers.yaml": "role: worker\ncount: 3\nhostname: node{n}\n"},
			where: "node2.yaml:1: hostname", msg: "node2 is also the hostname in "},
		{name: "hostname twice, two count files", override: map[string]string{"a.yaml": "role: worker\ncount: 2\nhostname: node{n}\n", "b.yaml": "role: worker\ncount: 1\nhostname: node{n}\n"},
			where: "b.yaml:3: hostname", msg: "node1 is also the hostname in "},
		{name: "MAC twice, single file first", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: node{n}\nmacs:\n  - dc:a6:32:00:00:01\n  - DC:A6:32:01:02:04\n"),
			where: "workers.yaml:6: macs[1]", msg: "dc:a6:32:01:02:04 is also the MAC of balthasar ("},
		{name: "MAC twice, count file first", override: map[string]string{"a-workers.yaml": "role: worker\ncount: 2\nhostname: node{n}\nmacs:\n  - dc:a6:32:00:00:01\n  - dc:a6:32:00:00:02\n", "melchior.yaml": "hostname: melchior\nrole: worker\nmac: dc:a6:32:00:00:02\n"},
			where: "melchior.yaml:3: mac", msg: "dc:a6:32:00:00:02 is also the MAC of node2 ("},
		{name: "MAC twice in one list", override: node("workers.yaml", "role: worker\ncount: 3\nhostname: node{n}\nmacs:\n  - dc:a6:32:00:00:01\n  - dc:a6:32:00:00:02\n  - dc:a6:32:00:00:01\n"),
			where: "workers.yaml:7: macs[2]", msg: "dc:a6:32:00:00:01 is also the MAC of node1 ("},
		{name: "address twice, single file first", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: node{n}\nmacs: [dc:a6:32:00:00:01, dc:a6:32:00:00:02]\naddresses:\n  - 10.3.50.31\n  - 10.3.50.2\n"),
			where: "workers.yaml:7: addresses[1]", msg: "10.3.50.2 is also the address of balthasar ("},
		{name: "address twice, count file first", override: map[string]string{"a-workers.yaml": "role: worker\ncount: 2\nhostname: node{n}\nmacs: [dc:a6:32:00:00:01, dc:a6:32:00:00:02]\naddresses:\n  - 10.3.50.31\n  - 10.3.50.32\n", "melchior.yaml": "hostname: melchior\nrole: worker\nmac: dc:a6:32:00:00:09\naddress: 10.3.50.31\n"},
			where: "melchior.yaml:4: address", msg: "10.3.50.31 is also the address of node1 ("},
		{name: "home address twice, single file first", override: node("workers.yaml", "role: worker\ncount: 2\nhostname: node{n}\nhome_addresses:\n  - 192.168.0.21\n  - 192.168.0.32\n"),
			where: "workers.yaml:5: home_addresses[0]", msg: "192.168.0.21 is also the home address of balthasar ("},
		{name: "home address twice, count file first", override: map[string]string{"a-workers.yaml": "role: worker\ncount: 2\nhostname: node{n}\nhome_addresses:\n  - 192.168.0.31\n  - melchior.lan\n", "melchior.yaml": "hostname: melchior\nrole: worker\nhome_address: melchior.lan\n"},
			where: "melchior.yaml:3: home_address", msg: "melchior.lan is also the home address of node2 ("},

		// Wi-Fi.
		{name: "SSID empty", sub: []string{"ssid: home", "ssid: ''"}, where: "cluster.yaml:13: wifi.ssid", msg: "want 1-32 bytes, got 0"},
		{name: "SSID long", sub: []string{"ssid: home", "ssid: " + strings.Repeat("s", 33)}, where: "cluster.yaml:13: wifi.ssid", msg: "want 1-32 bytes, got 33"},
		{name: "passphrase short", sub: []string{"passphrase: correct horse", "passphrase: short"}, where: "cluster.yaml:14: wifi.passphrase", msg: "got 5 characters"},
		{name: "passphrase long", sub: []string{"passphrase: correct horse", "passphrase: " + strings.Repeat("p", 64)}, where: "cluster.yaml:14: wifi.passphrase", msg: "got 64 characters"},
		{name: "passphrase not ASCII", sub: []string{"passphrase: correct horse", "passphrase: correct horsé"}, where: "cluster.yaml:14: wifi.passphrase", msg: "outside printable ASCII"},
		{name: "country three letters", sub: []string{"country: gb", "country: GBR"}, where: "cluster.yaml:15: wifi.country", msg: `want a two-letter country code like GB or DE, got "GBR"`},
		{name: "country digits", sub: []string{"country: gb", "country: '44'"}, where: "cluster.yaml:15: wifi.country", msg: "two-letter"},
		{name: "wifi missing passphrase", sub: []string{"  passphrase: correct horse\n", ""}, where: "cluster.yaml:12: wifi.passphrase", msg: "missing"},
		{name: "wifi missing country", sub: []string{"  country: gb\n", ""}, where: "cluster.yaml:12: wifi.country", msg: "missing"},
		{name: "wifi security unknown", sub: []string{"hidden: false", "hidden: false\n  security: wep"}, where: "cluster.yaml:17: wifi.security", msg: `want wpa2 or wpa3, got "wep"`},
		{name: "wpa3 with a raw PSK", sub: []string{"hidden: false", "hidden: false\n  security: wpa3", "passphrase: correct horse", "passphrase: 'abababababababababababababababababababababababababababababababab'"}, where: "cluster.yaml:14: wifi.passphrase", msg: "security wpa3 (SAE) needs the passphrase itself"},

		// User.
		{name: "user name upper case", sub: []string{"name: pi", "name: Pi"}, where: "cluster.yaml:18: user.name", msg: "want a user name Raspberry Pi OS's first boot accepts"},
		{name: "user name root", sub: []string{"name: pi", "name: root"}, where: "cluster.yaml:18: user.name", msg: "root cannot be the login user"},
		{name: "user name too long", sub: []string{"name: pi", "name: " + strings.Repeat("u", 33)}, where: "cluster.yaml:18: user.name", msg: "want a user name Raspberry Pi OS's first boot accepts"},
		{name: "user name digit", sub: []string{"name: pi", "name: '1pi'"}, where: "cluster.yaml:18: user.name", msg: "want a user name Raspberry Pi OS's first boot accepts"},
		// Linux allows these; userconf-pi refuses them at first boot.
		{name: "user name underscore", sub: []string{"name: pi", "name: k8s_admin"}, where: "cluster.yaml:18: user.name", msg: "want a user name Raspberry Pi OS's first boot accepts"},
		{name: "user name leading underscore", sub: []string{"name: pi", "name: _pi"}, where: "cluster.yaml:18: user.name", msg: "want a user name Raspberry Pi OS's first boot accepts"},
		{name: "password in clear", sub: []string{"password_hash: " + hash, "password_hash: hunter2"}, where: "cluster.yaml:19: user.password_hash", msg: "want a crypt hash starting with '$'"},
		{name: "password hash with colon", sub: []string{"password_hash: " + hash, "password_hash: '$6$a:b'"}, where: "cluster.yaml:19: user.password_hash", msg: "no ':'"},
		{name: "SSH key unknown type", sub: []string{keyA, "ssh-dss AAAAB3NzaC1kc3M="}, where: "cluster.yaml:20: user.ssh_authorized_keys[0]", msg: `unknown SSH key type "ssh-dss"`},
		{name: "SSH key options", sub: []string{keyA, `no-pty ` + keyA}, where: "cluster.yaml:20: user.ssh_authorized_keys[0]", msg: "unknown SSH key type"},
		{name: "SSH key no data", sub: []string{keyA + " me@laptop", "ssh-ed25519"}, where: "cluster.yaml:20: user.ssh_authorized_keys[0]", msg: "want an SSH public key like"},
		{name: "SSH key bad base64", sub: []string{keyA, "ssh-ed25519 AAAA!!!!"}, where: "cluster.yaml:20: user.ssh_authorized_keys[0]", msg: "not valid base64"},
		{name: "SSH key wrong blob", sub: []string{keyA, "ssh-rsa " + strings.Fields(keyA)[1]}, where: "cluster.yaml:20: user.ssh_authorized_keys[0]", msg: "not a ssh-rsa key"},
		{name: "SSH keys not a list", sub: []string{"ssh_authorized_keys: [" + keyA + " me@laptop]", "ssh_authorized_keys: " + keyA}, where: "cluster.yaml:20: user.ssh_authorized_keys", msg: "want a list of SSH public keys"},
		{name: "no way to log in", sub: []string{"  password_hash: " + hash + "\n", "", "  ssh_authorized_keys: [" + keyA + " me@laptop]\n", ""}, where: "cluster.yaml:17: user", msg: "no way to log in"},
		{name: "password login without hash", sub: []string{"  password_hash: " + hash + "\n", "", "password_login: false", "password_login: true"}, where: "cluster.yaml:20: user.password_login", msg: "true needs a password_hash"},

		// Base image.
		{name: "sha256 short", sub: []string{"sha256: " + sum, "sha256: abc"}, where: "cluster.yaml:24: base.sha256", msg: `want 64 hex digits, got "abc"`},
		{name: "sha256 not hex", sub: []string{"sha256: " + sum, "sha256: " + strings.Repeat("g", 64)}, where: "cluster.yaml:24: base.sha256", msg: "want 64 hex digits"},
		{name: "base URL", sub: []string{"url: https://", "url: ftp://"}, where: "cluster.yaml:23: base.url", msg: "want an https://"},
		{name: "base without url", sub: []string{"  url: https://downloads.raspberrypi.com/raspios_lite_arm64/images/x.img.xz\n", ""}, where: "cluster.yaml:22: base.url", msg: "missing"},
		{name: "base url left empty by an optional reference", sub: []string{"url: https://downloads.raspberrypi.com/raspios_lite_arm64/images/x.img.xz", "url: {env: NO_SUCH_VAR, optional: true}"},
			where: "cluster.yaml:22: base", msg: "sha256 needs a url; an optional reference left url empty"},
		{name: "base URL without sha256", sub: []string{"url: https://", "url: ftp://", "  sha256: " + sum + "\n", ""}, where: "cluster.yaml:23: base.url", msg: "want an https://"},
		{name: "file:// base without sha256", sub: []string{"url: https://downloads.raspberrypi.com/raspios_lite_arm64/images/x.img.xz", "url: file:///srv/x.img.xz", "  sha256: " + sum + "\n", ""},
			where: "cluster.yaml:22: base.sha256", msg: "a file:// base needs its sha256: only an http(s) URL has a published .sha256 to check it against"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := writeDir(t, edit(t, tc.sub, tc.override))
			_, err := LoadDir(dir, Options{Getenv: noEnv})
			if err == nil {
				t.Fatal("loaded without error")
			}
			ps := problems(t, err)
			want := dir
			if tc.where != "" {
				want = filepath.Join(dir, tc.where)
				if strings.HasPrefix(tc.where, ":") {
					want = dir + tc.where
				}
			}
			want += ": "
			found := false
			for _, p := range ps {
				if s := p.Error(); strings.HasPrefix(s, want) && strings.Contains(s[len(want):], tc.msg) {
					found = true
				}
			}
			if !found {
				t.Errorf("no problem %q...%q in:\n%v", want, tc.msg, err)
			}
			// Duplicate hostnames need a second file, which is misnamed.
			if wantN := 1 + strings.Count(tc.name, "duplicate hostname"); len(ps) != wantN {
				t.Errorf("%d problems, want %d:\n%v", len(ps), wantN, err)
			}
		})
	}
}

func TestSecretsNotInErrors(t *testing.T) {
	secret := "\x01secret\x01passphrase"
	files := edit(t, []string{"passphrase: correct horse", "passphrase: {env: PSK}", "password_hash: " + hash, "password_hash: {file: hash}"}, nil)
	files["hash"] = "not-a-crypt-secret\n"
	dir := writeDir(t, files)
	_, err := LoadDir(dir, Options{Getenv: func(string) string { return secret }})
	if err == nil {
		t.Fatal("loaded without error")
	}
	if len(problems(t, err)) != 2 || strings.Contains(err.Error(), "secret") {
		t.Errorf("want two problems that do not quote the secrets, got:\n%v", err)
	}
}

func TestValues(t *testing.T) {
	home := t.TempDir()
	t.Setenv("HOME", home)
	if err := os.WriteFile(filepath.Join(home, "psk"), []byte("from the home dir\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"SSID": "env-ssid", "KEYS": keyB + " b@host"}
	getenv := func(k string) string { return env[k] }
	keyFile := "# laptop\n" + keyA + " a@laptop\n\n   \n# retired\n" + keyRSA + " rsa@old\r\n"

	for _, tc := range []struct {
		name  string
		sub   []string
		files map[string]string // extra files in the profile dir
		check func(t *testing.T, c *Cluster)
		where string // when set, the load must fail here
		msg   string
	}{
		{
			name: "env",
			sub:  []string{"ssid: home", "ssid: {env: SSID}"},
			check: func(t *testing.T, c *Cluster) {
				if c.WiFi.SSID != "env-ssid" {
					t.Errorf("SSID = %q", c.WiFi.SSID)
				}
			},
		},
		{
			name:  "relative file",
			sub:   []string{"passphrase: correct horse", "passphrase: {file: secrets/psk}"},
			files: map[string]string{"secrets/psk": "from a file\n\n"},
			check: func(t *testing.T, c *Cluster) {
				if c.WiFi.Passphrase != "from a file" {
					t.Errorf("Passphrase = %q, want the trailing newlines trimmed", c.WiFi.Passphrase)
				}
			},
		},
		{
			name: "home file",
			sub:  []string{"passphrase: correct horse", "passphrase: {file: ~/psk}"},
			check: func(t *testing.T, c *Cluster) {
				if c.WiFi.Passphrase != "from the home dir" {
					t.Errorf("Passphrase = %q", c.WiFi.Passphrase)
				}
			},
		},
		{
			name:  "multi-line key file and env",
			sub:   []string{"[" + keyA + " me@laptop]", "[{file: keys.pub}, {env: KEYS}, " + keyB + " literal]"},
			files: map[string]string{"keys.pub": keyFile},
			check: func(t *testing.T, c *Cluster) {
				want := []string{keyA + " a@laptop", keyRSA + " rsa@old", keyB + " b@host", keyB + " literal"}
				if !reflect.DeepEqual(c.User.SSHKeys, want) {
					t.Errorf("SSHKeys = %q, want %q", c.User.SSHKeys, want)
				}
			},
		},
		{
			name: "optional env unset",
			sub:  []string{"password_hash: " + hash, "password_hash: {env: HASH, optional: true}"},
			check: func(t *testing.T, c *Cluster) {
				if c.User.PasswordHash != "" || len(c.User.SSHKeys) != 1 {
					t.Errorf("User = %+v", c.User)
				}
			},
		},
		{
			name:  "bad line in key file",
			sub:   []string{"[" + keyA + " me@laptop]", "[{file: keys.pub}]"},
			files: map[string]string{"keys.pub": keyA + "\nssh-ed25519\n"},
			where: "cluster.yaml:20: user.ssh_authorized_keys[0]", msg: "line 2: want an SSH public key",
		},
		{
			name:  "unset env",
			sub:   []string{"ssid: home", "ssid: {env: MISSING_SSID}"},
			where: "cluster.yaml:13: wifi.ssid", msg: "environment variable MISSING_SSID is not set",
		},
		{
			name:  "missing file",
			sub:   []string{"passphrase: correct horse", "passphrase: {file: secrets/nope}"},
			where: "cluster.yaml:14: wifi.passphrase", msg: "file secrets/nope: open ",
		},
		{
			name:  "file is a directory",
			sub:   []string{"passphrase: correct horse", "passphrase: {file: secrets}"},
			files: map[string]string{"secrets/psk": "x"},
			where: "cluster.yaml:14: wifi.passphrase", msg: "not a regular file",
		},
		{
			name:  "optional but required",
			sub:   []string{"name: pi", "name: {env: WHO, optional: true}"},
			where: "cluster.yaml:18: user.name", msg: "required, but $WHO is empty or missing",
		},
		{
			name:  "no way to log in with empty optionals",
			sub:   []string{"password_hash: " + hash, "password_hash: {env: HASH, optional: true}", "[" + keyA + " me@laptop]", "[{file: none.pub, optional: true}]"},
			where: "cluster.yaml:17: user", msg: "($HASH, none.pub: empty or missing)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			files := edit(t, tc.sub, nil)
			dir := writeDir(t, files)
			for name, content := range tc.files {
				p := filepath.Join(dir, name)
				if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			c, err := LoadDir(dir, Options{Getenv: getenv})
			if tc.where == "" {
				if err != nil {
					t.Fatal(err)
				}
				tc.check(t, c)
				return
			}
			ps := problems(t, err)
			want := filepath.Join(dir, tc.where) + ": "
			if len(ps) != 1 || !strings.HasPrefix(ps[0].Error(), want) || !strings.Contains(ps[0].Error(), tc.msg) {
				t.Errorf("want one problem %q...%q, got:\n%v", want, tc.msg, err)
			}
		})
	}
}

// TestFileBase checks that Load reads relative files from FileBase, not
// from the (possibly virtual) profile file system.
func TestFileBase(t *testing.T) {
	base := t.TempDir()
	if err := os.WriteFile(filepath.Join(base, "psk"), []byte("from FileBase\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	fsys := fstest.MapFS{}
	for name, content := range edit(t, []string{"passphrase: correct horse", "passphrase: {file: psk}"}, nil) {
		fsys[name] = &fstest.MapFile{Data: []byte(content)}
	}
	c, err := Load(fsys, "mine", Options{Getenv: noEnv, FileBase: base})
	if err != nil {
		t.Fatal(err)
	}
	if c.WiFi.Passphrase != "from FileBase" {
		t.Errorf("Passphrase = %q", c.WiFi.Passphrase)
	}
}

func TestManyProblems(t *testing.T) {
	files := edit(t, []string{
		"subnet: 10.3.50.0/24", "subnet: 10.3.50.0/33",
		"  dns:", "  rangee: x\n  dns:",
		"passphrase: correct horse", "passphrase: {env: NOPE}",
	}, map[string]string{
		"melchior.yaml":  "hostname: melchior\nrole: boss\nmac: nope\n",
		"balthasar.yaml": "hostname: balthasar\nrole: worker\naddress: 10.3.50.2\n",
	})
	dir := writeDir(t, files)
	_, err := LoadDir(dir, Options{Getenv: noEnv})
	ps := problems(t, err)
	var got []string
	for _, p := range ps {
		got = append(got, strings.TrimPrefix(p.Error(), dir+string(filepath.Separator)))
	}
	want := []string{
		`cluster.yaml:3: subnet: want an IPv4 prefix like 10.3.50.0/24, got "10.3.50.0/33"`,
		`cluster.yaml:7: dhcp.rangee: unknown key (did you mean "range"?)`,
		"cluster.yaml:15: wifi.passphrase: environment variable NOPE is not set",
		"balthasar.yaml:3: address: a fixed address needs mac: dhcpd hands fixed addresses out by MAC address",
		`melchior.yaml:2: role: unknown role "boss"; want head or worker`,
		`melchior.yaml:3: mac: want a MAC address like dc:a6:32:01:02:03, got "nope"`,
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("problems:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestNodeOrderAndLookup(t *testing.T) {
	files := validFiles()
	files["adam.yaml"] = "hostname: adam\nrole: worker\n"
	c, err := LoadDir(writeDir(t, files), Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, n := range c.Nodes {
		names = append(names, n.Hostname)
	}
	if want := []string{"caspar", "adam", "balthasar", "melchior"}; !reflect.DeepEqual(names, want) {
		t.Errorf("nodes = %q, want head first, then workers by name %q", names, want)
	}
	n, err := c.Node("caspar")
	if err != nil || n != c.HeadNode() || n.Address != c.Head.Addr() || !reflect.DeepEqual(n.MAC, net.HardwareAddr{0xdc, 0xa6, 0x32, 1, 2, 3}) {
		t.Errorf("Node(caspar) = %+v, %v", n, err)
	}
	if _, err := c.Node("Caspar"); err == nil {
		t.Error("Node is case-insensitive")
	}
}

func TestLoadDirMissing(t *testing.T) {
	_, err := LoadDir(filepath.Join(t.TempDir(), "nope"), Options{})
	var pe *Error
	if !errors.As(err, &pe) || !strings.Contains(err.Error(), "read profile directory") {
		t.Errorf("err = %v, want a *profile.Error about the directory", err)
	}
}

func TestOfflineDebs(t *testing.T) {
	dir := t.TempDir()
	debs := filepath.Join(dir, "debs")
	os.MkdirAll(debs, 0o755)
	os.WriteFile(filepath.Join(debs, "iptables_1.8.9-2_arm64.deb"), []byte("!<arch>\n"), 0o644)
	for _, n := range []string{"cluster.yaml", "caspar.yaml", "balthasar.yaml", "melchior.yaml"} {
		b, err := os.ReadFile(filepath.Join("../../profiles", n))
		if err != nil {
			t.Fatal(err)
		}
		if n == "cluster.yaml" {
			b = append(b, []byte("offline_debs: debs\n")...)
		}
		os.WriteFile(filepath.Join(dir, n), b, 0o644)
	}
	env := map[string]string{"MAGIBAKE_WIFI_SSID": "w", "MAGIBAKE_WIFI_PASSPHRASE": "12345678", "MAGIBAKE_WIFI_COUNTRY": "GB", "MAGIBAKE_USER": "pi", "MAGIBAKE_PASSWORD_HASH": "$6$a$b"}
	c, err := LoadDir(dir, Options{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	if c.OfflineDebs != debs {
		t.Errorf("OfflineDebs = %q, want %q", c.OfflineDebs, debs)
	}
}

// TestBaseWithoutSHA256: a base may leave out its sha256 (fetch and build
// then check the download against the .sha256 published beside url); it
// loads with an empty SHA256, however the sha256 comes to be absent.
func TestBaseWithoutSHA256(t *testing.T) {
	const url = "https://downloads.raspberrypi.com/raspios_lite_arm64/images/x.img.xz"
	tests := []struct {
		name string
		sub  []string
		want Base
	}{
		{name: "pinned", want: Base{URL: url, SHA256: sum}},
		{name: "no sha256 key", sub: []string{"  sha256: " + sum + "\n", ""}, want: Base{URL: url}},
		{name: "sha256 without a value", sub: []string{"  sha256: " + sum + "\n", "  sha256:\n"}, want: Base{URL: url}},
		{name: "sha256 from an unset optional variable", sub: []string{"sha256: " + sum, "sha256: {env: NO_SUCH_VAR, optional: true}"}, want: Base{URL: url}},
		{name: "flow style, http", sub: []string{"base:\n  url: " + url + "\n  sha256: " + sum + "\n", "base: {url: http://10.0.0.1/x.img}\n"},
			want: Base{URL: "http://10.0.0.1/x.img"}},
		{name: "no base", sub: []string{"base:\n  url: " + url + "\n  sha256: " + sum + "\n", ""}},
		{name: "both left empty by optional references", sub: []string{"url: " + url, "url: {env: NO_SUCH_VAR, optional: true}", "sha256: " + sum, "sha256: {env: NO_SUCH_VAR, optional: true}"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadDir(writeDir(t, edit(t, tt.sub, nil)), Options{Getenv: noEnv})
			if err != nil {
				t.Fatal(err)
			}
			if c.Base != tt.want {
				t.Errorf("Base = %+v, want %+v", c.Base, tt.want)
			}
		})
	}
}

// TestKubernetes: the option is off unless cluster.yaml says true, and a
// value that is not a boolean is an error at its line.
func TestKubernetes(t *testing.T) {
	const last = "  sha256: " + sum + "\n" // line 24 of validCluster
	tests := []struct {
		name  string
		line  string // appended after the last line of validCluster
		want  bool
		where string // "" for no problem
		msg   string
	}{
		{name: "absent", want: false},
		{name: "true", line: "kubernetes: true\n", want: true},
		{name: "false", line: "kubernetes: false\n", want: false},
		{name: "not a boolean", line: "kubernetes: k3s\n", where: "cluster.yaml:25: kubernetes", msg: `want true or false, got "k3s"`},
		{name: "a mapping", line: "kubernetes: {enabled: true}\n", where: "cluster.yaml:25: kubernetes", msg: "want true or false, got a mapping"},
		// As for every optional key, an empty value counts as absent.
		{name: "empty", line: "kubernetes:\n", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := LoadDir(writeDir(t, edit(t, []string{last, last + tt.line}, nil)), Options{Getenv: noEnv})
			if tt.where == "" {
				if err != nil {
					t.Fatal(err)
				}
				if c.Kubernetes != tt.want {
					t.Errorf("Kubernetes = %v, want %v", c.Kubernetes, tt.want)
				}
				return
			}
			ps := problems(t, err)
			if len(ps) != 1 {
				t.Fatalf("got %d problems (%v), want 1", len(ps), err)
			}
			if got := ps[0].Error(); !strings.Contains(got, tt.where+": ") || !strings.Contains(got, tt.msg) {
				t.Errorf("problem %q, want %q and %q", got, tt.where, tt.msg)
			}
		})
	}
}

// TestWorkers: a file with count becomes count ordinary worker nodes, each
// with its entry of every list, sorted with the others by hostname.
func TestWorkers(t *testing.T) {
	files := validFiles()
	files["workers.yaml"] = `# eight workers
role: worker
count: 8
hostname: node{n}
macs: [dc:a6:32:00:00:01, dc:a6:32:00:00:02, dc:a6:32:00:00:03, dc:a6:32:00:00:04,
       dc:a6:32:00:00:05, dc:a6:32:00:00:06, dc:a6:32:00:00:07, dc:a6:32:00:00:08]
addresses: [10.3.50.31, 10.3.50.32, 10.3.50.33, 10.3.50.34, 10.3.50.35, 10.3.50.36, 10.3.50.37, 10.3.50.38]
home_addresses: [192.168.0.31, 192.168.0.32, 192.168.0.33, 192.168.0.34, node5.lan, node6.lan, 192.168.0.37, 192.168.0.38]
`
	dir := writeDir(t, files)
	c, err := LoadDir(dir, Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	checkInvariants(t, c)
	var got []string
	for _, n := range c.Nodes {
		got = append(got, n.Hostname)
	}
	want := []string{"caspar", "balthasar", "melchior", "node1", "node2", "node3", "node4", "node5", "node6", "node7", "node8"}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("nodes %q, want %q", got, want)
	}
	src := filepath.Join(dir, "workers.yaml")
	for i, n := range c.Nodes[3:] {
		home := "192.168.0.3" + string(rune('1'+i))
		if i == 4 || i == 5 {
			home = n.Hostname + ".lan"
		}
		w := Node{Hostname: want[3+i], Role: RoleWorker, MAC: net.HardwareAddr{0xdc, 0xa6, 0x32, 0, 0, byte(i + 1)},
			Address: netip.AddrFrom4([4]byte{10, 3, 50, byte(31 + i)}), Home: home, Source: src}
		if !reflect.DeepEqual(n, w) {
			t.Errorf("node %d = %+v, want %+v", i+1, n, w)
		}
	}
}

// TestWorkersOrder: workers sort by hostname as text, and MAC'd workers
// without addresses get theirs in that order, so node10 sorts between node1
// and node2; {n:02} keeps the numbers in order.
func TestWorkersOrder(t *testing.T) {
	macs := "macs: [dc:a6:32:00:00:01, dc:a6:32:00:00:02, dc:a6:32:00:00:03, dc:a6:32:00:00:04, dc:a6:32:00:00:05, dc:a6:32:00:00:06, dc:a6:32:00:00:07, dc:a6:32:00:00:08, dc:a6:32:00:00:09, dc:a6:32:00:00:0a]\n"
	tests := []struct {
		pattern string
		want    []string // hostname:address, in node order after the head
	}{
		{"node{n}", []string{"node1:10.3.50.2", "node10:10.3.50.3", "node2:10.3.50.4", "node3:10.3.50.5", "node4:10.3.50.6",
			"node5:10.3.50.7", "node6:10.3.50.8", "node7:10.3.50.9", "node8:10.3.50.21", "node9:10.3.50.22"}},
		{"node{n:02}", []string{"node01:10.3.50.2", "node02:10.3.50.3", "node03:10.3.50.4", "node04:10.3.50.5", "node05:10.3.50.6",
			"node06:10.3.50.7", "node07:10.3.50.8", "node08:10.3.50.9", "node09:10.3.50.21", "node10:10.3.50.22"}},
		{"rack-{n:03}-pi", []string{"rack-001-pi:10.3.50.2", "rack-002-pi:10.3.50.3", "rack-003-pi:10.3.50.4", "rack-004-pi:10.3.50.5", "rack-005-pi:10.3.50.6",
			"rack-006-pi:10.3.50.7", "rack-007-pi:10.3.50.8", "rack-008-pi:10.3.50.9", "rack-009-pi:10.3.50.21", "rack-010-pi:10.3.50.22"}},
	}
	for _, tt := range tests {
		t.Run(tt.pattern, func(t *testing.T) {
			files := map[string]string{
				"cluster.yaml": validCluster,
				"caspar.yaml":  "hostname: caspar\nrole: head\n",
				"workers.yaml": "role: worker\ncount: 10\nhostname: " + tt.pattern + "\n" + macs,
			}
			c, err := LoadDir(writeDir(t, files), Options{Getenv: noEnv})
			if err != nil {
				t.Fatal(err)
			}
			checkInvariants(t, c)
			var got []string
			for _, n := range c.Nodes[1:] {
				got = append(got, n.Hostname+":"+n.Address.String())
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("workers\n%q\nwant\n%q", got, tt.want)
			}
		})
	}
}

// TestDocsWorkersExample keeps docs/profiles.md's example of a file with
// count true: it loads beside the other nodes as eight workers.
func TestDocsWorkersExample(t *testing.T) {
	b, err := os.ReadFile("../../docs/profiles.md")
	if err != nil {
		t.Fatal(err)
	}
	start := strings.Index(string(b), "```yaml\n# workers.yaml")
	if start < 0 {
		t.Fatal("docs/profiles.md has no ```yaml block starting # workers.yaml")
	}
	block := string(b[start+len("```yaml\n"):])
	block = block[:strings.Index(block, "```")]
	files := validFiles()
	files["workers.yaml"] = block
	c, err := LoadDir(writeDir(t, files), Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	n, err := c.Node("node08")
	if len(c.Nodes) != 11 || err != nil || n.Address.String() != "10.3.50.38" || n.Home != "192.168.0.38" || n.MAC.String() != "dc:a6:32:00:00:08" {
		t.Errorf("%d nodes, node08 = %+v (%v)", len(c.Nodes), n, err)
	}
}
