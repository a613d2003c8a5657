package profile

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestSecretFileWarnings(t *testing.T) {
	viaFiles := strings.NewReplacer("passphrase: correct horse", "passphrase: {file: wifi-pass}",
		"password_hash: "+hash, "password_hash: {file: secrets/hash}").Replace(validCluster)
	viaEnv := strings.NewReplacer("passphrase: correct horse", "passphrase: {env: PASS}",
		"password_hash: "+hash, "password_hash: {env: HASH}").Replace(validCluster)
	alias := strings.Replace(validCluster, "passphrase: correct horse", "passphrase: &p correct horse", 1)
	tests := []struct {
		name    string
		cluster string
		modes   map[string]os.FileMode // file -> mode; cluster.yaml included
		want    []string               // substrings, one warning each, in order
	}{
		{"literal secrets, 0600", validCluster, map[string]os.FileMode{"cluster.yaml": 0o600}, nil},
		{"literal secrets, 0644", validCluster, map[string]os.FileMode{"cluster.yaml": 0o644},
			[]string{"cluster.yaml holds the Wi-Fi passphrase and the password hash and is readable by its group and every user (mode 0644): chmod 600 "}},
		{"literal secrets, 0640", validCluster, map[string]os.FileMode{"cluster.yaml": 0o640},
			[]string{"readable by its group (mode 0640)"}},
		{"literal secrets, 0622: writable is not readable", validCluster, map[string]os.FileMode{"cluster.yaml": 0o622}, nil},
		{"alias", alias, map[string]os.FileMode{"cluster.yaml": 0o604}, []string{"readable by every user (mode 0604)"}},
		{"env secrets, 0644 cluster.yaml", viaEnv, map[string]os.FileMode{"cluster.yaml": 0o644}, nil},
		{"file secrets", viaFiles, map[string]os.FileMode{"cluster.yaml": 0o644, "wifi-pass": 0o644, "secrets/hash": 0o600},
			[]string{"wifi-pass holds the Wi-Fi passphrase and is readable"}},
		{"file secrets, both readable", viaFiles, map[string]os.FileMode{"cluster.yaml": 0o600, "wifi-pass": 0o640, "secrets/hash": 0o604},
			[]string{"wifi-pass holds the Wi-Fi passphrase", "secrets/hash holds the password hash"}},
		{"missing secret file", viaFiles, map[string]os.FileMode{"cluster.yaml": 0o644}, nil},
		{"not YAML", "wifi: [", map[string]os.FileMode{"cluster.yaml": 0o644}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			for name, mode := range tt.modes {
				content := "s3cr3t-file-content\n"
				if name == "cluster.yaml" {
					content = tt.cluster
				}
				p := filepath.Join(dir, name)
				os.MkdirAll(filepath.Dir(p), 0o755)
				if err := os.WriteFile(p, []byte(content), mode); err != nil {
					t.Fatal(err)
				}
				if err := os.Chmod(p, mode); err != nil { // umask
					t.Fatal(err)
				}
			}
			got := SecretFileWarnings(dir, Options{})
			if len(got) != len(tt.want) {
				t.Fatalf("got %d warnings %q, want %d", len(got), got, len(tt.want))
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) || !strings.HasPrefix(got[i], "warning: "+dir) || strings.Contains(got[i], "\n") {
					t.Errorf("warning %d is %q, want one line naming the file and holding %q", i, got[i], w)
				}
				for _, secret := range []string{"correct horse", hash, "s3cr3t-file-content"} {
					if strings.Contains(got[i], secret) {
						t.Errorf("warning %q shows a secret", got[i])
					}
				}
			}
		})
	}
}
