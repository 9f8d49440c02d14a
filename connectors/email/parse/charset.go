package parse

import (
	"bytes"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/charset"
	"golang.org/x/text/encoding"
	"golang.org/x/text/encoding/charmap"
	"golang.org/x/text/encoding/japanese"
	"golang.org/x/text/encoding/simplifiedchinese"
	"golang.org/x/text/encoding/traditionalchinese"
)

func init() {
	// Mail labelled gb2312 is EUC-CN, and senders routinely put GBK or
	// GB18030 characters under that label and under gbk. The GB18030
	// decoder reads all of them, identically where they overlap, so the
	// whole family gets it instead of whatever the IANA/WHATWG indexes
	// resolve (the IANA index knows gb2312 only as a name without a
	// decoder, and HZ-GB-2312 would be wrong). Registered in go-message's
	// table so that other users of it (RFC 2047 words) decode alike.
	for _, name := range []string{
		"gb2312", "gbk", "x-gbk", "gb18030", "cp936", "windows-936", "ms936",
		"euc-cn", "x-euc-cn", "csgb2312", "csgbk", "gb_2312-80", "gb_2312",
		"chinese", "iso-ir-58", "csiso58gb231280",
	} {
		register(name, simplifiedchinese.GB18030)
	}
	// Big5 as the WHATWG decodes it includes HKSCS and the Microsoft
	// additions, which Taiwanese and Hong Kong mail uses.
	for _, name := range []string{"big5", "big5-hkscs", "cn-big5", "x-x-big5", "csbig5", "x-big5", "cp950", "windows-950", "ms950"} {
		register(name, traditionalchinese.Big5)
	}
	for _, name := range []string{"shift_jis", "shift-jis", "sjis", "x-sjis", "ms_kanji", "csshiftjis", "windows-31j", "cp932", "ms932"} {
		register(name, japanese.ShiftJIS)
	}
	for _, name := range []string{"iso-2022-jp", "csiso2022jp"} {
		register(name, japanese.ISO2022JP)
	}
	for _, name := range []string{"euc-jp", "x-euc-jp", "cseucpkdfmtjapanese"} {
		register(name, japanese.EUCJP)
	}
}

// registered keeps what init gave go-message, so that decoding here can
// use the encodings directly instead of through a streaming reader.
var registered = map[string]encoding.Encoding{}

func register(name string, enc encoding.Encoding) {
	charset.RegisterEncoding(name, enc)
	registered[name] = enc
}

// latin1Labels are read as windows-1252, as every browser does: mail
// labelled ISO-8859-1 carries Windows' quotes and dashes in 0x80-0x9F.
// Kept local rather than registered, so that others keep go-message's
// strict reading.
var latin1Labels = map[string]bool{
	"iso-8859-1": true, "iso8859-1": true, "iso_8859-1": true, "iso_8859-1:1987": true,
	"latin1": true, "latin-1": true, "l1": true, "cp819": true, "ibm819": true, "csisolatin1": true,
	"iso-ir-100": true,
}

// utf8Labels are read as UTF-8: ASCII is a subset, and 8-bit text under an
// ASCII label is UTF-8 far more often than anything else.
var utf8Labels = map[string]bool{
	"": true, "utf-8": true, "utf8": true, "us-ascii": true, "ascii": true, "ansi_x3.4-1968": true,
	"us": true, "csascii": true, "iso646-us": true, "unicode-1-1-utf-8": true, "x-unknown": true,
	"unknown-8bit": true, "unknown": true, "default": true, "7bit": true, "8bit": true,
}

// normLabel cleans a charset label as found in mail: quoted, padded,
// upper-case, with a stray language suffix from RFC 2231.
func normLabel(label string) string {
	label = strings.ToLower(strings.Trim(strings.TrimSpace(label), `"' `))
	if i := strings.IndexByte(label, '*'); i >= 0 {
		label = label[:i]
	}
	return label
}

// decodeCharset turns b in the named charset into valid UTF-8. The problem
// is non-empty when bytes had to be replaced.
func decodeCharset(b []byte, label string) (string, string) {
	label = normLabel(label)
	if utf8Labels[label] {
		b = bytes.TrimPrefix(b, []byte("\xef\xbb\xbf"))
		if utf8.Valid(b) {
			return string(b), ""
		}
		name := label
		if name == "" {
			name = "UTF-8 (no charset given)"
		}
		return strings.ToValidUTF8(string(b), "\uFFFD"), fmt.Sprintf("text is not valid %s: bad bytes replaced", name)
	}
	enc := registered[label]
	if latin1Labels[label] {
		enc = charmap.Windows1252
	}
	var out []byte
	var err error
	if enc != nil {
		out, err = enc.NewDecoder().Bytes(b)
	} else {
		var r io.Reader
		r, err = charset.Reader(label, bytes.NewReader(b))
		if err == nil {
			out, err = io.ReadAll(r)
		}
	}
	if err != nil {
		if len(label) > 40 {
			label = label[:40]
		}
		return strings.ToValidUTF8(string(b), "\uFFFD"),
			fmt.Sprintf("unknown charset %q: text kept where it is UTF-8, other bytes replaced", strings.ToValidUTF8(label, "?"))
	}
	return strings.ToValidUTF8(string(out), "\uFFFD"), ""
}

var charsetRE = regexp.MustCompile(`^(?i)charset\s*=\s*"?([a-z0-9_.:\-]+)`)

// sniffCharset finds the first charset a mail declares, to read raw 8-bit
// header text with: clients that send unencoded GBK subjects and names
// label the body with the same charset.
func sniffCharset(raw []byte) string {
	raw = raw[:min(len(raw), 64<<10)]
	for pos, n := 0, 0; n < 8; n++ {
		// A plain search first: a case-insensitive pattern over the whole
		// mail costs more than the rest of the parse.
		i := indexCharset(raw[pos:])
		if i < 0 {
			return ""
		}
		start := pos + i
		pos = start + len("charset")
		if m := charsetRE.FindSubmatch(raw[start:min(len(raw), start+100)]); m != nil {
			if l := normLabel(string(m[1])); !utf8Labels[l] {
				return l
			}
		}
	}
	return ""
}

// indexCharset finds "charset" in the spellings mail uses.
func indexCharset(b []byte) int {
	best := -1
	for _, word := range []string{"charset", "Charset", "CHARSET"} {
		if i := bytes.Index(b, []byte(word)); i >= 0 && (best < 0 || i < best) {
			best = i
		}
	}
	return best
}

// decodeRaw reads header or parameter text that may hold raw 8-bit bytes.
func decodeRaw(s, fallback string) string {
	if utf8.ValidString(s) {
		return s
	}
	if fallback != "" {
		if out, problem := decodeCharset([]byte(s), fallback); problem == "" {
			return out
		}
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}
