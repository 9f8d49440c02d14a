package queue_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/queue"
	"go.uber.org/zap"
)

var convSeq int64

func enqueue(t *testing.T, b *bus.Bus, q string, u message.Urgency, text string) *queue.Item {
	t.Helper()
	m := &message.Message{V: 1, ID: message.NewID(), Channel: message.App, ChannelMessageID: text,
		ReceivedAt: time.Now().UTC(), From: message.Party{Address: "u"}, Text: text}
	convSeq++
	it := &queue.Item{V: queue.ItemVersion, ID: m.ID, ConversationID: convSeq, Queue: q, Urgency: u, Topic: "general", Explain: []string{"test"}, RoutedAt: time.Now().UTC(), Message: m}
	data, _ := json.Marshal(it)
	if _, err := b.Publish(context.Background(), it.Subject(), data, "route:"+m.ID, nil); err != nil {
		t.Fatal(err)
	}
	return it
}

func TestNextMostUrgentThenOldest(t *testing.T) {
	b := testbus.Start(t).Connect(t)
	p, err := queue.NewPuller(context.Background(), b.JS, zap.NewNop())
	if err != nil {
		t.Fatal(err)
	}
	// Posted in an order that differs from the expected pull order, across queues.
	low1 := enqueue(t, b, "general", message.Low, "low1")
	high1 := enqueue(t, b, "payments", message.High, "high1")
	urgent1 := enqueue(t, b, "security", message.Urgent, "urgent1")
	normal1 := enqueue(t, b, "refunds", message.Normal, "normal1")
	high2 := enqueue(t, b, "general", message.High, "high2")
	urgent2 := enqueue(t, b, "general", message.Urgent, "urgent2")
	want := []*queue.Item{urgent1, urgent2, high1, high2, normal1, low1}
	waitConsumersSee(t, b, len(want))
	for i, w := range want {
		got, err := p.Next(context.Background(), nil)
		if err != nil {
			t.Fatal(err)
		}
		if got == nil || got.ID != w.ID {
			t.Fatalf("pull %d: got %+v, want %s (%s)", i, got, w.Message.Text, w.Urgency)
		}
	}
	if got, err := p.Next(context.Background(), nil); err != nil || got != nil {
		t.Fatalf("empty queue gave %+v, %v", got, err)
	}
	// A claimed item is gone from the stream.
	st, _ := b.JS.Stream(context.Background(), bus.StreamQueues)
	testbus.CheckFor(t, 5*time.Second, 10*time.Millisecond, func() error {
		info, err := st.Info(context.Background())
		if err != nil {
			return err
		}
		if info.State.Msgs != 0 {
			return fmt.Errorf("%d items left", info.State.Msgs)
		}
		return nil
	})
}

// waitConsumersSee waits until the agent consumers count n pending items: a
// consumer learns of a stored message a moment after the publish ack, and a
// no-wait fetch in that moment finds nothing (an agent would get a 204 and
// ask again; a test wants the order).
func waitConsumersSee(t *testing.T, b *bus.Bus, n int) {
	t.Helper()
	testbus.CheckFor(t, 5*time.Second, 5*time.Millisecond, func() error {
		total := 0
		for _, u := range message.Urgencies {
			c, err := b.JS.Consumer(context.Background(), bus.StreamQueues, bus.AgentConsumer(u))
			if err != nil {
				return err
			}
			info, err := c.Info(context.Background())
			if err != nil {
				return err
			}
			total += int(info.NumPending)
		}
		if total != n {
			return fmt.Errorf("consumers see %d items, want %d", total, n)
		}
		return nil
	})
}

func TestConcurrentAgentsNeverShareAnItem(t *testing.T) {
	srv := testbus.Start(t)
	b := srv.Connect(t)
	const n = 300
	for i := range n {
		enqueue(t, b, "general", message.Urgencies[i%4], fmt.Sprint("m", i))
	}
	var mu sync.Mutex
	seen := map[string]string{}
	var wg sync.WaitGroup
	for a := range 8 {
		// Each agent on its own connection, like separate API processes.
		ab := testbus.Connect(t, srv.URL)
		p, err := queue.NewPuller(context.Background(), ab.JS, zap.NewNop())
		if err != nil {
			t.Fatal(err)
		}
		wg.Go(func() {
			for {
				it, err := p.Next(context.Background(), nil)
				if err != nil {
					t.Error(err)
					return
				}
				if it == nil {
					return
				}
				mu.Lock()
				if other, dup := seen[it.ID]; dup {
					t.Errorf("item %s given to agent %d and %s", it.ID, a, other)
				}
				seen[it.ID] = fmt.Sprint(a)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != n {
		t.Fatalf("agents got %d items, want %d", len(seen), n)
	}
}

func TestDecodeItemRejects(t *testing.T) {
	for _, in := range []string{`nope`, `{"v":2}`, `{"v":1}`, `{"v":1,"message":{},"urgency":"meh"}`, `{"v":1,"message":{},"urgency":"low"}`} {
		if _, err := queue.DecodeItem([]byte(in)); err == nil {
			t.Errorf("accepted %s", in)
		}
	}
}
