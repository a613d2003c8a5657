package plan

import (
	"reflect"
	"slices"
	"strings"
	"testing"
)

// trixieConfig is the stock Raspberry Pi OS (trixie) config.txt without its
// comment lines.
const trixieConfig = `dtparam=audio=on
camera_auto_detect=1
display_auto_detect=1
auto_initramfs=1
dtoverlay=vc4-kms-v3d
max_framebuffers=2
disable_fw_kms_setup=1
arm_64bit=1
disable_overscan=1
arm_boost=1

[cm4]
otg_mode=1

[cm5]
dtoverlay=dwc2,dr_mode=host

[pi5]
dtoverlay=nospi10

[all]
`

func inAll(lines ...string) []ConfigLine {
	var out []ConfigLine
	for _, l := range lines {
		out = append(out, ConfigLine{"all", l})
	}
	return out
}

var applyConfigTests = []struct {
	name  string
	text  string
	lines []ConfigLine
	want  string
}{
	{"append to [all]", trixieConfig, inAll("gpu_mem=16"),
		trixieConfig + "\n# magibake\ngpu_mem=16\n"},
	{"empty section is [all]", trixieConfig, []ConfigLine{{"", "gpu_mem=16"}},
		trixieConfig + "\n# magibake\ngpu_mem=16\n"},
	{"a [pi4] line", trixieConfig, []ConfigLine{{"pi4", "arm_freq=1500"}},
		trixieConfig + "\n# magibake\n[pi4]\narm_freq=1500\n[all]\n"},
	{"identical to the base's: nothing added", trixieConfig,
		[]ConfigLine{{"all", "arm_64bit=1"}, {"", " camera_auto_detect=1\t"}, {"all", "dtparam=audio=on"}, {"pi5", "dtoverlay=nospi10"}, {"cm5", "dtoverlay=dwc2,dr_mode=host"}, {"cm4", "otg_mode=1"}},
		trixieConfig},
	{"contradicting scalar", trixieConfig, inAll("arm_boost=0"),
		strings.Replace(trixieConfig, "arm_boost=1\n", "# magibake replaced: arm_boost=1\n", 1) + "\n# magibake\narm_boost=0\n"},
	{"contradicting single-parameter dtparam, written outside the last overlay's scope", trixieConfig, inAll("dtparam=audio=off"),
		strings.Replace(trixieConfig, "dtparam=audio=on\n", "# magibake replaced: dtparam=audio=on\n", 1) + "\n# magibake\ndtoverlay=\ndtparam=audio=off\n"},
	{"other dtparams are other keys", trixieConfig, inAll("dtparam=i2c_arm=on"),
		trixieConfig + "\n# magibake\ndtoverlay=\ndtparam=i2c_arm=on\n"},
	{"dtoverlay lines accumulate, an identical one is not repeated", trixieConfig, inAll("dtoverlay=disable-bt", "dtoverlay=vc4-kms-v3d", "dtoverlay=disable-wifi"),
		trixieConfig + "\n# magibake\ndtoverlay=disable-bt\ndtoverlay=disable-wifi\n"},
	{"an overlay with other parameters is one more line", trixieConfig, inAll("dtoverlay=vc4-kms-v3d,cma-512"),
		trixieConfig + "\n# magibake\ndtoverlay=vc4-kms-v3d,cma-512\n"},
	{"a dtparam after its overlay stays in its scope", trixieConfig, inAll("dtoverlay=rpi-poe-plus", "dtparam=poe_fan_temp0=50000"),
		trixieConfig + "\n# magibake\ndtoverlay=rpi-poe-plus\ndtparam=poe_fan_temp0=50000\n"},
	{"a multi-parameter dtparam accumulates", "dtparam=i2c_arm=on,spi=on\n", inAll("dtparam=i2c_arm=on,spi=on", "dtparam=spi=on,i2c_arm=on"),
		"dtparam=i2c_arm=on,spi=on\n\n# magibake\ndtparam=spi=on,i2c_arm=on\n"},
	{"no overlay loaded: no scope to end", "gpu_mem=16\n", inAll("dtparam=audio=off"),
		"gpu_mem=16\n\n# magibake\ndtparam=audio=off\n"},
	{"same key in another section is left alone", trixieConfig, inAll("otg_mode=0"),
		trixieConfig + "\n# magibake\notg_mode=0\n"},
	{"a section of the base is written again, not edited in place", trixieConfig, []ConfigLine{{"cm4", "otg_mode=0"}},
		strings.Replace(trixieConfig, "otg_mode=1\n", "# magibake replaced: otg_mode=1\n", 1) + "\n# magibake\n[cm4]\notg_mode=0\n[all]\n"},
	{"sections in the order they first appear, ending in [all]", trixieConfig,
		[]ConfigLine{{"pi5", "usb_max_current_enable=1"}, {"all", "gpu_mem=16"}, {"pi5", "dtparam=fan_temp0=50000"}, {"pi4", "arm_freq=1500"}},
		trixieConfig + "\n# magibake\n[pi5]\nusb_max_current_enable=1\ndtoverlay=\ndtparam=fan_temp0=50000\n[all]\ngpu_mem=16\n[pi4]\narm_freq=1500\n[all]\n"},
	{"later given line of a key wins", trixieConfig, inAll("gpu_mem=16", "arm_boost=0", "gpu_mem=64"),
		strings.Replace(trixieConfig, "arm_boost=1\n", "# magibake replaced: arm_boost=1\n", 1) + "\n# magibake\narm_boost=0\ngpu_mem=64\n"},
	{"base without trailing [all]", "a=1\n[pi5]\nb=1\n", inAll("c=1"),
		"a=1\n[pi5]\nb=1\n\n# magibake\n[all]\nc=1\n"},
	{"base without trailing [all], edited in the section it ends in", "a=1\n[pi5]\nb=1\n", []ConfigLine{{"pi5", "b=2"}},
		"a=1\n[pi5]\n# magibake replaced: b=1\n\n# magibake\n[pi5]\nb=2\n[all]\n"},
	{"base ending in [none]", "a=1\n[none]\nb=1", inAll("b=2"),
		"a=1\n[none]\nb=1\n\n# magibake\n[all]\nb=2\n"},
	{"empty text", "", inAll("gpu_mem=16"), "# magibake\ngpu_mem=16\n"},
	{"empty text, [pi4] line", "", []ConfigLine{{"pi4", "arm_freq=1500"}}, "# magibake\n[pi4]\narm_freq=1500\n[all]\n"},
	{"nothing given", trixieConfig, nil, trixieConfig},
	{"no final newline", "a=1", inAll("b=2"), "a=1\n\n# magibake\nb=2\n"},
	{"no final newline, nothing to add", "a=1", inAll("a=1"), "a=1"},
	{"CRLF read as LF, kept", "a=1\r\nb=2\r\n", inAll("a=1", "b=3"),
		"a=1\r\n# magibake replaced: b=2\r\n\r\n# magibake\r\nb=3\r\n"},
	{"a last line's CR is not doubled", "\r\n\r", inAll("0=1"), "\r\n\r\n\r\n# magibake\r\n0=1\r\n"},
	{"the base contradicting itself keeps the given value", "a=1\na=2\n", inAll("a=2"), "# magibake replaced: a=1\na=2\n"},
	{"comments are not settings", "#gpu_mem=16\n", inAll("gpu_mem=16"), "#gpu_mem=16\n\n# magibake\ngpu_mem=16\n"},
	{"the firmware reads 98 characters", "gpu_mem=16" + strings.Repeat(" ", 88) + "junk\n", inAll("gpu_mem=16"),
		"gpu_mem=16" + strings.Repeat(" ", 88) + "junk\n"},
	{"lines Validate rejects are skipped", trixieConfig,
		[]ConfigLine{{"all", ""}, {"all", "# gpu_mem=16"}, {"all", "[pi4]"}, {"all", "gpu_mem=16\narm_boost=0"}, {"pi4]", "a=1"},
			{"all", "quiet"}, {"all", "=1"}, {"all", "dtoverlay="}, {"all", "a=" + strings.Repeat("x", 97)}},
		trixieConfig},
}

func TestApplyConfig(t *testing.T) {
	for _, tt := range applyConfigTests {
		t.Run(tt.name, func(t *testing.T) {
			got := ApplyConfig(tt.text, tt.lines)
			if got != tt.want {
				t.Errorf("ApplyConfig(%q, %q) =\n%s\nwant\n%s", tt.text, tt.lines, got, tt.want)
			}
			if again := ApplyConfig(got, tt.lines); again != got {
				t.Errorf("ApplyConfig not idempotent: second run gives\n%s", again)
			}
			if m := ConfigMissing(got, tt.lines); len(m) != 0 {
				t.Errorf("ConfigMissing after ApplyConfig = %q, want none", m)
			}
		})
	}
}

func TestConfigMissing(t *testing.T) {
	tests := []struct {
		name  string
		text  string
		lines []ConfigLine
		want  []ConfigLine
	}{
		{"held, contradicted and absent", trixieConfig,
			[]ConfigLine{{"all", "arm_64bit=1"}, {"all", "arm_boost=0"}, {"", "gpu_mem=16"}, {"pi5", "dtoverlay=nospi10"}, {"all", "dtoverlay=disable-bt"}, {"all", "dtparam=audio=on"}},
			[]ConfigLine{{"all", "arm_boost=0"}, {"", "gpu_mem=16"}, {"all", "dtoverlay=disable-bt"}}},
		{"another section does not hold it", trixieConfig, []ConfigLine{{"pi4", "otg_mode=1"}}, []ConfigLine{{"pi4", "otg_mode=1"}}},
		{"an identical line followed by a contradiction is not held", "a=1\na=2\n", inAll("a=1"), inAll("a=1")},
		{"a replaced given line is not missing", "gpu_mem=64\n", inAll("gpu_mem=16", "gpu_mem=64"), nil},
		{"invalid lines are not missing", "", inAll("# x", "dtoverlay="), nil},
		{"nothing given", trixieConfig, nil, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ConfigMissing(tt.text, tt.lines)
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("ConfigMissing = %q, want %q", got, tt.want)
			}
			if changed := ApplyConfig(tt.text, tt.lines) != tt.text; changed != (len(got) > 0) {
				t.Errorf("ApplyConfig changes the text: %v, but ConfigMissing = %q", changed, got)
			}
		})
	}
}

func TestConfigLineValidate(t *testing.T) {
	tests := []struct {
		line ConfigLine
		ok   bool
	}{
		{ConfigLine{"all", "gpu_mem=16"}, true},
		{ConfigLine{"", " dtoverlay=disable-bt "}, true},
		{ConfigLine{"EDID=DEL-DELL_U2422H", "hdmi_group=2"}, true},
		{ConfigLine{"pi4", "dtparam=poe_fan_temp0=50000"}, true},
		{ConfigLine{"all", "a=" + strings.Repeat("x", 96)}, true},
		{ConfigLine{"all", "a=" + strings.Repeat("x", 97)}, false},
		{ConfigLine{"all", ""}, false},
		{ConfigLine{"all", "gpu_mem"}, false},
		{ConfigLine{"all", "=16"}, false},
		{ConfigLine{"all", "# gpu_mem=16"}, false},
		{ConfigLine{"all", "[pi4]"}, false},
		{ConfigLine{"all", "a=1\nb=2"}, false},
		{ConfigLine{"all", "a=1\r"}, true}, // a trailing CR is whitespace
		{ConfigLine{"all", "a=1\rb=2"}, false},
		{ConfigLine{"all", "dtoverlay="}, false},
		{ConfigLine{"all", "dtoverlay = "}, false},
		{ConfigLine{"[pi4]", "a=1"}, false},
		{ConfigLine{"pi4\n", "a=1"}, true}, // trimmed
		{ConfigLine{"all", "a=1\n"}, true},
		{ConfigLine{"pi\n4", "a=1"}, false},
		{ConfigLine{strings.Repeat("p", 97), "a=1"}, false},
	}
	for _, tt := range tests {
		if err := tt.line.Validate(); (err == nil) != tt.ok {
			t.Errorf("%q.Validate() = %v, want ok %v", tt.line, err, tt.ok)
		}
	}
}

// encodeConfigLines packs lines into one fuzzable string: entries split by
// NUL, section and line by \x01.
func encodeConfigLines(lines []ConfigLine) string {
	var parts []string
	for _, l := range lines {
		parts = append(parts, l.Section+"\x01"+l.Line)
	}
	return strings.Join(parts, "\x00")
}

func decodeConfigLines(s string) []ConfigLine {
	if s == "" {
		return nil
	}
	var out []ConfigLine
	for _, p := range strings.Split(s, "\x00") {
		sec, line, ok := strings.Cut(p, "\x01")
		if !ok {
			sec, line = "all", p
		}
		out = append(out, ConfigLine{sec, line})
	}
	return out
}

func FuzzApplyConfig(f *testing.F) {
	for _, tt := range applyConfigTests {
		f.Add(tt.text, encodeConfigLines(tt.lines))
	}
	f.Fuzz(func(t *testing.T, text, packed string) {
		lines := decodeConfigLines(packed)
		out := ApplyConfig(text, lines)
		if again := ApplyConfig(out, lines); again != out {
			t.Fatalf("not idempotent:\n%q\nthen\n%q", out, again)
		}
		if m := ConfigMissing(out, lines); len(m) != 0 {
			t.Fatalf("ConfigMissing after ApplyConfig = %q", m)
		}
		if m := ConfigMissing(text, lines); (len(m) == 0) != (out == text) {
			t.Fatalf("ConfigMissing(text) = %q, but ApplyConfig changed the text: %v", m, out != text)
		}
		// The base's lines stay where they are, some turned into comments.
		in, got := strings.Split(text, "\n"), strings.Split(out, "\n")
		if in[len(in)-1] == "" {
			in = in[:len(in)-1] // after the last newline: no line
		}
		if len(got) < len(in) {
			t.Fatalf("lines lost: %q -> %q", text, out)
		}
		for i, l := range in {
			// The last line may have gained a line end.
			if strings.TrimSuffix(got[i], "\r") != strings.TrimSuffix(l, "\r") && !strings.HasPrefix(got[i], "# magibake replaced: ") {
				t.Fatalf("line %d %q became %q", i, l, got[i])
			}
		}
	})
}

// A model of how the firmware reads config.txt on one board, written apart
// from ApplyConfig to check its result against the rules of
// config_txt/conditional.adoc: lines are cut at 98 characters, '#' starts a
// comment, "[filter]" starts a section, a board reads a section named "all",
// its own name, or a model it also counts as ([pi4] on a Pi 400 or CM4;
// nothing reads [none]), and a later line of a key replaces an earlier value.
// It leaves out filters other than models (EDID, serial number, gpio, HDMI,
// tryboot, board-type) and the combining of filters of different types,
// include, and which overlay a dtparam reaches (dtparam scope): a
// single-parameter dtparam is a key "dtparam:NAME", as if it set the base
// device tree's parameter.
var firmwareAlsoReads = map[string][]string{
	"pi400": {"pi4"}, "cm4": {"pi4"}, "cm4s": {"pi4"},
	"pi500": {"pi5"}, "cm5": {"pi5"},
	"pi3+": {"pi3"}, "pi0w": {"pi0"}, "pi02": {"pi0w", "pi0"},
}

func firmwareReads(board, section string) bool {
	return section == "all" || section == board || slices.Contains(firmwareAlsoReads[board], section)
}

// firmwareRead returns, for board, the ordinary keys' values (text after
// the key's '=') and the overlays loaded, in order.
func firmwareRead(text, board string) (values map[string]string, overlays []string) {
	values = map[string]string{}
	on := true
	for _, line := range strings.Split(strings.ReplaceAll(text, "\r\n", "\n"), "\n") {
		if len(line) > 98 {
			line = line[:98]
		}
		line = strings.TrimSpace(line)
		switch {
		case line == "" || strings.HasPrefix(line, "#"):
			continue
		case strings.HasPrefix(line, "["):
			name, _, _ := strings.Cut(line[1:], "]")
			on = firmwareReads(board, strings.TrimSpace(name))
			continue
		}
		if !on {
			continue
		}
		key, value, _ := strings.Cut(line, "=")
		key, value = strings.TrimSpace(key), strings.TrimSpace(value)
		switch {
		case key == "dtoverlay":
			if value != "" {
				overlays = append(overlays, value)
			}
		case key == "dtparam" && !strings.Contains(value, ","):
			param, v, _ := strings.Cut(value, "=")
			values["dtparam:"+strings.TrimSpace(param)] = strings.TrimSpace(v)
		case key == "dtparam":
			// several parameters: not an ordinary key
		default:
			values[key] = value
		}
	}
	return values, overlays
}

func effective(text, board string) map[string]string {
	v, _ := firmwareRead(text, board)
	return v
}

func TestApplyConfigFirmwareReading(t *testing.T) {
	// Each edit names a key at most once among the sections one board reads,
	// so every line it gives has one value to take on that board.
	edits := []struct {
		name  string
		lines []ConfigLine
	}{
		{"nothing", nil},
		{"a node's usual edit", []ConfigLine{
			{"all", "gpu_mem=16"}, {"all", "arm_boost=0"}, {"all", "dtparam=audio=off"},
			{"all", "dtoverlay=disable-bt"}, {"all", "enable_uart=1"},
			{"pi4", "arm_freq=1500"}, {"pi4", "dtparam=poe_fan_temp0=50000"},
			{"pi5", "usb_max_current_enable=1"}, {"pi5", "dtparam=fan_temp0=50000"},
			{"cm4", "dtoverlay=dwc2,dr_mode=host"},
			{"none", "hdmi_group=2"},
		}},
		{"contradicting base values", []ConfigLine{
			{"all", "camera_auto_detect=0"}, {"all", "display_auto_detect=0"}, {"all", "max_framebuffers=1"},
			{"cm4", "otg_mode=0"},
		}},
		{"a base section's key for all boards", []ConfigLine{{"all", "otg_mode=0"}}},
		{"identical to the base", []ConfigLine{{"all", "arm_64bit=1"}, {"pi5", "dtoverlay=nospi10"}}},
	}
	boards := []string{"pi4", "pi400", "cm4", "pi5", "cm5"}
	for _, e := range edits {
		out := ApplyConfig(trixieConfig, e.lines)
		for _, board := range boards {
			// The keys the edit names in sections this board reads: a
			// line for another board must not reach it.
			named := map[string]bool{}
			for _, l := range e.lines {
				s, err := l.parse()
				if err != nil {
					t.Fatalf("%s: %q: %v", e.name, l, err)
				}
				if firmwareReads(board, s.section) {
					named[s.key] = true
				}
			}
			before, beforeOverlays := firmwareRead(trixieConfig, board)
			after, afterOverlays := firmwareRead(out, board)
			for _, l := range e.lines {
				s, _ := l.parse()
				if !firmwareReads(board, s.section) {
					continue
				}
				if s.key == "dtoverlay" {
					if !slices.Contains(afterOverlays, s.value()) {
						t.Errorf("%s, %s: overlay %s not loaded: %q", e.name, board, s.value(), afterOverlays)
					}
					continue
				}
				if s.accum {
					continue
				}
				_, want, _ := strings.Cut(s.line, "=")
				if s.key != "dtparam" && isDtparam(s.key) {
					_, want, _ = strings.Cut(want, "=")
				}
				if after[s.key] != want {
					t.Errorf("%s, %s: %s = %q, want %q", e.name, board, s.key, after[s.key], want)
				}
			}
			for k, v := range before {
				if !named[k] && after[k] != v {
					t.Errorf("%s, %s: %s, not named, went from %q to %q", e.name, board, k, v, after[k])
				}
			}
			for k, v := range after {
				if _, ok := before[k]; !ok && !named[k] {
					t.Errorf("%s, %s: %s=%q appeared, not named", e.name, board, k, v)
				}
			}
			if !slices.Equal(afterOverlays[:min(len(beforeOverlays), len(afterOverlays))], beforeOverlays) {
				t.Errorf("%s, %s: the base's overlays %q are not loaded first: %q", e.name, board, beforeOverlays, afterOverlays)
			}
		}
	}
}

func TestFirmwareModel(t *testing.T) {
	// The model itself, on the stock file: what each board reads.
	tests := []struct {
		board    string
		key      string
		want     string
		overlays []string
	}{
		{"pi4", "otg_mode", "", []string{"vc4-kms-v3d"}},
		{"cm4", "otg_mode", "1", []string{"vc4-kms-v3d"}},
		{"pi5", "arm_boost", "1", []string{"vc4-kms-v3d", "nospi10"}},
		{"cm5", "dtparam:audio", "on", []string{"vc4-kms-v3d", "dwc2,dr_mode=host", "nospi10"}},
		{"pi400", "otg_mode", "", []string{"vc4-kms-v3d"}},
	}
	for _, tt := range tests {
		v, o := firmwareRead(trixieConfig, tt.board)
		if v[tt.key] != tt.want || !slices.Equal(o, tt.overlays) {
			t.Errorf("%s: %s = %q, overlays %q; want %q, %q", tt.board, tt.key, v[tt.key], o, tt.want, tt.overlays)
		}
	}
	if v := effective("[none]\na=1\n[pi4]\na=2\n[all]\nb=3", "pi4"); v["a"] != "2" {
		t.Errorf("[none] read, or [pi4] not: %q", v)
	}
}
