package email

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/inroute/inroute/connectors/conformance"
	"io"
	"net"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-smtp"
	"github.com/inroute/inroute/blob"
	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/connectors/email/mailtest"
	"github.com/inroute/inroute/message"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest"
	"go.uber.org/zap/zaptest/observer"
)

const (
	obtWait     = 15 * time.Second
	obtEvery    = 10 * time.Millisecond
	obtAddress  = "help@wallet.example"
	obtFrom     = "Wallet Help <help@wallet.example>"
	obtCustomer = "li@example.com"
	obtUser     = "help@wallet.example"
	obtPassword = "s3cret"
)

// obtMailbox is a mailbox sending through addr.
func obtMailbox(addr, mode string) config.Mailbox {
	return config.Mailbox{Name: "help", Address: obtAddress,
		IMAP: config.IMAP{Addr: "127.0.0.1:1", TLS: config.TLSNone, User: obtUser, Password: obtPassword},
		SMTP: config.SMTP{Addr: addr, TLS: mode, From: obtFrom, InsecureSkipVerify: true}}
}

// obtHarness is a running Outbound with its bus and the delivery reports
// it published.
type obtHarness struct {
	b    *bus.Bus
	out  *Outbound
	logs *observer.ObservedLogs

	rep *conformance.Reports
}

// obtStart runs an Outbound with a short backoff.
func obtStart(t *testing.T, opt OutboundOptions) *obtHarness {
	t.Helper()
	srv := testbus.Start(t)
	b := srv.Connect(t)
	h := &obtHarness{b: b, rep: conformance.WatchReports(t, b, bus.DeliverySubject(message.Email))}
	obs, logs := observer.New(zapcore.InfoLevel)
	h.logs = logs
	log := zaptest.NewLogger(t, zaptest.WrapOptions(zap.WrapCore(func(c zapcore.Core) zapcore.Core { return zapcore.NewTee(c, obs) })))
	h.out = NewOutbound(b, opt, log)
	h.out.backoff = func(int) time.Duration { return 20 * time.Millisecond }
	h.out.claimRecheck = 20 * time.Millisecond
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.out.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return h
}

func obtReply(id string) message.Outbound {
	return message.Outbound{V: 1, ID: id, ConversationID: 42, Channel: message.Email, To: "李伟 <li@example.com>", From: obtAddress,
		Subject: "Re: 退款 not received [#42]", Text: "Your refund is on its way.\n\nAnn", Agent: "ann",
		CreatedAt: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
}

// publish puts o on outbound.email with msgID as Nats-Msg-Id.
func (h *obtHarness) publish(t *testing.T, o message.Outbound, msgID string) {
	t.Helper()
	data, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	h.publishRaw(t, data, msgID)
}

func (h *obtHarness) publishRaw(t *testing.T, data []byte, msgID string) {
	t.Helper()
	if _, err := h.b.Publish(context.Background(), bus.OutboundSubject(message.Email), data, msgID, nil); err != nil {
		t.Fatal(err)
	}
}

// report waits for n reports of id with status and returns the last.
func (h *obtHarness) report(t *testing.T, id, status string, n int) message.Delivery {
	t.Helper()
	return h.rep.Wait(t, obtWait, id, status, n)
}

// count is the number of reports of id with status.
func (h *obtHarness) count(id, status string) int { return h.rep.Count(id, status) }

// settled waits until the consumer has nothing pending or unacked: every
// reply published so far reached its outcome.
func (h *obtHarness) settled(t *testing.T) *jetstream.ConsumerInfo {
	t.Helper()
	var info *jetstream.ConsumerInfo
	testbus.CheckFor(t, obtWait, obtEvery, func() error {
		co, err := h.b.JS.Consumer(context.Background(), bus.StreamOutbound, bus.ConsumerOutbound(message.Email))
		if err != nil {
			return err
		}
		info, err = co.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("consumer: %d pending, %d unacked", info.NumPending, info.NumAckPending)
		}
		return nil
	})
	return info
}

// sentRecord is the BucketSent value of a reply.
func (h *obtHarness) sentRecord(t *testing.T, id string) string {
	t.Helper()
	v, ok := h.sentValue(t, id)
	if !ok {
		t.Fatalf("no sent record of %s", id)
	}
	return v
}

// sentValue is the BucketSent value of a reply, false if it has none.
func (h *obtHarness) sentValue(t *testing.T, id string) (string, bool) {
	t.Helper()
	e, err := h.kv(t).Get(context.Background(), smtpSentKey(id))
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return "", false
	}
	if err != nil {
		t.Fatalf("sent record of %s: %v", id, err)
	}
	return string(e.Value()), true
}

// kv is BucketSent, once Run has made it.
func (h *obtHarness) kv(t *testing.T) jetstream.KeyValue {
	t.Helper()
	var kv jetstream.KeyValue
	testbus.CheckFor(t, obtWait, obtEvery, func() error {
		var err error
		kv, err = h.b.JS.KeyValue(context.Background(), BucketSent)
		return err
	})
	return kv
}

// mailboxFaults are the error-level logs that say the mailbox cannot send
// a reply, for mailbox "help" with the SMTP code code (0: none).
func (h *obtHarness) mailboxFaults(code int) int {
	n := 0
	for _, e := range h.logs.FilterLevelExact(zapcore.ErrorLevel).All() {
		if !strings.HasPrefix(e.Message, "reply not sent: the mailbox cannot send") {
			continue
		}
		c := e.ContextMap()
		if c["mailbox"] != "help" {
			continue
		}
		if got, _ := c["smtp_code"].(int64); got != int64(code) {
			continue
		}
		n++
	}
	return n
}

func TestOutboundSendsOneThreadedMail(t *testing.T) {
	t.Parallel()
	srv := mailtest.StartSMTP(t, mailtest.SMTPOptions{})
	blobs, err := blob.Open(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	pdf := []byte("%PDF-1.4 refund receipt\x00\xff")
	ref, _, err := blobs.Put(bytes.NewReader(pdf))
	if err != nil {
		t.Fatal(err)
	}
	h := obtStart(t, OutboundOptions{Mailboxes: []config.Mailbox{obtMailbox(srv.Addr(), config.TLSNone)}, Blobs: blobs})
	o := obtReply("r1")
	o.Language = "zh-CN"
	o.Thread = message.Thread{MessageID: "<r1.42@wallet.example>", InReplyTo: "<a1@mail.example.com>",
		References: []string{"<a0@mail.example.com>", "<a1@mail.example.com>"}}
	o.Attachments = []message.Attachment{{Name: "receipt.pdf", ContentType: "application/pdf", Size: int64(len(pdf)), URL: ref}}
	h.publish(t, o, o.ID)

	d := h.report(t, "r1", message.DeliverySent, 1)
	if d.ChannelMessageID != "<r1.42@wallet.example>" || d.Channel != message.Email || d.ConversationID != 42 || d.Detail != "" {
		t.Errorf("report %+v", d)
	}
	h.settled(t)
	mails := srv.Received()
	if len(mails) != 1 {
		t.Fatalf("%d mails, want 1", len(mails))
	}
	m := mails[0]
	if m.From != obtAddress || !slices.Equal(m.Rcpts, []string{obtCustomer}) || m.TLS {
		t.Errorf("envelope from %q to %v (tls %v)", m.From, m.Rcpts, m.TLS)
	}
	p := composeParse(t, m.Data)
	hd := p.header
	if from, _ := hd.AddressList("From"); len(from) != 1 || from[0].String() != `"Wallet Help" <help@wallet.example>` {
		t.Errorf("From %v", from)
	}
	if to, _ := hd.AddressList("To"); len(to) != 1 || to[0].Name != "李伟" || to[0].Address != obtCustomer {
		t.Errorf("To %v", to)
	}
	if s, err := hd.Subject(); s != o.Subject || err != nil {
		t.Errorf("Subject %q (%v), want %q", s, err, o.Subject)
	}
	if !strings.Contains(hd.Get("Subject"), "=?utf-8?") {
		t.Errorf("Subject not RFC 2047 encoded: %q", hd.Get("Subject"))
	}
	if id, _ := hd.MessageID(); id != "r1.42@wallet.example" {
		t.Errorf("Message-ID %q", id)
	}
	if irt, _ := hd.MsgIDList("In-Reply-To"); !slices.Equal(irt, []string{"a1@mail.example.com"}) {
		t.Errorf("In-Reply-To %v", irt)
	}
	if refs, _ := hd.MsgIDList("References"); !slices.Equal(refs, []string{"a0@mail.example.com", "a1@mail.example.com"}) {
		t.Errorf("References %v", refs)
	}
	if hd.Get("Content-Language") != "zh-CN" || hd.Get("Auto-Submitted") != "" {
		t.Errorf("Content-Language %q, Auto-Submitted %q", hd.Get("Content-Language"), hd.Get("Auto-Submitted"))
	}
	if got := strings.Join(p.tree, " "); got != "multipart/mixed multipart/alternative text/plain text/html application/pdf" {
		t.Errorf("MIME tree %s", got)
	}
	if text := p.part(t, "text/plain"); string(text.body) != o.Text || text.charset != "utf-8" {
		t.Errorf("text/plain %q (%s)", text.body, text.charset)
	}
	if html := string(p.part(t, "text/html").body); !strings.Contains(html, "<p>Your refund is on its way.</p>") {
		t.Errorf("text/html %s", html)
	}
	if a := p.part(t, "application/pdf"); a.filename != "receipt.pdf" || !bytes.Equal(a.body, pdf) {
		t.Errorf("attachment %q, %d bytes", a.filename, len(a.body))
	}
	if rec := h.sentRecord(t, "r1"); rec != "<r1.42@wallet.example>" {
		t.Errorf("sent record %q", rec)
	}
}

// A reply published again after the duplicate window (a new Nats-Msg-Id)
// is not sent again. Each delivery is reported sent: two reports are
// published (the EVENTS stream keeps one of them, by its Nats-Msg-Id, and
// the store would keep "sent" either way).
func TestOutboundRepublishedReplySentOnce(t *testing.T) {
	t.Parallel()
	srv := mailtest.StartSMTP(t, mailtest.SMTPOptions{})
	h := obtStart(t, OutboundOptions{Mailboxes: []config.Mailbox{obtMailbox(srv.Addr(), config.TLSNone)}})
	o := obtReply("01JR2")
	h.publish(t, o, "first")
	first := h.report(t, o.ID, message.DeliverySent, 1)
	h.publish(t, o, "after-the-duplicate-window")
	second := h.report(t, o.ID, message.DeliverySent, 2)
	h.settled(t)
	if n := len(srv.Received()); n != 1 {
		t.Fatalf("%d mails, want 1", n)
	}
	// No stored Message-ID: the generated one, the same on both reports.
	if first.ChannelMessageID != "<01JR2@wallet.example>" || second.ChannelMessageID != first.ChannelMessageID {
		t.Errorf("Message-IDs %q and %q", first.ChannelMessageID, second.ChannelMessageID)
	}
}

func TestOutboundSMTPAnswers(t *testing.T) {
	t.Parallel()
	rejected := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "<li@example.com>: Recipient address rejected"}
	busy := &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "Try again later"}
	closing := &smtp.SMTPError{Code: 421, EnhancedCode: smtp.EnhancedCode{4, 7, 0}, Message: "Too many connections"}
	tooBig := &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message too big"}
	tests := []struct {
		name        string
		at          mailtest.Stage
		err         *smtp.SMTPError
		times       int
		maxAttempts int
		status      string
		detail      string
		mails       int
	}{
		{name: "451 at DATA, then accepted", at: mailtest.AtData, err: busy, times: 1, status: message.DeliverySent, mails: 1},
		{name: "421 at MAIL twice, then accepted", at: mailtest.AtMail, err: closing, times: 2, status: message.DeliverySent, mails: 1},
		{name: "550 at RCPT", at: mailtest.AtRcpt, err: rejected, times: 1, status: message.DeliveryFailed,
			detail: "550 5.1.1 <li@example.com>: Recipient address rejected"},
		{name: "552 at DATA", at: mailtest.AtData, err: tooBig, times: 1, status: message.DeliveryFailed, detail: "552 5.3.4 Message too big"},
		{name: "451 until the attempts run out", at: mailtest.AtData, err: busy, times: 10, maxAttempts: 3, status: message.DeliveryFailed,
			detail: "gave up after 3 attempts: 451 4.3.0 Try again later"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := mailtest.StartSMTP(t, mailtest.SMTPOptions{})
			srv.FailNext(tc.at, tc.err, tc.times)
			h := obtStart(t, OutboundOptions{Mailboxes: []config.Mailbox{obtMailbox(srv.Addr(), config.TLSNone)}, MaxAttempts: tc.maxAttempts})
			h.publish(t, obtReply("r1"), "r1")
			d := h.report(t, "r1", tc.status, 1)
			if d.Detail != tc.detail {
				t.Errorf("detail %q, want %q", d.Detail, tc.detail)
			}
			h.settled(t)
			if n := len(srv.Received()); n != tc.mails {
				t.Errorf("%d mails, want %d", n, tc.mails)
			}
			if tc.status == message.DeliveryFailed && h.count("r1", message.DeliverySent) != 0 {
				t.Error("a failed reply was also reported sent")
			}
			// Sent: the Message-ID replaced the claim. Failed: the claim
			// is released.
			v, ok := h.sentValue(t, "r1")
			if tc.status == message.DeliverySent && v != "<r1@wallet.example>" {
				t.Errorf("sent record %q (%v), want the Message-ID", v, ok)
			}
			if tc.status == message.DeliveryFailed && ok {
				t.Errorf("failed reply has a sent record %q", v)
			}
		})
	}
}

// A server that is down is waited for: the reply goes out once it is up.
func TestOutboundServerDownThenUp(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connections are refused
	h := obtStart(t, OutboundOptions{Mailboxes: []config.Mailbox{obtMailbox(addr, config.TLSNone)}, MaxAttempts: 1000})
	h.publish(t, obtReply("r1"), "r1")
	testbus.CheckFor(t, obtWait, obtEvery, func() error {
		co, err := h.b.JS.Consumer(context.Background(), bus.StreamOutbound, bus.ConsumerOutbound(message.Email))
		if err != nil {
			return err
		}
		info, err := co.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumRedelivered == 0 && info.Delivered.Consumer < 3 {
			return fmt.Errorf("not retried yet: %+v", info.Delivered)
		}
		return nil
	})
	if n := h.count("r1", message.DeliveryFailed) + h.count("r1", message.DeliverySent); n != 0 {
		t.Fatalf("%d reports while the server was down", n)
	}
	ln, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("port %s taken meanwhile: %v", addr, err)
	}
	srv := mailtest.StartSMTP(t, mailtest.SMTPOptions{Listener: ln})
	h.report(t, "r1", message.DeliverySent, 1)
	h.settled(t)
	if n := len(srv.Received()); n != 1 {
		t.Fatalf("%d mails, want 1", n)
	}
}

func TestOutboundAutoReplyHeaders(t *testing.T) {
	t.Parallel()
	srv := mailtest.StartSMTP(t, mailtest.SMTPOptions{})
	h := obtStart(t, OutboundOptions{Mailboxes: []config.Mailbox{obtMailbox(srv.Addr(), config.TLSNone)}, MessageIDDomain: "inroute.wallet.example"})
	o := obtReply("auto1")
	o.Auto, o.Agent = true, "inroute"
	h.publish(t, o, o.ID)
	d := h.report(t, "auto1", message.DeliverySent, 1)
	if d.ChannelMessageID != "<auto1@inroute.wallet.example>" {
		t.Errorf("Message-ID %q", d.ChannelMessageID)
	}
	mails := srv.Received()
	if len(mails) != 1 {
		t.Fatalf("%d mails, want 1", len(mails))
	}
	hd := composeParse(t, mails[0].Data).header
	if hd.Get("Auto-Submitted") != "auto-replied" || hd.Get("X-Auto-Response-Suppress") != "All" {
		t.Errorf("Auto-Submitted %q, X-Auto-Response-Suppress %q", hd.Get("Auto-Submitted"), hd.Get("X-Auto-Response-Suppress"))
	}
}

func TestOutboundTLSAndAuth(t *testing.T) {
	t.Parallel()
	// Every failure here is the mailbox's (its settings, its server's
	// certificate): retried, logged as an error, then failed saying so.
	tests := []struct {
		name       string
		serverMode string
		mode       string
		user       string
		password   string
		skipVerify bool
		status     string
		detail     string
		code       int
	}{
		{name: "STARTTLS with AUTH PLAIN", serverMode: config.TLSStart, mode: config.TLSStart, user: obtUser, skipVerify: true, status: message.DeliverySent},
		{name: "implicit TLS with AUTH PLAIN", serverMode: config.TLSImplicit, mode: config.TLSImplicit, user: obtUser, skipVerify: true, status: message.DeliverySent},
		{name: "STARTTLS without AUTH", serverMode: config.TLSStart, mode: config.TLSStart, skipVerify: true, status: message.DeliverySent},
		{name: "untrusted certificate is retried, then failed", serverMode: config.TLSStart, mode: config.TLSStart, user: obtUser,
			status: message.DeliveryFailed, detail: "gave up after 2 attempts: smtp TLS with 127.0.0.1:"},
		{name: "implicit TLS against a plain server", serverMode: config.TLSNone, mode: config.TLSImplicit, skipVerify: true,
			status: message.DeliveryFailed, detail: "gave up after 2 attempts: smtp TLS with 127.0.0.1:"},
		{name: "no password in clear text", serverMode: config.TLSNone, mode: config.TLSNone, user: obtUser, skipVerify: true,
			status: message.DeliveryFailed, detail: "gave up after 2 attempts: mailbox help: smtp.user is set but the connection"},
		{name: "server without STARTTLS", serverMode: config.TLSNone, mode: config.TLSStart, skipVerify: true,
			status: message.DeliveryFailed, detail: "does not offer STARTTLS"},
		{name: "wrong password", serverMode: config.TLSStart, mode: config.TLSStart, user: obtUser, password: "expired", skipVerify: true,
			status: message.DeliveryFailed, detail: "gave up after 2 attempts: 127.0.0.1 refused the login: 535 5.7.8 Authentication failed", code: 535},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := mailtest.StartSMTP(t, mailtest.SMTPOptions{TLS: tc.serverMode, User: tc.user, Password: obtPassword})
			mb := obtMailbox(srv.Addr(), tc.mode)
			mb.SMTP.User, mb.SMTP.InsecureSkipVerify = tc.user, tc.skipVerify
			if tc.user != "" {
				mb.SMTP.Password = cmp.Or(tc.password, obtPassword)
			}
			h := obtStart(t, OutboundOptions{Mailboxes: []config.Mailbox{mb}, MaxAttempts: 2})
			h.publish(t, obtReply("r1"), "r1")
			d := h.report(t, "r1", tc.status, 1)
			if !strings.Contains(d.Detail, tc.detail) {
				t.Errorf("detail %q, want it to contain %q", d.Detail, tc.detail)
			}
			h.settled(t)
			if tc.status == message.DeliveryFailed && h.mailboxFaults(tc.code) != 1 {
				t.Errorf("%d error logs naming the mailbox (smtp_code %d) for the one retry, want 1", h.mailboxFaults(tc.code), tc.code)
			}
			mails := srv.Received()
			if tc.status != message.DeliverySent {
				if len(mails) != 0 {
					t.Errorf("%d mails, want none", len(mails))
				}
				return
			}
			if len(mails) != 1 || !mails[0].TLS || mails[0].AuthUser != tc.user {
				t.Fatalf("mails %+v, want one over TLS as %q", mails, tc.user)
			}
		})
	}
}

func TestOutboundSentFolderCopy(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		folder string
		copies int
	}{
		{name: "appended to Sent, marked seen", folder: "Sent", copies: 1},
		// The append fails: logged, the reply stays sent once.
		{name: "missing folder", folder: "Sent Items", copies: 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := mailtest.StartSMTP(t, mailtest.SMTPOptions{})
			mb := obtMailbox(srv.Addr(), config.TLSNone)
			box := mailtest.StartIMAP(t, mailtest.IMAPOptions{User: obtUser, Password: obtPassword, Folders: []string{"INBOX", "Sent"},
				NoIDLE: true, IMAP4rev2: true})
			mb.IMAP.Addr = box.Addr()
			mb.SMTP.SentFolder = tc.folder
			h := obtStart(t, OutboundOptions{Mailboxes: []config.Mailbox{mb}})
			h.publish(t, obtReply("r1"), "r1")
			h.report(t, "r1", message.DeliverySent, 1)
			h.settled(t)
			mails := srv.Received()
			if len(mails) != 1 {
				t.Fatalf("%d mails, want 1", len(mails))
			}
			if tc.copies == 0 {
				testbus.CheckFor(t, obtWait, obtEvery, func() error {
					for _, e := range h.logs.FilterMessage("sent copy not filed").All() {
						if e.Level == zapcore.WarnLevel && e.ContextMap()["reply_id"] == "r1" {
							return nil
						}
					}
					return errors.New("no warning about the sent copy")
				})
				if filed, err := box.Fetch("Sent"); err != nil || len(filed) != 0 {
					t.Errorf("Sent folder: %d messages (%v)", len(filed), err)
				}
				info := h.settled(t)
				if n := len(srv.Received()); n != 1 || info.NumRedelivered != 0 || h.count("r1", message.DeliverySent) != 1 {
					t.Errorf("after a failed append: %d mails, %d redeliveries, %d sent reports", n, info.NumRedelivered, h.count("r1", message.DeliverySent))
				}
				return
			}
			var filed []mailtest.Stored
			testbus.CheckFor(t, obtWait, obtEvery, func() error {
				var err error
				if filed, err = box.Fetch(tc.folder); err != nil {
					return err
				}
				if len(filed) != tc.copies {
					return fmt.Errorf("%d messages in %s, want %d", len(filed), tc.folder, tc.copies)
				}
				return nil
			})
			if !slices.Contains(filed[0].Flags, imap.FlagSeen) {
				t.Errorf("flags %v, want \\Seen", filed[0].Flags)
			}
			if !bytes.Equal(filed[0].Raw, mails[0].Data) {
				t.Errorf("sent copy differs from the mail sent:\n%s\n---\n%s", filed[0].Raw, mails[0].Data)
			}
		})
	}
}

func TestOutboundUnsendableReplies(t *testing.T) {
	t.Parallel()
	srv := mailtest.StartSMTP(t, mailtest.SMTPOptions{})
	receiveOnly := obtMailbox("", config.TLSNone)
	receiveOnly.Name, receiveOnly.Address = "sales", "sales@wallet.example"
	noSMTP := obtReply("nosmtp")
	badTo := obtReply("badto")
	badTo.To = "+15550001111"
	tests := []struct {
		name      string
		mailboxes []config.Mailbox
		payload   []byte
		id        string
		detail    string
	}{
		{name: "no recipient", payload: []byte(`{"v":1,"id":"norcpt","channel":"email","text":"hi"}`), id: "norcpt", detail: "no recipient"},
		{name: "unknown version", payload: []byte(`{"v":9,"id":"v9","channel":"email","to":"li@example.com"}`), id: "v9", detail: "version"},
		{name: "recipient not an e-mail address", payload: obtJSON(t, badTo), id: "badto", detail: `recipient "+15550001111" is not an e-mail address`},
		{name: "no mailbox can send", mailboxes: []config.Mailbox{receiveOnly}, payload: obtJSON(t, noSMTP), id: "nosmtp", detail: "none has an smtp.addr"},
		{name: "not JSON at all", payload: []byte("not json")},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			mbs := tc.mailboxes
			if mbs == nil {
				mbs = []config.Mailbox{obtMailbox(srv.Addr(), config.TLSNone)}
			}
			h := obtStart(t, OutboundOptions{Mailboxes: mbs})
			h.publishRaw(t, tc.payload, "m1")
			if tc.id != "" {
				d := h.report(t, tc.id, message.DeliveryFailed, 1)
				if !strings.Contains(d.Detail, tc.detail) {
					t.Errorf("detail %q, want it to contain %q", d.Detail, tc.detail)
				}
			}
			// Terminated, never redelivered.
			info := h.settled(t)
			if info.NumRedelivered != 0 {
				t.Errorf("redelivered %d times", info.NumRedelivered)
			}
		})
	}
	if n := len(srv.Received()); n != 0 {
		t.Errorf("%d mails sent", n)
	}
}

func obtJSON(t *testing.T, o message.Outbound) []byte {
	t.Helper()
	data, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

// The reply goes from the mailbox the customer wrote to when it can send,
// else from the first that can.
func TestOutboundPicksTheMailbox(t *testing.T) {
	t.Parallel()
	srv := mailtest.StartSMTP(t, mailtest.SMTPOptions{})
	mailbox := func(name, addr, smtpAddr string) config.Mailbox {
		mb := obtMailbox(smtpAddr, config.TLSNone)
		mb.Name, mb.Address, mb.SMTP.From = name, addr, addr
		return mb
	}
	mbs := []config.Mailbox{
		mailbox("inbox-only", "inbox@wallet.example", ""),
		mailbox("help", "help@wallet.example", srv.Addr()),
		mailbox("sales", "sales@wallet.example", srv.Addr()),
	}
	h := obtStart(t, OutboundOptions{Mailboxes: mbs})
	tests := []struct{ id, from, want string }{
		{"to-sales", "Sales@Wallet.example", "sales@wallet.example"},
		{"to-sales-named", "Wallet Sales <sales@wallet.example>", "sales@wallet.example"},
		{"to-inbox-only", "inbox@wallet.example", "help@wallet.example"},
		{"no-from", "", "help@wallet.example"},
	}
	for _, tc := range tests {
		o := obtReply(tc.id)
		o.From = tc.from
		h.publish(t, o, tc.id)
		h.report(t, tc.id, message.DeliverySent, 1)
	}
	h.settled(t)
	got := map[string]string{}
	for _, m := range srv.Received() {
		hd := composeParse(t, m.Data).header
		id, _ := hd.MessageID()
		from, _ := hd.AddressList("From")
		if len(from) != 1 || from[0].Address != m.From {
			t.Errorf("%s: header From %v, envelope %q", id, from, m.From)
		}
		got[strings.Split(id, "@")[0]] = m.From
	}
	for _, tc := range tests {
		if got[tc.id] != tc.want {
			t.Errorf("reply %s (from %q) went from %q, want %q", tc.id, tc.from, got[tc.id], tc.want)
		}
	}
}

// Stopping lets a send under way finish, and Run returns.
func TestOutboundStopsCleanly(t *testing.T) {
	t.Parallel()
	srv := mailtest.StartSMTP(t, mailtest.SMTPOptions{})
	srvBus := testbus.Start(t)
	b := srvBus.Connect(t)
	out := NewOutbound(b, OutboundOptions{Mailboxes: []config.Mailbox{obtMailbox(srv.Addr(), config.TLSNone)}}, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- out.Run(ctx) }()
	data := obtJSON(t, obtReply("r1"))
	if _, err := b.Publish(context.Background(), bus.OutboundSubject(message.Email), data, "r1", nil); err != nil {
		t.Fatal(err)
	}
	testbus.CheckFor(t, obtWait, obtEvery, func() error {
		if len(srv.Received()) != 1 {
			return errors.New("not sent yet")
		}
		return nil
	})
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("run: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// A refusal that is about the mailbox or its server (greeting, EHLO,
// AUTH, MAIL FROM), not the recipient, is retried like a transient
// failure and logged as an error naming the mailbox: once it is fixed the
// reply goes out; if it is not, the reply fails saying it was the server.
func TestOutboundMailboxFaultsAreRetried(t *testing.T) {
	t.Parallel()
	blocked := &smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Service unavailable; client host blocked"}
	badHelo := &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "HELO name rejected"}
	expired := &smtp.SMTPError{Code: 535, EnhancedCode: smtp.EnhancedCode{5, 7, 8}, Message: "Username and Password not accepted"}
	notOwned := &smtp.SMTPError{Code: 553, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "Sender address rejected: not owned by user"}
	helo := smtpHeloName(obtAddress)
	tests := []struct {
		name  string
		mode  string
		user  string
		fail  func(*mailtest.SMTP, int)
		times int
		// attempts is MaxAttempts.
		attempts int
		status   string
		detail   string
		code     int
	}{
		{name: "554 greeting until the attempts run out", mode: config.TLSNone, times: 10, attempts: 3, status: message.DeliveryFailed,
			fail:   func(s *mailtest.SMTP, n int) { s.FailSessions(mailtest.AtGreeting, blocked, n) },
			detail: "gave up after 3 attempts: 127.0.0.1 refused the connection: 554 5.7.1 Service unavailable; client host blocked", code: 554},
		{name: "554 greeting on STARTTLS, then delisted", mode: config.TLSStart, times: 2, attempts: 5, status: message.DeliverySent,
			fail: func(s *mailtest.SMTP, n int) { s.FailSessions(mailtest.AtGreeting, blocked, n) }, code: 554},
		{name: "554 greeting on implicit TLS, then delisted", mode: config.TLSImplicit, times: 1, attempts: 5, status: message.DeliverySent,
			fail: func(s *mailtest.SMTP, n int) { s.FailSessions(mailtest.AtGreeting, blocked, n) }, code: 554},
		{name: "550 to EHLO until the attempts run out", mode: config.TLSNone, times: 10, attempts: 2, status: message.DeliveryFailed,
			fail:   func(s *mailtest.SMTP, n int) { s.FailSessions(mailtest.AtHello, badHelo, n) },
			detail: "gave up after 2 attempts: 127.0.0.1 refused EHLO " + helo + ": 550 5.7.1 HELO name rejected", code: 550},
		{name: "550 to the first EHLO of STARTTLS until the attempts run out", mode: config.TLSStart, times: 10, attempts: 2, status: message.DeliveryFailed,
			fail:   func(s *mailtest.SMTP, n int) { s.FailSessions(mailtest.AtHello, badHelo, n) },
			detail: "gave up after 2 attempts: 127.0.0.1 refused EHLO " + helo + ": 550 5.7.1 HELO name rejected", code: 550},
		{name: "535 to AUTH until the attempts run out", mode: config.TLSStart, user: obtUser, times: 10, attempts: 3, status: message.DeliveryFailed,
			fail:   func(s *mailtest.SMTP, n int) { s.FailSessions(mailtest.AtAuth, expired, n) },
			detail: "gave up after 3 attempts: 127.0.0.1 refused the login: 535 5.7.8 Username and Password not accepted", code: 535},
		{name: "535 to AUTH, then the password is renewed", mode: config.TLSStart, user: obtUser, times: 2, attempts: 5, status: message.DeliverySent,
			fail: func(s *mailtest.SMTP, n int) { s.FailSessions(mailtest.AtAuth, expired, n) }, code: 535},
		{name: "553 to MAIL FROM until the attempts run out", mode: config.TLSNone, times: 10, attempts: 2, status: message.DeliveryFailed,
			fail:   func(s *mailtest.SMTP, n int) { s.FailNext(mailtest.AtMail, notOwned, n) },
			detail: "gave up after 2 attempts: 127.0.0.1 refused the sender <help@wallet.example>: 553 5.7.1 Sender address rejected: not owned by user", code: 553},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := mailtest.StartSMTP(t, mailtest.SMTPOptions{TLS: tc.mode, User: tc.user, Password: obtPassword})
			tc.fail(srv, tc.times)
			mb := obtMailbox(srv.Addr(), tc.mode)
			if tc.user != "" {
				mb.SMTP.User, mb.SMTP.Password = tc.user, obtPassword
			}
			h := obtStart(t, OutboundOptions{Mailboxes: []config.Mailbox{mb}, MaxAttempts: tc.attempts})
			h.publish(t, obtReply("r1"), "r1")
			d := h.report(t, "r1", tc.status, 1)
			if d.Detail != tc.detail {
				t.Errorf("detail %q, want %q", d.Detail, tc.detail)
			}
			info := h.settled(t)
			wantMails, wantFaults := 1, tc.times
			if tc.status == message.DeliveryFailed {
				// The last attempt logs "given up" instead.
				wantMails, wantFaults = 0, tc.attempts-1
			}
			if n := len(srv.Received()); n != wantMails {
				t.Errorf("%d mails, want %d", n, wantMails)
			}
			if n := h.mailboxFaults(tc.code); n != wantFaults {
				t.Errorf("%d error logs naming the mailbox and smtp_code %d, want %d", n, tc.code, wantFaults)
			}
			if info.Delivered.Consumer < 2 {
				t.Error("never retried")
			}
			if h.count("r1", message.DeliveryFailed)+h.count("r1", message.DeliverySent) != 1 {
				t.Errorf("reports %+v, want one", h.rep.All())
			}
		})
	}
}

// A refusal of the mail's size answered to MAIL FROM (its SIZE) is about
// the reply: failed at once.
func TestOutboundTooBigAtMailFails(t *testing.T) {
	t.Parallel()
	srv := mailtest.StartSMTP(t, mailtest.SMTPOptions{})
	srv.FailNext(mailtest.AtMail, &smtp.SMTPError{Code: 552, EnhancedCode: smtp.EnhancedCode{5, 3, 4}, Message: "Message size exceeds fixed limit"}, 10)
	h := obtStart(t, OutboundOptions{Mailboxes: []config.Mailbox{obtMailbox(srv.Addr(), config.TLSNone)}})
	h.publish(t, obtReply("r1"), "r1")
	d := h.report(t, "r1", message.DeliveryFailed, 1)
	if d.Detail != "552 5.3.4 Message size exceeds fixed limit" {
		t.Errorf("detail %q", d.Detail)
	}
	if info := h.settled(t); info.NumRedelivered != 0 {
		t.Errorf("redelivered %d times", info.NumRedelivered)
	}
}

// Every EHLO of every mode, the one before STARTTLS included, names this
// host or the mailbox's domain, never "localhost".
func TestOutboundGreetsWithItsName(t *testing.T) {
	t.Parallel()
	want := smtpHeloName(obtAddress)
	if want == "localhost" {
		t.Fatalf("smtpHeloName(%q) = localhost", obtAddress)
	}
	for _, mode := range []string{config.TLSNone, config.TLSStart, config.TLSImplicit} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			srv := mailtest.StartSMTP(t, mailtest.SMTPOptions{TLS: mode})
			h := obtStart(t, OutboundOptions{Mailboxes: []config.Mailbox{obtMailbox(srv.Addr(), mode)}})
			h.publish(t, obtReply("r1"), "r1")
			h.report(t, "r1", message.DeliverySent, 1)
			h.settled(t)
			mails := srv.Received()
			if len(mails) != 1 || mails[0].Helo != want || mails[0].TLS != (mode != config.TLSNone) {
				t.Fatalf("mails %+v, want one after EHLO %s", mails, want)
			}
			if hellos := srv.Hellos(); !slices.Equal(hellos, []string{want}) {
				t.Errorf("sessions greeted with %q, want %q", hellos, want)
			}
		})
	}
}

// Two copies of one reply on OUTBOUND at once (a republish while the
// first is being sent): one mail. The copy that finds the other's claim
// waits for its outcome, then acks as sent.
func TestOutboundConcurrentCopiesSentOnce(t *testing.T) {
	t.Parallel()
	srv := mailtest.StartSMTP(t, mailtest.SMTPOptions{DataDelay: 500 * time.Millisecond})
	h := obtStart(t, OutboundOptions{Mailboxes: []config.Mailbox{obtMailbox(srv.Addr(), config.TLSNone)}})
	o := obtReply("r1")
	h.publish(t, o, "first")
	h.publish(t, o, "republished")
	h.report(t, "r1", message.DeliverySent, 2)
	h.settled(t)
	if n := len(srv.Received()); n != 1 {
		t.Fatalf("%d mails, want 1", n)
	}
	if rec := h.sentRecord(t, "r1"); rec != "<r1@wallet.example>" {
		t.Errorf("sent record %q", rec)
	}
	if h.logs.FilterMessage("reply being sent by another worker; left for later").Len() == 0 {
		t.Error("the second copy never met the first's claim")
	}
}

// A claim found in the bucket: taken over when stale (its worker died);
// else waited on until it turns into a Message-ID (sent) or is released
// (that attempt failed).
func TestOutboundClaimOfAnotherWorker(t *testing.T) {
	t.Parallel()
	claim := func(age time.Duration) string {
		return smtpClaimPrefix + "other.example/4242/0:" + time.Now().Add(-age).UTC().Format(time.RFC3339Nano)
	}
	tests := []struct {
		name  string
		claim string
		// then is what the other worker does once this copy waits.
		then   func(context.Context, jetstream.KeyValue, string) error
		mails  int
		mid    string
		logged string
	}{
		{name: "stale: its worker died", claim: claim(smtpClaimStale + time.Minute), mails: 1, mid: "<r1@wallet.example>",
			logged: "reply claimed by a worker that did not finish; taking it over"},
		{name: "live, then sent by its worker", claim: claim(0), mails: 0, mid: "<other@wallet.example>",
			then: func(ctx context.Context, kv jetstream.KeyValue, key string) error {
				_, err := kv.PutString(ctx, key, "<other@wallet.example>")
				return err
			}, logged: "reply being sent by another worker; left for later"},
		{name: "live, then released after a failed attempt", claim: claim(0), mails: 1, mid: "<r1@wallet.example>",
			then: func(ctx context.Context, kv jetstream.KeyValue, key string) error {
				return kv.Delete(ctx, key)
			}, logged: "reply being sent by another worker; left for later"},
		{name: "unreadable claim, as old as its entry", claim: smtpClaimPrefix + "garbled", mails: 0, mid: "<other@wallet.example>",
			then: func(ctx context.Context, kv jetstream.KeyValue, key string) error {
				_, err := kv.PutString(ctx, key, "<other@wallet.example>")
				return err
			}, logged: "reply being sent by another worker; left for later"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			srv := mailtest.StartSMTP(t, mailtest.SMTPOptions{})
			h := obtStart(t, OutboundOptions{Mailboxes: []config.Mailbox{obtMailbox(srv.Addr(), config.TLSNone)}})
			ctx := context.Background()
			kv := h.kv(t)
			key := smtpSentKey("r1")
			if _, err := kv.PutString(ctx, key, tc.claim); err != nil {
				t.Fatal(err)
			}
			h.publish(t, obtReply("r1"), "r1")
			if tc.then != nil {
				testbus.CheckFor(t, obtWait, obtEvery, func() error {
					if h.logs.FilterMessage(tc.logged).Len() < 2 {
						return errors.New("not waiting on the claim")
					}
					return nil
				})
				if n := len(srv.Received()) + h.count("r1", message.DeliverySent) + h.count("r1", message.DeliveryFailed); n != 0 {
					t.Fatalf("%d mails and reports while another worker holds the reply", n)
				}
				if err := tc.then(ctx, kv, key); err != nil {
					t.Fatal(err)
				}
			}
			d := h.report(t, "r1", message.DeliverySent, 1)
			h.settled(t)
			if d.ChannelMessageID != tc.mid {
				t.Errorf("reported Message-ID %q, want %q", d.ChannelMessageID, tc.mid)
			}
			if n := len(srv.Received()); n != tc.mails {
				t.Errorf("%d mails, want %d", n, tc.mails)
			}
			if rec := h.sentRecord(t, "r1"); rec != tc.mid {
				t.Errorf("sent record %q, want %q", rec, tc.mid)
			}
			if h.logs.FilterMessage(tc.logged).Len() == 0 {
				t.Errorf("no log %q", tc.logged)
			}
		})
	}
}

func TestOutboundClassifiesBySMTPStage(t *testing.T) {
	t.Parallel()
	answer := func(code int, ec smtp.EnhancedCode, msg string) error {
		return &smtp.SMTPError{Code: code, EnhancedCode: ec, Message: msg}
	}
	at := func(stage smtpStage, what string, err error) error {
		return &smtpError{stage: stage, host: "smtp.example.com", what: what, err: fmt.Errorf("smtp %s: %w", stage, err)}
	}
	tests := []struct {
		name string
		err  error
		want smtpFailure
	}{
		{"550 to RCPT TO", at(smtpAtRcpt, "", answer(550, smtp.EnhancedCode{5, 1, 1}, "no such user")),
			smtpFailure{permanent: true, code: 550, detail: "550 5.1.1 no such user"}},
		{"554 to the end of DATA", at(smtpAtData, "", answer(554, smtp.EnhancedCode{5, 7, 1}, "spam")),
			smtpFailure{permanent: true, code: 554, detail: "554 5.7.1 spam"}},
		{"451 to DATA", at(smtpAtData, "", answer(451, smtp.EnhancedCode{4, 3, 0}, "later")),
			smtpFailure{code: 451, detail: "451 4.3.0 later"}},
		{"535 to AUTH", at(smtpAtAuth, "the login", answer(535, smtp.EnhancedCode{5, 7, 8}, "bad credentials")),
			smtpFailure{mailbox: true, code: 535, detail: "smtp.example.com refused the login: 535 5.7.8 bad credentials"}},
		{"454 to AUTH", at(smtpAtAuth, "the login", answer(454, smtp.EnhancedCode{4, 7, 0}, "try later")),
			smtpFailure{code: 454, detail: "smtp.example.com refused the login: 454 4.7.0 try later"}},
		{"554 greeting", at(smtpAtGreeting, "the connection", answer(554, smtp.EnhancedCodeNotSet, "go away")),
			smtpFailure{mailbox: true, code: 554, detail: "smtp.example.com refused the connection: 554 go away"}},
		{"502 to STARTTLS", at(smtpAtTLS, "STARTTLS", answer(502, smtp.EnhancedCode{5, 5, 1}, "no")),
			smtpFailure{mailbox: true, code: 502, detail: "smtp.example.com refused STARTTLS: 502 5.5.1 no"}},
		{"550 to MAIL FROM", at(smtpAtMail, "the sender <a@b>", answer(550, smtp.EnhancedCode{5, 7, 1}, "not yours")),
			smtpFailure{mailbox: true, code: 550, detail: "smtp.example.com refused the sender <a@b>: 550 5.7.1 not yours"}},
		{"552 to MAIL FROM", at(smtpAtMail, "the sender <a@b>", answer(552, smtp.EnhancedCode{5, 3, 4}, "too big")),
			smtpFailure{permanent: true, code: 552, detail: "552 5.3.4 too big"}},
		{"connection lost at RCPT TO", at(smtpAtRcpt, "", io.ErrUnexpectedEOF),
			smtpFailure{detail: "smtp RCPT TO: unexpected EOF"}},
		{"not an smtpError", errors.New("boom"), smtpFailure{detail: "boom"}},
	}
	for _, tc := range tests {
		if got := smtpClassify(tc.err); got != tc.want {
			t.Errorf("%s: %+v, want %+v", tc.name, got, tc.want)
		}
	}
}

func TestOutboundReadsPlainSMTPAnswers(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		msg  string
		want smtp.SMTPError
	}{
		{"5.7.1 blocked", smtp.SMTPError{Code: 554, EnhancedCode: smtp.EnhancedCode{5, 7, 1}, Message: "blocked"}},
		{"blocked here", smtp.SMTPError{Code: 554, Message: "blocked here"}},
		{"9.9.9 odd", smtp.SMTPError{Code: 554, Message: "9.9.9 odd"}},
	} {
		var se *smtp.SMTPError
		if err := smtpProtoError(&textproto.Error{Code: 554, Msg: tc.msg}); !errors.As(err, &se) || *se != tc.want {
			t.Errorf("%q: %#v, want %#v", tc.msg, err, tc.want)
		}
	}
	if !smtpOffers("smtp.test greets\nPIPELINING\nstarttls\nAUTH PLAIN", "STARTTLS") || smtpOffers("STARTTLS at the greeting\n8BITMIME", "STARTTLS") {
		t.Error("smtpOffers")
	}
}
