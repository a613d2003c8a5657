package check

import (
	"fmt"
	"strings"
)

// settings judges the node's whole-Pi settings by what the system itself
// reports: the first-boot step, timedatectl, localectl, locale, dpkg. A
// fixed home address is the home address check's.
func (j *judge) settings() {
	f, n := j.f, j.t.Node
	set := n.Settings
	if HasFirstBoot(j.t.Plan) {
		done := f["firstboot"] == "done"
		j.add("magibake first boot", done, "%s", pick(done, "/var/lib/magibake/firstboot.done exists",
			"not done ("+FirstBootScript+"); its log ends: "+orNothing(strings.Join(lines(f["firstboot"]), " | "))))
	}
	if tz := set.Timezone; tz != "" {
		j.add("timezone", f["timezone"] == tz, "timedatectl: %s, want %s", orNothing(f["timezone"]), tz)
	}
	lc := localectl(f["localectl"])
	if l := set.Locale; l != "" {
		sys := lc["System Locale"]
		j.add("locale", sys == "LANG="+l, "localectl System Locale: %s, want LANG=%s", orNothing(sys), l)
		warn := strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(f["locale"]), "#ran"))
		ran := strings.HasSuffix(strings.TrimSpace(f["locale"]), "#ran")
		j.add("locale generated", ran && warn == "", "%s", pick(ran && warn == "", "LANG="+l+" locale: no warnings",
			"LANG="+l+" locale: "+orNothing(strings.Join(lines(warn), " | "))))
	}
	if k := set.Keyboard; k != nil {
		want := map[string]string{"X11 Layout": k.Layout, "X11 Model": k.Model, "X11 Variant": k.Variant, "X11 Options": k.Options}
		var bad []string
		for _, key := range []string{"X11 Layout", "X11 Model", "X11 Variant", "X11 Options"} {
			got := lc[key]
			if got == "n/a" {
				got = ""
			}
			if got != want[key] {
				bad = append(bad, fmt.Sprintf("%s %s, want %s", key, orNothing(got), orNothing(want[key])))
			}
		}
		j.add("keyboard", len(bad) == 0, "localectl: %s", pick(len(bad) == 0, "X11 Layout "+k.Layout, strings.Join(bad, "; ")))
		cached := f["keymap"] == "newer"
		j.add("console keymap", cached, "%s", pick(cached, keymapCache+" cached after /etc/default/keyboard",
			keymapCache+" not cached after /etc/default/keyboard: the console keeps the image's layout; "+orNothing(strings.Join(lines(f["keymap"]), " | "))))
	}
	if len(set.Packages) > 0 {
		installed := map[string]bool{}
		for _, l := range lines(f["packages"]) {
			if w := strings.Fields(l); len(w) == 2 && w[1] == "ii" {
				installed[w[0]] = true
			}
		}
		var missing []string
		for _, p := range set.Packages {
			if !installed[p] {
				missing = append(missing, p)
			}
		}
		j.add("packages", len(missing) == 0, "%s", pick(len(missing) == 0, "installed: "+strings.Join(set.Packages, " "),
			"not installed: "+strings.Join(missing, " ")))
	}
}

// localectl reads `localectl status` into its fields ("System Locale",
// "X11 Layout" ...); a field of several lines keeps its first.
func localectl(s string) map[string]string {
	out := map[string]string{}
	for _, l := range lines(s) {
		k, v, ok := strings.Cut(l, ":")
		if !ok {
			continue
		}
		k = strings.TrimSpace(k)
		if _, seen := out[k]; !seen && k != "" {
			out[k] = strings.TrimSpace(v)
		}
	}
	return out
}
