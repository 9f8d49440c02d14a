package parse

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"mime"
	netmail "net/mail"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"
)

// readHeader reads the header block at the start of raw and returns the
// rest as the body. A line that is neither a field nor a continuation ends
// the header, as if the blank line were there: mailers that forget it are
// more common than any other header damage, and the customer's text is
// below. go-message then reads the cleaned block.
func readHeader(raw []byte) (textproto.Header, io.Reader, []string, error) {
	var problems []string
	rest := raw
	// An mbox separator line ("From sender date") is not a field.
	if bytes.HasPrefix(rest, []byte("From ")) {
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			rest = rest[i+1:]
		} else {
			rest = nil
		}
	}
	var clean bytes.Buffer
	fields, dropped := 0, 0
	for len(rest) > 0 {
		line := rest
		next := []byte(nil)
		if i := bytes.IndexByte(rest, '\n'); i >= 0 {
			line, next = rest[:i], rest[i+1:]
		}
		line = bytes.TrimSuffix(line, []byte("\r"))
		if len(line) == 0 {
			rest = next
			break
		}
		if (line[0] == ' ' || line[0] == '\t') && fields > 0 || validFieldLine(line) {
			if line[0] != ' ' && line[0] != '\t' {
				fields++
			}
			clean.Write(line)
			clean.WriteString("\r\n")
			rest = next
			continue
		}
		if fields > 0 {
			problems = append(problems, "no blank line after the header: the body starts at the first line that is not a field")
			break
		}
		dropped++
		rest = next
	}
	if fields == 0 {
		return textproto.Header{}, nil, nil, errors.New("no header fields found")
	}
	if dropped > 0 {
		problems = append(problems, fmt.Sprintf("%d malformed lines before the first header field dropped", dropped))
	}
	clean.WriteString("\r\n")
	h, err := textproto.ReadHeader(bufio.NewReader(&clean))
	if err != nil {
		return textproto.Header{}, nil, nil, fmt.Errorf("cannot read the header block: %w", err)
	}
	return h, bytes.NewReader(rest), problems, nil
}

func validFieldLine(line []byte) bool {
	i := bytes.IndexByte(line, ':')
	if i <= 0 {
		return false
	}
	key := bytes.TrimRight(line[:i], " \t")
	if len(key) == 0 {
		return false
	}
	for _, c := range key {
		if c < 33 || c > 126 {
			return false
		}
	}
	return true
}

// fillHeaders sets everything Mail takes from the header block. Its error
// means there is nobody to answer.
func fillHeaders(m *Mail, h textproto.Header, fallback string, pr *problemList) error {
	m.Subject = limitShort(decodeHeaderText(h.Get("Subject"), fallback), "subject", pr)
	if ids := msgIDs(h.Get("Message-Id"), pr); len(ids) > 0 {
		m.MessageID = ids[0]
	}
	if ids := msgIDs(h.Get("In-Reply-To"), pr); len(ids) > 0 {
		m.InReplyTo = ids[0]
	}
	m.References = references(h, pr)
	m.To = addressList(h, "To", fallback, pr)
	m.Cc = addressList(h, "Cc", fallback, pr)
	m.ReplyTo = addressList(h, "Reply-To", fallback, pr)
	m.Date = parseDate(h.Get("Date"))
	if h.Get("Date") != "" && m.Date.IsZero() {
		pr.add("Date header unreadable")
	}
	m.Language = languageTag(h.Get("Content-Language"))
	m.ListID = clip(cleanHeaderText(h.Get("List-Id")), maxShort)
	m.NullSender = strings.TrimSpace(h.Get("Return-Path")) == "<>"

	for _, key := range []string{"From", "Sender", "Reply-To", "Return-Path"} {
		if l := addressList(h, key, fallback, pr); len(l) > 0 {
			m.From = l[0]
			if key != "From" {
				pr.add(fmt.Sprintf("no usable From address: used %s", key))
			}
			return nil
		}
	}
	if h.Has("From") {
		return fmt.Errorf("no usable sender: From %q is not an address, and there is no Sender, Reply-To or Return-Path", clip(h.Get("From"), 80))
	}
	return errors.New("no From, Sender, Reply-To or Return-Path address")
}

var encodedWordRE = regexp.MustCompile(`=\?([^?\s]{1,64})\?([bBqQ])\?([^?]*?)\?=`)

// decodeHeaderText decodes RFC 2047 encoded words. Adjacent words in one
// charset are joined before the charset is applied: encoders split
// multi-byte characters across words, and decoding each word alone turns
// those characters into garbage. Raw 8-bit text is read in the fallback
// charset, as the clients that send it mean it.
func decodeHeaderText(s, fallback string) string {
	if !strings.Contains(s, "=?") {
		return cleanHeaderText(decodeRaw(s, fallback))
	}
	var out strings.Builder
	var pend []byte
	pendCharset := ""
	active := false
	flush := func() {
		if active {
			text, _ := decodeCharset(pend, pendCharset)
			out.WriteString(text)
			pend, active = nil, false
		}
	}
	last := 0
	for _, loc := range encodedWordRE.FindAllStringSubmatchIndex(s, -1) {
		between := s[last:loc[0]]
		cs := normLabel(s[loc[2]:loc[3]])
		data := decodeWord(s[loc[4]:loc[5]], s[loc[6]:loc[7]])
		switch {
		case active && strings.TrimSpace(between) == "" && cs == pendCharset:
			pend = append(pend, data...)
		case active && strings.TrimSpace(between) == "":
			// RFC 2047: whitespace between encoded words is not text.
			flush()
			pend, pendCharset, active = data, cs, true
		default:
			flush()
			out.WriteString(decodeRaw(between, fallback))
			pend, pendCharset, active = data, cs, true
		}
		last = loc[1]
	}
	flush()
	out.WriteString(decodeRaw(s[last:], fallback))
	return cleanHeaderText(out.String())
}

func decodeWord(enc, text string) []byte {
	if enc == "b" || enc == "B" {
		return decodeBase64Loose(text)
	}
	var b []byte
	for i := 0; i < len(text); i++ {
		c := text[i]
		switch {
		case c == '_':
			b = append(b, ' ')
		case c == '=' && i+2 < len(text) && isHex(text[i+1]) && isHex(text[i+2]):
			v, _ := strconv.ParseUint(text[i+1:i+3], 16, 8)
			b = append(b, byte(v))
			i += 2
		default:
			b = append(b, c)
		}
	}
	return b
}

// decodeBase64Loose decodes what it can: padding may be missing and
// whitespace or junk may be mixed in.
func decodeBase64Loose(s string) []byte {
	clean := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if isBase64(s[i]) {
			clean = append(clean, s[i])
		}
	}
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1]
	}
	out, _ := base64.RawStdEncoding.DecodeString(string(clean))
	return out
}

func isBase64(c byte) bool {
	return c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

// cleanHeaderText makes decoded header text one clean line.
func cleanHeaderText(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		switch {
		case r == '\t' || r == '\r' || r == '\n':
			return ' '
		case r < 0x20 || r == 0x7f:
			return -1
		}
		return r
	}, s)
	return strings.TrimSpace(s)
}

func limitShort(s, what string, pr *problemList) string {
	if len(s) <= maxShort {
		return s
	}
	pr.add(what + " truncated")
	return truncateUTF8(s, maxShort)
}

// msgIDs reads a list of message ids leniently: folded ids lose their
// whitespace, and a bare id without brackets is taken as one.
func msgIDs(v string, pr *problemList) []string {
	v = strings.TrimSpace(v)
	if v == "" {
		return nil
	}
	var ids []string
	add := func(id string) {
		id = strings.Map(func(r rune) rune {
			if unicode.IsSpace(r) || r == 0 || r == '<' || r == '>' {
				return -1
			}
			return r
		}, id)
		if id == "" {
			return
		}
		id = "<" + strings.ToValidUTF8(id, "\uFFFD") + ">"
		if len(id) > maxShort {
			pr.add("message id longer than 1024 bytes ignored")
			return
		}
		ids = append(ids, id)
	}
	rest := v
	found := false
	for {
		i := strings.IndexByte(rest, '<')
		if i < 0 {
			break
		}
		j := strings.IndexByte(rest[i+1:], '>')
		if j < 0 {
			break
		}
		found = true
		add(rest[i+1 : i+1+j])
		rest = rest[i+2+j:]
	}
	if !found {
		for _, f := range strings.FieldsFunc(v, func(r rune) bool { return unicode.IsSpace(r) || r == ',' }) {
			if strings.Contains(f, "@") || len(ids) == 0 {
				add(f)
			}
		}
	}
	return ids
}

// references reads References, dropping repeats and keeping the last 100:
// the most recent ancestors are the ones threading needs.
func references(h textproto.Header, pr *problemList) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range h.Values("References") {
		for _, id := range msgIDs(v, pr) {
			if !seen[id] {
				seen[id] = true
				out = append(out, id)
			}
		}
	}
	if len(out) > maxRefs {
		out = out[len(out)-maxRefs:]
	}
	return out
}

// addressList reads an address header, falling back to picking out the
// addresses one by one when the list as a whole does not parse.
func addressList(h textproto.Header, key, fallback string, pr *problemList) []Address {
	var out []Address
	broken := false
	for _, v := range h.Values(key) {
		l, ok := parseAddresses(v, fallback)
		out = append(out, l...)
		broken = broken || !ok
	}
	if len(out) == 0 && broken && key != "Return-Path" {
		pr.add(key + " header has no usable address")
	}
	if len(out) > 500 {
		pr.add(key + " header: only the first 500 addresses kept")
		out = out[:500]
	}
	return out
}

var addrParser = netmail.AddressParser{WordDecoder: &mime.WordDecoder{
	CharsetReader: func(label string, r io.Reader) (io.Reader, error) {
		b, err := io.ReadAll(r)
		if err != nil {
			return nil, err
		}
		s, _ := decodeCharset(b, label)
		return strings.NewReader(s), nil
	},
}}

var (
	angleAddrRE = regexp.MustCompile(`<\s*([^<>\s@]+@[^<>\s@]+)\s*>`)
	bareAddrRE  = regexp.MustCompile(`[^\s<>()\[\],;:"'@]+@[^\s<>()\[\],;:"'@]+`)
)

// parseAddresses reads one address header value; ok is false when it did
// not parse as a list ("undisclosed-recipients:;" does, and is empty).
func parseAddresses(v, fallback string) (out []Address, ok bool) {
	v = strings.TrimSpace(v)
	if v == "" || v == "<>" {
		return nil, true
	}
	if list, err := addrParser.ParseList(v); err == nil {
		for _, a := range list {
			if ad, ok := makeAddress(a.Name, a.Address, fallback); ok {
				out = append(out, ad)
			}
		}
		return out, true
	}
	for _, piece := range splitAddressList(v) {
		piece = strings.TrimSpace(piece)
		if piece == "" {
			continue
		}
		if a, err := addrParser.Parse(piece); err == nil {
			if ad, ok := makeAddress(a.Name, a.Address, fallback); ok {
				out = append(out, ad)
			}
			continue
		}
		if m := angleAddrRE.FindStringSubmatchIndex(piece); m != nil {
			name := strings.Trim(strings.TrimSpace(piece[:m[0]]), `"' `)
			if ad, ok := makeAddress(name, piece[m[2]:m[3]], fallback); ok {
				out = append(out, ad)
			}
			continue
		}
		if m := bareAddrRE.FindString(piece); m != "" {
			if ad, ok := makeAddress("", m, fallback); ok {
				out = append(out, ad)
			}
		}
	}
	return out, false
}

// splitAddressList splits at commas and semicolons outside quotes, angle
// brackets and comments.
func splitAddressList(v string) []string {
	var out []string
	quoted, angle, paren := false, false, 0
	start := 0
	for i := 0; i < len(v); i++ {
		switch c := v[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case quoted:
		case c == '<':
			angle = true
		case c == '>':
			angle = false
		case c == '(':
			paren++
		case c == ')' && paren > 0:
			paren--
		case (c == ',' || c == ';') && !angle && paren == 0:
			out = append(out, v[start:i])
			start = i + 1
		}
	}
	return append(out, v[start:])
}

func makeAddress(name, addr, fallback string) (Address, bool) {
	addr = strings.ToLower(strings.TrimSpace(strings.ToValidUTF8(addr, "")))
	at := strings.LastIndexByte(addr, '@')
	if at <= 0 || at == len(addr)-1 || len(addr) > 320 || strings.ContainsAny(addr, " \t\r\n\x00<>") {
		return Address{}, false
	}
	if strings.Contains(name, "=?") {
		name = decodeHeaderText(name, fallback)
	} else {
		name = cleanHeaderText(decodeRaw(name, fallback))
	}
	name = strings.TrimSpace(strings.Trim(name, `"'`))
	if strings.EqualFold(name, addr) {
		name = ""
	}
	if len(name) > maxShort {
		name = truncateUTF8(name, maxShort)
	}
	return Address{Name: name, Address: addr}, true
}

var dateLayouts = []string{
	"Mon, 2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04 -0700",
	"Mon, 2 Jan 06 15:04:05 -0700",
	"2 Jan 2006 15:04:05 -0700",
	"Mon, 2 Jan 2006 15:04:05 MST",
	"Mon 2 Jan 2006 15:04:05 -0700",
	"Mon, Jan 2 2006 15:04:05 -0700",
	"Mon Jan 2 15:04:05 2006",
	"Mon Jan 2 15:04:05 -0700 2006",
	"2006-01-02 15:04:05 -0700",
	"2006-01-02 15:04:05",
	time.RFC3339,
}

var dateCommentRE = regexp.MustCompile(`\s*\([^)]*\)\s*$`)

func parseDate(v string) time.Time {
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 200 {
		return time.Time{}
	}
	if t, err := netmail.ParseDate(v); err == nil {
		return t
	}
	v = strings.Join(strings.Fields(dateCommentRE.ReplaceAllString(v, "")), " ")
	v = strings.Replace(v, "GMT+", "+", 1)
	v = strings.Replace(v, "UTC+", "+", 1)
	for _, layout := range dateLayouts {
		if t, err := time.Parse(layout, v); err == nil {
			return t
		}
	}
	return time.Time{}
}

// languageTag takes the first tag of a Content-Language list, if it looks
// like a BCP 47 tag at all.
func languageTag(v string) string {
	v, _, _ = strings.Cut(v, ",")
	v = strings.TrimSpace(v)
	if v == "" || len(v) > 35 {
		return ""
	}
	for _, c := range v {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return ""
		}
	}
	return strings.ReplaceAll(v, "_", "-")
}

// parseParams reads a Content-Type or Content-Disposition value. It is
// lenient where mime.ParseMediaType gives up on real mail: repeated
// parameters (the first wins), unquoted values with spaces, and RFC 2231
// values in charsets other than UTF-8 (Chinese clients send GBK file
// names that way). Values are returned raw, RFC 2231 already applied.
func parseParams(v string) (string, map[string]string) {
	parts := splitParams(v)
	value := strings.ToLower(strings.TrimSpace(parts[0]))
	params := map[string]string{}
	type piece struct {
		n       int
		encoded bool
		v       string
	}
	ext := map[string][]piece{}
	for _, p := range parts[1:] {
		k, val, ok := strings.Cut(p, "=")
		if !ok {
			continue
		}
		k = strings.ToLower(strings.TrimSpace(k))
		val = unquote(strings.TrimSpace(val))
		if k == "" {
			continue
		}
		if star := strings.IndexByte(k, '*'); star >= 0 {
			name, rest := k[:star], k[star+1:]
			encoded := strings.HasSuffix(rest, "*") || rest == ""
			rest = strings.TrimSuffix(rest, "*")
			n := 0
			if rest != "" {
				var err error
				if n, err = strconv.Atoi(rest); err != nil || n < 0 || n > 100 {
					continue
				}
			}
			ext[name] = append(ext[name], piece{n, encoded, val})
			continue
		}
		if _, dup := params[k]; !dup {
			params[k] = val
		}
	}
	for name, pieces := range ext {
		sort.SliceStable(pieces, func(i, j int) bool { return pieces[i].n < pieces[j].n })
		// Encoded pieces are joined before percent-decoding: encoders do
		// cut an escape or a character across pieces.
		var joined strings.Builder
		label := ""
		for i, p := range pieces {
			if i > 0 && p.n == pieces[i-1].n {
				continue
			}
			val := p.v
			if !p.encoded {
				joined.WriteString(strings.ReplaceAll(val, "%", "%25"))
				continue
			}
			if i == 0 {
				// charset'language'value
				if cs, rest, ok := strings.Cut(val, "'"); ok {
					label = cs
					if _, after, ok := strings.Cut(rest, "'"); ok {
						val = after
					} else {
						val = rest
					}
				}
			}
			joined.WriteString(val)
		}
		raw := percentDecode(joined.String())
		if label == "" {
			// No charset named: the caller reads raw bytes the way it
			// reads raw header text.
			params[name] = string(raw)
			continue
		}
		text, _ := decodeCharset(raw, label)
		params[name] = text
	}
	return value, params
}

func splitParams(v string) []string {
	var out []string
	quoted := false
	start := 0
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			if quoted {
				i++
			}
		case '"':
			quoted = !quoted
		case ';':
			if !quoted {
				out = append(out, v[start:i])
				start = i + 1
			}
		}
	}
	return append(out, v[start:])
}

func unquote(s string) string {
	if len(s) < 2 || s[0] != '"' {
		return strings.Trim(s, `"`)
	}
	s = strings.TrimSuffix(s[1:], `"`)
	if !strings.Contains(s, `\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '\\' && i+1 < len(s) {
			i++
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

func percentDecode(s string) []byte {
	b := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if s[i] == '%' && i+2 < len(s) && isHex(s[i+1]) && isHex(s[i+2]) {
			v, _ := strconv.ParseUint(s[i+1:i+3], 16, 8)
			b = append(b, byte(v))
			i += 2
			continue
		}
		b = append(b, s[i])
	}
	return b
}

// mediaType checks the type/subtype shape; a broken one is read as the
// RFC 2045 default for text, or as opaque bytes.
func mediaType(v, def string) string {
	if v == "" {
		return def
	}
	typ, sub, ok := strings.Cut(v, "/")
	if !ok || typ == "" || sub == "" || strings.ContainsAny(v, " \t\"()<>@,:\\[]?=") || !isASCII(v) {
		if strings.HasPrefix(v, "text") {
			return "text/plain"
		}
		return "application/octet-stream"
	}
	return v
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

func clip(s string, n int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	if len(s) <= n {
		return s
	}
	return truncateUTF8(s, n) + "…"
}
