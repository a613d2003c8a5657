package cli

import (
	"fmt"
	"io"
	"path/filepath"
	"strings"

	"github.com/magibake/magibake/internal/build"
	"github.com/magibake/magibake/internal/profile"
)

// warnSecretFiles prints one line on w for each profile file holding a
// secret that group or others may read. The embedded profiles read their
// secrets from the environment and are never checked.
func warnSecretFiles(w io.Writer, s build.Sources) {
	if s.Profiles == "" {
		return
	}
	for _, line := range profile.SecretFileWarnings(s.Profiles, profile.Options{Getenv: s.Getenv}) {
		fmt.Fprintf(w, "magibake: %s\n", line)
	}
}

// warnNoWiFi prints one line on w when the uplink is a Wi-Fi interface but
// cluster.yaml has no wifi section. That is valid (Wi-Fi can be set up by
// hand later), but the cards then keep Wi-Fi off as Raspberry Pi OS ships
// it without a country: no node gets a home address and the head no uplink.
func warnNoWiFi(w io.Writer, s build.Sources, c *profile.Cluster) {
	if c == nil || c.WiFi != nil || !strings.HasPrefix(c.Uplink, "wl") {
		return
	}
	fmt.Fprintf(w, "magibake: warning: %s: uplink %s is Wi-Fi but there is no wifi section (ssid, passphrase, country): the cards keep Wi-Fi off (rfkill-blocked, no country) as Raspberry Pi OS ships it, so no node gets a home address and %s routes nothing out\n",
		filepath.Join(s.Profiles, "cluster.yaml"), c.Uplink, headName(c))
}

func headName(c *profile.Cluster) string {
	for _, n := range c.Nodes {
		if n.Role == profile.RoleHead {
			return n.Hostname
		}
	}
	return "the head"
}

// warnUnpinnedBase prints one line on w when cluster.yaml's base has a url
// but no sha256. That is valid, but not a pin: each fetch or build trusts
// whatever URL.sha256 publishes at that moment, and needs the network.
func warnUnpinnedBase(w io.Writer, s build.Sources, c *profile.Cluster) {
	if c == nil || c.Base.URL == "" || c.Base.SHA256 != "" {
		return
	}
	dir := s.Profiles
	if dir == "" {
		dir = "DIR"
	}
	fmt.Fprintf(w, "magibake: warning: %s: base has no sha256, so it is not pinned: fetch and build check it against %s.sha256 as published at the time; magibake fetch --profiles %s prints the line that pins it\n",
		filepath.Join(s.Profiles, "cluster.yaml"), c.Base.URL, dir)
}
