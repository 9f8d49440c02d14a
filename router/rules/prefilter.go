package rules

import (
	"regexp"
	"regexp/syntax"
	"strings"
)

// pattern is a compiled regular expression with a prefilter: strings at
// least one of which occurs in any text the expression matches. Regular
// expressions with alternations and bounded repeats backtrack, and were
// nine tenths of a decision's time; most messages contain none of the
// literals, so the expression is never run on them.
type pattern struct {
	re   *regexp.Regexp
	need []string // nil: no prefilter, always run
}

// matches reports whether the expression matches any of texts, and where.
func (p *pattern) find(texts []string) (string, bool) {
	for _, t := range texts {
		if p.need != nil && !containsAny(t, p.need) {
			continue
		}
		if loc := p.re.FindStringIndex(t); loc != nil {
			return t[loc[0]:loc[1]], true
		}
	}
	return "", false
}

func containsAny(s string, subs []string) bool {
	for _, x := range subs {
		if strings.Contains(s, x) {
			return true
		}
	}
	return false
}

func compilePattern(src string) (*pattern, error) {
	re, err := regexp.Compile(src)
	if err != nil {
		return nil, err
	}
	p := &pattern{re: re}
	if tree, err := syntax.Parse(src, syntax.Perl); err == nil {
		if need, ok := required(tree.Simplify()); ok && len(need) > 0 && len(need) <= 64 {
			p.need = need
		}
	}
	return p, nil
}

// required returns strings at least one of which occurs in every match of
// re, and false when it cannot tell (any text might match). Normalized
// text is lower case, so literals are lowered; an expression whose
// upper-case literal could never match lower-case text is then skipped,
// which is what it would have done anyway.
func required(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		if len(re.Rune) == 0 {
			return nil, false
		}
		return []string{strings.ToLower(string(re.Rune))}, true
	case syntax.OpCapture:
		return required(re.Sub[0])
	case syntax.OpPlus:
		return required(re.Sub[0])
	case syntax.OpRepeat:
		if re.Min >= 1 {
			return required(re.Sub[0])
		}
		return nil, false
	case syntax.OpConcat:
		// Any one part's literals are required; take the part whose
		// shortest literal is longest, which filters best.
		var best []string
		bestLen := 0
		for _, sub := range re.Sub {
			need, ok := required(sub)
			if !ok {
				continue
			}
			if m := shortest(need); m > bestLen {
				best, bestLen = need, m
			}
		}
		return best, best != nil
	case syntax.OpAlternate:
		var all []string
		for _, sub := range re.Sub {
			need, ok := required(sub)
			if !ok {
				return nil, false
			}
			all = append(all, need...)
		}
		return all, true
	case syntax.OpCharClass:
		// A small class: each of its characters.
		var out []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				if len(out) == 8 {
					return nil, false
				}
				out = append(out, strings.ToLower(string(r)))
			}
		}
		return out, len(out) > 0
	}
	return nil, false
}

func shortest(ss []string) int {
	m := -1
	for _, s := range ss {
		if m < 0 || len(s) < m {
			m = len(s)
		}
	}
	return m
}
