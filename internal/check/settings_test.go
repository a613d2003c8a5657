package check

import (
	"crypto/rand"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/magibake/magibake/internal/hostkey"
	"github.com/magibake/magibake/internal/overlay"
	"github.com/magibake/magibake/internal/plan"
	"github.com/magibake/magibake/internal/profile"
	"github.com/magibake/magibake/overlays"
)

// settingsTarget is melchior with every whole-Pi setting and a fixed home
// address, and the facts of a node that holds them all.
func settingsTarget(t *testing.T) (Target, Facts) {
	t.Helper()
	c, err := profile.Default(profile.Options{Getenv: func(k string) string { return testEnv[k] }})
	if err != nil {
		t.Fatal(err)
	}
	c.HomeGateway = netip.MustParseAddr("192.168.0.1")
	c.HomeDNS = []netip.Addr{c.HomeGateway}
	n, _ := c.Node("melchior")
	n.Home, n.HomeStatic = "192.168.0.23", true
	n.Settings = profile.Settings{
		Timezone:  "Europe/Berlin",
		Locale:    "de_DE.UTF-8",
		Keyboard:  &profile.Keyboard{Layout: "de", Model: "pc105"},
		ConfigTxt: []plan.ConfigLine{{Section: "all", Line: "dtparam=poe_fan_temp0=50000"}, {Section: "pi4", Line: "arm_boost=1"}},
		Packages:  []string{"tree"},
	}
	keys := hostkey.Keys{}
	for _, m := range c.Nodes {
		if keys[m.Hostname], err = hostkey.New(m.Hostname, rand.Reader); err != nil {
			t.Fatal(err)
		}
	}
	p, err := overlay.Render(c, keys, "melchior", []overlay.Tree{{FS: overlays.FS, Display: "overlays (embedded)", Origin: "magibake"}}, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	if err != nil {
		t.Fatal(err)
	}
	tg := Target{Cluster: c, Node: n, Plan: p, HostKey: keys["melchior"].Public, Upstream: netip.MustParseAddr("198.51.100.1")}
	f := healthy(tg)
	f["uplink"] = "3: wlan0    inet 192.168.0.23/24 brd 192.168.0.255 scope global noprefixroute wlan0"
	f["firstboot"] = "done"
	f["timezone"] = "Europe/Berlin"
	f["localectl"] = "System Locale: LANG=de_DE.UTF-8\n    VC Keymap: (unset)\n   X11 Layout: de\n    X11 Model: pc105"
	f["locale"] = "#ran"
	f["keymap"] = "newer"
	f["packages"] = "tree ii "
	var cfg plan.Op
	for _, op := range p.Final() {
		if op.Kind == plan.EditConfig {
			cfg = op
		}
	}
	f["config"] = plan.ApplyConfig("dtparam=audio=on\narm_boost=1\n[cm4]\notg_mode=1\n[all]\n", cfg.ConfigLines)
	return tg, f
}

// TestSettingsChecks breaks each setting on an otherwise healthy node: its
// check, and only it, fails, saying what the node holds.
func TestSettingsChecks(t *testing.T) {
	tg, good := settingsTarget(t)
	if fs := failures(Evaluate(tg, good)); len(fs) > 0 {
		t.Fatalf("healthy node fails: %+v", fs)
	}
	script := Script(tg)
	for _, want := range []string{"timedatectl show -p Timezone --value", "localectl status", "env -i LANG='de_DE.UTF-8' locale", "dpkg-query -W", "'tree'", "cat /boot/firmware/config.txt", "firstboot.done"} {
		if !strings.Contains(script, want) {
			t.Errorf("script lacks %q", want)
		}
	}
	tests := []struct {
		name, check, detail string
		breakF              func(Facts)
	}{
		{"first boot failed", "magibake first boot", "FAILED: apt-get install tree", func(f Facts) { f["firstboot"] = "x FAILED: apt-get install tree" }},
		{"time zone", "timezone", "timedatectl: Europe/London, want Europe/Berlin", func(f Facts) { f["timezone"] = "Europe/London" }},
		{"locale", "locale", "System Locale: LANG=en_GB.UTF-8, want LANG=de_DE.UTF-8", func(f Facts) {
			f["localectl"] = strings.Replace(f["localectl"], "de_DE", "en_GB", 1)
		}},
		{"locale not generated", "locale generated", "Cannot set LC_CTYPE", func(f Facts) {
			f["locale"] = "locale: Cannot set LC_CTYPE to default locale: No such file or directory\n#ran"
		}},
		{"locale not asked", "locale generated", "nothing", func(f Facts) { f["locale"] = "" }},
		{"keyboard", "keyboard", "X11 Layout gb, want de", func(f Facts) { f["localectl"] = strings.Replace(f["localectl"], "Layout: de", "Layout: gb", 1) }},
		{"keyboard variant", "keyboard", "X11 Variant nodeadkeys, want nothing", func(f Facts) { f["localectl"] += "\n  X11 Variant: nodeadkeys" }},
		{"keymap not cached", "console keymap", "not cached after /etc/default/keyboard", func(f Facts) {
			f["keymap"] = "ls: cannot access '/etc/console-setup/cached_setup_keyboard.sh': No such file or directory"
		}},
		{"home address from DHCP", "home address", "192.168.0.141/24, want exactly 192.168.0.23/24 (home_static)", func(f Facts) {
			f["uplink"] = "3: wlan0    inet 192.168.0.141/24 brd 192.168.0.255 scope global dynamic wlan0"
		}},
		{"home address and another", "home address", "want exactly 192.168.0.23/24 (home_static)", func(f Facts) {
			f["uplink"] += "\n3: wlan0    inet 192.168.0.141/24 brd 192.168.0.255 scope global secondary dynamic wlan0"
		}},
		{"package missing", "packages", "not installed: tree", func(f Facts) { f["packages"] = "dpkg-query: no packages found matching tree" }},
		{"package removed", "packages", "not installed: tree", func(f Facts) { f["packages"] = "tree rc " }},
		{"config.txt line gone", "file", "/boot/firmware/config.txt: lacks [pi4] arm_boost=1", func(f Facts) {
			f["config"] = strings.Replace(f["config"], "arm_boost=1\n[all]", "[all]", 1)
		}},
		{"config.txt contradicted", "file", "lacks [all] dtparam=poe_fan_temp0=50000", func(f Facts) { f["config"] += "dtparam=poe_fan_temp0=70000\n" }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f := Facts{}
			for k, v := range good {
				f[k] = v
			}
			tc.breakF(f)
			fs := failures(Evaluate(tg, f))
			if len(fs) == 0 {
				t.Fatalf("no check failed; want %s: %s", tc.check, tc.detail)
			}
			for _, r := range fs {
				if tc.check == "file" && r.Check == "baked files" {
					continue
				}
				if r.Check != tc.check || !strings.Contains(r.Detail, tc.detail) {
					t.Errorf("failed %s: %s; want only %s: ...%s...", r.Check, r.Detail, tc.check, tc.detail)
				}
			}
		})
	}
}
