package rules_test

import (
	"os"
	"testing"
	"time"

	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/router/rules"
)

// BenchmarkDecide: one whole decision (normalize, match, topics, haste,
// rules, explanation) with the shipped config.yaml's rules, on a
// 200-character mixed-language message.
func BenchmarkDecide(b *testing.B) {
	src, err := os.ReadFile("../../config.yaml")
	if err != nil {
		b.Fatal(err)
	}
	cfg, err := config.Parse("config.yaml", src, nil)
	if err != nil {
		b.Fatal(err)
	}
	e, err := rules.Compile(cfg)
	if err != nil {
		b.Fatal(err)
	}
	m := &message.Message{Channel: message.App, ReceivedAt: time.Now(), Subject: "充值问题 / top-up problem",
		Text: "你好，我昨天晚上用招商银行卡给钱包充值了500元，银行已经扣款了，但是钱包余额一直没有到账。Hi, my top-up of 500 from my bank card has not arrived yet although the bank charged me. 请尽快帮我查一下，谢谢！订单号 20261126-8812"}
	b.ReportAllocs()
	for b.Loop() {
		if d := e.Decide(m); d.Queue == "" {
			b.Fatal("no queue")
		}
	}
}
