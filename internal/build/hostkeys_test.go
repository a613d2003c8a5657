package build

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

// A build that fails leaves no host key state behind: the keys it made are
// saved only with its outputs.
func TestFailedBuildSavesNoHostKeys(t *testing.T) {
	state := filepath.Join(t.TempDir(), "state")
	ge := func(k string) string {
		if k == "MAGIBAKE_STATE" {
			return state
		}
		return env[k]
	}
	o := Options{Sources: Sources{Getenv: ge}, Nodes: []string{"caspar"}, OutDir: t.TempDir(),
		Base: filepath.Join(t.TempDir(), "missing.img.xz")}
	if err := Run(context.Background(), o); err == nil {
		t.Fatal("build from a missing base succeeded")
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state %s exists after a failed build (%v)", state, err)
	}
	if _, _, err := o.Plan("caspar", mustMTime(t)); err != nil {
		t.Fatal(err)
	}
	for _, n := range []string{"caspar", "balthasar", "melchior"} {
		if st, err := os.Stat(filepath.Join(state, n, "ssh_host_ed25519_key")); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: after plan, key %v %v", n, st, err)
		}
	}
}
