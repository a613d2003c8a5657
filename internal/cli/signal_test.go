package cli

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/testkit"
)

// TestInterruptLeavesNothing builds the magibake binary, starts
// `magibake build` on the fixture, and sends SIGINT or SIGTERM once a temp
// file shows that it is decompressing the base (into the cache, or with
// --no-cache beside the output) or writing the output (of one card, or of
// the second of two). It must exit 130, print no line that claims a card,
// and leave the output directory and the cache empty.
func TestInterruptLeavesNothing(t *testing.T) {
	img, imgXZ := fixture.Image(t, "bookworm")
	bin := buildBinary(t)
	env := append(os.Environ(), demoEnv...)
	for _, phase := range []struct {
		name, base, temp string // temp: glob of the file that marks the phase
		inCache          bool   // the temp file is in the cache, not beside the output
		args             []string
	}{
		{"decompressing the base", imgXZ, ".magibake-base-*.img", true, nil},
		{"decompressing the base with --no-cache", imgXZ, ".magibake-base-*.img", false, []string{"--no-cache"}},
		{"writing the output", img, ".caspar.img.magibake-*.tmp", false, nil},
		// caspar's card is made and staged by then: its line must wait
		// for the commit, which never comes.
		{"writing the second card", img, ".balthasar.img.magibake-*.tmp", false, []string{"balthasar"}},
	} {
		for _, sig := range []syscall.Signal{syscall.SIGINT, syscall.SIGTERM} {
			t.Run(phase.name+"/"+sig.String(), func(t *testing.T) {
				before := testkit.SHA256File(t, phase.base)
				// The phase can be over before the poll sees its temp file;
				// then the build succeeds, and we try again.
				for attempt := 1; ; attempt++ {
					out, cache := t.TempDir(), t.TempDir()
					watch := out
					if phase.inCache {
						watch = filepath.Join(cache, "magibake", "decompressed")
					}
					// A fresh cache each time, so the base is decompressed.
					env := append(env, "XDG_CACHE_HOME="+cache)
					caught, code, stderr := interrupt(t, bin, env, phase.base, out, watch, phase.temp, sig, phase.args...)
					if !caught {
						if attempt == 10 {
							t.Fatalf("in 10 attempts the build never showed %s before finishing", phase.temp)
						}
						continue
					}
					if code != relCodeSignal || !strings.Contains(stderr, "magibake: interrupted; no output was written") {
						t.Errorf("exit %d, want %d; stderr %q", code, relCodeSignal, stderr)
					}
					// Its last line says nothing was written: no line before
					// it may name a card as made.
					if strings.Contains(stderr, " operations -> ") {
						t.Errorf("an interrupted build printed a card line: %q", stderr)
					}
					if left, _ := os.ReadDir(out); len(left) > 0 {
						t.Errorf("left in the output directory: %v", relNames(left))
					}
					// A remembered sha256 of the base (<id>.sha256) is a
					// complete record, written before any decompression;
					// nothing else may be left.
					var left []os.DirEntry
					all, _ := os.ReadDir(filepath.Join(cache, "magibake", "decompressed"))
					for _, e := range all {
						if !strings.HasSuffix(e.Name(), ".sha256") {
							left = append(left, e)
						}
					}
					if len(left) > 0 {
						t.Errorf("left in the decompressed-base cache: %v", relNames(left))
					}
					if testkit.SHA256File(t, phase.base) != before {
						t.Error("the base changed")
					}
					t.Logf("signal %v while %s: exit %d (attempt %d)", sig, phase.name, code, attempt)
					return
				}
			})
		}
	}
}

// TestKilledBuildLeftovers kills `magibake build` with SIGKILL (which no
// program can catch) while it decompresses the base beside the output or
// writes the output: its temp files stay behind. The next build into the
// same directory must remove them, say so, and succeed; a temp file of a
// build still running (locked) must survive it.
func TestKilledBuildLeftovers(t *testing.T) {
	img, imgXZ := fixture.Image(t, "bookworm")
	bin := buildBinary(t)
	env := append(os.Environ(), demoEnv...)
	for _, phase := range []struct {
		name, base, temp string
		args             []string
	}{
		{"decompressing the base", imgXZ, ".magibake-base-*.img", []string{"--no-cache"}},
		{"writing the output", img, ".caspar.img.magibake-*.tmp", nil},
	} {
		t.Run(phase.name, func(t *testing.T) {
			for attempt := 1; ; attempt++ {
				out := t.TempDir()
				env := append(env, "XDG_CACHE_HOME="+t.TempDir())
				caught, _, _ := interrupt(t, bin, env, phase.base, out, out, phase.temp, syscall.SIGKILL, phase.args...)
				if !caught {
					if attempt == 10 {
						t.Fatalf("in 10 attempts the build never showed %s before finishing", phase.temp)
					}
					continue
				}
				left, _ := filepath.Glob(filepath.Join(out, phase.temp))
				if len(left) != 1 {
					t.Fatalf("after kill -9: %v match %s, want the one temp file the build left", left, phase.temp)
				}
				// A build that is running right now has its temp file
				// locked: the next build must leave it alone.
				live, err := os.CreateTemp(out, ".melchior.img.magibake-*.tmp")
				if err != nil {
					t.Fatal(err)
				}
				defer live.Close()
				if err := syscall.Flock(int(live.Fd()), syscall.LOCK_EX); err != nil {
					t.Fatal(err)
				}
				cmd := exec.Command(bin, append([]string{"build", "caspar", "--base", phase.base, "--out-dir", out}, phase.args...)...)
				cmd.Env = env
				msg, err := cmd.CombinedOutput()
				if err != nil {
					t.Fatalf("the next build: %v\n%s", err, msg)
				}
				want := "removed " + left[0] + " ("
				if !strings.Contains(string(msg), want) || !strings.Contains(string(msg), "left by a build that was killed") {
					t.Errorf("the next build said %q, want it to report %s...", msg, want)
				}
				entries, _ := os.ReadDir(out)
				if names := relNames(entries); fmt.Sprint(names) != fmt.Sprint([]string{filepath.Base(live.Name()), "caspar.img"}) {
					t.Errorf("after the next build the directory holds %v, want the live temp file and caspar.img", names)
				}
				t.Logf("attempt %d: %s", attempt, strings.TrimSpace(string(msg)))
				return
			}
		})
	}
}

// demoEnv is what the embedded profiles need, as `make demo` sets it.
var demoEnv = []string{
	"MAGIBAKE_WIFI_SSID=demo-wifi", "MAGIBAKE_WIFI_PASSPHRASE=demo-passphrase", "MAGIBAKE_WIFI_COUNTRY=GB",
	"MAGIBAKE_USER=pi", "MAGIBAKE_PASSWORD_HASH=$6$demosalt$0123456789abcdef", "SOURCE_DATE_EPOCH=1767225600",
}

// buildBinary builds the magibake binary of this checkout into a temp dir.
func buildBinary(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "magibake")
	build := exec.Command("go", "build", "-o", bin, "./cmd/magibake")
	build.Dir = fixture.RepoRoot(t)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// interrupt runs one build into out and sends sig when a file matching temp
// appears in watch. caught is false when the build ended first.
func interrupt(t *testing.T, bin string, env []string, base, out, watch, temp string, sig syscall.Signal, args ...string) (caught bool, code int, stderr string) {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"build", "caspar", "--base", base, "--out-dir", out}, args...)...)
	cmd.Env = env
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var err error
poll:
	for {
		select {
		case err = <-done:
			break poll
		default:
		}
		if m, _ := filepath.Glob(filepath.Join(watch, temp)); len(m) > 0 {
			if serr := cmd.Process.Signal(sig); serr != nil {
				t.Fatalf("signal: %v", serr)
			}
			caught = true
			err = <-done
			break
		}
		time.Sleep(time.Millisecond)
	}
	var ee *exec.ExitError
	switch {
	case err == nil:
		code = 0
	case errors.As(err, &ee):
		code = ee.ExitCode()
	default:
		t.Fatalf("wait: %v", err)
	}
	if !caught {
		if code != 0 {
			t.Fatalf("build failed before the signal: exit %d\n%s", code, errb.String())
		}
		os.Remove(filepath.Join(out, "caspar.img"))
	}
	return caught, code, errb.String()
}
