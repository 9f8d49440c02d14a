package textmatch

import (
	"errors"
	"fmt"
	"slices"
)

// Matcher finds many patterns in one pass over a normalized text. It is
// immutable after Compile and safe for concurrent use.
//
// It is a byte-level Aho–Corasick automaton whose goto function is stored
// as a double-array trie (state s moves on byte c to t = base[s]+c if
// check[t] == s), with failure links and dictionary-suffix links to report
// every overlapping and nested match. We do not use
// github.com/petar-dambovaliev/aho-corasick: its overlapping iterator
// (StandardMatch) makes 66 allocations per message (an iterator, a []byte
// copy of the haystack and a *Match per hit), and Find must not allocate.
// A double array keeps the automaton compact: the 10,000 benchmark
// patterns take 66,722 slots (1 MiB), where a dense 256-way goto table
// would take about 64 MiB. One transition is two
// loads from a 16-byte slot, usually in the same cache line as the next
// state's base.
type Matcher struct {
	patterns []string // normalized, by index
	slots    []slot
	outs     []output
	ids      []int32 // pattern indexes, grouped by output
}

// slot is one double-array cell. If check != -1 the cell is a state whose
// number is its index. base and fail belong to that state, and out is the
// first output on its dictionary-suffix chain (or -1).
type slot struct {
	base, check, fail, out int32
}

// output lists the patterns that end at one state. They all have the same
// normalized text, so they share a length and word-boundary flags. next
// links to the output of the longest proper suffix state that has one.
type output struct {
	start, end int32 // ids[start:end]
	length     int32
	flags      uint8
	next       int32
}

const (
	boundLeft  = 1 << iota // pattern starts with an ASCII letter/digit
	boundRight             // pattern ends with an ASCII letter/digit
)

// wordByte reports ASCII letters and digits, the bytes that may not touch
// an ASCII end of a pattern. Upper case is included in case a caller
// passes text that was not normalized.
var wordByte = func() (t [256]bool) {
	for c := '0'; c <= '9'; c++ {
		t[c] = true
	}
	for c := 'a'; c <= 'z'; c++ {
		t[c] = true
		t[c-'a'+'A'] = true
	}
	return t
}()

// Hit is one occurrence of pattern Pattern at [Start, End) of the
// normalized text.
type Hit struct{ Pattern, Start, End int }

// PatternError reports a pattern that normalizes to nothing (empty, or
// only punctuation, symbols and spaces), so it could never match.
type PatternError struct {
	Index   int
	Pattern string
}

func (e *PatternError) Error() string {
	return fmt.Sprintf("textmatch: pattern %d (%q) is empty after normalization (only punctuation, symbols or spaces)", e.Index, e.Pattern)
}

// maxTotalBytes keeps state numbers within int32, with room for the
// double array's spare slots.
const maxTotalBytes = 1 << 28

// Compile builds a matcher for patterns, written as admins write them.
// Each pattern is normalized the same way as text. Empty or
// all-punctuation patterns are an error: a *PatternError for each, joined
// with errors.Join, so errors.As finds the first one and the message names
// them all. Duplicates are fine, and every duplicate index is reported.
// No patterns at all gives a matcher that never matches.
func Compile(patterns []string) (*Matcher, error) {
	m := &Matcher{patterns: make([]string, len(patterns))}
	var errs []error
	total := 0
	for i, p := range patterns {
		n := Normalize(p)
		if n == "" {
			errs = append(errs, &PatternError{Index: i, Pattern: p})
		}
		m.patterns[i] = n
		total += len(n)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if total > maxTotalBytes {
		return nil, fmt.Errorf("textmatch: patterns total %d bytes after normalization, limit %d", total, maxTotalBytes)
	}
	m.build()
	return m, nil
}

// Len is the number of patterns.
func (m *Matcher) Len() int { return len(m.patterns) }

// Pattern returns pattern i in normalized form, which is exactly the text
// that a Hit for it covers.
func (m *Matcher) Pattern(i int) string { return m.patterns[i] }

// MatchAll normalizes text and returns every hit in it. Offsets refer to
// Normalize(text). Callers that route many messages should call Normalize
// once and pass a reused dst to Find instead.
func (m *Matcher) MatchAll(text string) []Hit {
	return m.Find(Normalize(text), nil)
}

// Find appends to dst every occurrence of every pattern in normText, which
// must already be Normalize()d, and returns dst. It does not allocate when
// dst has room for the hits.
//
// Hits come in order of End. Among hits with the same End, longer patterns
// come first, and duplicate patterns in index order. A pattern whose first
// (last) byte is an ASCII letter or digit matches only where the byte
// before (after) it in normText is not one. Other ends, such as Han
// characters, match anywhere.
func (m *Matcher) Find(normText string, dst []Hit) []Hit {
	slots := m.slots
	if len(slots) == 0 {
		return dst
	}
	s := int32(0)
	for i := 0; i < len(normText); i++ {
		c := int32(normText[i])
		for {
			// base+255 < len(slots) for every state (see build), so t is
			// always in range.
			if t := slots[s].base + c; slots[t].check == s {
				s = t
				break
			}
			if s == 0 {
				break
			}
			s = slots[s].fail
		}
		for o := slots[s].out; o >= 0; {
			out := &m.outs[o]
			o = out.next
			end := i + 1
			start := end - int(out.length)
			if out.flags&boundLeft != 0 && start > 0 && wordByte[normText[start-1]] {
				continue
			}
			if out.flags&boundRight != 0 && end < len(normText) && wordByte[normText[end]] {
				continue
			}
			for _, id := range m.ids[out.start:out.end] {
				dst = append(dst, Hit{Pattern: int(id), Start: start, End: end})
			}
		}
	}
	return dst
}

// trie is the temporary pointer-style trie built before the double array.
type trie struct {
	first, next []int32 // first child, next sibling (-1 = none)
	label       []byte
	pats        [][]int32 // pattern indexes ending here
}

func (t *trie) add(label byte) int32 {
	t.first = append(t.first, -1)
	t.next = append(t.next, -1)
	t.label = append(t.label, label)
	t.pats = append(t.pats, nil)
	return int32(len(t.first) - 1)
}

func (t *trie) child(n int32, c byte) int32 {
	for k := t.first[n]; k >= 0; k = t.next[k] {
		if t.label[k] == c {
			return k
		}
	}
	k := t.add(c)
	t.next[k] = t.first[n]
	t.first[n] = k
	return k
}

func (m *Matcher) build() {
	// 1. Plain trie of all normalized patterns.
	var tr trie
	tr.add(0)
	for i, p := range m.patterns {
		n := int32(0)
		for j := 0; j < len(p); j++ {
			n = tr.child(n, p[j])
		}
		tr.pats[n] = append(tr.pats[n], int32(i))
	}

	// 2. Lay the trie out as a double array, breadth first. Children of
	// a node get consecutive-by-label slots base+c. The base is the first
	// one for which all those slots are free. nextCheck skips the densely
	// filled prefix of the array (the heuristic from darts/cedar) so that
	// placement stays close to linear.
	slots := make([]slot, 0, len(tr.first)*2+256)
	used := make([]bool, 0, cap(slots))
	grow := func(n int) {
		for len(slots) < n {
			slots = append(slots, slot{check: -1, out: -1})
			used = append(used, false)
		}
	}
	grow(256)
	used[0] = true
	slots[0].check = -2 // the root is nobody's child
	slotOf := make([]int32, len(tr.first))
	queue := []int32{0}
	var labels []byte
	var kids []int32
	nextCheck := 1
	maxBase := 0
	for qi := 0; qi < len(queue); qi++ {
		n := queue[qi]
		labels, kids = labels[:0], kids[:0]
		for k := tr.first[n]; k >= 0; k = tr.next[k] {
			kids = append(kids, k)
		}
		if len(kids) == 0 {
			continue
		}
		slices.SortFunc(kids, func(a, b int32) int { return int(tr.label[a]) - int(tr.label[b]) })
		for _, k := range kids {
			labels = append(labels, tr.label[k])
		}
		pos := max(nextCheck, int(labels[0])+1)
		nonzero := 0
		first := true
		var base int
		for ; ; pos++ {
			grow(pos + 257)
			if used[pos] {
				nonzero++
				continue
			}
			if first {
				nextCheck = pos
				first = false
			}
			base = pos - int(labels[0])
			ok := true
			for _, l := range labels[1:] {
				if used[base+int(l)] {
					ok = false
					break
				}
			}
			if ok {
				break
			}
		}
		if float64(nonzero)/float64(pos-nextCheck+1) >= 0.95 {
			nextCheck = pos
		}
		maxBase = max(maxBase, base)
		s := slotOf[n]
		slots[s].base = int32(base)
		for i, k := range kids {
			t := base + int(labels[i])
			used[t] = true
			slots[t].check = s
			slotOf[k] = int32(t)
			queue = append(queue, k)
		}
	}
	// Every state's base+255 must be a valid index, including leaves (base
	// 0), so Find needs no range check of its own.
	grow(maxBase + 256)

	// 3. Failure links and outputs, in breadth-first order, so a state's
	// failure target (which is shallower) is done before the state.
	for _, n := range queue {
		s := slotOf[n]
		for k := tr.first[n]; k >= 0; k = tr.next[k] {
			t := slotOf[k]
			c := int32(tr.label[k])
			f := int32(0)
			if n != 0 {
				f = slots[s].fail
				for {
					if g := slots[f].base + c; slots[g].check == f {
						f = g
						break
					}
					if f == 0 {
						break
					}
					f = slots[f].fail
				}
			}
			slots[t].fail = f
		}
		// The root's outputs stay empty: patterns are never empty.
		if n == 0 {
			continue
		}
		inherited := slots[slots[s].fail].out
		if ps := tr.pats[n]; len(ps) > 0 {
			p := m.patterns[ps[0]]
			var flags uint8
			if wordByte[p[0]] {
				flags |= boundLeft
			}
			if wordByte[p[len(p)-1]] {
				flags |= boundRight
			}
			m.outs = append(m.outs, output{
				start:  int32(len(m.ids)),
				end:    int32(len(m.ids) + len(ps)),
				length: int32(len(p)),
				flags:  flags,
				next:   inherited,
			})
			m.ids = append(m.ids, ps...)
			slots[s].out = int32(len(m.outs) - 1)
		} else {
			slots[s].out = inherited
		}
	}
	m.slots = slots
}
