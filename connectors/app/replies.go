package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"time"

	"github.com/inroute/inroute/api"
	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/webhook"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// RepliesPath is where the app backend reads the replies to its users.
const RepliesPath = "/v1/channels/app/replies"

// Limits of one read of the feed.
const (
	DefaultRepliesLimit = 100
	MaxRepliesLimit     = 500
)

// Reply is one reply in the feed: what the feed stream stores, what GET
// returns and what the webhook receives.
type Reply struct {
	ID             string               `json:"id"`
	ConversationID int64                `json:"conversation_id"`
	User           string               `json:"user"`
	Text           string               `json:"text"`
	HTML           string               `json:"html,omitempty"`
	Attachments    []message.Attachment `json:"attachments"`
	Auto           bool                 `json:"auto"`
	Agent          string               `json:"agent"`
	CreatedAt      time.Time            `json:"created_at"`
	// Cursor is the reply's feed sequence; it is not stored, but set on
	// every read. Pass it as after= to read on from this reply.
	Cursor string `json:"cursor,omitempty"`
}

// RepliesResponse is the body of GET RepliesPath.
type RepliesResponse struct {
	Replies []Reply `json:"replies"`
	// Next is the cursor to pass as after= next time.
	Next string `json:"next"`
}

func replyOf(o *message.Outbound) Reply {
	atts := o.Attachments
	if atts == nil {
		atts = []message.Attachment{} // the documented shape is a list, never null
	}
	return Reply{ID: o.ID, ConversationID: o.ConversationID, User: o.To, Text: o.Text, HTML: o.HTML,
		Attachments: atts, Auto: o.Auto, Agent: o.Agent, CreatedAt: o.CreatedAt}
}

// FeedStreamConfig is the reply feed: replies kept for ReplyRetention
// whether or not they were read, one subject per app and user so a read
// touches only that user's replies.
func FeedStreamConfig(o Options) jetstream.StreamConfig {
	o.setReplyDefaults()
	return jetstream.StreamConfig{
		Name:        bus.StreamAppReplies,
		Description: "replies to in-app users, read by the app backends",
		Subjects:    []string{bus.SubjectsAppReplies},
		Retention:   jetstream.LimitsPolicy,
		MaxAge:      o.ReplyRetention,
		Storage:     jetstream.FileStorage,
		Replicas:    o.Replicas,
		Duplicates:  o.DuplicateWindow,
		// Reads are direct gets by subject: cheap, and served by any replica.
		AllowDirect: true,
	}
}

func (c *Connector) setFeed(st jetstream.Stream) {
	c.feedMu.Lock()
	defer c.feedMu.Unlock()
	c.feed = st
}

// feedStream returns the feed stream, looking it up if Run has not set it
// up yet (another process may have).
func (c *Connector) feedStream(ctx context.Context) (jetstream.Stream, error) {
	c.feedMu.Lock()
	st := c.feed
	c.feedMu.Unlock()
	if st != nil {
		return st, nil
	}
	st, err := c.bus.JS.Stream(ctx, bus.StreamAppReplies)
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", bus.StreamAppReplies, err)
	}
	c.setFeed(st)
	return st, nil
}

// feedQuery is a parsed GET RepliesPath.
type feedQuery struct {
	user  string
	after uint64
	limit int
}

func parseFeedQuery(r *http.Request) (feedQuery, error) {
	v := r.URL.Query()
	q := feedQuery{user: v.Get("user"), limit: DefaultRepliesLimit}
	if q.user == "" {
		return q, errors.New("user is required")
	}
	if s := v.Get("after"); s != "" {
		n, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			return q, fmt.Errorf("after %q is not a cursor from this feed", s)
		}
		q.after = n
	}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxRepliesLimit {
			return q, fmt.Errorf("limit %q is not a number from 1 to %d", s, MaxRepliesLimit)
		}
		q.limit = n
	}
	return q, nil
}

func (c *Connector) handleReplies(w http.ResponseWriter, r *http.Request) {
	appName, ok := c.authenticate(w, r)
	if !ok {
		return
	}
	q, err := parseFeedQuery(r)
	if err != nil {
		api.WriteError(w, http.StatusBadRequest, api.CodeInvalidMessage, err.Error())
		return
	}
	replies, err := c.readFeed(r.Context(), appName, q)
	if err != nil {
		c.log.Warn("app reply feed not readable", zap.String("app", appName), zap.Error(err))
		w.Header().Set("Retry-After", strconv.Itoa(int(c.opt.RetryAfter.Seconds())))
		api.WriteError(w, http.StatusServiceUnavailable, api.CodeUnavailable, "the reply feed is unavailable; retry later with the same cursor")
		return
	}
	c.reportRead(r.Context(), replies)
	next := strconv.FormatUint(q.after, 10)
	if len(replies) > 0 {
		next = replies[len(replies)-1].Cursor
	}
	api.WriteJSON(w, http.StatusOK, RepliesResponse{Replies: replies, Next: next})
}

// readFeed returns up to q.limit replies to one user after the cursor, in
// feed order. Each step asks the stream for the next message on the user's
// subject, which the server answers from its subject index: the cost
// follows the user's replies, not the size of the feed.
func (c *Connector) readFeed(ctx context.Context, app string, q feedQuery) ([]Reply, error) {
	out := []Reply{}
	if q.after == math.MaxUint64 {
		return out, nil
	}
	st, err := c.feedStream(ctx)
	if err != nil {
		return nil, err
	}
	subject := bus.AppReplySubject(app, q.user)
	for seq := q.after + 1; len(out) < q.limit; {
		raw, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("read %s from %d: %w", subject, seq, err)
		}
		seq = raw.Sequence + 1
		var rep Reply
		if err := json.Unmarshal(raw.Data, &rep); err != nil {
			// Only this connector writes the feed; skip rather than block
			// the user's feed forever.
			c.log.Error("undecodable feed entry skipped", zap.Uint64("seq", raw.Sequence), zap.Error(err))
			continue
		}
		rep.Cursor = strconv.FormatUint(raw.Sequence, 10)
		out = append(out, rep)
		if raw.Sequence == math.MaxUint64 {
			break
		}
	}
	return out, nil
}

// reportRead reports the replies the app has just read as delivered. The
// publishes go out together and are awaited together; a report that fails
// is logged and the read still succeeds, since the app has the replies.
func (c *Connector) reportRead(ctx context.Context, replies []Reply) {
	if len(replies) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	futures := make([]jetstream.PubAckFuture, 0, len(replies))
	for _, rep := range replies {
		data, err := json.Marshal(c.delivery(rep.ID, rep.ConversationID, message.DeliveryDelivered, ""))
		if err != nil {
			continue
		}
		msg := &nats.Msg{Subject: bus.DeliverySubject(message.App), Data: data}
		f, err := c.bus.JS.PublishMsgAsync(msg, jetstream.WithMsgID(message.DeliveryDelivered+":"+rep.ID))
		if err != nil {
			c.log.Warn("delivered report not published", zap.String("message_id", rep.ID), zap.Error(err))
			continue
		}
		futures = append(futures, f)
	}
	for _, f := range futures {
		select {
		case <-f.Ok():
		case err := <-f.Err():
			c.log.Warn("delivered report not published", zap.String("subject", f.Msg().Subject), zap.Error(err))
		case <-ctx.Done():
			c.log.Warn("delivered reports not confirmed", zap.Error(ctx.Err()))
			return
		}
	}
}

func (c *Connector) webhookConsumerConfig(app string) jetstream.ConsumerConfig {
	return jetstream.ConsumerConfig{
		Durable:       bus.ConsumerAppWebhook(app),
		Description:   "posts the replies of app " + app + " to its webhook",
		FilterSubject: bus.AppRepliesFilter(app),
		AckPolicy:     jetstream.AckExplicitPolicy,
		// Longer than one POST, so a slow receiver is not sent a second
		// copy while the first is still in flight.
		AckWait:       c.opt.WebhookTimeout + 20*time.Second,
		MaxAckPending: maxAckPending,
		// A webhook added later gets the replies from then on; the older
		// ones are in the feed.
		DeliverPolicy: jetstream.DeliverNewPolicy,
	}
}

// webhookDeliverer posts an app's replies to its webhook, signed with its
// secret, retrying with backoff up to MaxAttempts. The reply stays in the
// feed either way: a webhook that gave up (or was never reached) loses
// nothing, the app can still read the reply with GET RepliesPath.
func (c *Connector) webhookDeliverer(app string, cons jetstream.Consumer) *webhook.Deliverer {
	wh := c.opt.Webhooks[app]
	attempts := wh.MaxAttempts
	if attempts <= 0 {
		attempts = defaultWebhookAttempts
	}
	sender := &webhook.Sender{URL: wh.URL, Secret: []byte(wh.Secret), Timeout: c.opt.WebhookTimeout, Now: c.opt.Now}
	log := c.log.Named("webhook").With(zap.String("app", app))
	return &webhook.Deliverer{
		Consumer:    cons,
		Deliver:     func(ctx context.Context, m jetstream.Msg) error { return c.postReply(ctx, sender, m) },
		MaxAttempts: attempts,
		Backoff:     c.opt.Backoff,
		OnDelivered: func(ctx context.Context, m jetstream.Msg) {
			if rep, err := feedReply(m); err == nil {
				log.Info("app reply posted to webhook", zap.String("message_id", rep.ID))
				c.report(ctx, rep.ID, rep.ConversationID, message.DeliveryDelivered, "")
			}
		},
		OnGiveUp: func(ctx context.Context, m jetstream.Msg, reason error) {
			if rep, err := feedReply(m); err == nil {
				c.report(ctx, rep.ID, rep.ConversationID, message.DeliveryFailed, "webhook: "+reason.Error())
			}
		},
		PollWait: c.opt.PollWait,
		Log:      log,
	}
}

// postReply posts one feed entry, with its cursor, to the webhook.
func (c *Connector) postReply(ctx context.Context, s *webhook.Sender, m jetstream.Msg) error {
	rep, err := feedReply(m)
	if err != nil {
		return webhook.Permanent(err)
	}
	body, err := json.Marshal(rep)
	if err != nil {
		return webhook.Permanent(fmt.Errorf("encode reply %s: %w", rep.ID, err))
	}
	return s.Send(ctx, body)
}

// feedReply decodes a feed entry delivered by a consumer and sets its
// cursor.
func feedReply(m jetstream.Msg) (*Reply, error) {
	var rep Reply
	if err := json.Unmarshal(m.Data(), &rep); err != nil {
		return nil, fmt.Errorf("decode feed entry on %s: %w", m.Subject(), err)
	}
	if md, err := m.Metadata(); err == nil {
		rep.Cursor = strconv.FormatUint(md.Sequence.Stream, 10)
	}
	return &rep, nil
}
