// Package redact replaces secret values in text meant for people (plans,
// logs, error messages) with a fixed mask, whoever wrote the text: a
// template that forgot to call secret, a user overlay, an error that quotes
// a file's content.
package redact

import (
	"bytes"
	"io"
	"sort"
	"strings"
)

// Mask is what a secret value is replaced with.
const Mask = "<secret>"

// minLen is the shortest value treated as a secret: a shorter one (no real
// passphrase, hash or key is) would mask ordinary words.
const minLen = 6

// Secrets is a set of secret values. The zero value masks nothing.
type Secrets struct {
	values []string
	r      *strings.Replacer
}

// New returns the set of the given values (empty and very short ones are
// ignored).
func New(values ...string) *Secrets {
	var v []string
	seen := map[string]bool{}
	for _, s := range values {
		if len(s) >= minLen && !seen[s] {
			seen[s] = true
			v = append(v, s)
		}
	}
	// Longest first: a value that contains another is masked whole.
	sort.Slice(v, func(i, j int) bool { return len(v[i]) > len(v[j]) })
	var pairs []string
	for _, s := range v {
		pairs = append(pairs, s, Mask)
	}
	return &Secrets{values: v, r: strings.NewReplacer(pairs...)}
}

// Values returns the secret values, longest first.
func (s *Secrets) Values() []string {
	if s == nil {
		return nil
	}
	return s.values
}

// In says whether b holds any of the secret values.
func (s *Secrets) In(b []byte) bool {
	if s == nil {
		return false
	}
	for _, v := range s.values {
		// bytes, not string(b): b may be a multi-megabyte .deb.
		if bytes.Contains(b, []byte(v)) {
			return true
		}
	}
	return false
}

// String returns t with every secret value masked.
func (s *Secrets) String(t string) string {
	if s == nil || len(s.values) == 0 {
		return t
	}
	return s.r.Replace(t)
}

// Error returns err with its message masked; errors.Is and errors.As still
// see the errors it wraps. nil stays nil.
func (s *Secrets) Error(err error) error {
	if err == nil {
		return nil
	}
	msg := s.String(err.Error())
	if msg == err.Error() {
		return err
	}
	return &masked{err: err, msg: msg}
}

type masked struct {
	err error
	msg string
}

func (m *masked) Error() string { return m.msg }
func (m *masked) Unwrap() error { return m.err }

// Writer returns a writer that masks secret values in what is written to w.
// It masks within each Write call: callers write whole lines or more (a
// secret split across two writes is not seen).
func (s *Secrets) Writer(w io.Writer) io.Writer {
	if s == nil || len(s.values) == 0 || w == nil {
		return w
	}
	return &writer{s: s, w: w}
}

type writer struct {
	s *Secrets
	w io.Writer
}

func (w *writer) Write(p []byte) (int, error) {
	if _, err := io.WriteString(w.w, w.s.String(string(p))); err != nil {
		return 0, err
	}
	return len(p), nil
}
