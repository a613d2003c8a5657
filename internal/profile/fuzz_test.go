package profile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/magibake/magibake/profiles"
)

// FuzzLoad feeds arbitrary cluster.yaml and melchior.yaml bytes to Load: it
// must never panic, and must return either a cluster that satisfies the
// documented invariants or one-line *Error problems.
func FuzzLoad(f *testing.F) {
	embedded, err := profiles.FS.ReadFile("cluster.yaml")
	if err != nil {
		f.Fatal(err)
	}
	worker := []byte("hostname: melchior\nrole: worker\n")
	for _, seed := range []string{
		validCluster,
		string(embedded),
		strings.Replace(validCluster, "ssid: home", "ssid: {file: psk}", 1),
		strings.Replace(validCluster, "ssid: home", "ssid: &a {env: SSID}\n  country: *a", 1),
		"name: &x [*x]\n",
		"dhcp: {range: [1.2.3.4, 1.2.3.5], dns: [1.1.1.1]}\n",
		"a: b\n---\nc: d\n",
		"%YAML 1.1\n--- !!map\n? [a]\n: b\n",
		"",
		"\t",
	} {
		f.Add([]byte(seed), worker)
	}
	f.Add([]byte(validCluster), []byte("hostname: melchior\nrole: worker\nmac: dc:a6:32:01:02:05\naddress: 10.3.50.3\n"))
	f.Add([]byte(validCluster), []byte("hostname: melchior\nrole: head\naddress: 10.3.50.1\n"))
	// A node file with count: melchior.yaml then stands for several workers.
	f.Add([]byte(validCluster), []byte("role: worker\ncount: 3\nhostname: node{n:02}\nmacs: [dc:a6:32:00:00:01, dc:a6:32:00:00:02, dc:a6:32:00:00:03]\naddresses: [10.3.50.31, 10.3.50.32, 10.3.50.33]\nhome_addresses: [192.168.0.31, node2.lan, 192.168.0.33]\n"))
	f.Add([]byte(validCluster), []byte("role: worker\ncount: 2\nhostname: melchior{n}\nmacs: [dc:a6:32:01:02:04, dc:a6:32:00:00:02]\n"))
	f.Add([]byte(validCluster), []byte("role: worker\ncount: 250\nhostname: n{n:03}\n"))

	base := f.TempDir()
	if err := os.WriteFile(filepath.Join(base, "psk"), []byte("a file passphrase\n"), 0o600); err != nil {
		f.Fatal(err)
	}
	env := map[string]string{"SSID": "fuzz", "MAGIBAKE_WIFI_SSID": "fuzz", "MAGIBAKE_WIFI_PASSPHRASE": "fuzz fuzz fuzz",
		"MAGIBAKE_WIFI_COUNTRY": "se", "MAGIBAKE_USER": "fuzz", "MAGIBAKE_SSH_KEYS": keyA}
	opt := Options{Getenv: func(k string) string { return env[k] }, FileBase: base}
	files := validFiles()

	f.Fuzz(func(t *testing.T, cluster, node []byte) {
		fsys := fstest.MapFS{
			"cluster.yaml":   {Data: cluster},
			"caspar.yaml":    {Data: []byte(files["caspar.yaml"])},
			"balthasar.yaml": {Data: []byte(files["balthasar.yaml"])},
			"melchior.yaml":  {Data: node},
		}
		c, err := Load(fsys, "fuzz", opt)
		if err != nil {
			if c != nil {
				t.Fatal("Load returned a cluster and an error")
			}
			for _, p := range problems(t, err) {
				if !strings.HasPrefix(p.File, "fuzz") || p.Msg == "" {
					t.Fatalf("malformed problem %#v", p)
				}
			}
			return
		}
		checkInvariants(t, c)
	})
}

// checkInvariants checks what the rest of magibake relies on in a loaded
// cluster.
func checkInvariants(t *testing.T, c *Cluster) {
	t.Helper()
	if !c.Subnet.IsValid() || c.Subnet.Masked() != c.Subnet || !c.Subnet.Addr().Is4() {
		t.Fatalf("Subnet = %v", c.Subnet)
	}
	if c.Head.Bits() != c.Subnet.Bits() || !c.Subnet.Contains(c.Head.Addr()) || c.Head.Addr() == c.Subnet.Addr() {
		t.Fatalf("Head = %v in %v", c.Head, c.Subnet)
	}
	if !c.Subnet.Contains(c.DHCPStart) || !c.Subnet.Contains(c.DHCPEnd) || c.DHCPStart.Compare(c.DHCPEnd) > 0 ||
		inRange(c.Head.Addr(), c.DHCPStart, c.DHCPEnd) {
		t.Fatalf("DHCP range %v-%v", c.DHCPStart, c.DHCPEnd)
	}
	if len(c.DNS) == 0 || c.DefaultLease <= 0 || c.DefaultLease > c.MaxLease {
		t.Fatalf("DNS %v, leases %d/%d", c.DNS, c.DefaultLease, c.MaxLease)
	}
	if c.Name == "" || c.Domain == "" || c.Uplink == "" || c.User.Name == "" {
		t.Fatalf("empty required field in %+v", c)
	}
	if c.User.PasswordHash == "" && len(c.User.SSHKeys) == 0 {
		t.Fatal("no way to log in")
	}
	if c.WiFi != nil && (c.WiFi.SSID == "" || c.WiFi.Passphrase == "" || len(c.WiFi.Country) != 2) {
		t.Fatalf("WiFi = %+v", c.WiFi)
	}
	if len(c.Nodes) == 0 || c.Nodes[0].Role != RoleHead || c.HeadNode() != &c.Nodes[0] || c.Nodes[0].Address != c.Head.Addr() {
		t.Fatalf("Nodes = %+v", c.Nodes)
	}
	seen := map[string]bool{}
	for _, n := range c.Nodes {
		for _, v := range []string{"host " + n.Hostname, "home " + n.Home, "mac " + n.MAC.String(), "address " + n.Address.String()} {
			if seen[v] && v != "mac " && v != "address invalid IP" {
				t.Fatalf("%s twice in %+v", v, c.Nodes)
			}
			seen[v] = true
		}
		if labelProblem(n.Hostname) != "" || n.Home == "" || !strings.HasSuffix(n.Source, ".yaml") {
			t.Fatalf("node %+v", n)
		}
	}
	for _, n := range c.Nodes[1:] {
		if n.Role != RoleWorker {
			t.Fatalf("second head %+v", n)
		}
		if n.Address.IsValid() && (n.MAC == nil || !c.Subnet.Contains(n.Address) || inRange(n.Address, c.DHCPStart, c.DHCPEnd)) {
			t.Fatalf("worker address %+v", n)
		}
	}
	for _, s := range c.SecretValues() {
		if strings.Contains(c.Digest, s) {
			t.Fatal("secret in digest")
		}
	}
}
