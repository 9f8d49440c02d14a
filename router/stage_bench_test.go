package router_test

import (
	"context"
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/router"
	"github.com/inroute/inroute/router/rules"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

var benchTexts = []string{
	"我的充值已经两个小时了还没有到账，银行卡已经扣款了，订单号 20261127001，请尽快处理",
	"Hi, my payment to the merchant failed but the money left my card. Can you check? Thanks",
	"有人用我的账户转账了，不是我本人操作，请马上冻结！",
	"請問如何解除綁定銀行卡？我換了新的卡",
	"I want a refund for order 88213, the item never arrived and the seller is not answering",
	"提现一直显示处理中，已经三天了",
	"What are your opening hours on public holidays?",
	"帳戶異常登入提醒，不是我登入的，我的手機昨天被偷了",
	"top up via bank transfer is pending since yesterday, amount 500 HKD",
	"怎么修改绑定的手机号？旧号码已经不用了",
}

func benchMessages(n int) []*message.Message {
	chans := []message.Channel{message.App, message.SMS, message.Email, message.Telegram, message.WeChat, message.WebChat, message.Voice}
	out := make([]*message.Message, n)
	for i := range out {
		out[i] = &message.Message{V: 1, ID: message.NewID(), Channel: chans[i%len(chans)], ChannelMessageID: fmt.Sprint("b-", i),
			ReceivedAt: time.Now().UTC(), From: message.Party{Address: fmt.Sprint("bench-", i%5000)}, To: message.Party{Address: "wallet"},
			Text: benchTexts[i%len(benchTexts)]}
	}
	return out
}

// BenchmarkStage measures messages routed per second through the real
// routing stage (the shipped config.yaml's rules, the SQLite store, queue
// publishes, acks) on an embedded JetStream server that fsyncs every write,
// as `inroute serve` runs by default. The baseline, in the same run and on
// the same kind of server, only consumes, republishes and acks the same
// messages with no rules and no store: what the bus alone allows. The
// issue's goal: routing keeps at least half the baseline's rate.
func BenchmarkStage(b *testing.B) {
	var baseline, routing float64 // the last (measured) run's rates
	defer func() {
		if baseline > 0 && routing > 0 {
			fmt.Printf("BenchmarkStage: routing %.0f msgs/s, baseline %.0f msgs/s, ratio %.2f (goal at least 0.50)\n",
				routing, baseline, routing/baseline)
		}
	}()
	b.Run("baseline", func(b *testing.B) {
		srv := testbus.StartWith(b, testbus.Options{SyncAlways: true})
		bb := srv.Connect(b)
		publishBench(b, bb, b.N)
		b.ResetTimer()
		drainBaseline(b, bb, b.N)
		baseline = float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(baseline, "msgs/s")
	})
	b.Run("routing", func(b *testing.B) {
		srv := testbus.StartWith(b, testbus.Options{SyncAlways: true})
		bb := srv.Connect(b)
		src, err := os.ReadFile("../config.yaml")
		if err != nil {
			b.Fatal(err)
		}
		cfg, err := config.Parse("config.yaml", src, nil)
		if err != nil {
			b.Fatal(err)
		}
		e, err := rules.Check(cfg)
		if err != nil {
			b.Fatal(err)
		}
		st := openStore(b)
		publishBench(b, bb, b.N)
		b.ResetTimer()
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- router.New(bb, st, e, zap.NewNop(), router.Options{}).Run(ctx) }()
		waitQueues(b, bb, b.N)
		b.StopTimer()
		cancel()
		<-done
		routing = float64(b.N) / b.Elapsed().Seconds()
		b.ReportMetric(routing, "msgs/s")
	})
}

func publishBench(b *testing.B, bb *bus.Bus, n int) {
	msgs := benchMessages(n)
	for i, m := range msgs {
		data, _ := message.Encode(m)
		if _, err := bb.JS.PublishAsync(bus.InboundSubject(m.Channel), data, jetstream.WithMsgID(m.DedupeKey())); err != nil {
			b.Fatal(err)
		}
		if (i+1)%1000 == 0 || i == n-1 {
			<-bb.JS.PublishAsyncComplete()
		}
	}
}

// drainBaseline is the bus's share of the routing stage's work, nothing
// else: fetch a batch, republish each message to QUEUES, wait for the acks,
// ack the inbound messages.
func drainBaseline(b *testing.B, bb *bus.Bus, n int) {
	cons, err := bb.JS.CreateOrUpdateConsumer(context.Background(), bus.StreamInbound, jetstream.ConsumerConfig{
		Durable: "baseline", FilterSubject: bus.SubjectsInbound, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		b.Fatal(err)
	}
	got := 0
	for got < n {
		batch, err := cons.Fetch(256, jetstream.FetchMaxWait(time.Second))
		if err != nil {
			b.Fatal(err)
		}
		var ins []jetstream.Msg
		var futs []jetstream.PubAckFuture
		for m := range batch.Messages() {
			f, err := bb.JS.PublishMsgAsync(&nats.Msg{Subject: fmt.Sprint("queue.general.normal.", got+len(ins)), Data: m.Data()})
			if err != nil {
				b.Fatal(err)
			}
			ins, futs = append(ins, m), append(futs, f)
		}
		for i, f := range futs {
			select {
			case <-f.Ok():
				_ = ins[i].Ack()
			case err := <-f.Err():
				b.Fatal(err)
			}
		}
		got += len(ins)
	}
}

func waitQueues(b *testing.B, bb *bus.Bus, n int) {
	cons, err := bb.JS.Consumer(context.Background(), bus.StreamInbound, bus.ConsumerRouter)
	for err != nil {
		time.Sleep(5 * time.Millisecond)
		cons, err = bb.JS.Consumer(context.Background(), bus.StreamInbound, bus.ConsumerRouter)
	}
	for {
		info, err := cons.Info(context.Background())
		if err == nil && info.NumPending == 0 && info.NumAckPending == 0 && info.Delivered.Consumer >= uint64(n) {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}
