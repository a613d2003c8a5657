package overlay

import (
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/profile"
	"github.com/magibake/magibake/internal/testkit"
)

// settingsCluster is the default cluster with every whole-Pi setting on
// melchior, and balthasar on a fixed home address.
func settingsCluster(t *testing.T) *profile.Cluster {
	c := defaultCluster(t)
	c.HomeGateway = netip.MustParseAddr("192.168.0.1")
	c.HomeDNS = []netip.Addr{netip.MustParseAddr("192.168.0.1"), netip.MustParseAddr("1.1.1.1")}
	b, _ := c.Node("balthasar")
	b.Home, b.HomeStatic = "192.168.0.22", true
	m, _ := c.Node("melchior")
	m.Settings = profile.Settings{
		Timezone:  "Europe/Berlin",
		Locale:    "de_DE.UTF-8",
		Keyboard:  &profile.Keyboard{Layout: "de", Model: "pc105", Variant: "nodeadkeys", Options: "ctrl:nocaps"},
		ConfigTxt: []plan.ConfigLine{{Section: "all", Line: "dtparam=poe_fan_temp0=50000"}, {Section: "pi4", Line: "arm_boost=1"}},
		Packages:  []string{"tree"},
		Upgrade:   true,
	}
	return c
}

// TestSettingsFilesAcceptedByConsumers hands the files the settings bake to
// what reads them: localedef builds the locale LANG names, sh reads the
// locale and keyboard files as their readers source them, the zone link
// points at a zone tzdata ships, shellcheck and systemd-analyze take the
// first-boot script and unit.
func TestSettingsFilesAcceptedByConsumers(t *testing.T) {
	testkit.RequireTools(t, "localedef", "systemd-analyze", "shellcheck", "sh")
	c := settingsCluster(t)
	p := render(t, c, "melchior")
	dir := tree(t, p)

	if got := find(t, p, plan.Root, "/etc/localtime").Target; got != "../usr/share/zoneinfo/Europe/Berlin" {
		t.Errorf("/etc/localtime -> %q", got)
	}
	if b, err := os.ReadFile(filepath.Join("/etc", find(t, p, plan.Root, "/etc/localtime").Target)); err != nil || !strings.HasPrefix(string(b), "TZif") {
		t.Errorf("the link's zone, read from the host's tzdata: %v %.4q", err, b)
	}
	if got := string(find(t, p, plan.Root, "/etc/timezone").Content); got != "Europe/Berlin\n" {
		t.Errorf("/etc/timezone %q", got)
	}

	if got := find(t, p, plan.Root, "/etc/default/locale").Target; got != "../locale.conf" {
		t.Errorf("/etc/default/locale -> %q", got)
	}
	sourced := func(file, vars string) string {
		out, err := exec.Command("env", "-i", "sh", "-c", `. "$1"; printf '%s' "`+vars+`"`, "sh", file).CombinedOutput()
		if err != nil {
			t.Fatalf("sh . %s: %v\n%s", file, err, out)
		}
		return string(out)
	}
	if got := sourced(filepath.Join(dir, "etc/locale.conf"), "$LANG"); got != "de_DE.UTF-8" {
		t.Errorf("locale.conf gives LANG=%q", got)
	}
	// What locale-gen runs for the line the first boot enables.
	if out, err := exec.Command("localedef", "-i", "de_DE", "-f", "UTF-8", filepath.Join(t.TempDir(), "de_DE.UTF-8")).CombinedOutput(); err != nil {
		t.Errorf("localedef -i de_DE -f UTF-8: %v\n%s", err, out)
	}
	if got := sourced(filepath.Join(dir, "etc/default/keyboard"), "$XKBMODEL|$XKBLAYOUT|$XKBVARIANT|$XKBOPTIONS|$BACKSPACE"); got != "pc105|de|nodeadkeys|ctrl:nocaps|guess" {
		t.Errorf("keyboard file gives %q", got)
	}
	cfg := find(t, p, plan.Boot, "/config.txt")
	if cfg.Kind != plan.EditConfig || len(cfg.ConfigLines) != 2 || cfg.ConfigLines[1] != (plan.ConfigLine{Section: "pi4", Line: "arm_boost=1"}) {
		t.Errorf("config.txt edit %+v", cfg)
	}
	verifyUnitsAndScripts(t, p, dir)
	script := string(find(t, p, plan.Root, "/usr/local/sbin/magibake-firstboot").Content)
	for _, want := range []string{`locale="de_DE.UTF-8"`, "locale-gen", "rm -f /etc/console-setup/cached_* && setupcon", "find /etc/console-setup/cached_setup_keyboard.sh -newer /etc/default/keyboard", `wanted="tree"`, `ensure "packages" tree`, "full-upgrade"} {
		if !strings.Contains(script, want) {
			t.Errorf("firstboot lacks %q", want)
		}
	}
	if strings.Contains(script, "isc-dhcp-server") {
		t.Errorf("a worker's firstboot installs the head's DHCP server")
	}
	want := map[string]bool{
		"/usr/share/zoneinfo/Europe/Berlin": true, "/usr/share/i18n/locales/de_DE": true, "/usr/share/X11/xkb/symbols/de": true,
		`/usr/share/X11/xkb/rules/base.lst pc105\s+`: true, `/usr/share/X11/xkb/rules/base.lst nodeadkeys\s+de:`: true,
		`/usr/share/X11/xkb/rules/base.lst ctrl:nocaps\s+`: true,
	}
	for _, e := range p.Expects {
		k := strings.TrimSpace(e.Path + " " + e.Contains)
		if !want[k] {
			t.Errorf("unexpected expect %s", k)
		}
		delete(want, k)
	}
	// The rules list as xkb-data ships it: each pattern finds its line.
	rules, err := os.ReadFile("/usr/share/X11/xkb/rules/base.lst")
	if err != nil {
		t.Fatalf("xkb-data's rules list: %v", err)
	}
	for _, e := range p.Expects {
		if e.Contains != "" && !regexp.MustCompile(`(?m)^\s*`+e.Contains).Match(rules) {
			t.Errorf("%s: no line matches %q", e.Path, e.Contains)
		}
	}
	if len(want) > 0 {
		t.Errorf("expects missing: %v", want)
	}

	// A node without settings gets none of it, and no first boot (workers).
	q := render(t, c, "balthasar")
	for _, op := range q.Ops {
		switch op.Path {
		case "/etc/localtime", "/etc/timezone", "/etc/locale.conf", "/etc/default/locale", "/etc/default/keyboard", "/config.txt", "/usr/local/sbin/magibake-firstboot":
			t.Errorf("balthasar without settings gets %s", op.Path)
		}
	}
}
