package cli

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestMain keeps the host keys the tests generate (see internal/hostkey) and
// the decompressed bases they cache out of the user's state and cache
// directories, also for the magibake binaries tests run.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "magibake-cli-state-")
	if err != nil {
		panic(err)
	}
	os.Setenv("MAGIBAKE_STATE", dir)
	// Decompressed bases are cached under the user cache dir: keep the
	// tests' out of the user's, but keep finding the shared fixtures there.
	if os.Getenv("MAGIBAKE_FIXTURE_DIR") == "" {
		if cache, err := os.UserCacheDir(); err == nil {
			os.Setenv("MAGIBAKE_FIXTURE_DIR", filepath.Join(cache, "magibake", "fixtures"))
		}
	}
	// The go commands the tests run (building the binary) keep the user's
	// build cache: Go's default one lives under XDG_CACHE_HOME, and an
	// empty one rebuilt the standard library and every module in each run
	// (65 s of TestDocCommands' 85 s).
	if os.Getenv("GOCACHE") == "" {
		if out, err := exec.Command("go", "env", "GOCACHE").Output(); err == nil {
			os.Setenv("GOCACHE", strings.TrimSpace(string(out)))
		}
	}
	os.Setenv("XDG_CACHE_HOME", filepath.Join(dir, "cache"))
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
