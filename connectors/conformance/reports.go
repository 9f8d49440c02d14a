package conformance

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/message"
	"github.com/nats-io/nats.go"
)

// Reports records the delivery reports an outbound connector publishes.
// It listens with a core subscription, so it sees every report, also the
// ones the EVENTS stream drops as duplicates (same status:id Nats-Msg-Id):
// a test can tell one report from two.
type Reports struct {
	mu  sync.Mutex
	all []message.Delivery
}

// WatchReports records every report published on subject (a channel's
// bus.DeliverySubject, or bus.SubjectsDelivery for all) until the test ends.
func WatchReports(t testing.TB, b *bus.Bus, subject string) *Reports {
	t.Helper()
	r := &Reports{}
	sub, err := b.NC.Subscribe(subject, func(m *nats.Msg) {
		d, err := message.DecodeDelivery(m.Data)
		if err != nil {
			t.Errorf("bad delivery report: %v", err)
			return
		}
		r.mu.Lock()
		r.all = append(r.all, *d)
		r.mu.Unlock()
	})
	if err != nil {
		t.Fatal(err)
	}
	// The subscription is live on the server before anything is sent.
	if err := b.NC.Flush(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sub.Unsubscribe() })
	return r
}

// Wait waits up to wait for n reports of the outbound message id with
// status and returns the last of them.
func (r *Reports) Wait(t testing.TB, wait time.Duration, id, status string, n int) message.Delivery {
	t.Helper()
	var got message.Delivery
	testbus.CheckFor(t, wait, 10*time.Millisecond, func() error {
		r.mu.Lock()
		defer r.mu.Unlock()
		seen := 0
		for _, d := range r.all {
			if d.MessageID == id && d.Status == status {
				got = d
				seen++
			}
		}
		if seen < n {
			return fmt.Errorf("%d %q reports of %s, want %d; all: %+v", seen, status, id, n, r.all)
		}
		return nil
	})
	return got
}

// Count is the number of reports of id with status so far.
func (r *Reports) Count(id, status string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, d := range r.all {
		if d.MessageID == id && d.Status == status {
			n++
		}
	}
	return n
}

// All returns every report so far, in arrival order.
func (r *Reports) All() []message.Delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]message.Delivery(nil), r.all...)
}
