// Package termtext makes text that comes from a node or a card (a hostname,
// a manifest's node name, a command's output) safe to print on a terminal.
package termtext

import (
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Line returns s with every control character, line breaks included, and
// every byte that is not UTF-8 escaped as Go writes them (\x1b, \n, \u200e):
// such text cannot move the cursor, recolour or clear the screen, or fake a
// line of magibake's own.
func Line(s string) string {
	if clean(s, false) {
		return s
	}
	return escape(s, false)
}

// Lines is Line for text of several lines: line breaks and tabs are kept.
func Lines(s string) string {
	if clean(s, true) {
		return s
	}
	return escape(s, true)
}

func clean(s string, lines bool) bool {
	for _, r := range s {
		if r == utf8.RuneError || bad(r, lines) {
			return false
		}
	}
	return true
}

// bad says whether r must not reach a terminal: C0 and C1 controls, DEL,
// and the format characters that reorder or hide text (bidi overrides).
func bad(r rune, lines bool) bool {
	if lines && (r == '\n' || r == '\t') {
		return false
	}
	return unicode.IsControl(r) || unicode.Is(unicode.Cf, r)
}

func escape(s string, lines bool) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n <= 1:
			b.WriteString(`\x` + strconv.FormatUint(uint64(s[i])|0x100, 16)[1:])
		case bad(r, lines):
			q := strconv.QuoteRuneToASCII(r)
			b.WriteString(q[1 : len(q)-1])
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
	}
	return b.String()
}
