package router

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/queue"
	"github.com/inroute/inroute/store"
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
	// AutoReply, if set, sends a decision's auto-reply for each new
	// conversation before the inbound message is acknowledged.
	AutoReply AutoReplier
}

// AutoReplier sends an auto-reply template on a conversation. It must be
// idempotent per conversation: a redelivered message asks again.
type AutoReplier interface {
	AutoReply(ctx context.Context, m *message.Message, template string, conversation int64) error
}

// maxAckPending caps unacknowledged inbound messages across all routers,
// which bounds the redelivery storm after a crash.
const maxAckPending = 10_000

// Stage is the routing stage. Several stages, in one process or many, share
// the durable consumer bus.ConsumerRouter and so split the work.
type Stage struct {
	b       *bus.Bus
	rec     Recorder
	decider Decider
	log     *zap.Logger
	opt     Options
	metrics metrics
}

// New returns a stage that routes with d and records into rec.
func New(b *bus.Bus, rec Recorder, d Decider, log *zap.Logger, opt Options) *Stage {
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
	return &Stage{b: b, rec: rec, decider: d, log: log, opt: opt, metrics: newMetrics()}
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
	// Acks are fire-and-forget publishes; push the last batch's out of the
	// client's buffer so a process that exits next does not lose them and
	// redeliver work that was done.
	if err := s.b.NC.FlushTimeout(s.opt.PublishTimeout); err != nil {
		s.log.Warn("flush acks at stop", zap.Error(err))
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

// Recorder keeps what the stage routes: contacts, conversations, messages.
// store.Store is one.
type Recorder interface {
	Record(ctx context.Context, in []store.Inbound) ([]store.Result, error)
}

type pending struct {
	in  jetstream.Msg
	fut jetstream.PubAckFuture
	id  string
}

type decided struct {
	in jetstream.Msg
	m  *message.Message
	d  Decision
}

// route handles one batch: decide every message, record the batch in one
// store transaction, publish every conversation's queue item at once, then
// ack each inbound message whose item is durable. A failure anywhere
// before the ack leaves the message to be delivered again; the store and
// the queue both recognise the repeat.
func (s *Stage) route(batch []jetstream.Msg) {
	// The batch was taken from the stream; finish it even if shutdown has
	// begun, so no work is abandoned half done.
	ctx, cancel := context.WithTimeout(context.Background(), s.opt.PublishTimeout)
	defer cancel()
	work := make([]decided, 0, len(batch))
	for _, in := range batch {
		m, err := message.Decode(in.Data())
		if err != nil {
			s.deadLetter(ctx, in, err)
			continue
		}
		d := s.decider.Decide(m)
		if m.Automatic != "" {
			d = automatic(m, d)
		}
		work = append(work, decided{in: in, m: m, d: d})
	}
	if len(work) == 0 {
		return
	}
	results, err := s.record(ctx, work)
	if err != nil {
		work, results = s.isolate(ctx, work, err)
		if len(work) == 0 {
			return
		}
	}
	inflight := make([]pending, 0, len(work))
	for i, w := range work {
		r := results[i]
		c := r.Conversation
		if r.Automatic || w.m.Automatic != "" {
			// Recorded, and that is all: no queue item, no auto-reply (an
			// answer to an auto-responder is how mail loops start).
			s.ack(w.in, w.m.ID)
			if ce := s.log.Check(zap.DebugLevel, "recorded automatic message"); ce != nil {
				ce.Write(zap.String("message_id", w.m.ID), zap.String("automatic", string(w.m.Automatic)),
					zap.Int64("conversation", c.ID), zap.Bool("duplicate", r.Duplicate), zap.String("threading", r.Threading))
			}
			continue
		}
		if w.d.AutoReply != "" && r.Started && s.opt.AutoReply != nil {
			// Before the ack: a failure here redelivers the message, and
			// the reply's key (one per conversation) keeps it to one.
			if err := s.opt.AutoReply.AutoReply(ctx, w.m, w.d.AutoReply, c.ID); err != nil {
				s.log.Warn("auto-reply failed; will retry", zap.String("message_id", w.m.ID), zap.Int64("conversation", c.ID), zap.Error(err))
				_ = w.in.NakWithDelay(time.Second)
				continue
			}
		}
		if !r.Duplicate {
			s.metrics.countIn(w.m.Channel)
		}
		if c.Status != store.StatusQueued {
			// Assigned or waiting: it is with an agent, not in a queue.
			s.ack(w.in, w.m.ID)
			continue
		}
		it := &queue.Item{
			V: queue.ItemVersion, ID: w.m.ID, ConversationID: c.ID, ContactID: c.ContactID, Queue: c.Queue,
			Urgency: c.Urgency, Topic: c.Topic, Tags: w.d.Tags, AutoReply: w.d.AutoReply, Threading: r.Threading, Explain: w.d.Explain,
			RulesVersion: w.d.RulesVersion, RoutedAt: s.opt.Now().UTC(), Message: w.m,
		}
		if r.Joined && r.PrevStatus == store.StatusQueued && (r.PrevQueue != c.Queue || r.PrevUrgency != c.Urgency) {
			// The conversation moved up (or to another queue): take its
			// old item out so it is not offered twice.
			if err := s.purgeItem(ctx, bus.QueueSubject(r.PrevQueue, r.PrevUrgency, c.ID)); err != nil {
				s.log.Warn("remove moved queue item; will retry", zap.Int64("conversation", c.ID), zap.Error(err))
				_ = w.in.NakWithDelay(time.Second)
				continue
			}
		}
		data, err := json.Marshal(it)
		if err != nil {
			s.deadLetter(ctx, w.in, fmt.Errorf("encode queue item: %w", err))
			continue
		}
		fut, err := s.b.JS.PublishMsgAsync(&nats.Msg{Subject: it.Subject(), Data: data}, jetstream.WithMsgID("route:"+w.m.ID))
		if err != nil {
			s.log.Warn("enqueue", zap.String("message_id", w.m.ID), zap.Error(err))
			_ = w.in.NakWithDelay(time.Second)
			continue
		}
		inflight = append(inflight, pending{in: w.in, fut: fut, id: w.m.ID})
		if ce := s.log.Check(zap.DebugLevel, "routed"); ce != nil {
			ce.Write(zap.String("message_id", w.m.ID), zap.String("channel", string(w.m.Channel)),
				zap.Int64("conversation", c.ID), zap.String("queue", c.Queue), zap.String("urgency", string(c.Urgency)),
				zap.Bool("duplicate", r.Duplicate), zap.String("threading", r.Threading))
		}
	}
	for _, p := range inflight {
		select {
		case <-p.fut.Ok():
			s.ack(p.in, p.id)
		case err := <-p.fut.Err():
			s.log.Warn("enqueue failed; will retry", zap.String("message_id", p.id), zap.Error(err))
			_ = p.in.NakWithDelay(time.Second)
		case <-ctx.Done():
			s.log.Warn("enqueue timed out; will retry", zap.String("message_id", p.id))
			_ = p.in.NakWithDelay(time.Second)
		}
	}
}

// automatic keeps the decision on a machine-written message for the
// record (an agent who opens the conversation sees what the rules made of
// it) and says why nothing came of it. The connector may say what gave
// the message away in message.ExtraAutomaticReason.
func automatic(m *message.Message, d Decision) Decision {
	what := "automatic message"
	if m.Channel == message.Email {
		what = "automatic mail"
	}
	kind := string(m.Automatic)
	if reason := strings.TrimSpace(m.Extra[message.ExtraAutomaticReason]); reason != "" {
		kind += ": " + reason
	}
	d.Explain = append(slices.Clip(d.Explain), fmt.Sprintf("%s (%s): recorded, not routed", what, kind))
	d.AutoReply = ""
	return d
}

// poisonAfter is how many deliveries a message that fails to record on its
// own gets before it is dead-lettered instead of blocking forever.
const poisonAfter = 5

// isolate runs after a batch failed to record. Recorded one by one, the
// messages that succeed go on; if some succeed, those that fail alone are
// bad input and go to the dead-letter subject; if all fail, the store is
// the problem and everything is retried later (a message failing alone
// again and again is dead-lettered after poisonAfter deliveries).
func (s *Stage) isolate(ctx context.Context, work []decided, batchErr error) ([]decided, []store.Result) {
	s.log.Warn("record batch failed; recording one by one", zap.Int("messages", len(work)), zap.Error(batchErr))
	var ok []decided
	var results []store.Result
	type failure struct {
		w   decided
		err error
	}
	var failed []failure
	for _, w := range work {
		r, err := s.record(ctx, []decided{w})
		if err != nil {
			failed = append(failed, failure{w, err})
			continue
		}
		ok, results = append(ok, w), append(results, r[0])
	}
	for _, f := range failed {
		delivered := uint64(0)
		if md, err := f.w.in.Metadata(); err == nil {
			delivered = md.NumDelivered
		}
		if len(ok) > 0 || delivered >= poisonAfter {
			s.deadLetter(ctx, f.w.in, fmt.Errorf("record: %w", f.err))
			continue
		}
		s.log.Error("record failed; will retry", zap.String("message_id", f.w.m.ID), zap.Uint64("deliveries", delivered), zap.Error(f.err))
		_ = f.w.in.NakWithDelay(time.Second)
	}
	return ok, results
}

func (s *Stage) record(ctx context.Context, work []decided) ([]store.Result, error) {
	in := make([]store.Inbound, len(work))
	for i, w := range work {
		in[i] = store.Inbound{Msg: w.m, Decision: store.Decision{
			Queue: w.d.Queue, Urgency: w.d.Urgency, Topic: w.d.Topic, Explain: w.d.Explain, RulesVersion: w.d.RulesVersion,
			Tags: w.d.Tags, AutoReply: w.d.AutoReply,
		}}
	}
	return s.rec.Record(ctx, in)
}

func (s *Stage) ack(in jetstream.Msg, id string) {
	if md, err := in.Metadata(); err == nil && md.NumDelivered == 1 {
		// Latency from the connector's publish to the message's hand-off,
		// for first deliveries only: a redelivery measures the retry delay.
		s.metrics.latency.Observe(s.opt.Now().Sub(md.Timestamp).Seconds())
	}
	if err := in.Ack(); err != nil {
		// The work is durable; a lost ack means a redelivery that the store
		// and the queue's duplicate window turn into a no-op.
		s.log.Warn("ack inbound", zap.String("message_id", id), zap.Error(err))
	}
}

func (s *Stage) purgeItem(ctx context.Context, subject string) error {
	st, err := s.b.JS.Stream(ctx, bus.StreamQueues)
	if err != nil {
		return err
	}
	return st.Purge(ctx, jetstream.WithPurgeSubject(subject))
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
