package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/check"
	"github.com/magibake/magibake/internal/hostkey"
	"github.com/magibake/magibake/internal/profile"
	"github.com/magibake/magibake/internal/testkit"
)

// fakeSSH puts an ssh on PATH that records how check called it (its
// arguments, the known_hosts file it was told to trust, its stdin) and runs
// the script it was sent here, in a network namespace of its own: check's
// wiring, seen from the ssh side, without a node.
func fakeSSH(t *testing.T) (rec string) {
	t.Helper()
	testkit.RequireTools(t, "unshare")
	rec = t.TempDir()
	bin := t.TempDir()
	script := `#!/bin/sh
rec=` + rec + `
printf '%s\n' "$@" >"$rec/args"
for a in "$@"; do case "$a" in UserKnownHostsFile=*) cat "${a#UserKnownHostsFile=}" >"$rec/known" ;; esac; done
env >"$rec/env"
for a in "$@"; do remote="$a"; done
printf '%s' "$remote" >"$rec/remote"
cat >"$rec/stdin"
# As the node runs it, through a pipe as sshd gives it, with the fake sudo
# below.
cat "$rec/stdin" | unshare --net sh -c "$remote"
`
	// sudo -S reads the password line from stdin when it needs one (not
	// when $FAKE_SUDO_NOPASS is set), then runs the command as root.
	sudo := `#!/bin/sh
[ "$1 $2 $3" = "-S -p " ] || { echo "fake sudo: unexpected arguments: $*" >&2; exit 1; }
shift 3
[ -n "$FAKE_SUDO_NOPASS" ] || { IFS= read -r pw; printf '%s\n' "$pw" >` + rec + `/sudo-password; }
exec "$@"
`
	if err := os.WriteFile(filepath.Join(bin, "sudo"), []byte(sudo), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	return rec
}

// savedKeys saves a host key for every node of the embedded profiles into a
// fresh state directory, as a first build would.
func savedKeys(t *testing.T) hostkey.Keys {
	t.Helper()
	state := filepath.Join(t.TempDir(), "state")
	t.Setenv("MAGIBAKE_STATE", state)
	c, err := profile.Default(profile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	keys, gen, err := hostkey.Load(c, state)
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.Save(); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestCheckOverSSH(t *testing.T) {
	setEnv(t)
	rec := fakeSSH(t)
	keys := savedKeys(t)
	t.Setenv("MAGIBAKE_SUDO_PASSWORD", "the sudo password")

	// This machine is no cluster node: the script runs, its checks fail.
	code, stdout, stderr := execute(t, "check", "caspar", "--address", "caspar=10.9.9.9")
	if code != 4 || !strings.Contains(stderr, "checks failed") {
		t.Errorf("check: exit %d, stderr %q; want 4 and the count of failed checks", code, stderr)
	}
	for _, want := range []string{"PASS  caspar     reach              ssh pi@10.9.9.9, baked host key", "FAIL  caspar     hostname", "\ncheck: "} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	args, _ := os.ReadFile(filepath.Join(rec, "args"))
	for _, want := range []string{"StrictHostKeyChecking=yes", "GlobalKnownHostsFile=/dev/null", "HostKeyAlias=caspar", "BatchMode=yes", "-l\npi\n", "--\n10.9.9.9\n"} {
		if !strings.Contains(string(args), want) {
			t.Errorf("ssh arguments lack %q:\n%s", want, args)
		}
	}
	known, _ := os.ReadFile(filepath.Join(rec, "known"))
	f := strings.Fields(keys["caspar"].Public)
	if string(known) != "caspar "+f[0]+" "+f[1]+"\n" {
		t.Errorf("check trusted %q, want only caspar's baked key", known)
	}
	// The password reaches sudo on stdin, and nothing else: not ssh's
	// environment, not the command line, which holds no script either.
	if pw, _ := os.ReadFile(filepath.Join(rec, "sudo-password")); string(pw) != "the sudo password\n" {
		t.Errorf("sudo read %q, want the password line", pw)
	}
	if env, _ := os.ReadFile(filepath.Join(rec, "env")); strings.Contains(string(env), "the sudo password") {
		t.Errorf("ssh's environment holds the sudo password")
	}
	if !strings.Contains(string(args), "KnownHostsCommand=none") || !strings.Contains(string(args), "VerifyHostKeyDNS=no") || strings.Contains(string(args), "hostname") {
		t.Errorf("ssh's arguments widen the pinning or carry the script:\n%s", args)
	}
	if in, _ := os.ReadFile(filepath.Join(rec, "stdin")); !strings.HasPrefix(string(in), "the sudo password\n@@magibake-check-script\n{\n") {
		t.Errorf("ssh's stdin starts %.80q, want the password, the marker and the script", in)
	}
	// A sudo that asks for no password leaves the password line to the
	// shell, which skips it: the script still runs.
	t.Setenv("FAKE_SUDO_NOPASS", "1")
	code, stdout, _ = execute(t, "check", "caspar", "--address", "caspar=10.9.9.9")
	if code != 4 || !strings.Contains(stdout, "PASS  caspar     reach              ssh pi@10.9.9.9, baked host key") {
		t.Errorf("check with a sudo that asks for no password: exit %d:\n%s", code, stdout)
	}
	t.Setenv("FAKE_SUDO_NOPASS", "")

	// Without --address: the profile's home address, NAME.local; --json.
	code, stdout, _ = execute(t, "check", "melchior", "--json")
	var rs []check.Result
	if err := json.Unmarshal([]byte(stdout), &rs); err != nil || code != 4 || len(rs) < 10 || rs[0].Check != "reach" || !rs[0].OK {
		t.Errorf("check --json: exit %d, %d results, %v:\n%.300s", code, len(rs), err, stdout)
	}
	if args, _ := os.ReadFile(filepath.Join(rec, "args")); !strings.Contains(string(args), "--\nmelchior.local\n") {
		t.Errorf("melchior not reached at melchior.local:\n%s", args)
	}
}

func TestCheckRefuses(t *testing.T) {
	setEnv(t)
	rec := fakeSSH(t)
	t.Setenv("MAGIBAKE_STATE", filepath.Join(t.TempDir(), "state"))
	tests := []struct {
		args   []string
		code   int
		output string
	}{
		{[]string{"check", "--address", "nosuch=1.2.3.4"}, 2, `--address "nosuch=1.2.3.4": unknown node "nosuch"`},
		{[]string{"check", "--address", "caspar"}, 2, `--address "caspar": want NODE=HOST`},
		{[]string{"check", "--upstream", "example.org"}, 2, `--upstream "example.org": want an IPv4 address`},
		{[]string{"check", "nosuch"}, 3, `unknown node "nosuch"`},
		// No baked key: nothing to trust, so no connection at all.
		{[]string{"check", "caspar"}, 4, "FAIL  caspar     reach              no baked SSH host key in "},
	}
	for _, tc := range tests {
		code, stdout, stderr := execute(t, tc.args...)
		if code != tc.code || !strings.Contains(stdout+stderr, tc.output) {
			t.Errorf("%q: exit %d, output %q; want %d and %q", tc.args, code, stdout+stderr, tc.code, tc.output)
		}
	}
	if _, err := os.Stat(filepath.Join(rec, "args")); !os.IsNotExist(err) {
		t.Errorf("ssh ran although no check could (%v)", err)
	}
}

// TestCheckNodesAtOnce: check logs in to every node at once, and prints
// their results in the profile's order. Each fake ssh waits until all three
// have started; checked one after another, the first would wait alone and
// give up.
func TestCheckNodesAtOnce(t *testing.T) {
	setEnv(t)
	savedKeys(t)
	meet := t.TempDir()
	bin := t.TempDir()
	script := `#!/bin/sh
while [ "$1" != -- ]; do shift; done
host="$2"
: >"` + meet + `/$host"
i=0
while [ "$(ls "` + meet + `" | wc -l)" -lt 3 ]; do
	i=$((i + 1))
	[ $i -lt 600 ] || { echo "fake ssh: $host waited alone" >&2; exit 255; }
	sleep 0.1
done
echo "fake ssh: $host met the others" >&2
exit 255
`
	if err := os.WriteFile(filepath.Join(bin, "ssh"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	t.Setenv("MAGIBAKE_SUDO_PASSWORD", "")
	code, stdout, stderr := execute(t, "check")
	if code != 4 {
		t.Errorf("check: exit %d, want 4 (no node answers); stderr %q", code, stderr)
	}
	var order []string
	for _, l := range strings.Split(stdout, "\n") {
		f := strings.Fields(l)
		if len(f) >= 3 && f[2] == "reach" {
			order = append(order, f[1])
			if !strings.Contains(l, "met the others") {
				t.Errorf("%s was not checked while the others were: %s", f[1], l)
			}
			// ssh itself failed (exit 255): said so, with the way out.
			if !strings.Contains(l, "cannot log in with ssh as pi@"+f[1]+".local: ") || !strings.Contains(l, "Give its address with --address "+f[1]+"=IP") || strings.Contains(l, "@@") {
				t.Errorf("%s unreachable: %s", f[1], l)
			}
		}
	}
	if strings.Join(order, " ") != "caspar balthasar melchior" {
		t.Errorf("reach results in the order %q, want the profile's:\n%s", order, stdout)
	}
}
