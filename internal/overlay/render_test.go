package overlay

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/hostkey"
	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/profile"
	"github.com/magibake/magibake/internal/testkit"
	"github.com/magibake/magibake/overlays"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

var testEnv = testkit.ExampleEnv

var mtime = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func defaultCluster(t *testing.T) *profile.Cluster {
	t.Helper()
	c, err := profile.Default(profile.Options{Getenv: func(k string) string { return testEnv[k] }})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testHostKey is a fixed key per node from testdata/hostkeys (made with
// ssh-keygen, test use only), so that golden plans do not change from run
// to run.
func testHostKey(t *testing.T, node string) hostkey.Key {
	t.Helper()
	path := filepath.Join("testdata", "hostkeys", node, hostkey.File)
	priv, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	pub, err := os.ReadFile(path + ".pub")
	if err != nil {
		t.Fatal(err)
	}
	return hostkey.Key{Private: string(priv), Public: string(pub)}
}

func render(t *testing.T, c *profile.Cluster, node string) *plan.Plan {
	t.Helper()
	keys := hostkey.Keys{}
	for _, n := range c.Nodes {
		keys[n.Hostname] = testHostKey(t, n.Hostname)
	}
	p, err := Render(c, keys, node, []Tree{{FS: overlays.FS, Display: "overlays"}}, mtime)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestGolden renders each node of the default profiles; a change to any
// rendered file shows up as a diff of testdata/NODE.plan (go test -update).
func TestGolden(t *testing.T) {
	c := defaultCluster(t)
	for _, n := range c.Nodes {
		t.Run(n.Hostname, func(t *testing.T) {
			var buf bytes.Buffer
			if err := plan.Print(&buf, render(t, c, n.Hostname), plan.PrintOptions{Content: true, ShowSecrets: true}); err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", n.Hostname+".plan")
			if *update {
				os.MkdirAll("testdata", 0o755)
				if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("%v (run go test ./internal/overlay -update to create it)", err)
			}
			if !bytes.Equal(buf.Bytes(), want) {
				t.Errorf("plan for %s differs from %s (review, then go test ./internal/overlay -update):\n%s", n.Hostname, golden, testkit.FirstDiff(buf.String(), string(want)))
			}
		})
	}
}

// tree writes a plan's root-partition files into a directory.
func tree(t *testing.T, p *plan.Plan) string {
	t.Helper()
	dir := t.TempDir()
	applyOnto(t, dir, p)
	return dir
}

func find(t *testing.T, p *plan.Plan, part plan.Partition, path string) plan.Op {
	t.Helper()
	for _, op := range p.Ops {
		if op.Partition == part && op.Path == path {
			return op
		}
	}
	t.Fatalf("plan for %s has no %s %s", p.Node, part, path)
	return plan.Op{}
}

// TestHeadFilesAcceptedByConsumers runs the real programs over caspar's files.
func TestHeadFilesAcceptedByConsumers(t *testing.T) {
	testkit.RequireTools(t, "dhcpd", "iptables-restore", "systemd-analyze", "shellcheck")
	c := defaultCluster(t)
	p := render(t, c, "caspar")
	dir := tree(t, p)

	out, err := exec.Command("dhcpd", "-t", "-cf", filepath.Join(dir, "etc/dhcp/dhcpd.conf")).CombinedOutput()
	if err != nil {
		t.Errorf("dhcpd -t: %v\n%s", err, out)
	}
	rules := filepath.Join(dir, "etc/magibake/iptables.rules")
	if out, err := exec.Command("iptables-restore", "--test", rules).CombinedOutput(); err != nil {
		t.Errorf("iptables-restore --test: %v\n%s", err, out)
	}
	text := string(find(t, p, plan.Root, "/etc/magibake/iptables.rules").Content)
	for _, rule := range []string{
		"-A POSTROUTING -s 10.3.50.0/24 -o wlan0 -j MASQUERADE",
		"-A FORWARD -i wlan0 -o eth0 -m conntrack --ctstate RELATED,ESTABLISHED -j ACCEPT",
		"-A FORWARD -i eth0 -o wlan0 -j ACCEPT",
	} {
		if strings.Count(text, rule) != 1 {
			t.Errorf("iptables.rules has %q %d times, want once", rule, strings.Count(text, rule))
		}
	}

	verifyUnitsAndScripts(t, p, dir)
	if op := find(t, p, plan.Root, "/usr/local/sbin/magibake-cluster-route"); plan.OctalMode(op.Mode) != "0755" {
		t.Errorf("route script mode %s", plan.OctalMode(op.Mode))
	}
	if got := string(find(t, p, plan.Root, "/etc/sysctl.d/90-magibake-forward.conf").Content); !strings.Contains(got, "\nnet.ipv4.ip_forward=1\n") {
		t.Errorf("sysctl: %q", got)
	}
}

// TestDHCPHostEntries: workers with a MAC get a fixed-address host entry that
// dhcpd accepts, and the same address in every node's /etc/hosts.
func TestDHCPHostEntries(t *testing.T) {
	testkit.RequireTools(t, "dhcpd")
	dir := t.TempDir()
	cluster, err := os.ReadFile(filepath.Join(fixture.RepoRoot(t), "profiles", "cluster.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]string{
		"cluster.yaml":   string(cluster),
		"caspar.yaml":    "hostname: caspar\nrole: head\n",
		"balthasar.yaml": "hostname: balthasar\nrole: worker\nmac: 52:54:00:35:00:0b\n",
		"melchior.yaml":  "hostname: melchior\nrole: worker\nmac: 52:54:00:35:00:0c\naddress: 10.3.50.5\n",
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := profile.LoadDir(dir, profile.Options{Getenv: func(k string) string { return testEnv[k] }})
	if err != nil {
		t.Fatal(err)
	}
	p := render(t, c, "caspar")
	conf := filepath.Join(tree(t, p), "etc/dhcp/dhcpd.conf")
	if out, err := exec.Command("dhcpd", "-t", "-cf", conf).CombinedOutput(); err != nil {
		t.Errorf("dhcpd -t: %v\n%s", err, out)
	}
	text := string(find(t, p, plan.Root, "/etc/dhcp/dhcpd.conf").Content)
	for host, want := range map[string]string{"balthasar": "52:54:00:35:00:0b;\n    fixed-address 10.3.50.2;", "melchior": "52:54:00:35:00:0c;\n    fixed-address 10.3.50.5;"} {
		if !strings.Contains(text, "host "+host+" {\n    hardware ethernet "+want) {
			t.Errorf("dhcpd.conf lacks %s's entry %q:\n%s", host, want, text)
		}
	}
	for _, n := range c.Nodes {
		hosts := string(find(t, render(t, c, n.Hostname), plan.Root, "/etc/hosts").Content)
		for _, line := range []string{"10.3.50.1\tcaspar.cluster caspar", "10.3.50.2\tbalthasar.cluster balthasar", "10.3.50.5\tmelchior.cluster melchior"} {
			if !strings.Contains(hosts, "\n"+line+"\n") {
				t.Errorf("%s /etc/hosts lacks %q:\n%s", n.Hostname, line, hosts)
			}
		}
	}
}

// TestWorkerFilesAcceptedByConsumers checks the units and scripts every node gets.
func TestWorkerFilesAcceptedByConsumers(t *testing.T) {
	testkit.RequireTools(t, "systemd-analyze", "shellcheck")
	p := render(t, defaultCluster(t), "melchior")
	verifyUnitsAndScripts(t, p, tree(t, p))
}

// verifyUnitsAndScripts runs systemd-analyze verify inside the baked tree,
// with systemd's own units and the programs the units run present there, and
// sh -n plus shellcheck on every script the plan installs.
func verifyUnitsAndScripts(t *testing.T, p *plan.Plan, dir string) {
	t.Helper()
	copyTree(t, "/usr/lib/systemd/system", filepath.Join(dir, "usr/lib/systemd/system"))
	for _, bin := range []string{"/usr/sbin/iptables-restore", "/usr/sbin/dhcpd"} {
		copyFile(t, bin, filepath.Join(dir, bin))
	}
	// A stand-in for the unit systemd generates from isc-dhcp-server's init
	// script, so that magibake's drop-in is read and checked with it.
	os.WriteFile(filepath.Join(dir, "etc/systemd/system/isc-dhcp-server.service"), []byte("[Unit]\nDescription=ISC DHCP server (stand-in)\n[Service]\nType=forking\nExecStart=/usr/sbin/dhcpd -4 -q eth0\n"), 0o644)
	units := []string{"isc-dhcp-server.service"}
	var scripts []string
	for _, op := range p.Ops {
		switch {
		case op.Kind == plan.WriteFile && filepath.Dir(op.Path) == "/etc/systemd/system":
			units = append(units, filepath.Base(op.Path))
		case op.Kind == plan.WriteFile && bytes.HasPrefix(op.Content, []byte("#!/bin/sh")):
			scripts = append(scripts, filepath.Join(dir, op.Path))
			if plan.OctalMode(op.Mode) != "0755" {
				t.Errorf("%s: mode %s, want 0755", op.Path, plan.OctalMode(op.Mode))
			}
		}
	}
	if len(units) < 2 || len(scripts) == 0 {
		t.Fatalf("only units %v and scripts %v", units, scripts)
	}
	args := append([]string{"verify", "--man=no", "--root=" + dir}, units...)
	if out, err := exec.Command("systemd-analyze", args...).CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("systemd-analyze verify %v: %v\n%s", units, err, out)
	}
	for _, script := range scripts {
		for _, check := range [][]string{{"sh", "-n", script}, {"shellcheck", script}} {
			if out, err := exec.Command(check[0], check[1:]...).CombinedOutput(); err != nil {
				t.Errorf("%v: %v\n%s", check, err, out)
			}
		}
	}
}

// TestCloudInit checks the boot partition's cloud-init files parse as YAML
// and leave the user to userconf.txt: a cloud-init "users:" entry runs before
// userconf-pi's rename on Trixie and leaves two users.
func TestCloudInit(t *testing.T) {
	c := defaultCluster(t)
	p := render(t, c, "balthasar")
	var ud struct {
		PreserveHostname bool     `yaml:"preserve_hostname"`
		Users            []any    `yaml:"users"`
		SSHPwauth        bool     `yaml:"ssh_pwauth"`
		Keys             []string `yaml:"ssh_authorized_keys"`
	}
	op := find(t, p, plan.Boot, "/user-data")
	if !bytes.HasPrefix(op.Content, []byte("#cloud-config\n")) || !op.Secret {
		t.Error("user-data must start with #cloud-config and be marked secret")
	}
	if err := yaml.Unmarshal(op.Content, &ud); err != nil {
		t.Fatalf("user-data: %v", err)
	}
	// users: [] (present and empty), not absent: without the key cloud-init
	// creates the distribution's default user.
	if !ud.PreserveHostname || ud.Users == nil || len(ud.Users) != 0 || ud.SSHPwauth || len(ud.Keys) != 0 {
		t.Errorf("user-data: %+v", ud)
	}
	var md map[string]string
	if err := yaml.Unmarshal(find(t, p, plan.Boot, "/meta-data").Content, &md); err != nil ||
		md["instance-id"] != "magibake-balthasar" || md["dsmode"] != "local" || md["local-hostname"] != "balthasar" {
		t.Errorf("meta-data: %v %v", md, err)
	}
	if got := string(find(t, p, plan.Boot, "/userconf.txt").Content); got != "pi:"+testEnv["MAGIBAKE_PASSWORD_HASH"]+"\n" {
		t.Errorf("userconf.txt %q", got)
	}
	if got := string(find(t, p, plan.Root, "/etc/ssh/sshd_config.d/50-magibake.conf").Content); !strings.Contains(got, "\nPasswordAuthentication no\n") {
		t.Errorf("sshd drop-in %q: password login must be off when keys are given", got)
	}
}

// TestSudoers checks the sudo rule for the profile's user with visudo, the
// program sudo itself parses it with: with a password hash sudo asks for the
// password, without one (key-only login) it asks for none.
func TestSudoers(t *testing.T) {
	testkit.RequireTools(t, "visudo")
	withHash := testEnv
	keyOnly := map[string]string{}
	for k, v := range testEnv {
		if k != "MAGIBAKE_PASSWORD_HASH" {
			keyOnly[k] = v
		}
	}
	for _, tc := range []struct {
		name     string
		env      map[string]string
		rule     string
		noPasswd bool
	}{
		{"password hash", withHash, "pi ALL=(ALL:ALL) ALL", false},
		{"key-only", keyOnly, "pi ALL=(ALL:ALL) NOPASSWD: ALL", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := profile.Default(profile.Options{Getenv: func(k string) string { return tc.env[k] }})
			if err != nil {
				t.Fatal(err)
			}
			op := find(t, render(t, c, "caspar"), plan.Root, "/etc/sudoers.d/090_magibake")
			if op.Mode != 0o440 || op.UID != 0 || op.GID != 0 {
				t.Errorf("mode %o owner %d:%d, want 0440 0:0 (sudo ignores other modes)", op.Mode, op.UID, op.GID)
			}
			var rules []string
			for _, l := range strings.Split(string(op.Content), "\n") {
				if l != "" && !strings.HasPrefix(l, "#") {
					rules = append(rules, l)
				}
			}
			if len(rules) != 1 || rules[0] != tc.rule {
				t.Errorf("rules %q, want [%q]", rules, tc.rule)
			}
			f := filepath.Join(t.TempDir(), "090_magibake")
			if err := os.WriteFile(f, op.Content, 0o440); err != nil {
				t.Fatal(err)
			}
			if out, err := exec.Command("visudo", "-c", "-q", "-f", f).CombinedOutput(); err != nil {
				t.Errorf("visudo -cf: %v\n%s", err, out)
			}
		})
	}
}

// TestOfflineDebs checks the head carries the profile's .deb files for its
// first boot, and the workers do not.
func TestOfflineDebs(t *testing.T) {
	c := defaultCluster(t)
	c.OfflineDebs = t.TempDir()
	for _, d := range []struct{ name, control string }{
		{"iptables_1.8.9-2_arm64.deb", "Package: iptables\nDepends: libip4tc2 (>= 1.8.3), libc6\n"},
		{"libip4tc2_1.8.9-2_arm64.deb", "Package: libip4tc2\nDepends: libc6\n"},
		{"tree_2.1.0-1_arm64.deb", "Package: tree\nDepends: libc6 (>= 2.34)\n"},
	} {
		buildDeb(t, filepath.Join(c.OfflineDebs, d.name), d.control)
	}
	c.Nodes[2].Settings.Packages = []string{"tree"} // melchior
	debs := func(node string) []string {
		var out []string
		for _, op := range render(t, c, node).Ops {
			if strings.HasPrefix(op.Path, DebsDir+"/") {
				out = append(out, path.Base(op.Path))
			}
		}
		return out
	}
	for node, want := range map[string][]string{
		"caspar":    {"iptables_1.8.9-2_arm64.deb", "libip4tc2_1.8.9-2_arm64.deb"},
		"balthasar": nil,
		"melchior":  {"tree_2.1.0-1_arm64.deb"},
	} {
		if got := debs(node); !slices.Equal(got, want) {
			t.Errorf("%s gets %v, want %v", node, got, want)
		}
	}
	raw, _ := os.ReadFile(filepath.Join(c.OfflineDebs, "tree_2.1.0-1_arm64.deb"))
	if got := find(t, render(t, c, "melchior"), plan.Root, DebsDir+"/tree_2.1.0-1_arm64.deb"); !bytes.Equal(got.Content, raw) {
		t.Errorf("tree's .deb is not copied as it is")
	}
}

// buildDeb makes a .deb with dpkg-deb, as Debian builds them.
func buildDeb(t *testing.T, out, control string) {
	t.Helper()
	dir := t.TempDir()
	os.MkdirAll(filepath.Join(dir, "DEBIAN"), 0o755)
	name, _, _ := strings.Cut(strings.TrimPrefix(control, "Package: "), "\n")
	control += "Version: 1\nArchitecture: arm64\nMaintainer: t <t@example.org>\nDescription: " + name + "\n"
	if err := os.WriteFile(filepath.Join(dir, "DEBIAN", "control"), []byte(control), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", dir, out).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb: %v\n%s", err, b)
	}
}

// TestWiFiUnblock runs the baked unblock script on a saved-rfkill directory
// as Raspberry Pi OS images leave it: every saved wlan block is cleared,
// whatever the device is called, and nothing else is touched.
func TestWiFiUnblock(t *testing.T) {
	dir := t.TempDir()
	saved := map[string]string{
		"platform-fe300000.mmcnr:wlan":       "1\n", // Pi 4
		"platform-3f300000.mmcnr:wlan":       "1\n", // Pi 3, Zero 2 W
		"platform-1001100000.mmc:wlan":       "1\n", // a name no overlay knows
		"wlan":                               "1\n", // a device without ID_PATH (mac80211_hwsim)
		"platform-fe215040.serial:bluetooth": "1\n",
		"platform-soc:bluetooth":             "0\n",
	}
	for name, v := range saved {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(v), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p := render(t, defaultCluster(t), "balthasar")
	script := strings.ReplaceAll(string(find(t, p, plan.Root, "/usr/local/sbin/magibake-wifi-unblock").Content),
		"/var/lib/systemd/rfkill/", dir+"/")
	out, err := exec.Command("sh", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("magibake-wifi-unblock: %v\n%s", err, out)
	}
	for name, before := range saved {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		want := before
		if strings.HasSuffix(name, "wlan") {
			want = "0\n"
		}
		if string(b) != want {
			t.Errorf("%s: %q after the script, want %q", name, b, want)
		}
	}
	if n := strings.Count(string(out), "cleared"); n != 4 {
		t.Errorf("script said %q, want 4 blocks cleared", out)
	}
	// Without a Wi-Fi profile nothing of Wi-Fi is baked: the card keeps the
	// base's defaults (Wi-Fi off, as Raspberry Pi OS ships without a country).
	c := defaultCluster(t)
	c.WiFi = nil
	for _, op := range render(t, c, "caspar").Ops {
		if strings.Contains(op.Path, "wifi") || strings.Contains(op.Path, "NetworkManager.state") || len(op.CmdlineSet) > 0 {
			t.Errorf("no wifi in the profile, but the plan has %s %v", op.Path, op.CmdlineSet)
		}
	}
}

// TestWiFiRejoin runs the baked rejoin script against a stand-in nmcli that
// answers as NetworkManager does in each state: the home Wi-Fi profile is
// activated only when the device sits disconnected with autoconnect on,
// never while it connects or is connected, nor when the owner switched
// Wi-Fi off (radio off: "unavailable"), disconnected the device, or turned
// the profile's autoconnect off.
func TestWiFiRejoin(t *testing.T) {
	p := render(t, defaultCluster(t), "melchior")
	script := find(t, p, plan.Root, "/usr/local/sbin/magibake-wifi-rejoin").Content
	uuid := ini(t, find(t, p, plan.Root, "/etc/NetworkManager/system-connections/wifi.nmconnection").Content)["connection.uuid"]
	for _, c := range []struct {
		name, state, devAuto, conAuto string
		up                            bool
	}{
		{"disconnected: NetworkManager gave up", "30 (disconnected)", "yes", "yes", true},
		{"connected", "100 (connected)", "yes", "yes", false},
		{"connecting", "50 (connecting (configuring))", "yes", "yes", false},
		{"waiting for secrets", "60 (connecting (need authentication))", "yes", "yes", false},
		{"Wi-Fi switched off", "20 (unavailable)", "yes", "yes", false},
		{"nmcli device disconnect", "30 (disconnected)", "no", "yes", false},
		{"profile autoconnect off", "30 (disconnected)", "yes", "no", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			log := filepath.Join(dir, "calls")
			nmcli := fmt.Sprintf(`#!/bin/sh
echo "$*" >>%s
case "$*" in
"-g GENERAL.STATE device show wlan0") echo '%s' ;;
"-g GENERAL.AUTOCONNECT device show wlan0") echo %s ;;
"-g connection.autoconnect connection show uuid %s") echo %s ;;
"--wait 90 connection up uuid %s") echo "Connection successfully activated" ;;
*) echo "unexpected nmcli $*" >&2; exit 2 ;;
esac
`, log, c.state, c.devAuto, uuid, c.conAuto, uuid)
			if err := os.WriteFile(filepath.Join(dir, "nmcli"), []byte(nmcli), 0o755); err != nil {
				t.Fatal(err)
			}
			cmd := exec.Command("sh", "-c", string(script))
			cmd.Env = append(os.Environ(), "PATH="+dir+":"+os.Getenv("PATH"))
			out, err := cmd.CombinedOutput()
			if err != nil {
				t.Fatalf("magibake-wifi-rejoin: %v\n%s", err, out)
			}
			calls, _ := os.ReadFile(log)
			up := strings.Contains(string(calls), "connection up uuid "+uuid)
			if up != c.up {
				t.Errorf("activated the profile: %v, want %v; nmcli calls:\n%s\noutput: %s", up, c.up, calls, out)
			}
			if up && !strings.Contains(string(out), "activating the home Wi-Fi profile") {
				t.Errorf("activated without saying so in the journal: %q", out)
			}
		})
	}
}

// TestKeyfiles checks the NetworkManager keyfiles hold what NetworkManager
// needs: root-only mode, the derived PSK and never the passphrase, the
// head's prefixed static address, the workers' route preference.
func TestKeyfiles(t *testing.T) {
	c := defaultCluster(t)
	psk, _ := wpaPSK(testEnv["MAGIBAKE_WIFI_SSID"], testEnv["MAGIBAKE_WIFI_PASSPHRASE"])
	for _, n := range c.Nodes {
		p := render(t, c, n.Hostname)
		wifi := find(t, p, plan.Root, "/etc/NetworkManager/system-connections/wifi.nmconnection")
		eth := find(t, p, plan.Root, "/etc/NetworkManager/system-connections/cluster.nmconnection")
		for _, op := range []plan.Op{wifi, eth} {
			if plan.OctalMode(op.Mode) != "0600" || op.UID != 0 || op.GID != 0 {
				t.Errorf("%s %s: mode %s owner %d:%d, NetworkManager wants 0600 root", n.Hostname, op.Path, plan.OctalMode(op.Mode), op.UID, op.GID)
			}
		}
		w := ini(t, wifi.Content)
		if w["wifi-security.psk"] != psk || w["wifi.ssid"] != "home-wifi" || w["connection.interface-name"] != "wlan0" || w["wifi-security.key-mgmt"] != "wpa-psk" {
			t.Errorf("%s wifi keyfile: %v", n.Hostname, w)
		}
		if bytes.Contains(wifi.Content, []byte(testEnv["MAGIBAKE_WIFI_PASSPHRASE"])) || !wifi.Secret {
			t.Errorf("%s: the wifi keyfile holds the passphrase or is not marked secret", n.Hostname)
		}
		e := ini(t, eth.Content)
		if e["connection.interface-name"] != "eth0" {
			t.Errorf("%s eth0 keyfile: %v", n.Hostname, e)
		}
		if n.Role == profile.RoleHead {
			if e["ipv4.method"] != "manual" || e["ipv4.address1"] != "10.3.50.1/24" || e["ipv4.never-default"] != "true" || e["ipv4.gateway"] != "" {
				t.Errorf("head eth0 keyfile: %v", e)
			}
		} else if e["ipv4.method"] != "auto" || e["ipv4.route-metric"] != "100" || w["ipv4.route-metric"] != "600" {
			t.Errorf("%s: eth0 %v, wifi %v: want DHCP with the cluster route preferred", n.Hostname, e, w)
		}
		state := ini(t, find(t, p, plan.Root, "/var/lib/NetworkManager/NetworkManager.state").Content)
		if state["main.WirelessEnabled"] != "true" {
			t.Errorf("NetworkManager.state: %v", state)
		}
		find(t, p, plan.Root, "/etc/systemd/system/magibake-wifi-unblock.service")
		find(t, p, plan.Root, "/etc/systemd/system/sysinit.target.wants/magibake-wifi-unblock.service")
		find(t, p, plan.Root, "/etc/systemd/system/magibake-wifi-rejoin.service")
		find(t, p, plan.Root, "/etc/systemd/system/timers.target.wants/magibake-wifi-rejoin.timer")
		if op := find(t, p, plan.Root, "/usr/local/sbin/magibake-wifi-unblock"); plan.OctalMode(op.Mode) != "0755" {
			t.Errorf("magibake-wifi-unblock mode %s", plan.OctalMode(op.Mode))
		}
		cmd := find(t, p, plan.Boot, "/cmdline.txt")
		if len(cmd.CmdlineSet) != 1 || cmd.CmdlineSet[0] != "cfg80211.ieee80211_regdom=GB" {
			t.Errorf("cmdline edit %v", cmd.CmdlineSet)
		}
	}
}

// TestKeyfilesReadByNetworkManager has NetworkManager's own keyfile parser
// (nmcli --offline, via scripts/nmcli-offline) read every baked connection
// and write it back normalised: a value it could not parse is dropped or
// changed there, so each of our keys must come back with the same value.
func TestKeyfilesReadByNetworkManager(t *testing.T) {
	nmcli := filepath.Join(fixture.RepoRoot(t), "scripts", "nmcli-offline")
	c := defaultCluster(t)
	hidden := defaultCluster(t)
	hidden.WiFi.Hidden = true
	wpa3 := defaultCluster(t)
	wpa3.WiFi.Security = profile.SecurityWPA3
	wpa3.WiFi.Passphrase = ` odd\; pass#phrase `
	cases := []struct {
		name string
		c    *profile.Cluster
		node string
	}{
		{"caspar", c, "caspar"}, {"balthasar", c, "balthasar"}, {"melchior", c, "melchior"},
		{"hidden-ssid", hidden, "balthasar"},
		{"wpa3", wpa3, "melchior"},
		{"home-static", settingsCluster(t), "balthasar"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := render(t, tc.c, tc.node)
			n := 0
			for _, op := range p.Ops {
				if op.Partition != plan.Root || !strings.HasPrefix(op.Path, "/etc/NetworkManager/system-connections/") {
					continue
				}
				n++
				ours := ini(t, op.Content)
				cmd := exec.Command(nmcli, "connection", "modify", "connection.id", ours["connection.id"])
				cmd.Stdin = bytes.NewReader(op.Content)
				var stderr bytes.Buffer
				cmd.Stderr = &stderr
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("%s: nmcli --offline rejected it: %v\n%s", op.Path, err, stderr.String())
				}
				if stderr.Len() > 0 {
					t.Errorf("%s: NetworkManager warned: %s", op.Path, stderr.String())
				}
				theirs := ini(t, out)
				for k, v := range ours {
					if _, ok := theirs[k]; !ok && nmDefaults[k] == v {
						continue // NetworkManager leaves defaults out when it writes
					}
					if theirs[k] != v {
						t.Errorf("%s: NetworkManager reads %s as %q, we wrote %q", op.Path, k, theirs[k], v)
					}
				}
			}
			if n < 2 {
				t.Errorf("%d connection keyfiles, want wifi and cluster", n)
			}
			wifi := ini(t, find(t, p, plan.Root, "/etc/NetworkManager/system-connections/wifi.nmconnection").Content)
			if tc.c.WiFi.Hidden != (wifi["wifi.hidden"] == "true") {
				t.Errorf("hidden SSID %v, keyfile wifi.hidden=%q", tc.c.WiFi.Hidden, wifi["wifi.hidden"])
			}
			// WPA3 joins by SAE with the passphrase itself (as NM reads it
			// back, escapes undone) and requires protected management frames.
			wantMgmt, wantPSK := "wpa-psk", ""
			if tc.c.WiFi.Security == profile.SecurityWPA3 {
				wantMgmt, wantPSK = "sae", tc.c.WiFi.Passphrase
				if wifi["wifi-security.pmf"] != "3" {
					t.Errorf("wpa3: pmf=%q, want 3 (required)", wifi["wifi-security.pmf"])
				}
			}
			if n, _ := tc.c.Node(tc.node); n.HomeStatic && (wifi["ipv4.method"] != "manual" || wifi["ipv4.address1"] != "192.168.0.22/24,192.168.0.1" || wifi["ipv4.dns"] != "192.168.0.1;1.1.1.1;") {
				t.Errorf("home_static: ipv4 %q %q %q", wifi["ipv4.method"], wifi["ipv4.address1"], wifi["ipv4.dns"])
			}
			if wifi["wifi-security.key-mgmt"] != wantMgmt {
				t.Errorf("key-mgmt=%q, want %q", wifi["wifi-security.key-mgmt"], wantMgmt)
			}
			if wantPSK != "" {
				// NetworkManager's own writer, given the passphrase, must
				// write the psk line we wrote.
				wp := find(t, p, plan.Root, "/etc/NetworkManager/system-connections/wifi.nmconnection").Content
				cmd := exec.Command(nmcli, "connection", "modify", "connection.id", "wifi", "802-11-wireless-security.psk", wantPSK)
				cmd.Stdin = bytes.NewReader(wp)
				out, err := cmd.Output()
				if err != nil {
					t.Fatalf("nmcli --offline modify psk: %v", err)
				}
				if got := ini(t, out)["wifi-security.psk"]; got != wifi["wifi-security.psk"] {
					t.Errorf("NetworkManager writes the passphrase %q as psk=%s, we wrote psk=%s", wantPSK, got, wifi["wifi-security.psk"])
				}
			}
		})
	}
}

// nmDefaults are keyfile values NetworkManager does not write back because
// they are its defaults.
var nmDefaults = map[string]string{"connection.autoconnect": "true"}

// ini parses a keyfile into "group.key" -> value.
func ini(t *testing.T, b []byte) map[string]string {
	t.Helper()
	m := map[string]string{}
	group := ""
	for _, line := range strings.Split(string(b), "\n") {
		// Trailing spaces are part of a value for GLib's key file parser.
		line = strings.TrimLeft(line, " \t")
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
		case strings.HasPrefix(line, "[") && strings.HasSuffix(line, "]"):
			group = line[1 : len(line)-1]
		default:
			k, v, ok := strings.Cut(line, "=")
			if !ok {
				t.Fatalf("keyfile line %q", line)
			}
			if _, dup := m[group+"."+k]; dup {
				t.Errorf("keyfile sets %s.%s twice", group, k)
			}
			m[group+"."+k] = v
		}
	}
	return m
}

func copyTree(t *testing.T, src, dst string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(dst), 0o755)
	if out, err := exec.Command("cp", "-a", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -a %s: %v %s", src, err, out)
	}
}

func copyFile(t *testing.T, src, dst string) {
	t.Helper()
	os.MkdirAll(filepath.Dir(dst), 0o755)
	if out, err := exec.Command("cp", "-L", src, dst).CombinedOutput(); err != nil {
		t.Fatalf("cp -L %s: %v %s", src, err, out)
	}
}
