package cli

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/inspect"
	"github.com/magibake/magibake/internal/manifest"
)

// TestInspectAndDiff bakes caspar from each fixture variant, then reads the
// card back with inspect and compares it with plans through diff.
func TestInspectAndDiff(t *testing.T) {
	setEnv(t)
	for _, variant := range []string{"bookworm", "trixie"} {
		t.Run(variant, func(t *testing.T) {
			img, imgXZ := fixture.Image(t, variant)
			card := filepath.Join(t.TempDir(), "caspar.img")
			if code, _, stderr := execute(t, "build", "caspar", "--base", imgXZ, "-o", card); code != 0 {
				t.Fatalf("build: exit %d: %s", code, stderr)
			}

			// The card is no base: refused, nothing written.
			other := filepath.Join(t.TempDir(), "melchior.img")
			code, _, stderr := execute(t, "build", "melchior", "--base", card, "-o", other)
			if want := "magibake: base " + card + " is a card magibake baked for node caspar (it holds /etc/magibake/manifest.json), not a Raspberry Pi OS image: give the Raspberry Pi OS .img.xz as the base\n"; code != 3 || !strings.HasSuffix(stderr, want) {
				t.Errorf("build on a card: exit %d, stderr:\n%s\nwant exit 3 and\n%s", code, stderr, want)
			}
			if left, _ := os.ReadDir(filepath.Dir(other)); len(left) > 0 {
				t.Errorf("build on a card left %v", left)
			}

			code, stdout, stderr := execute(t, "inspect", card, "--json")
			if code != 0 {
				t.Fatalf("inspect: exit %d: %s", code, stderr)
			}
			var r inspect.Report
			if err := json.Unmarshal([]byte(stdout), &r); err != nil {
				t.Fatal(err)
			}
			if r.Release != variant || r.OSRelease["ID"] != "debian" {
				t.Errorf("release %q, os-release %v", r.Release, r.OSRelease)
			}
			if len(r.Partitions) != 2 || r.Partitions[0].Type != "0x0c" || r.Partitions[1].Type != "0x83" || r.Partitions[1].Start <= r.Partitions[0].Start {
				t.Errorf("partitions %+v", r.Partitions)
			}
			if r.DiskSignature == "" || r.DiskSignature == "0x00000000" {
				t.Errorf("disk signature %q", r.DiskSignature)
			}
			m := r.Manifest
			if m == nil || m.Node != "caspar" || len(m.ProfileDigest) != 64 || len(m.Files) < 10 {
				t.Fatalf("manifest %+v", m)
			}
			hostname := false
			for _, f := range m.Files {
				hostname = hostname || (f.Path == "/etc/hostname" && len(f.SHA256) == 64)
			}
			if !hostname {
				t.Error("manifest lacks /etc/hostname with its sha256")
			}

			// The text form of the same.
			code, stdout, _ = execute(t, "inspect", card)
			for _, w := range []string{"disk signature  " + r.DiskSignature, "0x83 Linux", "manifest        node caspar of cluster magi, baked by magibake ", "file times      ", "/etc/dhcp/dhcpd.conf"} {
				if code != 0 || !strings.Contains(stdout, w) {
					t.Errorf("inspect text lacks %q:\n%s", w, stdout)
				}
			}

			// The base itself: no manifest, same release.
			code, stdout, _ = execute(t, "inspect", img)
			if code != 0 || !strings.Contains(stdout, "manifest        none") || !strings.Contains(stdout, variant) {
				t.Errorf("inspect base: exit %d:\n%s", code, stdout)
			}

			// Same profiles: nothing to do. The node is the one the
			// card's manifest names.
			code, stdout, stderr = execute(t, "diff", card)
			if code != 0 || !strings.Contains(stdout, "vs today's plan for caspar: 0 to add, 0 to change, 0 to delete, 0 dropped from the plan,") {
				t.Errorf("diff same: exit %d %s\n%s", code, stderr, stdout)
			}
			// A base has no manifest: diff needs --node.
			if code, _, stderr := execute(t, "diff", img); code != 2 || !strings.Contains(stderr, "has no magibake manifest naming its node: give --node NODE") {
				t.Errorf("diff base without --node: exit %d, stderr %q; want 2", code, stderr)
			}
			// A user overlay that adds one file and changes another.
			ov := t.TempDir()
			os.MkdirAll(filepath.Join(ov, "common/root/etc/motd.d"), 0o755)
			os.MkdirAll(filepath.Join(ov, "head/root/etc"), 0o755)
			os.WriteFile(filepath.Join(ov, "common/root/etc/motd.d/welcome"), []byte("hello\n"), 0o644)
			os.WriteFile(filepath.Join(ov, "head/root/etc/hostname.tmpl"), []byte("{{ .Node.Hostname }}-new\n"), 0o644)
			code, stdout, stderr = execute(t, "diff", card, "--overlays", ov)
			if code != 4 || !strings.Contains(stderr, "differs from today's plan for caspar in 2 path(s)") {
				t.Errorf("diff with differences: exit %d, stderr %q; want 4 and the count", code, stderr)
			}
			for _, w := range []string{"add     root file    /etc/motd.d/welcome", "change  root file    /etc/hostname  (content differs)", ": 1 to add, 1 to change, 0 to delete"} {
				if !strings.Contains(stdout, w) {
					t.Errorf("diff with overlay lacks %q:\n%s", w, stdout)
				}
			}
			// Another node's plan against caspar's card: said, and the
			// head's files are dropped.
			code, stdout, stderr = execute(t, "diff", card, "--node", "melchior", "--json")
			var changes []inspect.Change
			if err := json.Unmarshal([]byte(stdout), &changes); err != nil || code != 4 {
				t.Fatalf("diff --json: exit %d %v", code, err)
			}
			if !strings.Contains(stderr, "is caspar's card (its manifest says so); comparing it with melchior's plan") {
				t.Errorf("diff --node melchior on caspar's card: no warning in %q", stderr)
			}
			found := map[string]inspect.Status{}
			for _, c := range changes {
				found[c.Path] = c.Status
			}
			if found["/etc/hostname"] != inspect.Changed || found["/etc/dhcp/dhcpd.conf"] != inspect.Dropped {
				t.Errorf("melchior vs caspar card: hostname %q, dhcpd.conf %q", found["/etc/hostname"], found["/etc/dhcp/dhcpd.conf"])
			}
		})
	}
}

func TestInspectBadInput(t *testing.T) {
	setEnv(t)
	dir := t.TempDir()
	notDisk := filepath.Join(dir, "notes.txt")
	os.WriteFile(notDisk, []byte(strings.Repeat("text\n", 200)), 0o644)
	for _, args := range [][]string{{"inspect", notDisk}, {"inspect", filepath.Join(dir, "missing.img")}, {"diff", notDisk, "--node", "caspar"}} {
		code, _, stderr := execute(t, args...)
		// One error line; diff may also note a host key made for its plan
		// alone (when no earlier test saved keys in the shared state).
		errLines := 0
		for _, l := range strings.Split(strings.TrimSpace(stderr), "\n") {
			if !strings.HasPrefix(l, "note: ") {
				errLines++
			}
		}
		if code != 3 || errLines != 1 {
			t.Errorf("%v: exit %d, stderr %q", args, code, stderr)
		}
	}
	// What inspect reads is a card, and says so.
	for _, tc := range []struct{ path, want string }{
		{filepath.Join(dir, "missing.img"), "magibake: card " + filepath.Join(dir, "missing.img") + ": no such file or directory\n"},
		{notDisk, "magibake: card " + notDisk + ": unusable image: not a disk image"},
	} {
		if _, _, stderr := execute(t, "inspect", tc.path); !strings.HasPrefix(stderr, tc.want) {
			t.Errorf("inspect %s: stderr %q, want it to start %q", tc.path, stderr, tc.want)
		}
	}
	if code, _, _ := execute(t, "diff", notDisk); code != 3 {
		t.Errorf("diff of a file that is no card: exit %d, want 3", code)
	}
}

// TestInspectEscapes: what inspect prints from a card cannot act on a
// terminal.
func TestInspectEscapes(t *testing.T) {
	r := &inspect.Report{Path: "card.img", OSRelease: map[string]string{"PRETTY_NAME": "Debian\x1b]0;owned\a"},
		Manifest: &manifest.Manifest{Node: "caspar\x1b[2J", Tool: "magibake", Files: []manifest.Entry{{Partition: "root", Kind: "file", Path: "/etc/x\r\nFAKE line"}}}}
	var b strings.Builder
	printReport(&b, r)
	out := b.String()
	if strings.ContainsAny(out, "\x1b\a\r") || strings.Contains(out, "\nFAKE") {
		t.Errorf("control characters from the card reach the terminal:\n%q", out)
	}
	for _, want := range []string{`Debian\x1b]0;owned\a`, `node caspar\x1b[2J of cluster`, `/etc/x\r\nFAKE line`} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %s:\n%s", want, out)
		}
	}
}
