package fetch

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// The CI workflow that bakes the cards (.github/workflows/images.yml) pins
// the recommended base, bakes every node of profiles/ and gives the build
// every variable the profiles read. Nothing but this test ties those to the
// code, so a new node, secret or release shows up here. (actionlint, in make
// lint, checks the workflow's syntax and scripts.)

type workflow struct {
	Env  map[string]string `yaml:"env"`
	Jobs map[string]struct {
		Strategy struct {
			Matrix struct {
				Node []string `yaml:"node"`
			} `yaml:"matrix"`
		} `yaml:"strategy"`
		Steps []struct {
			Name string            `yaml:"name"`
			Env  map[string]string `yaml:"env"`
			Run  string            `yaml:"run"`
		} `yaml:"steps"`
	} `yaml:"jobs"`
}

func readWorkflow(t *testing.T) workflow {
	t.Helper()
	b, err := os.ReadFile("../../.github/workflows/images.yml")
	if err != nil {
		t.Fatal(err)
	}
	var w workflow
	if err := yaml.Unmarshal(b, &w); err != nil {
		t.Fatalf("images.yml: %v", err)
	}
	return w
}

func TestWorkflowPinsRecommendedBase(t *testing.T) {
	w := readWorkflow(t)
	for name, want := range map[string]string{"MAGIBAKE_BASE_URL": RecommendedURL, "MAGIBAKE_BASE_SHA256": RecommendedSHA256} {
		if got := w.Env[name]; !strings.Contains(got, "'"+want+"'") {
			t.Errorf("images.yml env %s = %q, want the default %q", name, got, want)
		}
	}
}

func TestWorkflowBakesEveryNode(t *testing.T) {
	files, err := filepath.Glob("../../profiles/*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var nodes []string
	for _, f := range files {
		if name := strings.TrimSuffix(filepath.Base(f), ".yaml"); name != "cluster" {
			nodes = append(nodes, name)
		}
	}
	bake, ok := readWorkflow(t).Jobs["bake"]
	if !ok {
		t.Fatal("images.yml has no bake job")
	}
	got := append([]string(nil), bake.Strategy.Matrix.Node...)
	sort.Strings(got)
	sort.Strings(nodes)
	if len(nodes) == 0 || !reflect.DeepEqual(got, nodes) {
		t.Errorf("bake matrix %v, profiles/ has nodes %v", got, nodes)
	}
}

// TestWorkflowPassesEverySecret: each step that loads the profiles (fetch,
// build) gets every {env: NAME} the profiles read, from the repository
// secret of the same name.
func TestWorkflowPassesEverySecret(t *testing.T) {
	b, err := os.ReadFile("../../profiles/cluster.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var vars []string
	for _, m := range regexp.MustCompile(`\{env: ([A-Z0-9_]+)`).FindAllStringSubmatch(string(b), -1) {
		vars = append(vars, m[1])
	}
	if len(vars) < 5 {
		t.Fatalf("found only %v in profiles/cluster.yaml", vars)
	}
	steps := 0
	for job, j := range readWorkflow(t).Jobs {
		for _, s := range j.Steps {
			if !strings.Contains(s.Run, "magibake fetch") && !strings.Contains(s.Run, "magibake build") {
				continue
			}
			steps++
			for _, v := range vars {
				if want := "${{ secrets." + v + " }}"; s.Env[v] != want {
					t.Errorf("job %s, step %q: env %s = %q, want %q", job, s.Name, v, s.Env[v], want)
				}
			}
		}
	}
	if steps != 2 {
		t.Errorf("found %d steps running magibake fetch or build, want 2", steps)
	}
}

// TestWorkflowWritesXZDirectly: the bake job has magibake write the .img.xz
// itself (the fast path that copies the base's untouched xz blocks), never
// an .img compressed by xz afterwards, and checks that the manifest it
// uploads marks the Wi-Fi keyfile secret and holds no hash of a secret file.
func TestWorkflowWritesXZDirectly(t *testing.T) {
	bake := readWorkflow(t).Jobs["bake"]
	var build string
	for _, s := range bake.Steps {
		if strings.Contains(s.Run, "magibake build") {
			build = s.Run
		}
		if regexp.MustCompile(`(?m)^\s*xz\s`).MatchString(s.Run) {
			t.Errorf("step %q compresses with xz: %q", s.Name, s.Run)
		}
	}
	for _, want := range []string{
		`build "$NODE" --profiles "$RUNNER_TEMP/profiles" -o "out/$NODE.img.xz"`,
		`select(.secret and .sha256)] | length == 0`,
		`wifi.nmconnection" and .secret)] | length == 1`,
	} {
		if !strings.Contains(build, want) {
			t.Errorf("the build step does not run %q:\n%s", want, build)
		}
	}
}
