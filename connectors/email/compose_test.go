package email

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	gomessage "github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/inroute/inroute/blob"
	"github.com/inroute/inroute/message"
)

// composeParsed is a mail as a client reads it: the top header, the MIME
// tree's content types in walk order, and its leaf parts decoded.
type composeParsed struct {
	header gomail.Header
	tree   []string
	parts  []composeParsedPart
}

type composeParsedPart struct {
	contentType, charset, encoding, disposition, filename, language string
	body                                                            []byte
}

// composeParse reads raw with go-message, as a mail client would.
func composeParse(t testing.TB, raw []byte) composeParsed {
	t.Helper()
	e, err := gomessage.Read(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("read mail: %v\n%s", err, raw)
	}
	var p composeParsed
	if err := e.Walk(func(_ []int, e *gomessage.Entity, err error) error {
		if err != nil {
			return err
		}
		ct, _, _ := e.Header.ContentType()
		p.tree = append(p.tree, ct)
		return nil
	}); err != nil {
		t.Fatalf("walk mail: %v", err)
	}
	r, err := gomail.CreateReader(bytes.NewReader(raw))
	if err != nil {
		t.Fatalf("read mail: %v", err)
	}
	p.header = r.Header
	for {
		part, err := r.NextPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("next part: %v", err)
		}
		body, err := io.ReadAll(part.Body)
		if err != nil {
			t.Fatalf("read part: %v", err)
		}
		pp := composeParsedPart{body: body, encoding: part.Header.Get("Content-Transfer-Encoding"), language: part.Header.Get("Content-Language")}
		switch h := part.Header.(type) {
		case *gomail.InlineHeader:
			var params map[string]string
			pp.contentType, params, _ = h.ContentType()
			pp.charset = params["charset"]
			pp.disposition, _, _ = h.ContentDisposition()
			// Quoted-printable carries CRLF line ends; compare text as a
			// client shows it.
			pp.body = bytes.ReplaceAll(pp.body, []byte("\r\n"), []byte("\n"))
		case *gomail.AttachmentHeader:
			pp.contentType, _, _ = h.ContentType()
			pp.disposition, _, _ = h.ContentDisposition()
			pp.filename, _ = h.Filename()
		}
		p.parts = append(p.parts, pp)
	}
	return p
}

// part returns the first leaf part of a content type.
func (p composeParsed) part(t testing.TB, contentType string) composeParsedPart {
	t.Helper()
	for _, pp := range p.parts {
		if pp.contentType == contentType {
			return pp
		}
	}
	t.Fatalf("no %s part; tree %v", contentType, p.tree)
	return composeParsedPart{}
}

// composeCheckWire checks what every mail on the wire must be: CRLF line
// endings, lines of at most 998 octets, and (everything encoded) 7-bit.
func composeCheckWire(t testing.TB, raw []byte) {
	t.Helper()
	for i, line := range bytes.Split(raw, []byte("\r\n")) {
		if bytes.ContainsAny(line, "\r\n") {
			t.Fatalf("line %d has a bare CR or LF: %q", i+1, line)
		}
		if len(line) > 998 {
			t.Fatalf("line %d is %d octets long", i+1, len(line))
		}
		for _, c := range line {
			if c >= 0x80 {
				t.Fatalf("line %d is not 7-bit: %q", i+1, line)
			}
		}
	}
}

var composeDate = time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)

func composeReply() *message.Outbound {
	return &message.Outbound{V: 1, ID: "01JREPLY", ConversationID: 42, Channel: message.Email, To: "李伟 <li@example.com>",
		From: "help@wallet.example", Subject: "Re: 退款 not received [#42]", Text: "Hello", Agent: "ann", CreatedAt: composeDate}
}

func TestComposeHeaders(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		edit   func(o *message.Outbound, in *composeInput)
		header map[string]string // "" means absent
		msgID  string
		refs   []string
	}{
		{
			name:   "generated Message-ID from the reply id and the From domain",
			header: map[string]string{"Auto-Submitted": "", "X-Auto-Response-Suppress": "", "In-Reply-To": "", "References": "", "Content-Language": ""},
			msgID:  "<01JREPLY@wallet.example>",
		},
		{
			name:  "generated Message-ID with the configured domain",
			edit:  func(_ *message.Outbound, in *composeInput) { in.Domain = "mail.inroute.example" },
			msgID: "<01JREPLY@mail.inroute.example>",
		},
		{
			name:  "an id that cannot stand in a Message-ID is hex-encoded",
			edit:  func(o *message.Outbound, _ *composeInput) { o.ID = "a b<c>" },
			msgID: "<x6120623c633e@wallet.example>",
		},
		{
			name: "stored thread",
			edit: func(o *message.Outbound, _ *composeInput) {
				o.Thread = message.Thread{MessageID: "<r1.42@wallet.example>", InReplyTo: "<a1@mail.example.com>",
					References: []string{"<a0@mail.example.com>", "<a1@mail.example.com>"}}
				o.Language = "zh-CN"
			},
			header: map[string]string{"In-Reply-To": "<a1@mail.example.com>", "Content-Language": "zh-CN"},
			msgID:  "<r1.42@wallet.example>",
			refs:   []string{"a0@mail.example.com", "a1@mail.example.com"},
		},
		{
			name: "thread ids without brackets, references in one string",
			edit: func(o *message.Outbound, _ *composeInput) {
				o.Thread = message.Thread{MessageID: "r1@wallet.example", InReplyTo: "a1@mail.example.com",
					References: []string{"<a0@mail.example.com> <a1@mail.example.com>"}}
			},
			header: map[string]string{"In-Reply-To": "<a1@mail.example.com>"},
			msgID:  "<r1@wallet.example>",
			refs:   []string{"a0@mail.example.com", "a1@mail.example.com"},
		},
		{
			name:   "auto-reply",
			edit:   func(o *message.Outbound, _ *composeInput) { o.Auto = true },
			header: map[string]string{"Auto-Submitted": "auto-replied", "X-Auto-Response-Suppress": "All"},
			msgID:  "<01JREPLY@wallet.example>",
		},
		{
			name: "line breaks cannot add headers",
			edit: func(o *message.Outbound, _ *composeInput) {
				o.Subject = "Hi\r\nBcc: evil@example.com"
				o.Language = "en\r\nBcc: evil@example.com"
			},
			header: map[string]string{"Bcc": "", "Content-Language": "", "Subject": "Hi Bcc: evil@example.com"},
			msgID:  "<01JREPLY@wallet.example>",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := composeReply()
			in := composeInput{From: "Wallet Help <help@wallet.example>", Date: composeDate}
			if tc.edit != nil {
				tc.edit(o, &in)
			}
			c, err := composeMail(o, in)
			if err != nil {
				t.Fatal(err)
			}
			composeCheckWire(t, c.Raw)
			p := composeParse(t, c.Raw)
			h := p.header
			if c.MessageID != tc.msgID || h.Get("Message-Id") != tc.msgID {
				t.Errorf("Message-ID %q (header %q), want %q", c.MessageID, h.Get("Message-Id"), tc.msgID)
			}
			from, err := h.AddressList("From")
			if err != nil || len(from) != 1 || from[0].Name != "Wallet Help" || from[0].Address != "help@wallet.example" {
				t.Errorf("From %v (%v)", from, err)
			}
			to, err := h.AddressList("To")
			if err != nil || len(to) != 1 || to[0].Name != "李伟" || to[0].Address != "li@example.com" {
				t.Errorf("To %v (%v)", to, err)
			}
			if d, err := h.Date(); err != nil || !d.Equal(composeDate) {
				t.Errorf("Date %v (%v)", d, err)
			}
			if tc.header["Subject"] == "" {
				if s, err := h.Subject(); err != nil || s != o.Subject {
					t.Errorf("Subject %q (%v), want %q", s, err, o.Subject)
				}
			}
			for k, want := range tc.header {
				if k == "Subject" {
					if s, _ := h.Subject(); s != want {
						t.Errorf("Subject %q, want %q", s, want)
					}
					continue
				}
				if got := h.Get(k); got != want {
					t.Errorf("%s %q, want %q", k, got, want)
				}
			}
			refs, err := h.MsgIDList("References")
			if err != nil || strings.Join(refs, " ") != strings.Join(tc.refs, " ") {
				t.Errorf("References %v (%v), want %v", refs, err, tc.refs)
			}
		})
	}
}

func TestComposeBody(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("退款 refund ", 40) // one line far past 76 octets
	tests := []struct {
		name      string
		text      string
		html      string
		lang      string
		wantHTML  []string
		wantPlain string
	}{
		{
			name:      "text becomes escaped HTML with paragraphs and breaks",
			text:      "Hello <Li> & co,\r\n\r\nline one\nline two\n\n\nBye",
			wantPlain: "Hello <Li> & co,\n\nline one\nline two\n\n\nBye",
			wantHTML:  []string{"<p>Hello &lt;Li&gt; &amp; co,</p>", "<p>line one<br>\nline two</p>", "<p>Bye</p>"},
		},
		{
			name:      "the language marks the HTML",
			text:      "您好",
			lang:      "zh-Hans",
			wantPlain: "您好",
			wantHTML:  []string{`<html lang="zh-Hans">`, "<p>您好</p>"},
		},
		{
			name:      "long lines survive quoted-printable",
			text:      long,
			wantPlain: long,
			wantHTML:  []string{"<p>" + long + "</p>"},
		},
		{
			name:      "the agent's HTML is sent as written",
			text:      "plain",
			html:      "<p><b>rich</b></p>",
			wantPlain: "plain",
			wantHTML:  []string{"<p><b>rich</b></p>"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := composeReply()
			o.Text, o.HTML, o.Language = tc.text, tc.html, tc.lang
			c, err := composeMail(o, composeInput{From: "help@wallet.example", Date: composeDate})
			if err != nil {
				t.Fatal(err)
			}
			composeCheckWire(t, c.Raw)
			p := composeParse(t, c.Raw)
			if strings.Join(p.tree, " ") != "multipart/alternative text/plain text/html" {
				t.Errorf("MIME tree %v", p.tree)
			}
			plain := p.part(t, "text/plain")
			if string(plain.body) != tc.wantPlain {
				t.Errorf("text/plain %q, want %q", plain.body, tc.wantPlain)
			}
			for _, pp := range p.parts {
				if pp.charset != "utf-8" || pp.encoding != "quoted-printable" {
					t.Errorf("%s charset %q encoding %q", pp.contentType, pp.charset, pp.encoding)
				}
				if pp.language != tc.lang {
					t.Errorf("%s Content-Language %q, want %q", pp.contentType, pp.language, tc.lang)
				}
			}
			html := string(p.part(t, "text/html").body)
			for _, want := range tc.wantHTML {
				if !strings.Contains(html, want) {
					t.Errorf("text/html lacks %q:\n%s", want, html)
				}
			}
		})
	}
}

func TestComposeAttachments(t *testing.T) {
	t.Parallel()
	blobs, err := blob.Open(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	pdf := []byte("%PDF-1.4 receipt \x00\x01\x02\xff")
	ref, _, err := blobs.Put(bytes.NewReader(pdf))
	if err != nil {
		t.Fatal(err)
	}
	gone := "sha256:" + strings.Repeat("ab", 32) // well-formed, never stored
	atts := []message.Attachment{
		{Name: "收据.pdf", ContentType: "application/pdf", URL: ref},
		{Name: "menu.pdf", URL: "https://cdn.example.com/menu.pdf"},
		{Name: "../photo.png", URL: gone},
	}
	tests := []struct {
		name      string
		blobs     *blob.Dir
		html      string
		tree      string
		attached  bool
		notes     []string
		htmlNotes []string
		omitted   int
	}{
		{
			name:     "blob attached, link and unreadable blob named",
			blobs:    blobs,
			tree:     "multipart/mixed multipart/alternative text/plain text/html application/pdf",
			attached: true,
			notes:    []string{"[Attachment: menu.pdf https://cdn.example.com/menu.pdf]", "[Attachment not included: photo.png]"},
			omitted:  1,
		},
		{
			name:  "no blob store: every file named",
			tree:  "multipart/alternative text/plain text/html",
			notes: []string{"[Attachment: menu.pdf https://cdn.example.com/menu.pdf]", "[Attachment not included: 收据.pdf]", "[Attachment not included: photo.png]"},
			// The two blob references.
			omitted: 2,
		},
		{
			name:      "notes go into the agent's HTML body",
			blobs:     blobs,
			html:      "<html><body><p>See attached.</p></body></html>",
			tree:      "multipart/mixed multipart/alternative text/plain text/html application/pdf",
			attached:  true,
			notes:     []string{"[Attachment not included: photo.png]"},
			htmlNotes: []string{`Attachment: <a href="https://cdn.example.com/menu.pdf">menu.pdf</a>`, "Attachment not included: photo.png</p>\n</body></html>"},
			omitted:   1,
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			o := composeReply()
			o.Text, o.HTML, o.Attachments = "Your receipt.", tc.html, atts
			c, err := composeMail(o, composeInput{From: "help@wallet.example", Date: composeDate, Blobs: tc.blobs})
			if err != nil {
				t.Fatal(err)
			}
			composeCheckWire(t, c.Raw)
			p := composeParse(t, c.Raw)
			if got := strings.Join(p.tree, " "); got != tc.tree {
				t.Errorf("MIME tree %q, want %q", got, tc.tree)
			}
			if len(c.Omitted) != tc.omitted {
				t.Errorf("omitted %q, want %d", c.Omitted, tc.omitted)
			}
			text := string(p.part(t, "text/plain").body)
			html := string(p.part(t, "text/html").body)
			for _, n := range tc.notes {
				if !strings.Contains(text, n) {
					t.Errorf("text lacks %q:\n%s", n, text)
				}
			}
			for _, n := range tc.htmlNotes {
				if !strings.Contains(html, n) {
					t.Errorf("html lacks %q:\n%s", n, html)
				}
			}
			if !tc.attached {
				return
			}
			a := p.part(t, "application/pdf")
			if a.disposition != "attachment" || a.filename != "收据.pdf" || !bytes.Equal(a.body, pdf) {
				t.Errorf("attachment %s %q %q, %d bytes", a.disposition, a.filename, a.encoding, len(a.body))
			}
		})
	}
}

func TestComposeRefusesBadAddresses(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ from, to string }{
		{"help@wallet.example", "+15550001111"},
		{"help@wallet.example", ""},
		{"not an address", "li@example.com"},
	} {
		o := composeReply()
		o.To = tc.to
		if _, err := composeMail(o, composeInput{From: tc.from, Date: composeDate}); err == nil {
			t.Errorf("from %q to %q composed", tc.from, tc.to)
		}
	}
}
