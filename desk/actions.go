package desk

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/outbox"
	"github.com/inroute/inroute/store"
	"go.uber.org/zap"
)

// View is a conversation as an agent sees it.
type View struct {
	Conversation ConversationView `json:"conversation"`
	Contact      *store.Contact   `json:"contact"`
	Messages     []store.Message  `json:"messages"`
	Events       []store.Event    `json:"events"`
	// Explain is the routing explanation of the latest customer message.
	Explain []string             `json:"explain"`
	History []store.Conversation `json:"history"`
}

// ConversationView adds what the desk derives to the stored conversation.
type ConversationView struct {
	store.Conversation
	SLABreached bool     `json:"sla_breached"`
	Tags        []string `json:"tags,omitempty"`
}

// BlobPutter stores attachment bytes (blob.Dir does).
type BlobPutter interface {
	Put(r io.Reader) (ref string, size int64, err error)
}

// Next claims work for the agent: the most urgent, then oldest, waiting
// conversation in its queues. With wait > 0 it waits up to wait for work
// to arrive. It returns nil when nothing waits.
func (d *Desk) Next(ctx context.Context, a *Agent, wait time.Duration) (*View, error) {
	deadline := d.o.Now().Add(wait)
	for {
		changed := d.waitChange()
		c, err := d.o.Store.ClaimNext(ctx, store.ClaimRequest{Agent: a.Name, Queues: a.Queues, Capacity: a.Capacity, Lease: d.Lease()})
		if a.Admin && err == nil && c == nil && a.Queues != nil {
			// Admins take from every queue, whatever they list.
			c, err = d.o.Store.ClaimNext(ctx, store.ClaimRequest{Agent: a.Name, Capacity: a.Capacity, Lease: d.Lease()})
		}
		if err != nil {
			return nil, err
		}
		if c != nil {
			d.o.Metrics.Claims.Inc()
			if d.o.Mirror != nil {
				if err := d.o.Mirror.Remove(ctx, c); err != nil {
					d.log.Warn("remove claimed item from the queue stream", zap.Int64("conversation", c.ID), zap.Error(err))
				}
			}
			d.log.Info("agent took conversation", zap.String("agent", a.Name), zap.Int64("conversation", c.ID),
				zap.String("queue", c.Queue), zap.String("urgency", string(c.Urgency)))
			return d.view(ctx, c)
		}
		left := deadline.Sub(d.o.Now())
		if left <= 0 {
			return nil, nil
		}
		t := time.NewTimer(min(left, 5*time.Second)) // re-check now and then: another process may have requeued work
		select {
		case <-ctx.Done():
			t.Stop()
			return nil, nil
		case <-d.stopping:
			t.Stop()
			return nil, nil
		case <-changed:
		case <-t.C:
		}
		t.Stop()
	}
}

// Show returns the conversation if the agent may see it.
func (d *Desk) Show(ctx context.Context, a *Agent, id int64) (*View, error) {
	c, err := d.o.Store.Conversation(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := d.maySee(a, c); err != nil {
		return nil, err
	}
	return d.view(ctx, c)
}

func (d *Desk) maySee(a *Agent, c *store.Conversation) error {
	if a.Admin || c.Assignee == a.Name || a.Takes(c.Queue) {
		return nil
	}
	return fmt.Errorf("conversation %d is in queue %s, which is not one of yours (%s): %w",
		c.ID, c.Queue, strings.Join(a.Queues, ", "), ErrForbidden)
}

// mayAct: the holder acts on a conversation; admins on any.
func (d *Desk) mayAct(a *Agent, c *store.Conversation) error {
	if a.Admin {
		return nil
	}
	if c.Assignee != a.Name || !(c.Status == store.StatusAssigned || c.Status == store.StatusWaiting) {
		holder := "nobody"
		if c.Assignee != "" && c.Status != store.StatusQueued {
			holder = c.Assignee
		}
		return fmt.Errorf("conversation %d is held by %s, not you; take it with next first: %w", c.ID, holder, ErrForbidden)
	}
	return nil
}

func (d *Desk) view(ctx context.Context, c *store.Conversation) (*View, error) {
	v := &View{Conversation: ConversationView{Conversation: *c, SLABreached: c.SLABreachedAt != nil}}
	var err error
	if v.Messages, err = d.o.Store.Messages(ctx, c.ID); err != nil {
		return nil, err
	}
	if v.Events, err = d.o.Store.Events(ctx, c.ID); err != nil {
		return nil, err
	}
	if v.Contact, err = d.o.Store.Contact(ctx, c.ContactID); err != nil {
		return nil, err
	}
	// Why it is here is what a person's message made of it; an
	// out-of-office reply recorded since says only that it was not routed.
	var autoExplain []string
	for i := len(v.Messages) - 1; i >= 0; i-- {
		m := v.Messages[i]
		if m.Direction != store.In || m.Decision == nil {
			continue
		}
		if m.Automatic != "" {
			if autoExplain == nil {
				autoExplain = m.Decision.Explain
			}
			continue
		}
		if v.Explain == nil {
			v.Explain = m.Decision.Explain
		}
	}
	if v.Explain == nil {
		v.Explain = autoExplain
	}
	for _, m := range v.Messages {
		if m.Decision != nil {
			for _, t := range m.Decision.Tags {
				if !slices.Contains(v.Conversation.Tags, t) {
					v.Conversation.Tags = append(v.Conversation.Tags, t)
				}
			}
		}
	}
	all, err := d.o.Store.ContactConversations(ctx, c.ContactID)
	if err != nil {
		return nil, err
	}
	v.History = []store.Conversation{}
	for _, o := range all {
		if o.ID != c.ID {
			v.History = append(v.History, o)
		}
	}
	if v.Messages == nil {
		v.Messages = []store.Message{}
	}
	if v.Events == nil {
		v.Events = []store.Event{}
	}
	if v.Explain == nil {
		v.Explain = []string{}
	}
	return v, nil
}

// Attachment is a reply attachment as the API receives it.
type Attachment struct {
	Name        string `json:"name"`
	ContentType string `json:"content_type"`
	Data        string `json:"data"` // base64
}

// ReplyRequest is an agent's reply.
type ReplyRequest struct {
	Text    string          `json:"text"`
	HTML    string          `json:"html,omitempty"`
	Channel message.Channel `json:"channel,omitempty"`
	To      struct {
		Kind  string `json:"kind"`
		Value string `json:"value"`
	} `json:"to,omitzero"`
	Attachments []Attachment `json:"attachments,omitempty"`
	Key         string       `json:"key,omitempty"`
}

// Reply records and sends the agent's reply.
func (d *Desk) Reply(ctx context.Context, a *Agent, id int64, r ReplyRequest) (*store.Message, bool, error) {
	c, err := d.o.Store.Conversation(ctx, id)
	if err != nil {
		return nil, false, err
	}
	if err := d.mayAct(a, c); err != nil {
		return nil, false, err
	}
	if c.Status == store.StatusResolved {
		return nil, false, fmt.Errorf("conversation %d is resolved; reopen it to reply: %w", id, store.ErrConflict)
	}
	if strings.TrimSpace(r.Text) == "" && len(r.Attachments) == 0 {
		return nil, false, fmt.Errorf("text is required: %w", ErrInvalid)
	}
	if len(r.Text) > message.MaxTextBytes || !utf8.ValidString(r.Text) {
		return nil, false, fmt.Errorf("text must be valid UTF-8 of at most %d bytes: %w", message.MaxTextBytes, ErrInvalid)
	}
	if r.Channel != "" && !r.Channel.Valid() {
		return nil, false, fmt.Errorf("unknown channel %q: %w", r.Channel, ErrInvalid)
	}
	if r.Key == "" || len(r.Key) > 200 {
		return nil, false, fmt.Errorf("an idempotency key of 1 to 200 bytes is required: %w", ErrInvalid)
	}
	req := outbox.Request{ConversationID: id, Channel: r.Channel, Text: r.Text, HTML: r.HTML,
		Key: a.Name + ":" + r.Key, Agent: a.Name}
	if !a.Admin {
		// Checked again where the reply is recorded: a lease that lapsed
		// and a colleague who claimed meanwhile win over this reply.
		req.IfHolder = a.Name
	}
	if r.To.Value != "" || r.Channel != "" {
		kind, value, ch, err := d.recipient(ctx, c, r)
		if err != nil {
			return nil, false, err
		}
		req.ToKind, req.ToValue, req.Channel = kind, value, ch
	}
	for i, at := range r.Attachments {
		data, err := base64.StdEncoding.DecodeString(at.Data)
		if err != nil {
			return nil, false, fmt.Errorf("attachments[%d].data is not base64: %w", i, ErrInvalid)
		}
		if d.o.MaxAttachment > 0 && int64(len(data)) > d.o.MaxAttachment {
			return nil, false, fmt.Errorf("attachments[%d] is larger than %d bytes: %w", i, d.o.MaxAttachment, ErrInvalid)
		}
		if d.o.Blobs == nil {
			return nil, false, fmt.Errorf("attachments are not stored by this process: %w", ErrInvalid)
		}
		ref, size, err := d.o.Blobs.Put(strings.NewReader(string(data)))
		if err != nil {
			return nil, false, fmt.Errorf("store attachment %d: %w", i, err)
		}
		req.Attachments = append(req.Attachments, store.Attachment{Name: fileName(at.Name, i), ContentType: at.ContentType, Size: size, Ref: ref})
	}
	if c.Status == store.StatusQueued {
		// An admin answering a waiting conversation takes it: the customer
		// is being helped, and nobody else should pull it now.
		if _, err := d.o.Store.MoveConversation(ctx, id, store.Move{Agent: a.Name, Actor: a.Name, Event: store.EventClaimed,
			IfStatus: []store.Status{store.StatusQueued}, Data: map[string]any{"agent": a.Name, "by_reply": true}}); err != nil {
			return nil, false, err // taken by an agent a moment ago: 409, look again
		}
		if d.o.Mirror != nil {
			_ = d.o.Mirror.Remove(ctx, c)
		}
	}
	m, created, err := d.o.Outbox.Send(ctx, req)
	if errors.Is(err, outbox.ErrNoAgentPhone) {
		return nil, false, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	if err != nil {
		return m, created, err
	}
	if created {
		d.o.Metrics.Replies.WithLabelValues(string(m.Channel)).Inc()
		d.log.Info("agent replied", zap.String("agent", a.Name), zap.Int64("conversation", id),
			zap.String("channel", string(m.Channel)), zap.String("message_id", m.ID))
	}
	return m, created, nil
}

// recipient checks a chosen channel and identity against the contact.
func (d *Desk) recipient(ctx context.Context, c *store.Conversation, r ReplyRequest) (kind, value string, ch message.Channel, err error) {
	kind, value, ch = r.To.Kind, r.To.Value, r.Channel
	if value == "" {
		latest, err := d.o.Store.LatestInbound(ctx, c.ID)
		if err != nil {
			return "", "", "", err
		}
		kind, value = latest.FromKind, latest.FromValue
	}
	contact, err := d.o.Store.Contact(ctx, c.ContactID)
	if err != nil {
		return "", "", "", err
	}
	found := false
	for _, id := range contact.Identities {
		if id.Kind == kind && id.Value == value {
			found = true
		}
	}
	if !found {
		return "", "", "", fmt.Errorf("%s %s is not one of the customer's identities: %w", kind, value, ErrInvalid)
	}
	if ch == "" {
		ch = channelFor(kind)
	}
	if !fits(kind, ch) {
		return "", "", "", fmt.Errorf("a %s identity cannot be reached on %s: %w", kind, ch, ErrInvalid)
	}
	return kind, value, ch, nil
}

// channelFor is the default channel to reach an identity kind on.
func channelFor(kind string) message.Channel {
	switch kind {
	case store.KindEmail:
		return message.Email
	case store.KindPhone:
		return message.SMS
	case store.KindApp:
		return message.App
	}
	return message.Channel(kind)
}

func fits(kind string, ch message.Channel) bool {
	switch kind {
	case store.KindPhone:
		return ch == message.SMS || ch == message.Voice
	default:
		return channelFor(kind) == ch
	}
}

// Note adds an internal note.
func (d *Desk) Note(ctx context.Context, a *Agent, id int64, text string) (*View, error) {
	c, err := d.o.Store.Conversation(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := d.maySee(a, c); err != nil {
		return nil, err
	}
	if strings.TrimSpace(text) == "" || len(text) > 64<<10 || !utf8.ValidString(text) {
		return nil, fmt.Errorf("a note needs text (valid UTF-8, at most 64KiB): %w", ErrInvalid)
	}
	data, _ := json.Marshal(map[string]any{"text": text})
	if err := d.o.Store.AppendEvent(ctx, store.Event{ConversationID: id, ContactID: c.ContactID, Kind: store.EventNote, Actor: a.Name, Data: data}); err != nil {
		return nil, err
	}
	return d.view(ctx, c)
}

// TransferRequest names where a conversation goes.
type TransferRequest struct {
	Queue string `json:"queue,omitempty"`
	Agent string `json:"agent,omitempty"`
}

// Transfer moves a conversation to a queue (waiting there) or an agent.
func (d *Desk) Transfer(ctx context.Context, a *Agent, id int64, t TransferRequest) (*View, error) {
	if (t.Queue == "") == (t.Agent == "") {
		return nil, fmt.Errorf("transfer to a queue or to an agent (one of queue, agent): %w", ErrInvalid)
	}
	m := store.Move{Actor: a.Name, Event: store.EventTransferred}
	if t.Queue != "" {
		if !slices.Contains(d.QueueNames(), t.Queue) {
			return nil, fmt.Errorf("unknown queue %q: %w", t.Queue, ErrInvalid)
		}
		m.Queue, m.Requeue, m.Data = t.Queue, true, map[string]any{"queue": t.Queue}
	} else {
		if _, ok := d.agents[t.Agent]; !ok {
			return nil, fmt.Errorf("unknown agent %q: %w", t.Agent, ErrInvalid)
		}
		m.Agent, m.Data = t.Agent, map[string]any{"agent": t.Agent}
	}
	return d.move(ctx, a, id, m)
}

// SetUrgency changes the urgency.
func (d *Desk) SetUrgency(ctx context.Context, a *Agent, id int64, u message.Urgency) (*View, error) {
	if !u.Valid() {
		return nil, fmt.Errorf("unknown urgency %q (want low, normal, high or urgent): %w", u, ErrInvalid)
	}
	return d.move(ctx, a, id, store.Move{Urgency: u, Actor: a.Name, Event: store.EventUrgency, Data: map[string]any{"urgency": u}})
}

// Release puts the conversation back in its queue.
func (d *Desk) Release(ctx context.Context, a *Agent, id int64) (*View, error) {
	return d.move(ctx, a, id, store.Move{Requeue: true, Actor: a.Name, Event: store.EventReleased})
}

// Reopen puts a resolved conversation back in its queue.
func (d *Desk) Reopen(ctx context.Context, a *Agent, id int64) (*View, error) {
	c, err := d.o.Store.Conversation(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.Status != store.StatusResolved {
		return nil, fmt.Errorf("conversation %d is not resolved: %w", id, store.ErrConflict)
	}
	if !(a.Admin || c.Assignee == a.Name || a.Takes(c.Queue)) {
		return nil, fmt.Errorf("conversation %d is not yours to reopen: %w", id, ErrForbidden)
	}
	c, err = d.o.Store.MoveConversation(ctx, id, store.Move{Requeue: true, Actor: a.Name, Event: store.EventReopened,
		IfStatus: []store.Status{store.StatusResolved}})
	if err != nil {
		return nil, err
	}
	d.requeued(ctx, c)
	return d.view(ctx, c)
}

// Resolve closes the conversation.
func (d *Desk) Resolve(ctx context.Context, a *Agent, id int64) (*View, error) {
	c, err := d.o.Store.Conversation(ctx, id)
	if err != nil {
		return nil, err
	}
	if c.Status == store.StatusResolved {
		if err := d.maySee(a, c); err != nil {
			return nil, err
		}
		return d.view(ctx, c)
	}
	return d.move(ctx, a, id, store.Move{Resolve: true, Actor: a.Name, Event: store.EventResolved})
}

// Renew extends the agent's lease.
func (d *Desk) Renew(ctx context.Context, a *Agent, id int64) (time.Time, error) {
	return d.o.Store.Renew(ctx, id, a.Name, d.Lease())
}

func (d *Desk) move(ctx context.Context, a *Agent, id int64, m store.Move) (*View, error) {
	before, err := d.o.Store.Conversation(ctx, id)
	if err != nil {
		return nil, err
	}
	if err := d.mayAct(a, before); err != nil {
		return nil, err
	}
	if !a.Admin {
		m.IfHolder = a.Name
	}
	c, err := d.o.Store.MoveConversation(ctx, id, m)
	if err != nil {
		return nil, err
	}
	if d.o.Mirror != nil && before.Status == store.StatusQueued && (before.Queue != c.Queue || before.Urgency != c.Urgency || c.Status != store.StatusQueued) {
		_ = d.o.Mirror.Remove(ctx, before)
	}
	if c.Status == store.StatusQueued {
		d.requeued(ctx, c)
	}
	return d.view(ctx, c)
}

// requeued mirrors a conversation that is waiting again and wakes pulls.
func (d *Desk) requeued(ctx context.Context, c *store.Conversation) {
	if d.o.Mirror != nil {
		if err := d.o.Mirror.Enqueue(ctx, c); err != nil {
			d.log.Warn("mirror requeued conversation", zap.Int64("conversation", c.ID), zap.Error(err))
		}
	}
	d.Wake()
}

// LatestInboundID is the id of the conversation's latest customer message,
// or "" when there is none.
func (d *Desk) LatestInboundID(ctx context.Context, id int64) string {
	m, err := d.o.Store.LatestInbound(ctx, id)
	if err != nil {
		return ""
	}
	return m.ID
}

// fileName keeps an attachment name a name: connectors write it into mail
// headers and file names, so no directories, control characters or
// unbounded length.
func fileName(name string, i int) string {
	name = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f || r == '/' || r == '\\' {
			return '_'
		}
		return r
	}, strings.TrimSpace(name))
	name = strings.Trim(name, ". ")
	if len(name) > 200 {
		name = name[:200]
		for !utf8.ValidString(name) {
			name = name[:len(name)-1]
		}
	}
	if name == "" {
		name = fmt.Sprintf("attachment-%d", i+1)
	}
	return name
}
