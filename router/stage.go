package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/queue"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Options tunes the stage.
type Options struct {
	// Batch is how many inbound messages are routed together; their queue
	// publishes are in flight at once, which is where throughput comes
	// from when every write is fsynced.
	Batch int
	// AckWait is how long an inbound message may stay unacknowledged
	// before JetStream gives it to another router.
	AckWait time.Duration
	// PublishTimeout bounds the wait for the queue publish acks.
	PublishTimeout time.Duration
	// Now is the clock (tests fix it).
	Now func() time.Time
}

// maxAckPending caps unacknowledged inbound messages across all routers,
// which bounds the redelivery storm after a crash.
const maxAckPending = 10_000

// Stage is the routing stage. Several stages, in one process or many, share
// the durable consumer bus.ConsumerRouter and so split the work.
type Stage struct {
	b       *bus.Bus
	decider Decider
	log     *zap.Logger
	opt     Options
}

// New returns a stage that routes with d.
func New(b *bus.Bus, d Decider, log *zap.Logger, opt Options) *Stage {
	if opt.Batch <= 0 {
		opt.Batch = 256
	}
	if opt.AckWait <= 0 {
		opt.AckWait = 30 * time.Second
	}
	if opt.PublishTimeout <= 0 {
		opt.PublishTimeout = 10 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	return &Stage{b: b, decider: d, log: log, opt: opt}
}

// ConsumerConfig is the router's durable consumer.
func (s *Stage) ConsumerConfig() jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       bus.ConsumerRouter,
		Description:   "routing stage, shared by every router process",
		FilterSubject: bus.SubjectsInbound,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       s.opt.AckWait,
		MaxAckPending: maxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}
}

// idleWait is how long one fetch waits for work when the stream is idle;
// it bounds how long a stop takes.
const idleWait = 500 * time.Millisecond

// Run routes until ctx ends, then finishes the batch in hand (publishes
// and acks it) before returning.
//
// It fetches explicitly rather than through a background consumer so that
// no pull request is left open at a stop: every message the server handed
// to this stage has been routed and acked when Run returns.
func (s *Stage) Run(ctx context.Context) error {
	cons, err := s.b.JS.CreateOrUpdateConsumer(ctx, bus.StreamInbound, s.ConsumerConfig())
	if err != nil {
		return fmt.Errorf("router consumer: %w", err)
	}
	batch := make([]jetstream.Msg, 0, s.opt.Batch)
	for ctx.Err() == nil {
		// Take whatever is waiting, up to a batch, without waiting.
		batch, err = fetch(batch[:0], func() (jetstream.MessageBatch, error) { return cons.FetchNoWait(s.opt.Batch) })
		if err == nil && len(batch) == 0 {
			// Idle: wait for the next message, then loop back to collect
			// whatever arrived with it.
			batch, err = fetch(batch[:0], func() (jetstream.MessageBatch, error) {
				return cons.Fetch(1, jetstream.FetchMaxWait(idleWait))
			})
		}
		if len(batch) > 0 {
			s.route(batch)
		}
		if err != nil {
			s.log.Warn("router fetch", zap.Error(err))
			select {
			case <-ctx.Done():
			case <-time.After(idleWait):
			}
		}
	}
	return nil
}

func fetch(into []jetstream.Msg, f func() (jetstream.MessageBatch, error)) ([]jetstream.Msg, error) {
	b, err := f()
	if err != nil {
		return into, err
	}
	for m := range b.Messages() {
		into = append(into, m)
	}
	if err := b.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return into, err
	}
	return into, nil
}

type pending struct {
	in  jetstream.Msg
	fut jetstream.PubAckFuture
	id  string
}

// route handles one batch: decide every message, publish every queue item
// at once, then ack each inbound message whose item is durable.
func (s *Stage) route(batch []jetstream.Msg) {
	// The batch was taken from the stream; finish it even if shutdown has
	// begun, so no work is abandoned half done.
	ctx, cancel := context.WithTimeout(context.Background(), s.opt.PublishTimeout)
	defer cancel()
	inflight := make([]pending, 0, len(batch))
	for _, in := range batch {
		m, err := message.Decode(in.Data())
		if err != nil {
			s.deadLetter(ctx, in, err)
			continue
		}
		d := s.decider.Decide(m)
		it := &queue.Item{
			V: queue.ItemVersion, ID: m.ID, Queue: d.Queue, Urgency: d.Urgency, Topic: d.Topic,
			Explain: d.Explain, RulesVersion: d.RulesVersion, RoutedAt: s.opt.Now().UTC(), Message: m,
		}
		data, err := json.Marshal(it)
		if err != nil {
			s.deadLetter(ctx, in, fmt.Errorf("encode queue item: %w", err))
			continue
		}
		fut, err := s.b.JS.PublishMsgAsync(&nats.Msg{Subject: it.Subject(), Data: data}, jetstream.WithMsgID("route:"+m.ID))
		if err != nil {
			s.log.Warn("enqueue", zap.String("message_id", m.ID), zap.Error(err))
			_ = in.NakWithDelay(time.Second)
			continue
		}
		inflight = append(inflight, pending{in: in, fut: fut, id: m.ID})
		if ce := s.log.Check(zap.DebugLevel, "routed"); ce != nil {
			ce.Write(zap.String("message_id", m.ID), zap.String("channel", string(m.Channel)),
				zap.String("queue", d.Queue), zap.String("urgency", string(d.Urgency)))
		}
	}
	for _, p := range inflight {
		select {
		case <-p.fut.Ok():
			if err := p.in.Ack(); err != nil {
				// The item is durable; a lost ack means a redelivery that
				// the queue's duplicate window turns into a no-op.
				s.log.Warn("ack inbound", zap.String("message_id", p.id), zap.Error(err))
			}
		case err := <-p.fut.Err():
			s.log.Warn("enqueue failed; will retry", zap.String("message_id", p.id), zap.Error(err))
			_ = p.in.NakWithDelay(time.Second)
		case <-ctx.Done():
			s.log.Warn("enqueue timed out; will retry", zap.String("message_id", p.id))
			_ = p.in.NakWithDelay(time.Second)
		}
	}
}

// deadLetter moves a message the stage cannot route out of the way, with
// the reason, and acks it only once the dead letter is durable.
func (s *Stage) deadLetter(ctx context.Context, in jetstream.Msg, reason error) {
	md, err := in.Metadata()
	seq := uint64(0)
	if err == nil {
		seq = md.Sequence.Stream
	}
	hdr := nats.Header{}
	hdr.Set(bus.HeaderDeadReason, reason.Error())
	hdr.Set(bus.HeaderOrigSubject, in.Subject())
	hdr.Set(bus.HeaderOrigSeq, strconv.FormatUint(seq, 10))
	_, err = s.b.Publish(ctx, bus.DeadLetterSubject("router"), in.Data(), "router-dead:"+strconv.FormatUint(seq, 10), hdr)
	if err != nil {
		s.log.Warn("dead-letter failed; will retry", zap.Uint64("seq", seq), zap.Error(err))
		_ = in.NakWithDelay(time.Second)
		return
	}
	s.log.Warn("dead-lettered inbound message", zap.Uint64("seq", seq), zap.String("subject", in.Subject()),
		zap.String("reason", reason.Error()), zap.Bool("unsupported_version", errors.Is(reason, message.ErrUnsupportedVersion)))
	if err := in.Ack(); err != nil {
		s.log.Warn("ack dead-lettered message", zap.Uint64("seq", seq), zap.Error(err))
	}
}
