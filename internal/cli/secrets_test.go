package cli

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/magibake/magibake/internal/build"
	"github.com/magibake/magibake/internal/fixture"
	"github.com/magibake/magibake/internal/manifest"
	"github.com/magibake/magibake/internal/plan"
)

// Secrets of TestSecretsNeverLeak: distinctive, so a match is a leak. The
// plaintext password is never given to magibake, only its hash.
const (
	leakPassphrase = "Tr0ub4dor&3-leak-canary-passphrase"
	leakHash       = "$6$leakcanarysalt$ZmFrZWhhc2hmb3JsZWFrdGVzdGluZ29ubHk"
	leakSSID       = "canary-ssid-visible"
)

func setSecretEnv(t *testing.T) {
	setEnv(t)
	t.Setenv("MAGIBAKE_WIFI_SSID", leakSSID)
	t.Setenv("MAGIBAKE_WIFI_PASSPHRASE", leakPassphrase)
	t.Setenv("MAGIBAKE_PASSWORD_HASH", leakHash)
	t.Setenv("SOURCE_DATE_EPOCH", "1767225600")
}

// TestSecretsNeverLeak bakes caspar with a known Wi-Fi passphrase and
// password hash and looks for them where they must not be: the passphrase
// anywhere in the card's bytes, neither in build or plan output (unless
// --show-secrets, and then only the hash), the manifest, or error messages.
// Secret files on the root partition must be 0600 or stricter.
func TestSecretsNeverLeak(t *testing.T) {
	setSecretEnv(t)
	img, _ := fixture.Image(t, "bookworm")
	out := t.TempDir()
	code, stdout, stderr := execute(t, "build", "caspar", "--base", img, "--out-dir", out)
	if code != 0 {
		t.Fatalf("build: exit %d: %s", code, stderr)
	}
	noSecret(t, "build stdout/stderr", stdout+stderr, leakPassphrase, leakHash)

	card := filepath.Join(out, "caspar.img")
	// The scan must be able to see a keyfile's content: the SSID sits next
	// to the PSK in the same file.
	if n := countInFile(t, card, leakSSID); n == 0 {
		t.Fatal("the scan finds no SSID in the card: it would not find a passphrase either")
	}
	if n := countInFile(t, card, leakPassphrase); n != 0 {
		t.Errorf("the Wi-Fi passphrase appears %d times in the card's bytes", n)
	}
	c := fixture.OpenCard(t, card)
	c.Fsck(t)
	var m manifest.Manifest
	raw := c.ReadRoot(t, manifest.Path)
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatalf("manifest: %v", err)
	}
	noSecret(t, "manifest", raw, leakPassphrase, leakHash)

	p, _, err := build.Sources{}.Plan("caspar", mustEpoch(t))
	if err != nil {
		t.Fatal(err)
	}
	secretOps := 0
	for _, op := range p.Ops {
		if !op.Secret || op.Partition != plan.Root || op.Kind != plan.WriteFile {
			continue
		}
		secretOps++
		st := c.Debugfs(t, "stat "+op.Path)
		if !strings.Contains(st, "Mode:  0600 ") && !strings.Contains(st, "Mode:  0400 ") {
			t.Errorf("secret %s is not 0600/0400:\n%s", op.Path, st)
		}
		if !strings.Contains(st, "User:     0   Group:     0") {
			t.Errorf("secret %s is not owned by root:\n%s", op.Path, st)
		}
	}
	keyfile := c.Debugfs(t, "stat /etc/NetworkManager/system-connections/wifi.nmconnection")
	if secretOps == 0 || !strings.Contains(keyfile, "Mode:  0600 ") || !strings.Contains(keyfile, "User:     0   Group:     0") {
		t.Errorf("%d secret files checked; the Wi-Fi keyfile:\n%s", secretOps, keyfile)
	}
	if psk := c.ReadRoot(t, "/etc/NetworkManager/system-connections/wifi.nmconnection"); !strings.Contains(psk, "psk=") {
		t.Errorf("keyfile has no psk= line:\n%s", psk)
	}

	// plan: masked by default; --show-secrets shows the hash (userconf.txt)
	// but never the passphrase, which no file holds.
	code, stdout, stderr = execute(t, "plan", "caspar", "--content")
	if code != 0 {
		t.Fatalf("plan: exit %d: %s", code, stderr)
	}
	noSecret(t, "plan --content", stdout+stderr, leakPassphrase, leakHash)
	code, stdout, _ = execute(t, "plan", "caspar", "--content", "--show-secrets")
	if code != 0 || !strings.Contains(stdout, leakHash) {
		t.Errorf("plan --show-secrets: exit %d, shows the hash: %v", code, strings.Contains(stdout, leakHash))
	}
	noSecret(t, "plan --show-secrets", stdout, leakPassphrase)
}

// TestSecretsNotInErrors gives invalid secrets and checks the error lines
// say what is wrong without repeating them.
func TestSecretsNotInErrors(t *testing.T) {
	setSecretEnv(t)
	long := strings.Repeat("Z", 30) + leakPassphrase + strings.Repeat("z", 10) // 74 characters
	for _, tc := range []struct {
		name, env, value, secret, want string
	}{
		{"passphrase too long", "MAGIBAKE_WIFI_PASSPHRASE", long, long, "got 74 characters"},
		{"passphrase too short", "MAGIBAKE_WIFI_PASSPHRASE", "Zq7#xw", "Zq7#xw", "got 6 characters"},
		{"passphrase not ASCII", "MAGIBAKE_WIFI_PASSPHRASE", leakPassphrase + "é", leakPassphrase, "outside printable ASCII"},
		{"hash with a colon", "MAGIBAKE_PASSWORD_HASH", leakHash + ":x", leakHash, "want a crypt hash"},
		{"password instead of a hash", "MAGIBAKE_PASSWORD_HASH", "hunter2-plaintext", "hunter2-plaintext", "never the password itself"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(tc.env, tc.value)
			for _, args := range [][]string{{"plan", "caspar", "--content", "--show-secrets"}, {"build", "caspar", "--base", "x.img", "--out-dir", t.TempDir()}} {
				code, stdout, stderr := execute(t, args...)
				if code != relCodeInput || !strings.Contains(stderr, tc.want) {
					t.Errorf("%s: exit %d, stderr %q; want %d and %q", args[0], code, stderr, relCodeInput, tc.want)
				}
				noSecret(t, args[0]+" error", stdout+stderr, tc.secret)
			}
		})
	}
}

// TestSecretFileWarning checks build and plan warn, on one stderr line each,
// about a profile file holding a secret that others may read.
func TestSecretFileWarning(t *testing.T) {
	setSecretEnv(t)
	dir := t.TempDir()
	pd := relProfiles(t, dir, "literal", func(c string) string {
		return strings.Replace(c, "passphrase: {env: MAGIBAKE_WIFI_PASSPHRASE}", "passphrase: {file: wifi-pass}", 1)
	})
	pass := filepath.Join(pd, "wifi-pass")
	if err := os.WriteFile(pass, []byte(leakPassphrase+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, mode := range []os.FileMode{0o600, 0o644} {
		if err := os.Chmod(pass, mode); err != nil {
			t.Fatal(err)
		}
		for _, args := range [][]string{{"plan", "caspar"}, {"build", "caspar", "--base", filepath.Join(dir, "missing.img"), "--out-dir", t.TempDir()}} {
			_, _, stderr := execute(t, append(args, "--profiles", pd)...)
			n := strings.Count(stderr, "magibake: warning: ")
			want := 0
			if mode == 0o644 {
				want = 1
				if !strings.Contains(stderr, "warning: "+pass+" holds the Wi-Fi passphrase and is readable by its group and every user (mode 0644): chmod 600 "+pass+"\n") {
					t.Errorf("%s, mode %04o: stderr %q", args[0], mode, stderr)
				}
			}
			if n != want {
				t.Errorf("%s, mode %04o: %d warnings, want %d: %q", args[0], mode, n, want, stderr)
			}
			noSecret(t, args[0]+" stderr", stderr, leakPassphrase)
		}
	}
}

func noSecret(t *testing.T, where, text string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if strings.Contains(text, s) {
			t.Errorf("%s contains the secret %q", where, s)
		}
	}
}

func mustEpoch(t *testing.T) time.Time {
	t.Helper()
	m, err := build.MTime(nil)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// countInFile counts occurrences of s in the file, reading it in chunks that
// overlap by len(s)-1 so none is split.
func countInFile(t *testing.T, path, s string) int {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	buf := make([]byte, 4<<20)
	keep, n := 0, 0
	for {
		m, err := io.ReadFull(f, buf[keep:])
		data := buf[:keep+m]
		n += bytes.Count(data, []byte(s))
		if err != nil {
			if err == io.EOF || err == io.ErrUnexpectedEOF {
				return n
			}
			t.Fatal(err)
		}
		keep = min(len(s)-1, len(data))
		copy(buf, data[len(data)-keep:])
	}
}

// TestSecretsMaskedByConstruction: a user overlay writes every secret value
// a profile yields (passphrase, derived PSK, password hash, private host
// key) into files, a link target and a path, without calling secret. Plans
// (with and without --content), the build's log, diff and the manifest must
// not show any of them, nor a plain hash of a file holding one; the
// manifest marks those files secret. --show-secrets shows them.
func TestSecretsMaskedByConstruction(t *testing.T) {
	setSecretEnv(t)
	t.Setenv("MAGIBAKE_STATE", t.TempDir())
	ov := t.TempDir()
	files := map[string]string{
		"common/root/opt/leak/plain.tmpl":        "passphrase={{.Cluster.WiFi.Passphrase}}\n",
		"common/root/opt/leak/psk.tmpl":          "psk={{wpapsk .Cluster.WiFi.SSID .Cluster.WiFi.Passphrase}}\n",
		"common/root/opt/leak/hash.tmpl":         "hash={{.Cluster.User.PasswordHash}}\n",
		"common/root/opt/leak/key.tmpl":          "{{.HostKey.Private}}",
		"common/boot/leak.txt.tmpl":              "on the boot partition too: {{.Cluster.WiFi.Passphrase}}\n",
		"common/root/opt/leak/link.symlink.tmpl": "/opt/{{.Cluster.WiFi.Passphrase}}\n",
		"common/root/opt/leak/harmless":          "no secret here\n",
	}
	for name, content := range files {
		p := filepath.Join(ov, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	p, _, err := build.Sources{Overlays: ov}.Plan("caspar", mustEpoch(t))
	if err != nil {
		t.Fatal(err)
	}
	key, psk := "", ""
	for _, op := range p.Ops {
		if op.Path == "/etc/ssh/ssh_host_ed25519_key" {
			key = strings.Split(string(op.Content), "\n")[1] // a base64 line of the private key
		}
		if op.Path == "/opt/leak/psk" {
			psk = strings.TrimSpace(strings.TrimPrefix(string(op.Content), "psk="))
		}
	}
	if len(psk) != 64 || len(key) < 40 {
		t.Fatalf("psk %q, key line %q: the overlay did not write them", psk, key)
	}
	secrets := []string{leakPassphrase, psk, leakHash, key}
	for _, op := range p.Ops {
		if !strings.HasPrefix(op.Path, "/opt/leak/") && op.Path != "/leak.txt" {
			continue
		}
		if holds := op.Path != "/opt/leak/harmless"; op.Secret != holds {
			t.Errorf("%s %s: marked secret %v, want %v", op.Partition, op.Path, op.Secret, holds)
		}
	}

	for _, args := range [][]string{{"plan", "caspar"}, {"plan", "caspar", "--content"}} {
		code, stdout, stderr := execute(t, append(args, "--overlays", ov)...)
		if code != 0 {
			t.Fatalf("%v: exit %d: %s", args, code, stderr)
		}
		noSecret(t, strings.Join(args, " "), stdout+stderr, secrets...)
		if args[len(args)-1] == "--content" && !strings.Contains(stdout, "/opt/<secret>") {
			t.Errorf("plan --content does not show the masked link target:\n%s", stdout)
		}
	}
	code, stdout, _ := execute(t, "plan", "caspar", "--content", "--show-secrets", "--overlays", ov)
	for _, s := range secrets {
		if code != 0 || !strings.Contains(stdout, s) {
			t.Errorf("plan --show-secrets: exit %d, does not show %q", code, s)
		}
	}

	img, _ := fixture.Image(t, "bookworm")
	out := t.TempDir()
	code, stdout, stderr := execute(t, "build", "caspar", "--base", img, "--out-dir", out, "--overlays", ov)
	if code != 0 {
		t.Fatalf("build: exit %d: %s", code, stderr)
	}
	noSecret(t, "build output", stdout+stderr, secrets...)
	card := fixture.OpenCard(t, filepath.Join(out, "caspar.img"))
	raw := card.ReadRoot(t, manifest.Path)
	noSecret(t, "manifest", raw, secrets...)
	var m manifest.Manifest
	if err := json.Unmarshal([]byte(raw), &m); err != nil {
		t.Fatal(err)
	}
	for _, op := range p.Ops {
		if op.Kind != plan.WriteFile || !op.Secret {
			continue
		}
		sum := sha256.Sum256(op.Content)
		if strings.Contains(raw, hex.EncodeToString(sum[:])) {
			t.Errorf("the manifest holds the sha256 of secret %s", op.Path)
		}
	}
	marked := 0
	for _, e := range m.Files {
		if e.Secret {
			marked++
			if e.SHA256 != "" {
				t.Errorf("manifest: secret %s has sha256 %s", e.Path, e.SHA256)
			}
		}
	}
	if marked == 0 {
		t.Error("the manifest marks no file secret")
	}
	for _, args := range [][]string{{"inspect"}, {"diff", "--node", "caspar", "--all", "--json", "--overlays", ov}} {
		code, stdout, stderr := execute(t, append([]string{args[0], filepath.Join(out, "caspar.img")}, args[1:]...)...)
		if code != 0 && (args[0] != "diff" || code != 4) { // diff exits 4 on differences
			t.Fatalf("%s: exit %d: %s", args[0], code, stderr)
		}
		noSecret(t, args[0], stdout+stderr, secrets...)
		for _, op := range p.Ops {
			sum := sha256.Sum256(op.Content)
			if op.Secret && op.Kind == plan.WriteFile && strings.Contains(stdout, hex.EncodeToString(sum[:])) {
				t.Errorf("%s shows the sha256 of secret %s", args[0], op.Path)
			}
		}
	}
}
