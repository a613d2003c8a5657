package hostkey

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/profile"
)

func cluster() *profile.Cluster {
	c := &profile.Cluster{Domain: "cluster"}
	for _, n := range []string{"caspar", "balthasar"} {
		c.Nodes = append(c.Nodes, profile.Node{Hostname: n})
	}
	return c
}

// TestLoadGeneratesOnceThenKeeps: the first call makes the keys, every
// later call (a rebake, a reflash) returns the very same files.
func TestLoadGeneratesOnceThenKeeps(t *testing.T) {
	dir := filepath.Join(t.TempDir(), ".magibake", "state")
	c := cluster()
	k1, gen, err := Load(c, dir)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(gen.Nodes(), ",") != "caspar,balthasar" {
		t.Errorf("generated %v, want both nodes", gen.Nodes())
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Fatalf("Load wrote to %s before Save: %v", dir, err)
	}
	if err := gen.Save(); err != nil {
		t.Fatal(err)
	}
	k2, gen, err := Load(c, dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(gen.Nodes()) != 0 {
		t.Errorf("second Load generated %v", gen.Nodes())
	}
	for _, n := range c.Nodes {
		if k1[n.Hostname] != k2[n.Hostname] {
			t.Errorf("%s: key changed between two loads", n.Hostname)
		}
	}
	if k1["caspar"] == k1["balthasar"] {
		t.Error("two nodes got the same key")
	}
	for _, n := range c.Nodes {
		key := filepath.Join(dir, n.Hostname, File)
		for path, want := range map[string]os.FileMode{filepath.Dir(key): 0o700 | os.ModeDir, key: 0o600, key + ".pub": 0o644} {
			st, err := os.Stat(path)
			if err != nil {
				t.Fatal(err)
			}
			if st.Mode() != want {
				t.Errorf("%s: mode %v, want %v", path, st.Mode(), want)
			}
		}
		if got, _ := os.ReadFile(key); string(got) != k1[n.Hostname].Private {
			t.Errorf("%s: the file is not the attached key", key)
		}
	}
}

// TestOpenSSHReadsTheKeys: ssh-keygen derives from our private key file
// the public key we wrote, and reads our known_hosts lines.
func TestOpenSSHReadsTheKeys(t *testing.T) {
	if _, err := exec.LookPath("ssh-keygen"); err != nil {
		t.Fatal("ssh-keygen not found: apt-get install -y openssh-client")
	}
	dir := t.TempDir()
	c := cluster()
	c.Nodes[0].Address = mustAddr(t, "10.3.50.1")
	keys := load(t, c, dir)
	for _, n := range c.Nodes {
		out, err := exec.Command("ssh-keygen", "-y", "-f", filepath.Join(dir, n.Hostname, File)).CombinedOutput()
		if err != nil {
			t.Fatalf("ssh-keygen -y: %v\n%s", err, out)
		}
		pub := keys[n.Hostname].Public
		if !samePublic(out, pub) {
			t.Errorf("%s: ssh-keygen -y gives %q, we wrote %q", n.Hostname, out, pub)
		}
		if !strings.HasSuffix(strings.TrimSpace(pub), " root@"+n.Hostname) {
			t.Errorf("%s: public key comment: %q", n.Hostname, pub)
		}
	}
	kh := KnownHosts(c, keys)
	want := "caspar,caspar.cluster,10.3.50.1 ssh-ed25519 "
	if !strings.HasPrefix(kh, want) || strings.Count(kh, "\n") != 2 || !strings.Contains(kh, "\nbalthasar,balthasar.cluster ssh-ed25519 ") {
		t.Errorf("known_hosts:\n%s", kh)
	}
	khFile := filepath.Join(dir, "known_hosts")
	if err := os.WriteFile(khFile, []byte(kh), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"caspar", "caspar.cluster", "10.3.50.1", "balthasar.cluster"} {
		out, err := exec.Command("ssh-keygen", "-F", name, "-f", khFile).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "ssh-ed25519") {
			t.Errorf("ssh-keygen -F %s: %v\n%s", name, err, out)
		}
	}
}

func TestLoadErrors(t *testing.T) {
	cases := []struct {
		name    string
		mangle  func(t *testing.T, key string)
		wantErr string
	}{
		{"readable by others", func(t *testing.T, key string) { chmod(t, key, 0o644) }, "mode 0644 lets others read"},
		{"not a key", func(t *testing.T, key string) { write(t, key, "hello\n", 0o600) }, "not an OpenSSH private key"},
		{"pub of another key", func(t *testing.T, key string) {
			other, err := New("x", nil)
			if err != nil {
				t.Fatal(err)
			}
			write(t, key+".pub", other.Public, 0o644)
		}, "does not match the private key"},
		{"pub missing", func(t *testing.T, key string) { os.Remove(key + ".pub") }, "delete both to get a new key"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			load(t, cluster(), dir)
			key := filepath.Join(dir, "caspar", File)
			tc.mangle(t, key)
			_, _, err := Load(cluster(), dir)
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) || !strings.Contains(err.Error(), key) {
				t.Errorf("got %v, want an error naming %s with %q", err, key, tc.wantErr)
			}
		})
	}
}

func TestDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	cases := []struct {
		profiles string
		env      map[string]string
		want     string
	}{
		{"/p", nil, "/p/.magibake/state"},
		{"", map[string]string{"XDG_STATE_HOME": "/x"}, "/x/magibake/state"},
		{"/p", map[string]string{"MAGIBAKE_STATE": "/s"}, "/s"},
	}
	for _, c := range cases {
		got, err := Dir(c.profiles, env(c.env))
		if err != nil || got != c.want {
			t.Errorf("Dir(%q, %v) = %q, %v; want %q", c.profiles, c.env, got, err, c.want)
		}
	}
}

func chmod(t *testing.T, p string, m os.FileMode) {
	t.Helper()
	if err := os.Chmod(p, m); err != nil {
		t.Fatal(err)
	}
}

func write(t *testing.T, p, s string, m os.FileMode) {
	t.Helper()
	if err := os.WriteFile(p, []byte(s), m); err != nil {
		t.Fatal(err)
	}
}

func mustAddr(t *testing.T, s string) netip.Addr {
	t.Helper()
	a, err := netip.ParseAddr(s)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func load(t *testing.T, c *profile.Cluster, dir string) Keys {
	t.Helper()
	keys, g, err := Load(c, dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Save(); err != nil {
		t.Fatal(err)
	}
	return keys
}

// Two runs that both made a key for a node: the second to save is told,
// and the saved key stays the first one.
func TestSaveRace(t *testing.T) {
	dir := t.TempDir()
	a, ga, err := Load(cluster(), dir)
	if err != nil {
		t.Fatal(err)
	}
	_, gb, err := Load(cluster(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := ga.Save(); err != nil {
		t.Fatal(err)
	}
	err = gb.Save()
	if err == nil || !strings.Contains(err.Error(), "another magibake saved a host key for caspar") {
		t.Fatalf("second save: %v", err)
	}
	k, err := Read(dir, "caspar")
	if err != nil || k != a["caspar"] {
		t.Errorf("saved key is not the first run's: %v", err)
	}
}

// Save writes all keys or none, and TakeBack removes what Save wrote,
// directories it made included, and nothing else.
func TestSaveAllOrNoneAndTakeBack(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, ".magibake", "state")
	_, g, err := Load(cluster(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Save(); err != nil {
		t.Fatal(err)
	}
	g.TakeBack()
	if _, err := os.Stat(filepath.Join(root, ".magibake")); !os.IsNotExist(err) {
		t.Errorf("after TakeBack %s/.magibake exists (%v)", root, err)
	}

	// The second node's .pub cannot be written: nothing of either node's
	// key stays, and what was there before stays.
	if err := os.MkdirAll(filepath.Join(dir, "balthasar", File+".pub", "x"), 0o755); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(dir, "other-file")
	write(t, other, "not ours\n", 0o600)
	_, g, err = Load(cluster(), dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := g.Save(); err == nil {
		t.Fatal("Save succeeded with a directory at balthasar's .pub")
	}
	for _, p := range []string{filepath.Join(dir, "caspar"), filepath.Join(dir, "balthasar", File)} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("after a failed Save %s exists (%v)", p, err)
		}
	}
	if _, err := os.Stat(other); err != nil {
		t.Errorf("a failed Save removed a file it did not write: %v", err)
	}
}
