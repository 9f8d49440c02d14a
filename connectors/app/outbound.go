package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/webhook"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Defaults of the reply side.
const (
	defaultReplyRetention  = 7 * 24 * time.Hour
	defaultDuplicateWindow = time.Hour
	defaultWebhookAttempts = 12
	defaultPollWait        = time.Second
	// maxBusBackoff caps the retry delay of a feed publish: a bus outage
	// is short and replies should flow as soon as it is over.
	maxBusBackoff = 30 * time.Second
	// outboundAckWait is how long an outbound message may stay
	// unacknowledged before another connector process gets it.
	outboundAckWait = 30 * time.Second
	maxAckPending   = 1000
)

func (o *Options) setReplyDefaults() {
	if o.ReplyRetention <= 0 {
		o.ReplyRetention = defaultReplyRetention
	}
	if o.DuplicateWindow <= 0 {
		o.DuplicateWindow = defaultDuplicateWindow
	}
	// JetStream refuses a duplicate window longer than the max age.
	o.DuplicateWindow = min(o.DuplicateWindow, o.ReplyRetention)
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.WebhookTimeout <= 0 {
		o.WebhookTimeout = webhook.DefaultTimeout
	}
	if o.Backoff == nil {
		o.Backoff = webhook.Backoff
	}
	if o.PollWait <= 0 {
		o.PollWait = defaultPollWait
	}
}

// runReplies sets up the feed and the consumers (waiting for the bus if it
// is down), then runs the outbound consumer and one webhook deliverer per
// app with a webhook until ctx ends.
func (c *Connector) runReplies(ctx context.Context) error {
	hooks, ok := c.setupWithRetry(ctx)
	if !ok {
		return nil // stopped before the bus was reachable
	}
	workers := []*webhook.Deliverer{c.outboundDeliverer()}
	for _, app := range sortedKeys(hooks) {
		workers = append(workers, c.webhookDeliverer(app, hooks[app]))
	}
	var wg sync.WaitGroup
	errs := make([]error, len(workers))
	for i, d := range workers {
		wg.Go(func() {
			if err := d.Run(ctx); err != nil {
				c.log.Error("app reply worker stopped", zap.Error(err))
				errs[i] = err
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// setupWithRetry runs setup until it succeeds or ctx ends.
func (c *Connector) setupWithRetry(ctx context.Context) (map[string]jetstream.Consumer, bool) {
	logged := false
	for {
		hooks, err := c.setup(ctx)
		if err == nil {
			if logged {
				c.log.Info("app reply feed ready")
			}
			return hooks, true
		}
		if ctx.Err() != nil {
			return nil, false
		}
		if !logged {
			c.log.Warn("app reply feed not ready; retrying", zap.Error(err))
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, false
		case <-time.After(c.opt.PollWait):
		}
	}
}

// setup creates (or updates) the feed stream and the webhook consumers.
// The webhook consumers are made before any reply is moved, so that on
// first start none published by this process is missed.
func (c *Connector) setup(ctx context.Context) (map[string]jetstream.Consumer, error) {
	st, err := c.bus.JS.CreateOrUpdateStream(ctx, FeedStreamConfig(c.opt))
	if err != nil {
		return nil, fmt.Errorf("ensure stream %s: %w", bus.StreamAppReplies, err)
	}
	c.setFeed(st)
	hooks := map[string]jetstream.Consumer{}
	for app := range c.opt.Apps {
		wh, ok := c.opt.Webhooks[app]
		if !ok || wh.URL == "" {
			// A webhook removed from the config must not keep a backlog
			// that would all be posted if it came back.
			err := c.bus.JS.DeleteConsumer(ctx, bus.StreamAppReplies, bus.ConsumerAppWebhook(app))
			if err != nil && !errors.Is(err, jetstream.ErrConsumerNotFound) {
				return nil, fmt.Errorf("remove webhook consumer of app %s: %w", app, err)
			}
			continue
		}
		cons, err := c.bus.JS.CreateOrUpdateConsumer(ctx, bus.StreamAppReplies, c.webhookConsumerConfig(app))
		if err != nil {
			return nil, fmt.Errorf("webhook consumer of app %s: %w", app, err)
		}
		hooks[app] = cons
	}
	return hooks, nil
}

// outboundDeliverer moves replies from outbound.app into the feed. It
// never gives up on a bus failure; only a reply that cannot be decoded or
// placed is failed.
func (c *Connector) outboundDeliverer() *webhook.Deliverer {
	return &webhook.Deliverer{
		JS:     c.bus.JS,
		Stream: bus.StreamOutbound,
		Config: jetstream.ConsumerConfig{
			Durable:       bus.ConsumerOutbound(message.App),
			Description:   "in-app connector: replies into the app reply feed",
			FilterSubject: bus.OutboundSubject(message.App),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       outboundAckWait,
			MaxAckPending: maxAckPending,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		},
		Deliver:     c.toFeed,
		Backoff:     func(n int) time.Duration { return min(c.opt.Backoff(n), maxBusBackoff) },
		OnDelivered: c.reportSent,
		OnGiveUp:    c.outboundFailed,
		PollWait:    c.opt.PollWait,
		Log:         c.log.Named("outbound"),
	}
}

// toFeed appends one outbound reply to the feed. The Deliverer acks the
// outbound message only after this returned nil, that is after JetStream
// stored the feed entry; the outbound ID as Nats-Msg-Id makes a
// redelivery a no-op.
func (c *Connector) toFeed(ctx context.Context, m jetstream.Msg) error {
	o, err := message.DecodeOutbound(m.Data())
	if err != nil {
		return webhook.Permanent(err)
	}
	app, err := c.appOf(o)
	if err != nil {
		return webhook.Permanent(err)
	}
	data, err := json.Marshal(replyOf(o))
	if err != nil {
		return webhook.Permanent(fmt.Errorf("encode reply %s: %w", o.ID, err))
	}
	ack, err := c.bus.Publish(ctx, bus.AppReplySubject(app, o.To), data, o.ID, nil)
	if err != nil {
		if errors.Is(err, bus.ErrTooLarge) {
			return webhook.Permanent(err)
		}
		return fmt.Errorf("reply %s into the feed: %w", o.ID, err)
	}
	c.log.Info("app reply in feed", zap.String("app", app), zap.String("message_id", o.ID),
		zap.Uint64("cursor", ack.Sequence), zap.Bool("duplicate", ack.Duplicate))
	return nil
}

// appOf is the app a reply goes out through: its From when that is a
// configured app, else the only app there is.
func (c *Connector) appOf(o *message.Outbound) (string, error) {
	if _, ok := c.opt.Apps[o.From]; ok && o.From != "" {
		return o.From, nil
	}
	if len(c.opt.Apps) == 1 {
		for app := range c.opt.Apps {
			return app, nil
		}
	}
	return "", fmt.Errorf("reply %s is from %q, which is not a configured app (%d apps configured)", o.ID, o.From, len(c.opt.Apps))
}

func (c *Connector) reportSent(ctx context.Context, m jetstream.Msg) {
	if o, err := message.DecodeOutbound(m.Data()); err == nil {
		c.report(ctx, o.ID, o.ConversationID, message.DeliverySent, "")
	}
}

func (c *Connector) outboundFailed(ctx context.Context, m jetstream.Msg, reason error) {
	o, err := message.DecodeOutbound(m.Data())
	if err != nil {
		// Nothing to report on: no id. The message is terminated so it
		// cannot block the stream; the log (without the body) says why.
		c.log.Error("undecodable outbound message dropped", zap.String("subject", m.Subject()), zap.Error(err))
		return
	}
	c.log.Error("app reply failed", zap.String("message_id", o.ID), zap.Error(reason))
	c.report(ctx, o.ID, o.ConversationID, message.DeliveryFailed, reason.Error())
}

// report publishes a delivery report. Its Nats-Msg-Id is status:id, so
// repeats (a redelivery, a second read of the feed) within the duplicate
// window are dropped; later ones are harmless, the store keeps the
// furthest status.
func (c *Connector) report(ctx context.Context, id string, conv int64, status, detail string) {
	data, err := json.Marshal(c.delivery(id, conv, status, detail))
	if err != nil {
		c.log.Error("encode delivery report", zap.String("message_id", id), zap.Error(err))
		return
	}
	if _, err := c.bus.Publish(ctx, bus.DeliverySubject(message.App), data, status+":"+id, nil); err != nil {
		c.log.Warn("delivery report not published", zap.String("message_id", id), zap.String("status", status), zap.Error(err))
	}
}

func (c *Connector) delivery(id string, conv int64, status, detail string) message.Delivery {
	return message.Delivery{V: message.OutboundVersion, MessageID: id, ConversationID: conv, Channel: message.App,
		Status: status, Detail: detail, At: c.opt.Now().UTC()}
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
