package textmatch

import (
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

// Normalize returns the matching form of s. The steps are described in
// the package documentation. Normalize is idempotent, always returns valid
// UTF-8 and never panics.
func Normalize(s string) string {
	out, lowered := normalize(s)
	// Lower-casing a non-ASCII letter can, in rare cases, produce a
	// sequence that NFKC composes differently (İ + U+0301 → i + U+0301 →
	// í). Re-running the pipeline on such output until it is stable keeps
	// Normalize idempotent. Messages without non-ASCII capitals never get
	// here.
	for i := 0; lowered && i < 3 && !norm.NFKC.IsNormalString(out); i++ {
		out, lowered = normalize(out)
	}
	return out
}

func normalize(s string) (out string, lowered bool) {
	t := t2s()
	p := pass{t: t, out: make([]byte, 0, len(s)+8), wordStart: -1}
	j := p.run(s, false)
	if j < 0 {
		return string(p.out), false
	}
	// Slow path: s[j:] starts with a rune that the fast path cannot prove
	// NFKC-stable, such as a combining mark, a compatibility character
	// (①, ™, ㎏) or a letter of another script. The simple prefix is
	// normalized again by the fast path (cheap), and only the rest goes
	// through NFKC (see handover).
	k := handover(s, j)
	p = pass{t: t, out: p.out[:0], wordStart: -1}
	if p.run(s[:k], false) >= 0 {
		// Cannot happen: s[:k] is part of what the fast path just
		// accepted. Stay correct anyway.
		p = pass{t: t, out: p.out[:0], wordStart: -1}
		k = 0
	}
	p.run(prepare(s[k:]), true)
	return string(p.out), p.lowered
}

// handover returns the offset k where the slow path takes over, given
// that the fast path accepted s[:j]. It must hold that NFKC(s) ==
// NFKC(s[:k]) + NFKC(s[k:]), and that k is not inside an ASCII word, so
// the word is stemmed as a whole. Every rune before j is a simple
// starter that maps on its own and composes with nothing before it.
// Only the last one before j (skipping invisible ones, which the slow path
// removes first) can compose with what follows (e + U+0301 → é,
// = + U+0338 → ≠). So k goes back over that rune, and then back to the
// start of the ASCII word it belongs to, if any. Doing this only on
// failure keeps the fast path free of bookkeeping: tracking checkpoints
// per rune cost it about 50%.
func handover(s string, j int) int {
	k := j
	for k > 0 {
		r, n := utf8.DecodeLastRuneInString(s[:k])
		k -= n
		if !droppable(r) {
			if !wordRune(r) {
				return k
			}
			break
		}
	}
	// k is at the start of an ASCII word rune; move to the word's start.
	for k > 0 {
		r, n := utf8.DecodeLastRuneInString(s[:k])
		if !wordRune(r) && !droppable(r) {
			break
		}
		k -= n
	}
	return k
}

// wordRune reports runes the fast path adds to an ASCII word.
func wordRune(r rune) bool {
	if r >= 0xFF01 && r <= 0xFF5E {
		r -= 0xFEE0
	}
	return r < utf8.RuneSelf && asciiClass[r] != 0
}

// normalizeSlow is the reference: the whole string through NFKC. Tests
// check that normalize gives the same result.
func normalizeSlow(s string) string {
	p := pass{t: t2s(), wordStart: -1}
	p.run(prepare(s), true)
	return string(p.out)
}

// prepare removes default-ignorable format characters (zero-width
// space/joiners, BOM, soft hyphen, bidi controls) and variation selectors,
// then applies NFKC. These characters are invisible, so removing them
// instead of turning them into spaces keeps "充\u200B值" matching 充值.
// They are removed first because removal can bring a base character and
// a combining mark together, which NFKC must then see. NFKC does not
// produce such characters, so the loop exits after one round; it is there
// in case a future Unicode version does.
//
// Invalid UTF-8 is replaced first. norm.NFKC passes an invalid sequence
// through together with the valid rune after it, without normalizing that
// rune (the fuzzer found "\xf7¼" keeping ¼, whose NFKC form is 1⁄4).
// Each invalid byte is a separator anyway, and U+FFFD is one too.
func prepare(s string) string {
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	for range 3 {
		if strings.IndexFunc(s, droppable) >= 0 {
			s = strings.Map(func(r rune) rune {
				if droppable(r) {
					return -1
				}
				return r
			}, s)
		}
		s = norm.NFKC.String(s)
		if strings.IndexFunc(s, droppable) < 0 {
			break
		}
	}
	return s
}

// droppable reports format characters (Cf) and variation selectors. The
// range test up front keeps CJK text away from the table search, which
// otherwise made droppable the top item in the slow path's profile.
// TestDroppable checks it against the tables for every rune.
func droppable(r rune) bool {
	if r < 0xAD || r >= 0x2070 && r < 0xFE00 {
		return false
	}
	return unicode.In(r, unicode.Cf, unicode.Variation_Selector)
}

// asciiClass maps an ASCII byte to its lower-case form if it is a letter
// or digit, and to 0 (separator) for everything else: punctuation,
// symbols, space and control characters.
var asciiClass = func() (t [utf8.RuneSelf]byte) {
	for c := byte('0'); c <= '9'; c++ {
		t[c] = c
	}
	for c := byte('a'); c <= 'z'; c++ {
		t[c] = c
		t[c-'a'+'A'] = c
	}
	return t
}()

// pass builds the normalized form of one string into out.
type pass struct {
	t         *t2sTable
	out       []byte
	wordStart int  // start in out of the current ASCII letter/digit run, or -1
	wordDigit bool // the current run contains a digit, so it is not stemmed
	pending   bool // a separator has been seen since the last kept rune
	lowered   bool // lower-casing changed a non-ASCII rune (see Normalize)
}

// run normalizes s into p.out and returns -1. With complex false it
// handles only runes whose NFKC form is known without context (ASCII, CJK
// ideographs, full-width forms, common CJK punctuation and emoji). When it
// finds any other rune it stops and returns that rune's offset, and the
// caller hands over to the slow path (complex true, on NFKC input). Most support messages take the fast path.
// That matters because norm.NFKC.String alone takes 4.6 µs on the
// 180-rune benchmark message: Chinese full-width punctuation (，？！)
// always forces it to rebuild the string.
func (p *pass) run(s string, complex bool) int {
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			i++
			if a := asciiClass[c]; a != 0 {
				p.ascii(a)
			} else {
				p.sep()
			}
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		i += size
		switch {
		case r >= 0x4E00 && r < 0xA000 || r >= 0x3400 && r < 0x4DC0:
			// CJK Unified Ideographs and Extension A: letters without
			// decompositions, so NFKC leaves them alone.
			p.rune(p.t.fold(r))
		case r >= 0xFF01 && r <= 0xFF5E:
			// Full-width ASCII. NFKC maps each to the ASCII rune at a
			// fixed offset, and ASCII letters can only compose with
			// combining marks, which would have sent us to the slow path.
			if a := asciiClass[r-0xFEE0]; a != 0 {
				p.ascii(a)
			} else {
				p.sep()
			}
		case r == utf8.RuneError && size == 1:
			p.sep() // invalid byte
		case simpleSeparator(r):
			p.sep()
		case droppable(r):
			// Invisible: skip without ending the word, as prepare does on
			// the slow path. This is safe here because the next rune is
			// either simple (a starter that composes with nothing before
			// it) or sends the whole string to the slow path.
		case !complex:
			return i - size
		default:
			p.slowRune(r)
		}
	}
	p.endWord()
	return -1
}

// slowRune classifies a rune from NFKC-normalized input: letters, numbers
// and marks are kept (lower-cased, traditional folded), anything else
// separates words.
func (p *pass) slowRune(r rune) {
	lr := unicode.ToLower(r)
	if lr != r {
		p.lowered = true
	}
	if lr < utf8.RuneSelf {
		// U+0130 İ and U+212A KELVIN SIGN lower-case to ASCII, so they
		// become part of an ASCII word just as on a second pass.
		if a := asciiClass[lr]; a != 0 {
			p.ascii(a)
		} else {
			p.sep()
		}
		return
	}
	if unicode.IsLetter(lr) || unicode.IsNumber(lr) || unicode.IsMark(lr) {
		p.rune(p.t.fold(lr))
		return
	}
	p.sep()
}

// simpleSeparator reports runes that are punctuation or symbols and whose
// NFKC form consists only of punctuation (… → ...), so that the fast path
// can turn them into a separator without running NFKC.
// TestSimpleSeparators checks this claim against the Unicode tables.
func simpleSeparator(r rune) bool {
	switch {
	case r == 0x3000: // ideographic space (NFKC → U+0020)
		return true
	case r >= 0x3001 && r <= 0x3003, // 、。〃
		r >= 0x3008 && r <= 0x3011, // 〈〉《》「」『』【】
		r >= 0x3014 && r <= 0x301F: // 〔〕〖〗〘〙〚〛〜〝〞〟
		return true
	case r >= 0x2010 && r <= 0x2027: // ‐–—‖‘’‚“”„•…‧ etc.
		return r != 0x2011 && r != 0x2017 && r != 0x2024 && r != 0x2025
	case r == 0xB7, r == 0xA5, r == 0x30FB, r == 0xFFE5: // · ¥ ・ ￥
		return true
	case r >= 0x1F300 && r <= 0x1FAFF:
		// Emoji and pictographs: symbols without decompositions.
		return true
	case r >= 0x2600 && r <= 0x2775, r >= 0x2794 && r <= 0x27BF:
		// Miscellaneous symbols and dingbats (☀ ✅ ❌), minus the dingbat
		// circled digits ❶…➓, which are numbers.
		return true
	}
	return false
}

func (p *pass) ascii(c byte) {
	if p.wordStart < 0 {
		p.space()
		p.wordStart = len(p.out)
		p.wordDigit = false
	}
	if c <= '9' {
		p.wordDigit = true
	}
	p.out = append(p.out, c)
}

func (p *pass) rune(r rune) {
	p.endWord()
	p.space()
	p.out = utf8.AppendRune(p.out, r)
}

func (p *pass) sep() {
	p.endWord()
	p.pending = true
}

// space writes the single space that stands for a run of separators. It
// writes nothing at the start of the text, and separators at the end are
// never followed by a kept rune, so the result is trimmed.
func (p *pass) space() {
	if p.pending {
		if len(p.out) > 0 {
			p.out = append(p.out, ' ')
		}
		p.pending = false
	}
}

// endWord stems the ASCII word that just ended. Runs with digits (order
// numbers, 3ds, v2) are kept as they are.
func (p *pass) endWord() {
	if p.wordStart < 0 {
		return
	}
	if !p.wordDigit {
		n := stem(p.out[p.wordStart:])
		p.out = p.out[:p.wordStart+n]
	}
	p.wordStart = -1
}
