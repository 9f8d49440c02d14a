package config

import (
	"fmt"
	"strings"

	"github.com/goccy/go-yaml/ast"
	"github.com/goccy/go-yaml/token"
)

// expander replaces ${NAME} and ${NAME:-default} in one string; $$ stands for
// a literal $, and a $ followed by anything else is kept as it is, so that
// secrets containing a lone $ need no escaping.
type expander struct {
	src string
	env func(string) (string, bool)
	// unset lists the variables that were unset or empty and had no
	// default: when a required setting comes out empty, naming them tells
	// the admin what to export.
	unset []string
}

// expandEnv expands s. It never fails because a variable is unset (that
// expands to "", as in a shell); only a malformed reference is an error.
func expandEnv(s string, env func(string) (string, bool)) (string, []string, error) {
	x := expander{src: s, env: env}
	out, _, err := x.until(0, -1)
	return out, x.unset, err
}

// until expands from i to the end of the string or, when open >= 0 (inside
// the default of the reference starting at open), to the matching "}".
// It returns the expansion and the index just past what it consumed.
func (x *expander) until(i, open int) (string, int, error) {
	var b strings.Builder
	for i < len(x.src) {
		c := x.src[i]
		switch {
		case c == '}' && open >= 0:
			return b.String(), i + 1, nil
		case c != '$':
			b.WriteByte(c)
			i++
		case strings.HasPrefix(x.src[i:], "$$"):
			b.WriteByte('$')
			i += 2
		case strings.HasPrefix(x.src[i:], "${"):
			v, next, err := x.reference(i)
			if err != nil {
				return "", 0, err
			}
			b.WriteString(v)
			i = next
		default:
			b.WriteByte(c)
			i++
		}
	}
	if open >= 0 {
		return "", 0, x.unterminated(open)
	}
	return b.String(), i, nil
}

// reference expands the ${...} starting at start.
func (x *expander) reference(start int) (string, int, error) {
	i := start + 2
	j := i
	for j < len(x.src) && isNameByte(x.src[j], j == i) {
		j++
	}
	name := x.src[i:j]
	rest := x.src[j:]
	switch {
	case rest == "":
		return "", 0, x.unterminated(start)
	case name == "" && rest[0] == '}':
		return "", 0, fmt.Errorf("empty variable name in \"${}\" (write $$ for a literal $)")
	case name != "" && rest[0] == '}':
		v, ok := x.env(name)
		if !ok || v == "" {
			x.unset = append(x.unset, name)
		}
		return v, j + 1, nil
	case name != "" && strings.HasPrefix(rest, ":-"):
		// The default is parsed even when it is not used so that a typo in
		// it shows up whatever the environment.
		mark := len(x.unset)
		def, next, err := x.until(j+2, start)
		if err != nil {
			return "", 0, err
		}
		if v, ok := x.env(name); ok && v != "" {
			x.unset = x.unset[:mark]
			return v, next, nil
		}
		return def, next, nil
	default:
		ref := x.src[start:]
		if k := strings.IndexByte(ref, '}'); k >= 0 {
			ref = ref[:k+1]
		}
		return "", 0, fmt.Errorf("invalid variable reference %s: want ${NAME} or ${NAME:-default} (write $$ for a literal $)", quote(ref))
	}
}

func (x *expander) unterminated(start int) error {
	return fmt.Errorf("unterminated variable reference %s: missing \"}\" (write $$ for a literal $)", quote(x.src[start:]))
}

func isNameByte(c byte, first bool) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || !first && c >= '0' && c <= '9'
}

// expandTree expands the environment in every scalar value of the tree
// rooted at n (keys are names from the schema and are left alone) and
// returns the node that replaces n. Expanding the parsed tree rather than the
// raw text means a value containing "#" or ": " cannot change the structure
// of the file, and every node keeps its original line and column.
//
// A plain (unquoted) scalar is re-typed after expansion as if its new text
// had been written in the file, so "port: ${PORT}" decodes into an int; a
// quoted or block scalar stays a string. A plain scalar that expands to
// nothing becomes null, which every field decodes as its zero value (and so
// as its default).
//
// It also records every anchor, in document order, for alias resolution.
func (d *decoder) expandTree(n ast.Node) ast.Node {
	switch n := n.(type) {
	case *ast.MappingNode:
		for _, mv := range n.Values {
			d.expandTree(mv)
		}
	case *ast.MappingValueNode:
		// Keys are not expanded, but an anchor on a key can be aliased.
		if k, ok := n.Key.(*ast.AnchorNode); ok {
			d.recordAnchor(k)
		}
		n.Value = d.expandTree(n.Value)
	case *ast.SequenceNode:
		for i, v := range n.Values {
			nv := d.expandTree(v)
			n.Values[i] = nv
			// Entries mirrors Values for the printer; keep them in step.
			if i < len(n.Entries) && n.Entries[i] != nil && n.Entries[i].Value == v {
				n.Entries[i].Value = nv
			}
		}
	case *ast.AnchorNode:
		n.Value = d.expandTree(n.Value)
		d.recordAnchor(n)
	case *ast.TagNode:
		n.Value = d.expandTree(n.Value)
	case *ast.LiteralNode:
		if n.Value != nil {
			d.expandString(n, n.Value, false)
		}
	case *ast.StringNode:
		plain := n.Token != nil && n.Token.Type == token.StringType
		return d.expandString(n, n, plain)
	}
	return n
}

// recordAnchor notes an anchor for alias resolution. Anchors are recorded
// in document order, which is the order expandTree visits them in.
func (d *decoder) recordAnchor(n *ast.AnchorNode) {
	if isNilNode(n.Name) {
		return
	}
	if name := n.Name.GetToken(); name != nil {
		d.anchors[name.Value] = append(d.anchors[name.Value], anchorDef{at: nodePos(n), node: n.Value})
	}
}

// expandString expands the string s held by node n (s itself, or the body
// of a block scalar) and returns the node that replaces n.
func (d *decoder) expandString(n ast.Node, s *ast.StringNode, plain bool) ast.Node {
	if !strings.Contains(s.Value, "$") {
		return n
	}
	v, unset, err := expandEnv(s.Value, d.env)
	if err != nil {
		d.envErrs[n] = err.Error()
		return n
	}
	out := n
	if plain && s.Token != nil {
		out = plainScalar(v, s.Token)
	} else {
		s.Value = v
	}
	if len(unset) > 0 {
		d.unsetVars[out] = unset
	}
	return out
}

// plainScalar builds the node the parser would have built for text written
// unquoted at the place of orig.
func plainScalar(text string, orig *token.Token) ast.Node {
	tk := token.New(text, orig.Origin, orig.Position)
	tk.Prev, tk.Next = orig.Prev, orig.Next
	if text == "" {
		tk.Type = token.NullType
		return ast.Null(tk)
	}
	switch tk.Type {
	case token.NullType, token.ImplicitNullType:
		return ast.Null(tk)
	case token.BoolType:
		return ast.Bool(tk)
	case token.IntegerType, token.BinaryIntegerType, token.OctetIntegerType, token.HexIntegerType:
		return ast.Integer(tk)
	case token.FloatType:
		return ast.Float(tk)
	case token.InfinityType:
		return ast.Infinity(tk)
	case token.NanType:
		return ast.Nan(tk)
	}
	tk.Type = token.StringType
	return &ast.StringNode{BaseNode: &ast.BaseNode{}, Token: tk, Value: text}
}
