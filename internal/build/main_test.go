package build

import (
	"os"
	"testing"
)

// TestMain keeps the host keys the tests generate (see internal/hostkey) out
// of the user's state directory.
func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "magibake-build-state-")
	if err != nil {
		panic(err)
	}
	env["MAGIBAKE_STATE"] = dir
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
