package profile

import (
	"reflect"
	"strings"
	"testing"

	"github.com/magibake/magibake/internal/plan"
)

// TestSettings: the whole-Pi settings given at three levels land on each
// node, its own over its role's over the cluster's, lists accumulated.
func TestSettings(t *testing.T) {
	const last = "  sha256: " + sum + "\n"
	files := edit(t, []string{last, last + `home_gateway: 192.168.0.1
timezone: Europe/Berlin
locale: de_DE.UTF-8
keyboard: de
poe_fan: [50, 60, 70, 80]
config_txt:
  pi4: [arm_boost=1]
packages: [htop]
roles:
  worker:
    keyboard: {layout: us, variant: intl}
    config_txt: [gpu_mem=16]
    packages: [tree, htop]
`}, map[string]string{
		"melchior.yaml": "hostname: melchior\nrole: worker\ntimezone: UTC\nupgrade: full\nconfig_txt: [gpu_mem=32]\nhome_address: 192.168.0.23\nhome_static: true\n",
	})
	c, err := LoadDir(writeDir(t, files), Options{Getenv: noEnv})
	if err != nil {
		t.Fatal(err)
	}
	head, _ := c.Node("caspar")
	m, _ := c.Node("melchior")
	want := Settings{
		Timezone: "Europe/Berlin", Locale: "de_DE.UTF-8", Keyboard: &Keyboard{Layout: "de", Model: "pc105"},
		ConfigTxt: []plan.ConfigLine{{Section: "pi4", Line: "arm_boost=1"}, {Section: "all", Line: "dtparam=poe_fan_temp0=50000"}, {Section: "all", Line: "dtparam=poe_fan_temp1=60000"},
			{Section: "all", Line: "dtparam=poe_fan_temp2=70000"}, {Section: "all", Line: "dtparam=poe_fan_temp3=80000"}},
		Packages: []string{"htop"},
	}
	got := head.Settings
	got.At = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("caspar: %+v\nwant %+v", got, want)
	}
	if at := head.Settings.At["timezone"]; !strings.HasSuffix(at, "cluster.yaml:26") {
		t.Errorf("timezone given at %q, want cluster.yaml:26", at)
	}
	want.Timezone, want.Upgrade = "UTC", true
	want.Keyboard = &Keyboard{Layout: "us", Model: "pc105", Variant: "intl"}
	want.ConfigTxt = append(want.ConfigTxt, plan.ConfigLine{Section: "all", Line: "gpu_mem=16"}, plan.ConfigLine{Section: "all", Line: "gpu_mem=32"})
	want.Packages = []string{"htop", "tree"}
	got = m.Settings
	got.At = nil
	if !reflect.DeepEqual(got, want) {
		t.Errorf("melchior: %+v\nwant %+v", got, want)
	}
	if !m.HomeStatic || m.Home != "192.168.0.23" || c.HomeDNS[0].String() != "192.168.0.1" {
		t.Errorf("melchior home %q static %v, DNS %v", m.Home, m.HomeStatic, c.HomeDNS)
	}
}

// TestSettingsProblems: each bad value is one file:line error saying what
// is wrong and what is wanted.
func TestSettingsProblems(t *testing.T) {
	const last = "  sha256: " + sum + "\n" // line 24 of validCluster
	tests := []struct {
		name, line, node, where, msg string
	}{
		{"zone", "timezone: Europe/berlin/x/y\n", "", "cluster.yaml:25: timezone", "not a time zone name"},
		{"zone file", "timezone: zone.tab\n", "", "cluster.yaml:25: timezone", "not a time zone name"},
		{"posix zone", "timezone: posix/Europe/Berlin\n", "", "cluster.yaml:25: timezone", "not a time zone name"},
		{"locale charset", "locale: de_DE.utf8\n", "", "cluster.yaml:25: locale", "write the charset as UTF-8, as /usr/share/i18n/SUPPORTED does: de_DE.UTF-8"},
		{"locale latin1", "locale: de_DE\n", "", "cluster.yaml:25: locale", "not a UTF-8 locale name"},
		{"locale modifier first", "locale: sr_RS@latin.UTF-8\n", "", "cluster.yaml:25: locale", "the modifier goes after the charset, as /usr/share/i18n/SUPPORTED has it: sr_RS.UTF-8@latin"},
		{"locale modifier utf8", "locale: sr_RS.utf8@latin\n", "", "cluster.yaml:25: locale", "write the charset as UTF-8, as /usr/share/i18n/SUPPORTED does: sr_RS.UTF-8@latin"},
		{"keyboard", "keyboard: Deutsch\n", "", "cluster.yaml:25: keyboard", "not an XKB layout name"},
		{"keyboard key", "keyboard: {layout: de, modle: pc105}\n", "", "cluster.yaml:25: keyboard.modle", `unknown key (did you mean "model"?)`},
		{"keyboard no layout", "keyboard: {model: pc105}\n", "", "cluster.yaml:25: keyboard.layout", "missing"},
		{"config section line", "config_txt: [\"[pi4]\", arm_boost=1]\n", "", "cluster.yaml:25: config_txt[0]", "sections are keys of config_txt"},
		{"config section", "config_txt: {pi6: [arm_boost=1]}\n", "", "cluster.yaml:25: config_txt.pi6", "unknown key"},
		{"config line", "config_txt: [arm boost]\n", "", "cluster.yaml:25: config_txt[0]", "want a config.txt line property=value"},
		{"config comment", "config_txt: [\"gpu_mem=16 # small\"]\n", "", "cluster.yaml:25: config_txt[0]", "without a comment"},
		{"config include", "config_txt: [include=extra.txt]\n", "", "cluster.yaml:25: config_txt[0]", "include is not supported"},
		{"config overlay reset", "config_txt: [dtoverlay=]\n", "", "cluster.yaml:25: config_txt[0]", "without an overlay name"},
		{"poe three", "poe_fan: [50, 60, 70]\n", "", "cluster.yaml:25: poe_fan", "got 3 values"},
		{"poe falling", "poe_fan: [50, 60, 55, 70]\n", "", "cluster.yaml:25: poe_fan[2]", "55°C is not above the threshold before it (60°C)"},
		{"poe hot", "poe_fan: [50, 60, 70, 95]\n", "", "cluster.yaml:25: poe_fan[3]", "from 20 to 85"},
		{"package", "packages: [Tree]\n", "", "cluster.yaml:25: packages[0]", "not a Debian package name"},
		{"upgrade", "upgrade: yes\n", "", "cluster.yaml:25: upgrade", "want full (apt-get full-upgrade once at first boot) or none"},
		{"role", "roles: {boss: {timezone: UTC}}\n", "", "cluster.yaml:25: roles.boss", "unknown key"},
		{"role setting", "roles: {worker: {timezone: utc}}\n", "", "cluster.yaml:25: roles.worker.timezone", "not a time zone name"},
		{"gateway outside", "home_gateway: 192.168.1.1\n", "", "cluster.yaml:25: home_gateway", "192.168.0.0/24"},
		{"dns without gateway", "home_dns: [192.168.0.1]\n", "", "cluster.yaml:25: home_dns", "needs home_gateway"},
		{"static without gateway", "", "hostname: melchior\nrole: worker\nhome_address: 192.168.0.23\nhome_static: true\n", "melchior.yaml:4: home_static", "needs home_network and home_gateway"},
		{"static by name", "home_gateway: 192.168.0.1\n", "hostname: melchior\nrole: worker\nhome_address: melchior.lan\nhome_static: true\n", "melchior.yaml:4: home_static", `needs home_address as an IPv4 address`},
		{"static on the broadcast", "home_gateway: 192.168.0.1\n", "hostname: melchior\nrole: worker\nhome_address: 192.168.0.255\nhome_static: true\n", "melchior.yaml:3: home_address", "broadcast"},
		{"static on the gateway", "home_gateway: 192.168.0.1\n", "hostname: melchior\nrole: worker\nhome_address: 192.168.0.1\nhome_static: true\n", "melchior.yaml:3: home_address", "is home_gateway"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var override map[string]string
			if tt.node != "" {
				override = map[string]string{"melchior.yaml": tt.node}
			}
			_, err := LoadDir(writeDir(t, edit(t, []string{last, last + tt.line}, override)), Options{Getenv: noEnv})
			ps := problems(t, err)
			if len(ps) != 1 {
				t.Fatalf("got %d problems (%v), want 1", len(ps), err)
			}
			if got := ps[0].Error(); !strings.Contains(got, tt.where+": ") || !strings.Contains(got, tt.msg) {
				t.Errorf("problem %q, want %q and %q", got, tt.where, tt.msg)
			}
		})
	}
}
