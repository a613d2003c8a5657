package inventory

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/testkit"
)

// wantAnsible is what ansible-inventory --list --export must read from each
// test cluster's inventory, in either format: groups, hosts, and every
// variable, each a string.
var wantAnsible = map[string]string{
	"magi": `{
  "_meta": {"hostvars": {
    "caspar":    {"ansible_host": "caspar.local", "ansible_user": "pi", "cluster_address": "10.3.50.1", "role": "head"},
    "balthasar": {"ansible_host": "balthasar.local", "ansible_user": "pi", "role": "worker"},
    "melchior":  {"ansible_host": "melchior.local", "ansible_user": "pi", "role": "worker"}
  }},
  "all": {"children": ["ungrouped", "magi"]},
  "magi": {"children": ["head", "workers"], "vars": {
    "cluster_subnet": "10.3.50.0/24", "cluster_head_address": "10.3.50.1", "cluster_domain": "cluster", "cluster_uplink": "wlan0"}},
  "head": {"hosts": ["caspar"]},
  "workers": {"hosts": ["balthasar", "melchior"]}
}`,
	"lab": `{
  "_meta": {"hostvars": {
    "alpha": {"ansible_host": "192.168.7.10", "ansible_user": "admin", "cluster_address": "10.9.0.1", "role": "head", "timezone": "Europe/Berlin", "locale": "de_DE.UTF-8"},
    "bravo": {"ansible_host": "bravo.local", "ansible_user": "admin", "role": "worker", "timezone": "Europe/Berlin", "locale": "de_DE.UTF-8"},
    "mike":  {"ansible_host": "mike.home.arpa", "ansible_user": "admin", "cluster_address": "10.9.0.2", "cluster_mac": "dc:a6:32:0a:0b:0c", "role": "worker", "timezone": "Europe/Berlin", "locale": "de_DE.UTF-8", "keyboard_layout": "de"},
    "zulu":  {"ansible_host": "1e5", "ansible_user": "admin", "cluster_address": "10.9.0.5", "cluster_mac": "12:34:56:01:02:03", "role": "worker", "timezone": "Europe/Berlin", "locale": "de_DE.UTF-8"}
  }},
  "all": {"children": ["ungrouped", "lab"]},
  "lab": {"children": ["head", "workers"], "vars": {
    "cluster_subnet": "10.9.0.0/24", "cluster_head_address": "10.9.0.1", "cluster_domain": "1.5", "cluster_uplink": "eth1"}},
  "head": {"hosts": ["alpha"]},
  "workers": {"hosts": ["bravo", "mike", "zulu"]}
}`,
}

// wantGraph is ansible-inventory --graph of each test cluster.
var wantGraph = map[string]string{
	"magi": `@all:
  |--@ungrouped:
  |--@magi:
  |  |--@head:
  |  |  |--caspar
  |  |--@workers:
  |  |  |--balthasar
  |  |  |--melchior
`,
	"lab": `@all:
  |--@ungrouped:
  |--@lab:
  |  |--@head:
  |  |  |--alpha
  |  |--@workers:
  |  |  |--bravo
  |  |  |--mike
  |  |  |--zulu
`,
}

// ansibleInventory runs Ansible's own parser for format on file, with a
// HOME and temp directory of the test's own and nothing of the caller's
// Ansible configuration; an inventory it cannot parse, or any warning,
// fails the test.
func ansibleInventory(t *testing.T, format, file string, args ...string) []byte {
	t.Helper()
	home := t.TempDir()
	var env []string
	for _, e := range os.Environ() {
		if !strings.HasPrefix(e, "ANSIBLE_") && !strings.HasPrefix(e, "HOME=") {
			env = append(env, e)
		}
	}
	env = append(env, "HOME="+home, "ANSIBLE_LOCAL_TEMP="+filepath.Join(home, "tmp"),
		"ANSIBLE_CONFIG="+filepath.Join(home, "none.cfg"), "ANSIBLE_NOCOLOR=1",
		// Only the plugin for this format, and a file it cannot parse is
		// an error, not a warning over an empty inventory.
		"ANSIBLE_INVENTORY_ENABLED="+format, "ANSIBLE_INVENTORY_UNPARSED_FAILED=true",
		"ANSIBLE_INVENTORY_ANY_UNPARSED_IS_FAILED=true")
	cmd := exec.Command("ansible-inventory", append([]string{"-i", file}, args...)...)
	cmd.Env, cmd.Dir = env, home
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("ansible-inventory -i %s %s: %v\n%s", file, strings.Join(args, " "), err, stderr.String())
	}
	if strings.Contains(stderr.String(), "WARNING") {
		t.Errorf("ansible-inventory -i %s %s warned:\n%s", file, strings.Join(args, " "), stderr.String())
	}
	return stdout.Bytes()
}

// TestAnsibleReadsInventory hands both formats of each test cluster to
// ansible-inventory and checks what it read: the groups, the hosts in
// order, every host's variables and the cluster's group variables, all
// strings (a MAC, a domain or a home address turned into a number fails).
func TestAnsibleReadsInventory(t *testing.T) {
	testkit.RequireTools(t, "ansible-inventory")
	for _, tc := range clusters {
		c := tc.load(t)
		for _, format := range Formats() {
			t.Run(tc.name+"."+format, func(t *testing.T) {
				b, err := Ansible(c, format)
				if err != nil {
					t.Fatal(err)
				}
				file := filepath.Join(t.TempDir(), tc.name+"."+format)
				if err := os.WriteFile(file, b, 0o644); err != nil {
					t.Fatal(err)
				}

				var got, want map[string]any
				if err := json.Unmarshal(ansibleInventory(t, format, file, "--list", "--export"), &got); err != nil {
					t.Fatalf("ansible-inventory --list --export: %v", err)
				}
				if err := json.Unmarshal([]byte(wantAnsible[tc.name]), &want); err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, want) {
					g, _ := json.MarshalIndent(got, "", "  ")
					t.Errorf("ansible-inventory read %s as\n%s\nwant\n%s", file, g, wantAnsible[tc.name])
				}

				// Without --export the group variables reach every host.
				var list struct {
					Meta struct {
						HostVars map[string]map[string]any `json:"hostvars"`
					} `json:"_meta"`
				}
				if err := json.Unmarshal(ansibleInventory(t, format, file, "--list"), &list); err != nil {
					t.Fatalf("ansible-inventory --list: %v", err)
				}
				groupVars := want[tc.name].(map[string]any)["vars"].(map[string]any)
				hostVars := want["_meta"].(map[string]any)["hostvars"].(map[string]any)
				for host, vars := range hostVars {
					merged := map[string]any{}
					for k, v := range vars.(map[string]any) {
						merged[k] = v
					}
					for k, v := range groupVars {
						merged[k] = v
					}
					if !reflect.DeepEqual(list.Meta.HostVars[host], merged) {
						t.Errorf("ansible-inventory --list: %s has %#v, want %#v", host, list.Meta.HostVars[host], merged)
					}
				}

				if got := string(ansibleInventory(t, format, file, "--graph")); got != wantGraph[tc.name] {
					t.Errorf("ansible-inventory --graph:\n%s\nwant\n%s", got, wantGraph[tc.name])
				}
			})
		}
	}
}

// TestSSHReadsConfig hands each test cluster's Host blocks to ssh -G, which
// prints the options ssh would use for a host, and checks each node's.
func TestSSHReadsConfig(t *testing.T) {
	testkit.RequireTools(t, "ssh")
	u, err := user.Current()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]map[string][3]string{ // hostname, user, hostkeyalias of each node
		"magi": {
			"caspar":    {"caspar.local", "pi", "caspar"},
			"balthasar": {"balthasar.local", "pi", "balthasar"},
			"melchior":  {"melchior.local", "pi", "melchior"},
		},
		"lab": {
			"alpha": {"192.168.7.10", "admin", "alpha"},
			"bravo": {"bravo.local", "admin", "bravo"},
			"mike":  {"mike.home.arpa", "admin", "mike"},
			"zulu":  {"1e5", "admin", "zulu"},
		},
	}
	for _, tc := range clusters {
		c := tc.load(t)
		file := filepath.Join(t.TempDir(), "config")
		// A user's catch-all block after ours must not widen the pinning:
		// ssh takes the first value it reads for each option.
		widen := "\nHost *\n  GlobalKnownHostsFile /etc/ssh/ssh_known_hosts\n  KnownHostsCommand /bin/echo %H\n  VerifyHostKeyDNS yes\n"
		if err := os.WriteFile(file, append(SSHConfig(c, "magibake known-hosts"), widen...), 0o600); err != nil {
			t.Fatal(err)
		}
		if len(want[tc.name]) != len(c.Nodes) {
			t.Fatalf("%s: %d nodes, the test expects %d", tc.name, len(c.Nodes), len(want[tc.name]))
		}
		for node, w := range want[tc.name] {
			opts := map[string]string{}
			for _, l := range strings.Split(testkit.Run(t, "ssh", "-G", "-F", file, node), "\n") {
				if k, v, ok := strings.Cut(l, " "); ok {
					opts[k] = v
				}
			}
			for k, v := range map[string]string{
				"hostname":              w[0],
				"user":                  w[1],
				"hostkeyalias":          w[2],
				"userknownhostsfile":    filepath.Join(u.HomeDir, ".ssh", "known_hosts."+tc.name),
				"stricthostkeychecking": "true",
				"globalknownhostsfile":  "/dev/null",
				"knownhostscommand":     "", // none: ssh -G prints nothing
				"verifyhostkeydns":      "false",
			} {
				if opts[k] != v {
					t.Errorf("%s: ssh -G -F %s %s: %s is %q, want %q", tc.name, file, node, k, opts[k], v)
				}
			}
		}
	}
}
