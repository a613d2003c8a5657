package cli

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func setEnv(t *testing.T) {
	t.Setenv("MAGIBAKE_WIFI_SSID", "demo-wifi")
	t.Setenv("MAGIBAKE_WIFI_PASSPHRASE", "demo-passphrase")
	t.Setenv("MAGIBAKE_WIFI_COUNTRY", "GB")
	t.Setenv("MAGIBAKE_USER", "pi")
	t.Setenv("MAGIBAKE_PASSWORD_HASH", "$6$demosalt$0123456789abcdef")
	t.Setenv("MAGIBAKE_SSH_KEYS", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIKx7aTqEkmvT6l1XkVmH7B3ZFqPNMmRzD2e0Y6q5c6Jb demo")
}

func execute(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = Execute(context.Background(), args, &out, &errb)
	return code, out.String(), errb.String()
}

// disk returns a sparse image whose MBR holds the given (type, start, sectors) entries.
func disk(t *testing.T, dir, name string, parts ...[3]uint32) string {
	t.Helper()
	b := make([]byte, 512)
	for i, p := range parts {
		e := b[446+16*i:]
		e[4] = byte(p[0])
		binary.LittleEndian.PutUint32(e[8:], p[1])
		binary.LittleEndian.PutUint32(e[12:], p[2])
	}
	b[510], b[511] = 0x55, 0xaa
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, b, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(p, 64<<20); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestBadInput(t *testing.T) {
	setEnv(t)
	dir := t.TempDir()
	notDisk := filepath.Join(dir, "notes.txt")
	os.WriteFile(notDisk, []byte(strings.Repeat("just some text\n", 100)), 0o644)
	noFAT := disk(t, dir, "nofat.img", [3]uint32{0x83, 2048, 4096})
	noExt4 := disk(t, dir, "noext4.img", [3]uint32{0x0c, 2048, 4096})
	gpt := disk(t, dir, "gpt.img", [3]uint32{0xee, 1, 100000})
	truncXZ := filepath.Join(dir, "trunc.img.xz")
	raw := disk(t, dir, "for-xz.img", [3]uint32{0x0c, 2048, 4096}, [3]uint32{0x83, 6144, 4096})
	if out, err := exec.Command("xz", "-k", "-0", raw).CombinedOutput(); err != nil {
		t.Fatalf("xz: %v %s (apt-get install -y xz-utils)", err, out)
	}
	data, _ := os.ReadFile(raw + ".xz")
	os.WriteFile(truncXZ, data[:len(data)/2], 0o644)
	badProfiles := filepath.Join(dir, "profiles")
	os.MkdirAll(badProfiles, 0o755)
	cluster, _ := os.ReadFile("../../profiles/cluster.yaml")
	os.WriteFile(filepath.Join(badProfiles, "cluster.yaml"), bytes.Replace(cluster, []byte("head_address: 10.3.50.1/24"), []byte("head_address: 10.3.51.1/24"), 1), 0o644)
	for _, n := range []string{"caspar", "balthasar", "melchior"} {
		b, _ := os.ReadFile("../../profiles/" + n + ".yaml")
		os.WriteFile(filepath.Join(badProfiles, n+".yaml"), b, 0o644)
	}
	out := filepath.Join(dir, "out")
	os.MkdirAll(out, 0o755)

	tests := []struct {
		name string
		args []string
		want []string // substrings of the one error line
		code int
	}{
		{"missing base", []string{"build", "caspar", "--base", filepath.Join(dir, "nope.img.xz")}, []string{"nope.img.xz", "no such file"}, 3},
		{"truncated xz", []string{"build", "caspar", "--base", truncXZ}, []string{"trunc.img.xz", "truncated"}, 3},
		{"not a disk image", []string{"build", "caspar", "--base", notDisk}, []string{"notes.txt", "not a disk image"}, 3},
		{"no FAT partition", []string{"build", "caspar", "--base", noFAT}, []string{"nofat.img", "no FAT32 boot partition"}, 3},
		{"no ext4 partition", []string{"build", "caspar", "--base", noExt4}, []string{"noext4.img", "no Linux root partition"}, 3},
		{"GPT disk", []string{"build", "caspar", "--base", gpt}, []string{"gpt.img", "GPT"}, 3},
		{"unknown node", []string{"build", "gaspar", "--base", raw}, []string{`unknown node "gaspar"`, "caspar, balthasar, melchior"}, 3},
		{"profile error", []string{"build", "caspar", "--base", raw, "--profiles", badProfiles}, []string{"cluster.yaml:", "head_address"}, 3},
		{"no base", []string{"build", "caspar"}, []string{"--base"}, 2},
		{"output is base", []string{"build", "caspar", "--base", raw, "-o", raw}, []string{"is the base image"}, 3},
		{"output dir missing", []string{"build", "caspar", "--base", raw, "-o", filepath.Join(dir, "no/such/dir/c.img")}, []string{"does not exist"}, 3},
		{"-o with two nodes", []string{"build", "caspar", "melchior", "--base", raw, "-o", "x.img"}, []string{"--out-dir"}, 2},
		{"no node", []string{"build"}, []string{"no node given: name one or more nodes of the profiles, or --all"}, 2},
		{"plan unknown node", []string{"plan", "gaspar"}, []string{`unknown node "gaspar"`}, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			if args[0] == "build" && !contains(args, "-o") {
				args = append(args, "--out-dir", out)
			}
			code, _, stderr := execute(t, args...)
			if code != tt.code {
				t.Errorf("exit code %d, want %d (stderr %q)", code, tt.code, stderr)
			}
			if strings.Count(stderr, "\n") != 1 || !errLine.MatchString(stderr) {
				t.Errorf("want one error line, got %q", stderr)
			}
			for _, w := range tt.want {
				if !strings.Contains(stderr, w) {
					t.Errorf("stderr %q lacks %q", stderr, w)
				}
			}
			if left, _ := os.ReadDir(out); len(left) > 0 {
				t.Errorf("output dir not empty: %v", left)
			}
		})
	}
}

func contains(l []string, s string) bool {
	for _, v := range l {
		if v == s {
			return true
		}
	}
	return false
}

func TestPlanMasksSecrets(t *testing.T) {
	setEnv(t)
	code, out, errs := execute(t, "plan", "caspar", "--content")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	for _, want := range []string{"/etc/dhcp/dhcpd.conf", "range 10.3.50.10 10.3.50.20;", "/cmdline.txt  +cfg80211.ieee80211_regdom=GB", "secret content masked"} {
		if !strings.Contains(out, want) {
			t.Errorf("plan output lacks %q", want)
		}
	}
	if strings.Contains(out, os.Getenv("MAGIBAKE_PASSWORD_HASH")) {
		t.Error("plan output shows the password hash without --show-secrets")
	}
	_, out, _ = execute(t, "plan", "caspar", "--content", "--show-secrets")
	if !strings.Contains(out, "pi:"+os.Getenv("MAGIBAKE_PASSWORD_HASH")) {
		t.Error("--show-secrets does not show userconf.txt")
	}
}
