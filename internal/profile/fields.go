package profile

import (
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
)

// Each check returns "" when s is acceptable, else the reason, worded to
// follow "FIELD: ". Secrets are never quoted back: messages end up in logs.

var (
	labelRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	// userconf-pi's own rule (userconf-service validate_user): the first
	// boot refuses any other name and leaves the card without a user.
	userNameRE = regexp.MustCompile(`^[a-z][a-z0-9-]{0,31}$`)
	hexRE      = regexp.MustCompile(`^[0-9a-fA-F]+$`)
)

// labelProblem accepts an RFC 1123 host name label.
func labelProblem(s string) string {
	if labelRE.MatchString(s) {
		return ""
	}
	return fmt.Sprintf("want 1-63 lower-case letters, digits and '-', not starting or ending with '-', got %s", quote(s))
}

func domainProblem(s string) string {
	if len(s) > 253 {
		return fmt.Sprintf("want a DNS domain of at most 253 characters, got %d", len(s))
	}
	for _, l := range strings.Split(s, ".") {
		if !labelRE.MatchString(l) {
			return fmt.Sprintf("want a DNS domain like cluster or magi.lan (lower-case labels separated by '.'), got %s", quote(s))
		}
	}
	return ""
}

// parseMAC accepts the address of one Ethernet interface: six octets,
// unicast, not all zero.
func parseMAC(s string) (net.HardwareAddr, string) {
	mac, err := net.ParseMAC(s)
	if err != nil || len(mac) != 6 {
		return nil, fmt.Sprintf("want a MAC address like dc:a6:32:01:02:03, got %s", quote(s))
	}
	if mac[0]&1 != 0 {
		return nil, fmt.Sprintf("%s is a multicast address; want the unicast address of the node's Ethernet port", mac)
	}
	if string(mac) == "\x00\x00\x00\x00\x00\x00" {
		return nil, "00:00:00:00:00:00 is not a real MAC address"
	}
	return mac, ""
}

// interfaceProblem mirrors the kernel's dev_valid_name.
func interfaceProblem(s string) string {
	if s == "" || len(s) > 15 || s == "." || s == ".." || strings.ContainsAny(s, "/: \t\n\r\v\f") {
		return fmt.Sprintf("want a network interface name like wlan0 (1-15 characters, no '/', ':' or spaces), got %s", quote(s))
	}
	return ""
}

func ssidProblem(s string) string {
	if n := len(s); n < 1 || n > 32 {
		return fmt.Sprintf("want 1-32 bytes, got %d", n)
	}
	return ""
}

// passphraseProblem accepts a WPA passphrase or a raw 256-bit PSK in hex.
func passphraseProblem(s string) string {
	if len(s) == 64 && hexRE.MatchString(s) {
		return ""
	}
	for _, r := range s {
		if r < 0x20 || r > 0x7e {
			return "want 8-63 printable ASCII characters or 64 hex digits; it holds a character outside printable ASCII"
		}
	}
	if n := len(s); n < 8 || n > 63 {
		return fmt.Sprintf("want 8-63 printable ASCII characters or 64 hex digits, got %d characters", n)
	}
	return ""
}

// country returns the upper-case ISO 3166 alpha-2 code in s.
func country(s string) (string, string) {
	if len(s) != 2 || !isLetter(s[0]) || !isLetter(s[1]) {
		return "", fmt.Sprintf("want a two-letter country code like GB or DE, got %s", quote(s))
	}
	return strings.ToUpper(s), ""
}

func isLetter(c byte) bool { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') }

func userNameProblem(s string) string {
	if s == "root" {
		return "root cannot be the login user; pick an ordinary user name"
	}
	if !userNameRE.MatchString(s) {
		return fmt.Sprintf("want a user name Raspberry Pi OS's first boot accepts (a lower-case letter, then up to 31 of a-z, 0-9, '-'), got %s", quote(s))
	}
	return ""
}

// passwordHashProblem accepts what crypt(3) produces, e.g. from
// `openssl passwd -6` (or `mkpasswd -m yescrypt`); the hash lands in "user:hash" lines, so ':' and
// whitespace would corrupt them.
func passwordHashProblem(s string) string {
	if len(s) < 2 || s[0] != '$' || strings.ContainsAny(s, ": \t\n\r\v\f") {
		return "want a crypt hash starting with '$' and holding no ':' or spaces, e.g. from `openssl passwd -6` (never the password itself)"
	}
	return ""
}

func knownKeyType(t string) bool {
	return t == "ssh-ed25519" || t == "ssh-rsa" || strings.HasPrefix(t, "ecdsa-sha2-") || strings.HasPrefix(t, "sk-")
}

// sshKeys splits text into authorized_keys lines, dropping blank lines and
// comments, and returns the problem with the first bad line.
func sshKeys(text string) ([]string, string) {
	var keys []string
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		if msg := sshKeyProblem(line); msg != "" {
			return nil, fmt.Sprintf("line %d: %s", i+1, msg)
		}
		keys = append(keys, line)
	}
	return keys, ""
}

// sshKeyProblem accepts "type base64 [comment]" whose key blob names the same
// type, which catches keys cut short or pasted into the wrong place.
func sshKeyProblem(line string) string {
	f := strings.Fields(line)
	if len(f) < 2 {
		return fmt.Sprintf("want an SSH public key like \"ssh-ed25519 AAAA... comment\", got %s", quote(line))
	}
	if !knownKeyType(f[0]) {
		return fmt.Sprintf("unknown SSH key type %s (want ssh-ed25519, ssh-rsa, ecdsa-sha2-* or sk-*; options before the key are not supported)", quote(f[0]))
	}
	blob, err := base64.StdEncoding.DecodeString(f[1])
	if err != nil {
		return fmt.Sprintf("%s key: the key data is not valid base64", f[0])
	}
	if len(blob) < 4 {
		return fmt.Sprintf("%s key: the key data is too short", f[0])
	}
	n := binary.BigEndian.Uint32(blob)
	if uint64(n) > uint64(len(blob)-4) || string(blob[4:4+n]) != f[0] {
		return fmt.Sprintf("%s key: the key data is not a %s key", f[0], f[0])
	}
	return ""
}

func parseSHA256(s string) (string, string) {
	if len(s) != 64 || !hexRE.MatchString(s) {
		return "", fmt.Sprintf("want 64 hex digits, got %s", quote(s))
	}
	return strings.ToLower(s), ""
}

func urlProblem(s string) string {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http" && u.Scheme != "file") || (u.Scheme != "file" && u.Host == "") {
		return fmt.Sprintf("want an https://, http:// or file:// URL, got %s", quote(s))
	}
	return ""
}

func parseIPv4(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	return a, err == nil && a.Is4()
}

// broadcast returns the last address of p.
func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	v := binary.BigEndian.Uint32(b[:]) | (1<<(32-p.Bits()) - 1)
	binary.BigEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}

// hostAddr says why a is no usable host address in subnet, or "".
func hostAddr(subnet netip.Prefix, a netip.Addr) string {
	switch {
	case !subnet.Contains(a):
		return fmt.Sprintf("%s is outside the subnet %s", a, subnet)
	case a == subnet.Addr():
		return fmt.Sprintf("%s is the network address of %s", a, subnet)
	case a == broadcast(subnet):
		return fmt.Sprintf("%s is the broadcast address of %s", a, subnet)
	}
	return ""
}
