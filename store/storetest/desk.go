package storetest

import (
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
)

var deskTests = []contractTest{
	{"ClaimNextUrgentThenOldestAcrossQueues", testClaimNextOrder},
	{"ClaimNextConcurrentAgentsEachGetOne", testClaimNextConcurrent},
	{"ClaimNextRespectsCapacity", testClaimNextCapacity},
	{"ClaimNextCapacityUnderConcurrency", testClaimNextCapacityConcurrent},
	{"LeaseLapsesBackToQueue", testLeaseLapses},
	{"ReplyEndsLease", testReplyEndsLease},
	{"MoveTransfersReleasesReopens", testMoveConversation},
	{"SLADeadlinesAndEscalation", testSLA},
	{"QueueStatsAndAgentLoads", testStatsAndLoads},
	{"RedeliveryKeepsStarted", testRedeliveryKeepsStarted},
}

// A redelivered message reports whether it started its conversation, as
// its first delivery did: the router sends auto-replies by it.
func testRedeliveryKeepsStarted(t *testing.T, b Backend) {
	e := newEnv(t, b)
	user := newUser()
	m1, m2 := e.msg(message.Telegram, user), e.msg(message.Telegram, user)
	r1 := e.rec(m1, dec("support", "fee", message.Normal))
	r2 := e.rec(m2, dec("support", "fee", message.Normal))
	if !r1.Started || r2.Started || !r2.Joined {
		t.Fatalf("first deliveries: started %v and %v (joined %v); want true and false", r1.Started, r2.Started, r2.Joined)
	}
	d1 := e.rec(m1, dec("support", "fee", message.Normal))
	d2 := e.rec(m2, dec("support", "fee", message.Normal))
	if !d1.Duplicate || !d2.Duplicate || !d1.Started || d2.Started {
		t.Fatalf("redeliveries: started %v and %v; want true and false", d1.Started, d2.Started)
	}
}

const lease = 5 * time.Minute

func (e *env) claim(agent string, queues []string, capacity int) *store.Conversation {
	e.t.Helper()
	c, err := e.s.ClaimNext(e.ctx, store.ClaimRequest{Agent: agent, Queues: queues, Capacity: capacity, Lease: lease})
	if err != nil {
		e.t.Fatalf("ClaimNext(%s, %v): %v", agent, queues, err)
	}
	return c
}

func claimedID(c *store.Conversation) int64 {
	if c == nil {
		return 0
	}
	return c.ID
}

func testClaimNextOrder(t *testing.T, b Backend) {
	e := newEnv(t, b)
	a := e.newConvs("account", message.Normal, message.High)
	p := e.newConvs("payments", message.High, message.Urgent)
	s := e.newConvs("security", message.Urgent)
	// Ann takes account and payments only: urgent payments, then the two
	// high ones oldest first, then normal; never security.
	var got []int64
	for range 5 {
		got = append(got, claimedID(e.claim("ann", []string{"account", "payments"}, 10)))
	}
	if want := []int64{p[1], a[1], p[0], a[0], 0}; !slices.Equal(got, want) {
		t.Fatalf("ann claimed %v; want %v", got, want)
	}
	c := e.conv(p[1])
	if c.Status != store.StatusAssigned || c.Assignee != "ann" || c.LeaseUntil == nil || !c.LeaseUntil.Equal(e.clock.Now().Add(lease)) {
		t.Fatalf("claimed conversation: status %s assignee %q lease %v", c.Status, c.Assignee, c.LeaseUntil)
	}
	if got := claimedID(e.claim("bob", nil, 10)); got != s[0] {
		t.Fatalf("bob (every queue) claimed %d; want the security one %d", got, s[0])
	}
	if got := e.claim("cy", []string{}, 10); got != nil {
		t.Fatalf("an agent with no queues claimed %d", got.ID)
	}
}

func testClaimNextConcurrent(t *testing.T, b Backend) {
	e := newEnv(t, b)
	const convs, agents = 24, 8
	var ids []int64
	for range convs / 4 {
		ids = append(ids, e.newConvs("support", message.Low, message.Normal, message.High, message.Urgent)...)
	}
	var mu sync.Mutex
	taken := map[int64][]int{}
	var errs []error
	goAll(agents, func(i int) {
		for {
			c, err := e.s.ClaimNext(e.ctx, store.ClaimRequest{Agent: agentName(i), Capacity: convs, Lease: lease})
			if err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
				return
			}
			if c == nil {
				return
			}
			mu.Lock()
			taken[c.ID] = append(taken[c.ID], i)
			mu.Unlock()
		}
	})
	if len(errs) > 0 {
		t.Fatalf("concurrent claims failed: %v", errs)
	}
	for _, id := range ids {
		if len(taken[id]) != 1 {
			t.Errorf("conversation %d was given to agents %v; want exactly one", id, taken[id])
		}
		if c := e.conv(id); c.Assignee != agentName(taken[id][0]) {
			t.Errorf("conversation %d is assigned to %q; the claim answered agent %d", id, c.Assignee, taken[id][0])
		}
	}
}

func agentName(i int) string { return string(rune('a'+i)) + "-agent" }

func testClaimNextCapacity(t *testing.T, b Backend) {
	e := newEnv(t, b)
	e.newConvs("support", message.Normal, message.Normal, message.Normal)
	first := e.claim("ann", nil, 2)
	e.claim("ann", nil, 2)
	_, err := e.s.ClaimNext(e.ctx, store.ClaimRequest{Agent: "ann", Capacity: 2, Lease: lease})
	if !errors.Is(err, store.ErrAtCapacity) {
		t.Fatalf("third claim with capacity 2: %v; want ErrAtCapacity", err)
	}
	e.resolve(first.ID)
	if c := e.claim("ann", nil, 2); c == nil {
		t.Fatal("after resolving one, ann could not claim again")
	}
}

func testClaimNextCapacityConcurrent(t *testing.T, b Backend) {
	e := newEnv(t, b)
	for range 4 {
		e.newConvs("support", message.Normal, message.High)
	}
	var mu sync.Mutex
	got, atCap := 0, 0
	goAll(8, func(int) {
		c, err := e.s.ClaimNext(e.ctx, store.ClaimRequest{Agent: "ann", Capacity: 3, Lease: lease})
		mu.Lock()
		defer mu.Unlock()
		switch {
		case errors.Is(err, store.ErrAtCapacity):
			atCap++
		case err != nil:
			t.Errorf("claim: %v", err)
		case c != nil:
			got++
		}
	})
	if got != 3 || atCap != 5 {
		t.Fatalf("8 concurrent claims by one agent with capacity 3: %d claimed, %d at capacity; want 3 and 5", got, atCap)
	}
}

func testLeaseLapses(t *testing.T, b Backend) {
	e := newEnv(t, b)
	id := e.newConvs("support", message.High)[0]
	queuedAt := e.conv(id).QueuedAt
	e.claim("ann", nil, 5)
	e.clock.Advance(4 * time.Minute)
	if lapsed, err := e.s.ExpireLeases(e.ctx, e.clock.Now()); err != nil || len(lapsed) != 0 {
		t.Fatalf("ExpireLeases before the lease ends: %v, %v", lapsed, err)
	}
	until, err := e.s.Renew(e.ctx, id, "ann", lease)
	if err != nil || !until.Equal(e.clock.Now().Add(lease)) {
		t.Fatalf("Renew: %v, %v", until, err)
	}
	if _, err := e.s.Renew(e.ctx, id, "bob", lease); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Renew by someone else: %v; want ErrConflict", err)
	}
	defer func() {
		// A lease past its end is not renewed, monitor or not.
		id2 := e.newConvs("support", message.Low)[0]
		e.claim("cy", nil, 5)
		e.clock.Advance(lease + time.Second)
		if _, err := e.s.Renew(e.ctx, id2, "cy", lease); !errors.Is(err, store.ErrConflict) {
			t.Errorf("Renew of a lease past its end: %v; want ErrConflict", err)
		}
	}()
	e.clock.Advance(4 * time.Minute)
	if lapsed, _ := e.s.ExpireLeases(e.ctx, e.clock.Now()); len(lapsed) != 0 {
		t.Fatalf("a renewed lease lapsed early: %v", lapsed)
	}
	e.clock.Advance(2 * time.Minute)
	lapsed, err := e.s.ExpireLeases(e.ctx, e.clock.Now())
	if err != nil || len(lapsed) != 1 || lapsed[0].ID != id {
		t.Fatalf("ExpireLeases after the lease: %v, %v", lapsed, err)
	}
	c := e.conv(id)
	if c.Status != store.StatusQueued || c.Assignee != "" || c.LeaseUntil != nil || c.Urgency != message.High || !c.QueuedAt.Equal(queuedAt) {
		t.Fatalf("lapsed conversation: %+v; want queued, unassigned, high, its original place", c)
	}
	if !hasEvent(e.events(id), store.EventLeaseExpired) {
		t.Fatal("no lease_expired event")
	}
	if lapsed, _ := e.s.ExpireLeases(e.ctx, e.clock.Now()); len(lapsed) != 0 {
		t.Fatal("a lease lapsed twice")
	}
	if got := claimedID(e.claim("bob", nil, 5)); got != id {
		t.Fatalf("bob claimed %d; want the lapsed %d", got, id)
	}
}

func hasEvent(evs []store.Event, kind string) bool {
	return slices.ContainsFunc(evs, func(e store.Event) bool { return e.Kind == kind })
}

func testReplyEndsLease(t *testing.T, b Backend) {
	e := newEnv(t, b)
	id := e.newConvs("support", message.High)[0]
	e.claim("ann", nil, 5)
	reply := func(key string, auto bool) {
		t.Helper()
		if _, _, err := e.s.RecordReply(e.ctx, store.Reply{ConversationID: id, Channel: message.Telegram, ToKind: "telegram",
			ToValue: "x", Text: "hi", Key: key, Agent: "ann", Auto: auto}); err != nil {
			t.Fatal(err)
		}
	}
	reply("auto-1", true)
	if c := e.conv(id); c.LeaseUntil == nil {
		t.Fatal("an auto-reply ended the agent's lease")
	}
	reply("k-1", false)
	c := e.conv(id)
	if c.LeaseUntil != nil || c.RepliedAt == nil || c.Assignee != "ann" || c.Status != store.StatusAssigned {
		t.Fatalf("after the first reply: %+v; want ann's, no lease", c)
	}
	msgs := e.messages(id)
	if last := msgs[len(msgs)-1]; last.Author != "ann" || last.Auto || !msgs[len(msgs)-2].Auto {
		t.Fatalf("reply author/auto not kept: %+v", msgs)
	}
	e.clock.Advance(time.Hour)
	if lapsed, _ := e.s.ExpireLeases(e.ctx, e.clock.Now()); len(lapsed) != 0 {
		t.Fatal("an answered conversation lapsed")
	}
	if _, err := e.s.Renew(e.ctx, id, "ann", lease); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("Renew after a reply: %v; want ErrConflict", err)
	}
}

func testMoveConversation(t *testing.T, b Backend) {
	e := newEnv(t, b)
	id := e.newConvs("support", message.Normal)[0]
	e.claim("ann", nil, 5)
	if _, err := e.s.MoveConversation(e.ctx, id, store.Move{Requeue: true, IfHolder: "bob", Actor: "bob"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("release by a non-holder: %v; want ErrConflict", err)
	}
	c, err := e.s.MoveConversation(e.ctx, id, store.Move{Queue: "refunds", Requeue: true, IfHolder: "ann", Actor: "ann", Event: store.EventTransferred})
	if err != nil || c.Status != store.StatusQueued || c.Queue != "refunds" || c.Assignee != "" || c.LeaseUntil != nil {
		t.Fatalf("transfer to refunds: %+v, %v", c, err)
	}
	c, err = e.s.MoveConversation(e.ctx, id, store.Move{Agent: "bob", Urgency: message.Urgent, Actor: "admin"})
	if err != nil || c.Status != store.StatusAssigned || c.Assignee != "bob" || c.LeaseUntil != nil || c.Urgency != message.Urgent {
		t.Fatalf("transfer to bob as urgent: %+v, %v", c, err)
	}
	if _, err := e.s.MoveConversation(e.ctx, id, store.Move{Agent: "ann", Actor: "admin", IfStatus: []store.Status{store.StatusQueued}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a take-over conditional on queued, of an assigned conversation: %v", err)
	}
	if _, err := e.s.MoveConversation(e.ctx, id, store.Move{Resolve: true, IfHolder: "ann", Actor: "ann"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a resolve by a former holder: %v", err)
	}
	if _, err := e.s.MoveConversation(e.ctx, id, store.Move{Requeue: true, IfStatus: []store.Status{store.StatusResolved}}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("a reopen of a conversation that is not resolved: %v", err)
	}
	c, err = e.s.MoveConversation(e.ctx, id, store.Move{Resolve: true, IfHolder: "bob", Actor: "bob", Event: store.EventResolved})
	if err != nil || c.Status != store.StatusResolved || c.ResolvedAt == nil || c.Due() != nil {
		t.Fatalf("resolve by the holder: %+v, %v", c, err)
	}
	if _, err := e.s.MoveConversation(e.ctx, id, store.Move{Agent: "ann", Actor: "admin"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("assigning a resolved conversation: %v; want ErrConflict", err)
	}
	c, err = e.s.MoveConversation(e.ctx, id, store.Move{Requeue: true, Actor: "ann", Event: store.EventReopened})
	if err != nil || c.Status != store.StatusQueued || c.ResolvedAt != nil {
		t.Fatalf("reopen: %+v, %v", c, err)
	}
	for _, k := range []string{store.EventTransferred, store.EventReopened} {
		if !hasEvent(e.events(id), k) {
			t.Errorf("no %s event", k)
		}
	}
	if _, err := e.s.MoveConversation(e.ctx, 1<<40, store.Move{Requeue: true}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("moving an unknown conversation: %v", err)
	}
}

func testSLA(t *testing.T, b Backend) {
	e := newEnv(t, b, func(o *store.Options) {
		o.Deadline = func(kind store.SLAKind, queue string, u message.Urgency, from time.Time) *time.Time {
			d := 10 * time.Minute
			if kind == store.NextResponse {
				d = 20 * time.Minute
			}
			if queue == "no-sla" {
				return nil
			}
			at := from.Add(d)
			return &at
		}
	})
	start := e.clock.Now()
	user := newUser()
	r := e.rec(e.msg(message.Telegram, user), dec("support", "fee", message.Normal))
	id := r.Conversation.ID
	c := e.conv(id)
	if c.FirstResponseDue == nil || !c.FirstResponseDue.Equal(start.Add(10*time.Minute)) || c.NextResponseDue != nil {
		t.Fatalf("new conversation dues: first %v next %v", c.FirstResponseDue, c.NextResponseDue)
	}
	if due, _ := e.s.Due(e.ctx, start.Add(9*time.Minute), 10, -1); len(due) != 0 {
		t.Fatalf("due before the target: %v", due)
	}
	e.clock.Advance(11 * time.Minute)
	due, err := e.s.Due(e.ctx, e.clock.Now(), 10, -1)
	if err != nil || len(due) != 1 || due[0].ID != id {
		t.Fatalf("Due after the target: %v, %v", due, err)
	}
	if ok, err := e.s.Escalate(e.ctx, store.Escalation{ConversationID: id, FromStep: -1}); !ok || err != nil {
		t.Fatalf("recording the breach: %v, %v", ok, err)
	}
	if ok, _ := e.s.Escalate(e.ctx, store.Escalation{ConversationID: id, FromStep: -1}); ok {
		t.Fatal("the breach was recorded twice")
	}
	ok, err := e.s.Escalate(e.ctx, store.Escalation{ConversationID: id, FromStep: 0, Urgency: message.Urgent, Queue: "supervisors"})
	if !ok || err != nil {
		t.Fatalf("step 1: %v, %v", ok, err)
	}
	if ok, _ := e.s.Escalate(e.ctx, store.Escalation{ConversationID: id, FromStep: 0, Urgency: message.Urgent}); ok {
		t.Fatal("step 1 applied twice")
	}
	if due, _ := e.s.Due(e.ctx, e.clock.Now(), 10, 1); len(due) != 0 {
		t.Fatalf("Due lists a conversation with every step taken: %v", due)
	}
	if due, _ := e.s.Due(e.ctx, e.clock.Now(), 10, 2); len(due) != 1 {
		t.Fatalf("Due leaves out a conversation with a step to go: %v", due)
	}
	c = e.conv(id)
	if c.SLABreachedAt == nil || c.SLAStep != 1 || c.Urgency != message.Urgent || c.Queue != "supervisors" {
		t.Fatalf("after escalation: breached %v step %d urgency %s queue %s", c.SLABreachedAt, c.SLAStep, c.Urgency, c.Queue)
	}
	if !hasEvent(e.events(id), store.EventSLABreached) || !hasEvent(e.events(id), store.EventEscalated) {
		t.Fatal("breach and escalation are not in the event log")
	}
	// A reply meets the target; the customer's next message starts the
	// next-response target.
	e.claim("ann", nil, 5)
	if _, _, err := e.s.RecordReply(e.ctx, store.Reply{ConversationID: id, Channel: message.Telegram, ToKind: "telegram", ToValue: user,
		Text: "hi", Key: "sla-1", Agent: "ann"}); err != nil {
		t.Fatal(err)
	}
	c = e.conv(id)
	if c.Due() != nil || c.SLABreachedAt != nil || c.SLAStep != 0 {
		t.Fatalf("after the reply: due %v breached %v step %d", c.Due(), c.SLABreachedAt, c.SLAStep)
	}
	e.clock.Advance(time.Minute)
	e.rec(e.msg(message.Telegram, user), dec("support", "fee", message.Normal))
	c = e.conv(id)
	if c.FirstResponseDue != nil || c.NextResponseDue == nil || !c.NextResponseDue.Equal(e.clock.Now().Add(20*time.Minute)) {
		t.Fatalf("after the customer wrote again: first %v next %v", c.FirstResponseDue, c.NextResponseDue)
	}
	e.resolve(id)
	if c = e.conv(id); c.Due() != nil {
		t.Fatalf("a resolved conversation still has a target: %v", c.Due())
	}
	if r := e.rec(e.msg(message.Telegram, newUser()), dec("no-sla", "fee", message.Normal)); e.conv(r.Conversation.ID).Due() != nil {
		t.Fatal("a queue without targets got one")
	}
}

func testStatsAndLoads(t *testing.T, b Backend) {
	e := newEnv(t, b)
	e.newConvs("payments", message.Urgent, message.Urgent, message.Low)
	first := e.clock.Now()
	e.newConvs("refunds", message.Normal)
	e.claim("ann", []string{"refunds"}, 5)
	if err := e.s.SeeAgent(e.ctx, "bob"); err != nil {
		t.Fatal(err)
	}
	stats, err := e.s.QueueStats(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, s := range stats {
		got[s.Queue+"/"+string(s.Urgency)] = s.Waiting
		if s.Queue == "payments" && s.Urgency == message.Low && !s.Oldest.Equal(first) {
			t.Errorf("oldest low payment queued at %v; want %v", s.Oldest, first)
		}
	}
	if len(got) != 2 || got["payments/urgent"] != 2 || got["payments/low"] != 1 {
		t.Fatalf("QueueStats = %v; want payments urgent 2, low 1 (the claimed refund is not waiting)", got)
	}
	loads, err := e.s.AgentLoads(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]store.AgentLoad{}
	for _, l := range loads {
		byName[l.Name] = l
	}
	if byName["ann"].Open != 1 || byName["ann"].LastSeen.IsZero() || byName["bob"].Open != 0 || byName["bob"].LastSeen.IsZero() {
		t.Fatalf("AgentLoads = %+v", loads)
	}
}
