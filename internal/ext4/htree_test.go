package ext4

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/testkit"
)

// TestHtreeGrowth fills an indexed directory far enough that leaves split,
// the root overflows into a second level and interior nodes split too.
func TestHtreeGrowth(t *testing.T) {
	cases := []struct {
		name      string
		existing  int
		added     int
		opts      []string
		wantLevel int
		unsigned  bool
	}{
		{"4k-2000-entries+500", 2000, 500, []string{"-O", "^64bit,^huge_file"}, 0, false},
		{"1k-root-overflow", 1500, 2500, []string{"-b", "1024", "-O", "^64bit,^huge_file"}, 1, false},
		{"1k-two-levels-already", 4000, 2000, []string{"-b", "1024", "-O", "^64bit,^huge_file"}, 1, false},
		{"1k-no-csum", 1500, 2500, []string{"-b", "1024", "-O", "^metadata_csum"}, 1, false},
		{"unsigned-hash-non-ascii", 600, 900, []string{"-b", "1024", "-O", "^64bit,^huge_file"}, 0, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			m := model{}
			if err := os.MkdirAll(filepath.Join(dir, "etc"), 0o755); err != nil {
				t.Fatal(err)
			}
			m["/etc"] = node{mode: fs.ModeDir | 0o755}
			name := func(i int, kind string) string {
				if c.unsigned {
					// Bytes >= 0x80 hash differently with unsigned chars.
					return fmt.Sprintf("/etc/%s-%05d-caf\xc3\xa9-\xe2\x82\xac-%s", kind, i, strings.Repeat("\xff", 1+i%9))
				}
				return fmt.Sprintf("/etc/%s-%05d-%s", kind, i, strings.Repeat("abcdefgh", 1+i%7))
			}
			for i := 0; i < c.existing; i++ {
				p := name(i, "old")
				data := []byte(p + "\n")
				if err := os.WriteFile(filepath.Join(dir, p), data, 0o644); err != nil {
					t.Fatal(err)
				}
				m[p] = node{mode: 0o644, data: data}
			}
			img := mkfs(t, dir, 96, c.opts...)
			if c.unsigned {
				// As mkfs.ext4 on an arm64 host would have set it; then
				// rebuild the index with unsigned hashes.
				testkit.Run(t, "debugfs", "-w", "-R", "ssv flags 2", img)
				testkit.IndexExt4(t, img)
			}
			before := testkit.HTreeLevels(t, img, "/etc")
			if before < 0 {
				t.Fatalf("fixture /etc is not indexed")
			}
			f, fh := openImg(t, img)
			o := ops{t, f, m}
			for i := 0; i < c.added; i++ {
				p := name(i, "new")
				o.write(p, []byte(p+"\n"), 0o600, 0, 0)
				if i%5 == 0 && i < c.existing {
					o.remove(name(i, "old"))
				}
			}
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			fh.Close()
			fsck(t, img)
			after := testkit.HTreeLevels(t, img, "/etc")
			t.Logf("htree levels %d -> %d; %s", before, after, strings.SplitN(testkit.Run(t, "debugfs", "-R", "htree /etc", img), "\n", 12)[9:11])
			if after < c.wantLevel || after < before {
				t.Errorf("htree levels %d -> %d, want at least %d (still indexed)", before, after, c.wantLevel)
			}
			checkModel(t, img, m)
		})
	}
}

// TestNearlyFull writes until the filesystem is full: every failure must be
// ErrNoSpace, leave the filesystem consistent and say what is missing.
func TestNearlyFull(t *testing.T) {
	for _, v := range []struct {
		name string
		opts []string
	}{
		{"pios-4k", []string{"-O", "^64bit,^huge_file"}},
		{"1k", []string{"-b", "1024", "-O", "^64bit,^huge_file"}},
	} {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			tree, m := makeTree(t, 100)
			img := mkfs(t, tree, 40, v.opts...)
			f, fh := openImg(t, img)
			o := ops{t, f, m}
			o.mkdirAll("/fill", 0o755, 0, 0)
			var full error
			for i := 0; full == nil; i++ {
				p := fmt.Sprintf("/fill/chunk-%04d", i)
				data := payload(int64(i), 700_000+i*997)
				if err := f.WriteFile(p, data, 0o644, 0, 0, testTime); err != nil {
					full = err
					break
				}
				m[p] = node{mode: 0o644, data: data}
			}
			if !strings.Contains(full.Error(), "KiB more") {
				t.Errorf("full error %q does not say how much is needed", full)
			}
			// Small files still fit in what is left, then replacing a big
			// file by a small one gives space back.
			o.write("/etc/hostname", []byte("melchior\n"), 0o644, 0, 0)
			o.write("/fill/chunk-0000", []byte("small now\n"), 0o644, 0, 0)
			o.write("/fill/after-free", payload(7, 600_000), 0o644, 0, 0)
			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			fh.Close()
			fsck(t, img)
			checkModel(t, img, m)
		})
	}
}
