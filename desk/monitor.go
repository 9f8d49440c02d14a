package desk

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// SLAEvent is published on events.sla.<kind> (breached, escalated) and
// posted to the desk webhook.
type SLAEvent struct {
	V              int             `json:"v"`
	Kind           string          `json:"kind"`
	ConversationID int64           `json:"conversation_id"`
	Queue          string          `json:"queue"`
	Urgency        message.Urgency `json:"urgency"`
	Status         store.Status    `json:"status"`
	Assignee       string          `json:"assignee,omitempty"`
	// Target is first_response or next_response; Due when it was due.
	Target string    `json:"target"`
	Due    time.Time `json:"due"`
	// Step is the escalation step taken (1 for the first rung); 0 for
	// the breach itself.
	Step int       `json:"step"`
	At   time.Time `json:"at"`
}

// ID is the event's idempotency key: each breach and step once.
func (e SLAEvent) ID() string {
	return fmt.Sprintf("sla:%d:%s:%d:%d", e.ConversationID, e.Kind, e.Step, e.Due.Unix())
}

// Run returns lapsed claims to their queues and escalates missed targets
// every desk.check_every until ctx ends.
func (d *Desk) Run(ctx context.Context) error {
	t := time.NewTicker(d.o.Desk.CheckEvery.D())
	defer t.Stop()
	for {
		d.Check(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Check runs one round of the lease and SLA monitors.
func (d *Desk) Check(ctx context.Context) {
	if err := d.expireLeases(ctx); err != nil && ctx.Err() == nil {
		d.log.Warn("lease check", zap.Error(err))
	}
	if err := d.checkSLA(ctx); err != nil && ctx.Err() == nil {
		d.log.Warn("sla check", zap.Error(err))
	}
	if d.o.Outbox != nil {
		n, err := d.o.Outbox.Sweep(ctx, d.o.Now(), unpublishedAge)
		if err != nil && ctx.Err() == nil {
			d.log.Warn("publish pending replies", zap.Error(err))
		}
		if n > 0 {
			d.log.Info("published replies whose first publish had failed", zap.Int("replies", n))
		}
	}
}

// unpublishedAge: a reply still unpublished this long after it was
// recorded lost its publish (the API call that recorded it publishes at
// once, or reports the failure to a client that retries).
const unpublishedAge = 30 * time.Second

func (d *Desk) expireLeases(ctx context.Context) error {
	lapsed, err := d.o.Store.ExpireLeases(ctx, d.o.Now())
	if err != nil {
		return err
	}
	for i := range lapsed {
		c := &lapsed[i]
		d.o.Metrics.LeaseExpiries.Inc()
		d.log.Info("lease lapsed; conversation back in its queue", zap.Int64("conversation", c.ID),
			zap.String("queue", c.Queue), zap.String("urgency", string(c.Urgency)))
		d.requeued(ctx, c)
	}
	return nil
}

func (d *Desk) checkSLA(ctx context.Context) error {
	now := d.o.Now()
	ladder := d.ladder()
	due, err := d.o.Store.Due(ctx, now, 500, len(ladder))
	if err != nil {
		return err
	}
	var errs []error
	for i := range due {
		// One conversation that fails to escalate must not stop the rest.
		if err := d.escalate(ctx, now, ladder, due[i]); err != nil {
			errs = append(errs, fmt.Errorf("conversation %d: %w", due[i].ID, err))
		}
	}
	return errors.Join(errs...)
}

// escalate records c's missed target and takes the ladder's steps that
// are due.
func (d *Desk) escalate(ctx context.Context, now time.Time, ladder []config.EscalationStep, c store.Conversation) error {
	target, kind := *c.Due(), string(store.FirstResponse)
	if c.FirstResponseDue == nil {
		kind = string(store.NextResponse)
	}
	ev := SLAEvent{V: 1, ConversationID: c.ID, Target: kind, Due: target.UTC(), At: now.UTC()}
	if c.SLABreachedAt == nil {
		ok, err := d.o.Store.Escalate(ctx, store.Escalation{ConversationID: c.ID, FromStep: -1,
			Data: map[string]any{"target": kind, "due": target.UTC()}})
		if err != nil {
			return err
		}
		if !ok {
			return nil // recorded by another process
		}
		d.o.Metrics.SLABreaches.WithLabelValues(c.Queue).Inc()
		d.log.Info("response target missed", zap.Int64("conversation", c.ID), zap.String("queue", c.Queue),
			zap.String("target", kind), zap.Time("due", target))
		ev.Kind, ev.Step = "breached", 0
		d.notify(ctx, &c, ev)
		c.SLAStep = 0
	}
	for step := c.SLAStep; step < len(ladder); step++ {
		st := ladder[step]
		if target.Add(st.After.D()).After(now) {
			break
		}
		u := c.Urgency.Raise(st.Raise)
		if st.Urgency != "" {
			u = u.Max(message.Urgency(st.Urgency))
		}
		ok, err := d.o.Store.Escalate(ctx, store.Escalation{ConversationID: c.ID, FromStep: step, Urgency: u, Queue: st.MoveTo,
			Data: map[string]any{"target": kind}})
		if err != nil {
			return err
		}
		if !ok {
			break
		}
		d.o.Metrics.Escalations.WithLabelValues(c.Queue).Inc()
		after, err := d.o.Store.Conversation(ctx, c.ID)
		if err != nil {
			return err
		}
		if after.Status == store.StatusQueued && (after.Queue != c.Queue || after.Urgency != c.Urgency) {
			if d.o.Mirror != nil {
				_ = d.o.Mirror.Remove(ctx, &c)
			}
			d.requeued(ctx, after)
		}
		d.log.Info("escalated", zap.Int64("conversation", c.ID), zap.Int("step", step+1),
			zap.String("urgency", string(after.Urgency)), zap.String("queue", after.Queue))
		if st.Notify {
			ev.Kind, ev.Step = "escalated", step+1
			d.notify(ctx, after, ev)
		}
		c = *after
	}
	return nil
}

// ladder is the escalation ladder of the rules in force.
func (d *Desk) ladder() []config.EscalationStep {
	if r := d.routing(); r != nil {
		return r.SLA.Escalation
	}
	return nil
}

func (d *Desk) notify(ctx context.Context, c *store.Conversation, ev SLAEvent) {
	ev.Queue, ev.Urgency, ev.Status, ev.Assignee = c.Queue, c.Urgency, c.Status, c.Assignee
	if d.o.Notify == nil {
		return
	}
	if err := d.o.Notify(ctx, ev.Kind, ev); err != nil {
		d.log.Warn("publish sla event", zap.Int64("conversation", c.ID), zap.String("kind", ev.Kind), zap.Error(err))
	}
}

// BusNotify publishes SLA events on the bus.
func BusNotify(b *bus.Bus) func(ctx context.Context, kind string, ev SLAEvent) error {
	return func(ctx context.Context, kind string, ev SLAEvent) error {
		data, err := json.Marshal(ev)
		if err != nil {
			return err
		}
		_, err = b.Publish(ctx, bus.SLASubject(kind), data, ev.ID(), nil)
		return err
	}
}

// RunDeliveries applies the connectors' delivery reports to the store
// until ctx ends. Every API process shares one durable consumer.
func (d *Desk) RunDeliveries(ctx context.Context, js jetstream.JetStream) error {
	c, err := js.CreateOrUpdateConsumer(ctx, bus.StreamEvents, jetstream.ConsumerConfig{
		Durable:       bus.ConsumerDelivery,
		Description:   "applies connectors' delivery reports to the store",
		FilterSubject: bus.SubjectsDelivery,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       30 * time.Second,
		MaxDeliver:    20,
		// All, not new: a report published before the consumer existed
		// must still land; applying one twice changes nothing.
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("delivery consumer: %w", err)
	}
	for ctx.Err() == nil {
		batch, err := c.Fetch(64, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(250 * time.Millisecond):
			}
			continue
		}
		for m := range batch.Messages() {
			d.applyDelivery(ctx, m)
		}
	}
	return nil
}

func (d *Desk) applyDelivery(ctx context.Context, m jetstream.Msg) {
	rep, err := message.DecodeDelivery(m.Data())
	if err != nil {
		d.log.Error("dropping a delivery report that does not decode", zap.String("subject", m.Subject()), zap.Error(err))
		_ = m.Term()
		return
	}
	err = d.o.Store.SetDelivery(ctx, rep.MessageID, rep.Status, rep.Detail)
	switch {
	case err == nil:
		d.o.Metrics.Deliveries.WithLabelValues(string(rep.Channel), rep.Status).Inc()
		if rep.Status == message.DeliveryFailed {
			d.log.Warn("reply failed", zap.String("message_id", rep.MessageID), zap.String("channel", string(rep.Channel)),
				zap.String("detail", rep.Detail))
		}
		_ = m.Ack()
	case errors.Is(err, store.ErrNotFound):
		// A report on a reply this store does not hold (purged, or
		// another deployment's): nothing to update.
		_ = m.Ack()
	default:
		d.log.Warn("apply delivery report; will retry", zap.String("message_id", rep.MessageID), zap.Error(err))
		_ = m.NakWithDelay(time.Second)
	}
}

// since formats an age in whole seconds for the board.
func since(now, t time.Time) int64 {
	if t.IsZero() || now.Before(t) {
		return 0
	}
	return int64(now.Sub(t) / time.Second)
}
