package ext4

import (
	"bytes"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"math/rand"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/magibake/magibake/internal/testkit"
)

// node is what the test expects at one path after the operations.
type node struct {
	mode     fs.FileMode
	uid, gid uint32
	data     []byte
	target   string
}

// model mirrors the filesystem contents the test expects.
type model map[string]node

var testTime = time.Date(2025, 5, 13, 10, 20, 30, 123456789, time.UTC)

// mkfs builds an ext4 image of sizeMB from tree with extra mkfs options and
// indexes its directories (e2fsck -D) the way a long-lived root fs has them.
func mkfs(t testing.TB, tree string, sizeMB int, opts ...string) string {
	t.Helper()
	testkit.RequireTools(t, "mkfs.ext4", "e2fsck", "debugfs")
	img := filepath.Join(t.TempDir(), "root.img")
	args := append([]string{"-q", "-F", "-L", "rootfs", "-E", "root_owner=0:0", "-d", tree}, opts...)
	args = append(args, img, fmt.Sprintf("%dM", sizeMB))
	testkit.Run(t, "mkfs.ext4", args...)
	testkit.IndexExt4(t, img)
	return img
}

func fsck(t testing.TB, img string) {
	t.Helper()
	out, err := exec.Command("e2fsck", "-fn", img).CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	extra := []string{}
	for _, l := range lines {
		if strings.HasPrefix(l, "Pass ") || strings.HasPrefix(l, "e2fsck ") || strings.HasPrefix(l, "rootfs: ") {
			continue
		}
		extra = append(extra, l)
	}
	if err != nil || len(extra) > 0 {
		t.Fatalf("e2fsck -fn %s: %v\n%s", img, err, out)
	}
}

// makeTree writes a realistic small root tree and returns its model.
func makeTree(t testing.TB, etcFiles int) (string, model) {
	t.Helper()
	dir := t.TempDir()
	m := model{}
	rng := rand.New(rand.NewSource(1))
	add := func(p string, data []byte, mode fs.FileMode) {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, data, mode); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(full, mode); err != nil {
			t.Fatal(err)
		}
		m[p] = node{mode: mode, data: data}
	}
	link := func(p, target string) {
		full := filepath.Join(dir, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
		m[p] = node{mode: fs.ModeSymlink | 0o777, target: target}
	}
	add("/etc/hostname", []byte("raspberrypi\n"), 0o644)
	add("/etc/hosts", []byte("127.0.0.1\tlocalhost\n127.0.1.1\traspberrypi\n"), 0o644)
	add("/etc/shadow", []byte("root:*:19000:0:99999:7:::\n"), 0o640)
	for i := 0; i < etcFiles; i++ {
		data := make([]byte, rng.Intn(3000))
		rng.Read(data)
		add(fmt.Sprintf("/etc/conf-%04d-%s.conf", i, strings.Repeat("x", i%40)), data, 0o644)
	}
	for i := 0; i < 60; i++ {
		data := make([]byte, rng.Intn(200000))
		rng.Read(data)
		add(fmt.Sprintf("/usr/bin/tool%d", i), data, 0o755)
	}
	link("/bin", "usr/bin")
	link("/etc/localtime", "/usr/share/zoneinfo/Etc/UTC")
	link("/etc/long-link", "/"+strings.Repeat("very-long-directory-name/", 5)+"target")
	add("/usr/share/zoneinfo/Etc/UTC", []byte("TZif2\n"), 0o644)
	add("/etc/systemd/system/multi-user.target.wants/.keep", nil, 0o644)
	for p := range m {
		for d := filepath.Dir(p); d != "/"; d = filepath.Dir(d) {
			if _, ok := m[d]; !ok {
				m[d] = node{mode: fs.ModeDir | 0o755}
			}
		}
	}
	return dir, m
}

// checkModel dumps the whole filesystem with debugfs and compares it with m.
func checkModel(t testing.TB, img string, m model) {
	t.Helper()
	out := filepath.Join(t.TempDir(), "dump")
	if err := os.Mkdir(out, 0o755); err != nil {
		t.Fatal(err)
	}
	testkit.Run(t, "debugfs", "-R", "rdump / "+out, img)
	got := model{}
	root := filepath.Join(out, "root")
	if _, err := os.Lstat(root); err != nil {
		root = out
	}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, root)
		if rel == "" || rel == "/lost+found" {
			if rel != "" {
				return filepath.SkipDir
			}
			return nil
		}
		fi, err := os.Lstat(p)
		if err != nil {
			return err
		}
		n := node{mode: fi.Mode() & (fs.ModeType | fs.ModePerm | fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky)}
		if st, ok := sysOwner(fi); ok {
			n.uid, n.gid = st[0], st[1]
		}
		switch {
		case fi.Mode()&fs.ModeSymlink != 0:
			n.target, err = os.Readlink(p)
		case fi.Mode().IsRegular():
			n.data, err = os.ReadFile(p)
		}
		got[rel] = n
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var diffs []string
	for p, want := range m {
		g, ok := got[p]
		if special := fs.ModeSetuid | fs.ModeSetgid | fs.ModeSticky; want.mode&special != 0 {
			// rdump's chown after chmod drops setuid/setgid: ask debugfs directly.
			stat := testkit.Run(t, "debugfs", "-R", "stat "+p, img)
			if wantMode := fmt.Sprintf("Mode:  %05o", unixPerm(want.mode)); !strings.Contains(stat, wantMode) {
				diffs = append(diffs, fmt.Sprintf("%s: debugfs stat lacks %q:\n%s", p, wantMode, stat))
			}
			g.mode |= want.mode & special
		}
		switch {
		case !ok:
			diffs = append(diffs, "missing "+p)
		case g.mode != want.mode || g.uid != want.uid || g.gid != want.gid || g.target != want.target:
			diffs = append(diffs, fmt.Sprintf("%s: got %v %d:%d ->%q, want %v %d:%d ->%q", p, g.mode, g.uid, g.gid, g.target, want.mode, want.uid, want.gid, want.target))
		case !bytes.Equal(g.data, want.data):
			diffs = append(diffs, fmt.Sprintf("%s: content differs (%d bytes, want %d)", p, len(g.data), len(want.data)))
		}
	}
	for p := range got {
		if _, ok := m[p]; !ok {
			diffs = append(diffs, "unexpected "+p)
		}
	}
	sort.Strings(diffs)
	if len(diffs) > 0 {
		if len(diffs) > 20 {
			diffs = append(diffs[:20], fmt.Sprintf("... and %d more", len(diffs)-20))
		}
		t.Fatalf("filesystem differs from the model:\n%s", strings.Join(diffs, "\n"))
	}
}

func openImg(t testing.TB, img string) (*FS, *os.File) {
	t.Helper()
	fh, err := os.OpenFile(img, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	st, err := fh.Stat()
	if err != nil {
		t.Fatal(err)
	}
	f, err := Open(fh, st.Size())
	if err != nil {
		fh.Close()
		t.Fatalf("Open: %v", err)
	}
	return f, fh
}

// ops applies operations to both the filesystem and the model.
type ops struct {
	t testing.TB
	f *FS
	m model
}

func (o ops) write(p string, data []byte, mode fs.FileMode, uid, gid uint32) {
	o.t.Helper()
	if err := o.f.WriteFile(p, data, mode, uid, gid, testTime); err != nil {
		o.t.Fatalf("WriteFile %s: %v", p, err)
	}
	o.m[p] = node{mode: mode, uid: uid, gid: gid, data: data}
}

func (o ops) mkdirAll(p string, mode fs.FileMode, uid, gid uint32) {
	o.t.Helper()
	if err := o.f.MkdirAll(p, mode, uid, gid, testTime); err != nil {
		o.t.Fatalf("MkdirAll %s: %v", p, err)
	}
	for d := p; d != "/"; d = filepath.Dir(d) {
		if _, ok := o.m[d]; !ok {
			o.m[d] = node{mode: fs.ModeDir | mode, uid: uid, gid: gid}
		}
	}
}

func (o ops) symlink(target, p string) {
	o.t.Helper()
	if err := o.f.Symlink(target, p, 0, 0, testTime); err != nil {
		o.t.Fatalf("Symlink %s: %v", p, err)
	}
	o.m[p] = node{mode: fs.ModeSymlink | 0o777, target: target}
}

func (o ops) remove(p string) {
	o.t.Helper()
	if err := o.f.Remove(p); err != nil {
		o.t.Fatalf("Remove %s: %v", p, err)
	}
	delete(o.m, p)
}

func payload(seed int64, n int) []byte {
	b := make([]byte, n)
	rand.New(rand.NewSource(seed)).Read(b)
	return b
}

var fsVariants = []struct {
	name string
	opts []string
}{
	{"pios-32bit-desc", []string{"-O", "^64bit,^huge_file"}},
	{"default-64bit", nil},
	{"no-csum-uninit-bg", []string{"-O", "^metadata_csum,uninit_bg,^64bit"}},
	{"no-csum-no-uninit", []string{"-O", "^metadata_csum,^uninit_bg"}},
	{"1k-blocks", []string{"-b", "1024", "-O", "^64bit,^huge_file"}},
	{"csum-seed-orphan-file", []string{"-O", "^64bit,metadata_csum_seed,orphan_file"}},
	// Few inodes per group: new inodes spill into INODE_UNINIT groups.
	{"inode-uninit-groups", []string{"-b", "1024", "-N", "2560", "-O", "^64bit,^huge_file"}},
}

func TestOverlayOperations(t *testing.T) {
	for _, v := range fsVariants {
		t.Run(v.name, func(t *testing.T) {
			t.Parallel()
			tree, m := makeTree(t, 350)
			img := mkfs(t, tree, 160, v.opts...)
			f, fh := openImg(t, img)
			o := ops{t, f, m}

			o.write("/etc/hostname", []byte("caspar\n"), 0o644, 0, 0)                           // shorter
			o.write("/etc/hosts", bytes.Repeat([]byte("10.3.50.1 caspar\n"), 900), 0o644, 0, 0) // longer, multi-block
			o.write("/usr/bin/tool3", []byte("#!/bin/sh\n"), 0o755, 0, 0)                       // large -> tiny
			o.write("/etc/empty", nil, 0o600, 0, 0)
			for i := 0; i < 500; i++ {
				o.write(fmt.Sprintf("/etc/magibake-new-%03d-%s", i, strings.Repeat("n", i%50)), payload(int64(i), i*7), 0o640, 1000, 1000)
			}
			o.mkdirAll("/etc/NetworkManager/system-connections", 0o755, 0, 0)
			o.write("/etc/NetworkManager/system-connections/wlan0.nmconnection", []byte("[connection]\n"), 0o600, 0, 0)
			o.mkdirAll("/home/pi/.ssh/a/b/c/d/e/f/g", 0o700, 1000, 1000)
			o.write("/home/pi/.ssh/authorized_keys", []byte("ssh-ed25519 AAAA test\n"), 0o600, 1000, 1000)
			o.mkdirAll("/usr/local/bin", 0o755, 0, 0)
			o.write("/usr/local/bin/setuid-tool", []byte("x"), 0o755|fs.ModeSetuid, 0, 0)
			o.symlink("/etc/systemd/system/magibake-route.service", "/etc/systemd/system/multi-user.target.wants/magibake-route.service")
			o.symlink("/"+strings.Repeat("another-long-component/", 4), "/etc/slow-link")
			o.symlink("../usr/share/zoneinfo/Etc/UTC", "/etc/localtime")   // replace a symlink
			o.write("/etc/long-link", []byte("now a file\n"), 0o644, 0, 0) // symlink replaced by file
			// Through a symlinked directory: /bin -> usr/bin.
			if err := f.WriteFile("/bin/via-link", []byte("hi\n"), 0o755, 0, 0, testTime); err != nil {
				t.Fatal(err)
			}
			m["/usr/bin/via-link"] = node{mode: 0o755, data: []byte("hi\n")}
			for i := 0; i < 350; i += 3 {
				o.remove(fmt.Sprintf("/etc/conf-%04d-%s.conf", i, strings.Repeat("x", i%40)))
			}
			for i := 0; i < 60; i += 2 {
				o.remove(fmt.Sprintf("/usr/bin/tool%d", i))
			}
			o.remove("/etc/slow-link")
			// Fragmented free space: the holes left above, then a file larger than any of them.
			o.mkdirAll("/var/lib", 0o755, 0, 0)
			o.write("/var/lib/big.bin", payload(99, 64<<20), 0o644, 0, 0)

			if err := f.Close(); err != nil {
				t.Fatal(err)
			}
			fh.Close()
			fsck(t, img)
			checkModel(t, img, m)
		})
	}
}

func TestErrors(t *testing.T) {
	tree, _ := makeTree(t, 10)
	img := mkfs(t, tree, 32, "-O", "^64bit,^huge_file")
	f, fh := openImg(t, img)
	defer fh.Close()
	if err := f.WriteFile("/missing/dir/file", []byte("x"), 0o644, 0, 0, testTime); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("write into missing dir: %v, want ErrNotExist", err)
	}
	if err := f.Remove("/etc/nothing"); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("remove missing: %v, want ErrNotExist", err)
	}
	if err := f.WriteFile("/etc", []byte("x"), 0o644, 0, 0, testTime); err == nil {
		t.Error("writing over a directory succeeded")
	}
	if err := f.WriteFile("/etc/hostname/x", []byte("x"), 0o644, 0, 0, testTime); err == nil {
		t.Error("writing below a file succeeded")
	}
	err := f.WriteFile("/huge", make([]byte, 40<<20), 0o644, 0, 0, testTime)
	if !errors.Is(err, ErrNoSpace) || !strings.Contains(err.Error(), "need") {
		t.Errorf("overfull write: %v, want ErrNoSpace saying what is needed", err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	fsck(t, img)
}

func TestRefusesUnsupported(t *testing.T) {
	tree, _ := makeTree(t, 5)
	cases := []struct {
		name string
		opts []string
		want string
	}{
		{"inline_data", []string{"-O", "inline_data"}, "inline_data"},
		{"bigalloc", []string{"-O", "bigalloc", "-C", "16384"}, "bigalloc"},
		{"quota", []string{"-O", "quota"}, "quota"},
		{"no extents", []string{"-t", "ext3"}, "extent"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			img := mkfs(t, tree, 64, c.opts...)
			fh, err := os.Open(img)
			if err != nil {
				t.Fatal(err)
			}
			defer fh.Close()
			st, _ := fh.Stat()
			_, err = Open(readOnly{fh}, st.Size())
			if !errors.Is(err, ErrUnsupported) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Open: %v, want ErrUnsupported mentioning %q", err, c.want)
			}
		})
	}
}

type readOnly struct{ *os.File }

func (readOnly) WriteAt([]byte, int64) (int, error) { return 0, errors.New("read-only") }

func TestReadBack(t *testing.T) {
	tree, m := makeTree(t, 50)
	img := mkfs(t, tree, 64, "-O", "^64bit,^huge_file")
	f, fh := openImg(t, img)
	defer fh.Close()
	for p, n := range m {
		st, err := f.Lstat(p)
		if err != nil {
			t.Fatalf("Lstat %s: %v", p, err)
		}
		if st.Mode != n.mode || st.Target != n.target {
			t.Errorf("%s: mode %v target %q, want %v %q", p, st.Mode, st.Target, n.mode, n.target)
		}
		if n.mode.IsRegular() {
			data, err := f.ReadFile(p)
			if err != nil || sha256.Sum256(data) != sha256.Sum256(n.data) {
				t.Errorf("ReadFile %s: %v (content equal: %v)", p, err, bytes.Equal(data, n.data))
			}
		}
	}
	if data, err := f.ReadFile("/bin/tool5"); err != nil || !bytes.Equal(data, m["/usr/bin/tool5"].data) {
		t.Errorf("ReadFile through /bin symlink: %v", err)
	}
}
