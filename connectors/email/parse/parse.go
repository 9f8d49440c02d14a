// Package parse turns one raw RFC 5322 mail into the fields inroute needs:
// addresses, threading ids, the customer's new text, the HTML kept for
// display, attachments, and whether a machine wrote the mail (auto-reply,
// bounce, bulk).
//
// Mail in the wild is often broken, and a customer's mail that cannot be
// read is a customer nobody answers. So Parse refuses a mail only when it
// cannot become a message at all (no header block, nobody to answer); every
// other defect is salvaged and reported in Mail.Problems. The MIME structure
// is read with go-message; transfer encodings and charsets are decoded here,
// leniently, because that is where real mail breaks.
package parse

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/inroute/inroute/message"
)

// ErrUnusable wraps every error Parse returns: the mail cannot become a
// message (the connector quarantines it).
var ErrUnusable = errors.New("unusable mail")

// Options bounds what Parse keeps of a mail.
type Options struct {
	// MaxAttachmentSize is the limit per attachment; larger ones are listed
	// with Data nil and Dropped set. 0 means no limit.
	MaxAttachmentSize int64
	// MaxAttachments is how many attachments are kept; 0 means
	// message.MaxAttachments. The rest are left out and a Problem says so.
	MaxAttachments int
}

// Address is one mailbox. Address is lower-cased so that it can be compared.
type Address struct{ Name, Address string }

// Attachment is a file that came with the mail.
type Attachment struct {
	// Name is the decoded file name (RFC 2047 and RFC 2231); for a part
	// without one, a name like "part-2.pdf" made from the type.
	Name string
	// ContentType is the media type only, e.g. "application/pdf".
	ContentType string
	// Size is the decoded size in bytes, also for dropped ones.
	Size int64
	// Data is nil when Dropped.
	Data []byte
	// Inline is an image shown in the HTML body (Content-ID, not a
	// Content-Disposition attachment).
	Inline bool
	// ContentID is the Content-ID without angle brackets: the form an HTML
	// body refers to it by ("cid:...").
	ContentID string
	// Dropped says why the bytes were not kept, e.g. "larger than 10 MiB".
	Dropped string
}

// Bounce is what a delivery status notification says about mail we sent.
type Bounce struct {
	// OriginalMessageID is the Message-ID of the mail that bounced, in
	// "<...>" form.
	OriginalMessageID string
	// Recipient is the address that could not be reached.
	Recipient string
	// Action is the DSN action: failed, delayed, delivered, relayed, expanded.
	Action string
	// Status is the enhanced status code, e.g. "5.1.1".
	Status string
	// Diagnostic is the Diagnostic-Code text, e.g. "smtp; 550 5.1.1 user unknown".
	Diagnostic string
}

// Mail is one parsed mail.
type Mail struct {
	// MessageID, InReplyTo and References keep the "<id@host>" form.
	MessageID string
	InReplyTo string
	// References are in header order, at most the last 100.
	References []string
	From       Address
	ReplyTo    []Address
	To, Cc     []Address
	Subject    string
	// Date is zero if the header is absent or unreadable.
	Date time.Time
	// Language is the Content-Language tag, if any.
	Language string
	// NullSender: Return-Path is <>, as on bounces and other mail the
	// mail system itself sends.
	NullSender bool
	// ListID is the List-Id header: a mailing list (or a group address,
	// such as a Google Group used as the support address) forwarded it.
	ListID string
	// Text is what routing rules read: the new text only, quoted history
	// and signature stripped.
	Text string
	// FullText is the whole plain-text body (or the text made from the
	// HTML) as the customer sent it.
	FullText string
	// HTML is the HTML body, decoded to UTF-8, kept for display.
	HTML        string
	Attachments []Attachment
	// Automatic is set when a machine wrote the mail; AutoReason names the
	// header or sign that decided it.
	Automatic  message.Automatic
	AutoReason string
	// Bounce is set for delivery status notifications.
	Bounce *Bounce
	// Problems lists what was wrong with the mail but salvaged.
	Problems []string
}

// Limits that keep hostile input from costing more than a normal mail.
const (
	maxDepth    = 30   // MIME nesting
	maxParts    = 500  // MIME parts in one mail
	maxProblems = 20   // a fuzzed mail can have thousands
	maxShort    = 1024 // message.Validate's bound on subject, names and ids
	maxRefs     = 100
	// Text parts are read up to a few times the stored limit: a charset
	// can shrink the bytes and quoted history is cut off afterwards.
	maxTextRead = 4 * message.MaxTextBytes
	maxHTMLRead = 4 * message.MaxHTMLBytes
)

// recoverPanics is switched off by the fuzz tests so that a bug shows as a
// crash there instead of an ErrUnusable.
var recoverPanics = true

// Parse reads a whole mail. It never panics, whatever the input.
func Parse(raw []byte, opt Options) (m *Mail, err error) {
	if recoverPanics {
		defer func() {
			if r := recover(); r != nil {
				m, err = nil, fmt.Errorf("%w: parser failure: %v", ErrUnusable, r)
			}
		}()
	}
	h, body, problems, err := readHeader(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnusable, err)
	}
	m = &Mail{}
	pr := &problemList{}
	pr.add(problems...)
	fallback := sniffCharset(raw)
	if err := fillHeaders(m, h, fallback, pr); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnusable, err)
	}

	w := newWalker(opt, fallback, pr)
	c := w.entity(h, body, 0, partContext{})
	if w.dropped > 0 {
		pr.add(fmt.Sprintf("%d attachments left out: more than %d", w.dropped, w.maxAtt))
	}
	m.Attachments = w.attachments
	if m.Language == "" {
		m.Language = w.language
	}

	// Many body parts add up; what is kept is bounded anyway, and the
	// work on it should be too.
	html := truncate(joinParts(c.html, "\n"), maxHTMLRead, "html parts", pr)
	plain := cleanText(truncate(joinParts(c.plain, "\n"), maxTextRead, "text parts", pr))
	if isBlank(plain) && html != "" {
		plain = cleanText(HTMLText(html))
	}
	m.FullText = trimBlankLines(plain)
	m.Text = StripQuoted(m.FullText)
	m.Text = truncate(m.Text, message.MaxTextBytes, "text", pr)
	m.FullText = truncate(m.FullText, message.MaxTextBytes, "full text", pr)
	m.HTML = truncate(stripNUL(html), message.MaxHTMLBytes, "html", pr)

	classify(m, h, &w.report, pr)
	m.Problems = pr.list()
	return m, nil
}

// ParseHeader reads only a header block (for mail too large to fetch whole):
// everything Parse fills from headers, no body.
func ParseHeader(raw []byte) (m *Mail, err error) {
	if recoverPanics {
		defer func() {
			if r := recover(); r != nil {
				m, err = nil, fmt.Errorf("%w: parser failure: %v", ErrUnusable, r)
			}
		}()
	}
	h, _, problems, err := readHeader(raw)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnusable, err)
	}
	m = &Mail{}
	pr := &problemList{}
	pr.add(problems...)
	if err := fillHeaders(m, h, sniffCharset(raw), pr); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrUnusable, err)
	}
	var rep reportInfo
	mt, params := parseParams(h.Get("Content-Type"))
	if mt == "multipart/report" {
		rep.reportType = strings.ToLower(params["report-type"])
	}
	classify(m, h, &rep, pr)
	m.Problems = pr.list()
	return m, nil
}

// problemList collects non-fatal problems, once each and not too many.
type problemList struct {
	items []string
	seen  map[string]bool
	more  int
}

func (p *problemList) add(items ...string) {
	for _, s := range items {
		// Problems quote the mail's own bytes in places.
		s = clip(cleanHeaderText(s), 300)
		if s == "" || p.seen[s] {
			continue
		}
		if len(p.items) >= maxProblems {
			p.more++
			continue
		}
		if p.seen == nil {
			p.seen = map[string]bool{}
		}
		p.seen[s] = true
		p.items = append(p.items, s)
	}
}

func (p *problemList) list() []string {
	if p.more > 0 {
		return append(p.items, fmt.Sprintf("%d more problems not listed", p.more))
	}
	return p.items
}
