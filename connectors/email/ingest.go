package email

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/connectors/email/parse"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/outbox"
	"go.uber.org/zap"
)

// Extra keys the connector sets on a message (docs/message.md), besides
// message.ExtraQueueHint and message.ExtraAutomaticReason.
const (
	ExtraMailbox         = "mailbox"
	ExtraIMAPUID         = "imap_uid"
	ExtraFullText        = "full_text"
	ExtraProblems        = "problems"
	ExtraDropped         = "attachments_dropped"
	ExtraOversize        = "oversize"
	ExtraBounceStatus    = "bounce_status"
	ExtraBounceRecipient = "bounce_recipient"
)

// source is one mail as read from a mailbox.
type source struct {
	uidValidity, uid uint32
	raw              []byte
	// size is set when raw holds only the headers of a mail this large.
	size int64
}

// ingest hands one mail to the bus. A mail that cannot become a message
// goes to the quarantine instead, and counts as handled: the mailbox
// moves on. Only a bus failure returns an error (the mail is read again).
func (c *Connector) ingest(ctx context.Context, mb config.Mailbox, q *Quarantine, src source, log *zap.Logger) error {
	m, bounce, err := c.build(mb, src)
	if err == nil {
		_, _, err = c.pub.Publish(ctx, m)
		// Invalid or too large, the same mail fails the same way every
		// time: retrying would stop the mailbox on it for good.
		if err != nil && !errors.Is(err, message.ErrInvalid) && !errors.Is(err, bus.ErrTooLarge) {
			return fmt.Errorf("publish mail uid %d: %w", src.uid, err)
		}
	}
	if err != nil {
		item := Quarantined{Mailbox: mb.Name, Address: mb.Address, UIDValidity: src.uidValidity, UID: src.uid, Error: err.Error(),
			At: c.opt.Now().UTC()}
		if qerr := q.Put(ctx, item, src.raw); qerr != nil {
			return fmt.Errorf("quarantine mail uid %d: %w", src.uid, qerr)
		}
		log.Warn("mail quarantined", zap.Uint32("uid", src.uid), zap.Error(err))
		return nil
	}
	log.Debug("mail published", zap.Uint32("uid", src.uid), zap.String("message_id", m.ID),
		zap.String("automatic", string(m.Automatic)))
	if bounce != nil {
		c.reportBounce(ctx, *bounce, log)
	}
	return nil
}

// build turns a raw mail into the normalized message. The error means the
// mail cannot be used (it is quarantined).
func (c *Connector) build(mb config.Mailbox, src source) (*message.Message, *parse.Bounce, error) {
	var pm *parse.Mail
	var err error
	if src.size > 0 {
		pm, err = parse.ParseHeader(src.raw)
	} else {
		pm, err = parse.Parse(src.raw, parse.Options{MaxAttachmentSize: c.opt.MaxAttachmentSize})
	}
	if err != nil {
		return nil, nil, err
	}
	key := pm.MessageID
	if key == "" || len(key) > message.MaxChannelIDBytes {
		// No usable Message-ID: the bytes identify the mail, so the same
		// mail read twice is still one message.
		sum := sha256.Sum256(src.raw)
		key = "sha256:" + hex.EncodeToString(sum[:])
	}
	m := &message.Message{
		ID: message.NewID(), Channel: message.Email, ChannelMessageID: key, ReceivedAt: c.opt.Now().UTC(),
		From: message.Party{Address: pm.From.Address, Name: pm.From.Name, Email: pm.From.Address},
		To:   message.Party{Address: mb.Address}, Subject: pm.Subject, Text: pm.Text, HTML: pm.HTML,
		Thread:   message.Thread{MessageID: pm.MessageID, InReplyTo: pm.InReplyTo, References: pm.References},
		Language: pm.Language, Automatic: pm.Automatic,
		Extra: map[string]string{ExtraMailbox: mb.Name, ExtraIMAPUID: fmt.Sprintf("%d/%d", src.uidValidity, src.uid)},
	}
	if m.Text == "" {
		m.Text = pm.FullText
	}
	if pm.FullText != "" && pm.FullText != m.Text {
		m.Extra[ExtraFullText] = pm.FullText
	}
	if mb.Queue != "" {
		m.Extra[message.ExtraQueueHint] = mb.Queue
	}
	group := groupList(pm.ListID, mb.Address)
	if m.Automatic == message.Bulk && group {
		// A group address (a Google Group as support@) marks every mail
		// it forwards as list mail: that is the customer writing to us.
		m.Automatic, pm.AutoReason = "", ""
	}
	if group && c.ours[pm.From.Address] && len(pm.ReplyTo) > 0 && !c.ours[pm.ReplyTo[0].Address] {
		// A group rewrites From to itself when the sender's domain asks
		// for DMARC rejection ("X via Support"); Reply-To keeps the sender.
		m.From = message.Party{Address: pm.ReplyTo[0].Address, Name: pm.ReplyTo[0].Name, Email: pm.ReplyTo[0].Address}
		pm.From = pm.ReplyTo[0]
	}
	if pm.AutoReason != "" {
		m.Extra[message.ExtraAutomaticReason] = pm.AutoReason
	}
	switch {
	case c.ours[pm.From.Address]:
		m.Automatic, m.Extra[message.ExtraAutomaticReason] = message.Loop, "sent from our own address "+pm.From.Address
	case c.isOurs(pm.MessageID):
		m.Automatic, m.Extra[message.ExtraAutomaticReason] = message.Loop, "our own reply "+pm.MessageID
	}
	var bounce *parse.Bounce
	if b := pm.Bounce; b != nil {
		m.Extra[ExtraBounceStatus] = strings.TrimSpace(b.Action + " " + b.Status)
		m.Extra[ExtraBounceRecipient] = b.Recipient
		if b.OriginalMessageID != "" && !slices.Contains(m.Thread.References, b.OriginalMessageID) {
			// The bounce is about our reply: this threads it there (the
			// oldest reference gives way if the list is full).
			if len(m.Thread.References) >= maxReferences {
				m.Thread.References = m.Thread.References[len(m.Thread.References)-maxReferences+1:]
			}
			m.Thread.References = append(m.Thread.References, b.OriginalMessageID)
		}
		// Anyone can send a multipart/report; only the mail system's own
		// (a null sender or a mailer daemon) may fail a reply.
		if (strings.EqualFold(b.Action, "failed") || strings.HasPrefix(b.Status, "5")) && (pm.NullSender || daemon(pm.From.Address)) {
			bounce = b
		}
	}
	if src.size > 0 {
		m.Extra[ExtraOversize] = fmt.Sprint(src.size)
		m.Text = fmt.Sprintf("[This mail is %s, above the %s limit: only its headers were read. It stays in the mailbox %s.]",
			config.ByteSize(src.size), config.ByteSize(c.opt.MaxSize), mb.Address)
	}
	var dropped []string
	for _, a := range pm.Attachments {
		if a.Data == nil || c.opt.Blobs == nil {
			why := a.Dropped
			if why == "" {
				why = "not kept: no attachment store"
			}
			dropped = append(dropped, fmt.Sprintf("%s (%s)", a.Name, why))
			continue
		}
		ref, size, err := c.opt.Blobs.Put(bytes.NewReader(a.Data))
		if err != nil {
			dropped = append(dropped, fmt.Sprintf("%s (%v)", a.Name, err))
			continue
		}
		m.Attachments = append(m.Attachments, message.Attachment{Name: a.Name, ContentType: a.ContentType, Size: size, URL: ref})
	}
	if len(dropped) > 0 {
		m.Extra[ExtraDropped] = strings.Join(dropped, "; ")
	}
	problems := pm.Problems
	c.fit(m, &problems)
	if len(problems) > 0 {
		m.Extra[ExtraProblems] = strings.Join(problems, "; ")
	}
	return m, bounce, nil
}

// fit keeps the encoded message within the bus's largest payload: the
// full text goes first, then the HTML, and last the text is cut (JSON
// writes "<", ">", "&" and control characters six bytes each, so 256 KiB
// of text can take 1.5 MB).
func (c *Connector) fit(m *message.Message, problems *[]string) {
	limit := int(c.b.NC.MaxPayload()) - 16<<10
	size := func() int { data, _ := json.Marshal(m); return len(data) }
	if size() <= limit {
		return
	}
	if _, ok := m.Extra[ExtraFullText]; ok {
		delete(m.Extra, ExtraFullText)
		*problems = append(*problems, "full text left out: the message is too large for the bus")
		if size() <= limit {
			return
		}
	}
	if m.HTML != "" {
		m.HTML = ""
		*problems = append(*problems, "HTML left out: the message is too large for the bus")
		if size() <= limit {
			return
		}
	}
	for n := 0; size() > limit && m.Text != "" && n < 20; n++ {
		over := size() - limit
		cut := max(len(m.Text)-over, len(m.Text)/2)
		for cut > 0 && !utf8.RuneStart(m.Text[cut]) {
			cut--
		}
		m.Text = m.Text[:cut]
	}
	*problems = append(*problems, "text cut: the message is too large for the bus")
}

// isOurs reports whether msgID is one inroute made for a reply: a ULID at
// one of our domains (a customer's mailer may use ULIDs too).
func (c *Connector) isOurs(msgID string) bool {
	if _, ok := outbox.ReplyIDFromMessageID(msgID); !ok {
		return false
	}
	_, d, _ := strings.Cut(strings.Trim(strings.TrimSpace(msgID), "<>"), "@")
	return c.domains[strings.ToLower(d)]
}

// reportBounce marks the reply a bounce is about as failed.
func (c *Connector) reportBounce(ctx context.Context, b parse.Bounce, log *zap.Logger) {
	id, ok := outbox.ReplyIDFromMessageID(b.OriginalMessageID)
	if !ok || !c.isOurs(b.OriginalMessageID) {
		return
	}
	detail := strings.TrimSpace(strings.Join([]string{"bounced:", b.Status, b.Diagnostic}, " "))
	if b.Recipient != "" {
		detail += " (" + b.Recipient + ")"
	}
	data, _ := json.Marshal(message.Delivery{V: message.OutboundVersion, MessageID: id, Channel: message.Email, Status: message.DeliveryFailed,
		Detail: detail, ChannelMessageID: b.OriginalMessageID, At: c.opt.Now().UTC()})
	if _, err := c.b.Publish(ctx, bus.DeliverySubject(message.Email), data, "bounce:"+id, nil); err != nil {
		// The bounce itself is recorded in the conversation; only the
		// reply's status stays behind.
		log.Warn("bounce not reported as a delivery failure", zap.String("reply_id", id), zap.Error(err))
	}
}

// groupList reports whether a List-Id names the mailbox itself: groups
// write the address with its "@" as a dot ("Support <support.example.com>").
func groupList(listID, address string) bool {
	if listID == "" || address == "" {
		return false
	}
	id := strings.ToLower(strings.TrimSpace(listID))
	if i := strings.LastIndexByte(id, '<'); i >= 0 {
		id = strings.TrimSuffix(id[i+1:], ">")
	}
	return id == strings.Replace(address, "@", ".", 1) || id == address
}

// maxReferences is message.Validate's bound on thread references.
const maxReferences = 100

// daemon reports whether addr is a mail system's own sender.
func daemon(addr string) bool {
	local, _, _ := strings.Cut(addr, "@")
	switch local {
	case "mailer-daemon", "mailer_daemon", "mailerdaemon", "postmaster":
		return true
	}
	return false
}
