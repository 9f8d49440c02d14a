package system_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	gomessage "github.com/emersion/go-message"
	gomail "github.com/emersion/go-message/mail"
	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/connectors/email/mailtest"
	"github.com/inroute/inroute/desk"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/system"
)

const (
	customerAddr = "wang.fang@customer.example"
	// firstMailID is the Message-ID of the customer's first mail.
	firstMailID = "<20261127093000.gbk1@customer.example>"
)

// replyMessageID is the form of the Message-ID inroute gives a reply:
// the reply's id (a ULID) at the mailbox's domain.
var replyMessageID = regexp.MustCompile(`^<[0-9A-HJKMNP-TV-Z]{26}@wallet\.example>$`)

// gbkTopUpMail is the customer's first mail as a Chinese mail client in
// its legacy setting sends it: GBK in the encoded words and in the body,
// the body in base64.
func gbkTopUpMail(t *testing.T, to string) []byte {
	t.Helper()
	text := mailtest.GBK("您好，\r\n\r\n我的充值没有到账，已经两天了。请帮我查一下。\r\n\r\n王芳\r\n")
	if utf8.Valid(text) {
		t.Fatal("the GBK text is valid UTF-8: it tests nothing")
	}
	body := base64.StdEncoding.EncodeToString(text)
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: %s <%s>\r\nTo: %s\r\nSubject: %s\r\nDate: Fri, 27 Nov 2026 09:30:00 +0800\r\nMessage-ID: %s\r\n",
		mailtest.GBKWord("王芳"), customerAddr, to, mailtest.GBKWord("充值没有到账"), firstMailID)
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=GBK\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	for len(body) > 76 {
		b.WriteString(body[:76] + "\r\n")
		body = body[76:]
	}
	b.WriteString(body + "\r\n")
	return b.Bytes()
}

// customerMail is a plain UTF-8 mail from the customer; headers come
// first, one a line.
func customerMail(to, msgID, subject, body string, headers ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: =?UTF-8?B?%s?= <%s>\r\nTo: %s\r\nSubject: =?UTF-8?B?%s?=\r\nDate: %s\r\nMessage-ID: %s\r\n",
		base64.StdEncoding.EncodeToString([]byte("王芳")), customerAddr, to, base64.StdEncoding.EncodeToString([]byte(subject)),
		time.Now().Format(time.RFC1123Z), msgID)
	for _, h := range headers {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\nContent-Transfer-Encoding: base64\r\n\r\n")
	b.WriteString(base64.StdEncoding.EncodeToString([]byte(body)) + "\r\n")
	return []byte(b.String())
}

// bounceMail is the report a mail server sends back (Postfix's form) when
// the reply whose header block is returned could not be delivered.
func bounceMail(to string, returned []byte) []byte {
	return []byte("Return-Path: <>\r\n" +
		"From: Mail Delivery System <MAILER-DAEMON@mx.customer.example>\r\n" +
		"To: " + to + "\r\n" +
		"Subject: Undelivered Mail Returned to Sender\r\n" +
		"Date: " + time.Now().Format(time.RFC1123Z) + "\r\n" +
		"Message-ID: <20261127101500.4F2A1@mx.customer.example>\r\n" +
		"Auto-Submitted: auto-replied\r\n" +
		"MIME-Version: 1.0\r\n" +
		"Content-Type: multipart/report; report-type=delivery-status; boundary=\"4F2A1.1764209700/mx.customer.example\"\r\n" +
		"\r\n" +
		"This is a MIME-encapsulated message.\r\n" +
		"\r\n" +
		"--4F2A1.1764209700/mx.customer.example\r\n" +
		"Content-Description: Notification\r\n" +
		"Content-Type: text/plain; charset=us-ascii\r\n" +
		"\r\n" +
		"This is the mail system at host mx.customer.example.\r\n" +
		"\r\n" +
		"I'm sorry to have to inform you that your message could not\r\n" +
		"be delivered to one or more recipients.\r\n" +
		"\r\n" +
		"<" + customerAddr + ">: host mx.customer.example said: 550 5.1.1 user unknown\r\n" +
		"\r\n" +
		"--4F2A1.1764209700/mx.customer.example\r\n" +
		"Content-Description: Delivery report\r\n" +
		"Content-Type: message/delivery-status\r\n" +
		"\r\n" +
		"Reporting-MTA: dns; mx.customer.example\r\n" +
		"Arrival-Date: " + time.Now().Format(time.RFC1123Z) + "\r\n" +
		"\r\n" +
		"Final-Recipient: rfc822; " + customerAddr + "\r\n" +
		"Original-Recipient: rfc822;" + customerAddr + "\r\n" +
		"Action: failed\r\n" +
		"Status: 5.1.1\r\n" +
		"Remote-MTA: dns; mx.customer.example\r\n" +
		"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n" +
		"\r\n" +
		"--4F2A1.1764209700/mx.customer.example\r\n" +
		"Content-Description: Undelivered Message Headers\r\n" +
		"Content-Type: text/rfc822-headers\r\n" +
		"\r\n" +
		string(returned) +
		"\r\n" +
		"--4F2A1.1764209700/mx.customer.example--\r\n")
}

// sentMail is a mail as the customer's client reads it.
type sentMail struct {
	envelope mailtest.Mail
	header   gomail.Header
	// types are the leaf parts' content types, in order; text their
	// decoded bodies by content type.
	types []string
	text  map[string]string
}

func readSent(t *testing.T, m mailtest.Mail) sentMail {
	t.Helper()
	e, err := gomessage.Read(bytes.NewReader(m.Data))
	if err != nil {
		t.Fatalf("read sent mail: %v\n%s", err, m.Data)
	}
	s := sentMail{envelope: m, header: gomail.Header{Header: e.Header}, text: map[string]string{}}
	err = e.Walk(func(_ []int, p *gomessage.Entity, err error) error {
		if err != nil {
			return err
		}
		ct, _, _ := p.Header.ContentType()
		if strings.HasPrefix(ct, "multipart/") {
			return nil
		}
		body, err := io.ReadAll(p.Body)
		if err != nil {
			return err
		}
		s.types = append(s.types, ct)
		s.text[ct] = strings.ReplaceAll(string(body), "\r\n", "\n")
		return nil
	})
	if err != nil {
		t.Fatalf("walk sent mail: %v\n%s", err, m.Data)
	}
	return s
}

func (s sentMail) messageID() string {
	id, _ := s.header.MessageID()
	return "<" + id + ">"
}

// sentWith waits for the SMTP double to hold a mail whose Message-ID is
// msgID and returns it.
func sentWith(t *testing.T, mx *mailtest.SMTP, msgID string) sentMail {
	t.Helper()
	var got sentMail
	testbus.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		for _, m := range mx.Received() {
			if s := readSent(t, m); s.messageID() == msgID {
				got = s
				return nil
			}
		}
		return fmt.Errorf("no mail %s among the %d sent", msgID, len(mx.Received()))
	})
	return got
}

// settled waits until the router has acknowledged every inbound message
// and the e-mail connector every reply handed to it: whatever an inbound
// message caused has happened, a mail sent included.
func settled(t *testing.T, sys *system.System) {
	t.Helper()
	testbus.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		for _, c := range [][2]string{{bus.StreamInbound, bus.ConsumerRouter}, {bus.StreamOutbound, bus.ConsumerOutbound(message.Email)}} {
			co, err := sys.Bus().JS.Consumer(context.Background(), c[0], c[1])
			if err != nil {
				return err
			}
			info, err := co.Info(context.Background())
			if err != nil {
				return err
			}
			if info.NumPending != 0 || info.NumAckPending != 0 {
				return fmt.Errorf("%s: %d pending, %d unacknowledged", c[1], info.NumPending, info.NumAckPending)
			}
		}
		return nil
	})
}

// noWork checks that nothing waits for an agent: the board is empty and
// another agent's next finds nothing.
func noWork(t *testing.T, base string) {
	t.Helper()
	s, data, _ := do(t, "GET", base+"/v1/queues", agentToken, nil)
	var board desk.Board
	if s != 200 || json.Unmarshal(data, &board) != nil {
		t.Fatalf("board: %d %s", s, data)
	}
	for _, q := range board.Queues {
		if q.Waiting != 0 {
			t.Fatalf("%d waiting in %s", q.Waiting, q.Name)
		}
	}
	if s, data, _ := do(t, "POST", base+"/v1/agent/next", secondToken, nil); s != http.StatusNoContent {
		t.Fatalf("next found work: %d %s", s, data)
	}
}

// messageIn returns the conversation's message with id, failing the test
// when there is none.
func messageIn(t *testing.T, v *desk.View, id string) store.Message {
	t.Helper()
	for _, m := range v.Messages {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("conversation %d has no message %s", v.Conversation.ID, id)
	return store.Message{}
}

// waitMessage waits until the conversation view holds a message that
// matches and returns it.
func waitMessage(t *testing.T, conversation func() *desk.View, what string, match func(store.Message) bool) store.Message {
	t.Helper()
	var got store.Message
	testbus.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		v := conversation()
		for _, m := range v.Messages {
			if match(m) {
				got = m
				return nil
			}
		}
		return fmt.Errorf("no %s in conversation %d", what, v.Conversation.ID)
	})
	return got
}

// Tried as an operator would: a customer writes in GBK about a top-up, is
// acknowledged, gets the agent's answer threaded under their mail, and
// answers it from their mail client; an out-of-office reply and a bounce
// come back too, and neither makes work.
func TestEmailEndToEnd(t *testing.T) {
	box := mailtest.StartIMAP(t, mailtest.IMAPOptions{}) // with IDLE
	mx := mailtest.StartSMTP(t, mailtest.SMTPOptions{})
	cfg := shippedConfig(t)
	mb := box.Mailbox()
	mb.SMTP = config.SMTP{Addr: mx.Addr(), TLS: config.TLSNone, From: "Wallet Support <" + mb.Address + ">"}
	cfg.Conns.Email.Mailboxes = append(cfg.Conns.Email.Mailboxes, mb)
	sys := start(t, cfg, system.RoleAll)
	base := "http://" + sys.HTTPAddr()
	var conv int64
	conversation := func() *desk.View {
		return viewOK(t, "GET", fmt.Sprintf("%s/v1/conversations/%d", base, conv), agentToken)
	}

	// 1. A mail in GBK about a top-up that did not arrive lands readable
	// in the recharge queue, and the customer is told so by mail.
	box.Deliver("INBOX", gbkTopUpMail(t, mb.Address))
	waitWaiting(t, sys, 1)
	v := viewOK(t, "POST", base+"/v1/agent/next", agentToken)
	conv = v.Conversation.ID
	var in store.Message
	for _, m := range v.Messages {
		if m.Direction == store.In {
			in = m
		}
	}
	if v.Conversation.Queue != "recharge" || v.Conversation.Channel != message.Email || v.Conversation.Topic != "recharge" {
		t.Fatalf("the mail: queue %s, channel %s, topic %s", v.Conversation.Queue, v.Conversation.Channel, v.Conversation.Topic)
	}
	if in.ChannelMessageID != firstMailID || in.FromValue != customerAddr || in.FromName != "王芳" || in.Subject != "充值没有到账" ||
		!strings.Contains(in.Text, "我的充值没有到账，已经两天了") {
		t.Fatalf("the mail reads: from %s (%s) %q: %q", in.FromValue, in.FromName, in.Subject, in.Text)
	}
	// The topic's own reply, not the generic e-mail acknowledgement: the
	// email-ack rule only answers mail no topic has a reply for.
	if in.Decision == nil || in.Decision.AutoReply != "topup_missing" {
		t.Fatalf("decision %+v, want the auto-reply topup_missing", in.Decision)
	}
	ack := waitMessage(t, conversation, "auto-reply", func(m store.Message) bool { return m.Direction == store.Out && m.Auto })
	ackMail := sentWith(t, mx, ack.Thread.MessageID)
	if got := ackMail.header.Get("Auto-Submitted"); got != "auto-replied" {
		t.Errorf("the acknowledgement has Auto-Submitted %q", got)
	}
	if !slices.Equal(ackMail.envelope.Rcpts, []string{customerAddr}) || !strings.Contains(ackMail.text["text/plain"], "很抱歉您的充值还没有到账") {
		t.Errorf("the acknowledgement went to %v and reads %q; want the Chinese topup_missing template", ackMail.envelope.Rcpts, ackMail.text["text/plain"])
	}

	// 2. The agent's reply goes out from the mailbox, threaded under the
	// customer's mail, and is reported sent.
	s, data, _ := doKey(t, fmt.Sprintf("%s/v1/conversations/%d/reply", base, conv), agentToken, "email-1",
		map[string]any{"text": "您好，我们查到了您的充值，今天会到账。\n\nAnn"})
	var sent struct {
		Message store.Message `json:"message"`
	}
	if s != 201 || json.Unmarshal(data, &sent) != nil {
		t.Fatalf("reply: %d %s", s, data)
	}
	reply := sent.Message
	replyID := reply.Thread.MessageID
	if !replyMessageID.MatchString(replyID) || !strings.HasPrefix(replyID, "<"+reply.ID+"@") {
		t.Fatalf("the reply's Message-ID %q, want <%s@wallet.example>", replyID, reply.ID)
	}
	out := sentWith(t, mx, replyID)
	from, _ := out.header.AddressList("From")
	to, _ := out.header.AddressList("To")
	subject, _ := out.header.Subject()
	inReplyTo, _ := out.header.MsgIDList("In-Reply-To")
	refs, _ := out.header.MsgIDList("References")
	checks := []struct {
		what string
		ok   bool
		got  any
	}{
		{"envelope", out.envelope.From == mb.Address && slices.Equal(out.envelope.Rcpts, []string{customerAddr}), out.envelope},
		{"From", len(from) == 1 && from[0].Address == mb.Address, from},
		{"To", len(to) == 1 && to[0].Address == customerAddr, to},
		{"In-Reply-To", slices.Equal(inReplyTo, []string{strings.Trim(firstMailID, "<>")}), inReplyTo},
		{"References", slices.Contains(refs, strings.Trim(firstMailID, "<>")), refs},
		{"Subject", subject == fmt.Sprintf("Re: 充值没有到账 [#%d]", conv), subject},
		{"Auto-Submitted", out.header.Get("Auto-Submitted") == "", out.header.Get("Auto-Submitted")},
		{"parts", slices.Contains(out.types, "text/plain") && slices.Contains(out.types, "text/html"), out.types},
		{"text", strings.Contains(out.text["text/plain"], "今天会到账"), out.text["text/plain"]},
	}
	for _, c := range checks {
		if !c.ok {
			t.Errorf("the reply's %s: %v", c.what, c.got)
		}
	}
	waitMessage(t, conversation, "reply reported sent", func(m store.Message) bool {
		return m.ID == reply.ID && m.DeliveryStatus == store.DeliverySent
	})

	// 3. The customer answers from their mail client, with a subject of
	// their own (no token): In-Reply-To alone brings it to the same
	// conversation.
	answerID := "<20261127110000.answer@customer.example>"
	box.Deliver("INBOX", customerMail(mb.Address, answerID, "收到了，谢谢", "钱已经到账了，谢谢！", "In-Reply-To: "+replyID))
	answer := waitMessage(t, conversation, "answer", func(m store.Message) bool { return m.ChannelMessageID == answerID })
	if !strings.Contains(answer.Threading, "In-Reply-To") || answer.Automatic != "" || !strings.Contains(answer.Text, "钱已经到账了") {
		t.Errorf("the answer: threading %q, automatic %q, text %q", answer.Threading, answer.Automatic, answer.Text)
	}
	settled(t, sys)
	noWork(t, base)
	before := len(mx.Received())

	// 4. An out-of-office reply to the agent's mail is kept in the
	// conversation, marked automatic, and neither makes work nor gets an
	// acknowledgement.
	oooID := "<20261127110500.ooo@customer.example>"
	box.Deliver("INBOX", customerMail(mb.Address, oooID, "自动回复: "+subject, "我正在休假，12月7日回来。",
		"Auto-Submitted: auto-replied", "In-Reply-To: "+replyID))
	ooo := waitMessage(t, conversation, "out-of-office reply", func(m store.Message) bool { return m.ChannelMessageID == oooID })
	if ooo.Automatic != message.AutoReply {
		t.Errorf("the out-of-office reply is marked %q, want %q", ooo.Automatic, message.AutoReply)
	}
	settled(t, sys)
	noWork(t, base)
	if n := len(mx.Received()); n != before {
		t.Errorf("%d mails sent after the out-of-office reply, want none", n-before)
	}

	// 5. The reply bounces: it is marked failed with the server's words,
	// and the bounce makes no work either.
	returned, _, _ := bytes.Cut(out.envelope.Data, []byte("\r\n\r\n"))
	box.Deliver("INBOX", bounceMail(mb.Address, append(returned, "\r\n"...)))
	failed := waitMessage(t, conversation, "reply reported failed", func(m store.Message) bool {
		return m.ID == reply.ID && m.DeliveryStatus == store.DeliveryFailed
	})
	if !strings.Contains(failed.DeliveryError, "550 5.1.1 user unknown") {
		t.Errorf("the reply failed with %q, want the diagnostic 550 5.1.1 user unknown", failed.DeliveryError)
	}
	v = conversation()
	bounced := false
	for _, m := range v.Messages {
		bounced = bounced || (m.Automatic == message.Bounce && m.FromValue == "mailer-daemon@mx.customer.example")
	}
	if !bounced {
		t.Errorf("the bounce is not in conversation %d", conv)
	}
	if st := messageIn(t, v, ack.ID).DeliveryStatus; st != store.DeliverySent {
		t.Errorf("the acknowledgement's delivery status is %q: the bounce was about the reply", st)
	}
	settled(t, sys)
	noWork(t, base)
	if n := len(mx.Received()); n != before {
		t.Errorf("%d mails sent after the bounce, want none", n-before)
	}
	if w, err := sys.Store().Waiting(context.Background(), store.QueueFilter{}); err != nil || len(w) != 0 {
		t.Errorf("%d conversations waiting (%v)", len(w), err)
	}
}
