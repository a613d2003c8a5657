package termtext

import "testing"

func TestLine(t *testing.T) {
	for _, tc := range []struct{ in, line, lines string }{
		{"caspar", "caspar", "caspar"},
		{"café ☕", "café ☕", "café ☕"},
		{"red\x1b[31mtext", `red\x1b[31mtext`, `red\x1b[31mtext`},
		{"two\nlines", `two\nlines`, "two\nlines"},
		{"cr\roverwrite", `cr\roverwrite`, `cr\roverwrite`},
		{"tab\there", `tab\there`, "tab\there"},
		{"bell\a", `bell\a`, `bell\a`},
		{"c1\u009bcsi", `c1\u009bcsi`, `c1\u009bcsi`},
		{"bidi\u202eevil", `bidi\u202eevil`, `bidi\u202eevil`},
		{"bad\xffbyte", `bad\xffbyte`, `bad\xffbyte`},
		{"del\x7f", `del\x7f`, `del\x7f`},
	} {
		if got := Line(tc.in); got != tc.line {
			t.Errorf("Line(%q) = %q, want %q", tc.in, got, tc.line)
		}
		if got := Lines(tc.in); got != tc.lines {
			t.Errorf("Lines(%q) = %q, want %q", tc.in, got, tc.lines)
		}
	}
}
