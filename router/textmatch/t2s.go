package textmatch

import (
	"fmt"
	"sync"
	"unicode"
	"unicode/utf8"

	"github.com/longbridgeapp/opencc"
	"golang.org/x/text/unicode/norm"
)

// Traditional → simplified folding works one character at a time, using a
// table read once from the OpenCC dictionaries that
// github.com/longbridgeapp/opencc embeds (TSCharacters, plus the Taiwan and
// Hong Kong variant-reversal tables, so 裡/綫-style regional forms fold too).
// We read the library's data instead of calling its converter. The converter
// takes about 270 µs for a 180-rune message because it allocates every time
// it looks up a prefix. The table here costs one array index (BMP) or one map
// lookup (supplementary planes) per Han rune.
//
// Phrase dictionaries (TSPhrases) are deliberately not used: phrase-level
// conversion depends on context, so it cannot give a character-for-character
// mapping with stable offsets. Pattern and text both go through the same
// table, which is all that matching needs.

const (
	// t2sDenseLo/Hi bound the dense part of the table: CJK Extension A
	// through the end of the Unified Ideographs block. That covers every
	// BMP key in the OpenCC data (they start at U+346E). It takes 108 KiB
	// and saves a map lookup for almost every Chinese character a customer
	// types.
	t2sDenseLo = 0x3400
	t2sDenseHi = 0xA000
)

type t2sTable struct {
	dense  []rune        // index r-t2sDenseLo; 0 means "maps to itself"
	sparse map[rune]rune // keys outside the dense range (Extension B and up)
	// sparseLo is the smallest sparse key, so that non-Han runes above the
	// dense range skip the map lookup.
	sparseLo rune
}

// t2s is built lazily, so binaries and tests that import the package but
// never normalize do not pay for it (9–26 ms measured here: opencc parses
// its dictionaries for three conversions into tries). Compile normalizes the patterns, so a router
// pays this cost when it loads its rules at startup, not on the first
// message.
var t2s = sync.OnceValue(func() *t2sTable {
	t, err := buildT2S()
	if err != nil {
		// The data is embedded in a pinned module version. This fails only
		// if that module's layout changes, which TestT2SData catches, so it
		// is a build defect and not something input can cause.
		panic("textmatch: building traditional→simplified table: " + err.Error())
	}
	return t
})

// fold maps a traditional character to its simplified form and returns
// any other rune unchanged.
func (t *t2sTable) fold(r rune) rune {
	if r >= t2sDenseLo && r < t2sDenseHi {
		if m := t.dense[r-t2sDenseLo]; m != 0 {
			return m
		}
		return r
	}
	if r < t.sparseLo {
		return r
	}
	if m, ok := t.sparse[r]; ok {
		return m
	}
	return r
}

// dictionary returns the single-character entries of the dictionary file
// named file inside the OpenCC conversion conv. Each key maps to its first
// candidate, which is OpenCC's own choice.
func dictionary(conv, file string) (map[rune]rune, error) {
	cc, err := opencc.New(conv)
	if err != nil {
		return nil, err
	}
	for _, g := range cc.DictChains {
		for i, f := range g.Files {
			if f != file || i >= len(g.Dicts) {
				continue
			}
			d := g.Dicts[i]
			out := make(map[rune]rune)
			for _, id := range d.Trie.PrefixPredict(nil, 0) {
				k, err := d.Trie.Key(id)
				if err != nil {
					return nil, err
				}
				v, err := d.Trie.Value(id)
				if err != nil {
					return nil, err
				}
				if v < 0 || v >= len(d.Values) || len(d.Values[v]) == 0 {
					continue
				}
				from, n := utf8.DecodeRune(k)
				to, m := utf8.DecodeRuneInString(d.Values[v][0])
				if n != len(k) || m != len(d.Values[v][0]) || from == utf8.RuneError || to == utf8.RuneError {
					continue // phrase or multi-rune entry: not a character mapping
				}
				out[from] = to
			}
			return out, nil
		}
	}
	return nil, fmt.Errorf("dictionary %s not found in opencc conversion %s", file, conv)
}

// domainOverrides are applied on top of the OpenCC data; see buildT2S.
var domainOverrides = map[rune]rune{'帐': '账'}

func buildT2S() (*t2sTable, error) {
	ts, err := dictionary("t2s", "TSCharacters.ocd2")
	if err != nil {
		return nil, err
	}
	if len(ts) < 3000 {
		return nil, fmt.Errorf("TSCharacters has only %d single-character entries", len(ts))
	}
	m := make(map[rune]rune, len(ts)+128)
	for k, v := range ts {
		m[k] = v
	}
	// Regional variants (Taiwan 裡, Hong Kong 綫 …) are first turned into
	// OpenCC's standard traditional form, which TSCharacters then
	// simplifies. We add them only where TSCharacters has no entry of its
	// own, the same result tw2s/hk2s give for a single character.
	for _, src := range [][2]string{{"tw2s", "TWVariantsRev.ocd2"}, {"hk2s", "HKVariantsRev.ocd2"}} {
		rev, err := dictionary(src[0], src[1])
		if err != nil {
			return nil, err
		}
		for k, v := range rev {
			if _, ok := m[k]; ok {
				continue
			}
			if s, ok := ts[v]; ok {
				v = s
			}
			m[k] = v
		}
	}

	// One domain override the OpenCC data cannot express. Taiwan and Hong
	// Kong write 帳 for "account" (帳戶, 轉帳, 帳單), and TSCharacters maps
	// 帳 to 帐. Mainland customers, and so the admins writing rules, write
	// 账 (账户, 转账, 到账); 賬 already maps to 账. OpenCC has no 帳戶 phrase
	// either: its t2s gives 帐户. Folding 帐 into 账 makes 帳/帐/賬/账 one
	// character, so 帳戶被盜 matches 账户被盗. The cost is that 帐篷 (tent)
	// folds to 账篷, which only matters to someone writing a rule about
	// tents.
	for k, v := range domainOverrides {
		m[k] = v
	}

	t := &t2sTable{dense: make([]rune, t2sDenseHi-t2sDenseLo), sparse: make(map[rune]rune)}
	for k := range m {
		// Follow chains (A→B, B→C) so that folding is idempotent:
		// fold(fold(r)) == fold(r). Cycles are cut after a few steps.
		v := m[k]
		for range 8 {
			w, ok := m[v]
			if !ok || w == v {
				break
			}
			v = w
		}
		if v == k {
			continue
		}
		// Normalize applies NFKC and lower-casing before folding. A target
		// that those steps would change would make Normalize
		// non-idempotent, so such entries are dropped. None exist in
		// v0.3.13; the check guards against future data.
		if s := string(v); norm.NFKC.String(s) != s || !unicode.IsLetter(v) || unicode.ToLower(v) != v || v < utf8.RuneSelf {
			continue
		}
		if k >= t2sDenseLo && k < t2sDenseHi {
			t.dense[k-t2sDenseLo] = v
		} else {
			t.sparse[k] = v
		}
	}
	t.sparseLo = utf8.MaxRune + 1
	for k := range t.sparse {
		t.sparseLo = min(t.sparseLo, k)
	}
	return t, nil
}
