package deb

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/ulikunitz/xz"
)

// writeDeb writes a .deb holding control, its control.tar compressed as
// comp ("gz", "xz" or "zst"), the way dpkg-deb lays one out.
func writeDeb(t *testing.T, path, control, comp string) {
	t.Helper()
	var tb bytes.Buffer
	tw := tar.NewWriter(&tb)
	if err := tw.WriteHeader(&tar.Header{Name: "./control", Mode: 0o644, Size: int64(len(control))}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte(control))
	tw.Close()
	var cb bytes.Buffer
	switch comp {
	case "gz":
		z := gzip.NewWriter(&cb)
		z.Write(tb.Bytes())
		z.Close()
	case "xz":
		z, err := xz.NewWriter(&cb)
		if err != nil {
			t.Fatal(err)
		}
		z.Write(tb.Bytes())
		z.Close()
	default:
		cb.Write(tb.Bytes())
	}
	var ar bytes.Buffer
	ar.WriteString("!<arch>\n")
	member := func(name string, data []byte) {
		fmt.Fprintf(&ar, "%-16s%-12s%-6s%-6s%-8s%-10d`\n", name, "0", "0", "0", "100644", len(data))
		ar.Write(data)
		if len(data)%2 == 1 {
			ar.WriteByte('\n')
		}
	}
	member("debian-binary", []byte("2.0\n"))
	name := "control.tar." + comp
	if comp == "tar" {
		name = "control.tar"
	}
	member(name, cb.Bytes())
	member("data.tar.xz", []byte("x"))
	if err := os.WriteFile(path, ar.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestReadDirAndNeeded(t *testing.T) {
	dir := t.TempDir()
	debs := map[string]string{
		"isc-dhcp-server_1_arm64.deb": "Package: isc-dhcp-server\nPre-Depends: adduser (>= 3.11)\nDepends: libc6 (>= 2.34),\n libip4tc2 | iptables-legacy, debconf [linux-any]\n",
		"libip4tc2_1_arm64.deb":       "Package: libip4tc2\nDepends: libc6\n",
		"tree_2.2_arm64.deb":          "Package: tree\nDepends: libc6:any (>= 2.34)\n",
		"mta_1_all.deb":               "Package: dma\nProvides: mail-transport-agent\n",
		"mailer_1_all.deb":            "Package: mailer\nDepends: default-mta | mail-transport-agent\n",
		"exim_1_all.deb":              "Package: exim\nProvides: mail-transport-agent\n",
		"either_1_all.deb":            "Package: either\nDepends: tree | libip4tc2\n",
	}
	comp := []string{"xz", "gz", "xz", "tar", "xz", "gz", "tar"}
	i := 0
	for name, control := range debs {
		writeDeb(t, filepath.Join(dir, name), control, comp[i%len(comp)])
		i++
	}
	files, err := ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	names := func(fs []File) []string {
		var out []string
		for _, f := range fs {
			out = append(out, filepath.Base(f.Path))
		}
		return out
	}
	for _, tc := range []struct {
		want []string
		got  []string
	}{
		{[]string{"tree"}, []string{"tree_2.2_arm64.deb"}},
		{[]string{"isc-dhcp-server"}, []string{"isc-dhcp-server_1_arm64.deb", "libip4tc2_1_arm64.deb"}},
		// One provider of the virtual package: the first by file name.
		{[]string{"mailer"}, []string{"exim_1_all.deb", "mailer_1_all.deb"}},
		// The first alternative held, not both.
		{[]string{"either"}, []string{"either_1_all.deb", "tree_2.2_arm64.deb"}},
		{[]string{"htop"}, nil},
		{nil, nil},
	} {
		if got := names(Needed(files, tc.want)); !reflect.DeepEqual(got, tc.got) {
			t.Errorf("Needed(%v) = %v, want %v", tc.want, got, tc.got)
		}
	}
}

func TestReadDirRefusesTwoOfAPackage(t *testing.T) {
	dir := t.TempDir()
	writeDeb(t, filepath.Join(dir, "tree_2.1_arm64.deb"), "Package: tree\n", "xz")
	writeDeb(t, filepath.Join(dir, "tree_2.2_arm64.deb"), "Package: tree\n", "xz")
	if _, err := ReadDir(dir); err == nil || !strings.Contains(err.Error(), "tree_2.1_arm64.deb and tree_2.2_arm64.deb are both package tree: keep one") {
		t.Errorf("ReadDir: %v", err)
	}
}

func TestReadControlRejects(t *testing.T) {
	dir := t.TempDir()
	for name, content := range map[string]string{
		"text.deb":  "hello",
		"empty.deb": "",
		"short.deb": "!<arch>\ndebian-binary   0           0     0     100644  99999     `\n",
	} {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		if _, err := ReadControl(p); err == nil {
			t.Errorf("%s: read without error", name)
		}
	}
	p := filepath.Join(dir, "zst.deb")
	writeDeb(t, p, "Package: x\n", "zst")
	if _, err := ReadControl(p); err == nil {
		t.Errorf("control.tar.zst: read without error")
	}
	p = filepath.Join(dir, "nopkg.deb")
	writeDeb(t, p, "Version: 1\n", "gz")
	if _, err := ReadControl(p); err == nil {
		t.Errorf("control without Package: read without error")
	}
}

// TestReadsDpkgDeb reads a .deb dpkg-deb built: the format as Debian
// writes it, not as writeDeb does.
func TestReadsDpkgDeb(t *testing.T) {
	dir := t.TempDir()
	pkg := filepath.Join(dir, "pkg")
	os.MkdirAll(filepath.Join(pkg, "DEBIAN"), 0o755)
	os.WriteFile(filepath.Join(pkg, "DEBIAN", "control"), []byte("Package: magibake-test\nVersion: 1.0\nArchitecture: all\nMaintainer: t <t@example.org>\nDescription: t\nDepends: libc6 (>= 2.36), tree\n"), 0o644)
	out := filepath.Join(dir, "magibake-test_1.0_all.deb")
	if b, err := exec.Command("dpkg-deb", "--root-owner-group", "--build", pkg, out).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb --build (dpkg, on every Debian machine): %v\n%s", err, b)
	}
	c, err := ReadControl(out)
	if err != nil {
		t.Fatal(err)
	}
	if c.Package != "magibake-test" || !reflect.DeepEqual(c.Depends, [][]string{{"libc6"}, {"tree"}}) {
		t.Errorf("read %+v", c)
	}
}
