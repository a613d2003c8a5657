package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/hostkey"
	"github.com/magibake/magibake/internal/inventory"
	"github.com/magibake/magibake/internal/profile"
	"github.com/magibake/magibake/internal/testkit"
)

// TestInventory: inventory prints the renderer's inventory of the profiles
// in either format, with no secret, and refuses a bad format or bad
// profiles with nothing on stdout.
func TestInventory(t *testing.T) {
	setEnv(t)
	c, err := profile.Default(profile.Options{})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		args   []string
		format string
		line   string
	}{
		{[]string{"inventory"}, "yaml", "        caspar:\n          ansible_host: caspar.local\n          ansible_user: pi\n"},
		{[]string{"inventory", "--format", "yaml"}, "yaml", "    cluster_subnet: 10.3.50.0/24\n"},
		{[]string{"inventory", "--format", "ini"}, "ini", "\ncaspar ansible_host=caspar.local ansible_user=pi cluster_address=10.3.50.1 role=head\n"},
	} {
		code, stdout, stderr := execute(t, tc.args...)
		if code != 0 || stderr != "" {
			t.Fatalf("%s: exit %d, stderr %q", strings.Join(tc.args, " "), code, stderr)
		}
		want, err := inventory.Ansible(c, tc.format)
		if err != nil {
			t.Fatal(err)
		}
		if stdout != string(want) || !strings.Contains(stdout, tc.line) {
			t.Errorf("%s printed\n%s\nwant\n%s", strings.Join(tc.args, " "), stdout, want)
		}
		for _, secret := range c.SecretValues() {
			if strings.Contains(stdout, secret) {
				t.Errorf("%s prints the secret %q", strings.Join(tc.args, " "), secret)
			}
		}
	}

	badProfiles := t.TempDir()
	cluster, _ := os.ReadFile("../../profiles/cluster.yaml")
	os.WriteFile(filepath.Join(badProfiles, "cluster.yaml"), bytes.Replace(cluster, []byte("subnet: 10.3.50.0/24"), []byte("subnet: 10.3.50.0/33"), 1), 0o644)
	os.WriteFile(filepath.Join(badProfiles, "caspar.yaml"), []byte("hostname: caspar\nrole: head\nhome_address: 10.3.50.7\n"), 0o644)
	groupName := t.TempDir()
	os.WriteFile(filepath.Join(groupName, "cluster.yaml"), bytes.Replace(cluster, []byte("name: magi"), []byte("name: workers"), 1), 0o644)
	os.WriteFile(filepath.Join(groupName, "caspar.yaml"), []byte("hostname: caspar\nrole: head\n"), 0o644)
	for _, tc := range []struct {
		args []string
		code int
		want []string // one substring per stderr line
	}{
		{[]string{"inventory", "--format", "json"}, 2, []string{`--format "json": want one of yaml, ini`}},
		{[]string{"inventory", "extra"}, 2, []string{`unknown command "extra"`}},
		{[]string{"inventory", "--profiles", filepath.Join(badProfiles, "nope")}, 3, []string{"nope: not a directory"}},
		{[]string{"inventory", "--profiles", badProfiles}, 3, []string{"cluster.yaml:6: subnet:", "caspar.yaml:3: home_address:"}},
		{[]string{"inventory", "--profiles", groupName, "--format", "ini"}, 3, []string{groupName + `: cluster name "workers" is also a group of the Ansible inventory`}},
		{[]string{"ssh-config", "--profiles", badProfiles}, 3, []string{"cluster.yaml:6: subnet:", "caspar.yaml:3: home_address:"}},
	} {
		code, stdout, stderr := execute(t, tc.args...)
		lines := strings.Split(strings.TrimSuffix(stderr, "\n"), "\n")
		if code != tc.code || stdout != "" || len(lines) != len(tc.want) {
			t.Errorf("%s: exit %d (want %d), stdout %q, stderr %q", strings.Join(tc.args, " "), code, tc.code, stdout, stderr)
			continue
		}
		for i, w := range tc.want {
			if !errLine.MatchString(lines[i]) || !strings.Contains(lines[i], w) {
				t.Errorf("%s: stderr line %q, want magibake: ...%s...", strings.Join(tc.args, " "), lines[i], w)
			}
		}
	}
}

// TestSSHConfig: ssh-config prints a block per node whether or not its host
// key exists yet, names the nodes without one on stderr, writes no state,
// and its HostKeyAlias finds each node's line in what known-hosts prints.
func TestSSHConfig(t *testing.T) {
	setEnv(t)
	testkit.RequireTools(t, "ssh-keygen")
	state := filepath.Join(t.TempDir(), "state")
	t.Setenv("MAGIBAKE_STATE", state)
	c, err := profile.Default(profile.Options{})
	if err != nil {
		t.Fatal(err)
	}

	code, stdout, stderr := execute(t, "ssh-config")
	if code != 0 || stderr != "note: no SSH host key yet for caspar, balthasar, melchior in "+state+": ssh refuses them until `magibake build` has made their keys and ~/.ssh/known_hosts.magi holds them\n" {
		t.Errorf("ssh-config before any build: exit %d, stderr %q", code, stderr)
	}
	if want := string(inventory.SSHConfig(c, "magibake known-hosts")); stdout != want || strings.Count(stdout, "\nHost ") != 3 {
		t.Errorf("ssh-config printed\n%s\nwant\n%s", stdout, want)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("ssh-config made the state directory %s (%v)", state, err)
	}

	// Save the keys as a build does.
	_, gen, err := hostkey.Load(c, state)
	if err != nil {
		t.Fatal(err)
	}
	if err := gen.Save(); err != nil {
		t.Fatal(err)
	}
	profiles := t.TempDir()
	for _, f := range []string{"cluster.yaml", "caspar.yaml", "balthasar.yaml", "melchior.yaml"} {
		b, _ := os.ReadFile("../../profiles/" + f)
		os.WriteFile(filepath.Join(profiles, f), b, 0o644)
	}
	code, stdout, stderr = execute(t, "ssh-config", "--profiles", profiles)
	if code != 0 || stderr != "" || !strings.Contains(stdout, "#   magibake known-hosts --profiles "+profiles+" > ~/.ssh/known_hosts.magi\n") {
		t.Errorf("ssh-config after the keys were saved: exit %d, stderr %q, stdout\n%s", code, stderr, stdout)
	}
	code, known, stderr := execute(t, "known-hosts")
	if code != 0 || stderr != "" {
		t.Fatalf("known-hosts: exit %d, stderr %q", code, stderr)
	}
	file := filepath.Join(t.TempDir(), "known_hosts.magi")
	os.WriteFile(file, []byte(known), 0o600)
	for _, n := range c.Nodes {
		if !strings.Contains(stdout, "\nHost "+n.Hostname+"\n") || !strings.Contains(stdout, "  HostKeyAlias "+n.Hostname+"\n") {
			t.Errorf("ssh-config has no block for %s with HostKeyAlias %s", n.Hostname, n.Hostname)
		}
		k, err := hostkey.Read(state, n.Hostname)
		if err != nil {
			t.Fatal(err)
		}
		// ssh-keygen -F looks a host up as ssh does with HostKeyAlias.
		found := testkit.Run(t, "ssh-keygen", "-F", n.Hostname, "-f", file)
		if !strings.Contains(found, strings.Fields(k.Public)[1]) {
			t.Errorf("ssh-keygen -F %s -f %s does not find %s's saved key:\n%s", n.Hostname, file, n.Hostname, found)
		}
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"/home/pi/cluster":   "/home/pi/cluster",
		"my cluster":         "'my cluster'",
		"it's":               `'it'\''s'`,
		"~/cluster":          "'~/cluster'",
		"profiles-2026.lab,": "profiles-2026.lab,",
	} {
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %q, want %q", in, got, want)
		}
	}
}
