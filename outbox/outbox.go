// Package outbox sends replies: it records a reply in the store, then
// publishes it on outbound.<channel> for the channel's connector, with the
// stored message's id as the idempotency key all the way to the channel.
// The agent API (agent replies) and the router (auto-replies) both send
// through it.
package outbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
	"github.com/oklog/ulid/v2"
)

// Store is what sending needs from the store.
type Store interface {
	RecordReply(ctx context.Context, r store.Reply) (*store.Message, bool, error)
	ReplyByKey(ctx context.Context, key string) (*store.Message, error)
	MarkPublished(ctx context.Context, messageID string) error
	Unpublished(ctx context.Context, t time.Time, limit int) ([]store.Message, error)
	LatestInbound(ctx context.Context, conversationID int64) (*store.Message, error)
	Conversation(ctx context.Context, id int64) (*store.Conversation, error)
}

// Publisher publishes durably (bus.Bus does).
type Publisher interface {
	Publish(ctx context.Context, subject string, data []byte, msgID string, hdr map[string][]string) error
}

// Outbox records and publishes replies.
type Outbox struct {
	Store Store
	Pub   Publisher
	// AgentPhone gives an agent's own number, rung first on a call-back.
	AgentPhone func(agent string) string
	// MailDomain is the domain of e-mail replies' Message-IDs (the first
	// mailbox's). Empty: the domain of the address the customer wrote to.
	MailDomain string
}

// Request is a reply to send. Channel and the recipient default to the
// customer's latest message: its channel and the identity that wrote it.
type Request struct {
	ConversationID int64
	Channel        message.Channel
	ToKind         string
	ToValue        string
	Text           string
	HTML           string
	Attachments    []store.Attachment
	Key            string
	Agent          string
	Auto           bool
	// IfHolder records the reply only while this agent holds the
	// conversation (store.ErrConflict otherwise).
	IfHolder string
}

// Send records the reply (once per key), then publishes it. A repeat of
// a key whose reply was never published publishes it now; one already
// published is returned as it is.
func (o *Outbox) Send(ctx context.Context, r Request) (*store.Message, bool, error) {
	// A repeat is the reply as it was first made, before any default is
	// chosen again: the customer may have written on another channel since.
	if m, err := o.Store.ReplyByKey(ctx, r.Key); err == nil {
		if m.ConversationID != r.ConversationID {
			return nil, false, fmt.Errorf("idempotency key %q was used for conversation %d: %w", r.Key, m.ConversationID, store.ErrConflict)
		}
		if m.PublishedAt == nil {
			return m, false, o.Publish(ctx, m)
		}
		return m, false, nil
	} else if !errors.Is(err, store.ErrNotFound) {
		return nil, false, err
	}
	latest, err := o.Store.LatestInbound(ctx, r.ConversationID)
	if err != nil {
		return nil, false, err
	}
	conv, err := o.Store.Conversation(ctx, r.ConversationID)
	if err != nil {
		return nil, false, err
	}
	if r.Channel == "" {
		r.Channel = latest.Channel
	}
	if r.ToValue == "" {
		r.ToKind, r.ToValue = latest.FromKind, latest.FromValue
	}
	if r.Channel == message.Voice && o.phone(r.Agent) == "" {
		return nil, false, fmt.Errorf("a call-back needs the agent's phone (agents[].phone): %w", ErrNoAgentPhone)
	}
	reply := store.Reply{
		ConversationID: r.ConversationID, Channel: r.Channel, ToKind: r.ToKind, ToValue: r.ToValue,
		Text: r.Text, HTML: r.HTML, Attachments: r.Attachments, Key: r.Key, Agent: r.Agent, Auto: r.Auto, IfHolder: r.IfHolder,
	}
	if r.Channel == message.Email {
		// Answer the customer's latest mail so the reply threads under it,
		// and keep the conversation's token in the subject so an answer
		// that loses the headers still finds its way back.
		subject := latest.Subject
		if subject == "" {
			subject = conv.Subject
		}
		if !strings.Contains(subject, conv.Token()) {
			subject = strings.TrimSpace(subject + " " + conv.Token())
		}
		if !strings.HasPrefix(strings.ToLower(subject), "re:") {
			subject = "Re: " + subject
		}
		reply.Subject = subject
		if id := latest.Thread.MessageID; id != "" {
			reply.Thread.InReplyTo = id
			reply.Thread.References = append(slices.Clone(latest.Thread.References), id)
		}
		// The Message-ID names the reply, so a bounce that quotes it can be
		// turned into a failed delivery of this reply (ReplyIDFromMessageID),
		// and the store threads the customer's answer to it.
		reply.ID = message.NewID()
		reply.Thread.MessageID = "<" + reply.ID + "@" + o.mailDomain(latest.To) + ">"
	}
	m, created, err := o.Store.RecordReply(ctx, reply)
	if err != nil {
		return nil, false, err
	}
	if m.PublishedAt != nil {
		return m, created, nil // a repeat of a reply already handed on
	}
	if err := o.Publish(ctx, m); err != nil {
		return m, created, err
	}
	return m, created, nil
}

// Publish hands a recorded reply to its channel's connector, with the
// reply's id as Nats-Msg-Id, and marks it published.
func (o *Outbox) Publish(ctx context.Context, m *store.Message) error {
	latest, err := o.Store.LatestInbound(ctx, m.ConversationID)
	if err != nil {
		return err
	}
	out := message.Outbound{
		V: message.OutboundVersion, ID: m.ID, ConversationID: m.ConversationID, Channel: m.Channel,
		To: address(m.FromKind, m.FromValue), From: latest.To, Subject: m.Subject, Text: m.Text, HTML: m.HTML,
		Thread: m.Thread, Auto: m.Auto, Agent: m.Author, AgentPhone: o.phone(m.Author), Language: latest.Language,
		CreatedAt: m.ReceivedAt,
	}
	if m.FromKind == store.KindApp {
		out.From, _, _ = strings.Cut(m.FromValue, "/")
	}
	if latest.Thread.ChatID != "" && latest.Channel == m.Channel {
		out.Thread.ChatID = latest.Thread.ChatID
	}
	for _, a := range m.Attachments {
		out.Attachments = append(out.Attachments, message.Attachment{Name: a.Name, ContentType: a.ContentType, Size: a.Size, URL: a.Ref})
	}
	data, err := json.Marshal(out)
	if err != nil {
		return fmt.Errorf("encode outbound %s: %w", m.ID, err)
	}
	if err := o.Pub.Publish(ctx, bus.OutboundSubject(m.Channel), data, m.ID, nil); err != nil {
		return fmt.Errorf("publish reply %s: %w", m.ID, err)
	}
	if err := o.Store.MarkPublished(ctx, m.ID); err != nil {
		// Published but not marked: the sweep publishes it again, and
		// JetStream drops the copy by its id.
		return fmt.Errorf("mark reply %s published: %w", m.ID, err)
	}
	return nil
}

// Sweep publishes replies recorded more than age ago and never published
// (the process died, or the bus was away, between the two steps). It
// returns how many it published.
func (o *Outbox) Sweep(ctx context.Context, now time.Time, age time.Duration) (int, error) {
	pending, err := o.Store.Unpublished(ctx, now.Add(-age), 100)
	if err != nil {
		return 0, err
	}
	n := 0
	var errs []error
	for i := range pending {
		// One reply that cannot go out must not hold up the others.
		if err := o.Publish(ctx, &pending[i]); err != nil {
			errs = append(errs, err)
			continue
		}
		n++
	}
	return n, errors.Join(errs...)
}

// fallbackDomain is for Message-IDs when no domain of ours is known: the
// .invalid top-level domain can never be anyone's.
const fallbackDomain = "inroute.invalid"

// mailDomain is the right-hand side of a reply's Message-ID.
func (o *Outbox) mailDomain(to string) string {
	if d := strings.TrimSpace(o.MailDomain); d != "" {
		return d
	}
	if _, d, ok := strings.Cut(strings.TrimSpace(to), "@"); ok && validDomain(d) {
		return strings.ToLower(d)
	}
	return fallbackDomain
}

// validDomain accepts what may stand right of the "@" in a Message-ID
// unquoted: a stored address could be anything a connector was given.
func validDomain(d string) bool {
	if d == "" || len(d) > 253 {
		return false
	}
	for _, r := range d {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.') {
			return false
		}
	}
	return true
}

// ReplyIDFromMessageID returns the id of the reply whose Message-ID is
// msgID ("<ULID@domain>", as Send makes them, angle brackets optional),
// and false when msgID does not have that form. The e-mail connector uses
// it to turn a bounce into a failed delivery of that reply; the id is a
// candidate only, and names a reply only if the store has one by that id.
func ReplyIDFromMessageID(msgID string) (string, bool) {
	s := strings.TrimSpace(msgID)
	if strings.HasPrefix(s, "<") != strings.HasSuffix(s, ">") {
		return "", false
	}
	s = strings.TrimSuffix(strings.TrimPrefix(s, "<"), ">")
	local, domain, ok := strings.Cut(s, "@")
	if !ok || domain == "" || strings.Contains(domain, "@") {
		return "", false
	}
	id, err := ulid.ParseStrict(local)
	if err != nil {
		return "", false
	}
	return id.String(), true
}

func (o *Outbox) phone(agent string) string {
	if o.AgentPhone == nil {
		return ""
	}
	return o.AgentPhone(agent)
}

// ErrNoAgentPhone means a call-back was asked of an agent without a phone.
var ErrNoAgentPhone = errors.New("no agent phone")

// address is the channel address of an identity.
func address(kind, value string) string {
	if kind == store.KindApp {
		_, user, _ := strings.Cut(value, "/")
		return user
	}
	return value
}

// BusPublisher adapts bus.Bus to Publisher.
type BusPublisher struct{ Bus *bus.Bus }

// Publish implements Publisher.
func (p BusPublisher) Publish(ctx context.Context, subject string, data []byte, msgID string, hdr map[string][]string) error {
	_, err := p.Bus.Publish(ctx, subject, data, msgID, hdr)
	return err
}
