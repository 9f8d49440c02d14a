package textmatch

import (
	"cmp"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
)

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name     string
		patterns []string
		bad      []int // expected PatternError indexes, in order
	}{
		{"empty string", []string{""}, []int{0}},
		{"spaces", []string{"ok", "   \t"}, []int{1}},
		{"chinese punctuation", []string{"，。！？"}, []int{0}},
		{"ascii punctuation", []string{"退款", "!!!", "refund", "---"}, []int{1, 3}},
		{"emoji only", []string{"👍😭"}, []int{0}},
		{"invisible only", []string{"\u200B\uFEFF"}, []int{0}},
		{"fine", []string{"充值", "top up", "Ｏ"}, nil},
		{"no patterns", nil, nil},
		{"duplicates are fine", []string{"退款", "退款", "REFUND", "refunds"}, nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Compile(tc.patterns)
			if len(tc.bad) == 0 {
				if err != nil {
					t.Fatalf("Compile: %v", err)
				}
				if m.Len() != len(tc.patterns) {
					t.Fatalf("Len = %d, want %d", m.Len(), len(tc.patterns))
				}
				return
			}
			if err == nil {
				t.Fatalf("Compile(%q) succeeded, want errors for %v", tc.patterns, tc.bad)
			}
			var pe *PatternError
			if !errors.As(err, &pe) || pe.Index != tc.bad[0] {
				t.Fatalf("errors.As: %v, want first index %d", err, tc.bad[0])
			}
			for _, i := range tc.bad {
				if want := fmt.Sprintf("pattern %d ", i); !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not name %q", err, want)
				}
			}
			if m != nil {
				t.Errorf("matcher returned with error")
			}
		})
	}
}

func TestFind(t *testing.T) {
	type hit struct {
		pattern int
		text    string // the normalized text covered
	}
	tests := []struct {
		name     string
		patterns []string
		text     string
		want     []hit // in Find's order
	}{
		// Chinese: plain substring.
		{"han substring", []string{"充值"}, "我要充值", []hit{{0, "充值"}}},
		{"han inside longer han", []string{"充值"}, "充值失败了", []hit{{0, "充值"}}},
		{"han not present", []string{"提现"}, "充值失败", nil},

		// ASCII words: boundaries.
		{"app before han after space", []string{"app"}, "APP 充值", []hit{{0, "app"}}},
		{"app between han", []string{"app"}, "我的app充值", []hit{{0, "app"}}},
		{"app not in apple", []string{"app"}, "apple", nil},
		{"app not in happy", []string{"app"}, "happy", nil},
		{"app with punctuation", []string{"app"}, "(app).", []hit{{0, "app"}}},
		{"app followed by digit", []string{"app"}, "app2", nil},
		{"app preceded by digit", []string{"app"}, "2app", nil},
		{"app at edges", []string{"app"}, "app", []hit{{0, "app"}}},
		{"app plural folds", []string{"app"}, "my apps", []hit{{0, "app"}}},
		{"pay not in paypal", []string{"pay"}, "paypal", nil},
		{"pay not in repay", []string{"pay"}, "repay", nil},
		{"pay not in payment", []string{"pay"}, "payment", nil},
		{"pay in paying", []string{"pay"}, "paying now", []hit{{0, "pay"}}},
		{"pay next to han", []string{"pay"}, "用pay付款", []hit{{0, "pay"}}},

		// Phrases and inflections.
		{"top up plain", []string{"top up"}, "top up", []hit{{0, "top up"}}},
		{"top-up", []string{"top up"}, "Top-Up failed", []hit{{0, "top up"}}},
		{"topped up", []string{"top up"}, "I topped up", []hit{{0, "top up"}}},
		{"tops up", []string{"top up"}, "he tops up", []hit{{0, "top up"}}},
		{"topping up", []string{"top up"}, "topping up!", []hit{{0, "top up"}}},
		{"fullwidth top up", []string{"top up"}, "ＴＯＰ－ＵＰ", []hit{{0, "top up"}}},
		{"topup is one word", []string{"top up"}, "topup", nil},
		{"top upgrade", []string{"top up"}, "top upgrade", nil},
		{"desktop up", []string{"top up"}, "desktop up", nil},
		{"fail forms", []string{"fail"}, "failed, fails, failing", []hit{{0, "fail"}, {0, "fail"}, {0, "fail"}}},
		{"refund forms", []string{"refund"}, "refunds refunded", []hit{{0, "refund"}, {0, "refund"}}},
		{"declined", []string{"decline"}, "card declined", []hit{{0, "declin"}}},
		{"charge forms", []string{"charge"}, "charges charged", []hit{{0, "charg"}, {0, "charg"}}},
		{"pattern written inflected", []string{"Refunded"}, "refund", []hit{{0, "refund"}}},

		// Mixed patterns: boundary only at the ASCII end.
		{"mixed matches", []string{"微信pay"}, "用微信pay付款", []hit{{0, "微信pay"}}},
		{"mixed at text end", []string{"微信pay"}, "微信PAY", []hit{{0, "微信pay"}}},
		{"mixed right boundary", []string{"微信pay"}, "微信payment", nil},
		{"mixed left side is han", []string{"微信pay"}, "用微信pay", []hit{{0, "微信pay"}}},
		{"mixed ascii first", []string{"pay宝"}, "xpay宝", nil},
		{"mixed ascii first ok", []string{"pay宝"}, "用pay宝", []hit{{0, "pay宝"}}},
		{"mixed middle ascii", []string{"充值app失败"}, "充值APP失败", []hit{{0, "充值app失败"}}},

		// Overlapping and nested.
		{"nested", []string{"充值", "充值失败", "失败", "值"}, "充值失败", []hit{{0, "充值"}, {3, "值"}, {1, "充值失败"}, {2, "失败"}}},
		{"overlapping han", []string{"哈哈"}, "哈哈哈", []hit{{0, "哈哈"}, {0, "哈哈"}}},
		{"overlapping phrases", []string{"card declin", "declin again"}, "card declined again", []hit{{0, "card declin"}, {1, "declin again"}}},
		{"ascii word inside ascii phrase", []string{"top up fail", "up", "top"}, "top up failed", []hit{{2, "top"}, {1, "up"}, {0, "top up fail"}}},

		// Duplicates: every index.
		{"duplicates", []string{"退款", "refund", "退款", "REFUND"}, "退款 refund", []hit{{0, "退款"}, {2, "退款"}, {1, "refund"}, {3, "refund"}}},

		// Script and width variants, both ways.
		{"traditional pattern, simplified text", []string{"儲值失敗"}, "储值失败", []hit{{0, "储值失败"}}},
		{"simplified pattern, traditional text", []string{"账户被盗"}, "我的帳戶被盜了", []hit{{0, "账户被盗"}}},
		{"fullwidth pattern, ascii text", []string{"ＡＰＰ"}, "app", []hit{{0, "app"}}},
		{"ascii pattern, fullwidth text", []string{"app"}, "ＡＰＰ", []hit{{0, "app"}}},
		{"punctuated pattern", []string{"【退款】"}, "退款", []hit{{0, "退款"}}},
		{"pattern spaces matter between han", []string{"微信pay"}, "微信 pay", nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m, err := Compile(tc.patterns)
			if err != nil {
				t.Fatal(err)
			}
			norm := Normalize(tc.text)
			hits := m.Find(norm, nil)
			var got []hit
			for _, h := range hits {
				got = append(got, hit{h.Pattern, norm[h.Start:h.End]})
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("Find(%q) = %v, want %v", norm, got, tc.want)
			}
			checkHits(t, m, norm, hits)
			if all := m.MatchAll(tc.text); !slices.Equal(all, hits) {
				t.Errorf("MatchAll = %v, Find = %v", all, hits)
			}
		})
	}
}

func TestFindOffsets(t *testing.T) {
	m, err := Compile([]string{"充值", "充值失败", "top up", "fail"})
	if err != nil {
		t.Fatal(err)
	}
	norm := Normalize("我的充值失败，Top-Up failed")
	if norm != "我的充值失败 top up fail" {
		t.Fatalf("normalized %q", norm)
	}
	// 我的 = bytes 0–6, 充值 = 6–12, 失败 = 12–18, space, top up = 19–25, space, fail = 26–30.
	want := []Hit{{0, 6, 12}, {1, 6, 18}, {2, 19, 25}, {3, 26, 30}}
	if got := m.Find(norm, nil); !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	// Find appends.
	dst := []Hit{{9, 9, 9}}
	if got := m.Find(norm, dst); len(got) != 5 || got[0] != (Hit{9, 9, 9}) {
		t.Errorf("Find did not append: %v", got)
	}
}

func TestFindDoesNotAllocate(t *testing.T) {
	m, err := Compile(benchPatterns(1000))
	if err != nil {
		t.Fatal(err)
	}
	text := Normalize(benchMessage)
	dst := make([]Hit, 0, 256)
	allocs := testing.AllocsPerRun(100, func() {
		dst = m.Find(text, dst[:0])
	})
	if allocs != 0 {
		t.Errorf("Find allocates %.1f times per call", allocs)
	}
	if len(dst) == 0 {
		t.Errorf("benchmark message has no hits")
	}
}

func TestEmptyMatcher(t *testing.T) {
	m, err := Compile(nil)
	if err != nil {
		t.Fatal(err)
	}
	if hits := m.Find("anything 充值", nil); len(hits) != 0 {
		t.Errorf("hits %v", hits)
	}
}

// TestFindAgainstBruteForce compares the automaton with a brute-force
// search on random patterns and texts over a small alphabet, so that
// overlaps, nesting, shared prefixes and suffixes happen often.
func TestFindAgainstBruteForce(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	alphabet := []string{"a", "b", "ab", " ", "充", "值", "失", "x", "1"}
	gen := func(n int) string {
		var b strings.Builder
		for range n {
			b.WriteString(alphabet[r.IntN(len(alphabet))])
		}
		return b.String()
	}
	for iter := range 3000 {
		var pats []string
		for range 1 + r.IntN(12) {
			p := gen(1 + r.IntN(4))
			if Normalize(p) != "" {
				pats = append(pats, p)
			}
		}
		m, err := Compile(pats)
		if err != nil {
			t.Fatal(err)
		}
		norm := Normalize(gen(r.IntN(40)))
		got := m.Find(norm, nil)
		want := bruteForce(m, norm)
		if !slices.Equal(got, want) {
			t.Fatalf("iteration %d: patterns %q text %q\n got %v\nwant %v", iter, pats, norm, got, want)
		}
	}
}

// bruteForce finds every occurrence of every pattern with strings.Index,
// applies the word-boundary rule and returns the hits in Find's
// documented order.
func bruteForce(m *Matcher, text string) []Hit {
	var hits []Hit
	for i := range m.Len() {
		p := m.Pattern(i)
		for off := 0; off <= len(text)-len(p); {
			k := strings.Index(text[off:], p)
			if k < 0 {
				break
			}
			start, end := off+k, off+k+len(p)
			off = start + 1
			if wordByte[p[0]] && start > 0 && wordByte[text[start-1]] {
				continue
			}
			if wordByte[p[len(p)-1]] && end < len(text) && wordByte[text[end]] {
				continue
			}
			hits = append(hits, Hit{i, start, end})
		}
	}
	slices.SortFunc(hits, func(a, b Hit) int {
		return cmp.Or(cmp.Compare(a.End, b.End), cmp.Compare(a.Start, b.Start), cmp.Compare(a.Pattern, b.Pattern))
	})
	return hits
}

// checkHits verifies the invariants every hit must satisfy.
func checkHits(t *testing.T, m *Matcher, text string, hits []Hit) {
	t.Helper()
	for _, h := range hits {
		if h.Pattern < 0 || h.Pattern >= m.Len() || h.Start < 0 || h.Start >= h.End || h.End > len(text) {
			t.Fatalf("hit %+v out of bounds for text of %d bytes and %d patterns", h, len(text), m.Len())
		}
		sub := text[h.Start:h.End]
		if sub != m.Pattern(h.Pattern) {
			t.Fatalf("hit %+v covers %q, pattern is %q", h, sub, m.Pattern(h.Pattern))
		}
		if Normalize(sub) != m.Pattern(h.Pattern) {
			t.Fatalf("hit %+v: Normalize(%q) = %q, pattern is %q", h, sub, Normalize(sub), m.Pattern(h.Pattern))
		}
	}
}

func TestCompileLarge(t *testing.T) {
	pats := benchPatterns(10000)
	m, err := Compile(pats)
	if err != nil {
		t.Fatal(err)
	}
	text := Normalize(benchMessage)
	if got, want := m.Find(text, nil), bruteForce(m, text); !slices.Equal(got, want) {
		t.Fatalf("10k patterns: got %d hits, brute force %d", len(got), len(want))
	}
	t.Logf("10k patterns: %d double-array slots (%d KiB), %d outputs", len(m.slots), len(m.slots)*16/1024, len(m.outs))
}
