package storetest

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
)

var mergeTests = []contractTest{
	{"MergeCombinesContacts", testMergeCombines},
	{"MergeCarriesEarlierMerges", testMergeChain},
	{"MergeIntoItselfConflict", testMergeSelf},
	{"UndoMergeRestoresBoth", testUndoMerge},
	{"UndoMergeTwiceConflict", testUndoMergeTwice},
	{"UndoMergeUnknownNotFound", testUndoMergeUnknown},
}

// pair is two customers as far as identities tell: A writes by e-mail
// about a missing top-up, B by SMS about a lost card, an hour later.
type pair struct {
	email, phone           string
	a, b                   int64 // contacts
	convA, convB           int64
	topicOfA, topicOfOther string
}

func (e *env) pair() pair {
	e.t.Helper()
	p := pair{email: newEmail("gina"), phone: newPhone(), topicOfA: "topup_missing", topicOfOther: "card_lost"}
	ra := e.rec(e.msg(message.Email, p.email), dec("payments", p.topicOfA, message.Low))
	e.clock.Advance(time.Hour)
	rb := e.rec(e.msg(message.SMS, p.phone), dec("cards", p.topicOfOther, message.Normal))
	p.a, p.b = ra.Conversation.ContactID, rb.Conversation.ContactID
	p.convA, p.convB = ra.Conversation.ID, rb.Conversation.ID
	if p.a == p.b {
		e.t.Fatalf("an e-mail sender and an unrelated SMS sender share contact %d", p.a)
	}
	return p
}

func testMergeCombines(t *testing.T, b Backend) {
	e := newEnv(t, b)
	p := e.pair()
	e.clock.Advance(time.Hour)
	mid := e.merge(p.a, p.b)
	if mid == 0 {
		t.Errorf("MergeContacts returned merge id 0; want an id for UndoMerge")
	}
	if got := e.contact(p.b).MergedInto; got != p.a {
		t.Errorf("Contact(from %d).MergedInto = %d; want %d", p.b, got, p.a)
	}
	if got := e.contact(p.a).MergedInto; got != 0 {
		t.Errorf("Contact(into %d).MergedInto = %d; want 0", p.a, got)
	}
	got := e.contactConvs(p.a)
	if !sameSet(got, []int64{p.convA, p.convB}) {
		t.Errorf("ContactConversations(into) = %v; want both %v", got, []int64{p.convA, p.convB})
	}
	// Newest first: B's conversation started an hour after A's.
	if slices.Equal(got, []int64{p.convA, p.convB}) {
		t.Errorf("ContactConversations(into) = %v; want newest first, [%d %d]", got, p.convB, p.convA)
	}
	for _, v := range []string{p.phone, spaced(p.phone), p.email} {
		if got := e.find(v); !sameSet(got, []int64{p.a}) {
			t.Errorf("FindContacts(%q) = %v; want the canonical contact [%d]", v, got, p.a)
		}
	}

	// A day later (B's SMS conversation is out of the chat window), B texts
	// about A's topic: one customer, so the cross-channel rule joins A's
	// open e-mail conversation.
	e.clock.Advance(25 * time.Hour)
	r := e.rec(e.msg(message.SMS, p.phone), dec("sms", p.topicOfA, message.High))
	if !r.Joined || r.Conversation.ID != p.convA {
		t.Errorf("SMS from merged contact on %s: Joined=%v conversation %d; want joined to %d (into's open conversation on that topic)",
			p.topicOfA, r.Joined, r.Conversation.ID, p.convA)
	}
}

// Merging B (into which C was merged) into A brings C along.
func testMergeChain(t *testing.T, b Backend) {
	e := newEnv(t, b)
	p := e.pair()
	e.clock.Advance(time.Hour)
	tg := newUser()
	rc := e.rec(e.msg(message.Telegram, tg), topic("limits"))
	c := rc.Conversation.ContactID
	e.merge(p.b, c)
	e.merge(p.a, p.b)
	want := []int64{p.convA, p.convB, rc.Conversation.ID}
	if got := e.contactConvs(p.a); !sameSet(got, want) {
		t.Errorf("ContactConversations(A) = %v; want A's, B's and C's %v", got, want)
	}
	if got := e.find(tg); !sameSet(got, []int64{p.a}) {
		t.Errorf("FindContacts(C's telegram id) = %v; want the canonical contact [%d]", got, p.a)
	}
	if got := e.canonical(c); got != p.a {
		t.Errorf("C's canonical contact = %d; want %d", got, p.a)
	}
}

func testMergeSelf(t *testing.T, b Backend) {
	e := newEnv(t, b)
	p := e.pair()
	if _, err := e.s.MergeContacts(e.ctx, p.a, p.a, "agent:alice"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("MergeContacts(x, x): err = %v; want store.ErrConflict", err)
	}
	if got := e.contact(p.a).MergedInto; got != 0 {
		t.Errorf("after a refused self-merge MergedInto = %d; want 0", got)
	}
}

// Undo puts both contacts back as they were. What happened meanwhile stays
// bound to who wrote it: B's message that joined A's conversation stays
// there (from B's phone), and the conversation B started while merged is
// B's.
func testUndoMerge(t *testing.T, b Backend) {
	e := newEnv(t, b)
	p := e.pair()
	e.clock.Advance(time.Hour)
	mid := e.merge(p.a, p.b)

	e.clock.Advance(25 * time.Hour)
	joined := e.msg(message.SMS, p.phone)
	rj := e.rec(joined, dec("sms", p.topicOfA, message.Normal))
	if rj.Conversation.ID != p.convA {
		t.Fatalf("while merged, B's SMS on A's topic went to conversation %d; want A's %d (see MergeCombinesContacts)", rj.Conversation.ID, p.convA)
	}
	e.clock.Advance(time.Minute)
	// By voice, so the SMS chat window does not apply; a topic nobody has.
	rz := e.rec(e.msg(message.Voice, p.phone), dec("voice", "limits", message.Normal))
	convZ := rz.Conversation.ID
	if convZ == p.convA || convZ == p.convB {
		t.Fatalf("while merged, B's call on a new topic joined conversation %d; want a new conversation", convZ)
	}

	if err := e.s.UndoMerge(e.ctx, mid, "agent:alice"); err != nil {
		t.Fatalf("UndoMerge(%d): %v", mid, err)
	}
	if got := e.contact(p.b).MergedInto; got != 0 {
		t.Errorf("after undo Contact(B).MergedInto = %d; want 0", got)
	}
	if got := e.contactConvs(p.a); !sameSet(got, []int64{p.convA}) {
		t.Errorf("after undo ContactConversations(A) = %v; want only A's [%d]", got, p.convA)
	}
	if got := e.contactConvs(p.b); !sameSet(got, []int64{p.convB, convZ}) {
		t.Errorf("after undo ContactConversations(B) = %v; want B's %v (including %d, started by B's phone while merged)",
			got, []int64{p.convB, convZ}, convZ)
	}
	if got := e.find(p.phone); !sameSet(got, []int64{p.b}) {
		t.Errorf("after undo FindContacts(B's phone) = %v; want [%d]", got, p.b)
	}
	if got := e.find(p.email); !sameSet(got, []int64{p.a}) {
		t.Errorf("after undo FindContacts(A's e-mail) = %v; want [%d]", got, p.a)
	}
	ms := e.messages(p.convA)
	i := slices.IndexFunc(ms, func(m store.Message) bool { return m.ChannelMessageID == joined.ChannelMessageID })
	if i < 0 {
		t.Errorf("after undo A's conversation lost B's message %s; messages stay where they were", joined.ChannelMessageID)
	} else if ms[i].FromKind != store.KindPhone || ms[i].FromValue != p.phone {
		t.Errorf("B's message in A's conversation is from %s %q; want phone %s (the identity that wrote)", ms[i].FromKind, ms[i].FromValue, p.phone)
	}

	// Separate again: B's next SMS on A's topic no longer finds A's
	// conversation.
	e.clock.Advance(25 * time.Hour)
	r := e.rec(e.msg(message.SMS, p.phone), dec("sms", p.topicOfA, message.Normal))
	if r.Conversation.ID == p.convA {
		t.Errorf("after undo B's SMS on A's topic joined A's conversation %d; want B's own", p.convA)
	}
}

func testUndoMergeTwice(t *testing.T, b Backend) {
	e := newEnv(t, b)
	p := e.pair()
	mid := e.merge(p.a, p.b)
	if err := e.s.UndoMerge(e.ctx, mid, "agent:alice"); err != nil {
		t.Fatalf("UndoMerge: %v", err)
	}
	if err := e.s.UndoMerge(e.ctx, mid, "agent:alice"); !errors.Is(err, store.ErrConflict) {
		t.Errorf("second UndoMerge(%d): err = %v; want store.ErrConflict", mid, err)
	}
}

func testUndoMergeUnknown(t *testing.T, b Backend) {
	e := newEnv(t, b)
	if err := e.s.UndoMerge(e.ctx, 987654321, "agent:alice"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("UndoMerge(unknown): err = %v; want store.ErrNotFound", err)
	}
}
