package storetest

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
)

var outboundTests = []contractTest{
	{"ReplyRecordedOnceWithDelivery", testReplyRecordedOnce},
	{"DeliveryNeverGoesBack", testDeliveryNeverGoesBack},
	{"ReplyUnknownConversation", testReplyUnknownConversation},
	{"UnpublishedUntilMarked", testUnpublished},
	{"ReplyWithGivenID", testReplyWithGivenID},
	{"AnswerToReplyMessageIDJoins", testAnswerToReplyMessageIDJoins},
}

func testUnpublished(t *testing.T, b Backend) {
	s, in := replyFixture(t, b)
	ctx := context.Background()
	m, _, err := s.RecordReply(ctx, store.Reply{ConversationID: in.Conversation.ID, Channel: message.SMS, ToKind: store.KindPhone,
		ToValue: "+14155550100", Text: "hi", Key: "pub-1", Agent: "ann"})
	if err != nil || m.PublishedAt != nil {
		t.Fatalf("recorded reply: %v published %v", err, m.PublishedAt)
	}
	if got, err := s.Unpublished(ctx, epoch, 10); err != nil || len(got) != 0 {
		t.Fatalf("Unpublished before the reply's time: %v, %v", got, err)
	}
	got, err := s.Unpublished(ctx, epoch.Add(time.Second), 10)
	if err != nil || len(got) != 1 || got[0].ID != m.ID {
		t.Fatalf("Unpublished: %v, %v", got, err)
	}
	if err := s.MarkPublished(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if got, _ := s.Unpublished(ctx, epoch.Add(time.Second), 10); len(got) != 0 {
		t.Fatalf("a published reply is still listed: %v", got)
	}
	again, created, err := s.RecordReply(ctx, store.Reply{ConversationID: in.Conversation.ID, Channel: message.SMS, ToKind: store.KindPhone,
		ToValue: "+14155550100", Text: "hi", Key: "pub-1", Agent: "ann"})
	if err != nil || created || again.PublishedAt == nil {
		t.Fatalf("the repeat does not show the reply published: %v created=%v", err, created)
	}
}

// replyFixture records one inbound message and returns the store and its
// conversation.
func replyFixture(t *testing.T, b Backend) (store.Store, store.Result) {
	t.Helper()
	ctx := context.Background()
	s, err := b.Open(ctx, b.Fresh(t), store.Options{Now: func() time.Time { return epoch }})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	m := &message.Message{V: 1, ID: message.NewID(), Channel: message.SMS, ChannelMessageID: "SM-reply-1",
		ReceivedAt: epoch, From: message.Party{Address: "+14155550100"}, Text: "help"}
	res, err := s.Record(ctx, []store.Inbound{{Msg: m, Decision: store.Decision{Queue: "general", Urgency: message.Normal, Topic: "general"}}})
	if err != nil {
		t.Fatal(err)
	}
	return s, res[0]
}

func testReplyRecordedOnce(t *testing.T, b Backend) {
	s, in := replyFixture(t, b)
	ctx := context.Background()
	r := store.Reply{ConversationID: in.Conversation.ID, Channel: message.SMS, ToKind: store.KindPhone, ToValue: "+14155550100",
		Text: "We are on it", Key: "idem-1", Agent: "ann",
		Attachments: []store.Attachment{{Name: "steps.pdf", ContentType: "application/pdf", Size: 10, Ref: "sha256:" + hex64}}}
	m1, created, err := s.RecordReply(ctx, r)
	if err != nil || !created {
		t.Fatalf("first reply: %v created=%v", err, created)
	}
	if m1.Direction != store.Out || m1.DeliveryStatus != store.DeliveryQueued || m1.Text != "We are on it" ||
		m1.FromValue != "+14155550100" || len(m1.Attachments) != 1 {
		t.Fatalf("recorded reply: %+v", m1)
	}
	m2, created, err := s.RecordReply(ctx, r)
	if err != nil || created || m2.ID != m1.ID {
		t.Fatalf("same key again: %v created=%v id %s vs %s", err, created, m2.ID, m1.ID)
	}
	msgs, err := s.Messages(ctx, in.Conversation.ID)
	if err != nil || len(msgs) != 2 || msgs[1].ID != m1.ID {
		t.Fatalf("history: %d messages, %v", len(msgs), err)
	}
	evs, _ := s.Events(ctx, in.Conversation.ID)
	replied := 0
	for _, e := range evs {
		if e.Kind == store.EventReplied {
			replied++
			if e.Actor != "ann" {
				t.Errorf("replied event actor %q", e.Actor)
			}
		}
	}
	if replied != 1 {
		t.Fatalf("%d replied events, want 1", replied)
	}
	if _, _, err := s.RecordReply(ctx, store.Reply{ConversationID: in.Conversation.ID, Channel: message.SMS, Text: "x"}); err == nil {
		t.Fatal("a reply without an idempotency key was accepted")
	}
}

func testDeliveryNeverGoesBack(t *testing.T, b Backend) {
	s, in := replyFixture(t, b)
	ctx := context.Background()
	m, _, err := s.RecordReply(ctx, store.Reply{ConversationID: in.Conversation.ID, Channel: message.SMS, ToKind: store.KindPhone,
		ToValue: "+14155550100", Text: "hi", Key: "k"})
	if err != nil {
		t.Fatal(err)
	}
	status := func() (string, string) {
		msgs, _ := s.Messages(ctx, in.Conversation.ID)
		for _, x := range msgs {
			if x.ID == m.ID {
				return x.DeliveryStatus, x.DeliveryError
			}
		}
		t.Fatal("reply not found")
		return "", ""
	}
	steps := []struct{ set, detail, want string }{
		{store.DeliverySent, "", store.DeliverySent},
		{store.DeliveryDelivered, "", store.DeliveryDelivered},
		{store.DeliverySent, "", store.DeliveryDelivered}, // a late callback
		{store.DeliveryFailed, "30003 Unreachable destination handset", store.DeliveryFailed},
		{store.DeliveryDelivered, "", store.DeliveryFailed}, // failed is final
	}
	for i, st := range steps {
		if err := s.SetDelivery(ctx, m.ID, st.set, st.detail); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if got, _ := status(); got != st.want {
			t.Fatalf("step %d: status %s, want %s", i, got, st.want)
		}
	}
	if _, detail := status(); detail != "30003 Unreachable destination handset" {
		t.Fatalf("failure detail %q", detail)
	}
	if err := s.SetDelivery(ctx, "01JDQ80000000000000000000Z", store.DeliverySent, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("unknown message: %v", err)
	}
	if err := s.SetDelivery(ctx, m.ID, "teleported", ""); err == nil {
		t.Fatal("unknown status accepted")
	}
	// An inbound message has no delivery status to set.
	msgs, _ := s.Messages(ctx, in.Conversation.ID)
	if err := s.SetDelivery(ctx, msgs[0].ID, store.DeliverySent, ""); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("inbound message: %v", err)
	}
}

func testReplyUnknownConversation(t *testing.T, b Backend) {
	s, _ := replyFixture(t, b)
	_, _, err := s.RecordReply(context.Background(), store.Reply{ConversationID: 999999, Channel: message.SMS, Text: "x", Key: "k"})
	if !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("got %v, want ErrNotFound", err)
	}
}

const hex64 = "0000000000000000000000000000000000000000000000000000000000000001"

// The outbox chooses an e-mail reply's id itself, to name the reply in its
// Message-ID; the store keeps that id, and the key still decides repeats.
func testReplyWithGivenID(t *testing.T, b Backend) {
	s, in := replyFixture(t, b)
	ctx := context.Background()
	id := message.NewID()
	r := store.Reply{ID: id, ConversationID: in.Conversation.ID, Channel: message.SMS, ToKind: store.KindPhone,
		ToValue: "+14155550100", Text: "hi", Key: "given-1", Agent: "ann"}
	m, created, err := s.RecordReply(ctx, r)
	if err != nil || !created || m.ID != id {
		t.Fatalf("RecordReply with id %s: %v created=%v stored id %v", id, err, created, m)
	}
	r.ID = message.NewID()
	again, created, err := s.RecordReply(ctx, r)
	if err != nil || created || again.ID != id {
		t.Fatalf("same key with another id: %v created=%v id %v; want the first reply %s", err, created, again, id)
	}
	if _, _, err := s.RecordReply(ctx, store.Reply{ID: id, ConversationID: in.Conversation.ID, Channel: message.SMS,
		ToKind: store.KindPhone, ToValue: "+14155550100", Text: "other", Key: "given-2"}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("another key with a taken id: %v; want ErrConflict", err)
	}
	if _, _, err := s.RecordReply(ctx, store.Reply{ID: "not-a-ulid", ConversationID: in.Conversation.ID, Channel: message.SMS,
		ToKind: store.KindPhone, ToValue: "+14155550100", Text: "x", Key: "given-3"}); err == nil {
		t.Fatal("a reply id that is not a ULID was accepted")
	}
	if _, err := s.ReplyByKey(ctx, "given-3"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("the refused reply was recorded: %v", err)
	}
}

// A reply's Message-ID is kept for threading: the customer's answer to it
// joins the conversation by In-Reply-To or References, whatever its
// subject now says.
func testAnswerToReplyMessageIDJoins(t *testing.T, b Backend) {
	cases := []struct {
		name    string
		subject string
		thread  func(replyID string) message.Thread
	}{
		{"InReplyTo", "Re: Re: Question about my wallet", func(id string) message.Thread { return message.Thread{InReplyTo: id} }},
		{"InReplyToSubjectChanged", "Another thing", func(id string) message.Thread { return message.Thread{InReplyTo: id} }},
		{"ReferencesSubjectChanged", "New card please", func(id string) message.Thread {
			return message.Thread{References: []string{"<old@mail.example.com>", id}}
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t, b)
			addr := newEmail("yan")
			first := e.msg(message.Email, addr)
			conv := e.rec(first, topic("refund")).Conversation.ID
			_, replyID := e.mailReply(conv, addr, first.Thread.MessageID)
			// An unrelated open conversation on the answer's topic, which
			// the answer must not join instead.
			e.clock.Advance(time.Minute)
			other := e.rec(e.msg(message.Email, addr), topic("cards")).Conversation.ID

			e.clock.Advance(time.Minute)
			answer := e.msg(message.Email, addr)
			answer.Subject = tc.subject
			th := tc.thread(replyID)
			th.MessageID = answer.Thread.MessageID
			answer.Thread = th
			r := e.rec(answer, topic("cards"))
			if !r.Joined || r.Conversation.ID != conv {
				t.Fatalf("answer to the reply's Message-ID: Joined=%v conversation %d (%s); want %d, not %d",
					r.Joined, r.Conversation.ID, r.Threading, conv, other)
			}
		})
	}
}
