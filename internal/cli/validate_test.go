package cli

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// lineOf returns the 1-based number of the line starting with prefix.
func lineOf(t *testing.T, text []byte, prefix string) string {
	t.Helper()
	for i, l := range strings.Split(string(text), "\n") {
		if strings.HasPrefix(l, prefix) {
			return strconv.Itoa(i + 1)
		}
	}
	t.Fatalf("no line starts with %q", prefix)
	return ""
}

func TestValidate(t *testing.T) {
	setEnv(t)
	good := pinnedProfiles(t, "")
	bad := pinnedProfiles(t, "")
	cluster, _ := os.ReadFile(filepath.Join(bad, "cluster.yaml"))
	cluster = []byte(strings.Replace(strings.Replace(string(cluster), "subnet: 10.3.50.0/24", "subnet: 10.3.50.0/33", 1), "uplink: wlan0", "uplink: wlan0\nuplnk: x", 1))
	os.WriteFile(filepath.Join(bad, "cluster.yaml"), cluster, 0o644)
	os.WriteFile(filepath.Join(bad, "melchior.yaml"), []byte("hostname: melchior\nrole: boss\n"), 0o644)

	ov := t.TempDir()
	os.MkdirAll(filepath.Join(ov, "common/root/etc"), 0o755)
	os.MkdirAll(filepath.Join(ov, "worker/root/etc"), 0o755)
	os.WriteFile(filepath.Join(ov, "common/root/etc/a.tmpl"), []byte("x\n{{ .Node.Nope }}\n"), 0o644)
	os.WriteFile(filepath.Join(ov, "worker/root/etc/b.tmpl"), []byte("{{ end }}\n"), 0o644)

	const image = "https://downloads.example/x.img.xz"
	pinned := pinnedProfiles(t, "base: {url: "+image+", sha256: "+strings.Repeat("ab", 32)+"}")
	unpinned := pinnedProfiles(t, "base: {url: "+image+"}")
	// A Wi-Fi uplink but no wifi section: valid, Wi-Fi stays off, one warning.
	noWiFi := pinnedProfiles(t, "")
	cy, _ := os.ReadFile(filepath.Join(noWiFi, "cluster.yaml"))
	start, end := strings.Index(string(cy), "\nwifi:\n"), strings.Index(string(cy), "\nuser:\n")
	os.WriteFile(filepath.Join(noWiFi, "cluster.yaml"), append(cy[:start:start], cy[end:]...), 0o644)

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string // each a line that must be printed
		stderr string   // all of it, when code is 0
	}{
		{"embedded", []string{"validate"}, 0, []string{"ok: 3 nodes (caspar, balthasar, melchior), every overlay file renders for each"}, ""},
		{"good dir", []string{"validate", "--profiles", good}, 0, []string{"ok: 3 nodes"}, ""},
		{"pinned base", []string{"validate", "--profiles", pinned}, 0, []string{"ok: 3 nodes"}, ""},
		// Valid, but nothing holds the image to one sha256: one warning.
		{"base without sha256", []string{"validate", "--profiles", unpinned}, 0, []string{"ok: 3 nodes"},
			"magibake: warning: " + unpinned + "/cluster.yaml: base has no sha256, so it is not pinned: fetch and build check it against " + image +
				".sha256 as published at the time; magibake fetch --profiles " + unpinned + " prints the line that pins it\n"},
		{"no wifi section", []string{"validate", "--profiles", noWiFi}, 0, []string{"ok: 3 nodes"},
			"magibake: warning: " + noWiFi + "/cluster.yaml: uplink wlan0 is Wi-Fi but there is no wifi section (ssid, passphrase, country): the cards keep Wi-Fi off (rfkill-blocked, no country) as Raspberry Pi OS ships it, so no node gets a home address and caspar routes nothing out\n"},
		{"profile problems, all listed", []string{"validate", "--profiles", bad}, 3, []string{
			bad + "/cluster.yaml:" + lineOf(t, cluster, "subnet:") + ": subnet: want an IPv4 prefix like 10.3.50.0/24, got \"10.3.50.0/33\"",
			bad + "/cluster.yaml:" + lineOf(t, cluster, "uplnk:") + ": uplnk: unknown key",
			bad + "/melchior.yaml:2: role: unknown role \"boss\"; want head or worker",
		}, ""},
		{"overlay problems, all listed", []string{"validate", "--overlays", ov}, 3, []string{
			ov + "/common/root/etc/a.tmpl:2: executing",
			ov + "/worker/root/etc/b.tmpl:1: unexpected {{end}}",
		}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			code, stdout, stderr := execute(t, tt.args...)
			if code != tt.code {
				t.Errorf("exit %d, want %d; stderr %q", code, tt.code, stderr)
			}
			for _, w := range tt.stdout {
				found := false
				for _, line := range strings.Split(stdout, "\n") {
					found = found || strings.HasPrefix(line, w)
				}
				if !found {
					t.Errorf("stdout lacks a line starting %q:\n%s", w, stdout)
				}
			}
			if tt.code != 0 && !strings.Contains(stderr, "problem(s)") {
				t.Errorf("stderr %q", stderr)
			}
			if tt.code == 0 && stderr != tt.stderr {
				t.Errorf("stderr\n%q\nwant\n%q", stderr, tt.stderr)
			}
		})
	}
}
