package build

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/magibake/magibake/internal/fetch"
	"github.com/magibake/magibake/internal/output"
	"github.com/magibake/magibake/internal/profile"
)

// checkOutput finds what would make writing out fail (an unsupported
// name, a missing or read-only directory, the base itself) before anything
// is decompressed or baked.
func checkOutput(out, base string) error {
	if err := output.Supported(out); err != nil {
		return err
	}
	dir := filepath.Dir(out)
	st, err := os.Stat(dir)
	if err != nil || !st.IsDir() {
		return fmt.Errorf("output %s: directory %s does not exist", out, dir)
	}
	if st, err := os.Stat(out); err == nil && st.IsDir() {
		return fmt.Errorf("output %s: is a directory", out)
	}
	if base != "" {
		a, errA := os.Stat(out)
		b, errB := os.Stat(base)
		same := errA == nil && errB == nil && os.SameFile(a, b)
		if absOut, err := filepath.Abs(out); err == nil {
			if absBase, err := filepath.Abs(base); err == nil && absOut == absBase {
				same = true
			}
		}
		if same && errors.Is(errB, fs.ErrNotExist) {
			// "is the base" of a base that is not there would be no help.
			return fmt.Errorf("base %s: no such file", base)
		}
		if same {
			return fmt.Errorf("output %s: is the base image; the base is never overwritten, choose another output", out)
		}
	}
	// Find a read-only or unwritable directory now, before the base is
	// decompressed into it, with the real test: creating a file.
	probe, err := os.CreateTemp(dir, ".magibake-probe-*")
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return fmt.Errorf("output %s: directory %s is not writable: %w", out, dir, err)
	}
	probe.Close()
	os.Remove(probe.Name())
	return nil
}

// makeOutDir creates --out-dir and the directories above it that are
// missing, as mkdir -p would; undo removes what it created again (each only
// while empty), for a build that fails and so leaves nothing behind.
func makeOutDir(dir string) (undo func(), err error) {
	var created []string
	for d := filepath.Clean(dir); ; d = filepath.Dir(d) {
		st, err := os.Stat(d)
		if err == nil && !st.IsDir() {
			return nil, fmt.Errorf("--out-dir %s: %s is not a directory", dir, d)
		}
		if err == nil {
			break
		}
		if !errors.Is(err, fs.ErrNotExist) {
			var pe *fs.PathError
			if errors.As(err, &pe) {
				err = pe.Err
			}
			return nil, fmt.Errorf("--out-dir %s: %w", dir, err)
		}
		created = append(created, d)
		if filepath.Dir(d) == d {
			break
		}
	}
	undo = func() {
		for _, d := range created {
			os.Remove(d)
		}
	}
	for i := len(created) - 1; i >= 0; i-- {
		if err := os.Mkdir(created[i], 0o755); err != nil {
			undo()
			return nil, fmt.Errorf("--out-dir %s: %w", dir, err)
		}
	}
	return undo, nil
}

func noBase(c *profile.Cluster, embedded bool) error {
	switch {
	case embedded && c.Base.URL == "":
		// The embedded profiles cannot be edited: no cluster.yaml to pin in.
		return errors.New("no --base given: give the Raspberry Pi OS Lite image with --base FILE (`magibake fetch --latest` downloads the current one and prints its path), or pin one in your own profiles (--profiles DIR) as `magibake fetch` prints")
	case c.Base.URL != "" && c.Base.SHA256 == "":
		return fmt.Errorf("no --base given: download %s (sha256 in %s.sha256) and pass it with --base FILE", c.Base.URL, c.Base.URL)
	case c.Base.URL != "":
		return fmt.Errorf("no --base given: download %s (sha256 %s) and pass it with --base FILE", c.Base.URL, c.Base.SHA256)
	}
	return errors.New("no --base given and cluster.yaml pins no base image; " + fetch.PinHint)
}
