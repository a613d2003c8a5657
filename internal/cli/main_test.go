package cli

import (
	"os"
	"testing"
)

// TestMain keeps the host keys the tests generate (see internal/hostkey) out
// of the user's state directory, also for the magibake binaries tests run.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "magibake-cli-state-")
	if err != nil {
		panic(err)
	}
	os.Setenv("MAGIBAKE_STATE", dir)
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
