package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/testkit"
)

// workersFile is a node file for four workers with fixed addresses.
const workersFile = `role: worker
count: 4
hostname: node{n}
macs: [dc:a6:32:00:00:01, dc:a6:32:00:00:02, dc:a6:32:00:00:03, dc:a6:32:00:00:04]
addresses: [10.3.50.31, 10.3.50.32, 10.3.50.33, 10.3.50.34]
`

// workersProfile writes the example cluster.yaml and caspar.yaml and the
// given extra node files into a new profile directory.
func workersProfile(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "profiles")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"cluster.yaml", "caspar.yaml"} {
		b, err := os.ReadFile(filepath.Join("../../profiles", n))
		if err != nil {
			t.Fatal(err)
		}
		files[n] = string(b)
	}
	for name, text := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// TestWorkersFile: a profile of caspar.yaml and one workers.yaml with count
// 4 validates, plans, and builds five cards; the head's dhcpd.conf, which
// dhcpd accepts, gives every worker its fixed address by MAC.
func TestWorkersFile(t *testing.T) {
	testkit.RequireTools(t, "dhcpd")
	setEnv(t)
	img, _ := fixture.Image(t, "bookworm")
	dir := workersProfile(t, map[string]string{"workers.yaml": workersFile})

	code, stdout, stderr := execute(t, "validate", "--profiles", dir)
	if want := "ok: 5 nodes (caspar, node1, node2, node3, node4), every overlay file renders for each\n"; code != 0 || stdout != want {
		t.Fatalf("validate: exit %d, stdout %q, want %q; stderr %q", code, stdout, want, stderr)
	}
	code, stdout, stderr = execute(t, "plan", "node3", "--profiles", dir, "--content")
	if code != 0 || !strings.Contains(stdout, "/etc/hostname") || !strings.Contains(stdout, "10.3.50.33\tnode3.cluster node3") {
		t.Fatalf("plan node3: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}

	out := t.TempDir()
	if code, _, stderr := execute(t, "build", "--all", "caspar", "--base", img, "--out-dir", out, "--profiles", dir); code != 2 || !strings.Contains(stderr, "give node names or --all, not both") {
		t.Errorf("build --all caspar: exit %d, stderr %q; want 2", code, stderr)
	}
	if code, _, stderr := execute(t, "build", "--base", img, "--out-dir", out, "--profiles", dir); code != 2 || !strings.Contains(stderr, "no node given") {
		t.Errorf("build without nodes: exit %d, stderr %q; want 2", code, stderr)
	}
	code, _, stderr = execute(t, "build", "--all", "--base", img, "--out-dir", out, "--profiles", dir)
	if code != 0 {
		t.Fatalf("build: exit %d: %s", code, stderr)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if want := "caspar.img node1.img node2.img node3.img node4.img"; strings.Join(names, " ") != want {
		t.Fatalf("out dir holds %v, want %s", names, want)
	}
	if got := fixture.OpenCard(t, filepath.Join(out, "node3.img")).ReadRoot(t, "/etc/hostname"); got != "node3\n" {
		t.Errorf("node3.img /etc/hostname = %q", got)
	}
	text := fixture.OpenCard(t, filepath.Join(out, "caspar.img")).ReadRoot(t, "/etc/dhcp/dhcpd.conf")
	for i := 1; i <= 4; i++ {
		n := string(rune('0' + i))
		want := "host node" + n + " {\n    hardware ethernet dc:a6:32:00:00:0" + n + ";\n    fixed-address 10.3.50.3" + n + ";"
		if !strings.Contains(text, want) {
			t.Errorf("caspar's dhcpd.conf lacks %q:\n%s", want, text)
		}
	}
	conf := filepath.Join(t.TempDir(), "dhcpd.conf")
	if err := os.WriteFile(conf, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	if b, err := exec.Command("dhcpd", "-t", "-cf", conf).CombinedOutput(); err != nil {
		t.Errorf("dhcpd -t -cf: %v\n%s", err, b)
	}
	code, stdout, stderr = execute(t, "known-hosts", "--profiles", dir)
	if code != 0 || !strings.Contains(stdout, "node4,node4.cluster,10.3.50.34 ssh-ed25519 ") {
		t.Errorf("known-hosts: exit %d, stderr %q, stdout:\n%s", code, stderr, stdout)
	}
}

// TestWorkersFileDuplicates: a worker named twice, once in workers.yaml
// and once in its own file, or a MAC given twice, stops validate and build
// with each problem at its file and line.
func TestWorkersFileDuplicates(t *testing.T) {
	setEnv(t)
	dir := workersProfile(t, map[string]string{
		"workers.yaml":  strings.Replace(workersFile, "dc:a6:32:00:00:04]", "dc:a6:32:00:00:01]", 1),
		"node2.yaml":    "hostname: node2\nrole: worker\n",
		"melchior.yaml": "hostname: melchior\nrole: worker\nmac: dc:a6:32:00:00:03\n",
	})
	want := []string{
		dir + "/workers.yaml:3: hostname: node2 is also the hostname in " + dir + "/node2.yaml",
		dir + "/workers.yaml:4: macs[2]: dc:a6:32:00:00:03 is also the MAC of melchior (" + dir + "/melchior.yaml)",
		dir + "/workers.yaml:4: macs[3]: dc:a6:32:00:00:01 is also the MAC of node1 (" + dir + "/workers.yaml)",
	}
	code, stdout, stderr := execute(t, "validate", "--profiles", dir)
	if code != 3 || stdout != strings.Join(want, "\n")+"\n" || !strings.Contains(stderr, "3 problem(s)") {
		t.Errorf("validate: exit %d, stderr %q, stdout:\n%s\nwant:\n%s", code, stderr, stdout, strings.Join(want, "\n"))
	}
	out := t.TempDir()
	code, _, stderr = execute(t, "build", "node1", "--base", filepath.Join(out, "unused.img"), "--out-dir", out, "--profiles", dir)
	if code != 3 || !strings.Contains(stderr, want[0]) {
		t.Errorf("build: exit %d, stderr %q", code, stderr)
	}
	if left, _ := os.ReadDir(out); len(left) > 0 {
		t.Errorf("build left %v", left)
	}
}
