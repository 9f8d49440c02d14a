// Package webhook posts signed JSON callbacks and delivers them from a
// JetStream consumer with retries: the app channel's reply webhook and the
// desk's SLA notifier share it.
//
// The signature header is
//
//	Inroute-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">
//
// keyed with the receiver's secret. Receivers check it with Verify and
// refuse a t older than a few minutes, so a captured request cannot be
// replayed later.
package webhook

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Header is the name of the signature header.
const Header = "Inroute-Signature"

// DefaultTolerance is how far a signature's timestamp may be from now.
const DefaultTolerance = 5 * time.Minute

// Verification errors.
var (
	// ErrNoSignature: the header is missing or empty.
	ErrNoSignature = errors.New("webhook: no signature")
	// ErrBadSignature: the header is malformed or no v1 signature matches.
	ErrBadSignature = errors.New("webhook: bad signature")
	// ErrExpired: the signature is authentic but its timestamp is too far
	// from now (a replay, or a badly wrong clock).
	ErrExpired = errors.New("webhook: signature timestamp outside tolerance")
)

// Sign returns the Header value for body sent at t.
func Sign(secret []byte, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	return "t=" + ts + ",v1=" + hex.EncodeToString(mac(secret, ts, body))
}

func mac(secret []byte, ts string, body []byte) []byte {
	h := hmac.New(sha256.New, secret)
	h.Write([]byte(ts))
	h.Write([]byte{'.'})
	h.Write(body)
	return h.Sum(nil)
}

// maxSignatures bounds the v1 values checked, so a hostile header cannot
// make Verify compute without end. Several are allowed so a sender can
// sign with an old and a new secret while they are rotated.
const maxSignatures = 8

// Verify checks header against body and secret, and that its timestamp is
// within tolerance of now (tolerance <= 0 means DefaultTolerance). The
// signature is checked first, so ErrExpired always concerns an authentic
// request. Errors wrap ErrNoSignature, ErrBadSignature or ErrExpired.
func Verify(secret []byte, header string, body []byte, now time.Time, tolerance time.Duration) error {
	if strings.TrimSpace(header) == "" {
		return ErrNoSignature
	}
	ts, unix, sigs, err := parseHeader(header)
	if err != nil {
		return err
	}
	want := mac(secret, ts, body)
	ok := false
	for _, s := range sigs {
		// hmac.Equal compares in constant time; no early exit either, so
		// timing does not tell which signature matched.
		if hmac.Equal(s, want) {
			ok = true
		}
	}
	if !ok {
		return fmt.Errorf("%w: no v1 signature matches", ErrBadSignature)
	}
	if tolerance <= 0 {
		tolerance = DefaultTolerance
	}
	// Compare times rather than subtract: a huge t must not overflow.
	at := time.Unix(unix, 0)
	if at.Before(now.Add(-tolerance)) || at.After(now.Add(tolerance)) {
		return fmt.Errorf("%w: t=%s, now %d", ErrExpired, ts, now.Unix())
	}
	return nil
}

// parseHeader splits "t=...,v1=...[,v1=...]"; unknown keys are skipped so
// later schemes can be added beside v1.
func parseHeader(header string) (ts string, unix int64, sigs [][]byte, err error) {
	bad := func(why string) (string, int64, [][]byte, error) {
		return "", 0, nil, fmt.Errorf("%w: %s", ErrBadSignature, why)
	}
	for part := range strings.SplitSeq(header, ",") {
		k, v, found := strings.Cut(strings.TrimSpace(part), "=")
		if !found {
			return bad("element without '='")
		}
		switch k {
		case "t":
			if ts != "" {
				return bad("more than one t")
			}
			if v == "" || len(v) > 19 || strings.Trim(v, "0123456789") != "" {
				return bad("t is not a unix time")
			}
			n, perr := strconv.ParseInt(v, 10, 64)
			if perr != nil {
				return bad("t is not a unix time")
			}
			ts, unix = v, n
		case "v1":
			if len(sigs) == maxSignatures {
				return bad("too many v1 signatures")
			}
			s, derr := hex.DecodeString(v)
			if derr != nil || len(s) != sha256.Size {
				return bad("v1 is not a hex HMAC-SHA256")
			}
			sigs = append(sigs, s)
		}
	}
	switch {
	case ts == "":
		return bad("no t")
	case len(sigs) == 0:
		return bad("no v1")
	}
	return ts, unix, sigs, nil
}

// ErrPermanent marks a failure that retrying will not fix (a 4xx answer,
// a message that cannot be decoded). Test with errors.Is.
var ErrPermanent = errors.New("permanent failure")

// Permanent marks err as permanent; its message is unchanged.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return permanentError{err}
}

type permanentError struct{ err error }

func (e permanentError) Error() string        { return e.err.Error() }
func (e permanentError) Unwrap() error        { return e.err }
func (e permanentError) Is(target error) bool { return target == ErrPermanent }

// StatusError is a non-2xx answer from the receiver.
type StatusError struct {
	Code   int
	Status string
}

func (e *StatusError) Error() string { return "webhook answered " + e.Status }

// DefaultTimeout bounds one POST when Sender.Timeout is zero.
const DefaultTimeout = 10 * time.Second

// defaultClient does not follow redirects: a receiver that moved must be
// reconfigured, not silently followed with a signed body.
var defaultClient = &http.Client{
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

// Sender POSTs signed JSON to one URL.
type Sender struct {
	URL    string
	Secret []byte
	// Client defaults to one that does not follow redirects.
	Client *http.Client
	// Timeout bounds one attempt (default DefaultTimeout).
	Timeout time.Duration
	// Now is the clock for the signature (default time.Now).
	Now func() time.Time
}

// Send posts body once. It returns nil on a 2xx answer; an error wrapping
// ErrPermanent on a 3xx, or a 4xx other than 408 and 429, or a request
// that cannot be built; any other error (408, 429, 5xx, network, timeout)
// is transient and worth retrying.
func (s *Sender) Send(ctx context.Context, body []byte) error {
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.URL, bytes.NewReader(body))
	if err != nil {
		return Permanent(fmt.Errorf("webhook request: %w", err))
	}
	now := time.Now
	if s.Now != nil {
		now = s.Now
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "inroute-webhook/1")
	req.Header.Set(Header, Sign(s.Secret, now(), body))
	client := s.Client
	if client == nil {
		client = defaultClient
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("webhook post: %w", err)
	}
	// Read a little of the body so the connection can be reused; the
	// answer itself means nothing to us.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	return classify(resp)
}

func classify(resp *http.Response) error {
	code := resp.StatusCode
	if code >= 200 && code <= 299 {
		return nil
	}
	err := &StatusError{Code: code, Status: resp.Status}
	switch {
	case code == http.StatusRequestTimeout, code == http.StatusTooManyRequests, code >= 500:
		return err
	default:
		return Permanent(err)
	}
}

// MaxBackoff caps Backoff.
const MaxBackoff = 5 * time.Minute

// Backoff is the wait before attempt+1 after attempt failed: 1s after the
// first, doubling, at most MaxBackoff.
func Backoff(attempt int) time.Duration {
	if attempt < 1 {
		attempt = 1
	}
	if attempt > 20 { // well past the cap; avoids shifting into overflow
		return MaxBackoff
	}
	return min(time.Second<<(attempt-1), MaxBackoff)
}

// Deliverer hands each message of a durable JetStream pull consumer to
// Deliver, one at a time, and settles it by the outcome:
//
//   - nil: Ack (waiting for the server's confirmation), then OnDelivered;
//   - transient error: NakWithDelay(Backoff(deliveries so far)), so other
//     messages are not held up while one waits;
//   - permanent error (errors.Is ErrPermanent), or a transient one on the
//     MaxAttempts-th delivery: Term, then OnGiveUp with the reason.
//
// The consumer must use explicit acks and no MaxDeliver (the Deliverer
// counts attempts itself, so that giving up is seen and reported), and its
// AckWait must exceed the longest Deliver.
type Deliverer struct {
	// Consumer, or JS + Stream + Config to create (or update) it in Run.
	Consumer jetstream.Consumer
	JS       jetstream.JetStream
	Stream   string
	Config   jetstream.ConsumerConfig

	// Deliver does the work for one message (a POST, a publish).
	Deliver func(ctx context.Context, m jetstream.Msg) error
	// MaxAttempts bounds deliveries of a message; 0 means no bound.
	MaxAttempts int
	// Backoff is the redelivery delay after a failed attempt (default
	// Backoff; tests pass a tiny one).
	Backoff func(attempt int) time.Duration
	// OnDelivered and OnGiveUp, if set, report the outcome (a delivery
	// event). They run with a context that outlives a stop by a little, so
	// the outcome of the message in hand is still reported.
	OnDelivered func(ctx context.Context, m jetstream.Msg)
	OnGiveUp    func(ctx context.Context, m jetstream.Msg, reason error)
	// PollWait is how long one fetch waits for a message; it bounds how
	// long Run takes to return after ctx ends (default 1s).
	PollWait time.Duration
	Log      *zap.Logger
}

// settleTimeout bounds the ack and the callbacks of the message in hand.
const settleTimeout = 10 * time.Second

// Run delivers until ctx ends and returns nil then; it returns an error
// at once only when the Deliverer is misconfigured. A bus that is down,
// at start or later, is waited for.
func (d *Deliverer) Run(ctx context.Context) error {
	if err := d.check(); err != nil {
		return err
	}
	d.defaults()
	cons := d.consumer(ctx)
	failing := false
	for ctx.Err() == nil {
		m, err := d.next(cons)
		if err != nil {
			if !failing {
				d.Log.Warn("webhook deliverer: fetch failing", zap.Error(err))
			}
			failing = true
			sleep(ctx, d.PollWait)
			continue
		}
		if failing {
			d.Log.Info("webhook deliverer: fetching again")
			failing = false
		}
		if m != nil {
			d.handle(ctx, m)
		}
	}
	return nil
}

func (d *Deliverer) check() error {
	switch {
	case d.Deliver == nil:
		return errors.New("webhook deliverer: Deliver is nil")
	case d.Consumer == nil && (d.JS == nil || d.Stream == ""):
		return errors.New("webhook deliverer: needs Consumer, or JS and Stream")
	}
	return nil
}

func (d *Deliverer) defaults() {
	if d.Backoff == nil {
		d.Backoff = Backoff
	}
	if d.PollWait <= 0 {
		d.PollWait = time.Second
	}
	if d.Log == nil {
		d.Log = zap.NewNop()
	}
}

// consumer returns the consumer, creating it (retrying while the bus is
// unavailable); nil only once ctx has ended.
func (d *Deliverer) consumer(ctx context.Context) jetstream.Consumer {
	if d.Consumer != nil {
		return d.Consumer
	}
	logged := false
	for ctx.Err() == nil {
		c, err := d.JS.CreateOrUpdateConsumer(ctx, d.Stream, d.Config)
		if err == nil {
			return c
		}
		if !logged {
			d.Log.Warn("webhook deliverer: cannot create consumer; retrying",
				zap.String("stream", d.Stream), zap.String("consumer", d.Config.Durable), zap.Error(err))
			logged = true
		}
		sleep(ctx, d.PollWait)
	}
	return nil
}

// next fetches one message, or nil when none came within PollWait. It
// fetches rather than keeping a background pull open, so no message is
// left handed out to this process when Run returns.
func (d *Deliverer) next(cons jetstream.Consumer) (jetstream.Msg, error) {
	if cons == nil {
		return nil, nil // ctx ended while creating it
	}
	batch, err := cons.Fetch(1, jetstream.FetchMaxWait(d.PollWait))
	if err != nil {
		return nil, fmt.Errorf("fetch: %w", err)
	}
	var m jetstream.Msg
	for got := range batch.Messages() {
		m = got
	}
	if err := batch.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, context.DeadlineExceeded) {
		return m, fmt.Errorf("fetch: %w", err)
	}
	return m, nil
}

func (d *Deliverer) handle(ctx context.Context, m jetstream.Msg) {
	attempt := 1
	if md, err := m.Metadata(); err == nil {
		attempt = int(md.NumDelivered)
	}
	err := d.Deliver(ctx, m)
	settle, cancel := context.WithTimeout(context.WithoutCancel(ctx), settleTimeout)
	defer cancel()
	log := d.Log.With(zap.String("subject", m.Subject()), zap.Int("attempt", attempt))
	switch {
	case err == nil:
		// A lost ack means a second delivery; wait for the confirmation so
		// that happens only when the bus really failed.
		if aerr := m.DoubleAck(settle); aerr != nil {
			log.Warn("webhook deliverer: ack not confirmed; the message may be delivered again", zap.Error(aerr))
		}
		if d.OnDelivered != nil {
			d.OnDelivered(settle, m)
		}
	case ctx.Err() != nil:
		// Stopping interrupted the attempt: hand the message back now
		// rather than after the ack wait.
		_ = m.Nak()
	case errors.Is(err, ErrPermanent), d.MaxAttempts > 0 && attempt >= d.MaxAttempts:
		log.Warn("webhook deliverer: giving up", zap.Bool("permanent", errors.Is(err, ErrPermanent)), zap.Error(err))
		if terr := m.Term(); terr != nil {
			log.Warn("webhook deliverer: term not sent", zap.Error(terr))
		}
		if d.OnGiveUp != nil {
			d.OnGiveUp(settle, m, err)
		}
	default:
		delay := d.Backoff(attempt)
		log.Info("webhook deliverer: will retry", zap.Duration("in", delay), zap.Error(err))
		if nerr := m.NakWithDelay(delay); nerr != nil {
			log.Warn("webhook deliverer: nak not sent; redelivery after the ack wait", zap.Error(nerr))
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
	case <-t.C:
	}
}
