package parse

import (
	"regexp"
	"strconv"
	"strings"

	"golang.org/x/net/html"
	"golang.org/x/net/html/atom"
)

// HTMLText turns HTML into readable plain text: paragraphs and <br> as line
// breaks, lists as "- " lines, links as "text (url)" when they differ, no
// script or style. Blockquotes come out as "> " lines, the way a mail
// client quotes, so that StripQuoted finds quoted history in HTML mail too.
func HTMLText(s string) string {
	s = strings.ToValidUTF8(stripNUL(s), "\uFFFD")
	doc, err := html.Parse(strings.NewReader(s))
	if err != nil {
		// The parser refuses absurd nesting; the text is still there.
		return tokenText(s)
	}
	r := &renderer{}
	r.node(doc, 0)
	return r.finish()
}

// Past this depth only the text is kept: a hostile mail can nest
// elements far deeper than any layout.
const maxHTMLDepth = 200

// maxIndent caps the quote and list levels written out.
const maxIndent = 8

type list struct {
	ordered bool
	n       int
}

type renderer struct {
	b         strings.Builder
	pending   int  // line breaks owed before the next text
	space     bool // a space owed before the next text
	lineStart bool
	newlines  int // line breaks at the end of b
	quote     int
	pre       int
	inLI      int
	lists     []list
	marker    string // list marker owed at the start of the next line
}

func (r *renderer) node(n *html.Node, depth int) {
	switch n.Type {
	case html.TextNode:
		r.text(n.Data)
		return
	case html.DocumentNode:
		r.children(n, depth)
		return
	case html.ElementNode:
	default:
		return
	}
	if depth > maxHTMLDepth {
		r.flat(n)
		return
	}
	if hidden(n) {
		return
	}
	switch n.DataAtom {
	case atom.Script, atom.Style, atom.Head, atom.Title, atom.Noscript, atom.Template,
		atom.Iframe, atom.Object, atom.Svg, atom.Math, atom.Select, atom.Textarea, atom.Input, atom.Button:
		return
	case atom.Br:
		r.flush()
		r.newline()
	case atom.P:
		lines := 2
		if r.inLI > 0 || strings.Contains(attr(n, "class"), "MsoNormal") {
			// Outlook writes every line as a paragraph with no margin.
			lines = 1
		}
		r.block(lines)
		r.children(n, depth)
		r.block(lines)
	case atom.H1, atom.H2, atom.H3, atom.H4, atom.H5, atom.H6:
		r.block(2)
		r.children(n, depth)
		r.block(2)
	case atom.Blockquote:
		r.block(1)
		r.quote++
		r.children(n, depth)
		r.quote--
		r.block(1)
	case atom.Ul, atom.Ol:
		r.block(1)
		r.lists = append(r.lists, list{ordered: n.DataAtom == atom.Ol})
		r.children(n, depth)
		r.lists = r.lists[:len(r.lists)-1]
		r.block(1)
	case atom.Li:
		r.block(1)
		r.flush()
		r.marker = r.listMarker()
		r.inLI++
		r.children(n, depth)
		r.inLI--
		r.marker = ""
		r.block(1)
	case atom.Pre:
		r.block(1)
		r.pre++
		r.children(n, depth)
		r.pre--
		r.block(1)
	case atom.Td, atom.Th:
		r.space = true
		r.children(n, depth)
		r.space = true
	case atom.A:
		start := r.b.Len()
		r.children(n, depth)
		r.link(attr(n, "href"), r.b.String()[start:])
	case atom.Img:
		if alt := strings.TrimSpace(attr(n, "alt")); alt != "" {
			r.text(" " + alt + " ")
		}
	case atom.Div, atom.Section, atom.Article, atom.Header, atom.Footer, atom.Main, atom.Nav,
		atom.Aside, atom.Address, atom.Center, atom.Form, atom.Fieldset, atom.Figure,
		atom.Figcaption, atom.Dl, atom.Dt, atom.Dd, atom.Table, atom.Tbody, atom.Thead,
		atom.Tfoot, atom.Tr, atom.Caption, atom.Hr, atom.Body, atom.Html:
		r.block(1)
		r.children(n, depth)
		r.block(1)
	default:
		r.children(n, depth)
	}
}

func (r *renderer) children(n *html.Node, depth int) {
	for c := n.FirstChild; c != nil; c = c.NextSibling {
		r.node(c, depth+1)
	}
}

// flat writes the text under n without recursion.
func (r *renderer) flat(n *html.Node) {
	stack := []*html.Node{n}
	for len(stack) > 0 {
		c := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch {
		case c.Type == html.TextNode:
			r.text(c.Data)
			continue
		case c.Type != html.ElementNode:
			continue
		case c.DataAtom == atom.Script || c.DataAtom == atom.Style:
			continue
		case c.DataAtom == atom.Br || c.DataAtom == atom.P || c.DataAtom == atom.Div:
			r.block(1)
		}
		for k := c.LastChild; k != nil; k = k.PrevSibling {
			stack = append(stack, k)
		}
	}
}

var displayNoneRE = regexp.MustCompile(`(?i)display\s*:\s*none`)

// hidden reports elements a reader never sees, such as the preview text
// newsletters hide at the top.
func hidden(n *html.Node) bool {
	for _, a := range n.Attr {
		switch a.Key {
		case "hidden":
			return true
		case "style":
			if displayNoneRE.MatchString(a.Val) {
				return true
			}
		}
	}
	return false
}

func attr(n *html.Node, key string) string {
	for _, a := range n.Attr {
		if a.Key == key {
			return a.Val
		}
	}
	return ""
}

func (r *renderer) listMarker() string {
	if len(r.lists) == 0 {
		return "- "
	}
	l := &r.lists[len(r.lists)-1]
	indent := strings.Repeat("  ", min(len(r.lists)-1, maxIndent))
	if l.ordered {
		l.n++
		return indent + strconv.Itoa(l.n) + ". "
	}
	return indent + "- "
}

// link appends the target after the link text, unless the text already
// says it (or there is no text to explain).
func (r *renderer) link(href, inner string) {
	href = strings.TrimSpace(href)
	inner = strings.TrimSpace(inner)
	low := strings.ToLower(href)
	if href == "" || inner == "" || strings.HasPrefix(href, "#") || strings.HasPrefix(low, "javascript:") ||
		strings.HasPrefix(low, "cid:") || strings.HasPrefix(low, "data:") {
		return
	}
	shown := href
	if strings.HasPrefix(low, "mailto:") {
		shown = href[len("mailto:"):]
		if i := strings.IndexByte(shown, '?'); i >= 0 {
			shown = shown[:i]
		}
	}
	if sameTarget(inner, shown) {
		return
	}
	r.text(" (" + shown + ")")
}

func sameTarget(text, target string) bool {
	norm := func(s string) string {
		s = strings.ToLower(strings.TrimSpace(s))
		for _, p := range []string{"mailto:", "https://", "http://", "www."} {
			s = strings.TrimPrefix(s, p)
		}
		return strings.TrimRight(s, "/")
	}
	return norm(text) == norm(target)
}

// block asks for n line breaks before whatever comes next.
func (r *renderer) block(n int) {
	if n > r.pending {
		r.pending = n
	}
	r.space = false
}

func (r *renderer) flush() {
	if r.b.Len() == 0 {
		r.pending = 0
		return
	}
	for r.newlines < r.pending {
		r.newline()
	}
	r.pending = 0
}

func (r *renderer) newline() {
	r.b.WriteByte('\n')
	r.newlines++
	r.lineStart = true
	r.space = false
}

func (r *renderer) write(s string) {
	if r.lineStart || r.b.Len() == 0 {
		if r.quote > 0 {
			// Capped, like the list indent: deep nesting must not
			// multiply the size of the text.
			r.b.WriteString(strings.Repeat("> ", min(r.quote, maxIndent)))
		}
		if r.marker != "" {
			r.b.WriteString(r.marker)
			r.marker = ""
		}
		r.lineStart = false
	}
	r.b.WriteString(s)
	r.newlines = 0
}

func (r *renderer) text(s string) {
	if r.pre > 0 {
		s = strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\u00a0", " ")
		for i, line := range strings.Split(s, "\n") {
			if i > 0 {
				r.flush()
				r.newline()
			}
			if line != "" {
				r.flush()
				r.write(line)
			}
		}
		return
	}
	nbsp := strings.Contains(s, "\u00a0")
	s = collapseSpace(s)
	if s == "" {
		return
	}
	lead, trail := s[0] == ' ', s[len(s)-1] == ' '
	s = strings.TrimSpace(s)
	if lead {
		r.space = true
	}
	if s == "" {
		if nbsp {
			// A paragraph of &nbsp; is how Outlook writes an empty line:
			// it holds its line open so the next block breaks after it.
			r.flush()
			r.newlines, r.lineStart = 0, false
		}
		return
	}
	r.flush()
	if r.space && !r.lineStart && r.b.Len() > 0 {
		r.b.WriteByte(' ')
	}
	r.space = false
	r.write(s)
	r.space = trail
}

// collapseSpace folds HTML whitespace (and the no-break spaces mail
// editors pad with) into single spaces and drops invisible padding.
func collapseSpace(s string) string {
	var b strings.Builder
	b.Grow(len(s))
	prevSpace := false
	for _, c := range s {
		switch c {
		case ' ', '\t', '\n', '\r', '\f', '\u00a0':
			if !prevSpace {
				b.WriteByte(' ')
			}
			prevSpace = true
			continue
		case '\u200b', '\ufeff', '\u034f', '\u00ad', '\u2060':
			continue
		}
		b.WriteRune(c)
		prevSpace = false
	}
	return b.String()
}

var manyBlankLinesRE = regexp.MustCompile(`\n{3,}`)

func (r *renderer) finish() string {
	lines := strings.Split(r.b.String(), "\n")
	for i, l := range lines {
		lines[i] = strings.TrimRight(l, " ")
	}
	s := manyBlankLinesRE.ReplaceAllString(strings.Join(lines, "\n"), "\n\n")
	return strings.TrimSpace(s)
}

// tokenText keeps only the text and line breaks of HTML the parser
// refused, reading it with the tokenizer instead.
func tokenText(s string) string {
	r := &renderer{}
	z := html.NewTokenizer(strings.NewReader(s))
	skip := 0
	for {
		switch tt := z.Next(); tt {
		case html.ErrorToken:
			return r.finish()
		case html.TextToken:
			if skip == 0 {
				r.text(string(z.Text()))
			}
		case html.StartTagToken, html.EndTagToken, html.SelfClosingTagToken:
			name, _ := z.TagName()
			switch a := atom.Lookup(name); a {
			case atom.Script, atom.Style, atom.Head:
				if tt == html.StartTagToken {
					skip++
				} else if skip > 0 {
					skip--
				}
			case atom.Br:
				r.flush()
				r.newline()
			case atom.P, atom.Div, atom.Li, atom.Tr, atom.Blockquote, atom.H1, atom.H2, atom.H3,
				atom.H4, atom.H5, atom.H6, atom.Table, atom.Ul, atom.Ol, atom.Pre:
				r.block(1)
			}
		}
	}
}
