package storetest

import (
	"sync"
	"testing"

	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
)

var migrationTests = []contractTest{
	{"OpenFreshDatabase", testOpenFresh},
	{"ReopenKeepsData", testReopenKeepsData},
	{"ConcurrentOpenOfFreshDatabase", testConcurrentOpen},
}

func testOpenFresh(t *testing.T, b Backend) {
	e := newEnv(t, b)
	if got := e.waiting(store.QueueFilter{}); len(got) != 0 {
		t.Errorf("Waiting on a fresh database = %v; want empty", got)
	}
	if got := e.find("anyone@example.com"); len(got) != 0 {
		t.Errorf("FindContacts on a fresh database = %v; want none", got)
	}
	r := e.rec(e.msg(message.Email, newEmail("first")), topic("refund"))
	if c := e.conv(r.Conversation.ID); c.Status != store.StatusQueued {
		t.Errorf("first conversation status = %s; want queued", c.Status)
	}
}

// Opening a migrated database again (a restart, a new version of inroute
// with no new migrations) must work and must not lose anything, including
// what dedupe relies on.
func testReopenKeepsData(t *testing.T, b Backend) {
	e := newEnv(t, b)
	m := e.msg(message.SMS, newPhone())
	r := e.rec(m, dec("billing", "fee", message.High))
	if err := e.close(); err != nil {
		t.Fatalf("Close: %v", err)
	}

	e.s, e.close = openStore(t, b, e.ctx, e.dsn, e.opts)
	c := e.conv(r.Conversation.ID)
	if c.Queue != "billing" || c.Urgency != message.High || c.Topic != "fee" || c.Status != store.StatusQueued {
		t.Errorf("after reopening, conversation is %s/%s/%s/%s; want billing/high/fee/queued", c.Queue, c.Urgency, c.Topic, c.Status)
	}
	if ms := e.messages(r.Conversation.ID); len(ms) != 1 || ms[0].ChannelMessageID != m.ChannelMessageID {
		t.Errorf("after reopening, Messages = %d; want the one message", len(ms))
	}
	if got := e.find(m.From.Address); len(got) != 1 {
		t.Errorf("after reopening, FindContacts(%q) = %v; want one contact", m.From.Address, got)
	}
	cp := *m
	if r2 := e.rec(&cp, topic("fee")); !r2.Duplicate {
		t.Errorf("after reopening, the same message again is not a Duplicate")
	}
}

// Several processes starting at once on a new database all migrate it, or
// wait for the one that does; none fails.
func testConcurrentOpen(t *testing.T, b Backend) {
	const n = 8
	dsn := b.Fresh(t)
	clk := newClock()
	opts := store.Options{Now: clk.Now}
	stores := make([]store.Store, n)
	errs := make([]error, n)
	startLine := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-startLine
			stores[i], errs[i] = b.Open(t.Context(), dsn, opts)
		})
	}
	close(startLine)
	wg.Wait()
	for i, s := range stores {
		if s != nil {
			closeOnCleanup(t, s)
		}
		if errs[i] != nil {
			t.Errorf("Open #%d of %d concurrent: %v", i, n, errs[i])
		}
	}
	if t.Failed() {
		return
	}
	// They all see one database.
	e := &env{t: t, b: b, ctx: t.Context(), dsn: dsn, clock: clk, opts: opts, s: stores[0]}
	r := e.rec(e.msg(message.Telegram, newUser()), topic("fee"))
	if _, err := stores[n-1].Conversation(t.Context(), r.Conversation.ID); err != nil {
		t.Errorf("conversation recorded through store 0 is not visible through store %d: %v", n-1, err)
	}
}
