// Package conformance is the test suite every connector passes: a message is
// acknowledged upstream only once it is durable on the bus, a retried
// delivery is a duplicate and not a second message, a bus outage makes the
// connector refuse (so the channel retries) and lose nothing it accepted,
// and a stop is clean.
//
// A connector's tests call Run with a Setup that wires the connector to the
// bus at the given URL and returns a Harness that plays the channel's side.
package conformance

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/message"
)

// Harness plays the channel's side of one connector.
type Harness struct {
	// Channel the connector publishes on.
	Channel message.Channel
	// Deliver makes the channel deliver one customer message whose own id
	// is id, the way the real upstream does (a webhook POST, a new mail),
	// and returns nil only if the connector acknowledged it upstream
	// (2xx, \Seen set, offset advanced).
	Deliver func(ctx context.Context, id string) error
	// Matches reports whether m is the normalized form of channel message
	// id. Nil means ChannelMessageID equals id or ends in "/"+id.
	Matches func(m *message.Message, id string) bool
	// Stop stops the connector and returns when it has stopped; nil when
	// the connector has nothing running outside its HTTP handlers.
	Stop func(ctx context.Context) error
}

// Setup wires a fresh connector to the bus at busURL (connect with
// testbus.Connect so it reconnects quickly) and returns its harness.
type Setup func(t *testing.T, busURL string) Harness

// Run runs the suite.
func Run(t *testing.T, setup Setup) {
	t.Run("AckAfterPublish", func(t *testing.T) { ackAfterPublish(t, setup) })
	t.Run("DedupeOnRetry", func(t *testing.T) { dedupeOnRetry(t, setup) })
	t.Run("BusDownRefusesThenRecovers", func(t *testing.T) { busDown(t, setup) })
	t.Run("CleanStop", func(t *testing.T) { cleanStop(t, setup) })
}

type fixture struct {
	srv *testbus.Server
	b   *bus.Bus
	h   Harness
}

func newFixture(t *testing.T, setup Setup) *fixture {
	srv := testbus.Start(t)
	f := &fixture{srv: srv, b: srv.Connect(t)}
	f.h = setup(t, srv.URL)
	if f.h.Matches == nil {
		f.h.Matches = func(m *message.Message, id string) bool {
			return m.ChannelMessageID == id || strings.HasSuffix(m.ChannelMessageID, "/"+id)
		}
	}
	return f
}

// count reads the whole INBOUND stream and counts the messages of id.
func (f *fixture) count(t *testing.T, id string) int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := f.b.JS.Stream(ctx, bus.StreamInbound)
	if err != nil {
		t.Fatalf("inbound stream: %v", err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for seq := info.State.FirstSeq; seq <= info.State.LastSeq && info.State.Msgs > 0; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		if raw.Subject != bus.InboundSubject(f.h.Channel) {
			t.Errorf("message on %s, want %s", raw.Subject, bus.InboundSubject(f.h.Channel))
		}
		m, err := message.Decode(raw.Data)
		if err != nil {
			t.Fatalf("connector published an invalid message: %v", err)
		}
		if m.Channel != f.h.Channel {
			t.Errorf("message channel %s, want %s", m.Channel, f.h.Channel)
		}
		if f.h.Matches(m, id) {
			n++
		}
	}
	return n
}

func uniqueID(t *testing.T, tag string) string {
	return fmt.Sprintf("%s-%s-%d", tag, strings.ReplaceAll(t.Name(), "/", "_"), time.Now().UnixNano())
}

func ackAfterPublish(t *testing.T, setup Setup) {
	f := newFixture(t, setup)
	ctx := context.Background()
	for i := range 5 {
		id := uniqueID(t, fmt.Sprint(i))
		if err := f.h.Deliver(ctx, id); err != nil {
			t.Fatalf("deliver %s: %v", id, err)
		}
		// No waiting: when the channel has its acknowledgement the message
		// must already be durable on the bus.
		if n := f.count(t, id); n != 1 {
			t.Fatalf("after the upstream ack the bus has %d copies of %s, want 1", n, id)
		}
	}
}

func dedupeOnRetry(t *testing.T, setup Setup) {
	f := newFixture(t, setup)
	ctx := context.Background()
	seq := uniqueID(t, "seq")
	for i := range 3 {
		if err := f.h.Deliver(ctx, seq); err != nil {
			t.Fatalf("delivery %d of %s: %v", i+1, seq, err)
		}
	}
	if n := f.count(t, seq); n != 1 {
		t.Fatalf("3 deliveries in sequence gave %d messages, want 1", n)
	}
	conc := uniqueID(t, "conc")
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for range 8 {
		wg.Go(func() { errs <- f.h.Deliver(ctx, conc) })
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatalf("concurrent delivery: %v", err)
		}
	}
	if n := f.count(t, conc); n != 1 {
		t.Fatalf("8 concurrent deliveries gave %d messages, want 1", n)
	}
}

func busDown(t *testing.T, setup Setup) {
	f := newFixture(t, setup)
	ctx := context.Background()
	before := uniqueID(t, "before")
	if err := f.h.Deliver(ctx, before); err != nil {
		t.Fatal(err)
	}
	f.srv.Shutdown()
	during := uniqueID(t, "during")
	dctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	err := f.h.Deliver(dctx, during)
	cancel()
	if err == nil {
		t.Fatal("the connector acknowledged a message while the bus was down")
	}
	t.Logf("while down, upstream was told: %v", err)
	f.srv.Restart()
	// The channel retries, as Twilio or an app backend would.
	testbus.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		return f.h.Deliver(ctx, during)
	})
	b := testbus.Connect(t, f.srv.URL)
	f.b = b
	if n := f.count(t, before); n != 1 {
		t.Fatalf("message acknowledged before the outage: %d copies after restart, want 1", n)
	}
	if n := f.count(t, during); n != 1 {
		t.Fatalf("message retried after the outage: %d copies, want 1", n)
	}
}

func cleanStop(t *testing.T, setup Setup) {
	f := newFixture(t, setup)
	id := uniqueID(t, "stop")
	if err := f.h.Deliver(context.Background(), id); err != nil {
		t.Fatal(err)
	}
	if f.h.Stop == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if err := f.h.Stop(ctx); err != nil {
		t.Fatalf("stop: %v", err)
	}
	if n := f.count(t, id); n != 1 {
		t.Fatalf("after stop %d copies, want 1", n)
	}
}
