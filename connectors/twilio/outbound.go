package twilio

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/webhook"
	"github.com/nats-io/nats.go/jetstream"
	"github.com/twilio/twilio-go/client"
	openapi "github.com/twilio/twilio-go/rest/api/v2010"
	"go.uber.org/zap"
)

// BucketSent is the KV bucket that remembers, per reply id, the Twilio SID
// (MessageSid or CallSid) created for it. It is what makes a reply go out
// once even when it reaches the connector twice: a redelivery after a
// crash between the create and the ack, or a republish after the OUTBOUND
// duplicate window.
const BucketSent = "TWILIO_SENT"

const (
	// sentTTL is how long BucketSent remembers a reply; a republish of a
	// reply later than this is not expected.
	sentTTL = 30 * 24 * time.Hour
	// outboundAckWait is how long a reply may stay unacknowledged before
	// JetStream hands it to another process. It covers the wait in a
	// sender's queue (at most senderQueueLen messages at the sender's
	// rate; the worker also signals progress when it takes a reply) and
	// one REST call (opt.HTTPClient's timeout).
	outboundAckWait = 5 * time.Minute
	// outboundMaxAttempts bounds the deliveries of one reply: after that
	// many transient failures it is reported failed.
	outboundMaxAttempts = 12
	// senderQueueLen bounds the replies waiting for one sender number; a
	// reply that finds it full goes back to JetStream for a while, so a
	// busy number never holds up the others.
	senderQueueLen = 32
	fetchBatch     = 16
	fetchWait      = time.Second
	// maxRetryAfter caps the wait a Retry-After header can impose.
	maxRetryAfter = webhook.MaxBackoff
	// bookkeepingTimeout bounds the KV put, ack and report after a send;
	// they run even while the connector stops, so that a reply that went
	// out is recorded as such.
	bookkeepingTimeout = 10 * time.Second
	// maxSlotWait is the longest a worker sleeps for its sender's next
	// slot (after a 429's Retry-After); a longer wait goes back to
	// JetStream as a delayed redelivery, so the reply's AckWait cannot
	// run out while it waits here.
	maxSlotWait   = 10 * time.Second
	defaultAPIURL = "https://api.twilio.com"
	// unknownSID is recorded when Twilio created something whose SID
	// could not be read: enough to never send it again.
	unknownSID = "unknown"
)

// Delivery details the connector reports in its own words.
const (
	detailOptedOut = "recipient opted out (STOP); they can text START"
	// codeOptedOut is Twilio's "Attempt to send to unsubscribed
	// recipient": the number texted STOP to us through Twilio.
	codeOptedOut = 21610
	// codeTooManyRequests is Twilio's own "Too Many Requests" code, which
	// may come with a 429 (or, on some APIs, another status).
	codeTooManyRequests = 20429
)

// job is one reply on its way through a sender's queue.
type job struct {
	m    jetstream.Msg
	o    *message.Outbound
	ch   message.Channel
	from string
}

// outboundRun is the state of one runOutbound: the sent-bucket and one
// worker per sender number, created on first use and owned by ctx.
type outboundRun struct {
	c        *Connector
	kv       jetstream.KeyValue
	log      *zap.Logger
	interval time.Duration

	mu      sync.Mutex
	senders map[string]chan job
	wg      sync.WaitGroup
	// failures counts each reply's failed sends in this process: the
	// delivery count also grows with the connector's own pacing delays
	// (a full queue, a send slot), which must not use up the attempts.
	failures map[string]int
}

// failed counts a failed send of reply id and returns the count.
func (r *outboundRun) failed(id string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.failures == nil {
		r.failures = map[string]int{}
	}
	r.failures[id]++
	return r.failures[id]
}

func (r *outboundRun) forget(id string) {
	r.mu.Lock()
	delete(r.failures, id)
	r.mu.Unlock()
}

// runOutbound sends the replies on outbound.sms (Messages API) and the
// call-backs on outbound.voice (Calls API) until ctx ends. Each reply is
// acked only once its outcome is recorded: sent (SID in BucketSent, then
// ack, then a "sent" report) or failed (Term, then a "failed" report).
func (c *Connector) runOutbound(ctx context.Context) error {
	kv, cons, ok := c.setupOutboundWithRetry(ctx)
	if !ok {
		return nil
	}
	r := &outboundRun{c: c, kv: kv, log: c.log.Named("outbound"), senders: map[string]chan job{},
		interval: time.Duration(float64(time.Second) / c.opt.MessagesPerSecond)}
	var wg sync.WaitGroup
	for ch, co := range cons {
		wg.Go(func() { r.fetch(ctx, ch, co) })
	}
	wg.Wait()
	r.wg.Wait()
	return nil
}

// setupOutboundWithRetry creates the bucket and the two consumers, waiting
// for the bus if it is not reachable yet.
func (c *Connector) setupOutboundWithRetry(ctx context.Context) (jetstream.KeyValue, map[message.Channel]jetstream.Consumer, bool) {
	logged := false
	for {
		kv, cons, err := c.setupOutbound(ctx)
		if err == nil {
			if logged {
				c.log.Info("twilio outbound ready")
			}
			return kv, cons, true
		}
		if ctx.Err() != nil {
			return nil, nil, false
		}
		if !logged {
			c.log.Warn("twilio outbound not ready; retrying", zap.Error(err))
			logged = true
		}
		select {
		case <-ctx.Done():
			return nil, nil, false
		case <-time.After(fetchWait):
		}
	}
}

func (c *Connector) setupOutbound(ctx context.Context) (jetstream.KeyValue, map[message.Channel]jetstream.Consumer, error) {
	kv, err := c.b.JS.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket: BucketSent, Description: "Twilio SID created per reply id, so a reply is sent once",
		History: 1, TTL: sentTTL,
	})
	if err != nil {
		return nil, nil, fmt.Errorf("bucket %s: %w", BucketSent, err)
	}
	cons := map[message.Channel]jetstream.Consumer{}
	for _, ch := range []message.Channel{message.SMS, message.Voice} {
		co, err := c.outboundConsumer(ctx, ch)
		if err != nil {
			return nil, nil, err
		}
		cons[ch] = co
	}
	return kv, cons, nil
}

// outboundConsumer creates (or updates) the durable consumer of a channel.
func (c *Connector) outboundConsumer(ctx context.Context, ch message.Channel) (jetstream.Consumer, error) {
	co, err := c.b.JS.CreateOrUpdateConsumer(ctx, bus.StreamOutbound, jetstream.ConsumerConfig{
		Durable:       bus.ConsumerOutbound(ch),
		Description:   "twilio connector: replies (sms) and call-backs (voice)",
		FilterSubject: bus.OutboundSubject(ch),
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       outboundAckWait,
		// No MaxDeliver: attempts are counted here, so that giving up is
		// seen and reported as a failed delivery.
		MaxAckPending: 1000,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	})
	if err != nil {
		return nil, fmt.Errorf("consumer %s: %w", bus.ConsumerOutbound(ch), err)
	}
	return co, nil
}

// fetch pulls replies of one channel and hands each to its sender's queue.
func (r *outboundRun) fetch(ctx context.Context, ch message.Channel, co jetstream.Consumer) {
	failing := false
	for ctx.Err() == nil {
		batch, err := co.Fetch(fetchBatch, jetstream.FetchMaxWait(fetchWait))
		if err == nil {
			for m := range batch.Messages() {
				r.dispatch(ctx, ch, m)
			}
			err = batch.Error()
		}
		if err == nil || errors.Is(err, jetstream.ErrNoMessages) || errors.Is(err, context.DeadlineExceeded) {
			if failing {
				r.log.Info("outbound fetch recovered", zap.String("channel", string(ch)))
				failing = false
			}
			continue
		}
		if ctx.Err() != nil {
			return
		}
		if !failing {
			r.log.Warn("outbound fetch failing; retrying", zap.String("channel", string(ch)), zap.Error(err))
			failing = true
		}
		if errors.Is(err, jetstream.ErrConsumerNotFound) {
			// Removed under us (a stream reset): put it back.
			if nco, cerr := r.c.outboundConsumer(ctx, ch); cerr == nil {
				co = nco
			}
		}
		select {
		case <-ctx.Done():
		case <-time.After(fetchWait):
		}
	}
}

// dispatch decodes a reply, picks its sender number and queues it there.
func (r *outboundRun) dispatch(ctx context.Context, ch message.Channel, m jetstream.Msg) {
	if ctx.Err() != nil {
		// Stopping: the workers may be gone; hand it back now.
		_ = m.Nak()
		return
	}
	o, err := message.DecodeOutbound(m.Data())
	if err != nil {
		// No id to report on; Term so it cannot come back forever.
		r.log.Error("undecodable outbound message dropped", zap.String("subject", m.Subject()), zap.Error(err))
		_ = m.Term()
		return
	}
	from, err := r.c.senderOf(o)
	if err != nil {
		r.fail(ctx, job{m: m, o: o, ch: ch}, err.Error())
		return
	}
	j := job{m: m, o: o, ch: ch, from: from}
	select {
	case r.queue(ctx, from) <- j:
	default:
		// The sender is saturated: let JetStream hold the reply rather
		// than block the fetch loop (and every other sender with it).
		_ = m.NakWithDelay(time.Duration(senderQueueLen) * r.interval)
	}
}

// senderOf is the number a reply goes from: the one the customer wrote to
// when it is ours, else the first configured.
func (c *Connector) senderOf(o *message.Outbound) (string, error) {
	if len(c.opt.Numbers) == 0 {
		return "", errors.New("no Twilio sender number configured (twilio numbers)")
	}
	for _, n := range c.opt.Numbers {
		if o.From != "" && n == o.From {
			return n, nil
		}
	}
	return c.opt.Numbers[0], nil
}

// queue returns the queue of a sender number, starting its worker.
func (r *outboundRun) queue(ctx context.Context, from string) chan job {
	r.mu.Lock()
	defer r.mu.Unlock()
	q, ok := r.senders[from]
	if !ok {
		q = make(chan job, senderQueueLen)
		r.senders[from] = q
		r.wg.Go(func() { r.work(ctx, q) })
	}
	return q
}

// work sends one sender's replies in order, no faster than
// MessagesPerSecond (a token bucket of one token: each REST create waits
// for the previous one's slot plus the interval).
func (r *outboundRun) work(ctx context.Context, q chan job) {
	var next time.Time
	for {
		select {
		case <-ctx.Done():
			// Hand back what waits here so another process takes it now
			// rather than after AckWait.
			for {
				select {
				case j := <-q:
					_ = j.m.Nak()
				default:
					return
				}
			}
		case j := <-q:
			// Restart AckWait: the wait in the queue does not count.
			_ = j.m.InProgress()
			r.handle(ctx, j, &next)
		}
	}
}

// handle takes one reply to its outcome.
func (r *outboundRun) handle(ctx context.Context, j job, next *time.Time) {
	o := j.o
	log := r.log.With(zap.String("message_id", o.ID), zap.String("channel", string(j.ch)), zap.String("from", j.from))
	sid, err := r.sentSID(ctx, o.ID)
	if err != nil {
		r.retry(ctx, j, nil, err)
		return
	}
	if sid != "" {
		log.Info("reply already sent; not sending again", zap.String("sid", sid))
		r.sent(ctx, j, sid)
		return
	}
	if j.ch == message.Voice {
		if err := checkCallback(o); err != nil {
			r.fail(ctx, j, err.Error())
			return
		}
	}
	wait := time.Until(*next)
	if wait > maxSlotWait {
		_ = j.m.NakWithDelay(wait)
		return
	}
	if wait > 0 {
		select {
		case <-ctx.Done():
			_ = j.m.Nak()
			return
		case <-time.After(wait):
		}
	}
	if j.ch != message.Voice {
		// Checked after the wait for the send slot, so a STOP that came
		// in meanwhile is honoured. An SMS opt-out does not cover calls
		// (Twilio blocks messages, not calls, after STOP).
		out, err := r.c.optOuts.Out(ctx, o.To)
		if err != nil {
			r.retry(ctx, j, nil, err)
			return
		}
		if out {
			log.Info("reply not sent: recipient opted out")
			r.fail(ctx, j, detailOptedOut)
			return
		}
	}
	*next = time.Now().Add(r.interval)

	rec := &lastResponse{}
	api, err := r.c.api(rec)
	if err != nil {
		r.fail(ctx, j, err.Error())
		return
	}
	if j.ch == message.Voice {
		sid, err = r.c.createCall(api, o, j.from)
	} else {
		sid, err = r.c.createMessage(api, o, j.from)
	}
	if err != nil && rec.status >= 200 && rec.status < 300 {
		// Twilio created it but its answer could not be read: sending
		// again would send twice, so record it as sent without a SID.
		log.Warn("twilio created the resource but its answer was unreadable", zap.Error(err))
		sid, err = unknownSID, nil
	}
	if err != nil {
		te := classify(err, rec)
		if te.retryAfter > 0 && rec.status == http.StatusTooManyRequests {
			// Twilio asked this account to slow down: the sender's
			// following replies wait too.
			*next = time.Now().Add(te.retryAfter)
		}
		if te.permanent {
			if te.code == codeOptedOut {
				if err := r.c.optOuts.Set(ctx, o.To, true); err != nil {
					log.Warn("opt-out not recorded", zap.Error(err))
				}
			}
			log.Warn("twilio refused the reply", zap.Int("status", rec.status), zap.Int("code", te.code))
			r.fail(ctx, j, te.detail)
			return
		}
		r.retry(ctx, j, te, err)
		return
	}
	log.Info("reply sent", zap.String("sid", sid))
	r.record(ctx, j, sid)
	r.sent(ctx, j, sid)
}

// createMessage sends an SMS/MMS. Attachments with an http(s) URL go as
// MediaUrl; blob references ("sha256:...") name inroute's private store,
// which Twilio cannot fetch, so they are named in the body instead.
func (c *Connector) createMessage(api *openapi.ApiService, o *message.Outbound, from string) (string, error) {
	body, media := messageContent(o)
	p := &openapi.CreateMessageParams{}
	p.SetFrom(from).SetTo(o.To).SetBody(body)
	if cb := c.statusCallback(o.ID); cb != "" {
		p.SetStatusCallback(cb)
	}
	if len(media) > 0 {
		p.SetMediaUrl(media)
	}
	m, err := api.CreateMessage(p)
	if err != nil {
		return "", fmt.Errorf("create message: %w", err)
	}
	if m == nil || m.Sid == nil {
		return unknownSID, nil
	}
	return *m.Sid, nil
}

func messageContent(o *message.Outbound) (string, []string) {
	body := o.Text
	var media []string
	for _, a := range o.Attachments {
		if strings.HasPrefix(a.URL, "https://") || strings.HasPrefix(a.URL, "http://") {
			media = append(media, a.URL)
			continue
		}
		name := a.Name
		if name == "" {
			name = "file"
		}
		if body != "" {
			body += "\n"
		}
		body += "(attachment: " + name + ")"
	}
	return body, media
}

// statusCallback is where Twilio reports on what was created; the reply
// id in the query ties the report to the reply. Without a PublicURL there
// is none (Twilio refuses a relative callback URL).
func (c *Connector) statusCallback(id string) string {
	if c.opt.PublicURL == "" {
		return ""
	}
	return strings.TrimRight(c.opt.PublicURL, "/") + PathStatus + "?" + ParamReply + "=" + url.QueryEscape(id)
}

// sentSID is the SID recorded for a reply, "" if none.
func (r *outboundRun) sentSID(ctx context.Context, id string) (string, error) {
	e, err := r.kv.Get(ctx, sentKey(id))
	switch {
	case err == nil:
		return string(e.Value()), nil
	case errors.Is(err, jetstream.ErrKeyNotFound):
		return "", nil
	default:
		return "", fmt.Errorf("sent-bucket lookup of %s: %w", id, err)
	}
}

// record puts the SID before the reply is acked. It insists (until ctx
// and a grace period end): a reply acked or redelivered without it would
// be sent twice.
func (r *outboundRun) record(ctx context.Context, j job, sid string) {
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	for attempt := 1; ; attempt++ {
		_, err := r.kv.PutString(bctx, sentKey(j.o.ID), sid)
		if err == nil {
			return
		}
		if bctx.Err() != nil {
			r.log.Error("sent reply not recorded; a redelivery would send it again",
				zap.String("message_id", j.o.ID), zap.String("sid", sid), zap.Error(err))
			return
		}
		_ = j.m.InProgress()
		select {
		case <-bctx.Done():
		case <-time.After(min(webhook.Backoff(attempt), time.Second)):
		}
	}
}

var validKey = regexp.MustCompile(`^[-/_=.a-zA-Z0-9]+$`)

// sentKey is the bucket key of a reply id; ids that are not valid KV keys
// are hex-encoded (with a prefix no valid id has).
func sentKey(id string) string {
	if validKey.MatchString(id) && !strings.HasPrefix(id, ".") && !strings.HasSuffix(id, ".") && !strings.HasPrefix(id, "_x") {
		return id
	}
	return "_x" + hex.EncodeToString([]byte(id))
}

// sent acks a reply and reports it sent.
func (r *outboundRun) sent(ctx context.Context, j job, sid string) {
	r.forget(j.o.ID)
	bctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), bookkeepingTimeout)
	defer cancel()
	if sid == unknownSID {
		sid = ""
	}
	// The report first: if it cannot be published, the reply comes back
	// (its SID is recorded, so it is only reported again, not resent).
	if err := r.report(bctx, j, message.DeliverySent, "", sid); err != nil {
		_ = j.m.NakWithDelay(time.Second)
		return
	}
	if err := j.m.DoubleAck(bctx); err != nil {
		r.log.Warn("ack of a sent reply failed", zap.String("message_id", j.o.ID), zap.Error(err))
	}
}

// fail reports a reply failed, then terminates it; a report that cannot
// be published leaves the reply to come back and fail again.
func (r *outboundRun) fail(ctx context.Context, j job, detail string) {
	r.forget(j.o.ID)
	if err := r.report(context.WithoutCancel(ctx), j, message.DeliveryFailed, detail, ""); err != nil {
		_ = j.m.NakWithDelay(time.Second)
		return
	}
	_ = j.m.Term()
}

// retry hands a reply back to JetStream after a transient failure, or
// gives up on it after outboundMaxAttempts deliveries.
func (r *outboundRun) retry(ctx context.Context, j job, te *twilioError, err error) {
	attempt := r.failed(j.o.ID)
	deliveries := 1
	if md, mdErr := j.m.Metadata(); mdErr == nil {
		deliveries = int(md.NumDelivered)
	}
	log := r.log.With(zap.String("message_id", j.o.ID), zap.Int("attempt", attempt), zap.Error(err))
	// Real failures count; deliveries bound a reply whose failures this
	// process cannot remember (it restarted), far above any pacing.
	if attempt >= outboundMaxAttempts || deliveries >= 20*outboundMaxAttempts {
		r.forget(j.o.ID)
		detail := err.Error()
		if te != nil {
			detail = te.detail
		}
		log.Error("reply given up")
		r.fail(ctx, j, fmt.Sprintf("gave up after %d attempts: %s", attempt, detail))
		return
	}
	delay := webhook.Backoff(attempt)
	if te != nil && te.retryAfter > 0 {
		delay = te.retryAfter
	}
	log.Warn("reply not sent; will retry", zap.Duration("delay", delay))
	_ = j.m.NakWithDelay(delay)
}

// report publishes a delivery report; its Nats-Msg-Id status:id drops
// repeats within the duplicate window, and the store keeps the furthest
// status of later ones.
func (r *outboundRun) report(ctx context.Context, j job, status, detail, sid string) error {
	d := message.Delivery{V: message.OutboundVersion, MessageID: j.o.ID, ConversationID: j.o.ConversationID,
		Channel: j.ch, Status: status, Detail: detail, ChannelMessageID: sid, At: r.c.opt.Now().UTC()}
	data, err := json.Marshal(d)
	if err != nil {
		r.log.Error("encode delivery report", zap.String("message_id", j.o.ID), zap.Error(err))
		return nil // cannot get better by trying again
	}
	if _, err := r.c.b.Publish(ctx, bus.DeliverySubject(j.ch), data, status+":"+j.o.ID, nil); err != nil {
		r.log.Warn("delivery report not published", zap.String("message_id", j.o.ID), zap.String("status", status), zap.Error(err))
		return err
	}
	return nil
}

// twilioError is a failed REST call, classified.
type twilioError struct {
	// permanent: sending again cannot help (a 4xx other than 429).
	permanent bool
	code      int
	detail    string
	// retryAfter is the Retry-After Twilio sent (0: none).
	retryAfter time.Duration
}

// classify reads a twilio-go error with the HTTP answer rec saw: 429, 5xx
// and no answer at all (network) are transient; other 4xx are permanent.
func classify(err error, rec *lastResponse) *twilioError {
	te := &twilioError{detail: err.Error()}
	status := rec.status
	var rest *client.TwilioRestError
	if errors.As(err, &rest) {
		te.code = rest.Code
		if status == 0 {
			status = rest.Status
		}
		if rest.Code != 0 {
			te.detail = fmt.Sprintf("Twilio error %d: %s", rest.Code, rest.Message)
		} else {
			te.detail = fmt.Sprintf("Twilio HTTP %d: %s", status, rest.Message)
		}
	} else if status != 0 {
		te.detail = fmt.Sprintf("Twilio HTTP %d: %v", status, err)
	}
	if s := rec.retryAfter; s != "" {
		if n, perr := strconv.Atoi(strings.TrimSpace(s)); perr == nil && n >= 0 {
			te.retryAfter = min(time.Duration(n)*time.Second, maxRetryAfter)
		} else if t, perr := http.ParseTime(s); perr == nil {
			te.retryAfter = min(max(time.Until(t), 0), maxRetryAfter)
		}
	}
	te.permanent = status >= 400 && status < 500 && status != http.StatusTooManyRequests && te.code != codeTooManyRequests
	return te
}

// lastResponse is an http.RoundTripper that remembers the status and
// Retry-After of the answer it passed on: twilio-go's errors carry
// neither reliably (TwilioRestError.Status is what the body says).
// One is made per REST call, so it needs no lock.
type lastResponse struct {
	next       http.RoundTripper
	status     int
	retryAfter string
}

func (l *lastResponse) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := l.next.RoundTrip(req)
	if err == nil {
		l.status = resp.StatusCode
		l.retryAfter = resp.Header.Get("Retry-After")
	}
	return resp, err
}

// api is the twilio-go Api (2010) service for one REST call, sending
// through opt.HTTPClient with rec watching the answer, to opt.APIURL.
//
// twilio-go builds every URL on the fixed https://api.twilio.com; the
// BaseClient given to it (baseURLClient) rewrites scheme, host and path
// prefix to opt.APIURL, so tests and proxies get the real library's
// requests and error decoding, against another server.
func (c *Connector) api(rec *lastResponse) (*openapi.ApiService, error) {
	var base *url.URL
	if c.opt.APIURL != "" && strings.TrimRight(c.opt.APIURL, "/") != defaultAPIURL {
		u, err := url.Parse(c.opt.APIURL)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, fmt.Errorf("twilio api_url %q is not an absolute URL", c.opt.APIURL)
		}
		base = u
	}
	hc := *c.opt.HTTPClient
	rec.next = hc.Transport
	if rec.next == nil {
		rec.next = http.DefaultTransport
	}
	hc.Transport = rec
	cl := &client.Client{Credentials: client.NewCredentials(c.opt.AccountSID, c.opt.AuthToken), HTTPClient: &hc}
	cl.SetAccountSid(c.opt.AccountSID)
	return openapi.NewApiServiceWithClient(&baseURLClient{Client: cl, base: base}), nil
}

// baseURLClient is a twilio-go client.BaseClient sending to base instead of
// Twilio's host (nil base: unchanged).
type baseURLClient struct {
	*client.Client
	base *url.URL
}

var _ client.BaseClient = (*baseURLClient)(nil)

// SendRequest implements client.BaseClient.
func (b *baseURLClient) SendRequest(method, rawURL string, data url.Values, headers map[string]any, body ...byte) (*http.Response, error) {
	if b.base != nil {
		u, err := url.Parse(rawURL)
		if err != nil {
			return nil, fmt.Errorf("twilio url %q: %w", rawURL, err)
		}
		u.Scheme, u.Host = b.base.Scheme, b.base.Host
		u.Path = strings.TrimRight(b.base.Path, "/") + u.Path
		rawURL = u.String()
	}
	return b.Client.SendRequest(method, rawURL, data, headers, body...)
}
