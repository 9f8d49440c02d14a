package textmatch

import (
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

func TestNormalize(t *testing.T) {
	tests := []struct {
		name, in, want string
	}{
		// 1. NFKC: full-width and compatibility forms.
		{"fullwidth letters and ideographic space", "ＡＰＰ　充值", "app 充值"},
		{"fullwidth digits", "订单１２３４５", "订单12345"},
		{"fullwidth phrase with fullwidth hyphen", "ｔｏｐ－ｕｐ", "top up"},
		{"fullwidth mixed into han", "ＶＩＳＡ卡", "visa卡"},
		{"circled digit", "①号", "1号"},
		{"unit symbol", "5㎏", "5kg"},
		{"ligature", "ﬁle", "fil"},
		{"roman numeral", "Ⅻ", "xii"},
		{"compat ideograph", "\uF900", "岂"}, // U+F900 → U+8C48 岂
		{"halfwidth katakana", "ｶﾀｶﾅ", "カタカナ"},

		// 2. Case.
		{"ascii upper", "PayPal", "paypal"},
		{"latin accented upper", "ÉCOLE", "écol"},
		{"greek", "ΣΑΣ", "σασ"},
		{"cyrillic", "ЁЛКА", "ёлка"},
		{"dotted capital I lowers to ascii and joins the word", "TOPİNG", "top"},

		// 3. Traditional → simplified.
		{"account stolen", "帳戶被盜", "账户被盗"},
		{"stored value", "儲值", "储值"},
		{"transfer", "轉帳", "转账"},
		{"simplified variant of account", "帐户转帐", "账户转账"},
		{"bank card", "銀行卡", "银行卡"},
		{"balance", "餘額", "余额"},
		{"taiwan variant", "裡面", "里面"},
		{"hong kong variant", "綫上", "线上"},
		{"already simplified unchanged", "账户余额", "账户余额"},
		{"traditional sentence", "我的帳戶儲值失敗，請幫忙處理！", "我的账户储值失败 请帮忙处理"},

		// 4. Punctuation, symbols and whitespace.
		{"chinese comma and exclamation", "你好，请问！！", "你好 请问"},
		{"chinese brackets", "【退款】《说明》（急）", "退款 说明 急"},
		{"chinese quotes", "“引号”‘单’「角」", "引号 单 角"},
		{"enumeration comma and full stop", "充值、提现。", "充值 提现"},
		{"ellipsis and dash", "等等……——好", "等等 好"},
		{"middle dot", "微信·支付", "微信 支付"},
		{"ascii punctuation", "hello,world!!", "hello world"},
		{"ascii symbols", "1+1=2 $100 #tag @user ~x^ `q` a|b a\\b a/b <x> {y} [z]", "1 1 2 100 tag user x q a b a b a b x y z"},
		{"underscore and asterisk", "a_b*c&d%e", "a b c d e"},
		{"runs collapse and trim", "  \t a  -  b \n ", "a b"},
		{"only punctuation", "，。！？、；：", ""},
		{"emoji", "好👍棒😭", "好 棒"},
		{"emoji with variation selector", "❤️好", "好"},
		{"dingbat digit is a number", "❶号", "❶号"},
		{"yen", "￥100元", "100元"},
		{"empty", "", ""},
		{"invalid utf-8", "a\xffb\xc3", "a b"},
		{"invalid utf-8 before compatibility char", "\xf7\xf7\xf7\xf7\xf7¼", "1 4"}, // found by the fuzzer
		{"control characters", "a\x00b\x1fc", "a b c"},

		// Invisible format characters disappear instead of splitting.
		{"zero width space inside han", "充\u200B值", "充值"},
		{"bom", "\uFEFFhello", "hello"},
		{"soft hyphen", "top\u00ADup", "topup"},
		{"zero width joiner in ascii word", "fail\u200Ded", "fail"},

		// 5. English inflections.
		{"top up forms", "top up, top-up, topped up, tops up, topping up", "top up top up top up top up top up"},
		{"fail forms", "fail failed fails failing", "fail fail fail fail"},
		{"refund forms", "refund refunds refunded refunding", "refund refund refund refund"},
		{"decline forms", "decline declined declines declining", "declin declin declin declin"},
		{"charge forms", "charge charges charged charging", "charg charg charg charg"},
		{"ies", "replies replied reply", "reply reply reply"},
		{"doubling", "transferred shipping stopped", "transfer ship stop"},
		{"no undoubling of short stems", "added adding add", "add add add"},
		{"s exceptions", "status bus pass this", "status bus pass this"},
		{"words with digits not stemmed", "3ds v2s", "3ds v2s"},
		{"short words untouched", "is as up on", "is as up on"},

		// Mixed.
		{"mixed message", "我的APP充值失敗，Top-Up Failed！！", "我的app充值失败 top up fail"},
		{"ascii glued to han", "我的apps充值", "我的app充值"},
		{"order number", "訂單號：TXN-20240315-001。", "订单号 txn 20240315 001"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := Normalize(tc.in)
			if got != tc.want {
				t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if again := Normalize(got); again != got {
				t.Errorf("not idempotent: Normalize(%q) = %q", got, again)
			}
		})
	}
}

func TestStem(t *testing.T) {
	groups := [][]string{
		{"top", "tops", "topped", "topping"},
		{"fail", "fails", "failed", "failing"},
		{"refund", "refunds", "refunded", "refunding"},
		{"decline", "declines", "declined", "declining"},
		{"charge", "charges", "charged", "charging"},
		{"pay", "pays", "paying", "payed"},
		{"verify", "verifies", "verified", "verifying"},
		{"transfer", "transfers", "transferred", "transferring"},
		{"box", "boxes"},
		{"match", "matches", "matched", "matching"},
		{"pass", "passes", "passed", "passing"},
		{"agree", "agrees", "agreed"},
		{"issue", "issues", "issued"},
		{"card", "cards"},
		{"app", "apps"},
	}
	for _, g := range groups {
		want := stemString(g[0])
		for _, w := range g[1:] {
			if got := stemString(w); got != want {
				t.Errorf("stem(%q) = %q, want %q (same as %q)", w, got, want, g[0])
			}
		}
	}
	// Words that must stay apart.
	for _, pair := range [][2]string{{"app", "apple"}, {"pay", "payment"}, {"pay", "paypal"}, {"card", "cardinal"}, {"bus", "bu"}} {
		if stemString(pair[0]) == stemString(pair[1]) {
			t.Errorf("stem conflates %q and %q", pair[0], pair[1])
		}
	}
}

func stemString(w string) string {
	b := []byte(w)
	return string(b[:stem(b)])
}

func TestStemIdempotentExhaustiveShort(t *testing.T) {
	// Every word of up to 4 letters over an alphabet that exercises all
	// rules, plus a random sample of longer ones.
	alpha := "abdeginpsuy"
	var rec func(prefix []byte)
	check := func(w []byte) {
		s := stemString(string(w))
		if s2 := stemString(s); s2 != s {
			t.Fatalf("stem not idempotent: %q → %q → %q", w, s, s2)
		}
		if s == "" {
			t.Fatalf("stem(%q) is empty", w)
		}
	}
	rec = func(prefix []byte) {
		if len(prefix) > 0 {
			check(prefix)
		}
		if len(prefix) == 4 {
			return
		}
		for i := range len(alpha) {
			rec(append(prefix, alpha[i]))
		}
	}
	rec(nil)
	r := rand.New(rand.NewPCG(1, 2))
	for range 200000 {
		w := make([]byte, 5+r.IntN(12))
		for i := range w {
			w[i] = alpha[r.IntN(len(alpha))]
		}
		check(w)
	}
}

// TestSimpleSeparators checks the fast path's claims against the Unicode
// tables. Runes it treats as separators must not be letters, numbers or
// marks, and neither may anything in their NFKC form. Runes it treats as
// Han must be letters that NFKC and lower-casing leave alone. Full-width
// runes must be NFKC-equivalent to their ASCII counterparts.
func TestSimpleSeparators(t *testing.T) {
	keep := func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) || unicode.IsMark(r) }
	for r := rune(0x80); r <= unicode.MaxRune; r++ {
		if simpleSeparator(r) {
			if keep(r) {
				t.Errorf("simpleSeparator(%U) but it is a letter/number/mark", r)
			}
			for _, q := range norm.NFKC.String(string(r)) {
				if keep(q) || droppable(q) {
					t.Errorf("simpleSeparator(%U) but NFKC gives %U", r, q)
				}
			}
		}
	}
	for r := rune(0x3400); r < 0xA000; r++ {
		if r >= 0x4DC0 && r < 0x4E00 {
			continue
		}
		if !unicode.Is(unicode.Han, r) || norm.NFKC.String(string(r)) != string(r) || unicode.ToLower(r) != r {
			t.Errorf("fast Han range holds %U, which is not a plain Han letter", r)
		}
	}
	for r := rune(0xFF01); r <= 0xFF5E; r++ {
		if got, want := norm.NFKC.String(string(r)), string(r-0xFEE0); got != want {
			t.Errorf("NFKC(%U) = %q, fast path assumes %q", r, got, want)
		}
	}
}

func TestDroppable(t *testing.T) {
	for r := rune(0); r <= unicode.MaxRune; r++ {
		if got, want := droppable(r), unicode.In(r, unicode.Cf, unicode.Variation_Selector); got != want {
			t.Errorf("droppable(%U) = %v, want %v", r, got, want)
		}
	}
}

// TestFastPathMatchesSlowPath checks that the fast path gives exactly
// what the general NFKC path gives, on random strings built from runes
// the fast path accepts.
func TestFastPathMatchesSlowPath(t *testing.T) {
	pool := []rune("充值提现退款銀行卡帳戶儲值失敗，。！？、；：“”‘’（）【】《》…—·　ＡＢｃｄ１２－＿abcAB01 -_.,!?'\"()[]{}<>/\\|+=*&^%$#@~`😭👍☀✅￥\u200B\u200D\uFE0F\uFEFF\u00AD")
	r := rand.New(rand.NewPCG(3, 4))
	tbl := t2s()
	for range 20000 {
		rs := make([]rune, r.IntN(30))
		for i := range rs {
			rs[i] = pool[r.IntN(len(pool))]
		}
		s := string(rs)
		fast := pass{t: tbl, wordStart: -1}
		if fast.run(s, false) >= 0 {
			t.Fatalf("fast path refused %q", s)
		}
		slow := pass{t: tbl, wordStart: -1}
		slow.run(prepare(s), true)
		if string(fast.out) != string(slow.out) {
			t.Fatalf("%q: fast %q, slow %q", s, fast.out, slow.out)
		}
	}
}

func TestNormalizeProperties(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	pool := []rune("aAzZ09 .,-=<充值ＡＢ，。１ﬁİıΣσςé\u0301\u0307\u200B\u200D\uFE0F帳户ＡＢ１，。①ﬁ㎏❤👍\uF900𠀀\U0002B726\xff")
	for range 50000 {
		rs := make([]rune, r.IntN(20))
		for i := range rs {
			rs[i] = pool[r.IntN(len(pool))]
		}
		s := string(rs)
		checkNormalized(t, s)
	}
}

func checkNormalized(t *testing.T, s string) string {
	t.Helper()
	n := Normalize(s)
	// The fast path, and its hand-over to NFKC part way through, must give
	// what running the whole string through NFKC gives.
	if ref, _ := normalize(s); ref != normalizeSlow(s) {
		t.Fatalf("normalize(%q) = %q, whole-string NFKC path gives %q", s, ref, normalizeSlow(s))
	}
	if !utf8.ValidString(n) {
		t.Fatalf("Normalize(%q) = %q is not valid UTF-8", s, n)
	}
	if n2 := Normalize(n); n2 != n {
		t.Fatalf("not idempotent: Normalize(%q) = %q, Normalize(that) = %q", s, n, n2)
	}
	if strings.HasPrefix(n, " ") || strings.HasSuffix(n, " ") || strings.Contains(n, "  ") {
		t.Fatalf("Normalize(%q) = %q has stray spaces", s, n)
	}
	return n
}

// TestT2SData guards the dependency on opencc's internal layout. If a
// new version renames its dictionaries, this fails instead of Normalize
// panicking at run time.
func TestT2SData(t *testing.T) {
	tbl, err := buildT2S()
	if err != nil {
		t.Fatal(err)
	}
	n := len(tbl.sparse)
	for _, v := range tbl.dense {
		if v != 0 {
			n++
		}
	}
	if n < 3500 {
		t.Errorf("only %d traditional→simplified mappings", n)
	}
	check := func(k, v rune) {
		if f := tbl.fold(v); f != v {
			t.Errorf("fold not idempotent: %c→%c→%c", k, v, f)
		}
	}
	for i, v := range tbl.dense {
		if v != 0 {
			check(rune(i+t2sDenseLo), v)
		}
	}
	for k, v := range tbl.sparse {
		check(k, v)
	}
}
