package overlay

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/magibake/magibake/overlays"
)

func TestValidateEmbedded(t *testing.T) {
	if errs := Validate(defaultCluster(t), []Tree{{FS: overlays.FS, Display: "overlays"}}); len(errs) != 0 {
		t.Fatalf("embedded overlays have problems: %v", errs)
	}
}

// TestValidateCollects: every bad file is reported once, with file:line, even
// though three nodes render the common tree.
func TestValidateCollects(t *testing.T) {
	user := fstest.MapFS{
		"common/root/etc/a.conf.tmpl":    {Data: []byte("ok\n{{ .Node.Hostname }}\n{{ if }}\n")},
		"common/root/etc/b.conf.tmpl":    {Data: []byte("line one\n{{ .Node.NoSuchField }}\n")},
		"worker/root/etc/c.conf.tmpl":    {Data: []byte("{{ mode \"9999\" }}x\n")},
		"head/boot/cmdline.txt.edit":     {Data: []byte("+ok\nbad word\n")},
		"common/elsewhere/x":             {Data: []byte("x")},
		"common/root/etc/fine.conf.tmpl": {Data: []byte("{{ .Node.Hostname }}\n")},
	}
	errs := Validate(defaultCluster(t), []Tree{{FS: overlays.FS, Display: "overlays"}, {FS: user, Display: "mine"}})
	var got []string
	for _, e := range errs {
		got = append(got, e.Error())
	}
	want := []string{
		"mine/common/root/etc/a.conf.tmpl:3: missing value for if",
		"mine/common/root/etc/b.conf.tmpl:2: executing",
		"mine/common/elsewhere/x: files go under boot/",
		"mine/worker/root/etc/c.conf.tmpl:1: executing",
		"mine/head/boot/cmdline.txt.edit: line 2 of the rendered edit",
	}
	if len(got) != len(want) {
		t.Fatalf("got %d problems, want %d:\n%s", len(got), len(want), strings.Join(got, "\n"))
	}
	for _, w := range want {
		found := false
		for _, g := range got {
			found = found || strings.HasPrefix(g, w)
		}
		if !found {
			t.Errorf("no problem starting %q in:\n%s", w, strings.Join(got, "\n"))
		}
	}
}
