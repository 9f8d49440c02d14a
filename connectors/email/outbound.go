package email

import (
	"context"
	"crypto/tls"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	netmail "net/mail"
	"net/textproto"
	"os"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"github.com/inroute/inroute/blob"
	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/webhook"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// BucketSent is the KV bucket that remembers, per reply id, the
// Message-ID of the mail sent for it. It is what makes a reply go out once
// even when it reaches the connector twice: a redelivery after a crash
// between the send and the ack, or a republish after the OUTBOUND
// duplicate window.
//
// While a reply is being sent its key holds a claim instead,
// "sending:<worker>:<time>", made with a create (or, for a claim older
// than the AckWait, left by a process that died, an update on its
// revision): a second copy of the reply that finds a live claim waits for
// its outcome instead of sending too. The Message-ID replaces the claim
// once the server accepted the mail; a failed attempt deletes it.
//
// One gap remains: a crash after the server accepted the mail and before
// the put (or a connection lost after the server accepted but before its
// answer reached us). The reply then comes back and is sent again. For
// e-mail that is mild: the second mail carries the same Message-ID, and
// mail systems and clients treat two mails with one Message-ID as one
// message (deduplicated on delivery, or shown once in the thread).
const BucketSent = "EMAIL_SENT"

const (
	// smtpSentTTL is how long BucketSent remembers a reply; a republish
	// later than this is not expected.
	smtpSentTTL = 30 * 24 * time.Hour
	// smtpAckWait is how long a reply may stay unacknowledged before
	// JetStream hands it to another process: one SMTP session
	// (smtpSessionTimeout) and the bookkeeping after it.
	smtpAckWait = 2 * time.Minute
	// smtpSessionTimeout bounds one SMTP session, dial to QUIT.
	smtpSessionTimeout = 90 * time.Second
	// smtpCommandTimeout bounds the wait for one answer of the server,
	// including the one to the end of DATA.
	smtpCommandTimeout = time.Minute
	smtpDialTimeout    = 30 * time.Second
	// smtpAppendTimeout bounds the Sent copy's IMAP session.
	smtpAppendTimeout = time.Minute
	// smtpStopGrace is how long a session under way may go on once the
	// connector stops, so that a mail being sent is rather finished (and
	// recorded) than cut off and sent again by the next process.
	smtpStopGrace = 10 * time.Second
	// smtpBookkeepingTimeout bounds the KV put, report and ack after a
	// send; they run even while the connector stops, so that a reply that
	// went out is recorded as such.
	smtpBookkeepingTimeout = 10 * time.Second
	smtpDefaultMaxAttempts = 12
	// smtpWorkers is how many replies are sent at once.
	smtpWorkers   = 4
	smtpFetchWait = time.Second
	// smtpClaimPrefix starts a BucketSent value that is a claim, not a
	// Message-ID (which starts with "<").
	smtpClaimPrefix = "sending:"
	// smtpClaimStale is the age from which a claim is taken to be left
	// by a process that died: one AckWait, which bounds the session and
	// its bookkeeping (the claim is made after the mail is composed,
	// just before the session; msg.InProgress restarts the AckWait then).
	smtpClaimStale = smtpAckWait
	// smtpClaimRecheck bounds the wait of a copy of a reply that another
	// worker is sending before it looks again.
	smtpClaimRecheck = 30 * time.Second
)

// Outbound sends replies published on outbound.email through SMTP.
type Outbound struct {
	b   *bus.Bus
	opt OutboundOptions
	log *zap.Logger
	// backoff is the wait before the next attempt after attempt failed;
	// tests shorten it.
	backoff   func(attempt int) time.Duration
	stopGrace time.Duration
	// claimRecheck bounds the wait of a reply another worker is sending
	// (smtpClaimRecheck); tests shorten it.
	claimRecheck time.Duration
	// worker names this process in claims: host/pid.
	worker string
}

// OutboundOptions configures Outbound.
type OutboundOptions struct {
	// Mailboxes are the active ones. A reply goes from the mailbox whose
	// Address equals the reply's From (case-insensitive) if it has an
	// smtp.addr, else from the first mailbox with an smtp.addr.
	Mailboxes []config.Mailbox
	// Blobs holds attachment bytes; nil names "sha256:" attachments in
	// the text instead of attaching them.
	Blobs *blob.Dir
	// MaxAttempts bounds the transient failures of one reply before it
	// is reported failed (default 12).
	MaxAttempts int
	Now         func() time.Time
	// MessageIDDomain is the domain of generated Message-IDs (default:
	// the From address's domain).
	MessageIDDomain string
}

// NewOutbound makes the SMTP sender; Run starts it.
func NewOutbound(b *bus.Bus, opt OutboundOptions, log *zap.Logger) *Outbound {
	if opt.MaxAttempts <= 0 {
		opt.MaxAttempts = smtpDefaultMaxAttempts
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if log == nil {
		log = zap.NewNop()
	}
	host, _ := os.Hostname()
	worker := strings.ReplaceAll(fmt.Sprintf("%s/%d", host, os.Getpid()), ":", "_")
	return &Outbound{b: b, opt: opt, log: log, backoff: webhook.Backoff, stopGrace: smtpStopGrace,
		claimRecheck: smtpClaimRecheck, worker: worker}
}

// Run sends the replies on outbound.email until ctx ends, then returns
// once the sends under way are finished. Each reply is acked only once its
// outcome is recorded: sent (Message-ID in BucketSent, a "sent" report,
// then the ack) or failed (a "failed" report, then Term).
func (o *Outbound) Run(ctx context.Context) error {
	kv, co, ok := o.setupWithRetry(ctx)
	if !ok {
		return nil
	}
	var wg sync.WaitGroup
	for i := range smtpWorkers {
		// Each worker pulls one reply at a time: none waits in a local
		// queue while its AckWait runs.
		worker := fmt.Sprintf("%s/%d", o.worker, i)
		wg.Go(func() { o.work(ctx, kv, co, worker) })
	}
	wg.Wait()
	return nil
}

// setupWithRetry creates the bucket and the consumer, waiting for the bus
// if it is not reachable yet.
func (o *Outbound) setupWithRetry(ctx context.Context) (jetstream.KeyValue, jetstream.Consumer, bool) {
	logged := false
	for {
		kv, co, err := o.setup(ctx)
		if err == nil {
			if logged {
				o.log.Info("email outbound ready")
			}
			return kv, co, true
		}
		if ctx.Err() != nil {
			return nil, nil, false
		}
		if !logged {
			o.log.Warn("email outbound not ready; retrying", zap.Error(err))
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, nil, false
		case <-time.After(smtpFetchWait):
		}
	}
}

func (o *Outbound) setup(ctx context.Context) (jetstream.KeyValue, jetstream.Consumer, error) {
	kv, err := o.b.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: BucketSent, Description: "Message-ID sent per reply id, so a reply is sent once",
		History: 1, TTL: smtpSentTTL,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("bucket %s: %w", BucketSent, err)
	}
	co, err := o.consumer(ctx)
	if err != nil {
		return nil, nil, err
	}
	return kv, co, nil
}

// consumer creates (or updates) the durable consumer of outbound.email.
func (o *Outbound) consumer(ctx context.Context) (jetstream.Consumer, error) {
	name := bus.ConsumerOutbound(message.Email)
	co, err := o.b.JS.CreateOrUpdateConsumer(ctx, bus.StreamOutbound, jetstream.ConsumerConfig{
		Durable:       name,
		Description:   "email connector: replies sent by SMTP",
		FilterSubject: bus.OutboundSubject(message.Email),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       smtpAckWait,
		// No MaxDeliver: attempts are counted here, so that giving up is
		// seen and reported as a failed delivery.
		MaxAckPending: 1000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", name, err)
	}
	return co, nil
}

// work pulls replies one at a time and takes each to its outcome.
func (o *Outbound) work(ctx context.Context, kv jetstream.KeyValue, co jetstream.Consumer, worker string) {
	failing := false
	for ctx.Err() == nil {
		// The pull ends with ctx, so a stop does not wait out the pull.
		fctx, cancel := context.WithTimeout(ctx, smtpFetchWait)
		batch, err := co.Fetch(1, jetstream.FetchContext(fctx))
		if err == nil {
			for m := range batch.Messages() {
				o.handle(ctx, kv, m, worker)
			}
			err = batch.Error()
		}
		cancel()
		if ctx.Err() != nil {
			return
		}
		if err == nil || errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded) {
			if failing {
				o.log.Info("email outbound fetch recovered")
				failing = false
			}
			continue
		}
		if !failing {
			o.log.Warn("email outbound fetch failing; retrying", zap.Error(err))
			failing = true
		}
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			// Removed under us (a stream reset): put it back.
			if nco, cerr := o.consumer(ctx); cerr == nil {
				co = nco
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(smtpFetchWait):
		}
	}
}

// handle takes one reply to its outcome.
func (o *Outbound) handle(ctx context.Context, kv jetstream.KeyValue, m jetstream.Msg, worker string) {
	if ctx.Err() != nil {
		// Stopping: hand it back now rather than after AckWait.
		_ = m.Nak()
		return
	}
	out, err := message.DecodeOutbound(m.Data())
	if err != nil {
		o.undecodable(ctx, m, err)
		return
	}
	log := o.log.With(zap.String("reply_id", out.ID), zap.Int64("conversation", out.ConversationID))
	key := smtpSentKey(out.ID)
	seen, err := o.sentEntry(ctx, kv, key)
	if err != nil {
		o.retry(ctx, m, out, log, err.Error(), err, false)
		return
	}
	if rec := o.sentRecord(seen); rec.messageID != "" {
		log.Info("reply already sent; not sending again", zap.String("mail_message_id", rec.messageID))
		o.sent(ctx, m, out, log, rec.messageID)
		return
	} else if rec.claim != "" && !rec.stale {
		o.wait(m, log, rec)
		return
	}
	mb, err := o.mailboxFor(out)
	if err != nil {
		log.Error("reply cannot be sent", zap.Error(err))
		o.fail(ctx, m, out, log, err.Error())
		return
	}
	log = log.With(zap.String("mailbox", mb.Name))

	rcpt, err := netmail.ParseAddress(out.To)
	if err != nil {
		detail := fmt.Sprintf("recipient %q is not an e-mail address", out.To)
		log.Error("reply cannot be sent", zap.String("error", detail))
		o.fail(ctx, m, out, log, detail)
		return
	}
	from := smtpEnvelopeFrom(mb)
	c, err := composeMail(out, composeInput{From: smtpHeaderFrom(mb), Domain: o.opt.MessageIDDomain, Date: o.opt.Now(), Blobs: o.opt.Blobs})
	if err != nil {
		log.Error("reply cannot be composed", zap.Error(err))
		o.fail(ctx, m, out, log, "cannot compose the mail: "+err.Error())
		return
	}
	if len(c.Omitted) > 0 {
		log.Warn("attachments named in the text instead of attached", zap.Strings("attachments", c.Omitted))
	}
	log = log.With(zap.String("mail_message_id", c.MessageID))

	// The claim comes after the mail is composed (reading its blobs), so
	// that its age is that of the session.
	cl, err := o.claim(ctx, kv, key, seen, worker)
	switch {
	case err != nil:
		o.retry(ctx, m, out, log, err.Error(), err, false)
		return
	case cl.sent.messageID != "":
		log.Info("reply already sent; not sending again")
		o.sent(ctx, m, out, log, cl.sent.messageID)
		return
	case cl.held.claim != "":
		o.wait(m, log, cl.held)
		return
	case cl.tookOver != "":
		log.Warn("reply claimed by a worker that did not finish; taking it over", zap.String("claim", cl.tookOver))
	}
	// Composing counted against the AckWait: the session gets a whole one.
	_ = m.InProgress()
	if err := o.send(ctx, mb, from, rcpt.Address, c.Raw); err != nil {
		o.release(ctx, kv, key, cl.rev, log)
		f := smtpClassify(err)
		if f.code != 0 {
			log = log.With(zap.Int("smtp_code", f.code))
		}
		var se *smtpError
		if errors.As(err, &se) {
			log = log.With(zap.String("smtp_stage", string(se.stage)))
		}
		if f.permanent {
			log.Warn("reply refused", zap.Error(err))
			o.fail(ctx, m, out, log, f.detail)
			return
		}
		o.retry(ctx, m, out, log, f.detail, err, f.mailbox)
		return
	}
	log.Info("reply sent")
	// The bookkeeping gets a full AckWait, however long the session took.
	_ = m.InProgress()
	o.record(ctx, kv, m, out, log, c.MessageID)
	o.sent(ctx, m, out, log, c.MessageID)
	if mb.SMTP.SentFolder != "" {
		// After the ack: filing the copy never holds up or repeats the send.
		o.appendSent(ctx, mb, c.Raw, log)
	}
}

// wait leaves a reply that another worker is sending (a second copy of
// it on OUTBOUND) for later: by then it is sent (this copy is acked), or
// its attempt failed, or the claim is stale.
func (o *Outbound) wait(m jetstream.Msg, log *zap.Logger, held smtpRecord) {
	delay := min(max(held.at.Add(smtpClaimStale).Sub(o.opt.Now()), time.Second), o.claimRecheck)
	log.Info("reply being sent by another worker; left for later", zap.String("claim", held.claim), zap.Duration("delay", delay))
	_ = m.NakWithDelay(delay)
}

// undecodable fails a payload that is not a reply: reported failed when
// it has an id to report on, and never delivered again.
func (o *Outbound) undecodable(ctx context.Context, m jetstream.Msg, err error) {
	var partial message.Outbound
	if json.Unmarshal(m.Data(), &partial) == nil && partial.ID != "" {
		log := o.log.With(zap.String("reply_id", partial.ID), zap.Int64("conversation", partial.ConversationID))
		log.Error("undecodable reply; reported failed", zap.Error(err))
		o.fail(ctx, m, &partial, log, "reply cannot be sent: "+err.Error())
		return
	}
	o.log.Error("undecodable outbound message dropped", zap.String("subject", m.Subject()), zap.Error(err))
	_ = m.Term()
}

// mailboxFor is the mailbox a reply goes from: the one the customer wrote
// to when it can send, else the first that can.
func (o *Outbound) mailboxFor(out *message.Outbound) (config.Mailbox, error) {
	want := out.From
	if a, err := netmail.ParseAddress(want); err == nil {
		want = a.Address
	}
	var first *config.Mailbox
	for i := range o.opt.Mailboxes {
		mb := &o.opt.Mailboxes[i]
		if mb.SMTP.Addr == "" {
			continue
		}
		if want != "" && strings.EqualFold(mb.Address, want) {
			return *mb, nil
		}
		if first == nil {
			first = mb
		}
	}
	if first == nil {
		return config.Mailbox{}, errors.New("no mailbox can send replies: none has an smtp.addr")
	}
	return *first, nil
}

// smtpHeaderFrom is the From header of a mailbox's replies.
func smtpHeaderFrom(mb config.Mailbox) string {
	if mb.SMTP.From != "" {
		return mb.SMTP.From
	}
	return mb.Address
}

// smtpEnvelopeFrom is MAIL FROM: the mailbox address, where bounces go.
func smtpEnvelopeFrom(mb config.Mailbox) string {
	if mb.Address != "" {
		return mb.Address
	}
	if a, err := netmail.ParseAddress(mb.SMTP.From); err == nil {
		return a.Address
	}
	return ""
}

// smtpStage is the step of an SMTP session a send failed at. Only a 5xx
// answer to RCPT TO or DATA is about the reply itself. A refusal at an
// earlier step is about the mailbox: its login, its server, its address,
// our IP; every reply would meet it until the configuration is fixed, so
// it is retried (and logged as an error), not a reason to fail the reply.
type smtpStage string

const (
	smtpAtConnect  smtpStage = "connect"
	smtpAtGreeting smtpStage = "greeting"
	smtpAtHello    smtpStage = "EHLO"
	// smtpAtTLS is STARTTLS and the TLS handshake (implicit or after
	// STARTTLS).
	smtpAtTLS  smtpStage = "TLS"
	smtpAtAuth smtpStage = "AUTH"
	smtpAtMail smtpStage = "MAIL FROM"
	smtpAtRcpt smtpStage = "RCPT TO"
	// smtpAtData is the DATA command, the mail, and the answer to its end.
	smtpAtData smtpStage = "DATA"
)

// smtpError is a failed send: the step it failed at, and why.
type smtpError struct {
	stage smtpStage
	// host is the server's host, as configured.
	host string
	// what names what the server was asked, for a refusal ("the
	// login").
	what string
	err  error
	// mailbox: a fault of the mailbox's configuration or server found
	// before asking the server (no STARTTLS offered, an untrusted
	// certificate). Retried, and logged as an error.
	mailbox bool
	// permanent: a fault of this reply found before asking the server,
	// that no retry mends.
	permanent bool
}

func (e *smtpError) Error() string { return e.err.Error() }
func (e *smtpError) Unwrap() error { return e.err }

// smtpFailure is a failed send, classified.
type smtpFailure struct {
	// permanent: the reply is failed now.
	permanent bool
	// mailbox: the mailbox or its server is at fault, not the reply:
	// retried like a transient failure, but logged as an error.
	mailbox bool
	// code is the server's reply code (0: no answer, such as a network
	// error).
	code   int
	detail string
}

// smtpClassify reads a send error: a 5xx answer to RCPT TO or DATA, and
// our own findings about the reply, end it; a 5xx answer at an earlier
// step (and our findings about the mailbox) is a mailbox fault, retried;
// 4xx answers and everything else (network, timeouts) are worth another
// attempt.
func smtpClassify(err error) smtpFailure {
	var e *smtpError
	if !errors.As(err, &e) {
		return smtpFailure{detail: err.Error()}
	}
	var se *smtp.SMTPError
	if errors.As(e.err, &se) {
		f := smtpFailure{code: se.Code, detail: smtpAnswer(se)}
		refused := se.Code >= 500 && se.Code < 600
		switch {
		case e.stage == smtpAtRcpt || e.stage == smtpAtData:
			f.permanent = refused
		case e.stage == smtpAtMail && smtpTooBig(se):
			// The SIZE given with MAIL FROM is this mail's.
			f.permanent = refused
		default:
			f.mailbox = refused
			f.detail = e.host + " refused " + e.what + ": " + f.detail
		}
		return f
	}
	switch {
	case e.permanent:
		return smtpFailure{permanent: true, detail: e.Error()}
	case e.mailbox:
		return smtpFailure{mailbox: true, detail: e.Error()}
	}
	return smtpFailure{detail: e.Error()}
}

// smtpTooBig is a refusal of the mail's size (RFC 1870: 552 to MAIL FROM
// with SIZE).
func smtpTooBig(se *smtp.SMTPError) bool {
	return se.Code == 552 || se.EnhancedCode == smtp.EnhancedCode{5, 3, 4}
}

// smtpAnswer is the server's answer as it said it: "550 5.1.1 <x@y>:
// Recipient address rejected".
func smtpAnswer(se *smtp.SMTPError) string {
	s := fmt.Sprintf("%03d", se.Code)
	if ec := se.EnhancedCode; ec != smtp.EnhancedCodeNotSet && ec != smtp.NoEnhancedCode {
		s += fmt.Sprintf(" %d.%d.%d", ec[0], ec[1], ec[2])
	}
	if se.Message != "" {
		s += " " + se.Message
	}
	return s
}

// smtpGraceContext is a context with ctx's values and its own timeout that
// ends grace after ctx does: a session under way when the connector stops
// may finish, a hung one may not hold the stop.
func smtpGraceContext(ctx context.Context, timeout, grace time.Duration) (context.Context, context.CancelFunc) {
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	stop := context.AfterFunc(ctx, func() {
		t := time.NewTimer(grace)
		defer t.Stop()
		select {
		case <-sctx.Done():
		case <-t.C:
			cancel()
		}
	})
	return sctx, func() { stop(); cancel() }
}

// send hands raw to the mailbox's SMTP server for rcpt. It returns nil
// only once the server accepted the mail (its answer to the end of DATA);
// its errors are *smtpError.
func (o *Outbound) send(ctx context.Context, mb config.Mailbox, from, rcpt string, raw []byte) error {
	s := mb.SMTP
	host, _, err := net.SplitHostPort(s.Addr)
	if err != nil {
		host = s.Addr
	}
	if s.User != "" && s.TLS == config.TLSNone {
		return &smtpError{stage: smtpAtAuth, host: host, mailbox: true,
			err: fmt.Errorf("mailbox %s: smtp.user is set but the connection to %s is not encrypted (smtp.tls none); the password is not sent in clear text", mb.Name, s.Addr)}
	}
	sctx, cancel := smtpGraceContext(ctx, smtpSessionTimeout, o.stopGrace)
	defer cancel()
	d := net.Dialer{Timeout: smtpDialTimeout}
	conn, err := d.DialContext(sctx, "tcp", s.Addr)
	if err != nil {
		return &smtpError{stage: smtpAtConnect, host: host, err: fmt.Errorf("smtp dial %s: %w", s.Addr, err)}
	}
	// The client sets a deadline per command; the session's end (or the
	// stop's) closes the connection under any of them.
	closeOnEnd := context.AfterFunc(sctx, func() { conn.Close() })
	defer closeOnEnd()
	defer conn.Close()
	if dl, ok := sctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}

	tlsConf := &tls.Config{ServerName: host, InsecureSkipVerify: s.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in for test servers
	helo := smtpHeloName(from)
	cconn, err := smtpOpen(sctx, conn, s, host, helo, tlsConf)
	if err != nil {
		return err
	}
	c := smtp.NewClient(cconn)
	defer c.Close()
	c.CommandTimeout = smtpCommandTimeout
	c.SubmissionTimeout = smtpCommandTimeout
	if err := c.Hello(helo); err != nil {
		return &smtpError{stage: smtpAtHello, host: host, what: "EHLO " + helo, err: fmt.Errorf("smtp EHLO %s: %w", s.Addr, err)}
	}
	if s.User != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return &smtpError{stage: smtpAtAuth, host: host, mailbox: true,
				err: fmt.Errorf("smtp server %s does not offer AUTH, but smtp.user is set", s.Addr)}
		}
		if err := c.Auth(sasl.NewPlainClient("", s.User, s.Password)); err != nil {
			return &smtpError{stage: smtpAtAuth, host: host, what: "the login", err: fmt.Errorf("smtp AUTH PLAIN as %s: %w", s.User, err)}
		}
	}
	utf8 := !smtpASCII(from) || !smtpASCII(rcpt)
	if ok, _ := c.Extension("SMTPUTF8"); utf8 && !ok {
		// A non-ASCII recipient is this reply's; a non-ASCII mailbox
		// address would stop every reply.
		return &smtpError{stage: smtpAtMail, host: host, mailbox: !smtpASCII(from), permanent: smtpASCII(from),
			err: fmt.Errorf("smtp server %s cannot take non-ASCII addresses (no SMTPUTF8): %s to %s", s.Addr, from, rcpt)}
	}
	if err := c.Mail(from, &smtp.MailOptions{Size: int64(len(raw)), UTF8: utf8}); err != nil {
		return &smtpError{stage: smtpAtMail, host: host, what: "the sender <" + from + ">", err: fmt.Errorf("smtp MAIL FROM:<%s>: %w", from, err)}
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return &smtpError{stage: smtpAtRcpt, host: host, err: fmt.Errorf("smtp RCPT TO:<%s>: %w", rcpt, err)}
	}
	w, err := c.Data()
	if err != nil {
		return &smtpError{stage: smtpAtData, host: host, err: fmt.Errorf("smtp DATA: %w", err)}
	}
	if _, err := w.Write(raw); err != nil {
		_ = w.Close()
		return &smtpError{stage: smtpAtData, host: host, err: fmt.Errorf("smtp DATA: %w", err)}
	}
	if err := w.Close(); err != nil {
		return &smtpError{stage: smtpAtData, host: host, err: fmt.Errorf("smtp end of DATA: %w", err)}
	}
	// Accepted: what follows cannot unsend it.
	if err := c.Quit(); err != nil {
		o.log.Debug("smtp QUIT after the mail was accepted", zap.String("smtp_addr", s.Addr), zap.Error(err))
	}
	return nil
}

// smtpOpen does the part of a session before go-smtp's client takes over:
// the TLS handshake (implicit TLS), the greeting, and for STARTTLS the
// first EHLO, STARTTLS and the handshake. go-smtp reads the greeting
// itself and cannot start TLS on a client that greeted with a name of
// ours (its NewClientStartTLS greets as "localhost", which some servers
// refuse), so it gets a connection that replays the greeting, and goes on
// from EHLO.
func smtpOpen(ctx context.Context, conn net.Conn, s config.SMTP, host, helo string, tlsConf *tls.Config) (net.Conn, error) {
	if s.TLS == config.TLSImplicit {
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, smtpTLSError(host, s.Addr, err)
		}
		conn = tc
	}
	// Not closed: that would close conn, which the caller owns.
	tp := textproto.NewConn(conn)
	_, greeting, err := tp.ReadResponse(220)
	if err != nil {
		return nil, &smtpError{stage: smtpAtGreeting, host: host, what: "the connection", err: fmt.Errorf("smtp greeting of %s: %w", s.Addr, smtpProtoError(err))}
	}
	greeting, _, _ = strings.Cut(greeting, "\n")
	if s.TLS != config.TLSImplicit && s.TLS != config.TLSNone { // config.TLSStart, the default
		_, ext, err := smtpCmd(tp, 250, "EHLO "+helo)
		if err != nil {
			return nil, &smtpError{stage: smtpAtHello, host: host, what: "EHLO " + helo, err: fmt.Errorf("smtp EHLO %s: %w", s.Addr, err)}
		}
		if !smtpOffers(ext, "STARTTLS") {
			return nil, &smtpError{stage: smtpAtTLS, host: host, mailbox: true,
				err: fmt.Errorf("%s does not offer STARTTLS, but smtp.tls is starttls (the mail is not sent in clear text)", s.Addr)}
		}
		if _, _, err := smtpCmd(tp, 220, "STARTTLS"); err != nil {
			return nil, &smtpError{stage: smtpAtTLS, host: host, what: "STARTTLS", err: fmt.Errorf("smtp STARTTLS %s: %w", s.Addr, err)}
		}
		if tp.R.Buffered() > 0 {
			// Lines before the handshake would be read as answers sent
			// over TLS (STARTTLS injection).
			return nil, &smtpError{stage: smtpAtTLS, host: host, mailbox: true,
				err: fmt.Errorf("smtp STARTTLS %s: the server sent data before the TLS handshake", s.Addr)}
		}
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, smtpTLSError(host, s.Addr, err)
		}
		return &smtpGreeted{Conn: tc, replay: []byte("220 " + greeting + "\r\n")}, nil
	}
	replay := []byte("220 " + greeting + "\r\n")
	if n := tp.R.Buffered(); n > 0 {
		// Not expected before EHLO, but the client's to read.
		early, _ := tp.R.Peek(n)
		replay = append(replay, early...)
	}
	return &smtpGreeted{Conn: conn, replay: replay}, nil
}

// smtpCmd sends one command and reads its answer, a *smtp.SMTPError if it
// is not expect.
func smtpCmd(tp *textproto.Conn, expect int, cmd string) (int, string, error) {
	if err := tp.PrintfLine("%s", cmd); err != nil {
		return 0, "", err
	}
	code, msg, err := tp.ReadResponse(expect)
	return code, msg, smtpProtoError(err)
}

// smtpProtoError turns an unexpected answer into the *smtp.SMTPError
// go-smtp's client would have returned.
func smtpProtoError(err error) error {
	var te *textproto.Error
	if !errors.As(err, &te) {
		return err
	}
	se := &smtp.SMTPError{Code: te.Code, Message: te.Msg}
	if first, rest, ok := strings.Cut(te.Msg, " "); ok {
		var ec smtp.EnhancedCode
		if n, err := fmt.Sscanf(first, "%d.%d.%d", &ec[0], &ec[1], &ec[2]); err == nil && n == 3 && ec[0] >= 2 && ec[0] <= 5 {
			se.EnhancedCode, se.Message = ec, rest
		}
	}
	return se
}

// smtpOffers reports whether an EHLO answer (its lines after the first)
// names the extension ext.
func smtpOffers(ehlo, ext string) bool {
	lines := strings.Split(ehlo, "\n")
	for _, l := range lines[1:] {
		if f := strings.Fields(l); len(f) > 0 && strings.EqualFold(f[0], ext) {
			return true
		}
	}
	return false
}

// smtpTLSError is a failed TLS handshake: a certificate not trusted, or a
// server that does not speak TLS there, is a fault of the mailbox's
// configuration; a connection lost is transient.
func smtpTLSError(host, addr string, err error) error {
	var cv *tls.CertificateVerificationError
	var alert tls.AlertError
	var rh tls.RecordHeaderError
	mailbox := errors.As(err, &cv) || errors.As(err, &alert) || errors.As(err, &rh)
	return &smtpError{stage: smtpAtTLS, host: host, mailbox: mailbox, err: fmt.Errorf("smtp TLS with %s: %w", addr, err)}
}

// smtpGreeted is a connection whose greeting was read already: it
// replays it, so that a new smtp.Client (which starts by reading one)
// goes on from EHLO.
type smtpGreeted struct {
	net.Conn
	replay []byte
}

func (c *smtpGreeted) Read(p []byte) (int, error) {
	if len(c.replay) > 0 {
		n := copy(p, c.replay)
		c.replay = c.replay[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// smtpHeloName is the name the client greets with: this host when it has
// a domain name, else the sender's domain (some servers refuse a bare
// "localhost").
func smtpHeloName(from string) string {
	if h, err := os.Hostname(); err == nil && strings.Contains(h, ".") && !strings.HasSuffix(h, ".") {
		return h
	}
	if _, d, ok := strings.Cut(from, "@"); ok && d != "" {
		return d
	}
	return "localhost"
}

func smtpASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

// appendSent files the sent mail in the mailbox's Sent folder, marked
// \Seen. A failure is only logged: the mail went out.
func (o *Outbound) appendSent(ctx context.Context, mb config.Mailbox, raw []byte, log *zap.Logger) {
	if mb.IMAP.Addr == "" {
		log.Warn("sent copy not filed: the mailbox has no imap.addr", zap.String("folder", mb.SMTP.SentFolder))
		return
	}
	actx, cancel := smtpGraceContext(ctx, smtpAppendTimeout, o.stopGrace)
	defer cancel()
	if err := smtpAppend(actx, mb, raw, o.opt.Now()); err != nil {
		log.Warn("sent copy not filed", zap.String("folder", mb.SMTP.SentFolder), zap.Error(err))
	}
}

func smtpAppend(ctx context.Context, mb config.Mailbox, raw []byte, at time.Time) error {
	c, err := dialIMAP(ctx, mb.IMAP, nil)
	if err != nil {
		return err
	}
	defer c.Close()
	// dialIMAP's watch on ctx ends with the login.
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	cmd := c.Append(mb.SMTP.SentFolder, int64(len(raw)), &imap.AppendOptions{Flags: []imap.Flag{imap.FlagSeen}, Time: at})
	if _, err := cmd.Write(raw); err != nil {
		_ = cmd.Close()
		return fmt.Errorf("imap append to %s: %w", mb.SMTP.SentFolder, err)
	}
	if err := cmd.Close(); err != nil {
		return fmt.Errorf("imap append to %s: %w", mb.SMTP.SentFolder, err)
	}
	if _, err := cmd.Wait(); err != nil {
		return fmt.Errorf("imap append to %s: %w", mb.SMTP.SentFolder, err)
	}
	_ = c.Logout().Wait()
	return nil
}

// sentEntry is the BucketSent entry of key, nil if none.
func (o *Outbound) sentEntry(ctx context.Context, kv jetstream.KeyValue, key string) (jetstream.KeyValueEntry, error) {
	e, err := kv.Get(ctx, key)
	switch {
	case err == nil:
		return e, nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return nil, nil
	default:
		return nil, fmt.Errorf("sent-bucket lookup of %s: %w", key, err)
	}
}

// smtpRecord is a BucketSent value read: a Message-ID sent, or a claim.
type smtpRecord struct {
	messageID string
	// claim is the whole claim value, at when it was made; stale: at is
	// an AckWait ago or more.
	claim string
	at    time.Time
	stale bool
}

// sentRecord reads a BucketSent entry (nil: none). An empty value, which
// no version writes, reads as none: a claim replaces it.
func (o *Outbound) sentRecord(e jetstream.KeyValueEntry) smtpRecord {
	if e == nil || len(e.Value()) == 0 {
		return smtpRecord{}
	}
	v := string(e.Value())
	rest, isClaim := strings.CutPrefix(v, smtpClaimPrefix)
	if !isClaim {
		return smtpRecord{messageID: v}
	}
	// The time written in the claim; the entry's (the server's clock) if
	// it cannot be read.
	r := smtpRecord{claim: v, at: e.Created()}
	if i := strings.IndexByte(rest, ':'); i >= 0 {
		if t, err := time.Parse(time.RFC3339Nano, rest[i+1:]); err == nil {
			r.at = t
		}
	}
	r.stale = o.opt.Now().Sub(r.at) >= smtpClaimStale
	return r
}

// smtpClaim is the outcome of a claim: ours (rev), or the reply is sent
// already (sent), or another worker is sending it (held).
type smtpClaim struct {
	rev  uint64
	sent smtpRecord
	held smtpRecord
	// tookOver is the stale claim replaced by ours.
	tookOver string
}

// claim makes this worker the one that sends the reply of key: a create
// of a claim where there is no entry, an update on the revision of a
// stale claim. seen is the entry read before (nil: none).
func (o *Outbound) claim(ctx context.Context, kv jetstream.KeyValue, key string, seen jetstream.KeyValueEntry, worker string) (smtpClaim, error) {
	mine := smtpClaimPrefix + strings.ReplaceAll(worker, ":", "_") + ":" + o.opt.Now().UTC().Format(time.RFC3339Nano)
	e := seen
	for try := 1; ; try++ {
		rec := o.sentRecord(e)
		var (
			rev uint64
			err error
		)
		switch {
		case rec.messageID != "":
			return smtpClaim{sent: rec}, nil
		case rec.claim != "" && !rec.stale:
			return smtpClaim{held: rec}, nil
		case e == nil:
			rev, err = kv.Create(ctx, key, []byte(mine))
			if err == nil {
				return smtpClaim{rev: rev}, nil
			}
			if !errors.Is(err, jetstream.ErrKeyExists) {
				return smtpClaim{}, fmt.Errorf("sent-bucket claim of %s: %w", key, err)
			}
		default:
			rev, err = kv.Update(ctx, key, []byte(mine), e.Revision())
			if err == nil {
				return smtpClaim{rev: rev, tookOver: rec.claim}, nil
			}
			if !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
				return smtpClaim{}, fmt.Errorf("sent-bucket claim of %s: %w", key, err)
			}
		}
		// Another worker wrote first: read what it wrote.
		if try == 3 {
			return smtpClaim{}, fmt.Errorf("sent-bucket claim of %s: %w", key, err)
		}
		if e, err = o.sentEntry(ctx, kv, key); err != nil {
			return smtpClaim{}, err
		}
	}
}

// release deletes this worker's claim after a failed attempt, so that the
// next one (of this copy or another) may claim the reply at once. A
// claim that is not released goes stale.
func (o *Outbound) release(ctx context.Context, kv jetstream.KeyValue, key string, rev uint64, log *zap.Logger) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), smtpBookkeepingTimeout)
	defer cancel()
	if err := kv.Delete(bctx, key, jetstream.LastRevision(rev)); err != nil && !errors.Is(err, jetstream.ErrKeyRevisionMismatch) {
		log.Warn("claim of the reply not released; it holds other copies until it is stale", zap.Error(err))
	}
}

// record puts the Message-ID (in place of the claim) before the reply is
// acked. It insists (until a grace period ends, even while stopping): a
// reply acked or redelivered without it would be sent twice.
func (o *Outbound) record(ctx context.Context, kv jetstream.KeyValue, m jetstream.Msg, out *message.Outbound, log *zap.Logger, mid string) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), smtpBookkeepingTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		_, err := kv.PutString(bctx, smtpSentKey(out.ID), mid)
		if err == nil {
			return
		}
		if bctx.Err() != nil {
			log.Error("sent reply not recorded; a redelivery would send it again", zap.Error(err))
			return
		}
		_ = m.InProgress()
		select {
		case <-bctx.Done():
		case <-time.After(min(webhook.Backoff(attempt), time.Second)):
		}
	}
}

var smtpValidKey = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

// smtpSentKey is the bucket key of a reply id; ids that are not valid KV
// keys are hex-encoded (with a prefix no valid id has).
func smtpSentKey(id string) string {
	if smtpValidKey.MatchString(id) && !strings.HasPrefix(id, ".") && !strings.HasSuffix(id, ".") && !strings.HasPrefix(id, "_x") {
		return id
	}
	return "_x" + hex.EncodeToString([]byte(id))
}

// sent reports a reply sent and acks it.
func (o *Outbound) sent(ctx context.Context, m jetstream.Msg, out *message.Outbound, log *zap.Logger, mid string) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), smtpBookkeepingTimeout)
	defer cancel()
	// The report first: if it cannot be published, the reply comes back
	// (its Message-ID is recorded, so it is only reported again, not
	// resent).
	if err := o.report(bctx, out, log, message.DeliverySent, "", mid); err != nil {
		_ = m.NakWithDelay(time.Second)
		return
	}
	if err := m.DoubleAck(bctx); err != nil {
		log.Warn("ack of a sent reply failed", zap.Error(err))
	}
}

// fail reports a reply failed, then terminates it; a report that cannot
// be published leaves the reply to come back and fail again.
func (o *Outbound) fail(ctx context.Context, m jetstream.Msg, out *message.Outbound, log *zap.Logger, detail string) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), smtpBookkeepingTimeout)
	defer cancel()
	if err := o.report(bctx, out, log, message.DeliveryFailed, detail, ""); err != nil {
		_ = m.NakWithDelay(time.Second)
		return
	}
	_ = m.Term()
}

// retry hands a reply back to JetStream after a transient failure, or
// gives up on it after MaxAttempts deliveries.
//
// mailbox: the mailbox or its server is at fault (a refused login,
// greeting or sender, an untrusted certificate): every reply meets it
// until the configuration or the server is fixed, which is for an
// operator to see, so it is logged as an error.
func (o *Outbound) retry(ctx context.Context, m jetstream.Msg, out *message.Outbound, log *zap.Logger, detail string, err error, mailbox bool) {
	if ctx.Err() != nil {
		// Stopping: the failure may be our own closing of the session.
		// Another process may try now.
		_ = m.Nak()
		return
	}
	attempt := 1
	if md, mdErr := m.Metadata(); mdErr == nil {
		attempt = int(md.NumDelivered)
	}
	log = log.With(zap.Int("attempt", attempt), zap.Error(err))
	if attempt >= o.opt.MaxAttempts {
		log.Error("reply given up", zap.String("detail", detail))
		o.fail(ctx, m, out, log, fmt.Sprintf("gave up after %d attempts: %s", attempt, detail))
		return
	}
	delay := o.backoff(attempt)
	if mailbox {
		log.Error("reply not sent: the mailbox cannot send (its SMTP server refused it, or its smtp settings do not fit the server); will retry",
			zap.String("detail", detail), zap.Duration("delay", delay))
	} else {
		log.Warn("reply not sent; will retry", zap.Duration("delay", delay))
	}
	_ = m.NakWithDelay(delay)
}

// report publishes a delivery report; its Nats-Msg-Id status:id drops
// repeats within the duplicate window, and the store keeps the furthest
// status of later ones.
func (o *Outbound) report(ctx context.Context, out *message.Outbound, log *zap.Logger, status, detail, mid string) error {
	d := message.Delivery{V: message.OutboundVersion, MessageID: out.ID, ConversationID: out.ConversationID,
		Channel: message.Email, Status: status, Detail: detail, ChannelMessageID: mid, At: o.opt.Now().UTC()}
	data, err := json.Marshal(d)
	if err != nil {
		log.Error("encode delivery report", zap.Error(err))
		return nil // cannot get better by trying again
	}
	if _, err := o.b.Publish(ctx, bus.DeliverySubject(message.Email), data, status+":"+out.ID, nil); err != nil {
		log.Warn("delivery report not published", zap.String("status", status), zap.Error(err))
		return err
	}
	return nil
}
