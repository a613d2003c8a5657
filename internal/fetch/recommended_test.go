package fetch

import (
	"strings"
	"testing"
	"testing/fstest"

	"github.com/magibake/magibake/internal/profile"
	"github.com/magibake/magibake/profiles"
)

// TestPinLine: the line the hint tells users to add is valid in a real
// cluster.yaml and pins exactly the recommended release.
func TestPinLine(t *testing.T) {
	fsys := fstest.MapFS{}
	for _, n := range []string{"cluster.yaml", "caspar.yaml", "balthasar.yaml", "melchior.yaml"} {
		b, err := profiles.FS.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		if n == "cluster.yaml" {
			b = append(b, []byte("\n"+PinLine+"\n")...)
		}
		fsys[n] = &fstest.MapFile{Data: b}
	}
	env := map[string]string{"MAGIBAKE_WIFI_SSID": "w", "MAGIBAKE_WIFI_PASSPHRASE": "passphrase", "MAGIBAKE_WIFI_COUNTRY": "GB",
		"MAGIBAKE_USER": "pi", "MAGIBAKE_PASSWORD_HASH": "$6$x$y"}
	c, err := profile.Load(fsys, "p", profile.Options{Getenv: func(k string) string { return env[k] }})
	if err != nil {
		t.Fatal(err)
	}
	if c.Base != (profile.Base{URL: RecommendedURL, SHA256: RecommendedSHA256}) {
		t.Errorf("Base = %+v", c.Base)
	}
	if strings.Contains(PinHint, "\n") || !strings.Contains(PinHint, PinLine) {
		t.Errorf("PinHint must be one line holding PinLine: %q", PinHint)
	}
}
