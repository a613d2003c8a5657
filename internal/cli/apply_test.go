package cli

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestApplyRefuses(t *testing.T) {
	setEnv(t)
	rec := fakeSSH(t)
	savedKeys(t)
	t.Setenv("MAGIBAKE_SUDO_PASSWORD", "pw")
	tests := []struct {
		args   []string
		code   int
		output string
	}{
		{[]string{"apply"}, 2, "apply: name the nodes to change, or give --all"},
		{[]string{"apply", "caspar", "--all"}, 2, "apply: name the nodes to change, or give --all"},
		{[]string{"apply", "nosuch"}, 3, `unknown node "nosuch"`},
		{[]string{"apply", "caspar", "--via", "nosuch"}, 2, `--via: unknown node "nosuch"`},
		// This machine answers as caspar's address: its probe runs here (it
		// only reads), and this machine is not caspar: refused before any
		// change is sent.
		{[]string{"apply", "caspar", "--yes", "--address", "caspar=10.9.9.9"}, 4, "caspar: its hostname is "},
	}
	for _, tc := range tests {
		code, stdout, stderr := execute(t, tc.args...)
		if code != tc.code || !strings.Contains(stdout+stderr, tc.output) {
			t.Errorf("%q: exit %d, output %q; want %d and %q", tc.args, code, stdout+stderr, tc.code, tc.output)
		}
	}
	in, _ := os.ReadFile(filepath.Join(rec, "stdin"))
	if !strings.Contains(string(in), "s files") || strings.Contains(string(in), "stage_file") {
		t.Errorf("the last script sent was not the read-only probe:\n%.300s", in)
	}
}
