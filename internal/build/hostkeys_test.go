package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/fixture"
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

// A build whose cards do not go out keeps no key: when putting the cards
// in place fails after the keys were saved, the keys are taken back with
// the cards. Here a directory appears at the second card's path while the
// first is being checked, so the commit fails on it.
func TestFailedCommitTakesBackHostKeys(t *testing.T) {
	_, imgXZ := fixture.Image(t, "bookworm")
	state := filepath.Join(t.TempDir(), "state")
	ge := func(k string) string {
		if k == "MAGIBAKE_STATE" {
			return state
		}
		return env[k]
	}
	out := t.TempDir()
	blocker := filepath.Join(out, "melchior.img", "in-the-way")
	o := Options{Sources: Sources{Getenv: ge}, Nodes: []string{"caspar", "melchior"}, OutDir: out, Base: imgXZ, CacheDir: t.TempDir(),
		tamper: func() error { return os.MkdirAll(blocker, 0o755) }}
	err := Run(context.Background(), o)
	if err == nil {
		t.Fatal("the build succeeded with a directory at an output's path")
	}
	t.Logf("error: %v", err)
	if _, err := os.Stat(state); !os.IsNotExist(err) {
		t.Errorf("state %s exists after a build that put no card in place (%v)", state, err)
	}
	if _, err := os.Stat(filepath.Join(out, "caspar.img")); !os.IsNotExist(err) {
		t.Errorf("caspar.img is in place after the failed commit (%v)", err)
	}
}
