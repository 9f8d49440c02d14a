// Package outbox sends replies: it records a reply in the store, then
// publishes it on outbound.<channel> for the channel's connector, with the
// stored message's id as the idempotency key all the way to the channel.
// The agent API (agent replies) and the router (auto-replies) both send
// through it.
package outbox

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
)

// Store is what sending needs from the store.
type Store interface {
	RecordReply(ctx context.Context, r store.Reply) (*store.Message, bool, error)
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
	Now   func() time.Time
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
	AgentPhone     string
	Auto           bool
	Language       string
}

// Send records the reply (once per key) and publishes it. A repeat of a
// key whose reply is still queued publishes again: the first publish may
// have failed, and JetStream drops the copy if it did not.
func (o *Outbox) Send(ctx context.Context, r Request) (*store.Message, bool, error) {
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
	reply := store.Reply{
		ConversationID: r.ConversationID, Channel: r.Channel, ToKind: r.ToKind, ToValue: r.ToValue,
		Text: r.Text, HTML: r.HTML, Attachments: r.Attachments, Key: r.Key, Agent: r.Agent, Auto: r.Auto,
	}
	out := message.Outbound{
		V: message.OutboundVersion, ConversationID: r.ConversationID, Channel: r.Channel,
		Text: r.Text, HTML: r.HTML, Auto: r.Auto, Agent: r.Agent, AgentPhone: r.AgentPhone, Language: r.Language,
	}
	out.To, out.From = address(r.ToKind, r.ToValue), latest.To
	if r.ToKind == store.KindApp {
		app, user, _ := strings.Cut(r.ToValue, "/")
		out.From, out.To = app, user
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
		out.Subject, reply.Subject = subject, subject
		if id := latest.Thread.MessageID; id != "" {
			out.Thread.InReplyTo = id
			out.Thread.References = append(slices.Clone(latest.Thread.References), id)
		}
		reply.Thread = out.Thread
	}
	if latest.Thread.ChatID != "" && latest.Channel == r.Channel {
		out.Thread.ChatID = latest.Thread.ChatID
	}
	if r.Channel == message.Voice && r.AgentPhone == "" {
		return nil, false, fmt.Errorf("a call-back needs the agent's phone (agents[].phone): %w", ErrNoAgentPhone)
	}
	m, created, err := o.Store.RecordReply(ctx, reply)
	if err != nil {
		return nil, false, err
	}
	if !created && m.DeliveryStatus != store.DeliveryQueued {
		return m, false, nil // sent already: nothing to do again
	}
	out.ID, out.CreatedAt = m.ID, m.ReceivedAt
	for _, a := range m.Attachments {
		out.Attachments = append(out.Attachments, message.Attachment{Name: a.Name, ContentType: a.ContentType, Size: a.Size, URL: a.Ref})
	}
	data, err := json.Marshal(out)
	if err != nil {
		return nil, false, fmt.Errorf("encode outbound %s: %w", m.ID, err)
	}
	if err := o.Pub.Publish(ctx, bus.OutboundSubject(r.Channel), data, m.ID, nil); err != nil {
		return m, created, fmt.Errorf("publish reply %s: %w", m.ID, err)
	}
	return m, created, nil
}

// ErrNoAgentPhone means a call-back was asked of an agent without a phone.
var ErrNoAgentPhone = fmt.Errorf("no agent phone")

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
