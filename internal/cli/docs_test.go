package cli

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/testkit"
)

// docLine is one shell line of the documentation that runs magibake.
type docLine struct {
	file string // relative to the repository, e.g. docs/commands.md
	line int
	text string
}

func (d docLine) String() string { return fmt.Sprintf("%s:%d: %s", d.file, d.line, d.text) }

// magibakeLine matches a shell line that runs magibake: optional sudo and
// VAR=value words, then the binary.
var magibakeLine = regexp.MustCompile(`^(sudo\s+)?([A-Z_]+=\S*\s+)*(bin/magibake|magibake|\./magibake|go run \./cmd/magibake)(\s|$)`)

// statedExit is an exit code the text gives for its line: "# exit 4".
var statedExit = regexp.MustCompile(`#.*\bexit (\d+)\b`)

// docCommands reads the shell lines that run magibake from the fenced code
// blocks of a Markdown file (blocks marked as a data language are data, not
// commands).
func docCommands(t *testing.T, root, rel string) []docLine {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	var out []docLine
	inBlock, shell := false, false
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		l := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(l, "```") {
			if !inBlock {
				lang := strings.TrimPrefix(l, "```")
				shell = lang == "" || lang == "sh" || lang == "shell" || lang == "console" || lang == "bash"
			}
			inBlock = !inBlock
			continue
		}
		if !inBlock || !shell {
			continue
		}
		l = strings.TrimPrefix(l, "$ ")
		if magibakeLine.MatchString(l) {
			out = append(out, docLine{file: rel, line: n, text: l})
		}
	}
	return out
}

// docFiles are the README and every page under docs/, the README first.
func docFiles(t *testing.T, root string) []string {
	t.Helper()
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(pages)
	files := []string{"README.md"}
	for _, p := range pages {
		files = append(files, filepath.Join("docs", filepath.Base(p)))
	}
	return files
}

// TestDocCommands runs every shell line of README.md and docs/*.md that
// runs magibake, in the order written (the README, then the pages by
// name), in a temp directory laid out as a clone is after `make demo`:
// bin/magibake, demo/base.img.xz (the bookworm fixture) with the cards the
// Makefile's demo line bakes from it, and scripts/demo.env, sourced before
// every line. The documentation's base,
// 2026-10-06-raspios-trixie-arm64-lite.img.xz, is that same fixture under
// the documented name; fetch reads its OS list from a server on 127.0.0.1
// ($MAGIBAKE_OS_LIST). Only devices are substituted: /dev/sdX and
// /dev/loop0 become a loop device over a sparse file. A line must exit 0,
// or with the code its comment states ("# exit 4"), except where this
// machine cannot be what the line assumes, and then the outcome is
// checked, not skipped: a loop device is not the removable SD card reader
// /dev/sdX stands for (flash refuses it, exit 3, "is not a removable"), and no
// node answers check or apply (an ssh on PATH that reaches nothing: exit
// 4, the node named unreachable).
func TestDocCommands(t *testing.T) {
	testkit.RequireTools(t, "sh", "losetup", "xz")
	root := fixture.RepoRoot(t)
	var lines []docLine
	for _, f := range docFiles(t, root) {
		lines = append(lines, docCommands(t, root, f)...)
	}
	if len(lines) < 20 {
		t.Fatalf("found %d magibake lines in the documentation, want the README's and docs/'s (20 or more)", len(lines))
	}
	ws := docWorkspace(t, root)
	dev := flashLoop(t, filepath.Join(t.TempDir(), "sd.bin"), 2<<30)
	for _, d := range lines {
		if strings.Contains(d.text, "go run ") {
			t.Errorf("%s: the documentation runs bin/magibake (make build), not go run", d)
			continue
		}
		cmd := strings.NewReplacer("/dev/sdX", dev, "/dev/loop0", dev).Replace(d.text)
		cmd = strings.TrimPrefix(cmd, "sudo ") // the tests run as root
		want, wantOut := 0, ""
		if m := statedExit.FindStringSubmatch(d.text); m != nil {
			want, _ = strconv.Atoi(m[1])
		}
		fields := strings.Fields(cmd)
		switch {
		case strings.Contains(d.text, "/dev/sdX"):
			want, wantOut = 3, "is not a removable"
		case len(fields) > 1 && (fields[1] == "check" || fields[1] == "apply"):
			want, wantOut = 4, "cannot log in"
		}
		out, code := ws.run(t, cmd)
		if code != want || !strings.Contains(out, wantOut) {
			t.Errorf("%s\nexit %d, want %d%s; output:\n%s", d, code, want, map[bool]string{true: " and " + strconv.Quote(wantOut)}[wantOut != ""], out)
		}
	}
}

// docWorkspaceDir is a clone's layout after make demo, and the environment
// the documentation's lines run in.
type docWorkspaceDir struct {
	dir string
	env []string
}

func (w docWorkspaceDir) run(t *testing.T, line string) (string, int) {
	t.Helper()
	cmd := exec.Command("sh", "-c", ". scripts/demo.env && "+line)
	cmd.Dir = w.dir
	cmd.Env = w.env
	cmd.Stdin = nil
	out, err := cmd.CombinedOutput()
	if err != nil {
		if ee, ok := err.(*exec.ExitError); ok {
			return string(out), ee.ExitCode()
		}
		t.Fatalf("%s: %v", line, err)
	}
	return string(out), 0
}

func docWorkspace(t *testing.T, root string) docWorkspaceDir {
	t.Helper()
	dir := t.TempDir()
	home := filepath.Join(dir, "home")
	fakes := filepath.Join(dir, "fake-bin")
	for _, d := range []string{"bin", "demo/out", "scripts", "home/.ssh", "fake-bin", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Rename(buildBinary(t), filepath.Join(dir, "bin", "magibake")); err != nil {
		t.Fatal(err)
	}
	env, err := os.ReadFile(filepath.Join(root, "scripts", "demo.env"))
	if err != nil {
		t.Fatal(err)
	}
	_, baseXZ := fixture.Image(t, "bookworm")
	base, err := os.ReadFile(baseXZ)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(base)
	hexSum := hex.EncodeToString(sum[:])
	files := map[string]string{
		"scripts/demo.env":                            string(env),
		"demo/id_ed25519.pub":                         "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMqXgRLKG73K+sIxs5oj3E2nhu/4FHxOcrmAd4Wv7ki7 magibake-demo\n",
		"demo/base.img.xz":                            string(base),
		"2026-10-06-raspios-trixie-arm64-lite.img.xz": string(base),
		// No node answers: ssh fails as it does for a host that is not
		// there, and sends nothing anywhere.
		"fake-bin/ssh": "#!/bin/sh\necho \"ssh: connect to host $1 port 22: No route to host\" >&2\nexit 255\n",
	}
	for name, content := range files {
		mode := os.FileMode(0o644)
		if strings.HasPrefix(name, "fake-bin/") {
			mode = 0o755
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	// ~/cluster: the reader's own profiles, the example's with the new
	// worker's node file as docs/apply.md shows it.
	cluster := filepath.Join(home, "cluster")
	if err := os.MkdirAll(cluster, 0o755); err != nil {
		t.Fatal(err)
	}
	yamls, _ := filepath.Glob(filepath.Join(root, "profiles", "*.yaml"))
	for _, f := range yamls {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(cluster, filepath.Base(f)), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(cluster, "artaban.yaml"), []byte(docYAML(t, filepath.Join(root, "docs", "apply.md"), "artaban.yaml")), 0o644); err != nil {
		t.Fatal(err)
	}
	site := imageSite(t, base, map[string]http.HandlerFunc{
		"/list.json": func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, osList("http://"+r.Host, hexSum, hexSum))
		},
		"/img/lite.img.xz":   func(w http.ResponseWriter, r *http.Request) { w.Write(base) },
		"/img/legacy.img.xz": func(w http.ResponseWriter, r *http.Request) { w.Write(base) },
	})
	ws := docWorkspaceDir{dir: dir, env: []string{
		"PATH=" + fakes + ":" + filepath.Join(dir, "bin") + ":" + os.Getenv("PATH"),
		"HOME=" + home,
		"XDG_CACHE_HOME=" + filepath.Join(dir, "cache"),
		"XDG_STATE_HOME=" + filepath.Join(dir, "state"),
		"XDG_CONFIG_HOME=" + filepath.Join(dir, "config"),
		"TMPDIR=" + filepath.Join(dir, "tmp"),
		"MAGIBAKE_OS_LIST=" + site + "/list.json",
		"LANG=C",
	}}
	// make demo's own bake, as the Makefile writes it.
	mk, err := os.ReadFile(filepath.Join(root, "Makefile"))
	if err != nil {
		t.Fatal(err)
	}
	demo := regexp.MustCompile(`(?m)^\t\. scripts/demo\.env && (bin/magibake build .*)$`).FindSubmatch(mk)
	if demo == nil {
		t.Fatal("Makefile: no '. scripts/demo.env && bin/magibake build' line in the demo target")
	}
	line := strings.ReplaceAll(string(demo[1]), "$(DEMO)", "demo")
	if out, code := ws.run(t, line); code != 0 {
		t.Fatalf("make demo's bake (%s): exit %d\n%s", line, code, out)
	}
	return ws
}

// docYAML is the yaml block of a documentation file that starts with the
// comment "# NAME".
func docYAML(t *testing.T, file, name string) string {
	t.Helper()
	b, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "```yaml\n# "+name+"\n")
	block, _, closed := strings.Cut(rest, "```")
	if !ok || !closed {
		t.Fatalf("%s: no yaml block starting with # %s", file, name)
	}
	return block
}

// TestArchitectureTable keeps docs/architecture.md's package table true:
// every package under internal/ has one row, and its "used by" column names
// exactly the packages that import it (go list, tests left out). A row of
// several packages says "several" (each is used by two or more), and test
// helpers say "tests" (no package imports them).
func TestArchitectureTable(t *testing.T) {
	testkit.RequireTools(t, "go")
	root := fixture.RepoRoot(t)
	const mod = "github.com/magibake/magibake/"
	list := exec.Command("go", "list", "-f", `{{.ImportPath}}|{{join .Imports ","}}`, "./...")
	list.Dir = root
	out, err := list.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	usedBy := map[string][]string{} // internal/NAME's importers, short names
	short := func(p string) string { return strings.TrimPrefix(strings.TrimPrefix(p, mod), "internal/") }
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		pkg, imports, _ := strings.Cut(l, "|")
		if strings.HasPrefix(pkg, mod+"internal/") {
			if _, ok := usedBy[short(pkg)]; !ok {
				usedBy[short(pkg)] = nil
			}
		}
		for _, imp := range strings.Split(imports, ",") {
			if strings.HasPrefix(imp, mod+"internal/") {
				usedBy[short(imp)] = append(usedBy[short(imp)], short(pkg))
			}
		}
	}
	doc, err := os.ReadFile(filepath.Join(root, "docs", "architecture.md"))
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile("`([a-z0-9/]+)`")
	rows := map[string]bool{}
	for _, l := range strings.Split(string(doc), "\n") {
		cells := strings.Split(l, "|")
		if len(cells) != 5 || !strings.HasPrefix(strings.TrimSpace(cells[1]), "`") {
			continue
		}
		var pkgs []string
		for _, m := range names.FindAllStringSubmatch(cells[1], -1) {
			pkgs = append(pkgs, m[1])
		}
		var users []string
		for _, m := range names.FindAllStringSubmatch(cells[3], -1) {
			users = append(users, m[1])
		}
		sort.Strings(users)
		col := strings.TrimSpace(cells[3])
		for _, p := range pkgs {
			if rows[p] {
				t.Errorf("docs/architecture.md: %s has two rows", p)
			}
			rows[p] = true
			got, ok := usedBy[p]
			if !ok {
				t.Errorf("docs/architecture.md: %s is not a package under internal/", p)
				continue
			}
			sort.Strings(got)
			got = slicesCompact(got)
			switch col {
			case "several":
				if len(got) < 2 {
					t.Errorf("docs/architecture.md: %s is used by %v, not several", p, got)
				}
			case "tests":
				if len(got) > 0 && !(p == "testkit" && strings.Join(got, " ") == "fixture") {
					t.Errorf("docs/architecture.md: %s is imported by %v, not only by tests", p, got)
				}
			default:
				if strings.Join(got, " ") != strings.Join(users, " ") {
					t.Errorf("docs/architecture.md: %s used by %v, go list says %v", p, users, got)
				}
			}
		}
	}
	for p := range usedBy {
		if !rows[p] {
			t.Errorf("docs/architecture.md: internal/%s has no row in the package table", p)
		}
	}
}

func slicesCompact(s []string) []string {
	var out []string
	for i, v := range s {
		if i == 0 || v != s[i-1] {
			out = append(out, v)
		}
	}
	return out
}
