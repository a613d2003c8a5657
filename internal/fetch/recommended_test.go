package fetch

import (
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/magibake/magibake/internal/profile"
	"github.com/magibake/magibake/profiles"
)

// loadWithLine loads the example profiles with line appended to cluster.yaml.
func loadWithLine(t *testing.T, line string) (*profile.Cluster, error) {
	t.Helper()
	fsys := fstest.MapFS{}
	for _, n := range []string{"cluster.yaml", "caspar.yaml", "balthasar.yaml", "melchior.yaml"} {
		b, err := profiles.FS.ReadFile(n)
		if err != nil {
			t.Fatal(err)
		}
		if n == "cluster.yaml" {
			b = append(b, []byte("\n"+line+"\n")...)
		}
		fsys[n] = &fstest.MapFile{Data: b}
	}
	env := map[string]string{"MAGIBAKE_WIFI_SSID": "w", "MAGIBAKE_WIFI_PASSPHRASE": "passphrase", "MAGIBAKE_WIFI_COUNTRY": "GB",
		"MAGIBAKE_USER": "pi", "MAGIBAKE_PASSWORD_HASH": "$6$x$y"}
	return profile.Load(fsys, "p", profile.Options{Getenv: func(k string) string { return env[k] }})
}

// TestPinLine: the line the hint tells users to add is valid in a real
// cluster.yaml and pins exactly the recommended release.
func TestPinLine(t *testing.T) {
	c, err := loadWithLine(t, PinLine)
	if err != nil {
		t.Fatal(err)
	}
	if c.Base != (profile.Base{URL: RecommendedURL, SHA256: RecommendedSHA256}) {
		t.Errorf("Base = %+v", c.Base)
	}
	if strings.Contains(PinHint, "\n") || !strings.Contains(PinHint, PinLine) {
		t.Errorf("PinHint must be one line holding PinLine: %q", PinHint)
	}
	if PinLineFor(RecommendedURL, RecommendedSHA256) != PinLine {
		t.Errorf("PinLineFor(recommended) = %q, want %q", PinLineFor(RecommendedURL, RecommendedSHA256), PinLine)
	}
}

// TestRecommendedRelease: the constants name one release, the Trixie one
// recommended and the Bookworm one in the oldstable channel.
func TestRecommendedRelease(t *testing.T) {
	for _, tt := range []struct{ url, sum, release, channel, codename string }{
		{RecommendedURL, RecommendedSHA256, RecommendedRelease, "/raspios_lite_arm64/", "trixie"},
		{LegacyURL, LegacySHA256, LegacyRelease, "/raspios_oldstable_lite_arm64/", "bookworm"},
	} {
		file := tt.release + "-raspios-" + tt.codename + "-arm64-lite.img.xz"
		if !strings.HasSuffix(tt.url, "/"+file) || !strings.Contains(tt.url, tt.channel) || !sumRE.MatchString(tt.sum) {
			t.Errorf("%s (%s): want .../%s in %s with a 64-hex sha256", tt.url, tt.sum, file, tt.channel)
		}
	}
}

// TestPinLineFor: whatever URL a server hands out, the printed line loads
// back as exactly that URL and sum, or is refused; it never pins a
// different URL.
func TestPinLineFor(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	for _, u := range []string{
		LegacyURL,
		"http://127.0.0.1:8080/a/b.img.xz",
		"https://h/x.img.xz?a=1&b=2",
		"https://h/odd,name.img.xz",
		"https://h/x.img.xz#frag",
		"https://h/a {b}.img.xz",
		`https://h/q"uote'.img.xz`,
		"https://h/colon: x.img.xz",
	} {
		line := PinLineFor(u, strings.ToUpper(sum))
		if strings.Contains(line, "\n") {
			t.Errorf("%q: pin line spans lines: %q", u, line)
		}
		c, err := loadWithLine(t, line)
		if err != nil {
			t.Errorf("%q: %s does not load: %v", u, line, err)
			continue
		}
		if c.Base != (profile.Base{URL: u, SHA256: sum}) {
			t.Errorf("%q: %s loads as %+v", u, line, c.Base)
		}
	}
}

// TestDocsPinRecommendedBase: docs/commands.md's pin example is the
// recommended release, so it moves when the constant does.
func TestDocsPinRecommendedBase(t *testing.T) {
	b, err := os.ReadFile("../../docs/commands.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{PinLine, RecommendedURL} {
		if !strings.Contains(string(b), want) {
			t.Errorf("docs/commands.md does not contain %q", want)
		}
	}
}
