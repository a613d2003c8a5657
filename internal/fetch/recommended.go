package fetch

import (
	"strconv"
	"strings"
)

// The release suggested when a profile pins no base: Raspberry Pi OS Lite
// (64-bit) of 2026-10-06, Trixie (Debian 13), the newest Lite release public
// build scripts pin. The sha256 is the .img.xz's as downloaded (what
// RecommendedURL + ".sha256" publishes); the commit that set it names the
// independent public pins it was taken from, as for the Legacy one.
const (
	RecommendedRelease = "2026-10-06"
	RecommendedURL     = "https://downloads.raspberrypi.com/raspios_lite_arm64/images/raspios_lite_arm64-2026-10-06/2026-10-06-raspios-trixie-arm64-lite.img.xz"
	RecommendedSHA256  = "483db18a48da399b5b7022ffae9a07bc6d99daab30e593aedac09b69ff422843"
)

// The newest Bookworm (Debian 12) Lite release with a checked pin, for
// clusters that stay on Bookworm: Imager's "Raspberry Pi OS (Legacy, 64-bit)
// Lite", published in the oldstable channel since Trixie took the main one.
const (
	LegacyRelease = "2026-09-15"
	LegacyURL     = "https://downloads.raspberrypi.com/raspios_oldstable_lite_arm64/images/raspios_oldstable_lite_arm64-2026-09-15/2026-09-15-raspios-bookworm-arm64-lite.img.xz"
	LegacySHA256  = "bcaefdf9c40dbed31dcaeb3b8494e498b4f1e3078c2604b0d9f5f595f8f6fd91"
)

// PinLine is the cluster.yaml line that pins the recommended release.
const PinLine = "base: {url: " + RecommendedURL + ", sha256: " + RecommendedSHA256 + "}"

// PinHint tells, on one line, how to get a base when the profile pins none.
const PinHint = "add this line to cluster.yaml to pin Raspberry Pi OS Lite (64-bit) " + RecommendedRelease +
	" (Trixie) and let build download and check it: " + PinLine +
	"  (or run magibake fetch --latest, or download " + RecommendedURL + " and give it with --base FILE)"

// PinLineFor is the cluster.yaml line that pins the image at rawURL with
// sha256 sum. A URL with anything but letters, digits and -._~:/%+= is
// double-quoted, since YAML flow mappings split or cut plain scalars at
// characters URLs may hold (",", "#", "{", and for yaml.v3 even "?"); a JSON
// string is a valid YAML double-quoted scalar.
func PinLineFor(rawURL, sum string) string {
	u := rawURL
	if u == "" || strings.IndexFunc(u, unsafeInFlow) >= 0 {
		u = strconv.Quote(u)
	}
	return "base: {url: " + u + ", sha256: " + strings.ToLower(sum) + "}"
}

func unsafeInFlow(r rune) bool {
	switch {
	case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		return false
	}
	return !strings.ContainsRune("-._~:/%+=", r)
}
