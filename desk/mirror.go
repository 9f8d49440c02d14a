package desk

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/queue"
	"github.com/inroute/inroute/store"
	"github.com/nats-io/nats.go/jetstream"
)

// Mirror keeps the QUEUES stream showing what waits: the router publishes
// routed conversations; the desk removes what agents claim and publishes
// again what comes back (a lapsed lease, a release, a transfer, a reopen).
type Mirror interface {
	Enqueue(ctx context.Context, c *store.Conversation) error
	Remove(ctx context.Context, c *store.Conversation) error
}

// BusMirror is the Mirror on JetStream.
type BusMirror struct {
	Bus   *bus.Bus
	Store interface {
		LatestInbound(ctx context.Context, id int64) (*store.Message, error)
	}
	Now func() time.Time
}

var _ Mirror = (*BusMirror)(nil)

// Enqueue implements Mirror.
func (m *BusMirror) Enqueue(ctx context.Context, c *store.Conversation) error {
	latest, err := m.Store.LatestInbound(ctx, c.ID)
	if err != nil {
		return err
	}
	it := &queue.Item{V: queue.ItemVersion, ID: latest.ID, ConversationID: c.ID, ContactID: c.ContactID, Queue: c.Queue,
		Urgency: c.Urgency, Topic: c.Topic, RoutedAt: m.Now().UTC(), Message: inbound(latest), Explain: []string{}}
	if latest.Decision != nil {
		it.Explain, it.Tags, it.RulesVersion = latest.Decision.Explain, latest.Decision.Tags, latest.Decision.RulesVersion
	}
	data, err := json.Marshal(it)
	if err != nil {
		return fmt.Errorf("encode queue item: %w", err)
	}
	_, err = m.Bus.Publish(ctx, it.Subject(), data, "", nil)
	return err
}

// Remove implements Mirror.
func (m *BusMirror) Remove(ctx context.Context, c *store.Conversation) error {
	st, err := m.Bus.JS.Stream(ctx, bus.StreamQueues)
	if err != nil {
		return err
	}
	return st.Purge(ctx, jetstream.WithPurgeSubject(bus.QueueSubject(c.Queue, c.Urgency, c.ID)))
}

// inbound turns a stored customer message back into its normalized form.
func inbound(m *store.Message) *message.Message {
	out := &message.Message{V: message.Version, ID: m.ID, Channel: m.Channel, ChannelMessageID: m.ChannelMessageID,
		ReceivedAt: m.ReceivedAt, From: message.Party{Address: m.FromValue, Name: m.FromName}, To: message.Party{Address: m.To},
		Subject: m.Subject, Text: m.Text, HTML: m.HTML, Thread: m.Thread, Language: m.Language, Extra: m.Extra,
		Automatic: m.Automatic}
	for _, a := range m.Attachments {
		out.Attachments = append(out.Attachments, message.Attachment{Name: a.Name, ContentType: a.ContentType, Size: a.Size, URL: a.Ref})
	}
	return out
}
