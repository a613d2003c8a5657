package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/manifest"
	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/testkit"
)

var env = map[string]string{
	"MAGIBAKE_WIFI_SSID":       "demo-wifi",
	"MAGIBAKE_WIFI_PASSPHRASE": "demo-passphrase",
	"MAGIBAKE_WIFI_COUNTRY":    "GB",
	"MAGIBAKE_USER":            "pi",
	"MAGIBAKE_PASSWORD_HASH":   "$6$demosalt$0123456789abcdef",
	"MAGIBAKE_SSH_KEYS":        "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMqXgRLKG73K+sIxs5oj3E2nhu/4FHxOcrmAd4Wv7ki7 demo",
	"SOURCE_DATE_EPOCH":        "1767225600",
}

func getenv(k string) string { return env[k] }

// TestBuildCluster bakes the three nodes from each fixture variant in one
// call and checks each card with the real consumers.
func TestBuildCluster(t *testing.T) {
	testkit.RequireTools(t, "dhcpd", "debugfs", "mtype", "e2fsck", "fsck.fat")
	for _, variant := range []string{"bookworm", "trixie"} {
		t.Run(variant, func(t *testing.T) {
			img, imgXZ := fixture.Image(t, variant)
			before := testkit.SHA256File(t, imgXZ)
			out := t.TempDir()
			o := Options{Sources: Sources{Getenv: getenv}, Nodes: []string{"caspar", "balthasar", "melchior"}, OutDir: out, Base: imgXZ, Version: "test"}
			var log bytes.Buffer
			o.Log = &log
			if err := Run(context.Background(), o); err != nil {
				t.Fatal(err)
			}
			if testkit.SHA256File(t, imgXZ) != before {
				t.Fatal("the base .img.xz changed")
			}
			if left, _ := filepath.Glob(filepath.Join(out, ".*")); len(left) > 0 {
				t.Errorf("temp files left: %v", left)
			}
			if n := strings.Count(log.String(), "decompressed"); n != 1 {
				t.Errorf("base decompressed %d times for three nodes:\n%s", n, log.String())
			}
			base := fixture.OpenCard(t, img)
			for _, node := range o.Nodes {
				t.Run(node, func(t *testing.T) {
					card := fixture.OpenCard(t, filepath.Join(out, node+".img"))
					p, c, err := o.Plan(node, mustMTime(t))
					if err != nil {
						t.Fatal(err)
					}
					if card.Layout != base.Layout {
						t.Errorf("layout %+v, base has %+v", card.Layout, base.Layout)
					}
					if !bytes.Equal(head(t, card.Path, int(base.Layout.Boot.Start)), head(t, img, int(base.Layout.Boot.Start))) {
						t.Error("the MBR (partition table, disk signature) or the gap before p1 changed")
					}
					card.Fsck(t)
					card.HoldsPlan(t, p)
					checkManifest(t, card, p, c.Digest, before)
					if got := card.ReadRoot(t, "/etc/hostname"); got != node+"\n" {
						t.Errorf("hostname %q", got)
					}
					if node == "caspar" {
						checkDhcpd(t, card)
					}
					checkUntouched(t, base, card, p)
				})
			}
		})
	}
}

func mustMTime(t *testing.T) time.Time {
	t.Helper()
	m, err := MTime(getenv)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func head(t *testing.T, p string, n int) []byte {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	b := make([]byte, n)
	if _, err := f.ReadAt(b, 0); err != nil {
		t.Fatal(err)
	}
	return b
}

func checkManifest(t *testing.T, card fixture.Card, p *plan.Plan, digest string, baseSum string) {
	t.Helper()
	var m manifest.Manifest
	if err := json.Unmarshal([]byte(card.ReadRoot(t, manifest.Path)), &m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	if m.Node != p.Node || m.ProfileDigest != digest || m.BaseSHA256 != baseSum || m.Version != "test" {
		t.Errorf("manifest header %+v", m)
	}
	if len(m.Files) != len(p.Ops) {
		t.Fatalf("manifest lists %d operations, plan has %d", len(m.Files), len(p.Ops))
	}
	for i, op := range p.Ops {
		e := m.Files[i]
		if e.Path != op.Path || e.Partition != op.Partition.String() {
			t.Errorf("manifest entry %d is %s %s, want %s %s", i, e.Partition, e.Path, op.Partition, op.Path)
		}
		switch {
		case op.Kind == plan.WriteFile && op.Secret:
			// A hash of a secret file would let whoever reads the manifest
			// test guesses of the secret.
			if !e.Secret || e.SHA256 != "" {
				t.Errorf("manifest entry of secret %s: secret %v, sha256 %q", op.Path, e.Secret, e.SHA256)
			}
		case op.Kind == plan.WriteFile && e.SHA256 != fmt.Sprintf("%x", sha256.Sum256(op.Content)):
			t.Errorf("manifest sha256 of %s wrong", op.Path)
		}
	}
	raw := card.ReadRoot(t, manifest.Path)
	for _, secret := range []string{env["MAGIBAKE_PASSWORD_HASH"], env["MAGIBAKE_WIFI_PASSPHRASE"]} {
		if strings.Contains(raw, secret) {
			t.Error("the manifest contains a secret")
		}
	}
}

func checkDhcpd(t *testing.T, card fixture.Card) {
	t.Helper()
	conf := filepath.Join(t.TempDir(), "dhcpd.conf")
	os.WriteFile(conf, []byte(card.ReadRoot(t, "/etc/dhcp/dhcpd.conf")), 0o644)
	dhcpd, err := exec.LookPath("dhcpd")
	if err != nil {
		dhcpd = "/usr/sbin/dhcpd"
	}
	if out, err := exec.Command(dhcpd, "-t", "-cf", conf).CombinedOutput(); err != nil {
		t.Errorf("dhcpd -t -cf: %v\n%s", err, out)
	}
	if got := card.ReadRoot(t, "/etc/default/isc-dhcp-server"); !strings.Contains(got, `INTERFACESv4="eth0"`) {
		t.Errorf("/etc/default/isc-dhcp-server: %q", got)
	}
}

// checkUntouched compares every file of some base directories, and the boot
// partition's files, between base and card, except what the plan wrote.
func checkUntouched(t *testing.T, base, card fixture.Card, p *plan.Plan) {
	t.Helper()
	written := map[string]bool{manifest.Path: true}
	for _, op := range p.Ops {
		written[op.Partition.String()+":"+op.Path] = true
	}
	compared := 0
	for _, dir := range []string{"/etc", "/usr/bin", "/usr/lib", "/var/lib", "/opt"} {
		a, b := filepath.Join(t.TempDir(), "a"), filepath.Join(t.TempDir(), "b")
		os.MkdirAll(a, 0o755)
		os.MkdirAll(b, 0o755)
		base.Debugfs(t, fmt.Sprintf("rdump %s %s", dir, a))
		card.Debugfs(t, fmt.Sprintf("rdump %s %s", dir, b))
		filepath.WalkDir(a, func(path string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() {
				return err
			}
			rel, _ := filepath.Rel(a, path)
			inImage := filepath.Join(filepath.Dir(dir), rel)
			if written["root:"+inImage] {
				return nil
			}
			read := os.ReadFile
			if d.Type()&fs.ModeSymlink != 0 {
				read = func(p string) ([]byte, error) { s, err := os.Readlink(p); return []byte(s), err }
			}
			x, _ := read(path)
			y, err := read(filepath.Join(b, rel))
			if err != nil || !bytes.Equal(x, y) {
				t.Errorf("untouched %s differs from the base (%v)", inImage, err)
			}
			compared++
			return nil
		})
	}
	for _, f := range []string{"/config.txt", "/kernel8.img", "/bcm2711-rpi-4-b.dtb", "/overlays/vc4-kms-v3d.dtbo"} {
		if base.ReadBoot(t, f) != card.ReadBoot(t, f) {
			t.Errorf("untouched boot file %s differs", f)
		}
		compared++
	}
	if compared < 300 {
		t.Errorf("compared only %d untouched files", compared)
	}
}

// TestHtreeGrowthAndReplacement bakes a user overlay that adds 300 files to
// /etc and replaces base files by longer and shorter ones, from a raw .img base.
func TestHtreeGrowthAndReplacement(t *testing.T) {
	img, _ := fixture.Image(t, "bookworm")
	ov := t.TempDir()
	etc := filepath.Join(ov, "common", "root", "etc")
	os.MkdirAll(etc, 0o755)
	for i := range 300 {
		os.WriteFile(filepath.Join(etc, fmt.Sprintf("added-%03d.conf", i)), []byte(fmt.Sprintf("added %d\n", i)), 0o644)
	}
	os.WriteFile(filepath.Join(etc, "fixture-5.conf"), bytes.Repeat([]byte("much longer now\n"), 2000), 0o644)
	os.MkdirAll(filepath.Join(ov, "common", "root", "usr", "lib"), 0o755)
	os.WriteFile(filepath.Join(ov, "common", "root", "usr", "lib", "lib-150.so"), []byte("short\n"), 0o644)
	os.WriteFile(filepath.Join(etc, "fixture-6.conf.remove"), nil, 0o644)
	out := filepath.Join(t.TempDir(), "melchior.img")
	o := Options{Sources: Sources{Getenv: getenv, Overlays: ov}, Nodes: []string{"melchior"}, Output: out, Base: img, Version: "test"}
	before := testkit.SHA256File(t, img)
	if err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if testkit.SHA256File(t, img) != before {
		t.Fatal("the base .img changed")
	}
	card := fixture.OpenCard(t, out)
	card.Fsck(t)
	p, _, err := o.Plan("melchior", mustMTime(t))
	if err != nil {
		t.Fatal(err)
	}
	if len(p.Ops) < 303 {
		t.Fatalf("plan has %d operations", len(p.Ops))
	}
	card.HoldsPlan(t, p)
}

// TestOutDirMade: --out-dir is made when missing, as mkdir -p would, and a
// build that fails removes again what it made, so it leaves nothing.
func TestOutDirMade(t *testing.T) {
	_, imgXZ := fixture.Image(t, "bookworm")
	top := t.TempDir()
	out := filepath.Join(top, "cards", "today")
	o := Options{Sources: Sources{Getenv: getenv}, Nodes: []string{"caspar"}, OutDir: out, Base: filepath.Join(top, "no-such-base.img.xz"), Version: "test"}
	if err := Run(context.Background(), o); err == nil {
		t.Fatal("a build from a missing base succeeded")
	}
	if _, err := os.Stat(filepath.Join(top, "cards")); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("a failed build left %s/cards: %v", top, err)
	}
	o.Base = imgXZ
	if err := Run(context.Background(), o); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(out, "caspar.img")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(top, "file"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	o.OutDir = filepath.Join(top, "file", "cards")
	if err := Run(context.Background(), o); err == nil || !strings.Contains(err.Error(), "--out-dir "+o.OutDir+": ") {
		t.Fatalf("--out-dir under a file: %v", err)
	}
}
