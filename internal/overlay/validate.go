package overlay

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"strconv"
	"strings"

	"github.com/magibake/magibake/internal/profile"
)

// Problem is one thing wrong with an overlay file, found by Validate.
type Problem struct {
	File string // display path, e.g. "overlays (embedded)/head/root/etc/x.tmpl"
	Line int    // 0 when the problem has no single line
	Msg  string
}

// Error formats the problem as "FILE:LINE: MSG".
func (p *Problem) Error() string {
	if p.Line > 0 {
		return p.File + ":" + strconv.Itoa(p.Line) + ": " + p.Msg
	}
	return p.File + ": " + p.Msg
}

// Validate renders every overlay file for every node of c, as Render would,
// but goes on past a bad file so that every problem is reported, each once
// even when several nodes hit it. The offline .deb files are not read: the
// profile loader has checked their directory already.
func Validate(c *profile.Cluster, trees []Tree) []error {
	var problems []error
	seen := map[string]bool{}
	add := func(err error) {
		p := toProblem(err)
		if !seen[p.Error()] {
			seen[p.Error()] = true
			problems = append(problems, p)
		}
	}
	for i := range c.Nodes {
		node := &c.Nodes[i]
		data := &Data{Node: node, Cluster: c, Head: c.HeadNode()}
		for _, n := range c.Nodes {
			if n.Role == profile.RoleWorker {
				data.Workers = append(data.Workers, n)
			}
		}
		for _, t := range trees {
			for _, dir := range []string{"common", string(node.Role)} {
				validateTree(t, dir, data, add)
			}
		}
	}
	return problems
}

func validateTree(t Tree, dir string, data *Data, add func(error)) {
	if _, err := fs.Stat(t.FS, dir); errors.Is(err, fs.ErrNotExist) {
		return
	}
	fs.WalkDir(t.FS, dir, func(name string, d fs.DirEntry, err error) error {
		display := path.Join(t.Display, name)
		switch {
		case err != nil:
			add(fmt.Errorf("overlay %s: %w", display, err))
			return nil
		case d.Type()&fs.ModeSymlink != 0:
			add(fmt.Errorf("overlay %s: is a symlink on the host; use NAME.symlink files for symlinks in the image", display))
			return nil
		case d.IsDir() || d.Name() == ".keep":
			return nil
		case !d.Type().IsRegular():
			add(fmt.Errorf("overlay %s: not a regular file", display))
			return nil
		}
		if _, err := renderFile(t.FS, name, display, t.source(name), data); err != nil {
			add(err)
		}
		return nil
	})
}

// text/template reports "template: NAME:LINE: msg" when parsing and
// "template: NAME:LINE:COL: executing ..." when executing.
var templateErr = regexp.MustCompile(`^template: (.+?):(\d+):(?:\d+:)? (.*)$`)

// toProblem turns the "overlay DISPLAY: msg" and "overlay template: ..."
// errors of renderFile into a Problem with the file and line up front.
func toProblem(err error) *Problem {
	msg := strings.TrimPrefix(err.Error(), "overlay ")
	if m := templateErr.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[2])
		return &Problem{File: m[1], Line: line, Msg: m[3]}
	}
	if file, rest, ok := strings.Cut(msg, ": "); ok {
		return &Problem{File: file, Msg: rest}
	}
	return &Problem{File: "overlays", Msg: msg}
}
