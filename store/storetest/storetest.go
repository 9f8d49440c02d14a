// Package storetest is the contract every store.Store backend must keep.
//
// The suite is written from the specification of store.Store, not from any
// implementation, so that store/sqlite and store/postgres are proved to
// behave the same: a backend's test calls Run with a Backend that can make
// fresh databases and open stores on them.
//
// Every test gets its own fresh database and its own controllable clock
// (store.Options.Now), so time windows (chat window, reopen window, purge
// cutoff) are exercised exactly rather than by sleeping.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
)

// Backend describes one store backend to the suite.
type Backend struct {
	// Fresh returns the DSN of a new, empty database for one test (cleaned
	// up with t.Cleanup by the backend).
	Fresh func(t *testing.T) string
	// Open opens a store on dsn (applying migrations).
	Open func(ctx context.Context, dsn string, o store.Options) (store.Store, error)
}

// contractTest is one named test of the suite.
type contractTest struct {
	name string
	run  func(t *testing.T, b Backend)
}

// Run runs every contract test as subtests of t.
func Run(t *testing.T, b Backend) {
	t.Helper()
	if b.Fresh == nil || b.Open == nil {
		t.Fatal("storetest: Backend needs both Fresh and Open")
	}
	groups := []struct {
		name  string
		tests []contractTest
	}{
		{"Migrations", migrationTests},
		{"Identity", identityTests},
		{"Threading", threadingTests},
		{"Queue", queueTests},
		{"Merge", mergeTests},
		{"Purge", purgeTests},
		{"Concurrency", concurrencyTests},
		{"Outbound", outboundTests},
		{"Desk", deskTests},
		{"Automatic", automaticTests},
	}
	for _, g := range groups {
		t.Run(g.name, func(t *testing.T) {
			for _, tc := range g.tests {
				t.Run(tc.name, func(t *testing.T) { tc.run(t, b) })
			}
		})
	}
}

// epoch is the suite's epoch. Whole seconds in UTC, so that no backend's
// timestamp precision or time zone can make an exact comparison fail.
var epoch = time.Date(2025, time.March, 3, 9, 0, 0, 0, time.UTC)

// clock is the controllable store clock. It is safe for concurrent use
// because stores call Now from many goroutines in the concurrency tests.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func newClock() *clock { return &clock{now: epoch} }

// Now is what the store sees as the current time.
func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

// Advance moves the clock forward by d and returns the new time.
func (c *clock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

// blobLog is a store.BlobDeleter that records what Purge asked to delete.
type blobLog struct {
	mu      sync.Mutex
	deleted []string
}

func (b *blobLog) Delete(ref string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.deleted = append(b.deleted, ref)
	return nil
}

// refs returns the deleted refs, sorted, with duplicates kept.
func (b *blobLog) refs() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := slices.Clone(b.deleted)
	slices.Sort(out)
	return out
}

// env is one test's database, clock and open store.
type env struct {
	t     *testing.T
	b     Backend
	ctx   context.Context
	dsn   string
	clock *clock
	blobs *blobLog
	opts  store.Options
	s     store.Store
	close func() error
}

// newEnv opens a store on a fresh database with the test clock and blob
// log; tweak adjusts the options first (a shorter window, another region).
func newEnv(t *testing.T, b Backend, tweak ...func(*store.Options)) *env {
	t.Helper()
	e := &env{t: t, b: b, ctx: t.Context(), clock: newClock(), blobs: &blobLog{}}
	e.opts = store.Options{Now: e.clock.Now, Blobs: e.blobs}
	for _, f := range tweak {
		f(&e.opts)
	}
	e.dsn = b.Fresh(t)
	e.s, e.close = openStore(t, b, e.ctx, e.dsn, e.opts)
	return e
}

// sub returns e reporting to the subtest t: t.Fatal must be called on the
// test that runs the current goroutine.
func (e *env) sub(t *testing.T) *env {
	c := *e
	c.t = t
	return &c
}

// openStore opens a store and closes it on cleanup. The returned func
// closes it now (for tests that reopen the database); cleanup then does
// nothing more.
func openStore(t *testing.T, b Backend, ctx context.Context, dsn string, o store.Options) (store.Store, func() error) {
	t.Helper()
	s, err := b.Open(ctx, dsn, o)
	if err != nil {
		t.Fatalf("Open(%q): %v", dsn, err)
	}
	if s == nil {
		t.Fatalf("Open(%q) returned a nil store and no error", dsn)
	}
	return s, closeOnCleanup(t, s)
}

// closeOnCleanup registers s.Close with t.Cleanup and returns a func that
// closes it earlier; either way it is closed exactly once.
func closeOnCleanup(t *testing.T, s store.Store) func() error {
	var once sync.Once
	var err error
	closeNow := func() error {
		once.Do(func() { err = s.Close() })
		return err
	}
	var closed atomic.Bool
	t.Cleanup(func() {
		if closed.Load() {
			return
		}
		if err := closeNow(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return func() error {
		closed.Store(true)
		return closeNow()
	}
}

// seq makes addresses and channel message ids unique within a run.
var seq atomic.Int64

func uniq() int64 { return seq.Add(1) }

// newPhone returns a fresh Chinese mobile number in E.164.
func newPhone() string { return fmt.Sprintf("+86139%08d", uniq()%100000000) }

// spaced writes a +86 mobile number the way people type it at home:
// "139 0000 0001", no country code, so PhoneRegion must supply it.
func spaced(e164 string) string {
	n := e164[3:] // drop "+86"
	return n[:3] + " " + n[3:7] + " " + n[7:]
}

// newEmail returns a fresh e-mail address.
func newEmail(name string) string { return fmt.Sprintf("%s.%d@example.com", name, uniq()) }

// newUser returns a fresh chat or app user id.
func newUser() string { return fmt.Sprintf("u-%d", uniq()) }

// ourAddress is our side of a channel: the mailbox, number, bot or app.
func ourAddress(ch message.Channel) string {
	switch ch {
	case message.Email:
		return "support@wallet.example"
	case message.SMS, message.Voice:
		return "+8610086000"
	case message.App:
		return "wallet"
	default:
		return "wallet_bot"
	}
}

// senderFor returns a fresh sender address that is valid on ch.
func senderFor(ch message.Channel) string {
	switch ch {
	case message.Email:
		return newEmail("customer")
	case message.SMS, message.Voice:
		return newPhone()
	default:
		return newUser()
	}
}

// msg builds a valid inbound message on ch from the sender, received now
// (by the test clock), with a unique channel message id. E-mails get a
// subject and a Message-ID so replies can refer to them.
func (e *env) msg(ch message.Channel, from string) *message.Message {
	n := uniq()
	m := &message.Message{
		V:                message.Version,
		ID:               message.NewID(),
		Channel:          ch,
		ChannelMessageID: fmt.Sprintf("%s-cmid-%d", ch, n),
		ReceivedAt:       e.clock.Now(),
		From:             message.Party{Address: from},
		To:               message.Party{Address: ourAddress(ch)},
		Text:             fmt.Sprintf("customer message %d", n),
	}
	if ch == message.Email {
		m.Subject = "Question about my wallet"
		m.Thread.MessageID = fmt.Sprintf("<%s@mail.example.com>", m.ID)
	}
	return m
}

// dec is a routing decision.
func dec(queue, topic string, u message.Urgency) store.Decision {
	return store.Decision{
		Queue:        queue,
		Urgency:      u,
		Topic:        topic,
		Explain:      []string{"matched rule " + topic},
		RulesVersion: "test-v1",
	}
}

// topic is a normal-urgency decision in the support queue.
func topic(name string) store.Decision { return dec("support", name, message.Normal) }

// record records one batch and fails the test on an error or a wrong
// number of results. Messages are validated first so that a mistake in
// the suite is not blamed on the backend.
func (e *env) record(ins ...store.Inbound) []store.Result {
	e.t.Helper()
	for i, in := range ins {
		if err := in.Msg.Validate(); err != nil {
			e.t.Fatalf("storetest bug: inbound %d is not a valid message: %v", i, err)
		}
	}
	res, err := e.s.Record(e.ctx, ins)
	if err != nil {
		e.t.Fatalf("Record(%d messages): %v", len(ins), err)
	}
	if len(res) != len(ins) {
		e.t.Fatalf("Record(%d messages) returned %d results; want one per message", len(ins), len(res))
	}
	for i, r := range res {
		if !r.Duplicate && r.Threading == "" {
			e.t.Errorf("Record result %d (%s %s): Threading is empty; want an explanation of how the conversation was found",
				i, ins[i].Msg.Channel, ins[i].Msg.ChannelMessageID)
		}
	}
	return res
}

// rec records one message with its decision.
func (e *env) rec(m *message.Message, d store.Decision) store.Result {
	e.t.Helper()
	return e.record(store.Inbound{Msg: m, Decision: d})[0]
}

func (e *env) conv(id int64) *store.Conversation {
	e.t.Helper()
	c, err := e.s.Conversation(e.ctx, id)
	if err != nil {
		e.t.Fatalf("Conversation(%d): %v", id, err)
	}
	return c
}

func (e *env) messages(convID int64) []store.Message {
	e.t.Helper()
	ms, err := e.s.Messages(e.ctx, convID)
	if err != nil {
		e.t.Fatalf("Messages(%d): %v", convID, err)
	}
	return ms
}

func (e *env) events(convID int64) []store.Event {
	e.t.Helper()
	evs, err := e.s.Events(e.ctx, convID)
	if err != nil {
		e.t.Fatalf("Events(%d): %v", convID, err)
	}
	return evs
}

func (e *env) contact(id int64) *store.Contact {
	e.t.Helper()
	c, err := e.s.Contact(e.ctx, id)
	if err != nil {
		e.t.Fatalf("Contact(%d): %v", id, err)
	}
	return c
}

// canonical follows MergedInto to the contact that stands for the customer.
func (e *env) canonical(id int64) int64 {
	e.t.Helper()
	for range 10 {
		c := e.contact(id)
		if c.MergedInto == 0 {
			return id
		}
		id = c.MergedInto
	}
	e.t.Fatalf("contact %d: MergedInto chain longer than 10 (a cycle?)", id)
	return 0
}

// contactConvs returns the ids of ContactConversations(id), in its order.
func (e *env) contactConvs(id int64) []int64 {
	e.t.Helper()
	cs, err := e.s.ContactConversations(e.ctx, id)
	if err != nil {
		e.t.Fatalf("ContactConversations(%d): %v", id, err)
	}
	return convIDs(cs)
}

// find returns the ids of FindContacts(v), sorted. No match may be an
// empty list or ErrNotFound; both are accepted.
func (e *env) find(v string) []int64 {
	e.t.Helper()
	cs, err := e.s.FindContacts(e.ctx, v)
	if errors.Is(err, store.ErrNotFound) {
		return nil
	}
	if err != nil {
		e.t.Fatalf("FindContacts(%q): %v", v, err)
	}
	ids := make([]int64, 0, len(cs))
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	slices.Sort(ids)
	return ids
}

// waiting returns the ids of Waiting(f), in its order.
func (e *env) waiting(f store.QueueFilter) []int64 {
	e.t.Helper()
	cs, err := e.s.Waiting(e.ctx, f)
	if err != nil {
		e.t.Fatalf("Waiting(%+v): %v", f, err)
	}
	return convIDs(cs)
}

func (e *env) resolve(convID int64) {
	e.t.Helper()
	if err := e.s.SetStatus(e.ctx, convID, store.StatusResolved, "agent:alice"); err != nil {
		e.t.Fatalf("SetStatus(%d, resolved): %v", convID, err)
	}
}

func (e *env) merge(into, from int64) int64 {
	e.t.Helper()
	id, err := e.s.MergeContacts(e.ctx, into, from, "agent:alice")
	if err != nil {
		e.t.Fatalf("MergeContacts(into %d, from %d): %v", into, from, err)
	}
	return id
}

// customer is one person known under an app user id, an e-mail address
// and a phone number.
type customer struct {
	user, email, phone string
	contact            int64
}

// linkedCustomer records an app message whose app vouches for the user's
// e-mail and phone, so that the customer's e-mails, SMS and calls all come
// from one contact. Cross-channel tests need that; the Identity tests
// check the linking itself. The app conversation is on its own topic and
// channel so it does not take part in the test's threading.
func (e *env) linkedCustomer() customer {
	e.t.Helper()
	c := customer{user: newUser(), email: newEmail("linked"), phone: newPhone()}
	m := e.msg(message.App, c.user)
	m.From.Email, m.From.EmailVerified = c.email, true
	m.From.Phone, m.From.PhoneVerified = c.phone, true
	c.contact = e.rec(m, dec("accounts", "profile_verified", message.Low)).Conversation.ContactID
	return c
}

// requireCustomer fails the test when r's contact is not c: the test's
// premise (one customer across channels) does not hold, and what follows
// would only produce confusing failures.
func (e *env) requireCustomer(r store.Result, c customer, what string) {
	e.t.Helper()
	if got := e.canonical(r.Conversation.ContactID); got != e.canonical(c.contact) {
		e.t.Fatalf("%s went to contact %d, not to the customer's contact %d whose verified identities include it (identity linking is broken; see the Identity tests)",
			what, got, c.contact)
	}
}

func convIDs(cs []store.Conversation) []int64 {
	ids := make([]int64, 0, len(cs))
	for _, c := range cs {
		ids = append(ids, c.ID)
	}
	return ids
}

// ids returns the distinct ids, for a want list that may name one
// conversation twice.
func ids(v ...int64) []int64 {
	out := slices.Clone(v)
	slices.Sort(out)
	return slices.Compact(out)
}

// sameSet reports whether a and b hold the same ids, in any order.
func sameSet(a, b []int64) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func identity(c *store.Contact, kind, value string) (store.Identity, bool) {
	for _, id := range c.Identities {
		if id.Kind == kind && id.Value == value {
			return id, true
		}
	}
	return store.Identity{}, false
}

func kinds(evs []store.Event) []string {
	out := make([]string, 0, len(evs))
	for _, ev := range evs {
		out = append(out, ev.Kind)
	}
	return out
}

func countKind(evs []store.Event, kind string) int {
	n := 0
	for _, ev := range evs {
		if ev.Kind == kind {
			n++
		}
	}
	return n
}

// isNotFound reports whether err is (or wraps) store.ErrNotFound.
func isNotFound(err error) bool { return errors.Is(err, store.ErrNotFound) }
