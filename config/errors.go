package config

import (
	"cmp"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/goccy/go-yaml"
	"github.com/goccy/go-yaml/token"
)

// Error is one problem in a configuration file, at the line and column (both
// 1-based, as editors count them) of the offending key or value. A problem
// that has no place of its own in the file (a default that clashes with
// another setting) is reported at the nearest enclosing key that does, or at
// 1:1.
type Error struct {
	File string
	Line int
	Col  int
	Msg  string
}

// Error returns "file:line:col: message", the form editors and CI logs
// turn into links.
func (e *Error) Error() string {
	return fmt.Sprintf("%s:%d:%d: %s", e.File, e.Line, e.Col, e.Msg)
}

// Errors is what Parse returns when a file has more than one problem, so that
// an admin can fix them all in one go instead of one per restart.
type Errors []*Error

// Error lists the problems one per line, in file order.
func (es Errors) Error() string {
	sorted := slices.Clone(es)
	sortErrors(sorted)
	lines := make([]string, len(sorted))
	for i, e := range sorted {
		lines[i] = e.Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap lets errors.As find the individual *Error values.
func (es Errors) Unwrap() []error {
	out := make([]error, len(es))
	for i, e := range es {
		out[i] = e
	}
	return out
}

func sortErrors(es []*Error) {
	slices.SortStableFunc(es, func(a, b *Error) int {
		return cmp.Or(cmp.Compare(a.File, b.File), cmp.Compare(a.Line, b.Line), cmp.Compare(a.Col, b.Col))
	})
}

// position is a 1-based line and column in the file.
type position struct{ line, col int }

var startOfFile = position{1, 1}

func tokenPos(tk *token.Token) (position, bool) {
	if tk == nil || tk.Position == nil || tk.Position.Line < 1 || tk.Position.Column < 1 {
		return position{}, false
	}
	return position{tk.Position.Line, tk.Position.Column}, true
}

// problems collects everything wrong with one file.
type problems struct {
	file string
	list []*Error
}

func (p *problems) addf(pos position, format string, args ...any) {
	p.list = append(p.list, &Error{File: p.file, Line: pos.line, Col: pos.col, Msg: fmt.Sprintf(format, args...)})
}

// addYAML records an error from goccy/go-yaml, taking the position from its
// token rather than from its message text, which embeds "[line:col]" and a
// source excerpt meant for a terminal.
func (p *problems) addYAML(fallback position, prefix string, err error) {
	msg := err.Error()
	pos := fallback
	var ye yaml.Error
	if errors.As(err, &ye) {
		msg = ye.GetMessage()
		if tp, ok := tokenPos(ye.GetToken()); ok {
			pos = tp
		}
	}
	p.addf(pos, "%s%s", prefix, msg)
}

// err returns nil, a single *Error or Errors sorted by position. Duplicates
// (one anchor used through several aliases can fail the same way at the same
// place) are reported once.
func (p *problems) err() error {
	if len(p.list) == 0 {
		return nil
	}
	sortErrors(p.list)
	seen := make(map[Error]bool, len(p.list))
	var out []*Error
	for _, e := range p.list {
		if !seen[*e] {
			seen[*e] = true
			out = append(out, e)
		}
	}
	if len(out) == 1 {
		return out[0]
	}
	return Errors(out)
}

// At makes an error positioned where the setting at path (for example
// "routing.topics.refunds.match[0].any[2]") was written, or at its nearest
// written parent. A config not loaded from a file gives line 1, column 1.
func (c *Config) At(path, format string, args ...any) *Error {
	msg := path + ": " + fmt.Sprintf(format, args...)
	w := c.where
	if c.whereRouting != nil && (path == "routing" || strings.HasPrefix(path, "routing.")) {
		w = c.whereRouting
	}
	if w == nil {
		return &Error{File: "config", Line: 1, Col: 1, Msg: msg}
	}
	p := w.pos(path, false)
	return &Error{File: w.probs.file, Line: p.line, Col: p.col, Msg: msg}
}
