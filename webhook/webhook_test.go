package webhook_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/webhook"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"
)

var secret = []byte("s3cret")

func TestSignVerifyRoundTrip(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"r-1","text":"你好"}`)
	h := webhook.Sign(secret, now, body)
	if !strings.HasPrefix(h, "t=1800000000,v1=") || len(h) != len("t=1800000000,v1=")+64 {
		t.Fatalf("header %q", h)
	}
	if err := webhook.Verify(secret, h, body, now.Add(4*time.Minute), 0); err != nil {
		t.Fatalf("verify: %v", err)
	}
	// Unknown elements and an extra (old-secret) signature are tolerated.
	other := webhook.Sign([]byte("old"), now, body)
	h2 := h + "," + other[strings.Index(other, "v1="):] + ",v0=whatever"
	if err := webhook.Verify(secret, h2, body, now, time.Minute); err != nil {
		t.Fatalf("verify with two signatures: %v", err)
	}
}

func TestVerifyRejects(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	body := []byte(`{"id":"r-1"}`)
	good := webhook.Sign(secret, now, body)
	cases := []struct {
		name   string
		secret []byte
		header string
		body   []byte
		now    time.Time
		want   error
	}{
		{"tampered body", secret, good, []byte(`{"id":"r-2"}`), now, webhook.ErrBadSignature},
		{"wrong secret", []byte("other"), good, body, now, webhook.ErrBadSignature},
		{"old timestamp", secret, good, body, now.Add(6 * time.Minute), webhook.ErrExpired},
		{"future timestamp", secret, good, body, now.Add(-6 * time.Minute), webhook.ErrExpired},
		{"timestamp changed", secret, strings.Replace(good, "t=1800000000", "t=1800000100", 1), body, now, webhook.ErrBadSignature},
		{"no header", secret, "", body, now, webhook.ErrNoSignature},
		{"blank header", secret, "  ", body, now, webhook.ErrNoSignature},
		{"no t", secret, good[strings.Index(good, "v1="):], body, now, webhook.ErrBadSignature},
		{"no v1", secret, "t=1800000000", body, now, webhook.ErrBadSignature},
		{"two t", secret, "t=1," + good, body, now, webhook.ErrBadSignature},
		{"signed t", secret, strings.Replace(good, "t=", "t=+", 1), body, now, webhook.ErrBadSignature},
		{"short v1", secret, "t=1800000000,v1=abcd", body, now, webhook.ErrBadSignature},
		{"not hex", secret, "t=1800000000,v1=" + strings.Repeat("zz", 32), body, now, webhook.ErrBadSignature},
		{"garbage", secret, "garbage", body, now, webhook.ErrBadSignature},
		{"huge t", secret, "t=99999999999999999999,v1=" + strings.Repeat("00", 32), body, now, webhook.ErrBadSignature},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := webhook.Verify(tc.secret, tc.header, tc.body, tc.now, 5*time.Minute)
			if !errors.Is(err, tc.want) {
				t.Fatalf("got %v, want %v", err, tc.want)
			}
		})
	}
}

func TestBackoff(t *testing.T) {
	want := map[int]time.Duration{0: time.Second, 1: time.Second, 2: 2 * time.Second, 3: 4 * time.Second,
		9: 256 * time.Second, 10: 5 * time.Minute, 64: 5 * time.Minute, 1 << 30: 5 * time.Minute}
	for attempt, d := range want {
		if got := webhook.Backoff(attempt); got != d {
			t.Errorf("Backoff(%d) = %v, want %v", attempt, got, d)
		}
	}
}

func TestSenderClassifies(t *testing.T) {
	var status atomic.Int32
	var lastErr atomic.Value
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		err := webhook.Verify(secret, r.Header.Get(webhook.Header), body, time.Now(), 0)
		lastErr.Store(fmt.Sprint(err))
		if r.Header.Get("Content-Type") != "application/json" {
			lastErr.Store("content type " + r.Header.Get("Content-Type"))
		}
		if status.Load() == 302 {
			w.Header().Set("Location", "/elsewhere")
		}
		w.WriteHeader(int(status.Load()))
	}))
	defer srv.Close()
	s := &webhook.Sender{URL: srv.URL, Secret: secret}
	for _, tc := range []struct {
		status          int
		ok, permanently bool
	}{
		{200, true, false}, {204, true, false},
		{302, false, true}, {400, false, true}, {401, false, true}, {404, false, true}, {410, false, true},
		{408, false, false}, {429, false, false}, {500, false, false}, {503, false, false},
	} {
		status.Store(int32(tc.status))
		err := s.Send(context.Background(), []byte(`{"a":1}`))
		if got := lastErr.Load(); got != "<nil>" {
			t.Fatalf("%d: receiver saw %v", tc.status, got)
		}
		if (err == nil) != tc.ok || errors.Is(err, webhook.ErrPermanent) != tc.permanently {
			t.Errorf("status %d: err %v (permanent %v)", tc.status, err, errors.Is(err, webhook.ErrPermanent))
		}
		var se *webhook.StatusError
		if !tc.ok && (!errors.As(err, &se) || se.Code != tc.status) {
			t.Errorf("status %d: error %v is not a StatusError with the code", tc.status, err)
		}
	}
}

func TestSenderNetworkErrorsAreTransient(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	url := srv.URL
	s := &webhook.Sender{URL: url, Secret: secret, Timeout: 50 * time.Millisecond}
	if err := s.Send(context.Background(), []byte(`{}`)); err == nil || errors.Is(err, webhook.ErrPermanent) {
		t.Fatalf("timeout gave %v, want a transient error", err)
	}
	close(release)
	srv.Close()
	if err := s.Send(context.Background(), []byte(`{}`)); err == nil || errors.Is(err, webhook.ErrPermanent) {
		t.Fatalf("refused connection gave %v, want a transient error", err)
	}
	bad := &webhook.Sender{URL: "::not a url", Secret: secret}
	if err := bad.Send(context.Background(), []byte(`{}`)); !errors.Is(err, webhook.ErrPermanent) {
		t.Fatalf("bad url gave %v, want permanent", err)
	}
}

// hookStream makes a stream and durable consumer for the deliverer tests.
func hookStream(t *testing.T) (jetstream.JetStream, jetstream.ConsumerConfig) {
	t.Helper()
	b := testbus.Start(t).Connect(t)
	ctx := context.Background()
	if _, err := b.JS.CreateStream(ctx, jetstream.StreamConfig{Name: "HOOKS", Subjects: []string{"hooks.>"}, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	return b.JS, jetstream.ConsumerConfig{Durable: "hooks", AckPolicy: jetstream.AckExplicitPolicy, AckWait: 10 * time.Second}
}

// receiver is a webhook endpoint answering the statuses in script, then
// the last one forever; it records the bodies it was sent.
type receiver struct {
	mu     sync.Mutex
	script []int
	bodies []string
	srv    *httptest.Server
}

func newReceiver(t *testing.T, script ...int) *receiver {
	rc := &receiver{script: script}
	rc.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify(secret, r.Header.Get(webhook.Header), body, time.Now(), 0); err != nil {
			t.Errorf("receiver: %v", err)
		}
		rc.mu.Lock()
		defer rc.mu.Unlock()
		rc.bodies = append(rc.bodies, string(body))
		status := rc.script[0]
		if len(rc.script) > 1 {
			rc.script = rc.script[1:]
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(rc.srv.Close)
	return rc
}

func (rc *receiver) calls() []string {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]string(nil), rc.bodies...)
}

type outcome struct {
	mu        sync.Mutex
	delivered []string
	gaveUp    []string
	reasons   []error
}

func (o *outcome) counts() (delivered, gaveUp int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.delivered), len(o.gaveUp)
}

// runDeliverer runs a deliverer posting each message's data to rc and
// stops it when the test ends, checking that Run returns.
func runDeliverer(t *testing.T, js jetstream.JetStream, cfg jetstream.ConsumerConfig, rc *receiver, maxAttempts int) *outcome {
	t.Helper()
	out := &outcome{}
	s := &webhook.Sender{URL: rc.srv.URL, Secret: secret}
	d := &webhook.Deliverer{
		JS: js, Stream: "HOOKS", Config: cfg,
		Deliver:     func(ctx context.Context, m jetstream.Msg) error { return s.Send(ctx, m.Data()) },
		MaxAttempts: maxAttempts,
		Backoff:     func(int) time.Duration { return 10 * time.Millisecond },
		PollWait:    100 * time.Millisecond,
		OnDelivered: func(_ context.Context, m jetstream.Msg) {
			out.mu.Lock()
			defer out.mu.Unlock()
			out.delivered = append(out.delivered, string(m.Data()))
		},
		OnGiveUp: func(_ context.Context, m jetstream.Msg, reason error) {
			out.mu.Lock()
			defer out.mu.Unlock()
			out.gaveUp = append(out.gaveUp, string(m.Data()))
			out.reasons = append(out.reasons, reason)
		},
		Log: zaptest.NewLogger(t),
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
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
	return out
}

func publish(t *testing.T, js jetstream.JetStream, data string) {
	t.Helper()
	if _, err := js.Publish(context.Background(), "hooks.a", []byte(data)); err != nil {
		t.Fatal(err)
	}
}

// settled waits until the consumer holds nothing pending or unacked.
func settled(t *testing.T, js jetstream.JetStream) {
	t.Helper()
	testbus.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		c, err := js.Consumer(context.Background(), "HOOKS", "hooks")
		if err != nil {
			return err
		}
		info, err := c.Info(context.Background())
		if err != nil {
			return err
		}
		if info.NumPending != 0 || info.NumAckPending != 0 || info.NumRedelivered != 0 {
			return fmt.Errorf("pending %d, ack pending %d, redelivered %d", info.NumPending, info.NumAckPending, info.NumRedelivered)
		}
		return nil
	})
}

func TestDelivererRetriesUntilSuccess(t *testing.T) {
	js, cfg := hookStream(t)
	rc := newReceiver(t, 500, 503, 200)
	out := runDeliverer(t, js, cfg, rc, 5)
	publish(t, js, `{"n":1}`)
	testbus.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if d, g := out.counts(); d != 1 || g != 0 {
			return fmt.Errorf("delivered %d, gave up %d", d, g)
		}
		return nil
	})
	settled(t, js)
	if calls := rc.calls(); len(calls) != 3 || calls[2] != `{"n":1}` {
		t.Fatalf("receiver got %q, want 3 posts", calls)
	}
	// Later messages go through at once.
	publish(t, js, `{"n":2}`)
	testbus.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if d, _ := out.counts(); d != 2 {
			return fmt.Errorf("delivered %d", d)
		}
		return nil
	})
	settled(t, js)
	if calls := rc.calls(); len(calls) != 4 {
		t.Fatalf("receiver got %d posts, want 4", len(calls))
	}
}

func TestDelivererGivesUpAtOnceOnPermanent(t *testing.T) {
	js, cfg := hookStream(t)
	rc := newReceiver(t, 400)
	out := runDeliverer(t, js, cfg, rc, 5)
	publish(t, js, `{"n":1}`)
	testbus.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if d, g := out.counts(); d != 0 || g != 1 {
			return fmt.Errorf("delivered %d, gave up %d", d, g)
		}
		return nil
	})
	settled(t, js)
	if n := len(rc.calls()); n != 1 {
		t.Fatalf("receiver got %d posts, want 1", n)
	}
	if r := out.reasons[0]; !errors.Is(r, webhook.ErrPermanent) || !strings.Contains(r.Error(), "400") {
		t.Fatalf("reason %v", r)
	}
}

func TestDelivererRespectsMaxAttempts(t *testing.T) {
	js, cfg := hookStream(t)
	rc := newReceiver(t, 500)
	out := runDeliverer(t, js, cfg, rc, 3)
	publish(t, js, `{"n":1}`)
	testbus.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if d, g := out.counts(); d != 0 || g != 1 {
			return fmt.Errorf("delivered %d, gave up %d", d, g)
		}
		return nil
	})
	// Terminated: nothing left to redeliver, so the count is final.
	settled(t, js)
	if n := len(rc.calls()); n != 3 {
		t.Fatalf("receiver got %d posts, want 3", n)
	}
	if r := out.reasons[0]; errors.Is(r, webhook.ErrPermanent) || !strings.Contains(r.Error(), "500") {
		t.Fatalf("reason %v", r)
	}
}

func TestDelivererWithGivenConsumer(t *testing.T) {
	js, cfg := hookStream(t)
	cons, err := js.CreateOrUpdateConsumer(context.Background(), "HOOKS", cfg)
	if err != nil {
		t.Fatal(err)
	}
	var got atomic.Int32
	d := &webhook.Deliverer{
		Consumer: cons,
		Deliver:  func(context.Context, jetstream.Msg) error { got.Add(1); return nil },
		PollWait: 50 * time.Millisecond,
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	publish(t, js, "x")
	testbus.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		if got.Load() != 1 {
			return errors.New("not delivered")
		}
		return nil
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if err := (&webhook.Deliverer{}).Run(context.Background()); err == nil {
		t.Fatal("a deliverer without Deliver ran")
	}
}
