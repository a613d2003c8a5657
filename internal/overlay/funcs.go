package overlay

import (
	"crypto/pbkdf2"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
)

// wpaPSK is what wpa_passphrase and the official imaging tool store: the
// 256-bit WPA key PBKDF2-SHA1(passphrase, SSID, 4096, 32) in hex, so the
// passphrase itself never lands on the card. A 64-hex-digit "passphrase" is
// already such a key and is kept as it is.
func wpaPSK(ssid, passphrase string) (string, error) {
	if len(passphrase) == 64 {
		if _, err := hex.DecodeString(passphrase); err == nil {
			return strings.ToLower(passphrase), nil
		}
	}
	key, err := pbkdf2.Key(sha1.New, passphrase, []byte(ssid), 4096, 32)
	if err != nil {
		return "", fmt.Errorf("wpapsk: %w", err)
	}
	return hex.EncodeToString(key), nil
}

// keyfileSSID writes an SSID for a NetworkManager keyfile: as text when NM
// reads it back unchanged, else as the semicolon-separated byte list the
// keyfile format also accepts (an SSID may hold any bytes, ';' included).
func keyfileSSID(ssid string) string {
	plain := ssid != "" && ssid == strings.TrimSpace(ssid)
	for _, c := range []byte(ssid) {
		if c < 0x20 || c >= 0x7f || c == ';' || c == '\\' {
			plain = false
		}
	}
	if plain && strings.Trim(ssid, "0123456789") != "" {
		return ssid
	}
	var b strings.Builder
	for _, c := range []byte(ssid) {
		fmt.Fprintf(&b, "%d;", c)
	}
	return b.String()
}

// keyfileString writes a string value for a NetworkManager keyfile the way
// GLib's key file writer does, so NM reads back exactly s: a backslash is
// doubled and leading spaces become \s (GLib skips them otherwise).
func keyfileString(s string) string {
	s = strings.ReplaceAll(s, `\`, `\\`)
	body := strings.TrimLeft(s, " ")
	return strings.Repeat(`\s`, len(s)-len(body)) + body
}

// stableUUID derives a UUID (version 5 layout) from names, so a card baked
// twice gets the same NetworkManager connection UUIDs.
func stableUUID(names ...string) string {
	h := sha1.Sum([]byte("magibake\x00" + strings.Join(names, "\x00")))
	h[6] = h[6]&0x0f | 0x50
	h[8] = h[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", h[0:4], h[4:6], h[6:8], h[8:10], h[10:16])
}

// decodePath undoes %XX escapes in overlay file names, for characters a Go
// module cannot hold in a file name (":" as in "platform-fe300000.mmcnr:wlan").
func decodePath(p string) (string, error) {
	if !strings.Contains(p, "%") {
		return p, nil
	}
	return url.PathUnescape(p)
}

// quote writes s as a double-quoted string that YAML (a JSON superset) and
// JSON read back exactly, whatever s holds.
func quote(s string) string {
	b, _ := json.Marshal(s) // a string always marshals
	return string(b)
}
