package app_test

import (
	"context"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inroute/inroute/api"
	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/connectors"
	"github.com/inroute/inroute/connectors/app"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/webhook"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"
)

const (
	wait  = 10 * time.Second
	every = 10 * time.Millisecond
)

// startReplies runs a connector with fast retries and returns its HTTP
// server; the connector is stopped (and must stop) when the test ends.
func startReplies(t *testing.T, b *bus.Bus, opt app.Options) *httptest.Server {
	t.Helper()
	if opt.Apps == nil {
		opt.Apps = map[string]string{"wallet": token, "shop": "shop-token"}
	}
	opt.Backoff = func(int) time.Duration { return 20 * time.Millisecond }
	opt.PollWait = 100 * time.Millisecond
	c := app.New(&connectors.Inbound{Bus: b}, opt, zaptest.NewLogger(t))
	mux := http.NewServeMux()
	c.Register(mux)
	srv := httptest.NewServer(mux)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		srv.Close()
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(5 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	// Ready once the feed exists.
	testbus.CheckFor(t, wait, every, func() error {
		_, err := b.JS.Stream(context.Background(), bus.StreamAppReplies)
		return err
	})
	return srv
}

func outbound(id, from, to, text string) message.Outbound {
	return message.Outbound{V: 1, ID: id, ConversationID: 7, Channel: message.App, From: from, To: to, Text: text,
		Agent: "ann", CreatedAt: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
}

// send publishes o on outbound.app; msgID "" lets the same reply through
// twice, as a republish after the OUTBOUND duplicate window would.
func send(t *testing.T, b *bus.Bus, o message.Outbound, msgID string) {
	t.Helper()
	data, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Publish(context.Background(), bus.OutboundSubject(message.App), data, msgID, nil); err != nil {
		t.Fatal(err)
	}
}

// onSubject reads every message on subject from stream, in order.
func onSubject(t *testing.T, b *bus.Bus, stream, subject string) []*jetstream.RawStreamMsg {
	t.Helper()
	ctx := context.Background()
	st, err := b.JS.Stream(ctx, stream)
	if err != nil {
		t.Fatalf("stream %s: %v", stream, err)
	}
	var out []*jetstream.RawStreamMsg
	for seq := uint64(1); ; {
		raw, err := st.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return out
		}
		if err != nil {
			t.Fatalf("read %s: %v", subject, err)
		}
		out = append(out, raw)
		seq = raw.Sequence + 1
	}
}

func deliveries(t *testing.T, b *bus.Bus) []message.Delivery {
	t.Helper()
	var out []message.Delivery
	for _, raw := range onSubject(t, b, bus.StreamEvents, bus.DeliverySubject(message.App)) {
		d, err := message.DecodeDelivery(raw.Data)
		if err != nil {
			t.Fatalf("bad delivery report: %v", err)
		}
		out = append(out, *d)
	}
	return out
}

// reports counts the reports of id with status, and returns their details.
func reports(t *testing.T, b *bus.Bus, id, status string) (int, []string) {
	n, details := 0, []string(nil)
	for _, d := range deliveries(t, b) {
		if d.MessageID == id && d.Status == status {
			if d.Channel != message.App || d.V != 1 {
				t.Fatalf("report %+v", d)
			}
			n++
			details = append(details, d.Detail)
		}
	}
	return n, details
}

func waitReport(t *testing.T, b *bus.Bus, id, status string) {
	t.Helper()
	testbus.CheckFor(t, wait, every, func() error {
		if n, _ := reports(t, b, id, status); n == 0 {
			return fmt.Errorf("no %s report for %s", status, id)
		}
		return nil
	})
}

func streamMsgs(t *testing.T, b *bus.Bus, stream string) uint64 {
	t.Helper()
	st, err := b.JS.Stream(context.Background(), stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func waitOutboundEmpty(t *testing.T, b *bus.Bus) {
	t.Helper()
	testbus.CheckFor(t, wait, every, func() error {
		if n := streamMsgs(t, b, bus.StreamOutbound); n != 0 {
			return fmt.Errorf("OUTBOUND holds %d messages", n)
		}
		return nil
	})
}

func feedOf(t *testing.T, b *bus.Bus, appName, user string) []app.Reply {
	t.Helper()
	var out []app.Reply
	for _, raw := range onSubject(t, b, bus.StreamAppReplies, bus.AppReplySubject(appName, user)) {
		var r app.Reply
		if err := json.Unmarshal(raw.Data, &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestOutboundLandsInFeed(t *testing.T) {
	b := testbus.Start(t).Connect(t)
	startReplies(t, b, app.Options{})
	o := outbound("r-1", "wallet", "u-1", "已到账 / it has arrived")
	o.Attachments = []message.Attachment{{Name: "r.png", URL: "sha256:ab"}}
	send(t, b, o, o.ID)
	waitOutboundEmpty(t, b)
	feed := feedOf(t, b, "wallet", "u-1")
	if len(feed) != 1 {
		t.Fatalf("feed has %d replies, want 1", len(feed))
	}
	r := feed[0]
	if r.ID != "r-1" || r.ConversationID != 7 || r.User != "u-1" || r.Text != o.Text || r.Agent != "ann" ||
		!r.CreatedAt.Equal(o.CreatedAt) || len(r.Attachments) != 1 || r.Cursor != "" {
		t.Fatalf("feed entry %+v", r)
	}
	raw := onSubject(t, b, bus.StreamAppReplies, bus.AppReplySubject("wallet", "u-1"))[0]
	if got := raw.Header.Get("Nats-Msg-Id"); got != "r-1" {
		t.Fatalf("feed Nats-Msg-Id %q", got)
	}
	var fields map[string]any
	_ = json.Unmarshal(raw.Data, &fields)
	for _, k := range []string{"id", "conversation_id", "user", "text", "attachments", "auto", "agent", "created_at"} {
		if _, ok := fields[k]; !ok {
			t.Errorf("feed JSON lacks %q: %s", k, raw.Data)
		}
	}
	waitReport(t, b, "r-1", message.DeliverySent)
}

func TestOutboundAckedOnlyAfterFeedPublish(t *testing.T) {
	b := testbus.Start(t).Connect(t)
	startReplies(t, b, app.Options{})
	ctx := context.Background()
	// Without the feed stream the publish cannot be stored.
	if err := b.JS.DeleteStream(ctx, bus.StreamAppReplies); err != nil {
		t.Fatal(err)
	}
	send(t, b, outbound("r-1", "wallet", "u-1", "hi"), "r-1")
	testbus.CheckFor(t, wait, every, func() error {
		c, err := b.JS.Consumer(ctx, bus.StreamOutbound, bus.ConsumerOutbound(message.App))
		if err != nil {
			return err
		}
		info, err := c.Info(ctx)
		if err != nil {
			return err
		}
		if info.NumRedelivered == 0 {
			return errors.New("not retried yet")
		}
		return nil
	})
	if n := streamMsgs(t, b, bus.StreamOutbound); n != 1 {
		t.Fatalf("OUTBOUND holds %d messages while the feed is down, want 1 (acked too early)", n)
	}
	if n, _ := reports(t, b, "r-1", message.DeliverySent); n != 0 {
		t.Fatal("reported sent before the feed had it")
	}
	if _, err := b.JS.CreateStream(ctx, app.FeedStreamConfig(app.Options{})); err != nil {
		t.Fatal(err)
	}
	waitOutboundEmpty(t, b)
	if got := feedOf(t, b, "wallet", "u-1"); len(got) != 1 {
		t.Fatalf("feed has %d replies, want 1", len(got))
	}
	waitReport(t, b, "r-1", message.DeliverySent)
}

func TestSameOutboundTwiceIsOneFeedEntry(t *testing.T) {
	b := testbus.Start(t).Connect(t)
	startReplies(t, b, app.Options{})
	o := outbound("r-1", "wallet", "u-1", "hi")
	send(t, b, o, "")
	send(t, b, o, "")
	waitOutboundEmpty(t, b)
	waitReport(t, b, "r-1", message.DeliverySent)
	if got := feedOf(t, b, "wallet", "u-1"); len(got) != 1 {
		t.Fatalf("feed has %d replies, want 1", len(got))
	}
	if n, _ := reports(t, b, "r-1", message.DeliverySent); n != 1 {
		t.Fatalf("%d sent reports, want 1", n)
	}
}

func TestOutboundAppChoice(t *testing.T) {
	t.Run("only app", func(t *testing.T) {
		b := testbus.Start(t).Connect(t)
		startReplies(t, b, app.Options{Apps: map[string]string{"wallet": token}})
		send(t, b, outbound("r-1", "", "u-1", "hi"), "r-1")
		waitOutboundEmpty(t, b)
		if got := feedOf(t, b, "wallet", "u-1"); len(got) != 1 {
			t.Fatalf("feed has %d replies, want 1", len(got))
		}
	})
	t.Run("unknown app among several", func(t *testing.T) {
		b := testbus.Start(t).Connect(t)
		startReplies(t, b, app.Options{})
		send(t, b, outbound("r-1", "nope", "u-1", "hi"), "r-1")
		waitReport(t, b, "r-1", message.DeliveryFailed)
		waitOutboundEmpty(t, b)
		if _, details := reports(t, b, "r-1", message.DeliveryFailed); !strings.Contains(details[0], "nope") {
			t.Fatalf("failure detail %q", details[0])
		}
		if n := streamMsgs(t, b, bus.StreamAppReplies); n != 0 {
			t.Fatalf("feed has %d replies, want 0", n)
		}
	})
	t.Run("undecodable", func(t *testing.T) {
		b := testbus.Start(t).Connect(t)
		startReplies(t, b, app.Options{})
		if _, err := b.Publish(context.Background(), bus.OutboundSubject(message.App), []byte(`{"v":1,`), "", nil); err != nil {
			t.Fatal(err)
		}
		send(t, b, outbound("r-2", "wallet", "u-1", "next"), "r-2")
		waitOutboundEmpty(t, b) // terminated, and did not block the next one
		if got := feedOf(t, b, "wallet", "u-1"); len(got) != 1 || got[0].ID != "r-2" {
			t.Fatalf("feed %+v", got)
		}
	})
}

type repliesAnswer struct {
	status int
	body   app.RepliesResponse
	raw    string
}

func getReplies(t *testing.T, srvURL, tok string, q url.Values) repliesAnswer {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, srvURL+app.RepliesPath+"?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	a := repliesAnswer{status: resp.StatusCode, raw: string(data)}
	if resp.StatusCode == http.StatusOK {
		if err := json.Unmarshal(data, &a.body); err != nil {
			t.Fatalf("body %s: %v", data, err)
		}
	}
	return a
}

func ids(rs []app.Reply) string {
	var s []string
	for _, r := range rs {
		s = append(s, r.ID)
	}
	return strings.Join(s, ",")
}

func TestRepliesPaging(t *testing.T) {
	b := testbus.Start(t).Connect(t)
	srv := startReplies(t, b, app.Options{})
	// The user id needs escaping on the subject and in the URL.
	user := "u.1 *>/é"
	for i, o := range []message.Outbound{
		outbound("a1", "wallet", user, "one"),
		outbound("x1", "wallet", "u-2", "other user"),
		outbound("a2", "wallet", user, "two"),
		outbound("s1", "shop", user, "other app"),
		outbound("a3", "wallet", user, "three"),
	} {
		send(t, b, o, o.ID)
		// One at a time, so the feed order is the send order.
		testbus.CheckFor(t, wait, every, func() error {
			if n := streamMsgs(t, b, bus.StreamAppReplies); n != uint64(i+1) {
				return fmt.Errorf("feed has %d", n)
			}
			return nil
		})
	}
	page := getReplies(t, srv.URL, token, url.Values{"user": {user}, "limit": {"2"}})
	if page.status != 200 || ids(page.body.Replies) != "a1,a2" || page.body.Next != page.body.Replies[1].Cursor {
		t.Fatalf("first page %d %s", page.status, page.raw)
	}
	c1, _ := strconv.Atoi(page.body.Replies[0].Cursor)
	c2, _ := strconv.Atoi(page.body.Replies[1].Cursor)
	if c1 <= 0 || c2 <= c1 || page.body.Replies[0].User != user || page.body.Replies[0].Text != "one" {
		t.Fatalf("first page %s", page.raw)
	}
	page2 := getReplies(t, srv.URL, token, url.Values{"user": {user}, "after": {page.body.Next}})
	if page2.status != 200 || ids(page2.body.Replies) != "a3" || page2.body.Next != page2.body.Replies[0].Cursor {
		t.Fatalf("second page %d %s", page2.status, page2.raw)
	}
	end := getReplies(t, srv.URL, token, url.Values{"user": {user}, "after": {page2.body.Next}})
	if end.status != 200 || len(end.body.Replies) != 0 || end.body.Next != page2.body.Next || !strings.Contains(end.raw, `"replies":[]`) {
		t.Fatalf("end %d %s", end.status, end.raw)
	}
	// Each app sees its own replies only.
	shop := getReplies(t, srv.URL, "shop-token", url.Values{"user": {user}})
	if shop.status != 200 || ids(shop.body.Replies) != "s1" {
		t.Fatalf("shop %d %s", shop.status, shop.raw)
	}
	none := getReplies(t, srv.URL, token, url.Values{"user": {"u-9"}})
	if none.status != 200 || len(none.body.Replies) != 0 || none.body.Next != "0" {
		t.Fatalf("unknown user %d %s", none.status, none.raw)
	}
	// Read replies are reported delivered, once however often they are read.
	_ = getReplies(t, srv.URL, token, url.Values{"user": {user}})
	for _, id := range []string{"a1", "a2", "a3", "s1"} {
		waitReport(t, b, id, message.DeliveryDelivered)
		if n, _ := reports(t, b, id, message.DeliveryDelivered); n != 1 {
			t.Fatalf("%d delivered reports for %s, want 1", n, id)
		}
	}
	if n, _ := reports(t, b, "x1", message.DeliveryDelivered); n != 0 {
		t.Fatal("an unread reply was reported delivered")
	}
}

func TestRepliesRejects(t *testing.T) {
	b := testbus.Start(t).Connect(t)
	srv := startReplies(t, b, app.Options{})
	for _, tc := range []struct {
		name   string
		tok    string
		q      url.Values
		status int
		code   string
	}{
		{"wrong token", "nope", url.Values{"user": {"u-1"}}, 401, api.CodeUnauthorized},
		{"agent-like token", "", url.Values{"user": {"u-1"}}, 401, api.CodeUnauthorized},
		{"no user", token, url.Values{}, 400, api.CodeInvalidMessage},
		{"bad cursor", token, url.Values{"user": {"u-1"}, "after": {"abc"}}, 400, api.CodeInvalidMessage},
		{"negative cursor", token, url.Values{"user": {"u-1"}, "after": {"-1"}}, 400, api.CodeInvalidMessage},
		{"zero limit", token, url.Values{"user": {"u-1"}, "limit": {"0"}}, 400, api.CodeInvalidMessage},
		{"big limit", token, url.Values{"user": {"u-1"}, "limit": {"501"}}, 400, api.CodeInvalidMessage},
		{"bad limit", token, url.Values{"user": {"u-1"}, "limit": {"ten"}}, 400, api.CodeInvalidMessage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := getReplies(t, srv.URL, tc.tok, tc.q)
			var e api.ErrorBody
			if a.status != tc.status || json.Unmarshal([]byte(a.raw), &e) != nil || e.Error.Code != tc.code {
				t.Fatalf("got %d %s, want %d %s", a.status, a.raw, tc.status, tc.code)
			}
		})
	}
	if a := getReplies(t, srv.URL, token, url.Values{"user": {"u-1"}, "limit": {"500"}, "after": {"18446744073709551615"}}); a.status != 200 {
		t.Fatalf("max cursor: %d %s", a.status, a.raw)
	}
}

// hook is an app's webhook endpoint that answers the statuses in script
// (the last one forever) and records what it was sent.
type hook struct {
	mu     sync.Mutex
	script []int
	bodies [][]byte
	errs   []error
	srv    *httptest.Server
}

func newHook(t *testing.T, secret string, script ...int) *hook {
	h := &hook{script: script}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		err := webhook.Verify([]byte(secret), r.Header.Get(webhook.Header), body, time.Now(), 5*time.Minute)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.bodies = append(h.bodies, body)
		h.errs = append(h.errs, err)
		status := h.script[0]
		if len(h.script) > 1 {
			h.script = h.script[1:]
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hook) posts() ([][]byte, []error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([][]byte(nil), h.bodies...), append([]error(nil), h.errs...)
}

func webhookSettled(t *testing.T, b *bus.Bus, appName string) {
	t.Helper()
	testbus.CheckFor(t, wait, every, func() error {
		c, err := b.JS.Consumer(context.Background(), bus.StreamAppReplies, bus.ConsumerAppWebhook(appName))
		if err != nil {
			return err
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 {
			return fmt.Errorf("pending %d, ack pending %d", info.NumPending, info.NumAckPending)
		}
		return nil
	})
}

func TestWebhookSignedAndRetried(t *testing.T) {
	b := testbus.Start(t).Connect(t)
	h := newHook(t, "whsec", 500, 200)
	srv := startReplies(t, b, app.Options{Webhooks: map[string]app.Webhook{
		"wallet": {URL: h.srv.URL, Secret: "whsec", MaxAttempts: 5},
	}})
	send(t, b, outbound("r-1", "wallet", "u-1", "hi"), "r-1")
	send(t, b, outbound("s-1", "shop", "u-1", "no webhook"), "s-1")
	waitReport(t, b, "r-1", message.DeliveryDelivered)
	webhookSettled(t, b, "wallet")
	bodies, errs := h.posts()
	if len(bodies) != 2 {
		t.Fatalf("webhook got %d posts, want 2 (one 500, one 200)", len(bodies))
	}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("post %d: signature: %v", i, err)
		}
	}
	var r app.Reply
	if err := json.Unmarshal(bodies[1], &r); err != nil || r.ID != "r-1" || r.User != "u-1" || r.Text != "hi" || r.Cursor == "" {
		t.Fatalf("webhook body %s (%v)", bodies[1], err)
	}
	if n, _ := reports(t, b, "r-1", message.DeliveryDelivered); n != 1 {
		t.Fatalf("%d delivered reports, want 1", n)
	}
	waitReport(t, b, "r-1", message.DeliverySent)
	if n, _ := reports(t, b, "s-1", message.DeliveryDelivered); n != 0 {
		t.Fatal("an app without a webhook had a reply reported delivered")
	}
	// The reply stays readable, from the cursor the webhook gave.
	a := getReplies(t, srv.URL, token, url.Values{"user": {"u-1"}})
	if a.status != 200 || ids(a.body.Replies) != "r-1" || a.body.Replies[0].Cursor != r.Cursor {
		t.Fatalf("feed after webhook %d %s", a.status, a.raw)
	}
}

func TestWebhookGivesUp(t *testing.T) {
	b := testbus.Start(t).Connect(t)
	h := newHook(t, "whsec", 400)
	srv := startReplies(t, b, app.Options{Webhooks: map[string]app.Webhook{
		"wallet": {URL: h.srv.URL, Secret: "whsec", MaxAttempts: 5},
	}})
	send(t, b, outbound("r-1", "wallet", "u-1", "hi"), "r-1")
	waitReport(t, b, "r-1", message.DeliveryFailed)
	webhookSettled(t, b, "wallet")
	if bodies, _ := h.posts(); len(bodies) != 1 {
		t.Fatalf("webhook got %d posts, want 1", len(bodies))
	}
	if _, details := reports(t, b, "r-1", message.DeliveryFailed); !strings.Contains(details[0], "400") {
		t.Fatalf("failure detail %q", details[0])
	}
	// The reply stays in the feed.
	if a := getReplies(t, srv.URL, token, url.Values{"user": {"u-1"}}); ids(a.body.Replies) != "r-1" {
		t.Fatalf("feed after give-up %d %s", a.status, a.raw)
	}
}

func TestFeedSubjectHidesUserID(t *testing.T) {
	// AppReplySubject hex-encodes the user: check the feed uses it, so a
	// user id with dots cannot read another user's subject.
	b := testbus.Start(t).Connect(t)
	startReplies(t, b, app.Options{})
	send(t, b, outbound("r-1", "wallet", "a.b", "hi"), "r-1")
	waitOutboundEmpty(t, b)
	want := "app.replies.wallet." + hex.EncodeToString([]byte("a.b"))
	if got := onSubject(t, b, bus.StreamAppReplies, want); len(got) != 1 {
		t.Fatalf("no reply on %s", want)
	}
}
