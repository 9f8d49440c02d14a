package system

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/calendar"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/desk"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/outbox"
	"github.com/inroute/inroute/router"
	"github.com/inroute/inroute/router/rules"
	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/webhook"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// slaClock counts response targets on the calendar of the routing version
// in force: around the clock, or in business hours when routing.sla asks.
type slaClock struct {
	mu      sync.Mutex
	routing *config.Routing
	cal     *calendar.Calendar
}

func (c *slaClock) calendarFor(r *config.Routing) *calendar.Calendar {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.routing != r {
		c.routing, c.cal = r, calendar.Always()
		if r.SLA.BusinessHours {
			if cal, err := calendar.New(r.BusinessHours); err == nil {
				c.cal = cal
			}
		}
	}
	return c.cal
}

// deadline is store.Options.Deadline over the rules in force.
func (s *System) deadline(kind store.SLAKind, queue string, u message.Urgency, from time.Time) *time.Time {
	if s.rules == nil {
		return nil
	}
	r := s.rules.Engine().Routing()
	cal := s.sla.calendarFor(r)
	return desk.Deadline(r, cal.Add)(kind, queue, u, from)
}

// autoReplier sends a routing decision's auto-reply once per conversation.
type autoReplier struct {
	out   *outbox.Outbox
	rules *rules.Live
}

var _ router.AutoReplier = (*autoReplier)(nil)

func (a *autoReplier) AutoReply(ctx context.Context, m *message.Message, template string, conversation int64) error {
	if m.Channel == message.Voice {
		// A call cannot be answered with text: the voice connector greets
		// the caller, and an agent calls back.
		return nil
	}
	// Templates are keyed by base language: zh-CN and zh-Hant read zh.
	lang, _, _ := strings.Cut(strings.ToLower(m.Language), "-")
	if lang == "" {
		lang = "en"
		for _, r := range m.Subject + m.Text {
			if unicode.Is(unicode.Han, r) {
				lang = "zh"
				break
			}
		}
	}
	// One version for the text and the targets it quotes, even if the
	// rules are reloaded meanwhile.
	e := a.rules.Engine()
	text, in := e.TemplateIn(template, lang)
	if text == "" {
		return nil // the template left the rules since the decision
	}
	if strings.Contains(text, "{") {
		// The placeholders need the conversation as recorded: its queue
		// and urgency are the decision's, after every rule.
		conv, err := a.out.Store.Conversation(ctx, conversation)
		if err != nil {
			return fmt.Errorf("read conversation %d for its auto-reply: %w", conversation, err)
		}
		text = fillTemplate(text, in, conv, e.Routing())
	}
	_, _, err := a.out.Send(ctx, outbox.Request{ConversationID: conversation, Text: text, Agent: "inroute", Auto: true,
		Key: fmt.Sprintf("auto:%d", conversation)})
	return err
}

// removeLegacyConsumers deletes the first release's per-urgency pull
// consumers: the desk claims through the store now, and those consumers
// would otherwise hold the queue items they had fetched.
func removeLegacyConsumers(ctx context.Context, b *bus.Bus, log *zap.Logger) {
	for _, u := range message.Urgencies {
		err := b.JS.DeleteConsumer(ctx, bus.StreamQueues, bus.LegacyAgentConsumer(u))
		if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
			log.Debug("remove legacy consumer", zap.String("urgency", string(u)), zap.Error(err))
		}
	}
}

// deskWebhook posts every SLA event to desk.webhook, signed, retried with
// backoff by redelivery, until max_attempts.
func deskWebhook(b *bus.Bus, w config.Webhook, log *zap.Logger) *webhook.Deliverer {
	sender := &webhook.Sender{URL: w.URL, Secret: []byte(w.Secret)}
	return &webhook.Deliverer{
		JS: b.JS, Stream: bus.StreamEvents,
		Config: jetstream.ConsumerConfig{
			Durable:       bus.ConsumerDeskWebhook,
			Description:   "posts SLA events to desk.webhook",
			FilterSubject: bus.SubjectsSLA,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       time.Minute,
			// New, not all: a webhook configured today wants today's
			// events, not a week of old ones.
			DeliverPolicy: jetstream.DeliverNewPolicy,
		},
		Deliver:     func(ctx context.Context, m jetstream.Msg) error { return sender.Send(ctx, m.Data()) },
		MaxAttempts: w.MaxAttempts,
		OnGiveUp: func(_ context.Context, m jetstream.Msg, reason error) {
			log.Error("desk webhook gave up on an SLA event", zap.String("subject", m.Subject()), zap.Error(reason))
		},
		Log: log,
	}
}
