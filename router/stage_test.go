package router_test

import (
	"context"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/queue"
	"github.com/inroute/inroute/router"
	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/store/sqlite"
	jetstream "github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest"
)

func guidance() *guidanceDecider {
	return &guidanceDecider{
		Queue:   "general",
		Urgency: map[message.Channel]message.Urgency{message.Voice: message.Urgent, message.App: message.High, message.Email: message.Low},
		Version: "test",
	}
}

func msg(ch message.Channel, chID, text string) *message.Message {
	return &message.Message{V: 1, ID: message.NewID(), Channel: ch, ChannelMessageID: chID,
		ReceivedAt: time.Now().UTC(), From: message.Party{Address: "c-" + chID}, Text: text}
}

func publishAsync(t *testing.T, b *bus.Bus, msgs []*message.Message) {
	t.Helper()
	// In chunks: nats.go stalls beyond 4,000 unacknowledged async publishes.
	for i, m := range msgs {
		data, err := message.Encode(m)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.JS.PublishAsync(bus.InboundSubject(m.Channel), data, jetstream.WithMsgID(m.DedupeKey())); err != nil {
			t.Fatal(err)
		}
		if (i+1)%1000 == 0 || i == len(msgs)-1 {
			select {
			case <-b.JS.PublishAsyncComplete():
			case <-time.After(30 * time.Second):
				t.Fatal("publishes not acknowledged")
			}
		}
	}
}

// countingDecider counts how often each message is decided, across stages.
type countingDecider struct {
	inner router.Decider
	mu    sync.Mutex
	seen  map[string]int
	calls atomic.Int64
}

func (c *countingDecider) Decide(m *message.Message) router.Decision {
	c.mu.Lock()
	c.seen[m.ID]++
	c.mu.Unlock()
	c.calls.Add(1)
	return c.inner.Decide(m)
}

// openStore opens a real SQLite store in the test's temp dir; every stage
// of one test shares it, as every router process shares one database.
func openStore(t testing.TB) store.Store {
	t.Helper()
	if st, ok := stores.Load(t.Name()); ok {
		return st.(store.Store)
	}
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "inroute.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	stores.Store(t.Name(), st)
	t.Cleanup(func() { stores.Delete(t.Name()); st.Close() })
	return st
}

var stores sync.Map // test name -> store.Store

func startStage(t *testing.T, b *bus.Bus, d router.Decider) (stop func()) {
	t.Helper()
	return startStageWith(t, b, d, router.Options{})
}

func startStageWith(t *testing.T, b *bus.Bus, d router.Decider, opt router.Options) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	st := router.New(b, openStore(t), d, testLogger(t), opt)
	go func() { done <- st.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("stage: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Error("stage did not stop")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func streamMsgs(t *testing.T, b *bus.Bus, stream string) uint64 {
	t.Helper()
	n, err := countMsgs(b, stream)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// countMsgs is streamMsgs for polls that must survive a reconnect.
func countMsgs(b *bus.Bus, stream string) (uint64, error) {
	st, err := b.JS.Stream(context.Background(), stream)
	if err != nil {
		return 0, err
	}
	info, err := st.Info(context.Background())
	if err != nil {
		return 0, err
	}
	return info.State.Msgs, nil
}

// readQueue reads every item on QUEUES without consuming it (a work-queue
// stream allows no second consumer, so it reads by sequence).
func readQueue(t *testing.T, b *bus.Bus, n int) []*queue.Item {
	t.Helper()
	ctx := context.Background()
	st, err := b.JS.Stream(ctx, bus.StreamQueues)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var items []*queue.Item
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && len(items) < n; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue // deleted
		}
		it, err := queue.DecodeItem(raw.Data)
		if err != nil {
			t.Fatal(err)
		}
		items = append(items, it)
	}
	return items
}

func TestTwoStagesRouteEachMessageOnce(t *testing.T) {
	srv := testbus.Start(t)
	pub := srv.Connect(t)
	const n = 10_000
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = msg(message.App, fmt.Sprintf("m-%d", i), "hello")
	}
	d := &countingDecider{inner: guidance(), seen: map[string]int{}}
	// Two routers, each with its own connection, as two processes would.
	startStage(t, testbus.Connect(t, srv.URL), d)
	startStage(t, testbus.Connect(t, srv.URL), d)
	publishAsync(t, pub, msgs)

	testbus.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		if got := streamMsgs(t, pub, bus.StreamQueues); got != n {
			return fmt.Errorf("queue has %d items, want %d", got, n)
		}
		return nil
	})
	items := readQueue(t, pub, n+1)
	if len(items) != n {
		t.Fatalf("queue has %d items, want %d", len(items), n)
	}
	ids := map[string]bool{}
	for _, it := range items {
		if ids[it.ID] {
			t.Fatalf("item %s enqueued twice", it.ID)
		}
		ids[it.ID] = true
		if it.Queue != "general" || it.Urgency != message.High || it.RulesVersion != "test" || len(it.Explain) == 0 {
			t.Fatalf("bad item %+v", it)
		}
	}
	for _, m := range msgs {
		if !ids[m.ID] {
			t.Fatalf("message %s was never routed", m.ID)
		}
	}
	// Each message decided once: no redelivery happened.
	d.mu.Lock()
	defer d.mu.Unlock()
	if len(d.seen) != n {
		t.Fatalf("decided %d distinct messages, want %d", len(d.seen), n)
	}
	for id, c := range d.seen {
		if c != 1 {
			t.Fatalf("message %s decided %d times", id, c)
		}
	}
	// The router acks only after enqueueing: nothing is left pending.
	cons, err := pub.JS.Consumer(context.Background(), bus.StreamInbound, bus.ConsumerRouter)
	if err != nil {
		t.Fatal(err)
	}
	testbus.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		info, err := cons.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumAckPending != 0 || info.NumPending != 0 {
			return fmt.Errorf("router consumer: %d ack pending, %d pending", info.NumAckPending, info.NumPending)
		}
		return nil
	})
}

func TestUrgencyFromChannelGuidance(t *testing.T) {
	srv := testbus.Start(t)
	b := srv.Connect(t)
	startStage(t, b, guidance())
	in := []*message.Message{msg(message.Email, "e1", "mail"), msg(message.Voice, "v1", "call"), msg(message.SMS, "s1", "text")}
	publishAsync(t, b, in)
	testbus.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got := streamMsgs(t, b, bus.StreamQueues); got != 3 {
			return fmt.Errorf("%d items", got)
		}
		return nil
	})
	want := map[message.Channel]message.Urgency{message.Email: message.Low, message.Voice: message.Urgent, message.SMS: message.Normal}
	for _, it := range readQueue(t, b, 3) {
		if it.Urgency != want[it.Message.Channel] {
			t.Errorf("%s: urgency %s, want %s", it.Message.Channel, it.Urgency, want[it.Message.Channel])
		}
	}
}

func TestUndecodableGoesToDeadLetter(t *testing.T) {
	srv := testbus.Start(t)
	b := srv.Connect(t)
	startStage(t, b, guidance())
	ctx := context.Background()
	for _, bad := range [][]byte{[]byte("not json"), []byte(`{"v":7}`), []byte(`{"v":1,"id":"x"}`)} {
		if _, err := b.Publish(ctx, bus.InboundSubject(message.App), bad, "", nil); err != nil {
			t.Fatal(err)
		}
	}
	good := msg(message.App, "ok", "fine")
	publishAsync(t, b, []*message.Message{good})
	testbus.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if d, q := streamMsgs(t, b, bus.StreamDeadLetter), streamMsgs(t, b, bus.StreamQueues); d != 3 || q != 1 {
			return fmt.Errorf("dead %d (want 3), queued %d (want 1)", d, q)
		}
		return nil
	})
	st, _ := b.JS.Stream(ctx, bus.StreamDeadLetter)
	raw, err := st.GetMsg(ctx, 2)
	if err != nil {
		t.Fatal(err)
	}
	reason := raw.Header.Get(bus.HeaderDeadReason)
	if reason == "" || raw.Header.Get(bus.HeaderOrigSubject) != "inbound.app" {
		t.Fatalf("dead letter lacks reason or subject: %v", raw.Header)
	}
	if string(raw.Data) != `{"v":7}` {
		t.Fatalf("dead letter changed the payload: %q", raw.Data)
	}
	t.Logf("reason: %s", reason)
}

func TestStopFinishesInFlightBatch(t *testing.T) {
	srv := testbus.Start(t)
	b := srv.Connect(t)
	const n = 2000
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = msg(message.App, fmt.Sprintf("s-%d", i), "x")
	}
	publishAsync(t, b, msgs)
	stop := startStage(t, b, guidance())
	testbus.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		if streamMsgs(t, b, bus.StreamQueues) == 0 {
			return fmt.Errorf("nothing routed yet")
		}
		return nil
	})
	stop()
	// After a clean stop nothing may be left half done: every message the
	// router took is either enqueued and acked, or still waiting unacked.
	// The server applies acks on its own goroutine, a moment after they
	// arrive; nothing else acks once the stage is stopped, and the wait is
	// far below the ack wait, so reaching zero proves the stage acked.
	cons, _ := b.JS.Consumer(context.Background(), bus.StreamInbound, bus.ConsumerRouter)
	var info *jetstream.ConsumerInfo
	testbus.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		var err error
		if info, err = cons.Info(context.Background()); err != nil {
			return err
		}
		if info.NumAckPending != 0 {
			return fmt.Errorf("%d messages left unacked after stop", info.NumAckPending)
		}
		return nil
	})
	queued := streamMsgs(t, b, bus.StreamQueues)
	if queued+info.NumPending != n {
		t.Fatalf("queued %d + pending %d != %d", queued, info.NumPending, n)
	}
	// A new stage routes the rest; nothing twice.
	startStage(t, b, guidance())
	testbus.CheckFor(t, 20*time.Second, 20*time.Millisecond, func() error {
		if got := streamMsgs(t, b, bus.StreamQueues); got != n {
			return fmt.Errorf("%d queued", got)
		}
		return nil
	})
}

// NATS goes away in the middle of routing and comes back: every message is
// still routed exactly once (what was cut off mid-batch comes back after the
// ack wait; the queue's duplicate window absorbs what was enqueued but not
// acked).
func TestBusRestartMidRouting(t *testing.T) {
	srv := testbus.Start(t)
	pub := srv.Connect(t)
	const n = 3000
	msgs := make([]*message.Message, n)
	for i := range msgs {
		msgs[i] = msg(message.App, fmt.Sprintf("r-%d", i), "x")
	}
	publishAsync(t, pub, msgs)
	d := &countingDecider{inner: guidance(), seen: map[string]int{}}
	startStageWith(t, testbus.Connect(t, srv.URL), d, router.Options{AckWait: time.Second, Batch: 64})
	testbus.CheckFor(t, 10*time.Second, time.Millisecond, func() error {
		if d.calls.Load() == 0 {
			return fmt.Errorf("nothing routed yet")
		}
		return nil
	})
	srv.Restart()
	testbus.CheckFor(t, 60*time.Second, 50*time.Millisecond, func() error {
		got, err := countMsgs(pub, bus.StreamQueues)
		if err != nil {
			return err
		}
		if got != n {
			return fmt.Errorf("%d queued, want %d", got, n)
		}
		return nil
	})
	items := readQueue(t, pub, n+1)
	seen := map[string]bool{}
	for _, it := range items {
		if seen[it.ID] {
			t.Fatalf("%s enqueued twice", it.ID)
		}
		seen[it.ID] = true
	}
	if len(seen) != n {
		t.Fatalf("%d distinct items, want %d", len(seen), n)
	}
	t.Logf("decisions made: %d for %d messages (redeliveries after the restart)", d.calls.Load(), n)
}

// testLogger shows warnings and errors in the test log.
func testLogger(t *testing.T) *zap.Logger {
	return zaptest.NewLogger(t, zaptest.Level(zap.WarnLevel))
}

// guidanceDecider sends every message to one queue at its channel's
// default urgency: routing with no rules, so these tests are about the
// stage alone.
type guidanceDecider struct {
	Queue    string
	Urgency  map[message.Channel]message.Urgency
	Notes    map[message.Channel]string
	Version  string
	Fallback message.Urgency
}

var _ router.Decider = (*guidanceDecider)(nil)

func (g *guidanceDecider) Decide(m *message.Message) router.Decision {
	u, ok := g.Urgency[m.Channel]
	explain := fmt.Sprintf("channel guidance: %s messages start at %s", m.Channel, u)
	if !ok {
		u = g.Fallback
		if !u.Valid() {
			u = message.Normal
		}
		explain = fmt.Sprintf("channel %s has no guidance; default urgency %s", m.Channel, u)
	}
	if note := g.Notes[m.Channel]; note != "" {
		explain += " (" + note + ")"
	}
	return router.Decision{
		Queue:        g.Queue,
		Urgency:      u,
		Topic:        "general",
		Explain:      []string{"no routing rules yet: queue " + g.Queue, explain},
		RulesVersion: g.Version,
	}
}

// failingRecorder is the real store, except that any batch holding a
// message with the marker text fails, as PostgreSQL fails on input SQLite
// accepts: fault injection around real code.
type failingRecorder struct {
	router.Recorder
	marker string
}

func (f failingRecorder) Record(ctx context.Context, in []store.Inbound) ([]store.Result, error) {
	for _, x := range in {
		if x.Msg.Text == f.marker {
			return nil, fmt.Errorf("injected: the database refuses %q", f.marker)
		}
	}
	return f.Recorder.Record(ctx, in)
}

// One message the store refuses must not hold back the rest of its batch,
// and is dead-lettered with the reason instead of retried forever.
func TestPoisonMessageIsIsolated(t *testing.T) {
	srv := testbus.Start(t)
	b := srv.Connect(t)
	in := []*message.Message{msg(message.App, "g1", "fine"), msg(message.App, "p1", "poison"), msg(message.App, "g2", "fine too")}
	publishAsync(t, b, in)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		done <- router.New(b, failingRecorder{openStore(t), "poison"}, guidance(), testLogger(t), router.Options{}).Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	testbus.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		q, err := countMsgs(b, bus.StreamQueues)
		if err != nil {
			return err
		}
		d, err := countMsgs(b, bus.StreamDeadLetter)
		if err != nil {
			return err
		}
		if q != 2 || d != 1 {
			return fmt.Errorf("queued %d (want 2), dead %d (want 1)", q, d)
		}
		return nil
	})
	st, _ := b.JS.Stream(context.Background(), bus.StreamDeadLetter)
	raw, err := st.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(raw.Header.Get(bus.HeaderDeadReason), "injected") {
		t.Fatalf("reason %q", raw.Header.Get(bus.HeaderDeadReason))
	}
}

// autoReplyDecider asks for an auto-reply on every message.
type autoReplyDecider struct{ router.Decider }

func (d autoReplyDecider) Decide(m *message.Message) router.Decision {
	dec := d.Decider.Decide(m)
	dec.AutoReply = "received"
	return dec
}

// autoReplies records the auto-replies the stage asks for.
type autoReplies struct {
	mu    sync.Mutex
	convs map[string]int64 // message id -> conversation
}

func (a *autoReplies) AutoReply(_ context.Context, m *message.Message, _ string, conversation int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.convs[m.ID] = conversation
	return nil
}

func (a *autoReplies) sent() map[string]int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.convs)
}

// A machine-written message is recorded and acked, but never queued and
// never answered; the person's message in the same batch is routed as ever.
func TestAutomaticRecordedNotRouted(t *testing.T) {
	srv := testbus.Start(t)
	b := srv.Connect(t)
	person := msg(message.Email, "<p1@mail.example.com>", "where is my refund")
	person.Thread.MessageID = "<p1@mail.example.com>"
	ooo := msg(message.Email, "<o1@mail.example.com>", "I am out of the office")
	ooo.Automatic = message.AutoReply
	ooo.From = person.From // the person's own out-of-office
	ooo.Thread = message.Thread{MessageID: "<o1@mail.example.com>", InReplyTo: person.Thread.MessageID}
	ooo.Extra = map[string]string{"automatic_reason": "Auto-Submitted: auto-replied"}
	bounce := msg(message.Email, "<b1@mx.example.net>", "delivery failed")
	bounce.Automatic = message.Bounce
	// Published before the stage starts, so they are routed as one batch.
	publishAsync(t, b, []*message.Message{person, ooo, bounce})
	replies := &autoReplies{convs: map[string]int64{}}
	startStageWith(t, b, autoReplyDecider{guidance()}, router.Options{AutoReply: replies})

	// Every message acked, the automatic ones included.
	testbus.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		cons, err := b.JS.Consumer(context.Background(), bus.StreamInbound, bus.ConsumerRouter)
		if err != nil {
			return err // the stage has not made it yet
		}
		info, err := cons.Info(context.Background())
		if err != nil {
			return err
		}
		if info.AckFloor.Stream != 3 || info.NumAckPending != 0 || info.NumPending != 0 {
			return fmt.Errorf("router consumer: acked up to %d, %d ack pending, %d pending", info.AckFloor.Stream, info.NumAckPending, info.NumPending)
		}
		return nil
	})
	if items := readQueue(t, b, 10); len(items) != 1 || items[0].ID != person.ID {
		ids := []string{}
		for _, it := range items {
			ids = append(ids, it.ID)
		}
		t.Fatalf("queue items %v; want only the person's message %s", ids, person.ID)
	}
	sent := replies.sent()
	if _, ok := sent[person.ID]; !ok || len(sent) != 1 {
		t.Fatalf("auto-replies to %v; want one, to the person's message %s", sent, person.ID)
	}

	st := openStore(t)
	ctx := context.Background()
	conv := sent[person.ID]
	msgs, err := st.Messages(ctx, conv)
	if err != nil {
		t.Fatal(err)
	}
	if len(msgs) != 2 || msgs[1].ID != ooo.ID || msgs[1].Automatic != message.AutoReply {
		t.Fatalf("conversation %d holds %d messages; want the person's and then the auto-reply, marked", conv, len(msgs))
	}
	d := msgs[1].Decision
	want := "automatic mail (auto-reply: Auto-Submitted: auto-replied): recorded, not routed"
	if d == nil || len(d.Explain) == 0 || d.Explain[len(d.Explain)-1] != want || d.AutoReply != "" {
		t.Fatalf("auto-reply's decision %+v; want the explanation %q last and no auto-reply template", d, want)
	}
	if c, err := st.Conversation(ctx, conv); err != nil || c.Status != store.StatusQueued || c.Urgency != message.Low {
		t.Fatalf("conversation %d: %+v, %v; want it queued at low, as the person's message left it", conv, c, err)
	}
	contacts, err := st.FindContacts(ctx, bounce.From.Address)
	if err != nil || len(contacts) != 1 {
		t.Fatalf("bounce sender: %v, %v", contacts, err)
	}
	convs, err := st.ContactConversations(ctx, contacts[0].ID)
	if err != nil || len(convs) != 1 || convs[0].Status != store.StatusResolved {
		t.Fatalf("bounce's conversations %+v, %v; want one, resolved", convs, err)
	}
}
