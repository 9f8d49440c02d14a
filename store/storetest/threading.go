package storetest

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
)

var threadingTests = []contractTest{
	{"NewConversation", testNewConversation},
	{"Duplicate", testDuplicate},
	{"DuplicateWithinBatch", testDuplicateWithinBatch},
	{"SameChannelMessageIDOnOtherChannelIsNotDuplicate", testSameCMIDOtherChannel},
	{"BatchResultsInOrder", testBatchResultsInOrder},
	{"EmailHeadersJoin", testEmailHeadersJoin},
	{"EmailHeadersOfOtherCustomerNotJoined", testEmailHeadersOtherCustomer},
	{"SubjectTokenJoins", testSubjectTokenJoins},
	{"SubjectTokenOfOtherCustomerIgnored", testSubjectTokenOtherCustomer},
	{"SubjectTokenOfUnknownConversationIgnored", testSubjectTokenUnknown},
	{"ChatWindowJoinsSameChannel", testChatWindowJoinsSameChannel},
	{"ChatWindowOption", testChatWindowOption},
	{"ChatWindowJoinsMostRecent", testChatWindowJoinsMostRecent},
	{"ChatWindowIsPerChannel", testChatWindowIsPerChannel},
	{"EmailHasNoChatWindow", testEmailHasNoChatWindow},
	{"ChatWindowBeforeTopic", testChatWindowBeforeTopic},
	{"CrossChannelSameTopicJoinsAndRaisesUrgency", testCrossChannelSameTopic},
	{"CrossChannelOtherTopicNewConversation", testCrossChannelOtherTopic},
	{"CrossChannelIgnoresResolved", testCrossChannelIgnoresResolved},
	{"JoinNeverLowersUrgency", testJoinNeverLowersUrgency},
	{"JoinReportsPreviousState", testJoinReportsPrevious},
	{"Reopen", testReopen},
	{"MessagesKeepEverything", testMessagesKeepEverything},
	{"InboundAttachmentsReplaceMessageAttachments", testInboundAttachmentsReplace},
	{"EventPerMessage", testEventPerMessage},
}

func testNewConversation(t *testing.T, b Backend) {
	e := newEnv(t, b)
	m := e.msg(message.Email, "Erin@Example.com")
	m.Subject = "Top-up missing"
	r := e.rec(m, dec("payments", "topup_missing", message.High))

	if r.Duplicate || r.Joined || r.Reopened {
		t.Errorf("Result Duplicate/Joined/Reopened = %v/%v/%v; want all false for a first message", r.Duplicate, r.Joined, r.Reopened)
	}
	if r.PrevQueue != "" || r.PrevUrgency != "" || r.PrevStatus != "" {
		t.Errorf("Result Prev = %q/%q/%q; want zero for a new conversation", r.PrevQueue, r.PrevUrgency, r.PrevStatus)
	}
	if r.MessageID == "" {
		t.Errorf("Result.MessageID is empty")
	}
	for _, c := range []*store.Conversation{&r.Conversation, e.conv(r.Conversation.ID)} {
		if c.ID == 0 || c.ContactID == 0 {
			t.Errorf("conversation id %d, contact %d; want both set", c.ID, c.ContactID)
		}
		if c.Status != store.StatusQueued || c.Queue != "payments" || c.Urgency != message.High || c.Topic != "topup_missing" {
			t.Errorf("conversation status/queue/urgency/topic = %s/%s/%s/%s; want queued/payments/high/topup_missing (from the decision)",
				c.Status, c.Queue, c.Urgency, c.Topic)
		}
		if c.Channel != message.Email {
			t.Errorf("conversation Channel = %q; want email (where it started)", c.Channel)
		}
	}
	if got := e.conv(r.Conversation.ID).ContactID; got != r.Conversation.ContactID {
		t.Errorf("Conversation().ContactID = %d; Record said %d", got, r.Conversation.ContactID)
	}
	if c := e.contact(r.Conversation.ContactID); len(c.Identities) == 0 {
		t.Errorf("the contact that wrote has no identities")
	} else if _, ok := identity(c, store.KindEmail, "erin@example.com"); !ok {
		t.Errorf("conversation contact %d has identities %+v; want the writer's e-mail erin@example.com", c.ID, c.Identities)
	}

	ms := e.messages(r.Conversation.ID)
	if len(ms) != 1 {
		t.Fatalf("Messages = %d messages; want 1", len(ms))
	}
	if ms[0].ID != r.MessageID {
		t.Errorf("stored message id %q; Result.MessageID %q", ms[0].ID, r.MessageID)
	}
	evs := e.events(r.Conversation.ID)
	if n := countKind(evs, store.EventRouted); n != 1 {
		t.Errorf("Events kinds = %v; want exactly one %q for a new conversation", kinds(evs), store.EventRouted)
	}
	if got := e.waiting(store.QueueFilter{}); !slices.Contains(got, r.Conversation.ID) {
		t.Errorf("Waiting = %v; want the new queued conversation %d", got, r.Conversation.ID)
	}
}

// A redelivery (same channel and channel message id) changes nothing, even
// if it arrives with another inroute id or was routed differently this
// time.
func testDuplicate(t *testing.T, b Backend) {
	cases := []struct {
		name string
		redo func(m *message.Message) *message.Message
	}{
		{"SameMessageAgain", func(m *message.Message) *message.Message { cp := *m; return &cp }},
		{"RedeliveredWithNewInrouteID", func(m *message.Message) *message.Message {
			cp := *m
			cp.ID = message.NewID()
			cp.Text = "the same message, fetched again"
			return &cp
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, b)
			m := e.msg(message.SMS, newPhone())
			r1 := e.rec(m, dec("billing", "fee", message.Low))
			eventsBefore := len(e.events(r1.Conversation.ID))

			e.clock.Advance(time.Minute)
			again := tc.redo(m)
			again.ReceivedAt = e.clock.Now()
			r2 := e.rec(again, dec("escalations", "fraud", message.Urgent))

			if !r2.Duplicate {
				t.Fatalf("second Record of %s %q: Duplicate = false; want true", m.Channel, m.ChannelMessageID)
			}
			if r2.Conversation.ID != r1.Conversation.ID {
				t.Errorf("duplicate's Conversation.ID = %d; want its conversation %d", r2.Conversation.ID, r1.Conversation.ID)
			}
			c := e.conv(r1.Conversation.ID)
			if c.Queue != "billing" || c.Urgency != message.Low || c.Topic != "fee" {
				t.Errorf("after a duplicate the conversation is %s/%s/%s; want unchanged billing/low/fee", c.Queue, c.Urgency, c.Topic)
			}
			if ms := e.messages(r1.Conversation.ID); len(ms) != 1 {
				t.Errorf("Messages = %d; want 1 (the duplicate is not stored)", len(ms))
			}
			if n := len(e.events(r1.Conversation.ID)); n != eventsBefore {
				t.Errorf("Events grew from %d to %d on a duplicate; want nothing to change", eventsBefore, n)
			}
		})
	}
}

func testDuplicateWithinBatch(t *testing.T, b Backend) {
	e := newEnv(t, b)
	m := e.msg(message.Telegram, newUser())
	cp := *m
	res := e.record(store.Inbound{Msg: m, Decision: topic("fee")}, store.Inbound{Msg: &cp, Decision: topic("fee")})
	if res[0].Duplicate {
		t.Errorf("first of the batch is a Duplicate; want it stored")
	}
	if !res[1].Duplicate {
		t.Errorf("second (same channel message id) in the same batch: Duplicate = false; want true")
	}
	if res[1].Conversation.ID != res[0].Conversation.ID {
		t.Errorf("duplicate's conversation %d; want %d", res[1].Conversation.ID, res[0].Conversation.ID)
	}
	if ms := e.messages(res[0].Conversation.ID); len(ms) != 1 {
		t.Errorf("Messages = %d; want 1", len(ms))
	}
}

// The dedupe key is (channel, channel message id): ids are only unique
// within one channel.
func testSameCMIDOtherChannel(t *testing.T, b Backend) {
	e := newEnv(t, b)
	sms := e.msg(message.SMS, newPhone())
	sms.ChannelMessageID = "42"
	tg := e.msg(message.Telegram, newUser())
	tg.ChannelMessageID = "42"
	r1 := e.rec(sms, topic("fee"))
	r2 := e.rec(tg, topic("fee"))
	if r2.Duplicate {
		t.Fatalf("telegram message 42 is a Duplicate of sms message 42; the key must include the channel")
	}
	if r1.Conversation.ID == r2.Conversation.ID {
		t.Errorf("two customers on two channels share conversation %d", r1.Conversation.ID)
	}
}

// Results come back in input order, and a later message of a batch sees
// what the earlier ones stored (one transaction, in order).
func testBatchResultsInOrder(t *testing.T, b Backend) {
	e := newEnv(t, b)
	phone := newPhone()
	ins := []store.Inbound{
		{Msg: e.msg(message.SMS, phone), Decision: topic("fee")},
		{Msg: e.msg(message.Telegram, newUser()), Decision: topic("card_lost")},
		{Msg: e.msg(message.Email, newEmail("batch")), Decision: topic("refund")},
		{Msg: e.msg(message.SMS, phone), Decision: topic("limits")},
	}
	res := e.record(ins...)
	for i, r := range res {
		ms := e.messages(r.Conversation.ID)
		if !slices.ContainsFunc(ms, func(m store.Message) bool { return m.ChannelMessageID == ins[i].Msg.ChannelMessageID }) {
			t.Errorf("result %d names conversation %d, which does not hold input %d (%s %s)", i, r.Conversation.ID, i, ins[i].Msg.Channel, ins[i].Msg.ChannelMessageID)
		}
	}
	if ids := ids(res[0].Conversation.ID, res[1].Conversation.ID, res[2].Conversation.ID); len(ids) != 3 {
		t.Errorf("three customers' messages share conversations: %d, %d, %d", res[0].Conversation.ID, res[1].Conversation.ID, res[2].Conversation.ID)
	}
	if !res[3].Joined || res[3].Conversation.ID != res[0].Conversation.ID {
		t.Errorf("second SMS of the batch: Joined=%v conversation %d; want joined to the first SMS's conversation %d (chat window)",
			res[3].Joined, res[3].Conversation.ID, res[0].Conversation.ID)
	}
}

// A reply whose In-Reply-To or References names a stored message joins its
// conversation, ahead of the topic rule: the customer has another open
// conversation on the reply's topic, which must not win.
func testEmailHeadersJoin(t *testing.T, b Backend) {
	cases := []struct {
		name   string
		thread func(first string) message.Thread
	}{
		{"InReplyTo", func(first string) message.Thread { return message.Thread{InReplyTo: first} }},
		{"References", func(first string) message.Thread {
			return message.Thread{References: []string{"<unrelated@elsewhere.example>", first}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, b)
			addr := newEmail("hal")
			first := e.msg(message.Email, addr)
			r1 := e.rec(first, dec("refunds", "refund", message.Normal))
			e.clock.Advance(time.Minute)
			r2 := e.rec(e.msg(message.Email, addr), dec("cards", "card_lost", message.Normal))
			if r2.Conversation.ID == r1.Conversation.ID {
				t.Fatalf("an unrelated e-mail on another topic joined conversation %d; want a new one", r1.Conversation.ID)
			}

			e.clock.Advance(time.Minute)
			reply := e.msg(message.Email, addr)
			reply.Subject = "Re: " + first.Subject
			th := tc.thread(first.Thread.MessageID)
			th.MessageID = reply.Thread.MessageID
			reply.Thread = th
			r3 := e.rec(reply, dec("cards", "card_lost", message.Normal))

			if !r3.Joined || r3.Conversation.ID != r1.Conversation.ID {
				t.Fatalf("reply by %s: Joined=%v conversation %d; want joined to %d (the conversation of the message it answers), not %d (same topic)",
					tc.name, r3.Joined, r3.Conversation.ID, r1.Conversation.ID, r2.Conversation.ID)
			}
			if r3.Reopened {
				t.Errorf("Reopened = true for an open conversation")
			}
			if r3.PrevQueue != "refunds" || r3.PrevUrgency != message.Normal || r3.PrevStatus != store.StatusQueued {
				t.Errorf("Prev = %q/%q/%q; want refunds/normal/queued", r3.PrevQueue, r3.PrevUrgency, r3.PrevStatus)
			}
			ms := e.messages(r1.Conversation.ID)
			if len(ms) != 2 || ms[1].ChannelMessageID != reply.ChannelMessageID {
				t.Errorf("Messages(%d) = %d messages; want 2, the reply last", r1.Conversation.ID, len(ms))
			}
		})
	}
}

// Message-IDs are not secrets: another customer quoting them (a forwarded
// mail, a shared thread) must not land in the first customer's
// conversation.
func testEmailHeadersOtherCustomer(t *testing.T, b Backend) {
	e := newEnv(t, b)
	first := e.msg(message.Email, newEmail("ivy"))
	r1 := e.rec(first, topic("refund"))

	e.clock.Advance(time.Minute)
	other := e.msg(message.Email, newEmail("jack"))
	other.Thread.InReplyTo = first.Thread.MessageID
	other.Thread.References = []string{first.Thread.MessageID}
	r2 := e.rec(other, topic("refund"))

	if r2.Joined || r2.Conversation.ID == r1.Conversation.ID {
		t.Errorf("another customer's reply with the same references joined conversation %d; want a new conversation", r1.Conversation.ID)
	}
	if r2.Conversation.ContactID == r1.Conversation.ContactID {
		t.Errorf("two e-mail senders share contact %d", r1.Conversation.ContactID)
	}
	if ms := e.messages(r1.Conversation.ID); len(ms) != 1 {
		t.Errorf("first customer's conversation has %d messages; want 1", len(ms))
	}
}

// "[#<id>]" in a subject names the conversation, ahead of the topic rule.
func testSubjectTokenJoins(t *testing.T, b Backend) {
	e := newEnv(t, b)
	addr := newEmail("kim")
	r1 := e.rec(e.msg(message.Email, addr), topic("refund"))
	e.clock.Advance(time.Minute)
	r2 := e.rec(e.msg(message.Email, addr), topic("card_lost"))
	if r2.Conversation.ID == r1.Conversation.ID {
		t.Fatalf("an unrelated e-mail on another topic joined conversation %d", r1.Conversation.ID)
	}

	e.clock.Advance(time.Minute)
	m := e.msg(message.Email, addr) // a new Message-ID, no In-Reply-To
	m.Subject = "Re: refund " + r1.Conversation.Token()
	r3 := e.rec(m, topic("card_lost"))
	if !r3.Joined || r3.Conversation.ID != r1.Conversation.ID {
		t.Errorf("subject %q: Joined=%v conversation %d; want joined to %d, not %d (same topic)",
			m.Subject, r3.Joined, r3.Conversation.ID, r1.Conversation.ID, r2.Conversation.ID)
	}
}

// A subject is typed by the customer: naming someone else's conversation
// must not give access to it.
func testSubjectTokenOtherCustomer(t *testing.T, b Backend) {
	e := newEnv(t, b)
	r1 := e.rec(e.msg(message.Email, newEmail("lee")), topic("refund"))
	e.clock.Advance(time.Minute)
	m := e.msg(message.Email, newEmail("mallory"))
	m.Subject = "Re: refund " + r1.Conversation.Token()
	r2 := e.rec(m, topic("refund"))
	if r2.Joined || r2.Conversation.ID == r1.Conversation.ID {
		t.Errorf("another customer's subject %q joined conversation %d; want a new conversation", m.Subject, r1.Conversation.ID)
	}
	if ms := e.messages(r1.Conversation.ID); len(ms) != 1 {
		t.Errorf("conversation %d has %d messages; want 1", r1.Conversation.ID, len(ms))
	}
}

func testSubjectTokenUnknown(t *testing.T, b Backend) {
	e := newEnv(t, b)
	m := e.msg(message.Email, newEmail("ned"))
	m.Subject = "Re: [#987654321]"
	r := e.rec(m, topic("refund"))
	if r.Joined || r.Conversation.ID == 0 {
		t.Errorf("subject naming an unknown conversation: Joined=%v conversation %d; want a new conversation", r.Joined, r.Conversation.ID)
	}
}

// On non-e-mail channels a message continues the customer's recent
// conversation on that channel, whatever its topic, within the chat
// window (default 24h), and starts a new one after it.
func testChatWindowJoinsSameChannel(t *testing.T, b Backend) {
	e := newEnv(t, b)
	chans := []message.Channel{message.SMS, message.Voice, message.Telegram, message.Messenger, message.WeChat, message.WebChat, message.App}
	for _, ch := range chans {
		t.Run(string(ch), func(t *testing.T) {
			e := e.sub(t)
			from := senderFor(ch)
			r1 := e.rec(e.msg(ch, from), topic("fee"))

			e.clock.Advance(23 * time.Hour)
			r2 := e.rec(e.msg(ch, from), topic("card_lost"))
			if !r2.Joined || r2.Conversation.ID != r1.Conversation.ID {
				t.Errorf("%s message 23h later: Joined=%v conversation %d; want joined to %d (within the 24h chat window)",
					ch, r2.Joined, r2.Conversation.ID, r1.Conversation.ID)
			}

			e.clock.Advance(25 * time.Hour)
			r3 := e.rec(e.msg(ch, from), topic("limits"))
			if r3.Joined || r3.Conversation.ID == r1.Conversation.ID {
				t.Errorf("%s message 25h after the last one: Joined=%v conversation %d; want a new conversation (chat window passed, other topic)",
					ch, r3.Joined, r3.Conversation.ID)
			}
		})
	}
}

func testChatWindowOption(t *testing.T, b Backend) {
	e := newEnv(t, b, func(o *store.Options) { o.ChatWindow = time.Hour })
	from := newUser()
	r1 := e.rec(e.msg(message.WeChat, from), topic("fee"))
	e.clock.Advance(50 * time.Minute)
	r2 := e.rec(e.msg(message.WeChat, from), topic("card_lost"))
	if !r2.Joined || r2.Conversation.ID != r1.Conversation.ID {
		t.Errorf("50 min later with ChatWindow 1h: Joined=%v conversation %d; want joined to %d", r2.Joined, r2.Conversation.ID, r1.Conversation.ID)
	}
	e.clock.Advance(70 * time.Minute)
	r3 := e.rec(e.msg(message.WeChat, from), topic("limits"))
	if r3.Joined {
		t.Errorf("70 min after the last message with ChatWindow 1h: joined conversation %d; want a new one", r3.Conversation.ID)
	}
}

// With two conversations on the channel inside the window, the most recent
// one continues. The older one exists because, with a one-hour reopen
// window, a message after its resolution started a new conversation.
func testChatWindowJoinsMostRecent(t *testing.T, b Backend) {
	e := newEnv(t, b, func(o *store.Options) { o.ReopenWindow = time.Hour })
	from := newPhone()
	r1 := e.rec(e.msg(message.SMS, from), topic("fee"))
	e.clock.Advance(time.Minute)
	e.resolve(r1.Conversation.ID)
	e.clock.Advance(2 * time.Hour)
	r2 := e.rec(e.msg(message.SMS, from), topic("card_lost"))
	if r2.Joined || r2.Conversation.ID == r1.Conversation.ID {
		t.Fatalf("SMS 2h after a resolution (reopen window 1h) joined conversation %d; want a new one", r2.Conversation.ID)
	}
	e.clock.Advance(time.Minute)
	r3 := e.rec(e.msg(message.SMS, from), topic("limits"))
	if !r3.Joined || r3.Conversation.ID != r2.Conversation.ID {
		t.Errorf("next SMS: Joined=%v conversation %d; want joined to the most recent conversation %d, not the resolved %d",
			r3.Joined, r3.Conversation.ID, r2.Conversation.ID, r1.Conversation.ID)
	}
}

// The chat window continues a conversation on the same channel only: a
// call after an SMS from the same phone (same contact) on another topic is
// a new conversation.
func testChatWindowIsPerChannel(t *testing.T, b Backend) {
	e := newEnv(t, b)
	phone := newPhone()
	r1 := e.rec(e.msg(message.SMS, phone), topic("fee"))
	e.clock.Advance(time.Minute)
	r2 := e.rec(e.msg(message.Voice, phone), topic("card_lost"))
	if r2.Conversation.ContactID != r1.Conversation.ContactID {
		t.Errorf("SMS and voice from %s went to contacts %d and %d; want one", phone, r1.Conversation.ContactID, r2.Conversation.ContactID)
	}
	if r2.Joined || r2.Conversation.ID == r1.Conversation.ID {
		t.Errorf("voice call on another topic joined the SMS conversation %d; want a new conversation", r1.Conversation.ID)
	}
}

// E-mail threads by headers and tokens only: a new e-mail on another topic
// a minute later is a new conversation.
func testEmailHasNoChatWindow(t *testing.T, b Backend) {
	e := newEnv(t, b)
	addr := newEmail("olga")
	r1 := e.rec(e.msg(message.Email, addr), topic("fee"))
	e.clock.Advance(time.Minute)
	r2 := e.rec(e.msg(message.Email, addr), topic("card_lost"))
	if r2.Joined || r2.Conversation.ID == r1.Conversation.ID {
		t.Errorf("new e-mail (no headers, no token) on another topic joined conversation %d; want a new conversation", r1.Conversation.ID)
	}
}

// Step 4 (same channel, chat window) comes before step 5 (same topic).
func testChatWindowBeforeTopic(t *testing.T, b Backend) {
	e := newEnv(t, b)
	c := e.linkedCustomer()
	rs := e.rec(e.msg(message.SMS, c.phone), topic("fee"))
	e.requireCustomer(rs, c, "SMS from the verified phone")
	e.clock.Advance(time.Minute)
	rm := e.rec(e.msg(message.Email, c.email), topic("card_lost"))
	e.requireCustomer(rm, c, "e-mail from the verified address")
	if rm.Conversation.ID == rs.Conversation.ID {
		t.Fatalf("e-mail on another topic joined the SMS conversation %d", rs.Conversation.ID)
	}
	e.clock.Advance(time.Minute)
	r := e.rec(e.msg(message.SMS, c.phone), topic("card_lost"))
	if r.Conversation.ID != rs.Conversation.ID {
		t.Errorf("SMS within the chat window on topic card_lost went to conversation %d; want the SMS conversation %d (chat window before topic), not the e-mail one %d",
			r.Conversation.ID, rs.Conversation.ID, rm.Conversation.ID)
	}
}

// The spec's example: an e-mail about a missing top-up at low, then a call
// about the same at urgent, is one conversation at urgent, with both
// messages oldest first.
func testCrossChannelSameTopic(t *testing.T, b Backend) {
	e := newEnv(t, b)
	c := e.linkedCustomer()
	e.clock.Advance(time.Minute)
	mail := e.msg(message.Email, c.email)
	r1 := e.rec(mail, dec("payments", "topup_missing", message.Low))
	e.requireCustomer(r1, c, "e-mail from the verified address")

	e.clock.Advance(2 * time.Hour)
	call := e.msg(message.Voice, c.phone)
	r2 := e.rec(call, dec("voice", "topup_missing", message.Urgent))
	e.requireCustomer(r2, c, "call from the verified phone")

	if !r2.Joined || r2.Conversation.ID != r1.Conversation.ID {
		t.Fatalf("call on the same topic: Joined=%v conversation %d; want joined to the open e-mail conversation %d",
			r2.Joined, r2.Conversation.ID, r1.Conversation.ID)
	}
	if r2.PrevQueue != "payments" || r2.PrevUrgency != message.Low || r2.PrevStatus != store.StatusQueued {
		t.Errorf("Prev = %q/%q/%q; want payments/low/queued", r2.PrevQueue, r2.PrevUrgency, r2.PrevStatus)
	}
	if r2.Conversation.Urgency != message.Urgent {
		t.Errorf("Result conversation urgency = %s; want urgent (the higher)", r2.Conversation.Urgency)
	}
	conv := e.conv(r1.Conversation.ID)
	if conv.Urgency != message.Urgent {
		t.Errorf("conversation urgency = %s; want urgent (the higher)", conv.Urgency)
	}
	if conv.Channel != message.Email || conv.LastChan != message.Voice {
		t.Errorf("conversation Channel/LastChan = %s/%s; want email (where it started)/voice (latest customer message)", conv.Channel, conv.LastChan)
	}
	ms := e.messages(r1.Conversation.ID)
	if len(ms) != 2 {
		t.Fatalf("Messages = %d; want 2 (e-mail and call)", len(ms))
	}
	if ms[0].ChannelMessageID != mail.ChannelMessageID || ms[1].ChannelMessageID != call.ChannelMessageID {
		t.Errorf("Messages order = [%s %s, %s %s]; want the e-mail then the call (oldest first)",
			ms[0].Channel, ms[0].ChannelMessageID, ms[1].Channel, ms[1].ChannelMessageID)
	}
	if ms[1].FromKind != store.KindPhone || ms[1].FromValue != c.phone {
		t.Errorf("call From = %s %q; want phone %s", ms[1].FromKind, ms[1].FromValue, c.phone)
	}
}

func testCrossChannelOtherTopic(t *testing.T, b Backend) {
	e := newEnv(t, b)
	c := e.linkedCustomer()
	e.clock.Advance(time.Minute)
	r1 := e.rec(e.msg(message.Email, c.email), topic("topup_missing"))
	e.requireCustomer(r1, c, "e-mail from the verified address")
	e.clock.Advance(time.Minute)
	r2 := e.rec(e.msg(message.SMS, c.phone), topic("card_lost"))
	e.requireCustomer(r2, c, "SMS from the verified phone")
	if r2.Joined || r2.Conversation.ID == r1.Conversation.ID {
		t.Errorf("SMS on another topic joined the open e-mail conversation %d; want a new conversation", r1.Conversation.ID)
	}
	if got := e.conv(r1.Conversation.ID).Status; got != store.StatusQueued {
		t.Errorf("the e-mail conversation is %s; want it left queued", got)
	}
}

// Step 5 considers open conversations only; a resolved one on the same
// topic is not reopened by a message on another channel.
func testCrossChannelIgnoresResolved(t *testing.T, b Backend) {
	e := newEnv(t, b)
	c := e.linkedCustomer()
	e.clock.Advance(time.Minute)
	r1 := e.rec(e.msg(message.Email, c.email), topic("topup_missing"))
	e.requireCustomer(r1, c, "e-mail from the verified address")
	e.clock.Advance(time.Hour)
	e.resolve(r1.Conversation.ID)
	e.clock.Advance(time.Hour)
	r2 := e.rec(e.msg(message.SMS, c.phone), topic("topup_missing"))
	e.requireCustomer(r2, c, "SMS from the verified phone")
	if r2.Joined || r2.Reopened || r2.Conversation.ID == r1.Conversation.ID {
		t.Errorf("SMS on the topic of a resolved e-mail conversation: Joined=%v Reopened=%v conversation %d; want a new conversation",
			r2.Joined, r2.Reopened, r2.Conversation.ID)
	}
	if got := e.conv(r1.Conversation.ID).Status; got != store.StatusResolved {
		t.Errorf("the resolved conversation is now %s; want it left resolved", got)
	}
}

func testJoinNeverLowersUrgency(t *testing.T, b Backend) {
	e := newEnv(t, b)
	cases := []struct{ first, second, want message.Urgency }{
		{message.Urgent, message.Low, message.Urgent},
		{message.High, message.Normal, message.High},
		{message.Low, message.High, message.High},
		{message.Normal, message.Normal, message.Normal},
	}
	for _, tc := range cases {
		t.Run(fmt.Sprintf("%s_then_%s", tc.first, tc.second), func(t *testing.T) {
			e := e.sub(t)
			phone := newPhone()
			r1 := e.rec(e.msg(message.SMS, phone), dec("support", "fee", tc.first))
			e.clock.Advance(time.Minute)
			m := e.msg(message.SMS, phone)
			r2 := e.rec(m, dec("support", "fee", tc.second))
			if !r2.Joined || r2.Conversation.ID != r1.Conversation.ID {
				t.Fatalf("second SMS a minute later did not join (Joined=%v, conversation %d, want %d)", r2.Joined, r2.Conversation.ID, r1.Conversation.ID)
			}
			if r2.PrevUrgency != tc.first {
				t.Errorf("PrevUrgency = %s; want %s", r2.PrevUrgency, tc.first)
			}
			if r2.Conversation.Urgency != tc.want {
				t.Errorf("Result urgency = %s; want %s", r2.Conversation.Urgency, tc.want)
			}
			if got := e.conv(r1.Conversation.ID).Urgency; got != tc.want {
				t.Errorf("conversation urgency = %s; want %s", got, tc.want)
			}
			// The message keeps its own decision, whatever the conversation's.
			ms := e.messages(r1.Conversation.ID)
			if len(ms) != 2 || ms[1].Decision == nil || ms[1].Decision.Urgency != tc.second {
				t.Errorf("second message's stored decision urgency is not %s", tc.second)
			}
		})
	}
}

// Prev* tell the caller where the conversation was, so it can move its
// queue item: here an assigned conversation in billing at normal.
func testJoinReportsPrevious(t *testing.T, b Backend) {
	e := newEnv(t, b)
	from := newUser()
	r1 := e.rec(e.msg(message.Messenger, from), dec("billing", "fee", message.Normal))
	if err := e.s.Assign(e.ctx, r1.Conversation.ID, "agent:bob"); err != nil {
		t.Fatalf("Assign: %v", err)
	}
	e.clock.Advance(time.Minute)
	r2 := e.rec(e.msg(message.Messenger, from), dec("fraud", "fraud", message.High))
	if !r2.Joined || r2.Conversation.ID != r1.Conversation.ID {
		t.Fatalf("second message did not join (Joined=%v, conversation %d, want %d)", r2.Joined, r2.Conversation.ID, r1.Conversation.ID)
	}
	if r2.PrevQueue != "billing" || r2.PrevUrgency != message.Normal || r2.PrevStatus != store.StatusAssigned {
		t.Errorf("Prev = %q/%q/%q; want billing/normal/assigned", r2.PrevQueue, r2.PrevUrgency, r2.PrevStatus)
	}
	if r2.Reopened {
		t.Errorf("Reopened = true for an assigned (open) conversation")
	}
}

// A message that threads (steps 2-4) to a resolved conversation reopens it
// if it was resolved within the reopen window (default 7 days); otherwise
// it starts a new conversation and the old one stays resolved.
func testReopen(t *testing.T, b Backend) {
	inReplyTo := func(e *env, first *message.Message, _ int64) *message.Message {
		m := e.msg(message.Email, first.From.Address)
		m.Subject = "Re: " + first.Subject
		m.Thread.InReplyTo = first.Thread.MessageID
		return m
	}
	token := func(e *env, first *message.Message, conv int64) *message.Message {
		m := e.msg(message.Email, first.From.Address)
		m.Subject = fmt.Sprintf("Re: still broken [#%d]", conv)
		return m
	}
	again := func(e *env, first *message.Message, _ int64) *message.Message {
		return e.msg(first.Channel, first.From.Address)
	}
	day := 24 * time.Hour
	cases := []struct {
		name         string
		opts         func(*store.Options)
		ch           message.Channel
		resolveAfter time.Duration // after the first message
		replyAfter   time.Duration // after the resolution
		reply        func(e *env, first *message.Message, conv int64) *message.Message
		wantReopened bool
	}{
		{name: "EmailReplyWithinWindow", ch: message.Email, resolveAfter: time.Hour, replyAfter: 3 * day, reply: inReplyTo, wantReopened: true},
		{name: "EmailReplyAfterWindow", ch: message.Email, resolveAfter: time.Hour, replyAfter: 8 * day, reply: inReplyTo},
		{name: "SubjectTokenWithinWindow", ch: message.Email, resolveAfter: time.Hour, replyAfter: 6 * day, reply: token, wantReopened: true},
		{name: "SubjectTokenAfterWindow", ch: message.Email, resolveAfter: time.Hour, replyAfter: 7*day + time.Hour, reply: token},
		{name: "ChatWithinWindow", ch: message.SMS, resolveAfter: time.Hour, replyAfter: time.Hour, reply: again, wantReopened: true},
		{name: "ChatAfterCustomReopenWindow", opts: func(o *store.Options) { o.ReopenWindow = time.Hour },
			ch: message.SMS, resolveAfter: time.Hour, replyAfter: 2 * time.Hour, reply: again},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var tweaks []func(*store.Options)
			if tc.opts != nil {
				tweaks = append(tweaks, tc.opts)
			}
			e := newEnv(t, b, tweaks...)
			first := e.msg(tc.ch, senderFor(tc.ch))
			r1 := e.rec(first, dec("support", "refund", message.Normal))
			conv := r1.Conversation.ID
			e.clock.Advance(tc.resolveAfter)
			e.resolve(conv)
			e.clock.Advance(tc.replyAfter)

			// Another topic, so only steps 2-4 can lead back to conv.
			r2 := e.rec(tc.reply(e, first, conv), dec("support", "limits", message.Normal))

			if !tc.wantReopened {
				if r2.Reopened || r2.Joined || r2.Conversation.ID == conv {
					t.Errorf("Reopened=%v Joined=%v conversation %d; want a new conversation (resolved %s ago, outside the reopen window)",
						r2.Reopened, r2.Joined, r2.Conversation.ID, tc.replyAfter)
				}
				if got := e.conv(conv).Status; got != store.StatusResolved {
					t.Errorf("old conversation is %s; want it left resolved", got)
				}
				return
			}
			if !r2.Reopened || !r2.Joined || r2.Conversation.ID != conv {
				t.Fatalf("Reopened=%v Joined=%v conversation %d; want conversation %d reopened (resolved %s ago)",
					r2.Reopened, r2.Joined, r2.Conversation.ID, conv, tc.replyAfter)
			}
			if r2.PrevStatus != store.StatusResolved {
				t.Errorf("PrevStatus = %q; want resolved", r2.PrevStatus)
			}
			if r2.Conversation.Status != store.StatusQueued {
				t.Errorf("Result conversation status = %s; want queued", r2.Conversation.Status)
			}
			if got := e.conv(conv).Status; got != store.StatusQueued {
				t.Errorf("reopened conversation status = %s; want queued", got)
			}
			if got := e.waiting(store.QueueFilter{}); !slices.Contains(got, conv) {
				t.Errorf("Waiting = %v; want the reopened conversation %d", got, conv)
			}
			if evs := e.events(conv); countKind(evs, store.EventReopened) != 1 {
				t.Errorf("Events kinds = %v; want one %q", kinds(evs), store.EventReopened)
			}
		})
	}
}

func testMessagesKeepEverything(t *testing.T, b Backend) {
	e := newEnv(t, b)
	m := e.msg(message.Email, "Frank.Ma@Example.com")
	m.Subject = "Refund for order 123"
	m.Text = "Please refund order 123."
	m.Thread = message.Thread{
		MessageID:  "<f1@mail.example.com>",
		InReplyTo:  "<never-stored@mail.example.com>",
		References: []string{"<r0@mail.example.com>", "<never-stored@mail.example.com>"},
	}
	m.Attachments = []message.Attachment{{Name: "receipt.pdf", ContentType: "application/pdf", Size: 2048, URL: "https://files.example.com/receipt.pdf"}}
	d := store.Decision{
		Queue: "refunds", Urgency: message.High, Topic: "refund",
		Explain:      []string{"rule refund: keyword refund", "urgency raised: VIP"},
		RulesVersion: "v42",
	}
	r := e.rec(m, d)

	ms := e.messages(r.Conversation.ID)
	if len(ms) != 1 {
		t.Fatalf("Messages = %d; want 1", len(ms))
	}
	got := ms[0]
	if got.ID != r.MessageID || got.ConversationID != r.Conversation.ID || got.ContactID != r.Conversation.ContactID {
		t.Errorf("message id/conversation/contact = %q/%d/%d; want %q/%d/%d",
			got.ID, got.ConversationID, got.ContactID, r.MessageID, r.Conversation.ID, r.Conversation.ContactID)
	}
	if got.Direction != store.In {
		t.Errorf("Direction = %q; want %q", got.Direction, store.In)
	}
	if got.Channel != m.Channel || got.ChannelMessageID != m.ChannelMessageID {
		t.Errorf("channel/id = %s/%s; want %s/%s", got.Channel, got.ChannelMessageID, m.Channel, m.ChannelMessageID)
	}
	if got.FromKind != store.KindEmail || got.FromValue != "frank.ma@example.com" {
		t.Errorf("From = %s %q; want email %q (the identity that wrote)", got.FromKind, got.FromValue, "frank.ma@example.com")
	}
	if got.Subject != m.Subject || got.Text != m.Text {
		t.Errorf("subject/text = %q/%q; want %q/%q", got.Subject, got.Text, m.Subject, m.Text)
	}
	if !got.ReceivedAt.Equal(m.ReceivedAt) {
		t.Errorf("ReceivedAt = %v; want %v", got.ReceivedAt, m.ReceivedAt)
	}
	if got.Thread.MessageID != m.Thread.MessageID || got.Thread.InReplyTo != m.Thread.InReplyTo ||
		!slices.Equal(got.Thread.References, m.Thread.References) {
		t.Errorf("Thread = %+v; want %+v", got.Thread, m.Thread)
	}
	if got.Decision == nil {
		t.Fatalf("Decision is nil; want the routing decision stored with the message")
	}
	if got.Decision.Queue != d.Queue || got.Decision.Urgency != d.Urgency || got.Decision.Topic != d.Topic ||
		!slices.Equal(got.Decision.Explain, d.Explain) {
		t.Errorf("Decision = %+v; want queue/urgency/topic/explain of %+v", *got.Decision, d)
	}
	want := []store.Attachment{{Name: "receipt.pdf", ContentType: "application/pdf", Size: 2048, Ref: "https://files.example.com/receipt.pdf"}}
	if !slices.Equal(got.Attachments, want) {
		t.Errorf("Attachments = %+v; want %+v (the message's own, URL as Ref)", got.Attachments, want)
	}
}

// When the connector stored the bytes, Inbound.Attachments (blob refs)
// replace the channel's URLs.
func testInboundAttachmentsReplace(t *testing.T, b Backend) {
	e := newEnv(t, b)
	m := e.msg(message.App, newUser())
	m.Attachments = []message.Attachment{{Name: "shot.png", ContentType: "image/png", Size: 10, URL: "https://cdn.example.com/shot.png"}}
	want := []store.Attachment{
		{Name: "shot.png", ContentType: "image/png", Size: 10, Ref: blobRef("shot")},
		{Name: "log.txt", ContentType: "text/plain", Size: 3, Ref: blobRef("log")},
	}
	r := e.record(store.Inbound{Msg: m, Decision: topic("fee"), Attachments: want})[0]
	ms := e.messages(r.Conversation.ID)
	if len(ms) != 1 {
		t.Fatalf("Messages = %d; want 1", len(ms))
	}
	if !slices.Equal(ms[0].Attachments, want) {
		t.Errorf("Attachments = %+v; want Inbound.Attachments %+v", ms[0].Attachments, want)
	}
}

// Every recorded message leaves an event saying what it did.
func testEventPerMessage(t *testing.T, b Backend) {
	e := newEnv(t, b)
	from := newUser()
	r1 := e.rec(e.msg(message.WebChat, from), topic("fee"))
	conv := r1.Conversation.ID
	e.clock.Advance(time.Minute)
	e.rec(e.msg(message.WebChat, from), topic("fee"))
	e.clock.Advance(time.Minute)
	e.resolve(conv)
	e.clock.Advance(time.Minute)
	if r := e.rec(e.msg(message.WebChat, from), topic("fee")); !r.Reopened {
		t.Fatalf("third message did not reopen conversation %d (Reopened=%v, conversation %d)", conv, r.Reopened, r.Conversation.ID)
	}
	evs := e.events(conv)
	for _, k := range []string{store.EventRouted, store.EventJoined, store.EventReopened, store.EventResolved} {
		if n := countKind(evs, k); n != 1 {
			t.Errorf("Events kinds = %v; want exactly one %q", kinds(evs), k)
		}
	}
	for _, ev := range evs {
		if ev.ConversationID != conv {
			t.Errorf("event %q has ConversationID %d; want %d", ev.Kind, ev.ConversationID, conv)
		}
		if ev.At.IsZero() {
			t.Errorf("event %q has no time", ev.Kind)
		}
	}
}
