package profile

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"gopkg.in/yaml.v3"
)

// value is a string field written literally, or as {env: NAME} or
// {file: PATH} so that secrets stay out of the profile. With optional: true
// an unset variable or missing file leaves the field empty instead of
// failing, which lets one profile serve users with and without, say, a
// password.
type value struct {
	literal  string
	env      string
	file     string
	optional bool
	line     int
}

// UnmarshalYAML reads a scalar or an {env|file, optional} mapping; errors
// are *Error without File and Field, which the caller fills in.
func (v *value) UnmarshalYAML(n *yaml.Node) error {
	n = resolve(n)
	if n == nil {
		return &Error{Msg: "want a string, {env: NAME} or {file: PATH}, got nothing"}
	}
	*v = value{line: n.Line}
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return &Error{Line: n.Line, Msg: "want a string, {env: NAME} or {file: PATH}, got nothing"}
		}
		v.literal = n.Value
		return nil
	case yaml.MappingNode:
	default:
		return &Error{Line: n.Line, Msg: fmt.Sprintf("want a string, {env: NAME} or {file: PATH}, got %s", describe(n))}
	}
	seen := map[string]bool{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, val := resolve(n.Content[i]), resolve(n.Content[i+1])
		if k.Kind != yaml.ScalarNode || val.Kind != yaml.ScalarNode || isNull(val) {
			return &Error{Line: k.Line, Msg: "want {env: NAME} or {file: PATH}, each with a plain string"}
		}
		if seen[k.Value] {
			return &Error{Line: k.Line, Msg: fmt.Sprintf("%s given twice", k.Value)}
		}
		seen[k.Value] = true
		switch k.Value {
		case "env":
			if val.Value == "" || strings.ContainsAny(val.Value, "= \t\n\x00") {
				return &Error{Line: val.Line, Msg: fmt.Sprintf("env: %s is not an environment variable name", quote(val.Value))}
			}
			v.env = val.Value
		case "file":
			if val.Value == "" {
				return &Error{Line: val.Line, Msg: "file: empty path"}
			}
			v.file = val.Value
		case "optional":
			switch val.Value {
			case "true":
				v.optional = true
			case "false":
			default:
				return &Error{Line: val.Line, Msg: fmt.Sprintf("optional: want true or false, got %s", quote(val.Value))}
			}
		default:
			return &Error{Line: k.Line, Msg: fmt.Sprintf("unknown key %s (want env or file, and optionally optional)", quote(k.Value))}
		}
	}
	if (v.env == "") == (v.file == "") {
		return &Error{Line: n.Line, Msg: "want exactly one of env: NAME or file: PATH"}
	}
	return nil
}

// maxSecretFile bounds what a file: reference may read, so that pointing it
// at a device or a huge file fails instead of exhausting memory.
const maxSecretFile = 1 << 20

// resolve returns the string v stands for; set is false when an optional
// reference found nothing.
func (v *value) resolve(opt Options) (s string, set bool, err error) {
	switch {
	case v.env != "":
		s = opt.Getenv(v.env)
		if s == "" {
			if v.optional {
				return "", false, nil
			}
			return "", false, fmt.Errorf("environment variable %s is not set", v.env)
		}
		return s, true, nil
	case v.file != "":
		path, err := v.filePath(opt)
		if err != nil {
			return "", false, err
		}
		b, err := readSecretFile(path)
		if err != nil {
			if v.optional && os.IsNotExist(err) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("file %s: %w", v.file, err)
		}
		return strings.TrimRight(string(b), "\r\n"), true, nil
	}
	return v.literal, true, nil
}

// filePath is the host path of a {file: PATH} value: ~/ is the home
// directory, a relative path is relative to opt.FileBase.
func (v *value) filePath(opt Options) (string, error) {
	path := v.file
	if rest, ok := strings.CutPrefix(path, "~/"); ok {
		home, err := os.UserHomeDir()
		if err != nil {
			return "", fmt.Errorf("file %s: %w", v.file, err)
		}
		return filepath.Join(home, rest), nil
	}
	if !filepath.IsAbs(path) {
		path = filepath.Join(opt.FileBase, path)
	}
	return path, nil
}

func readSecretFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s is not a regular file", path)
	}
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, err
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Errorf("%s is larger than %d bytes", path, maxSecretFile)
	}
	return b, nil
}

// value reads the string field at n. When an optional reference found
// nothing, s is empty and absent says what was missing. ok is false after a
// problem was reported.
func (d *doc) value(field string, n *yaml.Node, opt Options) (s, absent string, ok bool) {
	var v value
	if err := v.UnmarshalYAML(n); err != nil {
		e, isErr := err.(*Error)
		if !isErr {
			e = &Error{Msg: err.Error()}
		}
		if e.Line == 0 && resolve(n) != nil {
			e.Line = resolve(n).Line
		}
		e.File, e.Field = d.file, field
		*d.errs = append(*d.errs, e)
		return "", "", false
	}
	s, set, err := v.resolve(opt)
	if err != nil {
		d.fail(resolve(n), field, "%v", err)
		return "", "", false
	}
	if !set {
		return "", v.ref(), true
	}
	return s, "", true
}

// ref names where an env or file value comes from.
func (v *value) ref() string {
	if v.env != "" {
		return "$" + v.env
	}
	return v.file
}
