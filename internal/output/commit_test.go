package output

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// TestCommitAll makes each rename of a three-card commit fail in turn, and
// cancels the context before each card, with and without earlier files at
// the outputs' paths: the directory must then hold exactly what it held
// before (no new card, every earlier file back, no temp file), and the
// error must say which cards were taken back. With nothing failing, all
// three cards are in place and nothing else is left.
func TestCommitAll(t *testing.T) {
	nodes := []string{"caspar", "balthasar", "melchior"}
	for _, earlier := range []bool{false, true} {
		// Steps: per card, one to keep the earlier file (if any), one to
		// put the staged card in place.
		renames := len(nodes)
		if earlier {
			renames *= 2
		}
		type tc struct {
			name            string
			failRename      int  // 1-based; 0: none
			cancelBeforeCar int  // 1-based; 0: never
			rename          bool // no hard links: earlier files are renamed aside
		}
		var cases []tc
		for _, noLinks := range []bool{false, true} {
			if noLinks && !earlier {
				continue
			}
			how := ""
			if noLinks {
				how = " (no hard links)"
			}
			cases = append(cases, tc{"none fails" + how, 0, 0, noLinks})
			for i := 1; i <= renames; i++ {
				cases = append(cases, tc{fmt.Sprintf("step %d of %d fails%s", i, renames, how), i, 0, noLinks})
			}
			for i := 2; i <= len(nodes); i++ {
				cases = append(cases, tc{fmt.Sprintf("cancelled before card %d%s", i, how), 0, i, noLinks})
			}
		}
		for _, c := range cases {
			t.Run(fmt.Sprintf("earlier files %v/%s", earlier, c.name), func(t *testing.T) {
				dir := t.TempDir()
				before := map[string]string{}
				if earlier {
					for _, n := range nodes {
						p := filepath.Join(dir, n+".img")
						before[n+".img"] = "earlier " + n
						if err := os.WriteFile(p, []byte(before[n+".img"]), 0o644); err != nil {
							t.Fatal(err)
						}
					}
				}
				ctx, cancel := context.WithCancel(context.Background())
				defer cancel()
				var staged []*Staged
				for _, n := range nodes {
					s, err := Stage(ctx, filepath.Join(dir, n+".img"), bytes.NewReader([]byte("new "+n)), int64(len("new "+n)), nil, Options{})
					if err != nil {
						t.Fatal(err)
					}
					staged = append(staged, s)
				}
				count, cards := 0, 0
				failed := "" // the keep step that failed: its fallback rename fails too
				// Counted: keeping an earlier file (a link, or a rename
				// where there are no links) and putting a card in place;
				// not: taking cards back.
				counted := func(op string, real func(from, to string) error) func(from, to string) error {
					return func(from, to string) error {
						if op == "rename" && failed == from+to {
							return &os.LinkError{Op: op, Old: from, New: to, Err: errors.New("injected failure")}
						}
						if strings.HasSuffix(from, ".tmp") {
							cards++
							if cards == c.cancelBeforeCar-1 {
								defer cancel() // after this card is in place
							}
						}
						if strings.HasSuffix(from, ".tmp") || strings.HasSuffix(to, ".old") {
							count++
							if count == c.failRename {
								failed = from + to
								return &os.LinkError{Op: op, Old: from, New: to, Err: errors.New("injected failure")}
							}
						}
						return real(from, to)
					}
				}
				link := counted("link", os.Link)
				if c.rename {
					link = func(from, to string) error { return errors.New("no hard links here") }
				}
				err := commitAll(ctx, staged, fsOps{link, counted("rename", os.Rename), os.Remove})
				got := readDir(t, dir)
				if c.failRename == 0 && c.cancelBeforeCar == 0 {
					if err != nil {
						t.Fatal(err)
					}
					want := map[string]string{}
					for _, n := range nodes {
						want[n+".img"] = "new " + n
					}
					if fmt.Sprint(got) != fmt.Sprint(want) {
						t.Errorf("directory holds %v, want %v", got, want)
					}
					return
				}
				if err == nil {
					t.Fatal("commit succeeded")
				}
				if c.cancelBeforeCar > 0 && !errors.Is(err, context.Canceled) {
					t.Errorf("error %v, want context.Canceled", err)
				}
				if fmt.Sprint(got) != fmt.Sprint(before) {
					t.Errorf("after %q the directory holds %v, want what it held before: %v", err, got, before)
				}
				if errors.Is(err, ErrNotTakenBack) {
					t.Errorf("error %q says cards were left in place", err)
				}
				// Every card renamed before the failure is named as taken back.
				if cards > 1 || (cards == 1 && c.failRename == 0) {
					if !strings.Contains(err.Error(), "no card is left in place, took back ") {
						t.Errorf("error %q does not say what was taken back", err)
					}
				}
				t.Logf("%v", err)
			})
		}
	}
}

// TestCommitAllLeftInPlace: when a card cannot be taken back, the error
// says so (ErrNotTakenBack) and names it.
func TestCommitAllLeftInPlace(t *testing.T) {
	dir := t.TempDir()
	var staged []*Staged
	for _, n := range []string{"a", "b"} {
		s, err := Stage(context.Background(), filepath.Join(dir, n+".img"), bytes.NewReader([]byte(n)), 1, nil, Options{})
		if err != nil {
			t.Fatal(err)
		}
		staged = append(staged, s)
	}
	n := 0
	err := commitAll(context.Background(), staged, fsOps{os.Link, func(from, to string) error {
		if n++; n == 2 {
			return errors.New("injected failure")
		}
		return os.Rename(from, to)
	}, func(string) error { return errors.New("injected failure to remove") }})
	if !errors.Is(err, ErrNotTakenBack) || !strings.Contains(err.Error(), filepath.Join(dir, "a.img")+" (could not take it back: injected failure to remove)") {
		t.Errorf("error %v: want it to say a.img was left in place", err)
	}
}

// readDir maps every file in dir to its content.
func readDir(t *testing.T, dir string) map[string]string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]string{}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	sort.Strings(names)
	for _, n := range names {
		b, err := os.ReadFile(filepath.Join(dir, n))
		if err != nil {
			t.Fatal(err)
		}
		m[n] = string(b)
	}
	return m
}
