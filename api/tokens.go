package api

import (
	"crypto/sha256"
	"crypto/subtle"
)

// Tokens maps bearer tokens to the names of their holders. Lookups compare
// in constant time so a token cannot be guessed byte by byte from timing.
type Tokens struct {
	hashes [][sha256.Size]byte
	names  []string
}

// NewTokens builds the table from name → token.
func NewTokens(byName map[string]string) *Tokens {
	t := &Tokens{}
	for name, tok := range byName {
		t.hashes = append(t.hashes, sha256.Sum256([]byte(tok)))
		t.names = append(t.names, name)
	}
	return t
}

// Lookup returns the holder of tok.
func (t *Tokens) Lookup(tok string) (string, bool) {
	if tok == "" {
		return "", false
	}
	h := sha256.Sum256([]byte(tok))
	found := -1
	for i := range t.hashes {
		if subtle.ConstantTimeCompare(h[:], t.hashes[i][:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return "", false
	}
	return t.names[found], true
}
