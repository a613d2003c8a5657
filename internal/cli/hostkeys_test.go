package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/fixture"
)

// TestOnlyBuildMakesHostKeys: plan, validate, known-hosts and diff only
// read the host key state; the first build makes and saves every node's
// key, and from then on every command shows that same key.
func TestOnlyBuildMakesHostKeys(t *testing.T) {
	setEnv(t)
	_, imgXZ := fixture.Image(t, "bookworm")
	state := filepath.Join(t.TempDir(), "state")
	t.Setenv("MAGIBAKE_STATE", state)
	noState := func(after string) {
		t.Helper()
		if _, err := os.Stat(state); !os.IsNotExist(err) {
			t.Fatalf("after %s the state directory %s exists (%v)", after, state, err)
		}
	}

	code, _, stderr := execute(t, "plan", "caspar")
	if code != 0 || !strings.Contains(stderr, "note: caspar has no SSH host key in "+state+" yet") {
		t.Errorf("plan: exit %d, stderr %q", code, stderr)
	}
	noState("plan")
	if code, _, stderr := execute(t, "validate"); code != 0 {
		t.Errorf("validate: exit %d: %s", code, stderr)
	}
	noState("validate")
	code, stdout, stderr := execute(t, "known-hosts")
	if code != 0 || stdout != "" || !strings.Contains(stderr, "no SSH host key yet for caspar, balthasar, melchior") {
		t.Errorf("known-hosts before any build: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	noState("known-hosts")

	card := filepath.Join(t.TempDir(), "melchior.img")
	code, _, stderr = execute(t, "build", "melchior", "--base", imgXZ, "-o", card)
	if code != 0 || !strings.Contains(stderr, "generated SSH host keys for caspar, balthasar, melchior in "+state) {
		t.Fatalf("build: exit %d: %s", code, stderr)
	}
	if code, stdout, stderr := execute(t, "diff", card, "--node", "melchior"); code != 0 || strings.Contains(stderr, "no SSH host key") {
		t.Errorf("diff: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	code, stdout, stderr = execute(t, "known-hosts")
	if code != 0 || strings.Count(stdout, " ssh-ed25519 ") != 3 || stderr != "" {
		t.Errorf("known-hosts after the build: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	pub, err := os.ReadFile(filepath.Join(state, "caspar", "ssh_host_ed25519_key.pub"))
	if err != nil {
		t.Fatal(err)
	}
	key := strings.Fields(string(pub))[1]
	if !strings.Contains(stdout, "caspar,caspar.cluster,10.3.50.1 ssh-ed25519 "+key+"\n") {
		t.Errorf("known-hosts does not give caspar's saved key %s:\n%s", key, stdout)
	}
	code, stdout, stderr = execute(t, "plan", "caspar", "--content")
	if code != 0 || strings.Contains(stderr, "no SSH host key") || !strings.Contains(stdout, key) {
		t.Errorf("plan after the build: exit %d, stderr %q; its content lacks the saved key %s", code, stderr, key)
	}
}
