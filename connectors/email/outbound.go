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
// One gap remains: a crash after the server accepted the mail and before
// the put (or a connection lost after the server accepted but before its
// answer reached us). The reply then comes back and is sent again. For e-mail that is mild: the second mail carries the same
// Message-ID, and mail systems and clients treat two mails with one
// Message-ID as one message (deduplicated on delivery, or shown once in
// the thread).
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
	return &Outbound{b: b, opt: opt, log: log, backoff: webhook.Backoff, stopGrace: smtpStopGrace}
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
	for range smtpWorkers {
		// Each worker pulls one reply at a time: none waits in a local
		// queue while its AckWait runs.
		wg.Go(func() { o.work(ctx, kv, co) })
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
func (o *Outbound) work(ctx context.Context, kv jetstream.KeyValue, co jetstream.Consumer) {
	failing := false
	for ctx.Err() == nil {
		// The pull ends with ctx, so a stop does not wait out the pull.
		fctx, cancel := context.WithTimeout(ctx, smtpFetchWait)
		batch, err := co.Fetch(1, jetstream.FetchContext(fctx))
		if err == nil {
			for m := range batch.Messages() {
				o.handle(ctx, kv, m)
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
func (o *Outbound) handle(ctx context.Context, kv jetstream.KeyValue, m jetstream.Msg) {
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
	mid, err := o.sentMessageID(ctx, kv, out.ID)
	if err != nil {
		o.retry(ctx, m, out, log, err.Error(), err)
		return
	}
	if mid != "" {
		log.Info("reply already sent; not sending again", zap.String("mail_message_id", mid))
		o.sent(ctx, m, out, log, mid)
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

	if err := o.send(ctx, mb, from, rcpt.Address, c.Raw); err != nil {
		f := smtpClassify(err)
		if f.code != 0 {
			log = log.With(zap.Int("smtp_code", f.code))
		}
		if f.permanent {
			log.Warn("reply refused", zap.Error(err))
			o.fail(ctx, m, out, log, f.detail)
			return
		}
		o.retry(ctx, m, out, log, f.detail, err)
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

// smtpPermanentError is a failure of ours that no retry can mend (a
// configuration the server cannot work with).
type smtpPermanentError struct{ err error }

func (e *smtpPermanentError) Error() string { return e.err.Error() }
func (e *smtpPermanentError) Unwrap() error { return e.err }

// smtpFailure is a failed send, classified.
type smtpFailure struct {
	permanent bool
	// code is the server's reply code (0: no answer, such as a network
	// error).
	code   int
	detail string
}

// smtpClassify reads a send error: 5xx answers and our own permanent
// errors end the reply; 4xx answers and everything else (network,
// timeouts, TLS) are worth another attempt.
func smtpClassify(err error) smtpFailure {
	var se *smtp.SMTPError
	if errors.As(err, &se) {
		return smtpFailure{permanent: se.Code >= 500 && se.Code < 600, code: se.Code, detail: smtpAnswer(se)}
	}
	var pe *smtpPermanentError
	if errors.As(err, &pe) {
		return smtpFailure{permanent: true, detail: err.Error()}
	}
	return smtpFailure{detail: err.Error()}
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
// only once the server accepted the mail (its answer to the end of DATA).
func (o *Outbound) send(ctx context.Context, mb config.Mailbox, from, rcpt string, raw []byte) error {
	s := mb.SMTP
	sctx, cancel := smtpGraceContext(ctx, smtpSessionTimeout, o.stopGrace)
	defer cancel()
	d := net.Dialer{Timeout: smtpDialTimeout}
	conn, err := d.DialContext(sctx, "tcp", s.Addr)
	if err != nil {
		return fmt.Errorf("smtp dial %s: %w", s.Addr, err)
	}
	// The client sets a deadline per command; the session's end (or the
	// stop's) closes the connection under any of them.
	closeOnEnd := context.AfterFunc(sctx, func() { conn.Close() })
	defer closeOnEnd()
	defer conn.Close()
	if dl, ok := sctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}

	host, _, _ := net.SplitHostPort(s.Addr)
	tlsConf := &tls.Config{ServerName: host, InsecureSkipVerify: s.InsecureSkipVerify, MinVersion: tls.VersionTLS12} //nolint:gosec // opt-in for test servers
	var c *smtp.Client
	switch s.TLS {
	case config.TLSImplicit:
		tc := tls.Client(conn, tlsConf)
		if err := tc.HandshakeContext(sctx); err != nil {
			return fmt.Errorf("smtp tls %s: %w", s.Addr, err)
		}
		c = smtp.NewClient(tc)
	case config.TLSNone:
		c = smtp.NewClient(conn)
	default: // config.TLSStart, the default
		c, err = smtp.NewClientStartTLS(conn, tlsConf)
		if err != nil {
			return fmt.Errorf("smtp starttls %s: %w", s.Addr, err)
		}
	}
	defer c.Close()
	c.CommandTimeout = smtpCommandTimeout
	c.SubmissionTimeout = smtpCommandTimeout
	if err := c.Hello(smtpHeloName(from)); err != nil {
		return fmt.Errorf("smtp EHLO %s: %w", s.Addr, err)
	}
	if s.User != "" {
		if _, encrypted := c.TLSConnectionState(); !encrypted {
			return &smtpPermanentError{fmt.Errorf("mailbox %s: smtp.user is set but the connection to %s is not encrypted (smtp.tls none); the password is not sent in clear text", mb.Name, s.Addr)}
		}
		if ok, _ := c.Extension("AUTH"); !ok {
			return &smtpPermanentError{fmt.Errorf("smtp server %s does not offer AUTH, but smtp.user is set", s.Addr)}
		}
		if err := c.Auth(sasl.NewPlainClient("", s.User, s.Password)); err != nil {
			return fmt.Errorf("smtp AUTH PLAIN as %s: %w", s.User, err)
		}
	}
	utf8 := !smtpASCII(from) || !smtpASCII(rcpt)
	if ok, _ := c.Extension("SMTPUTF8"); utf8 && !ok {
		return &smtpPermanentError{fmt.Errorf("smtp server %s cannot take non-ASCII addresses (no SMTPUTF8): %s to %s", s.Addr, from, rcpt)}
	}
	if err := c.Mail(from, &smtp.MailOptions{Size: int64(len(raw)), UTF8: utf8}); err != nil {
		return fmt.Errorf("smtp MAIL FROM:<%s>: %w", from, err)
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return fmt.Errorf("smtp RCPT TO:<%s>: %w", rcpt, err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if _, err := w.Write(raw); err != nil {
		_ = w.Close()
		return fmt.Errorf("smtp DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("smtp end of DATA: %w", err)
	}
	// Accepted: what follows cannot unsend it.
	if err := c.Quit(); err != nil {
		o.log.Debug("smtp QUIT after the mail was accepted", zap.String("smtp_addr", s.Addr), zap.Error(err))
	}
	return nil
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

// sentMessageID is the Message-ID recorded for a reply, "" if none.
func (o *Outbound) sentMessageID(ctx context.Context, kv jetstream.KeyValue, id string) (string, error) {
	e, err := kv.Get(ctx, smtpSentKey(id))
	switch {
	case err == nil:
		return string(e.Value()), nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return "", nil
	default:
		return "", fmt.Errorf("sent-bucket lookup of %s: %w", id, err)
	}
}

// record puts the Message-ID before the reply is acked. It insists (until
// a grace period ends, even while stopping): a reply acked or redelivered
// without it would be sent twice.
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
func (o *Outbound) retry(ctx context.Context, m jetstream.Msg, out *message.Outbound, log *zap.Logger, detail string, err error) {
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
		log.Error("reply given up")
		o.fail(ctx, m, out, log, fmt.Sprintf("gave up after %d attempts: %s", attempt, detail))
		return
	}
	delay := o.backoff(attempt)
	log.Warn("reply not sent; will retry", zap.Duration("delay", delay))
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
