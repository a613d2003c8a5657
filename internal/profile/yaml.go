package profile

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// doc walks one YAML file by hand rather than decoding into structs, so that
// every problem (not just the first) gets its own file:line and field path.
type doc struct {
	file string // display path
	errs *[]error
	// key is the key whose value mapping is handing to a field function;
	// problems with a whole section are reported on its line.
	key *yaml.Node
}

func (d *doc) fail(n *yaml.Node, field, format string, a ...any) {
	line := 0
	if n != nil {
		line = n.Line
	}
	*d.errs = append(*d.errs, &Error{File: d.file, Line: line, Field: field, Msg: fmt.Sprintf(format, a...)})
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// parse returns the root node of the single document in b, or nil after
// reporting why there is none.
func (d *doc) parse(b []byte) (root *yaml.Node) {
	defer func() {
		// yaml.v3 has panicked on malformed input before (CVE-2022-28948);
		// a profile must never crash the program.
		if r := recover(); r != nil {
			d.fail(nil, "", "cannot parse YAML: %v", r)
			root = nil
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var n yaml.Node
	if err := dec.Decode(&n); err != nil {
		if errors.Is(err, io.EOF) {
			d.fail(nil, "", "empty file")
			return nil
		}
		d.yamlError(err)
		return nil
	}
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		if err != nil {
			d.yamlError(err)
		} else {
			d.fail(&more, "", "more than one YAML document; want one mapping")
		}
		return nil
	}
	if n.Kind == yaml.DocumentNode && len(n.Content) == 1 {
		return n.Content[0]
	}
	d.fail(&n, "", "want a mapping at the top of the file")
	return nil
}

// parserProblems are the messages of yaml.v3's parser (as opposed to its
// scanner), whose "line N" counts from zero and is left out on the first
// line; the scanner's count from one.
var parserProblems = []string{
	"did not find expected <stream-start>",
	"did not find expected <document start>",
	"found undefined tag handle",
	"did not find expected node content",
	"did not find expected '-' indicator",
	"did not find expected key",
	"did not find expected ',' or ']'",
	"did not find expected ',' or '}'",
	"found duplicate %YAML directive",
	"found incompatible YAML document",
	"found duplicate %TAG directive",
}

func (d *doc) yamlError(err error) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	for _, p := range parserProblems {
		if msg == p {
			line++
			break
		}
	}
	*d.errs = append(*d.errs, &Error{File: d.file, Line: line, Msg: "YAML: " + msg})
}

// resolve follows aliases to the node they name.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n != nil && n.Kind == yaml.AliasNode && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	n = resolve(n)
	return n == nil || (n.Kind == yaml.ScalarNode && n.Tag == "!!null")
}

// describe names what a node holds, for "want X, got Y" messages.
func describe(n *yaml.Node) string {
	n = resolve(n)
	if n == nil {
		return "nothing"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return "nothing"
		}
		return quote(n.Value)
	}
	return "an unexpected YAML node"
}

// quote quotes a user-supplied value for a one-line message, cut short.
func quote(s string) string {
	const limit = 64
	if len(s) > limit {
		s = s[:limit] + "..."
	}
	return strconv.Quote(s)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// keys is what mapping found: the key nodes, by name, and which had no value.
type keys struct {
	at    map[string]*yaml.Node
	empty map[string]bool
	// node is where to report problems with the mapping as a whole: the key
	// that introduced it, or the mapping itself at the top of a file.
	node *yaml.Node
}

// mapping calls fields[key] for each key of the mapping n with a value, in
// file order, and reports unknown and repeated keys. A key with an empty
// value counts as absent.
func (d *doc) mapping(n *yaml.Node, path string, fields map[string]func(field string, v *yaml.Node)) (keys, bool) {
	n = resolve(n)
	k := keys{at: map[string]*yaml.Node{}, empty: map[string]bool{}, node: n}
	if path != "" && d.key != nil {
		k.node = d.key
	}
	if n == nil || n.Kind != yaml.MappingNode {
		d.fail(n, path, "want a mapping, got %s", describe(n))
		return k, false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		key, v := resolve(n.Content[i]), n.Content[i+1]
		if key == nil || key.Kind != yaml.ScalarNode {
			d.fail(key, path, "want a plain key, got %s", describe(key))
			continue
		}
		name := join(path, key.Value)
		set, ok := fields[key.Value]
		if !ok {
			if near := nearestKey(key.Value, fields); near != "" {
				d.fail(key, name, "unknown key (did you mean %s?)", quote(near))
			} else {
				d.fail(key, name, "unknown key")
			}
			continue
		}
		if first, dup := k.at[key.Value]; dup {
			d.fail(key, name, "given twice (first on line %d)", first.Line)
			continue
		}
		k.at[key.Value] = key
		if isNull(v) {
			k.empty[key.Value] = true
			continue
		}
		d.key = key
		set(name, v)
	}
	return k, true
}

// has says whether key was given with a value.
func (k keys) has(key string) bool { return k.at[key] != nil && !k.empty[key] }

// require reports each of names that has no value.
func (d *doc) require(k keys, path string, names ...string) {
	for _, name := range names {
		switch {
		case k.at[name] == nil:
			d.fail(k.node, join(path, name), "missing")
		case k.empty[name]:
			d.fail(k.at[name], join(path, name), "no value given")
		}
	}
}

// scalar returns the text of a scalar node; want describes the expected
// value in the error otherwise.
func (d *doc) scalar(field string, n *yaml.Node, want string) (string, bool) {
	r := resolve(n)
	if r == nil || r.Kind != yaml.ScalarNode {
		d.fail(r, field, "want %s, got %s", want, describe(r))
		return "", false
	}
	return r.Value, true
}

func (d *doc) str(field string, n *yaml.Node) (string, bool) {
	return d.scalar(field, n, "a string")
}

func (d *doc) boolean(field string, n *yaml.Node) (bool, bool) {
	s, ok := d.scalar(field, n, "true or false")
	if !ok {
		return false, false
	}
	switch s {
	case "true", "True", "TRUE":
		return true, true
	case "false", "False", "FALSE":
		return false, true
	}
	d.fail(resolve(n), field, "want true or false, got %s", quote(s))
	return false, false
}

func (d *doc) seconds(field string, n *yaml.Node) (int, bool) {
	const want = "a whole number of seconds"
	s, ok := d.scalar(field, n, want)
	if !ok {
		return 0, false
	}
	v, err := strconv.Atoi(s)
	if err != nil {
		d.fail(resolve(n), field, "want %s, got %s", want, quote(s))
		return 0, false
	}
	if v <= 0 {
		d.fail(resolve(n), field, "want a positive number of seconds, got %d", v)
		return 0, false
	}
	return v, true
}

// list returns the items of a sequence node.
func (d *doc) list(field string, n *yaml.Node, want string) ([]*yaml.Node, bool) {
	r := resolve(n)
	if r == nil || r.Kind != yaml.SequenceNode {
		d.fail(r, field, "want %s, got %s", want, describe(r))
		return nil, false
	}
	return r.Content, true
}

func item(field string, i int) string { return field + "[" + strconv.Itoa(i) + "]" }

// nearestKey is the known key a mistyped one most likely meant: the closest
// by edit distance, if it is close enough to be a typo (at most one edit in
// four characters, and at least one); "" otherwise.
func nearestKey[F any](typed string, known map[string]F) string {
	best, bestDist := "", len(typed)/4+2
	for k := range known {
		if d := editDistance(typed, k); d < bestDist || (d == bestDist && k < best) {
			best, bestDist = k, d
		}
	}
	return best
}

// editDistance is the Levenshtein distance between a and b, by bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
