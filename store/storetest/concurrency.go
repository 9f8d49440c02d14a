package storetest

import (
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
)

var concurrencyTests = []contractTest{
	{"SameMessageStoredOnce", testSameMessageConcurrently},
	{"SharedMessageInConcurrentBatches", testSharedMessageInBatches},
	{"DifferentContactsAllStored", testDifferentContactsConcurrently},
}

const workers = 8

// goAll runs f(0..n-1) in n goroutines released at once, so the calls
// really overlap, and waits for them. f must not call t.Fatal.
func goAll(n int, f func(i int)) {
	startLine := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-startLine
			f(i)
		})
	}
	close(startLine)
	wg.Wait()
}

// A redelivery racing the original (two router replicas, a retry) must
// still give exactly one stored message: one result stores it, every other
// is a Duplicate of the same conversation.
func testSameMessageConcurrently(t *testing.T, b Backend) {
	e := newEnv(t, b)
	m := e.msg(message.SMS, newPhone())
	results := make([][]store.Result, workers)
	errs := make([]error, workers)
	goAll(workers, func(i int) {
		cp := *m // each caller has its own copy, as after decoding from the bus
		results[i], errs[i] = e.s.Record(e.ctx, []store.Inbound{{Msg: &cp, Decision: topic("fee")}})
	})
	stored, convs := 0, map[int64]bool{}
	for i := range workers {
		if errs[i] != nil {
			t.Errorf("Record #%d: %v", i, errs[i])
			continue
		}
		if len(results[i]) != 1 {
			t.Errorf("Record #%d returned %d results; want 1", i, len(results[i]))
			continue
		}
		if !results[i][0].Duplicate {
			stored++
		}
		convs[results[i][0].Conversation.ID] = true
	}
	if t.Failed() {
		return
	}
	if stored != 1 {
		t.Errorf("%d of %d concurrent Records of the same message were not Duplicate; want exactly 1", stored, workers)
	}
	if len(convs) != 1 {
		t.Fatalf("results name %d conversations; want 1", len(convs))
	}
	for id := range convs {
		ms := e.messages(id)
		if n := countCMID(ms, m.ChannelMessageID); n != 1 || len(ms) != 1 {
			t.Errorf("Messages(%d) has %d messages, %d of them the message; want it exactly once", id, len(ms), n)
		}
		if evs := e.events(id); countKind(evs, store.EventRouted) != 1 {
			t.Errorf("Events kinds = %v; want one %q", kinds(evs), store.EventRouted)
		}
	}
	if got := e.waiting(store.QueueFilter{}); len(got) != 1 {
		t.Errorf("Waiting = %v; want one conversation", got)
	}
}

// The same, with the shared message inside batches of otherwise distinct
// messages: the batches all succeed, the distinct ones are all stored, the
// shared one once.
func testSharedMessageInBatches(t *testing.T, b Backend) {
	e := newEnv(t, b)
	shared := e.msg(message.Telegram, newUser())
	own := make([]*message.Message, workers)
	for i := range own {
		own[i] = e.msg(message.WeChat, newUser())
	}
	results := make([][]store.Result, workers)
	errs := make([]error, workers)
	goAll(workers, func(i int) {
		cp := *shared
		results[i], errs[i] = e.s.Record(e.ctx, []store.Inbound{
			{Msg: own[i], Decision: topic("fee")},
			{Msg: &cp, Decision: topic("fee")},
		})
	})
	storedShared := 0
	var sharedConv int64
	for i := range workers {
		if errs[i] != nil {
			t.Errorf("Record #%d: %v", i, errs[i])
			continue
		}
		if len(results[i]) != 2 {
			t.Errorf("Record #%d returned %d results; want 2", i, len(results[i]))
			continue
		}
		if results[i][0].Duplicate {
			t.Errorf("Record #%d: its own message %s is a Duplicate", i, own[i].ChannelMessageID)
		} else if ms := e.messages(results[i][0].Conversation.ID); countCMID(ms, own[i].ChannelMessageID) != 1 {
			t.Errorf("Record #%d: own message not stored once in conversation %d", i, results[i][0].Conversation.ID)
		}
		if !results[i][1].Duplicate {
			storedShared++
		}
		sharedConv = results[i][1].Conversation.ID
	}
	if t.Failed() {
		return
	}
	if storedShared != 1 {
		t.Errorf("the shared message was stored by %d of %d batches; want exactly 1", storedShared, workers)
	}
	if n := countCMID(e.messages(sharedConv), shared.ChannelMessageID); n != 1 {
		t.Errorf("the shared message is stored %d times; want 1", n)
	}
}

// Independent customers writing at once must not get in each other's way
// (no lock errors, no lost messages, no crossed conversations). Each writes
// three messages in a row, which thread into one conversation.
func testDifferentContactsConcurrently(t *testing.T, b Backend) {
	e := newEnv(t, b)
	const perWorker = 3
	msgs := make([][]*message.Message, workers)
	for i := range msgs {
		from := newPhone()
		for range perWorker {
			msgs[i] = append(msgs[i], e.msg(message.SMS, from))
		}
	}
	convs := make([][]int64, workers)
	errs := make([]error, workers)
	goAll(workers, func(i int) {
		for j, m := range msgs[i] {
			res, err := e.s.Record(e.ctx, []store.Inbound{{Msg: m, Decision: topic("fee")}})
			if err != nil {
				errs[i] = fmt.Errorf("message %d: %w", j, err)
				return
			}
			if len(res) != 1 || res[0].Duplicate {
				errs[i] = fmt.Errorf("message %d: results %+v; want one, not a duplicate", j, res)
				return
			}
			convs[i] = append(convs[i], res[0].Conversation.ID)
		}
	})
	for i, err := range errs {
		if err != nil {
			t.Errorf("worker %d: %v", i, err)
		}
	}
	if t.Failed() {
		return
	}
	seen := map[int64]int{}
	for i := range workers {
		c := convs[i][0]
		if slices.ContainsFunc(convs[i], func(id int64) bool { return id != c }) {
			t.Errorf("worker %d's SMS went to conversations %v; want one (chat window)", i, convs[i])
		}
		if prev, ok := seen[c]; ok {
			t.Errorf("workers %d and %d (different customers) share conversation %d", prev, i, c)
		}
		seen[c] = i
		ms := e.messages(c)
		if len(ms) != perWorker {
			t.Errorf("worker %d's conversation %d has %d messages; want %d", i, c, len(ms), perWorker)
		}
		for _, m := range msgs[i] {
			if countCMID(ms, m.ChannelMessageID) != 1 {
				t.Errorf("worker %d's conversation %d lacks message %s", i, c, m.ChannelMessageID)
			}
		}
	}
	if got := e.waiting(store.QueueFilter{}); len(got) != workers {
		t.Errorf("Waiting = %d conversations; want %d", len(got), workers)
	}
}

func countCMID(ms []store.Message, cmid string) int {
	n := 0
	for _, m := range ms {
		if m.ChannelMessageID == cmid {
			n++
		}
	}
	return n
}
