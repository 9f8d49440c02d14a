package desk_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/desk"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/outbox"
	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/store/sqlite"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"
)

// clock is the fake time both the store and the desk read.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type fixture struct {
	t     *testing.T
	ctx   context.Context
	clock *clock
	st    store.Store
	b     *bus.Bus
	srv   *testbus.Server
	d     *desk.Desk
	seq   int
	sla   []string // events.sla.* subjects seen
	slaMu sync.Mutex
}

func routing() *config.Routing {
	return &config.Routing{
		DefaultQueue: "general",
		Queues: map[string]config.RoutingQueue{
			"security":    {SLA: map[string]config.SLA{"urgent": {FirstResponse: config.Duration(15 * time.Minute), NextResponse: config.Duration(30 * time.Minute)}}},
			"payments":    {SLA: map[string]config.SLA{"high": {FirstResponse: config.Duration(time.Hour), NextResponse: config.Duration(2 * time.Hour)}}},
			"account":     {},
			"general":     {},
			"supervisors": {},
		},
		SLA: config.RoutingSLA{Escalation: []config.EscalationStep{
			{After: 0, Notify: true},
			{After: config.Duration(15 * time.Minute), Raise: 1, Notify: true},
			{After: config.Duration(time.Hour), MoveTo: "supervisors", Urgency: "urgent", Notify: true},
		}},
	}
}

func newFixture(t *testing.T) *fixture {
	f := &fixture{t: t, ctx: t.Context(), clock: &clock{now: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}}
	r := routing()
	st, err := sqlite.Open(f.ctx, filepath.Join(t.TempDir(), "inroute.db"), store.Options{Now: f.clock.Now,
		Deadline: desk.Deadline(r, func(from time.Time, d time.Duration) time.Time { return from.Add(d) })})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	f.st = st
	f.srv = testbus.Start(t)
	f.b = f.srv.Connect(t)
	sub, err := f.b.NC.Subscribe(bus.SubjectsSLA, func(m *nats.Msg) {
		f.slaMu.Lock()
		f.sla = append(f.sla, m.Subject)
		f.slaMu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	f.d = desk.New(desk.Options{
		Store: st, Mirror: &desk.BusMirror{Bus: f.b, Store: st, Now: f.clock.Now},
		Outbox: &outbox.Outbox{Store: st, Pub: outbox.BusPublisher{Bus: f.b}, AgentPhone: func(name string) string {
			if name == "bob" {
				return "+8613800000001"
			}
			return ""
		}},
		Agents: []config.Agent{
			{Name: "ann", Queues: []string{"payments", "account"}, Capacity: 5},
			{Name: "bob", Capacity: 2, Phone: "+8613800000001"},
			{Name: "root", Role: config.RoleAdmin, Capacity: 50},
		},
		Desk:    config.Desk{Lease: config.Duration(5 * time.Minute), CheckEvery: config.Duration(time.Second), OnlineWindow: config.Duration(time.Minute)},
		Routing: func() *config.Routing { return r },
		Log:     zaptest.NewLogger(t), Now: f.clock.Now, Notify: desk.BusNotify(f.b),
	})
	return f
}

func (f *fixture) agent(name string) *desk.Agent {
	a, ok := f.d.Agent(name)
	if !ok {
		f.t.Fatalf("no agent %s", name)
	}
	return a
}

// route records a customer message as the router would.
func (f *fixture) route(ch message.Channel, from, text, queue string, u message.Urgency) int64 {
	f.t.Helper()
	f.seq++
	f.clock.Advance(time.Second)
	m := &message.Message{V: 1, ID: message.NewID(), Channel: ch, ChannelMessageID: fmt.Sprintf("cm-%d", f.seq),
		ReceivedAt: f.clock.Now(), From: message.Party{Address: from}, To: message.Party{Address: "wallet"}, Text: text}
	res, err := f.st.Record(f.ctx, []store.Inbound{{Msg: m, Decision: store.Decision{Queue: queue, Urgency: u, Topic: queue,
		Explain: []string{"test rule put it in " + queue}}}})
	if err != nil {
		f.t.Fatal(err)
	}
	return res[0].Conversation.ID
}

func (f *fixture) next(name string) *desk.View {
	f.t.Helper()
	v, err := f.d.Next(f.ctx, f.agent(name), 0)
	if err != nil {
		f.t.Fatalf("next for %s: %v", name, err)
	}
	return v
}

func idOf(v *desk.View) int64 {
	if v == nil {
		return 0
	}
	return v.Conversation.ID
}

func TestNextPriorityAcrossQueuesAndSkills(t *testing.T) {
	f := newFixture(t)
	acc := f.route(message.App, "u1", "how do I bind my card", "account", message.High)
	pay := f.route(message.App, "u2", "my payment failed", "payments", message.High)
	sec := f.route(message.App, "u3", "someone took money from my account", "security", message.Urgent)
	low := f.route(message.Email, "c@example.com", "question", "payments", message.Low)

	// Ann takes payments and account: the two high ones oldest first,
	// then the low one; never security.
	for i, want := range []int64{acc, pay, low, 0} {
		if got := idOf(f.next("ann")); got != want {
			t.Fatalf("ann's pull %d: conversation %d, want %d", i, got, want)
		}
	}
	v := f.next("root")
	if idOf(v) != sec {
		t.Fatalf("root got %d, want the security conversation %d", idOf(v), sec)
	}
	if len(v.Explain) == 0 || v.Explain[0] != "test rule put it in security" || len(v.Messages) != 1 || v.Contact == nil {
		t.Fatalf("view lacks history or explanation: %+v", v)
	}
	if _, err := f.d.Show(f.ctx, f.agent("ann"), sec); !errors.Is(err, desk.ErrForbidden) {
		t.Fatalf("ann saw a security conversation: %v", err)
	}
}

func TestNextManyAgentsAtOnce(t *testing.T) {
	f := newFixture(t)
	const n = 30
	for i := range n {
		f.route(message.App, fmt.Sprint("user-", i), "help", "general", message.Urgency(message.Urgencies[i%4]))
	}
	var mu sync.Mutex
	owner := map[int64]string{}
	var wg sync.WaitGroup
	for _, name := range []string{"root", "bob", "root", "bob", "root", "root"} {
		wg.Go(func() {
			for {
				v, err := f.d.Next(context.Background(), f.agent(name), 0)
				if err != nil || v == nil {
					return
				}
				mu.Lock()
				if prev, dup := owner[v.Conversation.ID]; dup {
					t.Errorf("conversation %d given to %s and %s", v.Conversation.ID, prev, name)
				}
				owner[v.Conversation.ID] = name
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	bobs := 0
	for _, o := range owner {
		if o == "bob" {
			bobs++
		}
	}
	if len(owner) != n || bobs > 2 {
		t.Fatalf("%d of %d conversations handed out, bob (capacity 2) got %d", len(owner), n, bobs)
	}
	if _, err := f.d.Next(f.ctx, f.agent("bob"), 0); !errors.Is(err, store.ErrAtCapacity) && bobs == 2 {
		t.Fatalf("bob over capacity: %v", err)
	}
}

func TestLeaseLapsesAndComesBack(t *testing.T) {
	f := newFixture(t)
	id := f.route(message.App, "u1", "my payment failed", "payments", message.High)
	if idOf(f.next("ann")) != id {
		t.Fatal("ann did not get it")
	}
	f.clock.Advance(6 * time.Minute)
	f.d.Check(f.ctx)
	c, _ := f.st.Conversation(f.ctx, id)
	if c.Status != store.StatusQueued || c.Assignee != "" {
		t.Fatalf("after the lease: %s %q; want queued, unassigned", c.Status, c.Assignee)
	}
	// Back in the mirror too, at its urgency.
	testbus.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		_, err := f.b.JS.Stream(f.ctx, bus.StreamQueues)
		if err != nil {
			return err
		}
		st, _ := f.b.JS.Stream(f.ctx, bus.StreamQueues)
		if _, err := st.GetLastMsgForSubject(f.ctx, bus.QueueSubject("payments", message.High, id)); err != nil {
			return fmt.Errorf("no queue item for the lapsed conversation: %w", err)
		}
		return nil
	})
	if idOf(f.next("root")) != id {
		t.Fatal("the lapsed conversation could not be taken again")
	}
	// After a reply the conversation stays, lease or not.
	if _, _, err := f.d.Reply(f.ctx, f.agent("root"), id, desk.ReplyRequest{Text: "looking", Key: "k1"}); err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Hour)
	f.d.Check(f.ctx)
	if c, _ := f.st.Conversation(f.ctx, id); c.Assignee != "root" || c.Status != store.StatusAssigned {
		t.Fatalf("an answered conversation left its agent: %s %q", c.Status, c.Assignee)
	}
}

func outboundCount(t *testing.T, b *bus.Bus, ch message.Channel) uint64 {
	t.Helper()
	st, err := b.JS.Stream(t.Context(), bus.StreamOutbound)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(t.Context(), jetstream.WithSubjectFilter(bus.OutboundSubject(ch)))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Subjects[bus.OutboundSubject(ch)]
}

func TestReplyOnceAndOnTheChosenIdentity(t *testing.T) {
	f := newFixture(t)
	id := f.route(message.SMS, "+8613900000001", "payment failed", "payments", message.High)
	if idOf(f.next("bob")) != id {
		t.Fatal("bob did not get it")
	}
	var first string
	for i := range 3 { // a client retrying the same call
		m, created, err := f.d.Reply(f.ctx, f.agent("bob"), id, desk.ReplyRequest{Text: "We are on it", Key: "retry-1"})
		if err != nil || created != (i == 0) {
			t.Fatalf("reply %d: %v created=%v", i, err, created)
		}
		if i == 0 {
			first = m.ID
		} else if m.ID != first {
			t.Fatalf("retry %d made another reply %s", i, m.ID)
		}
	}
	if n := outboundCount(t, f.b, message.SMS); n != 1 {
		t.Fatalf("outbound.sms holds %d messages, want 1", n)
	}
	data, err := lastOutbound(t, f.b, message.SMS)
	if err != nil {
		t.Fatal(err)
	}
	if data.To != "+8613900000001" || data.ID != first || data.Agent != "bob" {
		t.Fatalf("outbound = %+v", data)
	}
	// A call-back to the same number rings bob's phone first.
	var r desk.ReplyRequest
	r.Text, r.Key, r.Channel = "calling you", "cb-1", message.Voice
	r.To.Kind, r.To.Value = store.KindPhone, "+8613900000001"
	if _, _, err := f.d.Reply(f.ctx, f.agent("bob"), id, r); err != nil {
		t.Fatal(err)
	}
	cb, err := lastOutbound(t, f.b, message.Voice)
	if err != nil || cb.AgentPhone != "+8613800000001" || cb.To != "+8613900000001" {
		t.Fatalf("call-back = %+v, %v", cb, err)
	}
	// Not an identity of this customer.
	r.Key, r.To.Value = "cb-2", "+8613900000002"
	if _, _, err := f.d.Reply(f.ctx, f.agent("bob"), id, r); !errors.Is(err, desk.ErrInvalid) {
		t.Fatalf("reply to a stranger's number: %v", err)
	}
	// Only the holder replies.
	if _, _, err := f.d.Reply(f.ctx, f.agent("ann"), id, desk.ReplyRequest{Text: "x", Key: "a"}); !errors.Is(err, desk.ErrForbidden) {
		t.Fatalf("ann replied on bob's conversation: %v", err)
	}
}

func lastOutbound(t *testing.T, b *bus.Bus, ch message.Channel) (*message.Outbound, error) {
	st, err := b.JS.Stream(t.Context(), bus.StreamOutbound)
	if err != nil {
		return nil, err
	}
	m, err := st.GetLastMsgForSubject(t.Context(), bus.OutboundSubject(ch))
	if err != nil {
		return nil, err
	}
	return message.DecodeOutbound(m.Data)
}

func TestSLABreachClimbsTheLadder(t *testing.T) {
	f := newFixture(t)
	id := f.route(message.App, "u1", "someone took money", "security", message.Urgent)
	pay := f.route(message.App, "u2", "payment failed", "payments", message.High)
	f.clock.Advance(14 * time.Minute)
	f.d.Check(f.ctx)
	if c, _ := f.st.Conversation(f.ctx, id); c.SLABreachedAt != nil {
		t.Fatal("breached before the target")
	}
	f.clock.Advance(2 * time.Minute) // security's 15m first-response target is missed
	f.d.Check(f.ctx)
	c, _ := f.st.Conversation(f.ctx, id)
	if c.SLABreachedAt == nil || c.SLAStep != 1 {
		t.Fatalf("at the breach: breached %v step %d; want breached, step 1 (notify)", c.SLABreachedAt, c.SLAStep)
	}
	f.clock.Advance(15 * time.Minute)
	f.d.Check(f.ctx)
	f.d.Check(f.ctx) // a second monitor round changes nothing
	if c, _ := f.st.Conversation(f.ctx, id); c.SLAStep != 2 || c.Urgency != message.Urgent {
		t.Fatalf("15m past: step %d urgency %s", c.SLAStep, c.Urgency)
	}
	p, _ := f.st.Conversation(f.ctx, pay)
	if p.SLABreachedAt != nil {
		t.Fatal("payments (1h target) breached at 32m")
	}
	f.clock.Advance(time.Hour)
	f.d.Check(f.ctx)
	c, _ = f.st.Conversation(f.ctx, id)
	if c.SLAStep != 3 || c.Queue != "supervisors" {
		t.Fatalf("an hour past: step %d queue %s; want 3, supervisors", c.SLAStep, c.Queue)
	}
	p, _ = f.st.Conversation(f.ctx, pay)
	if p.SLABreachedAt == nil || p.Urgency != message.Urgent {
		t.Fatalf("payments after 1h32m: breached %v urgency %s; want breached and raised to urgent", p.SLABreachedAt, p.Urgency)
	}
	testbus.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		f.slaMu.Lock()
		defer f.slaMu.Unlock()
		// security: breached + 3 steps; payments: breached + 2 steps.
		if len(f.sla) != 7 {
			return fmt.Errorf("sla events: %v", f.sla)
		}
		return nil
	})
	evs, _ := f.st.Events(f.ctx, id)
	var kinds []string
	for _, e := range evs {
		kinds = append(kinds, e.Kind)
	}
	want := []string{"routed", "sla_breached", "escalated", "escalated", "escalated"}
	if fmt.Sprint(kinds) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", kinds, want)
	}
	b, err := f.d.Board(f.ctx)
	if err != nil {
		t.Fatal(err)
	}
	data, _ := json.Marshal(b)
	if len(b.AtRisk) != 2 || !b.AtRisk[0].Breached {
		t.Fatalf("board at risk: %s", data)
	}
}

func TestActions(t *testing.T) {
	f := newFixture(t)
	id := f.route(message.App, "u1", "card binding", "account", message.Normal)
	ann, root := f.agent("ann"), f.agent("root")
	f.next("ann")
	steps := []struct {
		name string
		do   func() (*desk.View, error)
		want func(v *desk.View) bool
	}{
		{"note", func() (*desk.View, error) { return f.d.Note(f.ctx, ann, id, "customer is VIP") },
			func(v *desk.View) bool { return v.Events[len(v.Events)-1].Kind == store.EventNote }},
		{"urgency", func() (*desk.View, error) { return f.d.SetUrgency(f.ctx, ann, id, message.High) },
			func(v *desk.View) bool { return v.Conversation.Urgency == message.High }},
		{"transfer to queue", func() (*desk.View, error) {
			return f.d.Transfer(f.ctx, ann, id, desk.TransferRequest{Queue: "payments"})
		}, func(v *desk.View) bool {
			return v.Conversation.Queue == "payments" && v.Conversation.Status == store.StatusQueued
		}},
		{"transfer to agent (admin)", func() (*desk.View, error) {
			return f.d.Transfer(f.ctx, root, id, desk.TransferRequest{Agent: "bob"})
		}, func(v *desk.View) bool { return v.Conversation.Assignee == "bob" && v.Conversation.LeaseUntil == nil }},
		{"release (admin)", func() (*desk.View, error) { return f.d.Release(f.ctx, root, id) },
			func(v *desk.View) bool {
				return v.Conversation.Status == store.StatusQueued && v.Conversation.Assignee == ""
			}},
		{"resolve (admin)", func() (*desk.View, error) { return f.d.Resolve(f.ctx, root, id) },
			func(v *desk.View) bool { return v.Conversation.Status == store.StatusResolved }},
		{"reopen (ann: her queue)", func() (*desk.View, error) { return f.d.Reopen(f.ctx, ann, id) },
			func(v *desk.View) bool { return v.Conversation.Status == store.StatusQueued }},
	}
	for _, s := range steps {
		v, err := s.do()
		if err != nil || !s.want(v) {
			t.Fatalf("%s: %v (%+v)", s.name, err, v)
		}
	}
	if _, err := f.d.Transfer(f.ctx, ann, id, desk.TransferRequest{Queue: "nowhere"}); err == nil {
		t.Fatal("transfer to an unknown queue worked")
	}
	if _, err := f.d.Release(f.ctx, ann, id); !errors.Is(err, desk.ErrForbidden) {
		t.Fatalf("ann released a conversation she does not hold: %v", err)
	}
}

func TestAdminReplyTakesAWaitingConversation(t *testing.T) {
	f := newFixture(t)
	id := f.route(message.App, "u1", "hello?", "general", message.Normal)
	if _, _, err := f.d.Reply(f.ctx, f.agent("root"), id, desk.ReplyRequest{Text: "hi, how can we help?", Key: "k"}); err != nil {
		t.Fatal(err)
	}
	c, _ := f.st.Conversation(f.ctx, id)
	if c.Status != store.StatusAssigned || c.Assignee != "root" || c.LeaseUntil != nil {
		t.Fatalf("after an admin's reply: %s %q lease %v; want root's, no lease", c.Status, c.Assignee, c.LeaseUntil)
	}
	if v := f.next("bob"); v != nil {
		t.Fatalf("bob could still pull the answered conversation %d", v.Conversation.ID)
	}
}

// A reply recorded while the bus is away is published once it is back,
// by the monitor, and only once.
func TestReplyPublishedAfterTheBusComesBack(t *testing.T) {
	f := newFixture(t)
	id := f.route(message.SMS, "+8613900000009", "payment failed", "payments", message.High)
	f.next("bob")
	f.srv.Shutdown()
	m, created, err := f.d.Reply(f.ctx, f.agent("bob"), id, desk.ReplyRequest{Text: "on it", Key: "k"})
	if err == nil || !created || m == nil {
		t.Fatalf("reply with the bus down: %v created=%v", err, created)
	}
	f.srv.Restart()
	testbus.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error { return f.b.Ready(f.ctx) })
	f.d.Check(f.ctx) // too soon: the API call may still be publishing
	if n := outboundCount(t, f.b, message.SMS); n != 0 {
		t.Fatalf("published %d before the sweep age", n)
	}
	f.clock.Advance(time.Minute)
	f.d.Check(f.ctx)
	f.d.Check(f.ctx)
	if n := outboundCount(t, f.b, message.SMS); n != 1 {
		t.Fatalf("outbound.sms holds %d after the sweep, want 1", n)
	}
	out, err := lastOutbound(t, f.b, message.SMS)
	if err != nil || out.ID != m.ID || out.To != "+8613900000009" || out.AgentPhone != "+8613800000001" {
		t.Fatalf("swept reply = %+v, %v", out, err)
	}
}

// A retry keeps its reply even after the customer wrote on another
// channel; a reply from an agent who lost the conversation is refused.
func TestReplyKeyAndHolderAreCheckedWhereRecorded(t *testing.T) {
	f := newFixture(t)
	id := f.route(message.SMS, "+8613900000005", "payment failed", "payments", message.High)
	f.next("ann")
	first, _, err := f.d.Reply(f.ctx, f.agent("ann"), id, desk.ReplyRequest{Text: "on it", Key: "same"})
	if err != nil {
		t.Fatal(err)
	}
	if again := f.route(message.Voice, "+8613900000005", "payment failed", "payments", message.High); again != id {
		t.Fatalf("the call started conversation %d, not %d", again, id)
	}
	retry, created, err := f.d.Reply(f.ctx, f.agent("ann"), id, desk.ReplyRequest{Text: "on it", Key: "same"})
	if err != nil || created || retry.ID != first.ID || retry.Channel != message.SMS {
		t.Fatalf("retry after a call: %v created=%v %s on %s", err, created, retry.ID, retry.Channel)
	}
	if n := outboundCount(t, f.b, message.SMS) + outboundCount(t, f.b, message.Voice); n != 1 {
		t.Fatalf("%d replies published, want 1", n)
	}

	// Bob's claim after Ann's lapsed lease is not undone by Ann.
	id2 := f.route(message.App, "u-lapse", "payment failed", "payments", message.High)
	if idOf(f.next("ann")) != id2 {
		t.Fatal("ann did not get the second one")
	}
	f.clock.Advance(10 * time.Minute)
	f.d.Check(f.ctx)
	if idOf(f.next("root")) != id2 {
		t.Fatal("root did not get the lapsed one")
	}
	if _, _, err := f.d.Reply(f.ctx, f.agent("ann"), id2, desk.ReplyRequest{Text: "late", Key: "late"}); !errors.Is(err, desk.ErrForbidden) {
		t.Fatalf("a reply from the lapsed agent: %v", err)
	}
	if _, err := f.d.Resolve(f.ctx, f.agent("ann"), id2); !errors.Is(err, desk.ErrForbidden) {
		t.Fatalf("a resolve from the lapsed agent: %v", err)
	}
	c, _ := f.st.Conversation(f.ctx, id2)
	if c.Assignee != "root" || c.LeaseUntil == nil || c.Status != store.StatusAssigned {
		t.Fatalf("root's claim after the late reply: %s %q lease %v", c.Status, c.Assignee, c.LeaseUntil)
	}
	// And where the check races the write, the store refuses it.
	if _, _, err := f.st.RecordReply(f.ctx, store.Reply{ConversationID: id2, Channel: message.App, ToKind: store.KindApp,
		ToValue: "wallet/u-lapse", Text: "late", Key: "race", Agent: "ann", IfHolder: "ann"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("RecordReply for a former holder: %v", err)
	}
}

func TestAttachmentNamesStayNames(t *testing.T) {
	for in, want := range map[string]string{"../../etc/passwd": "_.._etc_passwd", "a\nb.pdf": "a_b.pdf", "": "attachment-1",
		"收据.png": "收据.png", "..": "attachment-1"} {
		if got := desk.FileName(in, 0); got != want {
			t.Errorf("FileName(%q) = %q, want %q", in, got, want)
		}
	}
}

// An out-of-office reply shows in the conversation, marked, and does not
// take the place of the customer's message in why it is here.
func TestViewMarksAutomaticMessages(t *testing.T) {
	f := newFixture(t)
	person := &message.Message{V: 1, ID: message.NewID(), Channel: message.Email, ChannelMessageID: "<v1@mail.example.com>",
		ReceivedAt: f.clock.Now(), From: message.Party{Address: "li@example.com"}, To: message.Party{Address: "help@wallet.example"},
		Subject: "Refund", Text: "where is my refund", Thread: message.Thread{MessageID: "<v1@mail.example.com>"}}
	ooo := &message.Message{V: 1, ID: message.NewID(), Channel: message.Email, ChannelMessageID: "<v2@mail.example.com>",
		ReceivedAt: f.clock.Now(), From: message.Party{Address: "li@example.com"}, To: message.Party{Address: "help@wallet.example"},
		Subject: "Out of office", Text: "back on Monday", Automatic: message.AutoReply,
		Thread: message.Thread{MessageID: "<v2@mail.example.com>", InReplyTo: "<v1@mail.example.com>"}}
	res, err := f.st.Record(f.ctx, []store.Inbound{
		{Msg: person, Decision: store.Decision{Queue: "payments", Urgency: message.Normal, Topic: "refund", Explain: []string{"refund rule"}}},
		{Msg: ooo, Decision: store.Decision{Queue: "payments", Urgency: message.Normal, Topic: "refund",
			Explain: []string{"refund rule", "automatic mail (auto-reply): recorded, not routed"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	v, err := f.d.Show(f.ctx, f.agent("root"), res[0].Conversation.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(v.Messages) != 2 || v.Messages[1].Automatic != message.AutoReply || v.Messages[0].Automatic != "" {
		t.Fatalf("view messages %+v; want the customer's, then the auto-reply marked", v.Messages)
	}
	if len(v.Explain) != 1 || v.Explain[0] != "refund rule" {
		t.Fatalf("view explain %q; want the customer's message's", v.Explain)
	}
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"automatic":"auto-reply"`) {
		t.Fatalf("view JSON does not carry the automatic kind: %s", data)
	}
}
