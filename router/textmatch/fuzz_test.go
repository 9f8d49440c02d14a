package textmatch

import (
	"slices"
	"testing"
	"unicode/utf8"
)

// fuzzPatterns is a fixed rule set that the fuzzed pattern joins.
var fuzzPatterns = []string{"充值", "充值失败", "失败", "top up", "fail", "app", "pay", "微信pay", "pay宝", "帳戶", "Ａ", "哈哈", "1"}

// FuzzNormalizeFind checks, for arbitrary text and an arbitrary extra
// pattern, that:
//   - Normalize never panics, returns valid UTF-8 with no stray spaces, and
//     is idempotent;
//   - Compile rejects the pattern exactly when it normalizes to "";
//   - Find's hits are within bounds with Start < End, cover exactly the
//     normalized pattern (whose Normalize is itself), and equal a brute-force
//     search, in the documented order;
//   - Find on text that was not normalized (even invalid UTF-8) stays in
//     bounds.
func FuzzNormalizeFind(f *testing.F) {
	for _, seed := range [][2]string{
		{"我的APP充值失敗，Top-Up Failed！！", "top up"},
		{"ＡＰＰ　充值", "app"},
		{"apple happy paypal repay 微信pay 微信payment", "pay"},
		{"哈哈哈哈", "哈哈"},
		{"帳戶被盜 账户被盗", "账户被盗"},
		{"充\u200B值 café İstanbul ① ™ 👍️", "ｃａｆé"},
		{"a\xffb\xc3", "\xff"},
		{"TOPİNG topping", "top"},
		{"e\u200B\u0301 İ\u0301", "í"},
		{benchMessage, "refund"},
		{"", ""},
	} {
		f.Add(seed[0], seed[1])
	}
	f.Fuzz(func(t *testing.T, text, pattern string) {
		norm := checkNormalized(t, text)
		np := checkNormalized(t, pattern)

		pats := append(slices.Clip(fuzzPatterns), pattern)
		m, err := Compile(pats)
		if np == "" {
			if err == nil {
				t.Fatalf("Compile accepted pattern %q that normalizes to empty", pattern)
			}
			pats = pats[:len(pats)-1]
			if m, err = Compile(pats); err != nil {
				t.Fatal(err)
			}
		} else if err != nil {
			t.Fatalf("Compile(%q): %v", pattern, err)
		}

		hits := m.Find(norm, nil)
		checkHits(t, m, norm, hits)
		if want := bruteForce(m, norm); !slices.Equal(hits, want) {
			t.Fatalf("text %q: Find %v, brute force %v", norm, hits, want)
		}

		// Raw text is a caller error, but must not break Find.
		for _, h := range m.Find(text, nil) {
			if h.Start < 0 || h.Start >= h.End || h.End > len(text) {
				t.Fatalf("raw text %q: hit %+v out of bounds", text, h)
			}
		}
		if !utf8.ValidString(norm) {
			t.Fatalf("invalid UTF-8")
		}
	})
}
