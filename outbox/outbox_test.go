package outbox_test

import (
	"errors"
	"path/filepath"
	"strconv"
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
