package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/hostkey"
	"github.com/magibake/magibake/internal/profile"
	"github.com/magibake/magibake/internal/testkit"
)

func TestApplyRefuses(t *testing.T) {
	setEnv(t)
	rec := fakeSSH(t)
	savedKeys(t)
	t.Setenv("MAGIBAKE_SUDO_PASSWORD", "pw")
	tests := []struct {
		args   []string
		code   int
		output string
	}{
		{[]string{"apply"}, 2, "apply: name the nodes to change, or give --all"},
		{[]string{"apply", "caspar", "--all"}, 2, "apply: name the nodes to change, or give --all"},
		{[]string{"apply", "nosuch"}, 3, `unknown node "nosuch"`},
		{[]string{"apply", "caspar", "--via", "nosuch"}, 2, `--via: unknown node "nosuch"`},
		// This machine answers as caspar's address: its probe runs here (it
		// only reads), and this machine is not caspar: refused before any
		// change is sent.
		{[]string{"apply", "caspar", "--yes", "--address", "caspar=10.9.9.9"}, 4, "caspar: its hostname is "},
	}
	for _, tc := range tests {
		code, stdout, stderr := execute(t, tc.args...)
		if code != tc.code || !strings.Contains(stdout+stderr, tc.output) {
			t.Errorf("%q: exit %d, output %q; want %d and %q", tc.args, code, stdout+stderr, tc.code, tc.output)
		}
	}
	in, _ := os.ReadFile(filepath.Join(rec, "stdin"))
	if !strings.Contains(string(in), "s files") || strings.Contains(string(in), "stage_file") {
		t.Errorf("the last script sent was not the read-only probe:\n%.300s", in)
	}
}

// fakeNodeSSH puts an ssh on PATH that runs what apply sends on a node
// made of a temporary tree: its /etc, /var/lib, /boot and /usr/local are
// bound over this machine's in a mount namespace of the command's own;
// /usr/local/bin holds a hostname that says NAME, a sudo that reads the
// password line, and stand-ins for systemctl, nmcli, dhcpd,
// iptables-restore and sysctl that log each call to root/calls and fail
// the call $FAKE_FAIL matches.
func fakeNodeSSH(t *testing.T, name string) (root string) {
	t.Helper()
	testkit.RequireTools(t, "unshare", "mount", "visudo")
	root = t.TempDir()
	bin := t.TempDir()
	for _, d := range []string{"etc", "var/lib", "boot/firmware", "usr/local/bin"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	write := func(p, s string) {
		if err := os.WriteFile(p, []byte(s), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	stand := "#!/bin/sh\necho \"$(basename \"$0\") $*\" >>" + root + "/calls\n" +
		"case \"$(basename \"$0\") $*\" in ${FAKE_FAIL:-@none@}) echo \"$(basename \"$0\"): failed as the test asked\" >&2; exit 1 ;; esac\n"
	for _, c := range []string{"systemctl", "nmcli", "dhcpd", "iptables-restore", "sysctl"} {
		write(filepath.Join(root, "usr/local/bin", c), stand)
	}
	// A node has its users (visudo looks the caller up).
	for _, f := range []string{"passwd", "group"} {
		b, err := os.ReadFile("/etc/" + f)
		if err != nil {
			t.Fatal(err)
		}
		write(filepath.Join(root, "etc", f), string(b))
	}
	write(filepath.Join(root, "usr/local/bin/hostname"), "#!/bin/sh\necho "+name+"\n")
	write(filepath.Join(root, "usr/local/bin/sudo"), "#!/bin/sh\nshift 3\nIFS= read -r pw\nexec \"$@\"\n")
	r := root
	write(filepath.Join(bin, "ssh"), `#!/bin/sh
for a in "$@"; do remote="$a"; done
exec unshare --mount --net sh -c 'mount --bind `+r+`/etc /etc && mount --bind `+r+`/var/lib /var/lib && mount --bind `+r+`/boot /boot && mount --bind `+r+`/usr/local /usr/local && PATH=/usr/local/bin:$PATH && exec sh -c "$0"' "$remote"
`)
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return root
}

// TestApplyOnANode: apply brings a node whose card holds only its manifest
// to its whole plan, then asks before a change when there is no --yes,
// and rolls a node back when what takes a change up fails.
func TestApplyOnANode(t *testing.T) {
	setEnv(t)
	savedKeys(t)
	t.Setenv("MAGIBAKE_SUDO_PASSWORD", "pw")
	root := fakeNodeSSH(t, "melchior")
	m := `{"tool": "magibake", "version": "old", "node": "melchior", "cluster": "magi", "files": []}` + "\n"
	if err := os.MkdirAll(filepath.Join(root, "etc/magibake"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/magibake/manifest.json"), []byte(m), 0o644); err != nil {
		t.Fatal(err)
	}
	read := func(rel string) string { b, _ := os.ReadFile(filepath.Join(root, rel)); return string(b) }

	code, stdout, stderr := execute(t, "apply", "melchior", "--yes", "--address", "melchior=10.9.9.9")
	if code != 0 || !strings.Contains(stdout, "melchior: applied") {
		t.Fatalf("apply --yes: exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"/etc/hosts: a missing, want a file", "now: read where it is used", "takes effect when reflashed", "melchior: wrote /etc/hosts"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("apply's output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "demo-passphrase") || strings.Contains(read("etc/magibake/manifest.json"), "demo-passphrase") {
		t.Errorf("the Wi-Fi passphrase was printed or put in the manifest")
	}
	if !strings.Contains(read("etc/NetworkManager/system-connections/wifi.nmconnection"), "psk=") || !strings.Contains(read("calls"), "nmcli connection reload") {
		t.Errorf("the Wi-Fi profile was not written and reloaded; calls:\n%s", read("calls"))
	}
	if strings.Contains(read("calls"), "sshd") || strings.Contains(read("calls"), " ssh.") {
		t.Errorf("apply restarted sshd, the way it came in:\n%s", read("calls"))
	}
	hosts := read("etc/hosts")

	// A change by hand; without --yes and without a terminal: nothing changes.
	if err := os.WriteFile(filepath.Join(root, "etc/hosts"), []byte("by hand\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = execute(t, "apply", "melchior", "--address", "melchior=10.9.9.9")
	if code != 2 || !strings.Contains(stderr, "not a terminal: give --yes") || read("etc/hosts") != "by hand\n" {
		t.Errorf("apply without --yes: exit %d, /etc/hosts %q\n%s\n%s", code, read("etc/hosts"), stdout, stderr)
	}
	// The Wi-Fi profile changed too, and NetworkManager refuses the reload:
	// every file back, exit 4.
	if err := os.WriteFile(filepath.Join(root, "etc/NetworkManager/system-connections/wifi.nmconnection"), []byte("old\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("FAKE_FAIL", "nmcli connection reload")
	code, stdout, _ = execute(t, "apply", "melchior", "--yes", "--address", "melchior=10.9.9.9")
	if code != 4 || !strings.Contains(stdout, "melchior: FAILED: a step failed; its previous files are back") {
		t.Errorf("apply with a failing reload: exit %d\n%s", code, stdout)
	}
	if read("etc/hosts") != "by hand\n" || read("etc/NetworkManager/system-connections/wifi.nmconnection") != "old\n" {
		t.Errorf("not rolled back: /etc/hosts %q, keyfile %q", read("etc/hosts"), read("etc/NetworkManager/system-connections/wifi.nmconnection"))
	}
	t.Setenv("FAKE_FAIL", "")
	if code, stdout, _ = execute(t, "apply", "melchior", "--yes", "--address", "melchior=10.9.9.9"); code != 0 || read("etc/hosts") != hosts {
		t.Errorf("apply again: exit %d, /etc/hosts %q\n%s", code, read("etc/hosts"), stdout)
	}
}

// TestApplyRefusesAMove: a worker added to the profiles (artaban) sorts
// before a running one (balthasar), whose fixed address has come from
// hostname order: apply refuses before anything is written, naming
// balthasar's file and the address to pin there; pinned, apply goes on.
func TestApplyRefusesAMove(t *testing.T) {
	setEnv(t)
	t.Setenv("MAGIBAKE_SUDO_PASSWORD", "pw")
	dir := workersProfile(t, map[string]string{
		"artaban.yaml":   "hostname: artaban\nrole: worker\nmac: dc:a6:32:00:00:0a\n",
		"balthasar.yaml": "hostname: balthasar\nrole: worker\nmac: dc:a6:32:00:00:0b\n",
	})
	state := filepath.Join(t.TempDir(), "state")
	t.Setenv("MAGIBAKE_STATE", state)
	c, err := profile.LoadDir(dir, profile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, gen, err := hostkey.Load(c, state); err != nil || gen.Save() != nil {
		t.Fatalf("host keys: %v", err)
	}
	root := fakeNodeSSH(t, "balthasar")
	files := map[string]string{
		"etc/magibake/manifest.json": `{"tool": "magibake", "version": "old", "node": "balthasar", "cluster": "magi", "files": []}` + "\n",
		"etc/hosts":                  "127.0.1.1\tbalthasar\n10.3.50.1\tcaspar.cluster caspar\n10.3.50.2\tbalthasar.cluster balthasar\n",
	}
	for name, text := range files {
		if err := os.MkdirAll(filepath.Dir(filepath.Join(root, name)), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	code, stdout, stderr := execute(t, "apply", "balthasar", "--yes", "--profiles", dir, "--address", "balthasar=10.9.9.9")
	want := filepath.Join(dir, "balthasar.yaml") + `: balthasar's cluster address would move from 10.3.50.2, as balthasar's /etc/hosts has it, to 10.3.50.3 (artaban, numbered in hostname order too, now takes it)`
	if code != 3 || !strings.Contains(stderr, want) || !strings.Contains(stderr, `pin it with "address: 10.3.50.2"`) {
		t.Fatalf("apply with a moved address: exit %d, want 3 and %q\nstdout:\n%s\nstderr:\n%s", code, want, stdout, stderr)
	}
	if b, _ := os.ReadFile(filepath.Join(root, "etc/hosts")); string(b) != files["etc/hosts"] {
		t.Errorf("/etc/hosts changed by a refused apply:\n%s", b)
	}
	if _, err := os.Stat(filepath.Join(root, "var/lib/magibake/apply")); !os.IsNotExist(err) {
		t.Errorf("a refused apply left its state directory: %v", err)
	}

	// Pinned elsewhere on purpose: the move is said and applied, and
	// artaban takes the first free address. Named twice, balthasar gets
	// one script.
	f, err := os.OpenFile(filepath.Join(dir, "balthasar.yaml"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString("address: 10.3.50.9\n"); err != nil || f.Close() != nil {
		t.Fatal(err)
	}
	code, stdout, stderr = execute(t, "apply", "balthasar", "balthasar", "--yes", "--profiles", dir, "--address", "balthasar=10.9.9.9")
	hosts, _ := os.ReadFile(filepath.Join(root, "etc/hosts"))
	note := "note: balthasar's cluster address moves from 10.3.50.2, as balthasar's /etc/hosts has it, to 10.3.50.9, as " + filepath.Join(dir, "balthasar.yaml") + "'s address: says"
	if code != 0 || !strings.Contains(stdout, note) || strings.Count(stdout, "balthasar: applied") != 1 ||
		!strings.Contains(string(hosts), "10.3.50.9\tbalthasar.cluster balthasar") || !strings.Contains(string(hosts), "10.3.50.2\tartaban.cluster artaban") {
		t.Errorf("apply with balthasar pinned elsewhere: exit %d, want 0, %q and one apply; /etc/hosts:\n%s\nstdout:\n%s\nstderr:\n%s", code, note, hosts, stdout, stderr)
	}
}
