package mailtest

import (
	"encoding/base64"
	"fmt"

	"golang.org/x/text/encoding/simplifiedchinese"
)

// GBK is s encoded as a Chinese mail client in its legacy setting sends
// text. It panics on a character GBK lacks: a test's text is its own.
func GBK(s string) []byte {
	b, err := simplifiedchinese.GBK.NewEncoder().Bytes([]byte(s))
	if err != nil {
		panic(fmt.Sprintf("mailtest: %q in GBK: %v", s, err))
	}
	return b
}

// GBKWord is s as such a client writes it in a header: an RFC 2047
// encoded word in GBK, "=?GBK?B?...?=".
func GBKWord(s string) string {
	return "=?GBK?B?" + base64.StdEncoding.EncodeToString(GBK(s)) + "?="
}
