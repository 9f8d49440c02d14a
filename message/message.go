// Package message defines inroute's normalized message: the one shape every
// connector turns its channel's input into before it goes on the bus.
//
// The wire form is JSON with a version field ("v"). Version 1 is documented
// field by field in docs/message.md. Decode reads every version inroute ever
// wrote, so a message stored or replayed from an old stream stays readable.
package message

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/oklog/ulid/v2"
)

// Version is the version Encode writes.
const Version = 1

// Limits that keep one message from dominating a stream or a store row.
const (
	MaxTextBytes        = 256 << 10
	MaxHTMLBytes        = 1 << 20
	MaxAttachments      = 50
	MaxChannelIDBytes   = 512
	maxShortFieldBytes  = 1024
	maxExtraEntries     = 64
	maxThreadReferences = 100
)

// Sentinel errors callers act on.
var (
	// ErrUnsupportedVersion means the payload names a version this build
	// cannot read; the router dead-letters it instead of guessing.
	ErrUnsupportedVersion = errors.New("unsupported message version")
	// ErrInvalid wraps every validation failure.
	ErrInvalid = errors.New("invalid message")
)

// Channel is where a customer wrote in.
type Channel string

// The channels, in the order the design names them.
const (
	Email     Channel = "email"
	SMS       Channel = "sms"
	Voice     Channel = "voice"
	Telegram  Channel = "telegram"
	Messenger Channel = "messenger"
	WeChat    Channel = "wechat"
	WebChat   Channel = "webchat"
	App       Channel = "app"
)

// Channels lists every known channel.
var Channels = []Channel{Email, SMS, Voice, Telegram, Messenger, WeChat, WebChat, App}

// Valid reports whether c is a known channel.
func (c Channel) Valid() bool {
	for _, k := range Channels {
		if c == k {
			return true
		}
	}
	return false
}

// Message is the normalized inbound message, version 1.
type Message struct {
	// V is the payload version; Encode always writes Version.
	V int `json:"v"`
	// ID is inroute's own id: a ULID, so ids sort by creation time.
	ID string `json:"id"`
	// Channel the customer used.
	Channel Channel `json:"channel"`
	// ChannelMessageID is the channel's own id for this message (Twilio
	// MessageSid, Telegram update_id, IMAP UIDVALIDITY/UID or Message-ID,
	// the app's message_id). It is the dedupe key.
	ChannelMessageID string `json:"channel_message_id"`
	// ReceivedAt is when inroute accepted the message (UTC).
	ReceivedAt time.Time `json:"received_at"`
	// From is the customer.
	From Party `json:"from"`
	// To is our side: the mailbox, number, bot or app written to.
	To Party `json:"to,omitzero"`
	// Subject is the e-mail subject, when the channel has one.
	Subject string `json:"subject,omitempty"`
	// Text is the plain text that rules read.
	Text string `json:"text"`
	// HTML is the original HTML body, kept for display.
	HTML string `json:"html,omitempty"`
	// Attachments lists files that came with the message (metadata only).
	Attachments []Attachment `json:"attachments,omitempty"`
	// Thread carries the hints that join a message to a conversation.
	Thread Thread `json:"thread,omitzero"`
	// Language is a BCP 47 tag when the channel or connector knows it.
	Language string `json:"language,omitempty"`
	// Extra holds channel-specific values: call status, recording URL,
	// transcription, and so on. Keys are documented per connector.
	Extra map[string]string `json:"extra,omitempty"`
	// Automatic says a machine wrote the message, not the customer: an
	// auto-reply, a bounce, bulk mail. It is recorded against the
	// conversation it refers to but never routed as new work, and never
	// answered automatically. Empty for a person's message.
	Automatic Automatic `json:"automatic,omitempty"`
}

// Extra keys that mean the same on every channel; each connector
// documents its own others.
const (
	// ExtraQueueHint is a queue the connector suggests (an e-mail
	// mailbox's queue setting); the rules use it when no topic matched.
	ExtraQueueHint = "queue_hint"
	// ExtraAutomaticReason says what gave a machine-written message away
	// ("Auto-Submitted: auto-replied"); the routing explanation quotes it.
	ExtraAutomaticReason = "automatic_reason"
)

// Automatic is the kind of a machine-written message.
type Automatic string

// The kinds of machine-written messages.
const (
	// AutoReply: an out-of-office or other auto-responder answer
	// (Auto-Submitted: auto-replied, X-Autoreply, ...).
	AutoReply Automatic = "auto-reply"
	// Bounce: a delivery status notification about mail we sent.
	Bounce Automatic = "bounce"
	// Bulk: list or bulk mail (Precedence: bulk/list/junk, List-Id with
	// Auto-Submitted), not a customer writing to us.
	Bulk Automatic = "bulk"
	// Loop: mail that came from inroute itself (one of our own
	// addresses, or our own Message-ID), seen again.
	Loop Automatic = "loop"
)

// Valid reports whether a is a known kind (or empty).
func (a Automatic) Valid() bool {
	switch a {
	case "", AutoReply, Bounce, Bulk, Loop:
		return true
	}
	return false
}

// Party is one end of a message. Address is the channel's own address of
// the party (e-mail address, E.164 phone number, chat or app user id); Email
// and Phone are further identities the channel vouches for, which the store
// uses to recognise one contact across channels.
type Party struct {
	Address string `json:"address"`
	Name    string `json:"name,omitempty"`
	Email   string `json:"email,omitempty"`
	Phone   string `json:"phone,omitempty"`
	// EmailVerified and PhoneVerified say the channel checked them (the
	// app confirmed the phone by SMS code, say). Only verified identities
	// join contacts into one customer.
	EmailVerified bool `json:"email_verified,omitempty"`
	PhoneVerified bool `json:"phone_verified,omitempty"`
}

// Attachment describes a file; the bytes live elsewhere (URL or blob ref).
type Attachment struct {
	Name        string `json:"name,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Size        int64  `json:"size,omitempty"`
	// URL is where the file can be fetched (the channel's URL or, once
	// stored, inroute's blob reference).
	URL string `json:"url,omitempty"`
}

// Thread holds threading hints.
type Thread struct {
	// MessageID, InReplyTo and References are the e-mail headers.
	MessageID  string   `json:"message_id,omitempty"`
	InReplyTo  string   `json:"in_reply_to,omitempty"`
	References []string `json:"references,omitempty"`
	// ChatID is the chat or conversation id on chat channels.
	ChatID string `json:"chat_id,omitempty"`
}

// NewID returns a new inroute message id (a ULID: sortable by time, unique).
func NewID() string { return ulid.Make().String() }

// DedupeKey is the JetStream Nats-Msg-Id for m: the channel and the
// channel's own id, so a retried delivery is a duplicate, not a second
// message.
func (m *Message) DedupeKey() string {
	return string(m.Channel) + ":" + m.ChannelMessageID
}

// Validate checks m against the v1 rules. Errors wrap ErrInvalid.
func (m *Message) Validate() error {
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	if m.V != Version {
		bad("v is %d, want %d", m.V, Version)
	}
	if _, err := ulid.ParseStrict(m.ID); err != nil {
		bad("id %q is not a ULID", m.ID)
	}
	if !m.Channel.Valid() {
		bad("unknown channel %q", m.Channel)
	}
	switch {
	case strings.TrimSpace(m.ChannelMessageID) == "":
		bad("channel_message_id is empty")
	case len(m.ChannelMessageID) > MaxChannelIDBytes:
		bad("channel_message_id is longer than %d bytes", MaxChannelIDBytes)
	}
	if m.ReceivedAt.IsZero() {
		bad("received_at is missing")
	}
	if strings.TrimSpace(m.From.Address) == "" {
		bad("from.address is empty")
	}
	if m.Text == "" && m.HTML == "" && len(m.Attachments) == 0 && len(m.Extra) == 0 {
		bad("message has no text, html, attachments or extra")
	}
	if len(m.Text) > MaxTextBytes {
		bad("text is longer than %d bytes", MaxTextBytes)
	}
	if len(m.HTML) > MaxHTMLBytes {
		bad("html is longer than %d bytes", MaxHTMLBytes)
	}
	if len(m.Attachments) > MaxAttachments {
		bad("more than %d attachments", MaxAttachments)
	}
	for i, a := range m.Attachments {
		if a.Size < 0 {
			bad("attachments[%d].size is negative", i)
		}
	}
	if !m.Automatic.Valid() {
		bad("unknown automatic kind %q", m.Automatic)
	}
	if len(m.Extra) > maxExtraEntries {
		bad("more than %d extra entries", maxExtraEntries)
	}
	if len(m.Thread.References) > maxThreadReferences {
		bad("more than %d thread references", maxThreadReferences)
	}
	// Arrays, not maps: Validate runs for every message the router reads.
	short := [...]struct{ name, v string }{
		{"from.address", m.From.Address}, {"from.name", m.From.Name}, {"from.email", m.From.Email},
		{"from.phone", m.From.Phone}, {"to.address", m.To.Address}, {"to.name", m.To.Name},
		{"subject", m.Subject}, {"language", m.Language},
	}
	for _, f := range short {
		if len(f.v) > maxShortFieldBytes {
			bad("%s is longer than %d bytes", f.name, maxShortFieldBytes)
		}
	}
	texts := [...]struct{ name, v string }{{"text", m.Text}, {"subject", m.Subject}, {"from.name", m.From.Name}, {"html", m.HTML},
		{"from.address", m.From.Address}, {"channel_message_id", m.ChannelMessageID}}
	for _, f := range texts {
		if !utf8.ValidString(f.v) {
			bad("%s is not valid UTF-8", f.name)
		}
		// PostgreSQL cannot store NUL in text; no channel sends one on purpose.
		if strings.IndexByte(f.v, 0) >= 0 {
			bad("%s contains a NUL character", f.name)
		}
	}
	// Header-length bounds (RFC 5322 allows 998 characters a line): the
	// store indexes these values.
	badID := func(v string) bool {
		return len(v) > maxShortFieldBytes || strings.IndexByte(v, 0) >= 0 || !utf8.ValidString(v)
	}
	threadBad := badID(m.Thread.MessageID) || badID(m.Thread.InReplyTo) || badID(m.Thread.ChatID)
	for _, v := range m.Thread.References {
		threadBad = threadBad || badID(v)
	}
	if threadBad {
		bad("thread ids must be valid text of at most %d bytes", maxShortFieldBytes)
	}
	if len(problems) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s", ErrInvalid, strings.Join(problems, "; "))
}

// Encode validates m and returns its wire form at the current version.
func Encode(m *Message) ([]byte, error) {
	m.V = Version
	if err := m.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(m)
}

// Decode reads a message of any supported version and validates it.
func Decode(data []byte) (*Message, error) {
	var head struct {
		V *int `json:"v"`
	}
	if err := json.Unmarshal(data, &head); err != nil {
		return nil, fmt.Errorf("%w: not a JSON object: %v", ErrInvalid, err)
	}
	if head.V == nil {
		return nil, fmt.Errorf("%w: no version field", ErrUnsupportedVersion)
	}
	switch *head.V {
	case 1:
		var m Message
		if err := json.Unmarshal(data, &m); err != nil {
			return nil, fmt.Errorf("%w: v1: %v", ErrInvalid, err)
		}
		if err := m.Validate(); err != nil {
			return nil, err
		}
		return &m, nil
	default:
		return nil, fmt.Errorf("%w: v%d", ErrUnsupportedVersion, *head.V)
	}
}
