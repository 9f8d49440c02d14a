package email

import (
	"bytes"
	"encoding/hex"
	"fmt"
	"html"
	"io"
	"mime"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"

	gomail "github.com/emersion/go-message/mail"
	"github.com/inroute/inroute/blob"
	"github.com/inroute/inroute/message"
)

// composeInput is what a reply needs besides itself to become a gomail.
type composeInput struct {
	// From is the From header ("Support <help@example.com>").
	From string
	// Domain is the right-hand side of a generated Message-ID; empty
	// takes From's domain.
	Domain string
	Date   time.Time
	// Blobs holds the bytes of "sha256:" attachments; nil names them in
	// the text instead.
	Blobs *blob.Dir
}

// composedMail is a reply rendered as an RFC 5322 message.
type composedMail struct {
	// Raw is the whole message, CRLF line endings, as sent; the Sent copy
	// is the same bytes.
	Raw []byte
	// MessageID is the Message-ID header, "<...>" form.
	MessageID string
	// Omitted names the attachments that are named in the text instead
	// of attached, with the reason.
	Omitted []string
}

// composeAttachment is an attachment whose bytes are in hand.
type composeAttachment struct {
	name, contentType string
	data              []byte
}

// composeNote is an attachment named in the text: a link the customer
// can follow, or a file that could not be attached.
type composeNote struct {
	name, url string
}

var (
	// composeLanguage is the shape of a BCP 47 tag; anything else is left
	// out rather than put into a header.
	composeLanguage = regexp.MustCompile(`^[A-Za-z]{1,8}(-[A-Za-z0-9]{1,8})*$`)
	// composeAtext is what a generated Message-ID's left part may hold
	// as is (RFC 5322 dot-atom-text).
	composeAtext = regexp.MustCompile(`^[A-Za-z0-9!#$%&'*+/=?^_{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_{|}~-]+)*$`)
	// composeParagraphs splits text at blank lines.
	composeParagraphs = regexp.MustCompile(`\n[ \t]*\n+`)
)

// composeMail renders o as a mail: multipart/alternative text and HTML,
// inside multipart/mixed when files are attached.
func composeMail(o *message.Outbound, in composeInput) (*composedMail, error) {
	from, err := gomail.ParseAddress(in.From)
	if err != nil {
		return nil, fmt.Errorf("from address %q: %w", in.From, err)
	}
	to, err := gomail.ParseAddress(o.To)
	if err != nil {
		return nil, fmt.Errorf("recipient %q is not an e-mail address: %w", o.To, err)
	}
	messageID := composeMessageID(o, from.Address, in.Domain)

	lang := ""
	if composeLanguage.MatchString(o.Language) {
		lang = o.Language
	}
	// go-message puts each field it is given first: they are set last to
	// first, so the mail reads From, To, Date, Subject, ...
	var h gomail.Header
	if lang != "" {
		h.Set("Content-Language", lang)
	}
	if o.Auto {
		// RFC 3834, and Exchange's own switch: out-of-office responders
		// must not answer an auto-reply, or two robots talk forever.
		h.Set("X-Auto-Response-Suppress", "All")
		h.Set("Auto-Submitted", "auto-replied")
	}
	var refs []string
	for _, r := range o.Thread.References {
		refs = append(refs, composeMsgIDs(r)...)
	}
	if len(refs) > 0 {
		h.SetMsgIDList("References", refs)
	}
	if ids := composeMsgIDs(o.Thread.InReplyTo); len(ids) > 0 {
		h.SetMsgIDList("In-Reply-To", ids)
	}
	h.SetMessageID(strings.Trim(messageID, "<>"))
	if o.Subject != "" {
		h.SetSubject(composeOneLine(o.Subject))
	}
	h.SetDate(in.Date)
	h.SetAddressList("To", []*gomail.Address{to})
	h.SetAddressList("From", []*gomail.Address{from})

	atts, notes, omitted := composeFiles(o.Attachments, in.Blobs)
	text := composeText(o.Text, notes)
	htmlBody := o.HTML
	if htmlBody == "" {
		htmlBody = composeTextHTML(text, lang)
	} else if len(notes) > 0 {
		htmlBody = composeHTMLNotes(htmlBody, notes)
	}

	var buf bytes.Buffer
	if len(atts) == 0 {
		w, err := gomail.CreateInlineWriter(&buf, h)
		if err != nil {
			return nil, fmt.Errorf("compose: %w", err)
		}
		if err := composeAlternatives(w, text, htmlBody, lang); err != nil {
			return nil, err
		}
	} else {
		w, err := gomail.CreateWriter(&buf, h)
		if err != nil {
			return nil, fmt.Errorf("compose: %w", err)
		}
		iw, err := w.CreateInline()
		if err != nil {
			return nil, fmt.Errorf("compose: %w", err)
		}
		if err := composeAlternatives(iw, text, htmlBody, lang); err != nil {
			return nil, err
		}
		for _, a := range atts {
			if err := composeAttach(w, a); err != nil {
				return nil, err
			}
		}
		if err := w.Close(); err != nil {
			return nil, fmt.Errorf("compose: %w", err)
		}
	}
	return &composedMail{Raw: buf.Bytes(), MessageID: messageID, Omitted: omitted}, nil
}

// composeMessageID is the reply's Message-ID: the one the store recorded
// for it (so the customer's answer threads back to the conversation),
// else one made of the reply id, the same on every attempt.
func composeMessageID(o *message.Outbound, fromAddr, domain string) string {
	if ids := composeMsgIDs(o.Thread.MessageID); len(ids) == 1 {
		return "<" + ids[0] + ">"
	}
	if domain == "" {
		if _, d, ok := strings.Cut(fromAddr, "@"); ok && d != "" {
			domain = d
		} else {
			domain = "inroute.invalid"
		}
	}
	left := o.ID
	if !composeAtext.MatchString(left) {
		left = "x" + hex.EncodeToString([]byte(left))
	}
	return "<" + left + "@" + domain + ">"
}

// composeMsgIDs reads message ids with or without their angle brackets,
// one or several in a string, as they may be stored.
func composeMsgIDs(s string) []string {
	var ids []string
	for _, f := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\r' || r == '\n' || r == ',' }) {
		if id := strings.Trim(f, "<>"); id != "" && !strings.ContainsAny(id, "<>") {
			ids = append(ids, id)
		}
	}
	return ids
}

// composeOneLine keeps a header value on one line: line breaks in a
// subject would otherwise end the header.
func composeOneLine(s string) string {
	return strings.Join(strings.Fields(s), " ")
}

// composeFiles sorts the attachments into those attached (blob bytes
// read) and those named in the text: links, and files that cannot be read.
func composeFiles(in []message.Attachment, blobs *blob.Dir) (atts []composeAttachment, notes []composeNote, omitted []string) {
	for i, a := range in {
		name := composeFileName(a.Name, i)
		switch {
		case strings.HasPrefix(a.URL, "https://") || strings.HasPrefix(a.URL, "http://"):
			notes = append(notes, composeNote{name: name, url: a.URL})
			continue
		case blob.IsRef(a.URL) && blobs != nil:
			data, err := composeReadBlob(blobs, a.URL)
			if err == nil {
				atts = append(atts, composeAttachment{name: name, contentType: composeContentType(a.ContentType, name), data: data})
				continue
			}
			omitted = append(omitted, name+": "+err.Error())
		case blob.IsRef(a.URL):
			omitted = append(omitted, name+": no blob store")
		default:
			omitted = append(omitted, name+": unknown reference")
		}
		notes = append(notes, composeNote{name: name})
	}
	return atts, notes, omitted
}

// composeReadBlob reads a whole blob first, so that a read error leaves
// out the file rather than a broken part.
func composeReadBlob(blobs *blob.Dir, ref string) ([]byte, error) {
	r, err := blobs.Open(ref)
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", ref, err)
	}
	defer r.Close()
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", ref, err)
	}
	return data, nil
}

// composeFileName is a's name without any directory part (a name is the
// customer's or agent's words, not a path), or a made-up one.
func composeFileName(name string, i int) string {
	name = path.Base(strings.ReplaceAll(composeOneLine(name), `\`, "/"))
	if name == "" || name == "." || name == "/" || name == ".." {
		return "attachment-" + strconv.Itoa(i+1)
	}
	return name
}

func composeContentType(ct, name string) string {
	if t, _, err := mime.ParseMediaType(ct); err == nil && strings.Contains(t, "/") {
		return t
	}
	if t := mime.TypeByExtension(filepath.Ext(name)); t != "" {
		if mt, _, err := mime.ParseMediaType(t); err == nil {
			return mt
		}
	}
	return "application/octet-stream"
}

// composeText is the reply's text with the attachments that are not
// attached named at the end.
func composeText(text string, notes []composeNote) string {
	text = strings.ReplaceAll(strings.ReplaceAll(text, "\r\n", "\n"), "\r", "\n")
	if len(notes) == 0 {
		return text
	}
	var b strings.Builder
	b.WriteString(strings.TrimRight(text, "\n"))
	b.WriteString("\n")
	for _, n := range notes {
		b.WriteString("\n")
		if n.url != "" {
			b.WriteString("[Attachment: " + n.name + " " + n.url + "]")
		} else {
			b.WriteString("[Attachment not included: " + n.name + "]")
		}
	}
	b.WriteString("\n")
	return b.String()
}

// composeTextHTML renders plain text as HTML: escaped, blank lines make
// paragraphs, single line breaks stay breaks.
func composeTextHTML(text, lang string) string {
	var b strings.Builder
	b.WriteString("<!DOCTYPE html>\n<html")
	if lang != "" {
		b.WriteString(` lang="` + html.EscapeString(lang) + `"`)
	}
	b.WriteString(">\n<head><meta charset=\"utf-8\"></head>\n<body>\n")
	for _, p := range composeParagraphs.Split(text, -1) {
		p = strings.Trim(p, "\n")
		if strings.TrimSpace(p) == "" {
			continue
		}
		b.WriteString("<p>")
		b.WriteString(strings.ReplaceAll(html.EscapeString(p), "\n", "<br>\n"))
		b.WriteString("</p>\n")
	}
	b.WriteString("</body>\n</html>\n")
	return b.String()
}

// composeHTMLNotes adds the attachment notes to an agent's own HTML, in
// its body when it has one.
func composeHTMLNotes(body string, notes []composeNote) string {
	var b strings.Builder
	b.WriteString("<p>")
	for i, n := range notes {
		if i > 0 {
			b.WriteString("<br>\n")
		}
		if n.url != "" {
			b.WriteString(`Attachment: <a href="` + html.EscapeString(n.url) + `">` + html.EscapeString(n.name) + "</a>")
		} else {
			b.WriteString("Attachment not included: " + html.EscapeString(n.name))
		}
	}
	b.WriteString("</p>\n")
	if i := strings.LastIndex(strings.ToLower(body), "</body>"); i >= 0 {
		return body[:i] + b.String() + body[i:]
	}
	return body + "\n" + b.String()
}

// composeAlternatives writes the text and HTML parts and closes w.
func composeAlternatives(w *gomail.InlineWriter, text, htmlBody, lang string) error {
	parts := []struct{ ctype, body string }{{"text/plain", text}, {"text/html", htmlBody}}
	for _, p := range parts {
		var ph gomail.InlineHeader
		ph.SetContentType(p.ctype, map[string]string{"charset": "utf-8"})
		ph.Set("Content-Transfer-Encoding", "quoted-printable")
		if lang != "" {
			ph.Set("Content-Language", lang)
		}
		pw, err := w.CreatePart(ph)
		if err != nil {
			return fmt.Errorf("compose %s part: %w", p.ctype, err)
		}
		if _, err := io.WriteString(pw, p.body); err != nil {
			return fmt.Errorf("compose %s part: %w", p.ctype, err)
		}
		if err := pw.Close(); err != nil {
			return fmt.Errorf("compose %s part: %w", p.ctype, err)
		}
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("compose text parts: %w", err)
	}
	return nil
}

func composeAttach(w *gomail.Writer, a composeAttachment) error {
	var ah gomail.AttachmentHeader
	ah.SetContentType(a.contentType, nil)
	ah.SetFilename(a.name)
	if ah.Get("Content-Disposition") == "" {
		// A name mime cannot format: attach the file nameless rather
		// than not at all.
		ah.Set("Content-Disposition", "attachment")
	}
	pw, err := w.CreateAttachment(ah)
	if err != nil {
		return fmt.Errorf("compose attachment %q: %w", a.name, err)
	}
	if _, err := pw.Write(a.data); err != nil {
		return fmt.Errorf("compose attachment %q: %w", a.name, err)
	}
	if err := pw.Close(); err != nil {
		return fmt.Errorf("compose attachment %q: %w", a.name, err)
	}
	return nil
}
