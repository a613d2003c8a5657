package plan

import (
	"errors"
	"fmt"
	"strings"
)

// ConfigLine is one line the profile adds to config.txt, in the section
// (conditional filter) it belongs to.
type ConfigLine struct {
	Section string // filter name without brackets: "all", "pi4", "pi5", "cm4", ...; "" is "all"
	Line    string // "key=value", e.g. "gpu_mem=16", "dtoverlay=disable-bt", "dtparam=poe_fan_temp0=50000"
}

// configLineMax is the firmware's line length: it ignores what follows.
const configLineMax = 98

// Validate says why ApplyConfig cannot write l, or returns nil. ApplyConfig
// and ConfigMissing have no error to return and skip such lines, so a
// profile's lines are best checked with Validate when it is loaded.
func (l ConfigLine) Validate() error {
	_, err := l.parse()
	return err
}

// ApplyConfig returns text (a config.txt) with lines added the way the
// firmware reads them, so that the result neither repeats nor contradicts
// the base; the base's own lines stay where they are.
//
// A line of text is in the section named by the last "[...]" header above
// it, "all" before any header. Sections are compared by name alone: filters
// of different types are not combined, and a line is only compared with
// lines of its own section, so a base's [cm4] otg_mode=1 is left alone by an
// [all] otg_mode=0 (which, written later, still wins on a CM4).
//
// A line's key is the text before its first '='; a dtparam line setting one
// parameter has the key "dtparam:" and the parameter's name. A later line of
// a key replaces an earlier value, so each given line is either held already
// (an identical line of its key in its section, ignoring surrounding
// whitespace) or appended, and any line of its key in its section that says
// something else becomes "# magibake replaced: ..." so that the file never
// contradicts itself. dtoverlay lines, and dtparam lines setting several
// parameters, add to what came before: they are only skipped when an
// identical line is already in the section. Of two given lines of one key
// in one section, the later one is written. Lines Validate rejects are
// skipped.
//
// Appended lines come after a "# magibake" comment, grouped by section in
// the order the sections first appear in lines, and the file ends in [all]
// as the stock one does. A dtparam applies to the overlay loaded last, so an
// appended dtparam that does not follow a dtoverlay appended with it in its
// section is preceded by "dtoverlay=", which ends that overlay's parameters
// and leaves the base device tree's. An overlay's parameters therefore go on
// its dtoverlay line, or after it in lines.
//
// "\r\n" is read as "\n", and appended lines end the way the text's first
// line does. ApplyConfig of its own result changes nothing.
func ApplyConfig(text string, lines []ConfigLine) string {
	base, end := readConfig(text)
	raw := make([]string, len(base))
	// Once an overlay is loaded an appended dtparam may reach it. Before
	// one, "dtoverlay=" would instead stop the HAT's overlay loading, so it
	// is only written after one.
	overlay := false
	for i, l := range base {
		raw[i] = l.raw
		if l.setting && l.key == "dtoverlay" && l.value() != "" {
			overlay = true
		}
	}
	var add []configWant
	for _, w := range wantedConfig(lines) {
		held, differ := holds(base, w.configSetting)
		for _, i := range differ {
			line, cr := strings.CutSuffix(base[i].raw, "\r")
			raw[i] = "# magibake replaced: " + trimConfig(line)
			if cr {
				raw[i] += "\r"
			}
		}
		if !held {
			add = append(add, w)
		}
	}
	out := strings.Join(raw, "\n")
	if len(add) == 0 {
		return out
	}

	eol := "\n"
	if len(base) > 1 && strings.HasSuffix(base[0].raw, "\r") {
		eol = "\r\n"
	}
	var b strings.Builder
	b.WriteString(out)
	if out != "" {
		switch {
		case strings.HasSuffix(out, "\n"):
		case strings.HasSuffix(out, "\r"):
			b.WriteString("\n") // the line has its CR already
		default:
			b.WriteString(eol)
		}
		b.WriteString(eol)
	}
	b.WriteString("# magibake" + eol)
	header := end
	done := map[string]bool{}
	for _, first := range add {
		sec := first.section
		if done[sec] {
			continue
		}
		done[sec] = true
		if sec != "all" || header != "all" {
			b.WriteString("[" + sec + "]" + eol)
			header = sec
		}
		// Another section's lines may have loaded an overlay for this
		// board since, so scope starts unknown in each section.
		scoped := false
		for _, w := range add {
			if w.section != sec {
				continue
			}
			switch {
			case w.key == "dtoverlay":
				overlay, scoped = true, true
			case isDtparam(w.key) && overlay && !scoped:
				b.WriteString("dtoverlay=" + eol)
				scoped = true
			}
			b.WriteString(w.line + eol)
		}
	}
	if header != "all" {
		b.WriteString("[all]" + eol)
	}
	return b.String()
}

// ConfigMissing returns the lines whose effect text lacks: what ApplyConfig
// would still change. A card or a live node whose config.txt returns none
// holds the edit. A line is missing when its section has no identical line,
// or has a line of its key that says something else; lines ApplyConfig
// would skip (invalid, or replaced by a later given line) are never missing.
func ConfigMissing(text string, lines []ConfigLine) []ConfigLine {
	base, _ := readConfig(text)
	var missing []ConfigLine
	for _, w := range wantedConfig(lines) {
		if held, differ := holds(base, w.configSetting); !held || len(differ) > 0 {
			missing = append(missing, w.given)
		}
	}
	return missing
}

// configSetting is one property line as the firmware reads it.
type configSetting struct {
	section string
	line    string // trimmed, and cut to configLineMax when read from a file
	key     string
	accum   bool // adds to earlier lines of its key instead of replacing them
}

// configText is one line of a config.txt.
type configText struct {
	raw     string // as the text has it, without its "\n"
	setting bool   // not blank, a comment or a header
	configSetting
}

// configWant is a given line ApplyConfig writes.
type configWant struct {
	configSetting
	given ConfigLine
}

// readConfig splits text into lines and returns them with the section the
// text ends in.
func readConfig(text string) (lines []configText, end string) {
	section := "all"
	for _, raw := range strings.Split(text, "\n") {
		s := strings.TrimSuffix(raw, "\r")
		if len(s) > configLineMax {
			s = s[:configLineMax]
		}
		s = trimConfig(s)
		l := configText{raw: raw}
		switch {
		case s == "" || s[0] == '#':
		case s[0] == '[':
			name, _, _ := strings.Cut(s[1:], "]")
			section = trimConfig(name)
		default:
			l.setting = true
			l.configSetting = parseSetting(section, s)
		}
		lines = append(lines, l)
	}
	return lines, section
}

func parseSetting(section, line string) configSetting {
	name, value, _ := strings.Cut(line, "=")
	s := configSetting{section: section, line: line, key: trimConfig(name)}
	switch s.key {
	case "dtoverlay":
		s.accum = true
	case "dtparam":
		param, _, _ := strings.Cut(value, "=")
		param = trimConfig(param)
		if param == "" || strings.Contains(value, ",") {
			s.accum = true
		} else {
			s.key = "dtparam:" + param
		}
	}
	return s
}

// value is the text after the line's first '='.
func (s configSetting) value() string {
	_, v, _ := strings.Cut(s.line, "=")
	return trimConfig(v)
}

func isDtparam(key string) bool {
	return key == "dtparam" || strings.HasPrefix(key, "dtparam:")
}

// trimConfig trims the whitespace around a line; the firmware knows no
// other.
func trimConfig(s string) string {
	return strings.Trim(s, " \t\r\n\v\f")
}

// parse checks l and returns it as the line ApplyConfig writes.
func (l ConfigLine) parse() (configSetting, error) {
	sec := trimConfig(l.Section)
	if sec == "" {
		sec = "all"
	}
	line := trimConfig(l.Line)
	switch {
	case strings.ContainsAny(sec, "[]\r\n\x00"):
		return configSetting{}, fmt.Errorf("config.txt section %q: a filter name has no brackets or line breaks", l.Section)
	case len(sec)+2 > configLineMax:
		return configSetting{}, fmt.Errorf("config.txt section %q: [%s] is longer than the %d characters the firmware reads", l.Section, sec, configLineMax)
	case line == "":
		return configSetting{}, errors.New("config.txt line is empty")
	case strings.ContainsAny(line, "\r\n\x00"):
		return configSetting{}, fmt.Errorf("config.txt line %q: one line only", l.Line)
	case len(line) > configLineMax:
		return configSetting{}, fmt.Errorf("config.txt line %q: longer than the %d characters the firmware reads", l.Line, configLineMax)
	case line[0] == '#':
		return configSetting{}, fmt.Errorf("config.txt line %q is a comment", l.Line)
	case line[0] == '[':
		return configSetting{}, fmt.Errorf("config.txt line %q is a filter: give it as the section", l.Line)
	}
	s := parseSetting(sec, line)
	if !strings.Contains(line, "=") || s.key == "" {
		return configSetting{}, fmt.Errorf("config.txt line %q: not property=value", l.Line)
	}
	if s.key == "dtoverlay" && s.value() == "" {
		// Its meaning depends on where it stands (it ends an overlay's
		// parameters, or before any overlay stops the HAT's loading),
		// and ApplyConfig only appends.
		return configSetting{}, fmt.Errorf("config.txt line %q: dtoverlay with no overlay", l.Line)
	}
	return s, nil
}

// wantedConfig returns the valid lines of lines that ApplyConfig writes, in
// order: of two lines of one key in one section the later one (and of two
// identical accumulating lines, one).
func wantedConfig(lines []ConfigLine) []configWant {
	var out []configWant
	for _, l := range lines {
		s, err := l.parse()
		if err != nil {
			continue
		}
		kept := out[:0]
		for _, o := range out {
			if o.section != s.section || o.key != s.key || s.accum && o.line != s.line {
				kept = append(kept, o)
			}
		}
		out = append(kept, configWant{s, l})
	}
	return out
}

// holds says whether text has a line identical to s in its section, and
// which lines of its key there say something else (none for an
// accumulating key).
func holds(text []configText, s configSetting) (held bool, differ []int) {
	for i, t := range text {
		if !t.setting || t.section != s.section || t.key != s.key {
			continue
		}
		if t.line == s.line {
			held = true
		} else if !s.accum {
			differ = append(differ, i)
		}
	}
	return held, differ
}
