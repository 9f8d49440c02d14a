// Package textmatch matches the keywords and phrases that admins write in
// routing rules against customer messages. Customers write in
// simplified Chinese, traditional Chinese and English, often mixed in one
// message. Patterns and text go through the same normalization, and a
// compiled Aho–Corasick automaton then finds every pattern occurrence in
// one pass.
//
// # Normalization
//
// Normalize turns text into its matching form:
//
//  1. Unicode NFKC (golang.org/x/text/unicode/norm). Full-width letters,
//     digits and punctuation become ASCII ("ＡＰＰ　充值" → "app 充值"),
//     and compatibility forms are expanded (① → 1, ㎏ → kg, ﬁ → fi).
//     Invisible format characters (zero-width space and joiners, BOM,
//     soft hyphen, bidi controls) and variation selectors are removed, so
//     "充\u200B值" still reads 充值.
//  2. Lower case, using simple Unicode case mapping (as strings.ToLower).
//  3. Traditional → simplified Chinese, one character at a time, from the
//     OpenCC dictionaries embedded in github.com/longbridgeapp/opencc
//     (TSCharacters plus Taiwan/Hong Kong variant forms): 儲值 → 储值,
//     帳戶被盜 → 账户被盗. One override makes 帐 fold into 账 (see
//     buildT2S). Simplified text passes unchanged.
//  4. Every rune that is not a letter, number or combining mark
//     (punctuation, symbols, emoji and whitespace in any script:
//     ，。！？、“”【】《》…—· and ASCII ,.!?-_/ etc.) becomes a
//     separator. A run of separators is written as one space, and there
//     are none at either end. Invalid UTF-8 bytes are separators too.
//  5. Each ASCII word (a maximal run of ASCII letters) is reduced to a
//     stem by a light suffix stemmer (see stem.go), so "top up",
//     "top-up", "topped up", "tops up" and "topping up" all read
//     "top up", and failed/fails/failing read "fail". Runs that contain
//     digits (order numbers) are not stemmed. Chinese is not segmented.
//
// Normalize is idempotent, returns valid UTF-8 and never panics. Most
// messages take a fast path that skips the NFKC library, because the
// NFKC form of ASCII, CJK ideographs, full-width forms and common
// punctuation is known rune by rune. Other text goes through
// norm.NFKC from the first rune that needs it; tests check that both
// paths agree.
//
// # Matching
//
// A pattern matches where its normalized form occurs in the normalized
// text, with one rule for ASCII ends: if the pattern starts (ends) with an
// ASCII letter or digit, the byte before (after) the match must not be
// one. Han characters, spaces, other scripts and the text edges are all
// boundaries. So:
//
//   - Chinese patterns match as substrings: 充值 is found in 充值失败.
//   - "app" matches "app 充值" and "我的app充值", but not "apple" or
//     "happy"; "pay" does not match "paypal" or "repay".
//   - A mixed pattern such as "微信pay" is a substring match whose ASCII
//     end must be at a word boundary: it matches "用微信pay付款" but not
//     "微信payment".
//
// Every occurrence of every pattern is reported, including overlapping
// and nested ones, and every index of a duplicated pattern. Offsets are
// byte offsets into the normalized text.
package textmatch
