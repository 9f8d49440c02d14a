package outbox_test

import (
	"errors"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/outbox"
	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/store/sqlite"
)

func setup(t *testing.T) (*outbox.Outbox, store.Store, *bus.Bus) {
	t.Helper()
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "inroute.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	b := testbus.Start(t).Connect(t)
	return &outbox.Outbox{Store: st, Pub: outbox.BusPublisher{Bus: b}}, st, b
}

func record(t *testing.T, st store.Store, m *message.Message) int64 {
	t.Helper()
	res, err := st.Record(t.Context(), []store.Inbound{{Msg: m, Decision: store.Decision{Queue: "general", Urgency: message.Low, Topic: "general"}}})
	if err != nil {
		t.Fatal(err)
	}
	return res[0].Conversation.ID
}

func last(t *testing.T, b *bus.Bus, ch message.Channel) *message.Outbound {
	t.Helper()
	s, err := b.JS.Stream(t.Context(), bus.StreamOutbound)
	if err != nil {
		t.Fatal(err)
	}
	raw, err := s.GetLastMsgForSubject(t.Context(), bus.OutboundSubject(ch))
	if err != nil {
		t.Fatal(err)
	}
	o, err := message.DecodeOutbound(raw.Data)
	if err != nil {
		t.Fatal(err)
	}
	if raw.Header.Get("Nats-Msg-Id") != o.ID {
		t.Fatalf("Nats-Msg-Id %q, want the reply's id %s", raw.Header.Get("Nats-Msg-Id"), o.ID)
	}
	return o
}

// An e-mail reply threads under the customer's latest mail and keeps the
// conversation's token in its subject.
func TestEmailReplyThreads(t *testing.T) {
	ob, st, b := setup(t)
	m := &message.Message{V: 1, ID: message.NewID(), Channel: message.Email, ChannelMessageID: "<a1@mail.example.com>",
		ReceivedAt: time.Now().UTC(), From: message.Party{Address: "li@example.com"}, To: message.Party{Address: "help@wallet.example"},
		Subject: "Refund not received", Text: "where is my refund",
		Thread: message.Thread{MessageID: "<a1@mail.example.com>", References: []string{"<a0@mail.example.com>"}}}
	id := record(t, st, m)
	rep, created, err := ob.Send(t.Context(), outbox.Request{ConversationID: id, Text: "It is on its way", Key: "k1", Agent: "ann"})
	if err != nil || !created {
		t.Fatalf("send: %v created=%v", err, created)
	}
	o := last(t, b, message.Email)
	want := "Re: Refund not received [#" + strconv.FormatInt(id, 10) + "]"
	if o.Subject != want || rep.Subject != want {
		t.Errorf("subject %q (stored %q), want %q", o.Subject, rep.Subject, want)
	}
	if o.Thread.InReplyTo != "<a1@mail.example.com>" || len(o.Thread.References) != 2 || o.Thread.References[1] != "<a1@mail.example.com>" {
		t.Errorf("thread %+v", o.Thread)
	}
	if o.To != "li@example.com" || o.From != "help@wallet.example" || o.Agent != "ann" || o.ConversationID != id {
		t.Errorf("outbound %+v", o)
	}
	// No mail domain configured: the domain the customer wrote to.
	if want := "<" + o.ID + "@wallet.example>"; o.Thread.MessageID != want || rep.Thread.MessageID != want || rep.ID != o.ID {
		t.Errorf("Message-ID %q (stored %q), want %q", o.Thread.MessageID, rep.Thread.MessageID, want)
	}
	if got, ok := outbox.ReplyIDFromMessageID(o.Thread.MessageID); !ok || got != o.ID {
		t.Errorf("ReplyIDFromMessageID(%q) = %q, %v; want the reply's id %s", o.Thread.MessageID, got, ok, o.ID)
	}
	// A repeat is the first reply, Message-ID and all.
	again, created, err := ob.Send(t.Context(), outbox.Request{ConversationID: id, Text: "It is on its way", Key: "k1", Agent: "ann"})
	if err != nil || created || again.ID != rep.ID || again.Thread.MessageID != rep.Thread.MessageID {
		t.Errorf("repeat: %v created=%v id %s Message-ID %q; want the first reply", err, created, again.ID, again.Thread.MessageID)
	}
	if got, _ := st.Unpublished(t.Context(), time.Now().Add(time.Hour), 10); len(got) != 0 {
		t.Errorf("a published reply is listed unpublished: %v", got)
	}
}

// The app's identity is "<app>/<user>": the connector gets them apart.
func TestAppReplyAddresses(t *testing.T) {
	ob, st, b := setup(t)
	id := record(t, st, &message.Message{V: 1, ID: message.NewID(), Channel: message.App, ChannelMessageID: "wallet/m1",
		ReceivedAt: time.Now().UTC(), From: message.Party{Address: "u-42"}, To: message.Party{Address: "wallet"}, Text: "hi"})
	if _, _, err := ob.Send(t.Context(), outbox.Request{ConversationID: id, Text: "hello", Key: "k", Agent: "ann"}); err != nil {
		t.Fatal(err)
	}
	if o := last(t, b, message.App); o.From != "wallet" || o.To != "u-42" {
		t.Fatalf("app reply from %q to %q", o.From, o.To)
	} else if o.Thread.MessageID != "" {
		t.Fatalf("app reply has a Message-ID %q", o.Thread.MessageID)
	}
}

func TestCallBackNeedsTheAgentsPhone(t *testing.T) {
	ob, st, _ := setup(t)
	id := record(t, st, &message.Message{V: 1, ID: message.NewID(), Channel: message.SMS, ChannelMessageID: "SM1",
		ReceivedAt: time.Now().UTC(), From: message.Party{Address: "+8613900000001"}, Text: "call me"})
	_, _, err := ob.Send(t.Context(), outbox.Request{ConversationID: id, Channel: message.Voice, Text: "calling", Key: "k", Agent: "ann"})
	if !errors.Is(err, outbox.ErrNoAgentPhone) {
		t.Fatalf("call-back without a phone: %v", err)
	}
}

func mail(from, to, id, subject string) *message.Message {
	return &message.Message{V: 1, ID: message.NewID(), Channel: message.Email, ChannelMessageID: id,
		ReceivedAt: time.Now().UTC(), From: message.Party{Address: from}, To: message.Party{Address: to},
		Subject: subject, Text: "text of " + id, Thread: message.Thread{MessageID: id}}
}

// The Message-ID's domain: the configured one, else the address written
// to, else one that can be nobody's.
func TestReplyMessageIDDomain(t *testing.T) {
	cases := []struct{ name, mailDomain, to, want string }{
		{"Configured", "support.example", "help@wallet.example", "support.example"},
		{"AddressWrittenTo", "", "Help@Wallet.Example", "wallet.example"},
		{"NoAddress", "", "", "inroute.invalid"},
		{"NotAnAddress", "", "wallet", "inroute.invalid"},
		{"OddAddress", "", "help@wallet.example>", "inroute.invalid"},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			ob, st, b := setup(t)
			ob.MailDomain = tc.mailDomain
			id := record(t, st, mail("li@example.com", tc.to, "<d"+strconv.Itoa(i)+"@mail.example.com>", "Hello"))
			rep, _, err := ob.Send(t.Context(), outbox.Request{ConversationID: id, Text: "hi", Key: "k", Agent: "ann"})
			if err != nil {
				t.Fatal(err)
			}
			if want := "<" + rep.ID + "@" + tc.want + ">"; rep.Thread.MessageID != want || last(t, b, message.Email).Thread.MessageID != want {
				t.Fatalf("Message-ID %q, want %q", rep.Thread.MessageID, want)
			}
		})
	}
}

func TestReplyIDFromMessageID(t *testing.T) {
	id := message.NewID()
	cases := []struct {
		in   string
		want string
		ok   bool
	}{
		{"<" + id + "@wallet.example>", id, true},
		{" <" + id + "@inroute.invalid>\r\n", id, true},
		{id + "@wallet.example", id, true},
		{"<" + strings.ToLower(id) + "@wallet.example>", id, true},
		{"<" + id + ">", "", false},
		{"<" + id + "@>", "", false},
		{"<" + id + "@a@b>", "", false},
		{"<" + id + "@wallet.example", "", false},
		{"<CAF=abc123@mail.gmail.com>", "", false},
		{"<" + id + "x@wallet.example>", "", false},
		{"", "", false},
	}
	for _, tc := range cases {
		got, ok := outbox.ReplyIDFromMessageID(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("ReplyIDFromMessageID(%q) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

// The customer's answer to a reply's Message-ID joins the conversation,
// even when the subject was rewritten and the token lost.
func TestAnswerToReplyJoins(t *testing.T) {
	ob, st, _ := setup(t)
	first := mail("li@example.com", "help@wallet.example", "<q1@mail.example.com>", "Refund not received")
	id := record(t, st, first)
	rep, _, err := ob.Send(t.Context(), outbox.Request{ConversationID: id, Text: "Which order?", Key: "k1", Agent: "ann"})
	if err != nil {
		t.Fatal(err)
	}
	answer := mail("li@example.com", "help@wallet.example", "<q2@mail.example.com>", "order 1234")
	answer.Thread.InReplyTo = rep.Thread.MessageID
	res, err := st.Record(t.Context(), []store.Inbound{{Msg: answer, Decision: store.Decision{Queue: "general", Urgency: message.Low, Topic: "orders"}}})
	if err != nil {
		t.Fatal(err)
	}
	if !res[0].Joined || res[0].Conversation.ID != id {
		t.Fatalf("answer to %s: joined=%v conversation %d (%s); want %d", rep.Thread.MessageID, res[0].Joined, res[0].Conversation.ID, res[0].Threading, id)
	}
}

// An out-of-office reply recorded on the conversation does not become the
// recipient of the agent's next reply.
func TestReplyGoesToThePersonNotTheAutoReplier(t *testing.T) {
	ob, st, b := setup(t)
	first := mail("li@example.com", "help@wallet.example", "<r1@mail.example.com>", "Refund not received")
	id := record(t, st, first)
	ack, _, err := ob.Send(t.Context(), outbox.Request{ConversationID: id, Text: "We have your mail", Key: "auto:1", Agent: "inroute", Auto: true})
	if err != nil {
		t.Fatal(err)
	}
	// The customer's assistant's out-of-office answers our acknowledgement.
	ooo := mail("li.assistant@example.com", "help@wallet.example", "<r2@mail.example.com>", "Out of office")
	ooo.Automatic = message.AutoReply
	ooo.Thread.InReplyTo = ack.Thread.MessageID
	if got := record(t, st, ooo); got != id {
		t.Fatalf("auto-reply recorded on conversation %d, want %d", got, id)
	}
	if _, _, err := ob.Send(t.Context(), outbox.Request{ConversationID: id, Text: "It is on its way", Key: "k1", Agent: "ann"}); err != nil {
		t.Fatal(err)
	}
	o := last(t, b, message.Email)
	if o.To != "li@example.com" || o.Thread.InReplyTo != first.Thread.MessageID || !strings.HasPrefix(o.Subject, "Re: Refund not received") {
		t.Fatalf("reply to %q in reply to %q subject %q; want the customer's mail answered", o.To, o.Thread.InReplyTo, o.Subject)
	}
}
