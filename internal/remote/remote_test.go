package remote

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// fakeSSH puts an ssh on PATH that records its arguments and the
// known_hosts file it was told to trust, prints the script it received on
// stdout and exits with $FAKE_SSH_EXIT.
func fakeSSH(t *testing.T) (rec string) {
	t.Helper()
	rec, bin := t.TempDir(), t.TempDir()
	script := `#!/bin/sh
printf '%s\n' "$@" >` + rec + `/args
for a in "$@"; do case "$a" in UserKnownHostsFile=*) cat "${a#UserKnownHostsFile=}" >` + rec + `/known ;; esac; done
env >` + rec + `/env
cat
echo "fake ssh: $FAKE_SSH_STDERR" >&2
exit "${FAKE_SSH_EXIT:-0}"
`
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return rec
}

const (
	headKey   = "ssh-ed25519 AAAAheadkey caspar"
	workerKey = "ssh-ed25519 AAAAworkerkey melchior"
)

func TestRunPinsTheBakedKeys(t *testing.T) {
	rec := fakeSSH(t)
	t.Setenv(PasswordVar, "secret")
	head := &Node{Name: "caspar", Host: "192.168.0.20", User: "magi", HostKey: headKey}
	tests := []struct {
		name      string
		via       *Node
		wantKnown string
		wantArgs  []string
		wantProxy string
	}{
		{"direct", nil, "melchior ssh-ed25519 AAAAworkerkey\n",
			[]string{"HostKeyAlias=melchior", "StrictHostKeyChecking=yes", "GlobalKnownHostsFile=/dev/null", "KnownHostsCommand=none", "-l\nmagi\n--\n10.3.50.12\n"}, ""},
		{"through the head", head, "melchior ssh-ed25519 AAAAworkerkey\ncaspar ssh-ed25519 AAAAheadkey\n",
			[]string{"HostKeyAlias=melchior", "-l\nmagi\n--\n10.3.50.12\n"},
			"'-o' 'HostKeyAlias=caspar' '-o' 'ConnectTimeout=15' '-o' 'ControlPath=none' '-l' 'magi' '-W' %h:%p '--' '192.168.0.20'"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			s := Session{Password: "secret", Via: tc.via}
			r := s.Run(context.Background(), Node{Name: "melchior", Host: "10.3.50.12", User: "magi", HostKey: workerKey}, "echo hello")
			if r.Err != nil || !r.LoggedIn() {
				t.Fatalf("Run: %v (stderr %q)", r.Err, r.Stderr)
			}
			if want := "secret\n" + scriptMarker + "\n{\necho hello\n} </dev/null\n"; r.Stdout != want {
				t.Errorf("stdin %q, want %q", r.Stdout, want)
			}
			known, _ := os.ReadFile(filepath.Join(rec, "known"))
			if string(known) != tc.wantKnown {
				t.Errorf("trusted %q, want %q", known, tc.wantKnown)
			}
			args, _ := os.ReadFile(filepath.Join(rec, "args"))
			for _, w := range tc.wantArgs {
				if !strings.Contains(string(args), w) {
					t.Errorf("arguments lack %q:\n%s", w, args)
				}
			}
			proxy := ""
			for _, a := range strings.Split(string(args), "\n") {
				if v, ok := strings.CutPrefix(a, "ProxyCommand="); ok {
					proxy = v
				}
			}
			if tc.wantProxy == "" && proxy != "" || !strings.Contains(proxy, tc.wantProxy) {
				t.Errorf("ProxyCommand %q, want it to hold %q", proxy, tc.wantProxy)
			}
			if tc.via != nil && (!strings.Contains(proxy, "'StrictHostKeyChecking=yes'") || !strings.HasPrefix(proxy, "'ssh' ")) {
				t.Errorf("the jump is not pinned: %q", proxy)
			}
			if env, _ := os.ReadFile(filepath.Join(rec, "env")); strings.Contains(string(env), "secret") {
				t.Errorf("ssh's environment holds the sudo password")
			}
		})
	}
}

func TestWhy(t *testing.T) {
	fakeSSH(t)
	n := Node{Name: "melchior", Host: "melchior.local", User: "magi", HostKey: workerKey, KeyFile: "/p/.magibake/state/melchior/ssh_host_ed25519_key"}
	tests := []struct {
		exit, stderr string
		loggedIn     bool
		want         string
	}{
		{"255", "Host key verification failed.", false, "ssh magi@melchior.local: it presents a host key other than the baked one (/p/.magibake/state/melchior/ssh_host_ed25519_key.pub: is this the state directory its card was baked with?)"},
		{"255", "connect to host melchior.local port 22: No route to host", false, "cannot log in with ssh as magi@melchior.local: fake ssh: connect to host melchior.local port 22: No route to host; is melchior up and on the home network? Give its address with --address melchior=IP"},
		{"1", "sudo: a password is required", true, "ssh magi@melchior.local: fake ssh: sudo: a password is required (set MAGIBAKE_SUDO_PASSWORD, or run on a terminal)"},
	}
	for _, tc := range tests {
		t.Setenv("FAKE_SSH_EXIT", tc.exit)
		t.Setenv("FAKE_SSH_STDERR", tc.stderr)
		r := Session{}.Run(context.Background(), n, "true")
		if r.LoggedIn() != tc.loggedIn || !strings.Contains(r.Why(n), tc.want) {
			t.Errorf("exit %s, %q: logged in %v, why %q; want %v and %q", tc.exit, tc.stderr, r.LoggedIn(), r.Why(n), tc.loggedIn, tc.want)
		}
	}
	// No key to pin: nothing runs.
	r := Session{}.Run(context.Background(), Node{Name: "x", Host: "x"}, "true")
	if r.Err == nil || !strings.Contains(r.Err.Error(), "no baked host key of x") {
		t.Errorf("Run without a key: %v", r.Err)
	}
}
