package apply

import (
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/check"
	"github.com/magibake/magibake/internal/manifest"
	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/testkit"
)

// fakeNode is a node's file system in a temporary directory: its /etc,
// /var/lib, /boot and /usr/local are bound over the real ones in a mount
// namespace of the script's own, and /usr/local/bin (on the scripts' PATH
// before the system's) holds stand-ins for the commands that take changes
// up, which log each call.
type fakeNode struct{ root, log string }

func newFakeNode(t *testing.T, name string) *fakeNode {
	t.Helper()
	testkit.RequireTools(t, "unshare", "mount", "tac", "base64")
	if os.Getuid() != 0 {
		t.Fatal("needs root for a mount namespace (run the tests as root, as CI does)")
	}
	n := &fakeNode{root: t.TempDir()}
	n.log = filepath.Join(n.root, "calls")
	for _, d := range []string{"etc", "var/lib", "boot/firmware", "usr/local/bin", "usr/local/sbin"} {
		if err := os.MkdirAll(filepath.Join(n.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// Each stand-in logs "NAME ARGS"; $FAKE_FAIL names a call that fails
	// (matched against that line), and dhcpd -t refuses a file holding
	// "invalid".
	stand := `#!/bin/sh
echo "$(basename "$0") $*" >>` + n.log + `
case "$(basename "$0") $*" in ${FAKE_FAIL:-@none@}) echo "$(basename "$0"): failed as the test asked" >&2; exit 1 ;; esac
`
	for _, c := range []string{"systemctl", "iptables-restore", "nmcli", "sysctl"} {
		n.write(t, "usr/local/bin/"+c, stand, 0o755)
	}
	n.write(t, "usr/local/bin/dhcpd", stand+`eval "f=\${$#}"; ! grep -q invalid "$f" || { echo "dhcpd: /etc/dhcp/dhcpd.conf line 1: invalid"; exit 1; }
`, 0o755)
	n.write(t, "usr/local/bin/hostname", "#!/bin/sh\necho "+name+"\n", 0o755)
	return n
}

func (n *fakeNode) write(t *testing.T, rel, content string, mode os.FileMode) {
	t.Helper()
	p := filepath.Join(n.root, rel)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(content), mode); err != nil {
		t.Fatal(err)
	}
}

func (n *fakeNode) read(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(n.root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// run runs script on the node as remote.Session would (sh -s, as root)
// and returns its output and exit code.
func (n *fakeNode) run(t *testing.T, script string, env ...string) (string, int) {
	t.Helper()
	r := n.root
	cmd := exec.Command("unshare", "--mount", "sh", "-c",
		"mount --bind "+r+"/etc /etc && mount --bind "+r+"/var/lib /var/lib && mount --bind "+r+"/boot /boot && mount --bind "+r+"/usr/local /usr/local && exec sh -s")
	cmd.Stdin = strings.NewReader("{\n" + script + "\n} </dev/null\n")
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	switch {
	case err == nil:
		return string(out), 0
	case errors.As(err, &exit):
		return string(out), exit.ExitCode()
	}
	t.Fatalf("run: %v\n%s", err, out)
	return "", 0
}

func (n *fakeNode) calls(t *testing.T) string {
	b, _ := os.ReadFile(n.log)
	return string(b)
}

// testPlan is a head's plan in miniature: one file of each kind of change.
func testPlan(dhcpd string) *plan.Plan {
	w := func(p, content string, mode os.FileMode) plan.Op {
		return plan.Op{Partition: plan.Root, Kind: plan.WriteFile, Path: p, Mode: mode, Content: []byte(content)}
	}
	return &plan.Plan{Node: "caspar", Ops: []plan.Op{
		w("/etc/hosts", "127.0.0.1 localhost\n10.3.50.13 caspar-4\n", 0o644),
		w("/etc/dhcp/dhcpd.conf", dhcpd, 0o644),
		w("/etc/magibake/iptables.rules", "*nat\n-A POSTROUTING -o wlan0 -j MASQUERADE\nCOMMIT\n", 0o644),
		{Partition: plan.Root, Kind: plan.WriteFile, Path: "/etc/NetworkManager/system-connections/wifi.nmconnection", Mode: 0o600,
			Content: []byte("[wifi-security]\npsk=the new passphrase\n"), Secret: true},
		w("/etc/systemd/system/magibake-cluster-route.service", "[Service]\nExecStart=/bin/true\n", 0o644),
		{Partition: plan.Root, Kind: plan.Symlink, Path: "/etc/systemd/system/multi-user.target.wants/magibake-cluster-route.service",
			Target: "/etc/systemd/system/magibake-cluster-route.service"},
		{Partition: plan.Boot, Kind: plan.EditConfig, Path: "/config.txt", ConfigLines: []plan.ConfigLine{{Section: "pi4", Line: "arm_boost=1"}}},
		w("/usr/local/sbin/magibake-firstboot", "#!/bin/sh\necho new\n", 0o755),
		{Partition: plan.Boot, Kind: plan.WriteFile, Path: "/userconf.txt", Content: []byte("magi:$6$x\n")},
	}}
}

// baked puts the node in the state a card baked from p leaves after its
// first boot (userconf.txt consumed), with manifest m.
func (n *fakeNode) baked(t *testing.T, p *plan.Plan) {
	t.Helper()
	for _, op := range p.Final() {
		switch {
		case op.Partition == plan.Boot && op.Path == "/userconf.txt":
		case op.Kind == plan.EditConfig:
			n.write(t, "boot/firmware/config.txt", "[all]\ndtparam=audio=on\n", 0o755)
		case op.Kind == plan.WriteFile:
			n.write(t, strings.TrimPrefix(op.Path, "/"), string(op.Content), op.Mode)
		case op.Kind == plan.Symlink:
			p := filepath.Join(n.root, op.Path)
			if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.Symlink(op.Target, p); err != nil {
				t.Fatal(err)
			}
		}
	}
	m := manifest.New(p, manifest.Info{Cluster: "magi", Version: "old"})
	op, err := m.Op()
	if err != nil {
		t.Fatal(err)
	}
	n.write(t, "etc/magibake/manifest.json", string(op.Content), 0o644)
}

// changes probes the node and returns what differs from p.
func (n *fakeNode) changes(t *testing.T, p *plan.Plan) ([]Change, *manifest.Manifest) {
	t.Helper()
	out, code := n.run(t, Probe(p))
	f, err := check.Parse(out)
	if code != 0 || err != nil {
		t.Fatalf("probe: exit %d, %v:\n%s", code, err, out)
	}
	cs, err := Changes(p, "magi", f)
	if err != nil {
		t.Fatalf("Changes: %v", err)
	}
	m, err := manifest.Parse([]byte(f["manifest"]))
	if err != nil {
		t.Fatal(err)
	}
	return cs, m
}

func script(t *testing.T, p *plan.Plan, cs []Change, old *manifest.Manifest) string {
	t.Helper()
	m, err := NewManifest(old, p, cs, manifest.Info{Cluster: "magi", Version: "new"})
	if err != nil {
		t.Fatal(err)
	}
	return Script(cs, manifest.Path, m, "20261207T050000Z")
}

func TestChangesAndTheirEffects(t *testing.T) {
	n := newFakeNode(t, "caspar")
	n.baked(t, testPlan("subnet 10.3.50.0 netmask 255.255.255.0 {}\n"))
	n.write(t, "etc/hosts", "127.0.0.1 localhost\n", 0o644)
	p := testPlan("subnet 10.3.50.0 netmask 255.255.255.0 { host caspar-4 {} }\n")
	p.Ops[3].Content = []byte("[wifi-security]\npsk=another one\n")
	p.Ops[7].Content = []byte("#!/bin/sh\necho newer\n")
	cs, _ := n.changes(t, p)
	got := map[string]string{}
	for _, c := range cs {
		got[c.Path] = c.Effect.String() + ": " + c.Problem
	}
	want := map[string]string{
		"/etc/hosts":           "now: content differs from the plan (sha256 ",
		"/etc/dhcp/dhcpd.conf": "now: content differs from the plan (sha256 ",
		"/etc/NetworkManager/system-connections/wifi.nmconnection": "now: content differs from the plan (a secret: not shown)",
		"/boot/firmware/config.txt":                                "after a reboot: lacks [pi4] arm_boost=1",
		"/usr/local/sbin/magibake-firstboot":                       "takes effect when reflashed: ",
	}
	for path, w := range want {
		if !strings.HasPrefix(got[path], w) {
			t.Errorf("%s: %q, want %q...", path, got[path], w)
		}
	}
	if len(got) != len(want) {
		t.Errorf("changes %v, want only %v", got, want)
	}
	// The same node with another name, or another cluster's card: refused.
	out, _ := n.run(t, Probe(p))
	f, _ := check.Parse(out)
	other := *p
	other.Node = "melchior"
	if _, err := Changes(&other, "magi", f); err == nil || !strings.Contains(err.Error(), `its hostname is "caspar", not melchior: refused`) {
		t.Errorf("another node: %v", err)
	}
	if _, err := Changes(p, "other", f); err == nil || !strings.Contains(err.Error(), `its manifest names cluster "magi", not other: refused`) {
		t.Errorf("another cluster: %v", err)
	}
}

// TestClassify: when a change of each kind of path reaches the node, and
// what follows its write.
func TestClassify(t *testing.T) {
	tests := []struct {
		part   plan.Partition
		kind   plan.Kind
		path   string
		effect Effect
		then   string
	}{
		{plan.Root, plan.WriteFile, "/etc/hosts", Now, ""},
		{plan.Root, plan.WriteFile, "/etc/dhcp/dhcpd.conf", Now, "systemctl restart isc-dhcp-server"},
		{plan.Root, plan.WriteFile, "/etc/NetworkManager/system-connections/wifi.nmconnection", Now, "nmcli connection reload"},
		{plan.Root, plan.WriteFile, "/usr/local/sbin/magibake-wifi-rejoin", Now, ""},
		{plan.Root, plan.WriteFile, "/usr/local/sbin/magibake-wifi-unblock", Reboot, ""},
		{plan.Root, plan.WriteFile, "/usr/local/sbin/magibake-firstboot", Reflash, ""},
		{plan.Root, plan.WriteFile, "/etc/systemd/system/magibake-wifi-rejoin.timer", Now, "systemctl daemon-reload|systemctl try-restart 'magibake-wifi-rejoin.timer'"},
		{plan.Root, plan.WriteFile, "/etc/systemd/system/cloud-init-main.service.d/x.conf", Reboot, "systemctl daemon-reload"},
		{plan.Root, plan.WriteFile, "/etc/ssh/sshd_config.d/magibake.conf", Reboot, ""},
		{plan.Root, plan.WriteFile, "/etc/locale.conf", Reflash, ""},
		{plan.Boot, plan.WriteFile, "/config.txt", Reboot, ""},
		{plan.Boot, plan.WriteFile, "/userconf.txt", Reflash, ""},
	}
	for _, tc := range tests {
		c := Change{Op: plan.Op{Partition: tc.part, Kind: tc.kind, Path: tc.path}, Path: tc.path}
		classify(&c)
		if c.Effect != tc.effect || strings.Join(c.then, "|") != tc.then {
			t.Errorf("%s: %s, then %q (%s); want %s, then %q", tc.path, c.Effect, strings.Join(c.then, "|"), c.Why, tc.effect, tc.then)
		}
	}
}

func TestScriptAppliesAndKeepsTheWayBack(t *testing.T) {
	n := newFakeNode(t, "caspar")
	n.baked(t, testPlan("old\n"))
	p := testPlan("new\n")
	p.Ops[0].Content = []byte("127.0.0.1 localhost\n10.3.50.14 caspar-5\n")
	p.Ops[3].Content = []byte("[wifi-security]\npsk=another one\n")
	p.Ops[7].Content = []byte("#!/bin/sh\necho newer\n")
	cs, old := n.changes(t, p)
	out, code := n.run(t, script(t, p, cs, old))
	if code != 0 || !strings.HasSuffix(strings.TrimSpace(out), "@@magibake-apply finished") {
		t.Fatalf("apply: exit %d:\n%s", code, out)
	}
	for rel, want := range map[string]string{
		"etc/dhcp/dhcpd.conf": "new\n",
		"etc/hosts":           "127.0.0.1 localhost\n10.3.50.14 caspar-5\n",
		"etc/NetworkManager/system-connections/wifi.nmconnection": "[wifi-security]\npsk=another one\n",
		"boot/firmware/config.txt":                                plan.ApplyConfig("[all]\ndtparam=audio=on\n", p.Ops[6].ConfigLines),
		// Kept, with the undo script.
		"var/lib/magibake/apply/20261207T050000Z/old/etc/dhcp/dhcpd.conf": "old\n",
	} {
		if got := n.read(t, rel); got != want {
			t.Errorf("%s holds %q, want %q", rel, got, want)
		}
	}
	if st, err := os.Stat(filepath.Join(n.root, "etc/NetworkManager/system-connections/wifi.nmconnection")); err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("the keyfile's mode: %v %v, want 0600", st.Mode(), err)
	}
	if got := n.read(t, "usr/local/sbin/magibake-firstboot"); got != "#!/bin/sh\necho new\n" {
		t.Errorf("a first-boot-only file was written: %q", got)
	}
	// Taken up in order, each once: reload before restart, dhcpd checked
	// on the staged file before anything was replaced.
	calls := n.calls(t)
	wantCalls := "dhcpd -t -4 -cf /etc/dhcp/.dhcpd.conf.magibake-new\nsystemctl restart isc-dhcp-server\nnmcli connection reload\n"
	if calls != wantCalls {
		t.Errorf("calls:\n%s\nwant:\n%s", calls, wantCalls)
	}
	// The manifest now records the new versions, and no secret.
	m, err := manifest.Parse([]byte(n.read(t, "etc/magibake/manifest.json")))
	if err != nil || m.Version != "new" || m.Cluster != "magi" {
		t.Fatalf("manifest: %+v, %v", m, err)
	}
	if strings.Contains(n.read(t, "etc/magibake/manifest.json"), "another one") {
		t.Errorf("the manifest holds the secret")
	}
	// Nothing differs any more but what only a reflash brings.
	cs, _ = n.changes(t, p)
	if len(cs) != 1 || cs[0].Effect != Reflash {
		t.Errorf("after apply: %+v, want only the first-boot file", cs)
	}
	// The undo script puts the old versions back.
	if out, code := n.run(t, "sh /var/lib/magibake/apply/20261207T050000Z/undo.sh"); code != 0 {
		t.Fatalf("undo: exit %d\n%s", code, out)
	}
	if got := n.read(t, "etc/dhcp/dhcpd.conf"); got != "old\n" {
		t.Errorf("after undo dhcpd.conf holds %q", got)
	}
}

func TestScriptRefusesAndRollsBack(t *testing.T) {
	tests := []struct {
		name, dhcpd, fail string
		code              int
		wantLine          string
		wantCalls         string
	}{
		{"dhcpd -t refuses", "invalid\n", "", ExitRefused, "@@magibake-apply refused /etc/dhcp/dhcpd.conf: dhcpd: /etc/dhcp/dhcpd.conf line 1: invalid",
			"dhcpd -t -4 -cf /etc/dhcp/.dhcpd.conf.magibake-new\n"},
		{"the server does not come back", "new\n", "systemctl restart isc-dhcp-server", ExitRolledBack, "@@magibake-apply rolled back",
			// Restarted again, with the old file, after the rollback.
			"dhcpd -t -4 -cf /etc/dhcp/.dhcpd.conf.magibake-new\nsystemctl restart isc-dhcp-server\nsystemctl restart isc-dhcp-server\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			n := newFakeNode(t, "caspar")
			n.baked(t, testPlan("old\n"))
			before := map[string]string{}
			for _, rel := range []string{"etc/hosts", "etc/dhcp/dhcpd.conf", "etc/magibake/manifest.json", "boot/firmware/config.txt"} {
				before[rel] = n.read(t, rel)
			}
			p := testPlan(tc.dhcpd)
			p.Ops[0].Content = []byte("127.0.0.1 localhost\n10.3.50.14 caspar-5\n")
			// A file in directories the node does not have: they go too.
			p.Ops = append(p.Ops, plan.Op{Partition: plan.Root, Kind: plan.WriteFile, Path: "/etc/magibake/new.d/sub/x.conf", Mode: 0o600, Content: []byte("x\n")})
			cs, old := n.changes(t, p)
			out, code := n.run(t, script(t, p, cs, old), "FAKE_FAIL="+tc.fail)
			if _, err := os.Lstat(filepath.Join(n.root, "etc/magibake/new.d")); err == nil {
				t.Errorf("the directory made for a new file is still there")
			}
			if code != tc.code || !strings.Contains(out, tc.wantLine) {
				t.Errorf("exit %d, want %d and %q:\n%s", code, tc.code, tc.wantLine, out)
			}
			for rel, want := range before {
				if got := n.read(t, rel); got != want {
					t.Errorf("%s holds %q, want it back as %q", rel, got, want)
				}
			}
			if calls := n.calls(t); !strings.HasPrefix(calls, tc.wantCalls) {
				t.Errorf("calls:\n%s\nwant them to start:\n%s", calls, tc.wantCalls)
			}
			staged, _ := filepath.Glob(filepath.Join(n.root, "etc", "*", "*.magibake-new"))
			if len(staged) > 0 {
				t.Errorf("staged files left: %v", staged)
			}
		})
	}
}

// TestScriptShellcheck: the script apply sends, and the undo script it
// leaves, pass shellcheck as POSIX sh.
func TestScriptShellcheck(t *testing.T) {
	testkit.RequireTools(t, "shellcheck")
	p := testPlan("new\n")
	var cs []Change
	for _, op := range p.Final() {
		c := Change{Op: op, Path: check.LivePath(op), Content: op.Content}
		classify(&c)
		cs = append(cs, c)
	}
	s := Script(cs, manifest.Path, []byte("{}\n"), "20261207T050000Z")
	undo := s[strings.Index(s, "<<'@@magibake-undo'\n")+len("<<'@@magibake-undo'\n") : strings.Index(s, "@@magibake-undo\n\t[ -s")]
	for name, text := range map[string]string{"apply": s, "undo": undo} {
		// SC2015: "A && B || C" runs C when either fails, as meant; SC2016:
		// the checks' "$1" is expanded by the sh that runs them.
		cmd := exec.Command("shellcheck", "-s", "sh", "-e", "SC2015,SC2016", "-")
		cmd.Stdin = strings.NewReader(text)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("shellcheck on the %s script: %v\n%s", name, err, out)
		}
	}
}

// TestDhcpdCheckSaysWhy: the staged dhcpd.conf's check, run by the real
// dhcpd, accepts a good file and refuses one with a syntax error saying
// which line and why (dhcpd -q says nothing at all).
func TestDhcpdCheckSaysWhy(t *testing.T) {
	testkit.RequireTools(t, "dhcpd", "sh", "grep")
	c := Change{Op: plan.Op{Partition: plan.Root, Kind: plan.WriteFile, Path: "/etc/dhcp/dhcpd.conf"}, Path: "/etc/dhcp/dhcpd.conf"}
	classify(&c)
	f := filepath.Join(t.TempDir(), ".dhcpd.conf.magibake-new")
	for _, tc := range []struct{ name, text, want string }{
		{"good", "subnet 10.3.50.0 netmask 255.255.255.0 {\n  option routers 10.3.50.1;\n}\n", ""},
		{"a semicolon left out", "subnet 10.3.50.0 netmask 255.255.255.0 {\n  option routers 10.3.50.1\n}\n", "line 3: semicolon expected."},
	} {
		if err := os.WriteFile(f, []byte(tc.text), 0o644); err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("sh", "-c", c.check, "check", f).CombinedOutput()
		switch {
		case tc.want == "" && err != nil:
			t.Errorf("%s: refused: %v\n%s", tc.name, err, out)
		case tc.want != "" && (err == nil || !strings.Contains(string(out), tc.want) || strings.Contains(string(out), "Copyright")):
			t.Errorf("%s: exit %v, output %q; want a refusal saying %q and no banner", tc.name, err, out, tc.want)
		}
	}
}
