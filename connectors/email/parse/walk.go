package parse

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"fmt"
	"io"
	"regexp"
	"strings"
	"unicode/utf8"

	"github.com/emersion/go-message/textproto"
	htmlcharset "golang.org/x/net/html/charset"

	"github.com/inroute/inroute/message"
)

// partContext is what a part inherits from the multipart around it.
type partContext struct {
	inReport    bool   // inside multipart/report: returned mail is evidence, not an attachment
	forceAttach bool   // a resource of multipart/related, not the body
	defaultType string // multipart/digest parts default to message/rfc822
}

// reportInfo gathers the machine-readable parts of a DSN or MDN.
type reportInfo struct {
	reportType string             // report-type of the first multipart/report
	dsn        []byte             // the first message/delivery-status body
	sawDSN     bool               // a delivery-status part anywhere
	mdn        bool               // a disposition-notification part anywhere
	returned   *textproto.Header  // header of the returned mail inside a report
	embedded   []textproto.Header // headers of attached mails (non-standard bounces attach the original)
}

// content is the body text a part contributes.
type content struct{ plain, html []string }

type walker struct {
	opt         Options
	maxAtt      int
	fallback    string
	pr          *problemList
	parts       int
	leaves      int
	dropped     int
	attachments []Attachment
	report      reportInfo
	language    string
}

func newWalker(opt Options, fallback string, pr *problemList) *walker {
	w := &walker{opt: opt, maxAtt: opt.MaxAttachments, fallback: fallback, pr: pr}
	if w.maxAtt <= 0 {
		w.maxAtt = message.MaxAttachments
	}
	return w
}

func (w *walker) entity(h textproto.Header, body io.Reader, depth int, ctx partContext) content {
	w.parts++
	if w.parts > maxParts {
		w.pr.add(fmt.Sprintf("more than %d MIME parts: the rest skipped", maxParts))
		return content{}
	}
	def := ctx.defaultType
	if def == "" {
		def = "text/plain"
	}
	ct, params := parseParams(h.Get("Content-Type"))
	mt := mediaType(ct, def)
	if strings.HasPrefix(mt, "multipart/") {
		if depth >= maxDepth {
			w.pr.add(fmt.Sprintf("MIME parts nested deeper than %d skipped", maxDepth))
			return content{}
		}
		return w.multipart(mt, params, body, depth)
	}
	switch mt {
	case "message/rfc822", "message/global":
		w.embedded(h, body, ctx)
		return content{}
	case "message/delivery-status", "message/global-delivery-status":
		w.report.sawDSN = true
		if data, _ := w.readPart(h, body, 64<<10, mt); w.report.dsn == nil {
			w.report.dsn = data
		}
		return content{}
	case "message/disposition-notification", "message/global-disposition-notification":
		w.report.mdn = true
		return content{}
	case "text/rfc822-headers", "message/global-headers":
		data, _ := w.readPart(h, body, 256<<10, mt)
		if hdr, _, _, err := readHeader(data); err == nil && w.report.returned == nil {
			w.report.returned = &hdr
		}
		return content{}
	}

	w.leaves++
	disp, dparams := parseParams(h.Get("Content-Disposition"))
	name := w.filename(params, dparams)
	if !ctx.forceAttach && disp != "attachment" && name == "" && (mt == "text/plain" || mt == "text/html") {
		return w.bodyText(h, mt, params, body)
	}
	w.attachment(h, mt, disp, name, body)
	return content{}
}

func (w *walker) multipart(mt string, params map[string]string, body io.Reader, depth int) content {
	sub := strings.TrimPrefix(mt, "multipart/")
	boundary := params["boundary"]
	if boundary == "" {
		br := bufio.NewReaderSize(body, 16<<10)
		body = br
		if boundary = sniffBoundary(br); boundary == "" {
			w.pr.add(mt + " without a boundary: body read as plain text")
			data, _ := io.ReadAll(io.LimitReader(br, maxTextRead))
			text, _ := decodeCharset(data, "")
			return content{plain: []string{text}}
		}
		w.pr.add(mt + " without a boundary parameter: boundary taken from the body")
	}
	if sub == "report" && w.report.reportType == "" {
		w.report.reportType = strings.ToLower(params["report-type"])
	}
	childDefault := ""
	if sub == "digest" {
		childDefault = "message/rfc822"
	}
	start := contentID(params["start"])

	mr := textproto.NewMultipartReader(body, boundary)
	var out content
	n := 0
	for {
		p, err := mr.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			w.pr.add(fmt.Sprintf("broken %s (%v): kept the %d parts before the break", mt, err, n))
			break
		}
		n++
		ctx := partContext{defaultType: childDefault, inReport: sub == "report"}
		switch sub {
		case "related":
			if start != "" {
				ctx.forceAttach = contentID(p.Header.Get("Content-Id")) != start
			} else {
				ctx.forceAttach = n > 1
			}
		case "signed":
			// The signature is for mail clients to check, not a file the
			// customer sent.
			if ct, _ := parseParams(p.Header.Get("Content-Type")); n > 1 && isSignature(ct) {
				continue
			}
		}
		c := w.entity(p.Header, p, depth+1, ctx)
		if sub == "alternative" {
			// The first plain text alternative is the customer's own; the
			// last HTML one is the richest (RFC 2046 orders by fidelity).
			if len(out.plain) == 0 && !isBlank(strings.Join(c.plain, "")) {
				out.plain = c.plain
			}
			if len(c.html) > 0 {
				out.html = c.html
			}
			continue
		}
		out.plain = append(out.plain, c.plain...)
		out.html = append(out.html, c.html...)
	}
	return out
}

func isSignature(mt string) bool {
	switch mt {
	case "application/pgp-signature", "application/pkcs7-signature", "application/x-pkcs7-signature":
		return true
	}
	return false
}

// sniffBoundary takes the boundary from the first delimiter line when the
// Content-Type forgot to name it.
func sniffBoundary(br *bufio.Reader) string {
	buf, _ := br.Peek(16 << 10)
	for _, line := range bytes.Split(buf, []byte("\n")) {
		line = bytes.TrimRight(line, " \t\r")
		if len(line) > 2 && len(line) <= 200 && bytes.HasPrefix(line, []byte("--")) {
			return string(line[2:])
		}
	}
	return ""
}

func (w *walker) bodyText(h textproto.Header, mt string, params map[string]string, body io.Reader) content {
	limit := int64(maxTextRead)
	if mt == "text/html" {
		limit = maxHTMLRead
	}
	data, _ := w.readPart(h, body, limit, mt)
	label := params["charset"]
	if mt == "text/html" && label == "" {
		label = htmlCharsetLabel(data)
	}
	if label == "" && w.fallback != "" && !utf8.Valid(data) {
		// Old clients leave the charset off one part and name it on
		// another (or in the header): that is the best guess there is.
		label = w.fallback
		w.pr.add(fmt.Sprintf("%s part without charset read as %s", mt, w.fallback))
	}
	text, problem := decodeCharset(data, label)
	w.pr.add(problem)
	if w.language == "" {
		w.language = languageTag(h.Get("Content-Language"))
	}
	if mt == "text/html" {
		return content{html: []string{text}}
	}
	if strings.EqualFold(params["format"], "flowed") {
		text = unflow(text, strings.EqualFold(params["delsp"], "yes"))
	}
	return content{plain: []string{text}}
}

// htmlCharsetLabel reads a <meta> charset or a BOM, for HTML parts whose
// Content-Type names none. The browsers' last resort (windows-1252) is not
// taken: a charset named elsewhere in the mail is the better guess.
func htmlCharsetLabel(data []byte) string {
	_, name, certain := htmlcharset.DetermineEncoding(data, "")
	if certain || name != "windows-1252" || metaCharsetRE.Match(data[:min(len(data), 1024)]) {
		return name
	}
	return ""
}

var metaCharsetRE = regexp.MustCompile(`(?i)<meta[^>]+charset`)

// readPart decodes a part's transfer encoding and reads at most limit
// bytes of it, noting what went wrong.
func (w *walker) readPart(h textproto.Header, body io.Reader, limit int64, what string) ([]byte, bool) {
	r := w.transferReader(h, body)
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		w.pr.add(fmt.Sprintf("%s part: %v: kept what was decoded before it", what, err))
	}
	if int64(len(data)) > limit {
		w.pr.add(fmt.Sprintf("%s part longer than %s: the rest skipped", what, sizeText(limit)))
		return data[:limit], true
	}
	return data, false
}

// transferReader undoes Content-Transfer-Encoding leniently: base64 with
// junk or missing padding and quoted-printable with stray bytes are common,
// and the text before the damage is still the customer's.
func (w *walker) transferReader(h textproto.Header, body io.Reader) io.Reader {
	cte := strings.ToLower(strings.TrimSpace(h.Get("Content-Transfer-Encoding")))
	if i := strings.IndexAny(cte, "; \t"); i >= 0 {
		cte = cte[:i]
	}
	switch cte {
	case "", "7bit", "8bit", "binary", "7-bit", "8-bit", "none":
		return body
	case "base64":
		return base64.NewDecoder(base64.StdEncoding, &base64Filter{r: body})
	case "quoted-printable", "quotedprintable", "qp":
		enc, err := io.ReadAll(body)
		return &errorAfter{r: bytes.NewReader(decodeQP(enc)), err: err}
	}
	w.pr.add(fmt.Sprintf("unknown Content-Transfer-Encoding %q: part read as is", clip(cte, 40)))
	return body
}

// errorAfter returns r's bytes, then err: the bytes read before a failure
// are kept.
type errorAfter struct {
	r   io.Reader
	err error
}

func (e *errorAfter) Read(p []byte) (int, error) {
	n, err := e.r.Read(p)
	if err == io.EOF && e.err != nil {
		return n, e.err
	}
	return n, err
}

// base64Filter passes only base64 characters and pads a short last
// quantum, so that line breaks, spaces and stray junk do not stop the
// standard decoder.
type base64Filter struct {
	r      io.Reader
	n      int // data characters since the last padding
	padded bool
	tail   []byte
	eof    bool
}

func (f *base64Filter) Read(p []byte) (int, error) {
	for {
		if len(f.tail) > 0 {
			n := copy(p, f.tail)
			f.tail = f.tail[n:]
			return n, nil
		}
		if f.eof {
			return 0, io.EOF
		}
		n, err := f.r.Read(p)
		k := 0
		for _, c := range p[:n] {
			switch {
			case isBase64(c):
				p[k] = c
				k++
				f.n++
				f.padded = false
			case c == '=':
				p[k] = c
				k++
				f.padded = true
			}
		}
		if err != nil {
			f.eof = true
			if !f.padded {
				switch f.n % 4 {
				case 2:
					f.tail = []byte("==")
				case 3:
					f.tail = []byte("=")
				}
			}
			if err != io.EOF {
				return k, err
			}
		}
		if k > 0 {
			return k, nil
		}
	}
}

// decodeQP decodes quoted-printable without ever failing: an "=" that does
// not start an escape is kept as it is.
func decodeQP(in []byte) []byte {
	out := make([]byte, 0, len(in))
	for len(in) > 0 {
		line := in
		hard := false
		if i := bytes.IndexByte(in, '\n'); i >= 0 {
			line, in, hard = in[:i], in[i+1:], true
		} else {
			in = nil
		}
		line = bytes.TrimRight(line, " \t\r")
		if bytes.HasSuffix(line, []byte("=")) {
			line, hard = line[:len(line)-1], false
		}
		for i := 0; i < len(line); i++ {
			c := line[i]
			if c == '=' && i+2 < len(line) && isHex(line[i+1]) && isHex(line[i+2]) {
				out = append(out, unhex(line[i+1])<<4|unhex(line[i+2]))
				i += 2
				continue
			}
			out = append(out, c)
		}
		if hard {
			out = append(out, '\r', '\n')
		}
	}
	return out
}

func unhex(c byte) byte {
	switch {
	case c >= '0' && c <= '9':
		return c - '0'
	case c >= 'a' && c <= 'f':
		return c - 'a' + 10
	default:
		return c - 'A' + 10
	}
}

// readLimited reads an attachment: all of it, or at most limit+1 bytes
// and then only counts the rest.
func (w *walker) readLimited(r io.Reader) (data []byte, size int64, over bool, err error) {
	limit := w.opt.MaxAttachmentSize
	if limit <= 0 {
		data, err = io.ReadAll(r)
		return data, int64(len(data)), false, err
	}
	data, err = io.ReadAll(io.LimitReader(r, limit+1))
	if int64(len(data)) <= limit {
		return data, int64(len(data)), false, err
	}
	n, cerr := io.Copy(io.Discard, r)
	if err == nil {
		err = cerr
	}
	return data, int64(len(data)) + n, true, err
}

func (w *walker) attachment(h textproto.Header, mt, disp, name string, body io.Reader) {
	if len(w.attachments) >= w.maxAtt {
		w.dropped++
		return
	}
	a := Attachment{Name: name, ContentType: mt, ContentID: contentID(h.Get("Content-Id"))}
	a.Inline = a.ContentID != "" && disp != "attachment"
	if a.Name == "" {
		a.Name = fmt.Sprintf("part-%d%s", w.leaves, extension(mt))
	}
	data, size, over, err := w.readLimited(w.transferReader(h, body))
	w.keep(&a, data, size, over, err)
}

func (w *walker) keep(a *Attachment, data []byte, size int64, over bool, err error) {
	a.Size = size
	if over {
		a.Dropped = "larger than " + sizeText(w.opt.MaxAttachmentSize)
	} else {
		a.Data = data
	}
	if err != nil {
		w.pr.add(fmt.Sprintf("attachment %q: %v: kept the bytes decoded before it", a.Name, err))
	}
	w.attachments = append(w.attachments, *a)
}

// embedded handles a message/rfc822 part: inside a report it is the mail
// that bounced; elsewhere it is a forwarded mail, kept as a .eml file.
func (w *walker) embedded(h textproto.Header, body io.Reader, ctx partContext) {
	if !ctx.inReport && len(w.attachments) >= w.maxAtt {
		w.dropped++
		return
	}
	data, size, over, err := w.readLimited(w.transferReader(h, body))
	hdr, _, _, herr := readHeader(data)
	if ctx.inReport {
		if herr == nil && w.report.returned == nil {
			w.report.returned = &hdr
		}
		return
	}
	w.leaves++
	name := ""
	if herr == nil {
		if len(w.report.embedded) < 4 {
			w.report.embedded = append(w.report.embedded, hdr)
		}
		// A subject is not a path: its slashes stay part of the name.
		subject := strings.NewReplacer("/", "_", `\`, "_").Replace(decodeHeaderText(hdr.Get("Subject"), w.fallback))
		name = safeFileName(truncateUTF8(subject, 200))
	}
	if name == "" {
		name = fmt.Sprintf("part-%d", w.leaves)
	}
	a := Attachment{Name: name + ".eml", ContentType: "message/rfc822", ContentID: contentID(h.Get("Content-Id"))}
	w.keep(&a, data, size, over, err)
}

func (w *walker) filename(ctParams, dParams map[string]string) string {
	for _, v := range []string{dParams["filename"], ctParams["name"]} {
		if name := safeFileName(decodeHeaderText(v, w.fallback)); name != "" {
			return name
		}
	}
	return ""
}

// safeFileName keeps a name usable as a file name: no directories, no
// control characters, at most 255 bytes.
func safeFileName(name string) string {
	if i := strings.LastIndexAny(name, `/\`); i >= 0 {
		name = name[i+1:]
	}
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if name == "." || name == ".." {
		return ""
	}
	return truncateUTF8(name, 255)
}

func contentID(v string) string {
	v = strings.TrimSpace(v)
	v = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(v, "<"), ">"))
	v = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, strings.ToValidUTF8(v, ""))
	return truncateUTF8(v, maxShort)
}

var extensions = map[string]string{
	"application/pdf": ".pdf", "image/png": ".png", "image/jpeg": ".jpg", "image/jpg": ".jpg",
	"image/pjpeg": ".jpg", "image/gif": ".gif", "image/webp": ".webp", "image/bmp": ".bmp",
	"image/tiff": ".tif", "image/heic": ".heic", "image/heif": ".heif", "image/svg+xml": ".svg",
	"application/zip": ".zip", "application/x-zip-compressed": ".zip", "application/gzip": ".gz",
	"application/x-rar-compressed": ".rar", "application/vnd.rar": ".rar", "application/x-7z-compressed": ".7z",
	"application/msword": ".doc", "application/vnd.ms-excel": ".xls", "application/vnd.ms-powerpoint": ".ppt",
	"application/vnd.openxmlformats-officedocument.wordprocessingml.document":   ".docx",
	"application/vnd.openxmlformats-officedocument.spreadsheetml.sheet":         ".xlsx",
	"application/vnd.openxmlformats-officedocument.presentationml.presentation": ".pptx",
	"text/plain": ".txt", "text/html": ".html", "text/csv": ".csv", "text/calendar": ".ics",
	"text/vcard": ".vcf", "text/x-vcard": ".vcf", "application/json": ".json", "application/xml": ".xml",
	"text/xml": ".xml", "message/rfc822": ".eml", "application/ms-tnef": ".dat", "application/vnd.ms-tnef": ".dat",
	"application/pkcs7-mime": ".p7m", "application/x-pkcs7-mime": ".p7m", "application/pkcs7-signature": ".p7s",
	"application/pgp-encrypted": ".pgp", "application/pgp-signature": ".asc", "audio/mpeg": ".mp3",
	"audio/mp4": ".m4a", "audio/wav": ".wav", "audio/amr": ".amr", "audio/ogg": ".ogg", "video/mp4": ".mp4",
	"video/quicktime": ".mov", "video/3gpp": ".3gp",
}

// extension is a fixed table, not the system's mime.types: the name must
// come out the same on every machine.
func extension(mt string) string {
	if ext, ok := extensions[mt]; ok {
		return ext
	}
	return ".bin"
}

func sizeText(n int64) string {
	switch {
	case n >= 1<<20 && n%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", n>>20)
	case n >= 1<<10 && n%(1<<10) == 0:
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}
