package textmatch

// English inflection folding is done with a small suffix stemmer, not
// github.com/kljensen/snowball (Porter2). Measured on this machine
// (2-core, Go 1.26) over 21 typical support-message words, snowball's
// english.Stem took 444 ns and 1.2 allocations per word, about 9 µs for
// the English words of one 200-character message, which is more than the
// whole Normalize budget. It is also not idempotent (agreed → agre → agr),
// and Normalize must be. It also conflates words a router should keep
// apart (accountant → account, general/generous → gener). The stemmer
// below runs in place on bytes with no allocation, costs a few ns per
// word, and touches only regular inflections.
//
// Rules, applied repeatedly until none applies (so the result is a fixed
// point, which makes stem idempotent). Every rule shortens the word, so the
// loop ends:
//
//	-ies, -ied → -y   when ≥5 letters    replies, replied → reply
//	-ing       → ∅    stem ≥3 letters with a vowel, then undouble
//	                                     topping → top, failing → fail
//	-ed        → ∅    stem ≥3 letters with a vowel, then undouble
//	                                     topped → top, refunded → refund
//	-s         → ∅    ≥3 letters, not after s, u or i
//	                                     tops → top (not pass, bus, this)
//	-e         → ∅    ≥4 letters          charge → charg, so that
//	                                     charged/charges/charging agree
//
// "Undouble" drops the last letter of a doubled b d f g m n p r t when at
// least three letters remain (topp → top, transferr → transfer, but add
// stays add). Dropping the final e (with -es handled as -s followed by -e)
// takes the place of Porter's "add an e back" step: base form and inflected
// forms meet at the e-less stem.
//
// Known misses, which are acceptable for keyword routing: irregular forms
// (paid, made), short stems (used vs use), and a few conflations such as
// news → new. Both text and patterns are stemmed the same way, so a miss
// only means that an inflected form does not fold, never that a word
// fails to match itself.

// maxStemLen bounds the words that are stemmed. Longer ASCII runs (IDs,
// tokens, URLs without punctuation) are left as they are. The bound also
// keeps stemming idempotent, because a word that is not stemmed stays too
// long on the second pass.
const maxStemLen = 40

// stem rewrites the lower-case ASCII word w in place and returns its new
// length.
func stem(w []byte) int {
	n := len(w)
	if n > maxStemLen {
		return n
	}
	for {
		m := stemStep(w[:n])
		if m == n {
			return n
		}
		n = m
	}
}

func stemStep(w []byte) int {
	n := len(w)
	if n < 3 {
		return n
	}
	switch {
	case n >= 5 && w[n-3] == 'i' && w[n-2] == 'e' && (w[n-1] == 's' || w[n-1] == 'd'):
		w[n-3] = 'y'
		return n - 2
	case n >= 6 && w[n-3] == 'i' && w[n-2] == 'n' && w[n-1] == 'g' && hasVowel(w[:n-3]):
		return undouble(w[:n-3])
	case n >= 5 && w[n-2] == 'e' && w[n-1] == 'd' && hasVowel(w[:n-2]):
		return undouble(w[:n-2])
	case w[n-1] == 's' && w[n-2] != 's' && w[n-2] != 'u' && w[n-2] != 'i':
		return n - 1
	case n >= 4 && w[n-1] == 'e':
		return n - 1
	}
	return n
}

func hasVowel(w []byte) bool {
	for _, c := range w {
		switch c {
		case 'a', 'e', 'i', 'o', 'u', 'y':
			return true
		}
	}
	return false
}

// undouble returns the length of w without a doubled final consonant
// (topp → top). It applies only to consonants that English doubles
// before -ed/-ing, and only if at least three letters remain, so that
// add, odd and egg keep their form and match their uninflected spelling.
func undouble(w []byte) int {
	n := len(w)
	if n >= 4 && w[n-1] == w[n-2] {
		switch w[n-1] {
		case 'b', 'd', 'f', 'g', 'm', 'n', 'p', 'r', 't':
			return n - 1
		}
	}
	return n
}
