package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A build that fails, and a plan, leave no host key state behind: the keys
// a build makes are saved only with its outputs, and a plan only reads.
func TestOnlyABuildSavesHostKeys(t *testing.T) {
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
	var log strings.Builder
	o.Log = &log
	if _, _, err := o.Plan("caspar", mustMTime(t)); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state %s exists after a plan (%v)", state, err)
	}
	if want := "note: caspar has no SSH host key in " + state + " yet"; !strings.Contains(log.String(), want) {
		t.Errorf("plan said %q, want %q", log.String(), want)
	}
}
