package inventory

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/magibake/magibake/internal/profile"
	"github.com/magibake/magibake/internal/testkit"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// exampleEnv gives the embedded example profiles their secrets; none of
// them may reach an inventory.
var exampleEnv = testkit.ExampleEnv

// labFS is a cluster with what the example lacks: home addresses, MACs, a
// worker with a fixed address, one with a MAC only, one with neither, and
// values a careless writer would let YAML 1.1 or Python turn into numbers
// (a MAC of digits only, the domain 1.5, the home address 1e5).
var labFS = fstest.MapFS{
	"cluster.yaml": {Data: []byte(`name: lab
domain: "1.5"
subnet: 10.9.0.0/24
head_address: 10.9.0.1/24
dhcp: {range: [10.9.0.100, 10.9.0.150], dns: [10.9.0.1]}
uplink: eth1
home_network: 192.168.7.0/24
timezone: Europe/Berlin
locale: de_DE.UTF-8
user:
  name: admin
  password_hash: "$6$labsalt$secrethash"
  ssh_authorized_keys: [ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMqXgRLKG73K+sIxs5oj3E2nhu/4FHxOcrmAd4Wv7ki7 owner@laptop]
`)},
	"alpha.yaml": {Data: []byte("hostname: alpha\nrole: head\nhome_address: 192.168.7.10\n")},
	"zulu.yaml":  {Data: []byte("hostname: zulu\nrole: worker\nmac: \"12:34:56:01:02:03\"\naddress: 10.9.0.5\nhome_address: \"1e5\"\n")},
	"mike.yaml":  {Data: []byte("hostname: mike\nrole: worker\nmac: dc:a6:32:0a:0b:0c\nhome_address: mike.home.arpa\nkeyboard: de\n")},
	"bravo.yaml": {Data: []byte("hostname: bravo\nrole: worker\n")},
}

func exampleCluster(t *testing.T) *profile.Cluster {
	t.Helper()
	c, err := profile.Default(profile.Options{Getenv: func(k string) string { return exampleEnv[k] }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func labCluster(t *testing.T) *profile.Cluster {
	t.Helper()
	c, err := profile.Load(labFS, "lab", profile.Options{Getenv: func(string) string { return "" }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

var clusters = []struct {
	name string
	load func(*testing.T) *profile.Cluster
}{{"magi", exampleCluster}, {"lab", labCluster}}

// rendered is every output of this package for c, by golden file suffix.
func rendered(t *testing.T, c *profile.Cluster) map[string][]byte {
	t.Helper()
	out := map[string][]byte{"ssh_config": SSHConfig(c, "magibake known-hosts")}
	for _, f := range Formats() {
		b, err := Ansible(c, f)
		if err != nil {
			t.Fatalf("Ansible(%s, %s): %v", c.Name, f, err)
		}
		out[f] = b
	}
	return out
}

// TestGolden compares every output with testdata/CLUSTER.SUFFIX (go test
// -update rewrites them; review the diff).
func TestGolden(t *testing.T) {
	for _, tc := range clusters {
		c := tc.load(t)
		for suffix, got := range rendered(t, c) {
			t.Run(tc.name+"."+suffix, func(t *testing.T) {
				golden := filepath.Join("testdata", tc.name+"."+suffix)
				if *update {
					os.MkdirAll("testdata", 0o755)
					if err := os.WriteFile(golden, got, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run go test ./internal/inventory -update to create it)", err)
				}
				if !bytes.Equal(got, want) {
					t.Errorf("%s differs (review, then go test ./internal/inventory -update):\n%s", golden, testkit.FirstDiff(string(got), string(want)))
				}
			})
		}
	}
}

// TestNoSecrets: no output holds a passphrase or a password hash.
func TestNoSecrets(t *testing.T) {
	for _, tc := range clusters {
		c := tc.load(t)
		secrets := c.SecretValues()
		if len(secrets) == 0 {
			t.Fatalf("%s: the test cluster has no secrets to look for", tc.name)
		}
		for suffix, got := range rendered(t, c) {
			for _, s := range secrets {
				if strings.Contains(string(got), s) {
					t.Errorf("%s.%s holds the secret %q", tc.name, suffix, s)
				}
			}
		}
	}
}

// TestDeterministic: the same cluster gives the same bytes, whatever the
// order its files were read in.
func TestDeterministic(t *testing.T) {
	for _, tc := range clusters {
		first := rendered(t, tc.load(t))
		for i := 0; i < 5; i++ {
			for suffix, got := range rendered(t, tc.load(t)) {
				if !bytes.Equal(got, first[suffix]) {
					t.Fatalf("%s.%s differs between two renderings", tc.name, suffix)
				}
			}
		}
	}
}

func TestBadInput(t *testing.T) {
	for _, name := range []string{"all", "ungrouped", "head", "workers"} {
		c := labCluster(t)
		c.Name = name
		for _, f := range Formats() {
			_, err := Ansible(c, f)
			if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("cluster name %q is also a group", name)) {
				t.Errorf("cluster %q, %s: got error %v, want the group clash", name, f, err)
			}
		}
	}
	if _, err := Ansible(labCluster(t), "json"); err == nil || !strings.Contains(err.Error(), `inventory format "json": want one of yaml, ini`) {
		t.Errorf("format json: got error %v", err)
	}
	c := labCluster(t)
	c.User.Name = "two words"
	if _, err := Ansible(c, "ini"); err == nil || !strings.Contains(err.Error(), `ansible_user "two words" cannot be written in an INI inventory`) {
		t.Errorf("a user name with a space in INI: got error %v", err)
	}
}

func TestINIValue(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"caspar.local", "caspar.local"},
		{"pi", "pi"},
		{"10.3.50.1", "10.3.50.1"},
		{"10.3.50.0/24", "10.3.50.0/24"},
		{"12:34:56:01:02:03", "12:34:56:01:02:03"},
		{"123", "'123'"},
		{"1.5", "'1.5'"},
		{"0x1f", "'0x1f'"},
		{"1e5", "'1e5'"},
		{"1-2j", "'1-2j'"},
		{"True", "'True'"},
		{"None", "'None'"},
	} {
		got, err := iniValue(variable{"v", tc.in})
		if err != nil || got != tc.want {
			t.Errorf("iniValue(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}
