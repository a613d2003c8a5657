package redact

import (
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"testing"
)

func TestSecrets(t *testing.T) {
	s := New("correct horse", "correct horse battery", "", "short", "0123456789abcdef")
	for _, c := range []struct{ in, want string }{
		{"psk=correct horse battery staple", "psk=<secret> staple"}, // the longer value whole
		{"passphrase correct horse.", "passphrase <secret>."},
		{"short words stay", "short words stay"}, // below the minimum length
		{"key 0123456789abcdef0123456789abcdef", "key <secret><secret>"},
		{"nothing", "nothing"},
	} {
		if got := s.String(c.in); got != c.want {
			t.Errorf("String(%q) = %q, want %q", c.in, got, c.want)
		}
	}
	if !s.In([]byte("x correct horse y")) || s.In([]byte("correct")) {
		t.Error("In does not find exactly the values")
	}
	err := fmt.Errorf("overlay x: %w: got correct horse", fs.ErrInvalid)
	m := s.Error(err)
	if m.Error() != "overlay x: invalid argument: got <secret>" || !errors.Is(m, fs.ErrInvalid) {
		t.Errorf("Error: %q, Is ErrInvalid %v", m, errors.Is(m, fs.ErrInvalid))
	}
	if s.Error(nil) != nil || s.Error(fs.ErrClosed) != fs.ErrClosed {
		t.Error("Error changed nil or an error without secrets")
	}
	var b bytes.Buffer
	fmt.Fprintf(s.Writer(&b), "log: %s\n", "correct horse battery")
	if b.String() != "log: <secret>\n" {
		t.Errorf("Writer wrote %q", b.String())
	}
	var none *Secrets
	if none.String("correct horse") != "correct horse" || none.In([]byte("x")) || none.Error(fs.ErrClosed) != fs.ErrClosed {
		t.Error("a nil set masks something")
	}
}
