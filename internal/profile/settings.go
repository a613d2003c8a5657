package profile

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/magibake/magibake/internal/plan"
)

// Settings are the whole-Pi settings: time zone, locale, keyboard,
// config.txt lines, packages. cluster.yaml gives them for every node, its
// roles: section for the head or the workers, a node file for its nodes;
// the node's own win.
type Settings struct {
	Timezone string    // IANA name, e.g. Europe/Berlin; "" keeps the base's
	Locale   string    // e.g. de_DE.UTF-8; "" keeps the base's
	Keyboard *Keyboard // nil keeps the base's
	// ConfigTxt are lines for the boot partition's config.txt, cluster's
	// first, then the role's, then the node's: a later line of the same key
	// and section replaces an earlier one, as the firmware reads them.
	ConfigTxt []plan.ConfigLine
	// Packages are installed at first boot (from offline_debs when there).
	Packages []string
	// Upgrade runs apt-get full-upgrade once at first boot.
	Upgrade bool
	// At says where each setting was last given ("profiles/cluster.yaml:12"),
	// for problems only the base can show (a zone it does not ship).
	At map[string]string
}

// Keyboard is the console keyboard, as /etc/default/keyboard holds it.
type Keyboard struct {
	Layout, Model, Variant, Options string
}

// settingKeys are the keys a settings mapping takes, at every level.
var settingKeys = []string{"timezone", "locale", "keyboard", "config_txt", "poe_fan", "packages", "upgrade"}

// partial is one level's settings as read: nil/empty means not given.
type partial struct {
	timezone, locale *string
	keyboard         *Keyboard
	config           []plan.ConfigLine
	packages         []string
	upgrade          *bool
	at               map[string]string
}

// settingFields returns the field functions that read the setting keys of
// one level into p, for d.mapping.
func (d *doc) settingFields(p *partial) map[string]func(string, *yaml.Node) {
	here := func(key string, v *yaml.Node) {
		if p.at == nil {
			p.at = map[string]string{}
		}
		p.at[key] = fmt.Sprintf("%s:%d", d.file, resolve(v).Line)
	}
	var poe []plan.ConfigLine
	return map[string]func(string, *yaml.Node){
		"timezone": d.name(&p.timezone, "a time zone like Europe/Berlin", timezoneProblem, here),
		"locale":   d.name(&p.locale, "a locale like de_DE.UTF-8", localeProblem, here),
		"keyboard": func(f string, v *yaml.Node) {
			if k, ok := d.keyboard(f, v); ok {
				p.keyboard = k
				here("keyboard", v)
			}
		},
		"config_txt": func(f string, v *yaml.Node) {
			lines := d.configTxt(f, v)
			// poe_fan's lines come after, whichever key came first.
			p.config = append(lines, poe...)
		},
		"poe_fan": func(f string, v *yaml.Node) {
			poe = d.poeFan(f, v)
			p.config = append(p.config, poe...)
		},
		"packages": func(f string, v *yaml.Node) {
			items, ok := d.list(f, v, "a list of Debian package names")
			if !ok {
				return
			}
			for i, it := range items {
				s, ok := d.scalar(item(f, i), it, "a Debian package name")
				if !ok {
					continue
				}
				if !packageName.MatchString(s) {
					d.fail(resolve(it), item(f, i), "%s is not a Debian package name (lower case letters, digits, + - . and at least two characters)", quote(s))
					continue
				}
				if !slices.Contains(p.packages, s) {
					p.packages = append(p.packages, s)
				}
			}
		},
		"upgrade": func(f string, v *yaml.Node) {
			s, ok := d.scalar(f, v, "full or none")
			if !ok {
				return
			}
			switch s {
			case "full", "none":
				b := s == "full"
				p.upgrade = &b
			default:
				d.fail(resolve(v), f, "want full (apt-get full-upgrade once at first boot) or none, got %s", quote(s))
			}
		},
	}
}

// withSettings adds the setting keys, read into p, to a file's fields.
func (d *doc) withSettings(p *partial, fields map[string]func(string, *yaml.Node)) map[string]func(string, *yaml.Node) {
	for k, fn := range d.settingFields(p) {
		fields[k] = fn
	}
	return fields
}

// name reads a setting that is one checked name (a time zone, a locale)
// into *dst; problem says what is wrong with a value, or "".
func (d *doc) name(dst **string, want string, problem func(string) string, here func(string, *yaml.Node)) func(string, *yaml.Node) {
	return func(f string, v *yaml.Node) {
		s, ok := d.scalar(f, v, want)
		if !ok {
			return
		}
		if msg := problem(s); msg != "" {
			d.fail(resolve(v), f, "%s", msg)
			return
		}
		*dst = &s
		here(f[strings.LastIndex(f, ".")+1:], v)
	}
}

// merge lays the levels over each other, first to last; the last given wins.
func merge(levels ...*partial) Settings {
	var s Settings
	for _, p := range levels {
		if p == nil {
			continue
		}
		if p.timezone != nil {
			s.Timezone = *p.timezone
		}
		if p.locale != nil {
			s.Locale = *p.locale
		}
		if p.keyboard != nil {
			s.Keyboard = p.keyboard
		}
		s.ConfigTxt = append(s.ConfigTxt, p.config...)
		for _, pkg := range p.packages {
			if !slices.Contains(s.Packages, pkg) {
				s.Packages = append(s.Packages, pkg)
			}
		}
		if p.upgrade != nil {
			s.Upgrade = *p.upgrade
		}
		for k, v := range p.at {
			if s.At == nil {
				s.At = map[string]string{}
			}
			s.At[k] = v
		}
	}
	return s
}

// roles reads cluster.yaml's roles: section, the settings for the head and
// for the workers.
func (d *doc) roles(f string, v *yaml.Node, out map[Role]*partial) {
	d.mapping(v, f, map[string]func(string, *yaml.Node){
		"head":   func(f string, v *yaml.Node) { out[RoleHead] = d.settingsMap(f, v) },
		"worker": func(f string, v *yaml.Node) { out[RoleWorker] = d.settingsMap(f, v) },
	})
}

func (d *doc) settingsMap(f string, v *yaml.Node) *partial {
	p := &partial{}
	d.mapping(v, f, d.settingFields(p))
	return p
}

var (
	// zoneName is what tzdata names zones: Area/Location or a single word
	// (UTC); the capital keeps out zoneinfo's other files (zone.tab,
	// posixrules, leapseconds) and the posix/ and right/ trees.
	zoneName = regexp.MustCompile(`^[A-Z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$`)
	// localeName is a UTF-8 locale as /usr/share/i18n/SUPPORTED spells it:
	// de_DE.UTF-8, eo.UTF-8, sr_RS.UTF-8@latin.
	localeName = regexp.MustCompile(`^([a-z]{2,3}(_[A-Z]{2})?|C)\.UTF-8(@[a-z]+)?$`)
	// xkbName is an XKB layout, model or variant name; xkbOptions a list of
	// options like ctrl:nocaps,compose:ralt. Both go into a shell-quoted file.
	xkbName    = regexp.MustCompile(`^[a-z0-9][a-z0-9_()-]*$`)
	xkbLayouts = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*(,[a-z0-9][a-z0-9_-]*){0,3}$`)
	xkbOptions = regexp.MustCompile(`^[a-z0-9_]+:[a-z0-9_]+(,[a-z0-9_]+:[a-z0-9_]+)*$`)
	// packageName is Debian policy's package name.
	packageName = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)
	// configKey is a config.txt property name.
	configKey = regexp.MustCompile(`^[a-z0-9_]+$`)
	// configSections are the model filters of config.txt sections.
	configSections = []string{"all", "pi1", "pi2", "pi3", "pi3+", "pi4", "pi400", "pi5", "pi500", "pi0", "pi0w", "pi02",
		"cm1", "cm3", "cm3+", "cm4", "cm4s", "cm5"}
)

func timezoneProblem(s string) string {
	if strings.HasPrefix(s, "posix/") || strings.HasPrefix(s, "right/") || !zoneName.MatchString(s) {
		return fmt.Sprintf("%s is not a time zone name; want an IANA name like Europe/Berlin or UTC", quote(s))
	}
	return ""
}

func localeProblem(s string) string {
	if localeName.MatchString(s) {
		return ""
	}
	lang, charset, _ := strings.Cut(s, ".")
	lang, mod, _ := strings.Cut(lang, "@")
	if m, ok := strings.CutPrefix(charset, "utf8"); ok && mod == "" {
		if want := lang + ".UTF-8" + m; localeName.MatchString(want) {
			return fmt.Sprintf("%s: write the charset as UTF-8, as /usr/share/i18n/SUPPORTED does: %s", quote(s), want)
		}
	}
	if want := lang + "." + charset + "@" + mod; mod != "" && localeName.MatchString(want) {
		return fmt.Sprintf("%s: the modifier goes after the charset, as /usr/share/i18n/SUPPORTED has it: %s", quote(s), want)
	}
	return fmt.Sprintf("%s is not a UTF-8 locale name; want one like de_DE.UTF-8 or en_GB.UTF-8", quote(s))
}

// keyboard reads a layout name, or a mapping of layout, model, variant and
// options.
func (d *doc) keyboard(f string, v *yaml.Node) (*Keyboard, bool) {
	k := &Keyboard{Model: "pc105"}
	r := resolve(v)
	if r != nil && r.Kind == yaml.ScalarNode {
		if !xkbLayouts.MatchString(r.Value) {
			d.fail(r, f, "%s is not an XKB layout name; want one like de, us or gb", quote(r.Value))
			return nil, false
		}
		k.Layout = r.Value
		return k, true
	}
	field := func(re *regexp.Regexp, want string, dst *string) func(string, *yaml.Node) {
		return func(f string, v *yaml.Node) {
			s, ok := d.scalar(f, v, want)
			if !ok {
				return
			}
			if !re.MatchString(s) {
				d.fail(resolve(v), f, "want %s, got %s", want, quote(s))
				return
			}
			*dst = s
		}
	}
	bad := len(*d.errs)
	keys, ok := d.mapping(v, f, map[string]func(string, *yaml.Node){
		"layout":  field(xkbLayouts, "an XKB layout like de (or up to four, comma-separated)", &k.Layout),
		"model":   field(xkbName, "an XKB model like pc105", &k.Model),
		"variant": field(xkbName, "an XKB variant like nodeadkeys", &k.Variant),
		"options": field(xkbOptions, "XKB options like ctrl:nocaps,compose:ralt", &k.Options),
	})
	if !ok {
		return nil, false
	}
	d.require(keys, f, "layout")
	return k, len(*d.errs) == bad
}

// configTxt reads config_txt: a list of lines for [all], or a mapping of
// section names to lists of lines.
func (d *doc) configTxt(f string, v *yaml.Node) []plan.ConfigLine {
	var out []plan.ConfigLine
	lines := func(section, f string, v *yaml.Node) {
		items, ok := d.list(f, v, "a list of config.txt lines like gpu_mem=16")
		if !ok {
			return
		}
		for i, it := range items {
			s, ok := d.scalar(item(f, i), it, "a config.txt line like gpu_mem=16")
			if !ok {
				continue
			}
			if msg := configLineProblem(s); msg != "" {
				d.fail(resolve(it), item(f, i), "%s", msg)
				continue
			}
			l := plan.ConfigLine{Section: section, Line: s}
			// What the edit itself cannot write, in its words.
			if err := l.Validate(); err != nil {
				d.fail(resolve(it), item(f, i), "%v", err)
				continue
			}
			out = append(out, l)
		}
	}
	r := resolve(v)
	if r != nil && r.Kind == yaml.MappingNode {
		fields := map[string]func(string, *yaml.Node){}
		for _, s := range configSections {
			fields[s] = func(f string, v *yaml.Node) { lines(s, f, v) }
		}
		d.mapping(v, f, fields)
		return out
	}
	lines("all", f, v)
	return out
}

// configLineProblem says what keeps s from being one config.txt property
// line, as the firmware reads them.
func configLineProblem(s string) string {
	key, val, ok := strings.Cut(s, "=")
	switch {
	case key == "dtoverlay" && strings.TrimSpace(val) == "":
		return "dtoverlay= without an overlay name ends an overlay's parameters; magibake places dtparam lines itself"
	case strings.HasPrefix(s, "["):
		return fmt.Sprintf("%s: sections are keys of config_txt, e.g. config_txt: {pi4: [arm_boost=1]}", quote(s))
	case !ok || !configKey.MatchString(key):
		return fmt.Sprintf("want a config.txt line property=value like gpu_mem=16, got %s", quote(s))
	case strings.ContainsAny(s, "\n\r#"):
		return fmt.Sprintf("%s: one property=value, without a comment", quote(s))
	case len(s) > 98:
		return fmt.Sprintf("%d characters; the firmware reads at most 98 of a line", len(s))
	case key == "include":
		return "include is not supported: list the lines themselves"
	}
	return ""
}

// poeFan reads the PoE HAT fan's four thresholds in degrees Celsius and
// turns them into the dtparam lines its overlay (rpi-poe, rpi-poe-plus)
// takes, in millidegrees.
func (d *doc) poeFan(f string, v *yaml.Node) []plan.ConfigLine {
	const want = "four fan thresholds in °C, rising, like [50, 60, 70, 80]"
	items, ok := d.list(f, v, want)
	if !ok {
		return nil
	}
	if len(items) != 4 {
		d.fail(resolve(v), f, "want %s, got %d values", want, len(items))
		return nil
	}
	var out []plan.ConfigLine
	prev := 0
	for i, it := range items {
		s, ok := d.scalar(item(f, i), it, "a temperature in °C")
		if !ok {
			return nil
		}
		c, err := strconv.Atoi(s)
		if err != nil || c < 20 || c > 85 {
			d.fail(resolve(it), item(f, i), "want a whole number of degrees Celsius from 20 to 85, got %s", quote(s))
			return nil
		}
		if c <= prev {
			d.fail(resolve(it), item(f, i), "%d°C is not above the threshold before it (%d°C); the fan speeds up at each", c, prev)
			return nil
		}
		prev = c
		out = append(out, plan.ConfigLine{Section: "all", Line: fmt.Sprintf("dtparam=poe_fan_temp%d=%d", i, c*1000)})
	}
	return out
}
