package cli

import (
	"encoding/json"
	"io"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"strings"
	"testing"

	"github.com/spf13/cobra"

	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/inspect"
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
	if code != 0 || out != "magibake "+toolVersion()+" ("+runtime.Version()+", "+runtime.GOOS+"/"+runtime.GOARCH+")\n" {
		t.Errorf("version: %d %q", code, out)
	}
	code, out, _ = execute(t, "--version")
	if code != 0 || !strings.Contains(out, toolVersion()) {
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

// TestVersionFrom: which version a binary reports from its build information.
func TestVersionFrom(t *testing.T) {
	vcs := func(rev, modified string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.modified", Value: modified}}
	}
	const rev = "43f31e7a1b2c3d4e5f60718293a4b5c6d7e8f901"
	tests := []struct {
		name, main string
		settings   []debug.BuildSetting
		want       string
	}{
		{"go install of a release", "v1.2.3", nil, "v1.2.3"},
		{"build from a checkout (Go's pseudo-version)", "v0.0.0-20261201050000-43f31e7a1b2c+dirty", vcs(rev, "true"), "v0.0.0-20261201050000-43f31e7a1b2c+dirty"},
		{"no module version, clean tree", "(devel)", vcs(rev, "false"), "43f31e7a1b2c"},
		{"no module version, modified tree", "(devel)", vcs(rev, "true"), "43f31e7a1b2c+dirty"},
		{"nothing recorded", "(devel)", nil, "dev"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bi := &debug.BuildInfo{Main: debug.Module{Path: "github.com/magibake/magibake", Version: tt.main}, Settings: tt.settings}
			if got := versionFrom(bi); got != tt.want {
				t.Errorf("versionFrom = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestBuiltBinaryVersion builds magibake from this checkout and asks it
// which version it is: with make build (the commit from git describe,
// "-dirty" exactly when tracked files changed), with Go's own stamping
// (-buildvcs=true: the commit in a pseudo-version, "+dirty" when git sees
// any change), and with a release version given at link time.
func TestBuiltBinaryVersion(t *testing.T) {
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	in := func(name string, args ...string) string {
		t.Helper()
		cmd := exec.Command(name, args...)
		cmd.Dir = root
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("%s %v: %v\n%s", name, args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	rev := in("git", "rev-parse", "--short=12", "HEAD")
	trackedChanges := in("git", "status", "--porcelain", "--untracked-files=no") != ""
	anyChanges := in("git", "status", "--porcelain") != ""
	version := func(bin string) string {
		t.Helper()
		out, err := exec.Command(bin, "version").Output()
		if err != nil {
			t.Fatalf("%s version: %v", bin, err)
		}
		f := strings.Fields(string(out))
		if len(f) < 2 || f[0] != "magibake" {
			t.Fatalf("%s version: %q", bin, out)
		}
		return f[1]
	}

	in("make", "-s", "build")
	made := filepath.Join(root, "bin", "magibake")
	v := version(made)
	if !strings.Contains(v, rev) || strings.HasSuffix(v, "-dirty") != trackedChanges {
		t.Errorf("make build: version %q, want the commit %s, -dirty %v", v, rev, trackedChanges)
	}
	// The card it bakes says the same in its manifest.
	setEnv(t)
	_, imgXZ := fixture.Image(t, "trixie")
	card := filepath.Join(t.TempDir(), "caspar.img")
	in(made, "build", "caspar", "--base", imgXZ, "-o", card)
	var r inspect.Report
	if err := json.Unmarshal([]byte(in(made, "inspect", card, "--json")), &r); err != nil {
		t.Fatal(err)
	}
	if r.Manifest == nil || r.Manifest.Version != v {
		t.Errorf("manifest of a card baked by %s: %+v", v, r.Manifest)
	}
	bin := filepath.Join(t.TempDir(), "magibake")
	in("go", "build", "-buildvcs=true", "-o", bin, "./cmd/magibake")
	if v := version(bin); !strings.Contains(v, rev) || strings.HasSuffix(v, "+dirty") != anyChanges {
		t.Errorf("go build -buildvcs=true: version %q, want the commit %s, +dirty %v", v, rev, anyChanges)
	}
	in("go", "build", "-ldflags", "-X github.com/magibake/magibake/internal/cli.Version=v9.8.7", "-o", bin, "./cmd/magibake")
	if v := version(bin); v != "v9.8.7" {
		t.Errorf("link-time version: %q, want v9.8.7", v)
	}
}

// TestStandardCommandEdges: --version and version say the same, and
// mistakes cobra would answer with help and exit 0 are usage errors.
func TestStandardCommandEdges(t *testing.T) {
	setEnv(t)
	_, v1, _ := execute(t, "version")
	_, v2, _ := execute(t, "--version")
	if v1 == "" || v1 != v2 {
		t.Errorf("version says %q, --version says %q", v1, v2)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"completion", "tcsh"}, `magibake completion: unknown shell "tcsh"; want bash, zsh, fish or powershell`},
		{[]string{"nosuch", "--help"}, `magibake: unknown command "nosuch"; see`},
		{[]string{"biuld", "-h"}, `magibake: unknown command "biuld"; did you mean build?`},
	} {
		code, stdout, stderr := execute(t, tc.args...)
		if code != 2 || stdout != "" || !strings.HasPrefix(stderr, tc.want) {
			t.Errorf("magibake %s: exit %d, stdout %.40q, stderr %q; want 2 and %q", strings.Join(tc.args, " "), code, stdout, stderr, tc.want)
		}
	}
	if code, stdout, _ := execute(t, "completion"); code != 0 || !strings.Contains(stdout, "bash") {
		t.Errorf("completion alone: exit %d, want its help", code)
	}
}
