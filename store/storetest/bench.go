package storetest

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
)

// Bench runs the record benchmark and its baseline for 1 and 4 concurrent
// routers, each in batches of 256: the shape of the routing stage. open
// returns a store on a fresh database and that database.
func Bench(b *testing.B, open func(b *testing.B) (store.Store, *sql.DB), rebind func(string) string) {
	for _, routers := range []int{1, 4} {
		b.Run(fmt.Sprintf("routers=%d/baseline", routers), func(b *testing.B) {
			_, db := open(b)
			BenchBaseline(b, db, rebind, routers, 256)
		})
		b.Run(fmt.Sprintf("routers=%d/record", routers), func(b *testing.B) {
			st, _ := open(b)
			BenchRecord(b, st, routers, 256)
		})
	}
	b.Run("agents=8/claim", func(b *testing.B) {
		st, _ := open(b)
		BenchClaim(b, st, 8)
	})
}

// BenchClaim measures claims per second: b.N waiting conversations in
// four queues at mixed urgencies, taken by `agents` agents at once, each
// able to take two of the four queues (so the pick filters as it orders).
func BenchClaim(b *testing.B, st store.Store, agents int) {
	ctx := context.Background()
	queues := []string{"payments", "refunds", "account", "security"}
	for start := 0; start < b.N; start += 256 {
		n := min(256, b.N-start)
		in := make([]store.Inbound, n)
		for i := range in {
			k := int64(start + i)
			m := benchInbound(k).Msg
			m.ChannelMessageID = fmt.Sprintf("claim-bench-%d", k)
			m.From.Address = fmt.Sprintf("claim-user-%d", k)
			m.Channel = message.Telegram
			in[i] = store.Inbound{Msg: m, Decision: store.Decision{Queue: queues[k%4], Urgency: message.Urgencies[k%3], Topic: queues[k%4]}}
		}
		if _, err := st.Record(ctx, in); err != nil {
			b.Fatal(err)
		}
	}
	var claimed atomic.Int64
	errs := make(chan error, agents)
	b.ResetTimer()
	var wg sync.WaitGroup
	for a := range agents {
		wg.Go(func() {
			req := store.ClaimRequest{Agent: fmt.Sprintf("bench-agent-%d", a), Queues: []string{queues[a%4], queues[(a+1)%4]},
				Capacity: b.N + 1, Lease: time.Minute}
			for {
				c, err := st.ClaimNext(ctx, req)
				if err != nil {
					errs <- err
					return
				}
				if c == nil {
					return
				}
				claimed.Add(1)
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	if claimed.Load() != int64(b.N) {
		b.Fatalf("claimed %d of %d", claimed.Load(), b.N)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims/s")
}

// BenchRecord measures messages recorded per second the way the routing
// stage records them: `routers` goroutines at once, each writing batches
// of `batch` messages in one Record call. One message in four comes from a
// returning customer (it joins their conversation), the rest from new ones.
// It reports msgs/s.
func BenchRecord(b *testing.B, st store.Store, routers, batch int) {
	inBatches(b, routers, batch, func(start, n int64) error {
		in := make([]store.Inbound, n)
		for i := range in {
			in[i] = benchInbound(start + int64(i))
		}
		_, err := st.Record(context.Background(), in)
		return err
	})
}

// BenchBaseline is the same load as BenchRecord written as plain multi-row
// inserts of the message rows into a scratch table of the same database:
// what the database does with no threading, identities or conversations.
func BenchBaseline(b *testing.B, db *sql.DB, rebind func(string) string, routers, batch int) {
	if _, err := db.Exec(`CREATE TABLE bench_baseline (id TEXT PRIMARY KEY, channel TEXT NOT NULL, channel_message_id TEXT NOT NULL,
		from_value TEXT NOT NULL, text TEXT NOT NULL, received_at BIGINT NOT NULL)`); err != nil {
		b.Fatal(err)
	}
	inBatches(b, routers, batch, func(start, n int64) error {
		q := `INSERT INTO bench_baseline (id, channel, channel_message_id, from_value, text, received_at) VALUES `
		args := make([]any, 0, 6*n)
		for i := int64(0); i < n; i++ {
			m := benchInbound(start + i).Msg
			if i > 0 {
				q += ", "
			}
			q += "(?, ?, ?, ?, ?, ?)"
			args = append(args, m.ID, string(m.Channel), m.ChannelMessageID, m.From.Address, m.Text, m.ReceivedAt.UnixMicro())
		}
		tx, err := db.Begin()
		if err != nil {
			return err
		}
		if _, err := tx.Exec(rebind(q), args...); err != nil {
			_ = tx.Rollback()
			return err
		}
		return tx.Commit()
	})
}

// inBatches splits b.N messages into batches taken by `routers`
// goroutines, times them, and reports msgs/s.
func inBatches(b *testing.B, routers, batch int, write func(start, n int64) error) {
	var next atomic.Int64
	errs := make(chan error, routers)
	b.ResetTimer()
	var wg sync.WaitGroup
	for range routers {
		wg.Go(func() {
			for {
				start := next.Add(int64(batch)) - int64(batch)
				if start >= int64(b.N) {
					return
				}
				if err := write(start, min(int64(batch), int64(b.N)-start)); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
}

var benchTexts = []string{"我的充值还没有到账，已经两个小时了", "payment failed but money was taken", "如何解绑银行卡", "refund status please", "帳戶被盜了，請幫我凍結"}

func benchInbound(i int64) store.Inbound {
	customer := i
	if i%4 == 3 {
		customer = i - 3 // a returning customer
	}
	ch := []message.Channel{message.App, message.SMS, message.Email, message.Telegram}[customer%4]
	from := fmt.Sprintf("bench-user-%d", customer)
	switch ch {
	case message.SMS:
		from = fmt.Sprintf("+1415%07d", customer%10_000_000)
	case message.Email:
		from = fmt.Sprintf("user%d@example.com", customer)
	}
	m := &message.Message{V: 1, ID: message.NewID(), Channel: ch, ChannelMessageID: fmt.Sprintf("bench-%d", i),
		ReceivedAt: time.Now().UTC(), From: message.Party{Address: from, Name: "Bench"}, To: message.Party{Address: "wallet"},
		Text: benchTexts[i%int64(len(benchTexts))]}
	return store.Inbound{Msg: m, Decision: store.Decision{Queue: "general", Urgency: message.Normal, Topic: "general",
		Explain: []string{"channel guidance"}, RulesVersion: "bench"}}
}
