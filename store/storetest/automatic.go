package storetest

import (
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
)

// Machine-written messages (message.Automatic: out-of-office replies,
// bounces, bulk mail, our own mail seen again) are recorded against the
// conversation they refer to, and change nothing there: they are no
// customer's work.
var automaticTests = []contractTest{
	{"AutoReplyJoinsWithoutChangingIt", testAutoReplyJoinsUnchanged},
	{"AutoReplyToResolvedStaysResolved", testAutoReplyResolvedStays},
	{"BounceFromMailServerJoinsReplyConversation", testBounceJoinsReplyConversation},
	{"TokenJoinsOwnConversationsOnly", testAutomaticToken},
	{"InBatchReference", testAutomaticInBatch},
	{"CustomersMessageIDDoesNotCrossCustomers", testAutomaticForeignReference},
	{"NoReferenceRecordedResolved", testAutomaticNoReference},
	{"Duplicate", testAutomaticDuplicate},
	{"PersonAfterwardsRoutesNormally", testPersonAfterAutomatic},
	{"LoopCopyDoesNotCaptureThreading", testLoopCopyKeepsThreading},
}

// withSLA gives every conversation response targets, so a test sees that
// a machine-written message leaves them alone.
func withSLA(o *store.Options) {
	o.Deadline = func(kind store.SLAKind, _ string, _ message.Urgency, from time.Time) *time.Time {
		d := 10 * time.Minute
		if kind == store.NextResponse {
			d = 20 * time.Minute
		}
		at := from.Add(d)
		return &at
	}
}

// automaticDecision is what rules might make of an out-of-office reply; a
// machine-written message must not apply any of it to a conversation.
var automaticDecision = dec("escalations", "fraud", message.Urgent)

// automatic builds a machine-written e-mail of kind from the address.
func (e *env) automatic(kind message.Automatic, from string) *message.Message {
	m := e.msg(message.Email, from)
	m.Automatic = kind
	m.Subject = "Automatic reply: Question about my wallet"
	m.Text = "I am out of the office until Monday."
	if kind == message.Bounce {
		m.Subject = "Undelivered Mail Returned to Sender"
		m.Text = "Delivery to the following recipient failed permanently."
	}
	return m
}

// mailReply records an agent's e-mail reply to addr on conversation conv,
// answering inReplyTo, with a Message-ID of its own that names the reply
// (as the outbox makes it); it returns the reply and that Message-ID.
func (e *env) mailReply(conv int64, addr, inReplyTo string) (*store.Message, string) {
	e.t.Helper()
	id := message.NewID()
	msgID := "<" + id + "@wallet.example>"
	m, created, err := e.s.RecordReply(e.ctx, store.Reply{
		ID: id, ConversationID: conv, Channel: message.Email, ToKind: store.KindEmail, ToValue: addr,
		Subject: "Re: Question about my wallet", Text: "We are looking into it.", Key: "mail-reply-" + id, Agent: "ann",
		Thread: message.Thread{MessageID: msgID, InReplyTo: inReplyTo, References: []string{inReplyTo}},
	})
	if err != nil || !created {
		e.t.Fatalf("RecordReply: %v (created %v)", err, created)
	}
	if m.ID != id {
		e.t.Fatalf("RecordReply stored id %s; want the id given, %s", m.ID, id)
	}
	return m, msgID
}

// requireUnchanged fails unless the conversation is exactly as before.
func (e *env) requireUnchanged(before *store.Conversation, what string) {
	e.t.Helper()
	if after := e.conv(before.ID); !reflect.DeepEqual(before, after) {
		e.t.Errorf("%s changed conversation %d:\nbefore %+v\nafter  %+v", what, before.ID, *before, *after)
	}
}

// requireAutomatic checks the result of recording a machine-written
// message that joined conversation conv.
func (e *env) requireAutomaticJoined(r store.Result, conv int64, what string) {
	e.t.Helper()
	if !r.Automatic || !r.Joined || r.Duplicate || r.Reopened || r.Started || r.Conversation.ID != conv {
		e.t.Fatalf("%s: Automatic=%v Joined=%v Duplicate=%v Reopened=%v Started=%v conversation %d (%s); want Automatic, Joined to %d only",
			what, r.Automatic, r.Joined, r.Duplicate, r.Reopened, r.Started, r.Conversation.ID, r.Threading, conv)
	}
}

// automaticEvent returns the data of the conversation's one automatic
// event, failing unless there is exactly one.
func (e *env) automaticEvent(conv int64) map[string]string {
	e.t.Helper()
	evs := e.events(conv)
	if n := countKind(evs, store.EventAutomatic); n != 1 {
		e.t.Fatalf("Events(%d) kinds = %v; want exactly one %q", conv, kinds(evs), store.EventAutomatic)
	}
	for _, ev := range evs {
		if ev.Kind == store.EventAutomatic {
			var data map[string]string
			if err := json.Unmarshal(ev.Data, &data); err != nil {
				e.t.Fatalf("automatic event data %s: %v", ev.Data, err)
			}
			return data
		}
	}
	return nil
}

// storedMessage returns the stored copy of message id in conversation conv.
func (e *env) storedMessage(conv int64, id string) store.Message {
	e.t.Helper()
	for _, m := range e.messages(conv) {
		if m.ID == id {
			return m
		}
	}
	e.t.Fatalf("message %s is not in conversation %d", id, conv)
	return store.Message{}
}

func testAutoReplyJoinsUnchanged(t *testing.T, b Backend) {
	cases := []struct {
		name string
		from func(customer string) string
	}{
		{"FromTheCustomersAddress", func(c string) string { return c }},
		// Out-of-office replies often come from another address than the
		// one we wrote to (an alias, a forwarding mailbox).
		{"FromAnotherAddress", func(string) string { return newEmail("alias") }},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, b, withSLA)
			addr := newEmail("oli")
			first := e.msg(message.Email, addr)
			r1 := e.rec(first, dec("refunds", "refund", message.Normal))
			conv := r1.Conversation.ID
			e.claim("ann", nil, 5)
			e.clock.Advance(time.Minute)
			_, replyID := e.mailReply(conv, addr, first.Thread.MessageID)
			// The agent now waits on the customer: a message from the
			// customer would hand it back, an auto-reply must not.
			if err := e.s.SetStatus(e.ctx, conv, store.StatusWaiting, "ann"); err != nil {
				t.Fatalf("SetStatus(waiting): %v", err)
			}
			before := e.conv(conv)
			if before.Status != store.StatusWaiting || before.FirstResponseDue != nil {
				t.Fatalf("premise: conversation is %s with first response due %v; want waiting, answered", before.Status, before.FirstResponseDue)
			}

			e.clock.Advance(time.Minute)
			ooo := e.automatic(message.AutoReply, tc.from(addr))
			ooo.Thread.InReplyTo = replyID
			r := e.rec(ooo, automaticDecision)

			e.requireAutomaticJoined(r, conv, "auto-reply with In-Reply-To of our reply")
			e.requireUnchanged(before, "an auto-reply")
			if r.Conversation.Status != store.StatusWaiting || r.Conversation.Urgency != message.Normal {
				t.Errorf("Result.Conversation is %s/%s; want it as it is, waiting/normal", r.Conversation.Status, r.Conversation.Urgency)
			}
			if got := e.storedMessage(conv, ooo.ID).Automatic; got != message.AutoReply {
				t.Errorf("stored message Automatic = %q; want %q", got, message.AutoReply)
			}
			data := e.automaticEvent(conv)
			if data["message_id"] != ooo.ID || data["automatic"] != string(message.AutoReply) || data["channel"] != "email" || data["threading"] != r.Threading {
				t.Errorf("automatic event data = %v; want message_id, channel, automatic kind and threading", data)
			}
			if n := countKind(e.events(conv), store.EventJoined); n != 0 {
				t.Errorf("a %q event was logged for an auto-reply", store.EventJoined)
			}
			// Replies still go to the customer, not to the auto-replier.
			latest, err := e.s.LatestInbound(e.ctx, conv)
			if err != nil {
				t.Fatalf("LatestInbound: %v", err)
			}
			if latest.ID != first.ID {
				t.Errorf("LatestInbound = %s (%s); want the customer's message %s, not the auto-reply", latest.ID, latest.FromValue, first.ID)
			}
		})
	}
}

func testAutoReplyResolvedStays(t *testing.T, b Backend) {
	for _, age := range []time.Duration{time.Hour, 30 * 24 * time.Hour} {
		t.Run(fmt.Sprintf("ResolvedFor%s", age), func(t *testing.T) {
			e := newEnv(t, b, withSLA)
			addr := newEmail("pia")
			first := e.msg(message.Email, addr)
			conv := e.rec(first, topic("refund")).Conversation.ID
			e.resolve(conv)
			before := e.conv(conv)
			e.clock.Advance(age)

			ooo := e.automatic(message.AutoReply, addr)
			ooo.Thread.References = []string{first.Thread.MessageID}
			r := e.rec(ooo, automaticDecision)

			e.requireAutomaticJoined(r, conv, "auto-reply to a resolved conversation")
			e.requireUnchanged(before, "an auto-reply to a resolved conversation")
			if got := e.waiting(store.QueueFilter{}); len(got) != 0 {
				t.Errorf("Waiting = %v; want nothing waiting", got)
			}
			if n := countKind(e.events(conv), store.EventReopened); n != 0 {
				t.Errorf("a %q event was logged for an auto-reply", store.EventReopened)
			}
		})
	}
}

// A bounce comes from the mail server, not from the customer: it names our
// reply in its references, and that is enough.
func testBounceJoinsReplyConversation(t *testing.T, b Backend) {
	e := newEnv(t, b, withSLA)
	addr := newEmail("quinn")
	first := e.msg(message.Email, addr)
	r1 := e.rec(first, topic("refund"))
	conv := r1.Conversation.ID
	e.clock.Advance(time.Minute)
	_, replyID := e.mailReply(conv, addr, first.Thread.MessageID)
	before := e.conv(conv)

	e.clock.Advance(time.Minute)
	bounce := e.automatic(message.Bounce, "MAILER-DAEMON@mx.example.net")
	bounce.Thread.References = []string{replyID}
	r := e.rec(bounce, automaticDecision)

	e.requireAutomaticJoined(r, conv, "bounce naming our reply")
	e.requireUnchanged(before, "a bounce")
	if c := e.conv(conv); c.ContactID != r1.Conversation.ContactID {
		t.Errorf("conversation contact = %d; want the customer's %d", c.ContactID, r1.Conversation.ContactID)
	}
	if got := e.storedMessage(conv, bounce.ID).Automatic; got != message.Bounce {
		t.Errorf("stored message Automatic = %q; want %q", got, message.Bounce)
	}
	if got := e.contactConvs(r1.Conversation.ContactID); len(got) != 1 || got[0] != conv {
		t.Errorf("ContactConversations(customer) = %v; want only %d", got, conv)
	}

	// A person writing from another address with the same reference is
	// still kept out of the customer's conversation.
	other := e.msg(message.Email, newEmail("stranger"))
	other.Thread.InReplyTo = replyID
	if r := e.rec(other, topic("refund")); r.Conversation.ID == conv || r.Automatic {
		t.Errorf("a person's e-mail from another customer with the reply's Message-ID went to conversation %d (Automatic %v); want a new one",
			r.Conversation.ID, r.Automatic)
	}
}

func testAutomaticToken(t *testing.T, b Backend) {
	e := newEnv(t, b)
	addr := newEmail("rae")
	r1 := e.rec(e.msg(message.Email, addr), topic("refund"))
	conv := r1.Conversation.ID
	before := e.conv(conv)

	e.clock.Advance(time.Minute)
	ooo := e.automatic(message.AutoReply, addr)
	ooo.Subject = "Automatic reply: Re: Question about my wallet " + before.Token()
	r := e.rec(ooo, automaticDecision)
	e.requireAutomaticJoined(r, conv, "auto-reply with the conversation's token")
	e.requireUnchanged(before, "an auto-reply found by its token")
	if !strings.Contains(r.Threading, "token") {
		t.Errorf("Threading = %q; want it to name the token", r.Threading)
	}

	// Tokens are small numbers: anyone can write one. Another sender's
	// machine-looking mail does not get into this conversation by it.
	forged := e.automatic(message.AutoReply, newEmail("forger"))
	forged.Subject = "Automatic reply: " + before.Token()
	r = e.rec(forged, automaticDecision)
	if r.Conversation.ID == conv || r.Conversation.Status != store.StatusResolved {
		t.Errorf("another sender's automatic mail with the token went to conversation %d (%s); want a new resolved one",
			r.Conversation.ID, r.Conversation.Status)
	}
}

// The reference may be to a message of the same batch.
//
// (From another sender, a reference to a customer's own Message-ID leads
// nowhere: see CustomersMessageIDDoesNotCrossCustomers.)
func testAutomaticInBatch(t *testing.T, b Backend) {
	e := newEnv(t, b)
	addr := newEmail("sam")
	first := e.msg(message.Email, addr)
	ooo := e.automatic(message.AutoReply, addr)
	ooo.Thread.InReplyTo = first.Thread.MessageID
	res := e.record(store.Inbound{Msg: first, Decision: topic("refund")}, store.Inbound{Msg: ooo, Decision: automaticDecision})

	conv := res[0].Conversation.ID
	e.requireAutomaticJoined(res[1], conv, "auto-reply to a message of its batch")
	c := e.conv(conv)
	if c.Status != store.StatusQueued || c.Queue != "support" || c.Urgency != message.Normal {
		t.Errorf("conversation is %s/%s/%s; want queued/support/normal, as the customer's message made it", c.Status, c.Queue, c.Urgency)
	}
	if ms := e.messages(conv); len(ms) != 2 {
		t.Errorf("Messages(%d) = %d; want the customer's and the auto-reply", conv, len(ms))
	}
}

// With nothing to refer to, a machine-written message is kept in a
// conversation of its own that is no work: resolved from the start. Being
// near in time (chat window) or topic proves nothing, so those rules do
// not apply.
func testAutomaticNoReference(t *testing.T, b Backend) {
	cases := []struct {
		name string
		ch   message.Channel
	}{
		{"EmailWithOpenConversationOnSameTopic", message.Email},
		{"SMSWithinChatWindow", message.SMS},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, b, withSLA)
			from := senderFor(tc.ch)
			open := e.rec(e.msg(tc.ch, from), automaticDecision).Conversation.ID
			openBefore := e.conv(open)

			e.clock.Advance(time.Minute)
			m := e.msg(tc.ch, from)
			m.Automatic = message.Bulk
			r := e.rec(m, automaticDecision)

			if !r.Automatic || !r.Started || r.Joined || r.Duplicate || r.Reopened {
				t.Fatalf("Result Automatic=%v Started=%v Joined=%v Duplicate=%v Reopened=%v (%s); want Automatic and Started only",
					r.Automatic, r.Started, r.Joined, r.Duplicate, r.Reopened, r.Threading)
			}
			if r.Conversation.ID == open {
				t.Fatalf("joined the customer's open conversation %d; want a conversation of its own", open)
			}
			e.requireUnchanged(openBefore, "an automatic message with no reference")
			for _, c := range []*store.Conversation{&r.Conversation, e.conv(r.Conversation.ID)} {
				if c.Status != store.StatusResolved || c.ResolvedAt == nil || !c.ResolvedAt.Equal(e.clock.Now()) {
					t.Errorf("new conversation status %s resolved at %v; want resolved now (%v)", c.Status, c.ResolvedAt, e.clock.Now())
				}
				if c.FirstResponseDue != nil || c.NextResponseDue != nil {
					t.Errorf("new conversation has response targets %v/%v; want none", c.FirstResponseDue, c.NextResponseDue)
				}
			}
			if !strings.Contains(r.Threading, string(message.Bulk)) || !strings.Contains(r.Threading, "resolved") {
				t.Errorf("Threading = %q; want it to say the bulk message was recorded as resolved", r.Threading)
			}
			if got := e.waiting(store.QueueFilter{}); len(got) != 1 || got[0] != open {
				t.Errorf("Waiting = %v; want only the customer's conversation %d", got, open)
			}
			if due, err := e.s.Due(e.ctx, e.clock.Now().Add(time.Hour), 10, -1); err != nil || len(due) != 1 || due[0].ID != open {
				t.Errorf("Due = %v, %v; want only the customer's conversation %d", convIDs(due), err, open)
			}
			if got := e.storedMessage(r.Conversation.ID, m.ID).Automatic; got != message.Bulk {
				t.Errorf("stored message Automatic = %q; want %q", got, message.Bulk)
			}
			if data := e.automaticEvent(r.Conversation.ID); data["message_id"] != m.ID || data["automatic"] != string(message.Bulk) {
				t.Errorf("automatic event data = %v", data)
			}
			if n := countKind(e.events(r.Conversation.ID), store.EventRouted); n != 0 {
				t.Errorf("a %q event was logged for an automatic message", store.EventRouted)
			}
		})
	}
}

// A redelivered machine-written message is a duplicate like any other, and
// still says it is automatic, so the router treats the repeat as it did
// the first delivery.
func testAutomaticDuplicate(t *testing.T, b Backend) {
	t.Run("Joined", func(t *testing.T) {
		e := newEnv(t, b)
		addr := newEmail("tess")
		first := e.msg(message.Email, addr)
		conv := e.rec(first, topic("refund")).Conversation.ID
		ooo := e.automatic(message.AutoReply, addr)
		ooo.Thread.InReplyTo = first.Thread.MessageID
		r1 := e.rec(ooo, automaticDecision)
		e.requireAutomaticJoined(r1, conv, "first delivery")
		before := e.conv(conv)
		nEvents := len(e.events(conv))

		e.clock.Advance(time.Minute)
		again := *ooo
		again.ID = message.NewID()
		r2 := e.rec(&again, automaticDecision)
		if !r2.Duplicate || !r2.Automatic || r2.Conversation.ID != conv || r2.MessageID != ooo.ID {
			t.Fatalf("redelivery: Duplicate=%v Automatic=%v conversation %d message %s; want a duplicate of %s in %d, automatic",
				r2.Duplicate, r2.Automatic, r2.Conversation.ID, r2.MessageID, ooo.ID, conv)
		}
		e.requireUnchanged(before, "a redelivered auto-reply")
		if n := len(e.events(conv)); n != nEvents {
			t.Errorf("Events grew from %d to %d on a duplicate", nEvents, n)
		}
		if ms := e.messages(conv); len(ms) != 2 {
			t.Errorf("Messages = %d; want 2", len(ms))
		}
	})
	t.Run("NewResolved", func(t *testing.T) {
		e := newEnv(t, b)
		m := e.automatic(message.Bounce, "mailer-daemon@mx.example.net")
		r1 := e.rec(m, automaticDecision)
		cp := *m
		res := e.record(store.Inbound{Msg: &cp, Decision: automaticDecision}, store.Inbound{Msg: m, Decision: automaticDecision})
		for i, r := range res {
			if !r.Duplicate || !r.Automatic || !r.Started || r.Conversation.ID != r1.Conversation.ID {
				t.Errorf("redelivery %d: Duplicate=%v Automatic=%v Started=%v conversation %d; want a duplicate in %d, automatic, started",
					i, r.Duplicate, r.Automatic, r.Started, r.Conversation.ID, r1.Conversation.ID)
			}
		}
		if c := e.conv(r1.Conversation.ID); c.Status != store.StatusResolved {
			t.Errorf("conversation status %s; want resolved", c.Status)
		}
	})
	t.Run("WithinBatch", func(t *testing.T) {
		e := newEnv(t, b)
		m := e.automatic(message.AutoReply, newEmail("uma"))
		cp := *m
		res := e.record(store.Inbound{Msg: m, Decision: automaticDecision}, store.Inbound{Msg: &cp, Decision: automaticDecision})
		if !res[0].Automatic || res[0].Duplicate || !res[1].Duplicate || !res[1].Automatic || res[1].Conversation.ID != res[0].Conversation.ID {
			t.Errorf("results %+v / %+v; want the second a duplicate of the first, both automatic", res[0], res[1])
		}
		if ms := e.messages(res[0].Conversation.ID); len(ms) != 1 {
			t.Errorf("Messages = %d; want 1", len(ms))
		}
	})
}

// What the customer writes next is threaded and routed as ever.
func testPersonAfterAutomatic(t *testing.T, b Backend) {
	t.Run("AnswerJoinsAndMovesTheConversation", func(t *testing.T) {
		e := newEnv(t, b, withSLA)
		addr := newEmail("vic")
		first := e.msg(message.Email, addr)
		conv := e.rec(first, topic("refund")).Conversation.ID
		e.resolve(conv)
		ooo := e.automatic(message.AutoReply, addr)
		ooo.Thread.InReplyTo = first.Thread.MessageID
		e.requireAutomaticJoined(e.rec(ooo, automaticDecision), conv, "auto-reply")

		e.clock.Advance(time.Minute)
		answer := e.msg(message.Email, addr)
		answer.Thread.InReplyTo = first.Thread.MessageID
		r := e.rec(answer, dec("support", "refund", message.High))
		if r.Automatic || !r.Joined || !r.Reopened || r.Conversation.ID != conv {
			t.Fatalf("customer's answer: Automatic=%v Joined=%v Reopened=%v conversation %d; want it to reopen %d",
				r.Automatic, r.Joined, r.Reopened, r.Conversation.ID, conv)
		}
		c := e.conv(conv)
		if c.Status != store.StatusQueued || c.Urgency != message.High || c.NextResponseDue == nil {
			t.Errorf("after the customer's answer: %s/%s next response due %v; want queued/high with a target", c.Status, c.Urgency, c.NextResponseDue)
		}
		if latest, err := e.s.LatestInbound(e.ctx, conv); err != nil || latest.ID != answer.ID {
			t.Errorf("LatestInbound = %v, %v; want the answer %s", latest, err, answer.ID)
		}
	})
	t.Run("NewMailStartsQueuedConversation", func(t *testing.T) {
		e := newEnv(t, b)
		addr := newEmail("wes")
		m := e.automatic(message.AutoReply, addr)
		auto := e.rec(m, topic("refund")).Conversation.ID

		e.clock.Advance(time.Minute)
		r := e.rec(e.msg(message.Email, addr), topic("refund"))
		if r.Automatic || !r.Started || r.Conversation.ID == auto {
			t.Fatalf("customer's mail: Automatic=%v Started=%v conversation %d; want a new conversation, not %d",
				r.Automatic, r.Started, r.Conversation.ID, auto)
		}
		if c := e.conv(r.Conversation.ID); c.Status != store.StatusQueued {
			t.Errorf("customer's conversation status %s; want queued", c.Status)
		}
		if got := e.waiting(store.QueueFilter{}); len(got) != 1 || got[0] != r.Conversation.ID {
			t.Errorf("Waiting = %v; want %d", got, r.Conversation.ID)
		}
	})
}

// Our own reply seen again (a loop) carries the reply's Message-ID. Its
// copy must not become what that Message-ID threads to: the customer's
// answer to the reply still finds the reply's conversation, also when the
// copy comes back from the customer's own mailbox (a forwarding rule) in
// the same batch as the answer.
func testLoopCopyKeepsThreading(t *testing.T, b Backend) {
	for _, sameBatch := range []bool{false, true} {
		t.Run(map[bool]string{false: "LaterBatch", true: "SameBatch"}[sameBatch], func(t *testing.T) {
			e := newEnv(t, b)
			addr := newEmail("xia")
			first := e.msg(message.Email, addr)
			conv := e.rec(first, topic("refund")).Conversation.ID
			_, replyID := e.mailReply(conv, addr, first.Thread.MessageID)

			e.clock.Advance(time.Minute)
			loop := e.automatic(message.Loop, addr)
			loop.Subject = "Question about my wallet" // the token is lost, and so are the references
			loop.Thread = message.Thread{MessageID: replyID}
			answer := e.msg(message.Email, addr)
			answer.Subject = "Something else entirely"
			answer.Thread.InReplyTo = replyID

			var rl, ra store.Result
			if sameBatch {
				res := e.record(store.Inbound{Msg: loop, Decision: automaticDecision}, store.Inbound{Msg: answer, Decision: topic("other")})
				rl, ra = res[0], res[1]
			} else {
				rl = e.rec(loop, automaticDecision)
				e.clock.Advance(time.Minute)
				ra = e.rec(answer, topic("other"))
			}
			if !rl.Automatic || !rl.Started {
				t.Fatalf("loop copy: Automatic=%v Started=%v (%s); want a resolved conversation of its own", rl.Automatic, rl.Started, rl.Threading)
			}
			if !ra.Joined || ra.Conversation.ID != conv {
				t.Fatalf("answer to our reply: Joined=%v conversation %d (%s); want joined to %d", ra.Joined, ra.Conversation.ID, ra.Threading, conv)
			}
		})
	}
}

// Someone who knows (or guesses) a customer's own Message-ID cannot put
// text into that customer's conversation by calling their mail automatic;
// only our replies' Message-IDs lead across customers.
func testAutomaticForeignReference(t *testing.T, b Backend) {
	e := newEnv(t, b)
	first := e.msg(message.Email, newEmail("una"))
	conv := e.rec(first, topic("refund")).Conversation.ID
	forged := e.automatic(message.AutoReply, newEmail("mallory"))
	forged.Thread.InReplyTo = first.Thread.MessageID
	r := e.rec(forged, automaticDecision)
	if r.Conversation.ID == conv || r.Conversation.Status != store.StatusResolved {
		t.Errorf("another sender's automatic mail naming the customer's Message-ID went to conversation %d (%s); want a new resolved one",
			r.Conversation.ID, r.Conversation.Status)
	}
}
