package cli

import (
	"io"
	"runtime"
	"strings"
	"testing"

	"github.com/spf13/cobra"
)

// TestEveryCommandHasExample walks the whole command tree, cobra's own
// help and completion commands included.
func TestEveryCommandHasExample(t *testing.T) {
	root := NewRoot(io.Discard, io.Discard)
	n := 0
	var walk func(c *cobra.Command)
	walk = func(c *cobra.Command) {
		for _, sub := range c.Commands() {
			n++
			if strings.TrimSpace(sub.Example) == "" {
				t.Errorf("%s has no Example", sub.CommandPath())
			}
			if sub.Short == "" {
				t.Errorf("%s has no Short", sub.CommandPath())
			}
			walk(sub)
		}
	}
	walk(root)
	for _, want := range []string{"build", "plan", "fetch", "validate", "inspect", "diff", "version", "completion", "help"} {
		if c, _, err := root.Find([]string{want}); err != nil || c.Name() != want {
			t.Errorf("no %s command", want)
		}
	}
	if n < 13 {
		t.Errorf("walked %d commands", n)
	}
}

func TestVersionAndCompletion(t *testing.T) {
	code, out, _ := execute(t, "version")
	if code != 0 || out != "magibake "+Version+" ("+runtime.Version()+", "+runtime.GOOS+"/"+runtime.GOARCH+")\n" {
		t.Errorf("version: %d %q", code, out)
	}
	code, out, _ = execute(t, "--version")
	if code != 0 || !strings.Contains(out, Version) {
		t.Errorf("--version: %d %q", code, out)
	}
	for shell, want := range map[string]string{"bash": "__start_magibake", "zsh": "#compdef magibake", "fish": "complete -c magibake"} {
		code, out, errs := execute(t, "completion", shell)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", shell, code, len(out), errs)
		}
	}
	// The scripts complete subcommands through the hidden __complete command.
	code, out, _ = execute(t, "__complete", "ins")
	if code != 0 || !strings.Contains(out, "inspect") {
		t.Errorf("__complete ins: %d %q", code, out)
	}
	code, out, _ = execute(t, "build", "--help")
	if code != 0 || !strings.Contains(out, "Examples:") {
		t.Errorf("build --help lacks examples: %q", out)
	}
}
