package storetest

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"testing"
	"time"

	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
)

var queueTests = []contractTest{
	{"WaitingMostUrgentThenOldest", testWaitingOrder},
	{"WaitingFilters", testWaitingFilters},
	{"WaitingOnlyQueued", testWaitingOnlyQueued},
	{"AssignClaims", testAssignClaims},
	{"ResolveSetsResolvedAt", testResolve},
	{"UnknownConversationNotFound", testUnknownConversation},
	{"AppendEvent", testAppendEvent},
}

// newConvs records one message per urgency, a minute apart, each from a new
// telegram user (so each is its own conversation), and returns the ids.
func (e *env) newConvs(queue string, us ...message.Urgency) []int64 {
	e.t.Helper()
	out := make([]int64, 0, len(us))
	for _, u := range us {
		e.clock.Advance(time.Minute)
		r := e.rec(e.msg(message.Telegram, newUser()), dec(queue, "fee", u))
		out = append(out, r.Conversation.ID)
	}
	return out
}

func testWaitingOrder(t *testing.T, b Backend) {
	e := newEnv(t, b)
	c := e.newConvs("support", message.Low, message.Urgent, message.Normal, message.Urgent, message.High, message.Low)
	want := []int64{c[1], c[3], c[4], c[2], c[0], c[5]}
	if got := e.waiting(store.QueueFilter{}); !slices.Equal(got, want) {
		t.Errorf("Waiting = %v; want %v (urgent, urgent, high, normal, low, low; oldest first within a level)", got, want)
	}
}

func testWaitingFilters(t *testing.T, b Backend) {
	e := newEnv(t, b)
	pUrgent := e.newConvs("payments", message.Urgent)[0]
	pLow := e.newConvs("payments", message.Low)[0]
	kUrgent := e.newConvs("kyc", message.Urgent)[0]
	kNormal := e.newConvs("kyc", message.Normal)[0]
	pHigh := e.newConvs("payments", message.High)[0]
	cases := []struct {
		name string
		f    store.QueueFilter
		want []int64
	}{
		{"All", store.QueueFilter{}, []int64{pUrgent, kUrgent, pHigh, kNormal, pLow}},
		{"Queue", store.QueueFilter{Queue: "payments"}, []int64{pUrgent, pHigh, pLow}},
		{"Urgency", store.QueueFilter{Urgency: message.Urgent}, []int64{pUrgent, kUrgent}},
		{"QueueAndUrgency", store.QueueFilter{Queue: "kyc", Urgency: message.Normal}, []int64{kNormal}},
		{"Limit", store.QueueFilter{Limit: 2}, []int64{pUrgent, kUrgent}},
		{"UnknownQueue", store.QueueFilter{Queue: "nope"}, []int64{}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := e.sub(t)
			if got := e.waiting(tc.f); !slices.Equal(got, tc.want) {
				t.Errorf("Waiting(%+v) = %v; want %v", tc.f, got, tc.want)
			}
		})
	}
}

// Waiting is the queue of unclaimed work: status queued only.
func testWaitingOnlyQueued(t *testing.T, b Backend) {
	e := newEnv(t, b)
	c := e.newConvs("support", message.Normal, message.Normal, message.Normal, message.Normal)
	if err := e.s.Assign(e.ctx, c[0], "agent:alice"); err != nil {
		t.Fatalf("Assign: %v", err)
	}
	if err := e.s.SetStatus(e.ctx, c[1], store.StatusWaiting, "agent:alice"); err != nil {
		t.Fatalf("SetStatus(waiting): %v", err)
	}
	e.resolve(c[2])
	if got := e.waiting(store.QueueFilter{}); !slices.Equal(got, []int64{c[3]}) {
		t.Errorf("Waiting = %v; want only the queued conversation [%d] (not assigned %d, waiting %d, resolved %d)", got, c[3], c[0], c[1], c[2])
	}
}

func testAssignClaims(t *testing.T, b Backend) {
	e := newEnv(t, b)
	id := e.newConvs("support", message.High)[0]
	if err := e.s.Assign(e.ctx, id, "agent:alice"); err != nil {
		t.Fatalf("Assign: %v", err)
	}
	c := e.conv(id)
	if c.Status != store.StatusAssigned || c.Assignee != "agent:alice" {
		t.Errorf("after Assign status/assignee = %s/%q; want assigned/agent:alice", c.Status, c.Assignee)
	}
	if evs := e.events(id); countKind(evs, store.EventClaimed) != 1 {
		t.Errorf("Events kinds = %v; want one %q", kinds(evs), store.EventClaimed)
	}
	if got := e.waiting(store.QueueFilter{}); slices.Contains(got, id) {
		t.Errorf("Waiting = %v still lists the assigned conversation %d", got, id)
	}
}

func testResolve(t *testing.T, b Backend) {
	e := newEnv(t, b)
	id := e.newConvs("support", message.Normal)[0]
	at := e.clock.Advance(30 * time.Minute)
	e.resolve(id)
	c := e.conv(id)
	if c.Status != store.StatusResolved {
		t.Errorf("status = %s; want resolved", c.Status)
	}
	if c.ResolvedAt == nil {
		t.Errorf("ResolvedAt is nil; want the time of resolution")
	} else if !c.ResolvedAt.Equal(at) {
		t.Errorf("ResolvedAt = %v; want %v (from Options.Now)", *c.ResolvedAt, at)
	}
	if evs := e.events(id); countKind(evs, store.EventResolved) != 1 {
		t.Errorf("Events kinds = %v; want one %q", kinds(evs), store.EventResolved)
	}
	if got := e.waiting(store.QueueFilter{}); slices.Contains(got, id) {
		t.Errorf("Waiting = %v still lists the resolved conversation %d", got, id)
	}
}

func testUnknownConversation(t *testing.T, b Backend) {
	e := newEnv(t, b)
	e.newConvs("support", message.Normal) // not an empty database
	const unknown = 987654321
	cases := []struct {
		name string
		call func() error
	}{
		{"Conversation", func() error { _, err := e.s.Conversation(e.ctx, unknown); return err }},
		{"Assign", func() error { return e.s.Assign(e.ctx, unknown, "agent:alice") }},
		{"SetStatus", func() error { return e.s.SetStatus(e.ctx, unknown, store.StatusResolved, "agent:alice") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(); !errors.Is(err, store.ErrNotFound) {
				t.Errorf("%s(unknown id): err = %v; want store.ErrNotFound", tc.name, err)
			}
		})
	}
}

func testAppendEvent(t *testing.T, b Backend) {
	e := newEnv(t, b)
	id := e.newConvs("support", message.Normal)[0]
	e.clock.Advance(5 * time.Minute)
	data := json.RawMessage(`{"note":"called the customer back","minutes":5}`)
	if err := e.s.AppendEvent(e.ctx, store.Event{ConversationID: id, Kind: "note", Actor: "agent:alice", Data: data}); err != nil {
		t.Fatalf("AppendEvent: %v", err)
	}
	evs := e.events(id)
	i := slices.IndexFunc(evs, func(ev store.Event) bool { return ev.Kind == "note" })
	if i < 0 {
		t.Fatalf("Events kinds = %v; want the appended %q", kinds(evs), "note")
	}
	ev := evs[i]
	if ev.Actor != "agent:alice" || ev.ConversationID != id {
		t.Errorf("event actor/conversation = %q/%d; want agent:alice/%d", ev.Actor, ev.ConversationID, id)
	}
	if ev.At.IsZero() {
		t.Errorf("event At is zero; want it set by the store")
	}
	// Compare as JSON values: a backend may reformat the document (jsonb).
	var got, want any
	if err := json.Unmarshal(ev.Data, &got); err != nil {
		t.Fatalf("event Data %q is not JSON: %v", ev.Data, err)
	}
	_ = json.Unmarshal(data, &want)
	if !reflect.DeepEqual(got, want) {
		t.Errorf("event Data = %s; want %s", ev.Data, data)
	}
}
