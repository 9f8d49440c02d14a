package system

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/outbox"
	"github.com/inroute/inroute/router/rules"
	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/store/sqlite"
	"go.uber.org/zap/zaptest"
)

func TestAnswerWithin(t *testing.T) {
	d := func(s string) config.SLA {
		v, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		return config.SLA{FirstResponse: config.Duration(v)}
	}
	r := &config.Routing{Queues: map[string]config.RoutingQueue{
		"q": {SLA: map[string]config.SLA{
			"urgent": d("30m"), "high": d("1h"), "normal": d("4h"), "low": d("24h"),
		}},
		"odd": {SLA: map[string]config.SLA{
			"urgent": d("15m"), "high": d("1h30m"), "normal": d("36h"), "low": d("48h1s"),
		}},
		"none": {SLA: map[string]config.SLA{"urgent": {NextResponse: config.Duration(time.Hour)}}},
	}}
	cases := []struct {
		queue   string
		u       message.Urgency
		en, zh  string
		enBH    string
		zhBH    string
		comment string
	}{
		{"q", message.Urgent, "30 minutes", "30分钟", "30 minutes (business hours)", "30分钟（工作时间）", ""},
		{"q", message.High, "1 hour", "1小时", "1 hour (business hours)", "1小时（工作时间）", ""},
		{"q", message.Normal, "4 hours", "4小时", "4 hours (business hours)", "4小时（工作时间）", ""},
		{"q", message.Low, "1 day", "1天", "1 day (business hours)", "1天（工作时间）", ""},
		{"odd", message.Urgent, "15 minutes", "15分钟", "15 minutes (business hours)", "15分钟（工作时间）", ""},
		{"odd", message.High, "1 hour 30 minutes", "1小时30分钟", "1 hour 30 minutes (business hours)", "1小时30分钟（工作时间）", ""},
		{"odd", message.Normal, "1 day 12 hours", "1天12小时", "1 day 12 hours (business hours)", "1天12小时（工作时间）", ""},
		{"odd", message.Low, "2 days 1 second", "2天1秒", "2 days 1 second (business hours)", "2天1秒（工作时间）", ""},
		{"none", message.Urgent, "as soon as we can", "尽快", "as soon as we can", "尽快", "a queue without a first-response target"},
		{"none", message.Low, "as soon as we can", "尽快", "as soon as we can", "尽快", "no targets for the urgency"},
		{"gone", message.High, "as soon as we can", "尽快", "as soon as we can", "尽快", "a queue the rules no longer have"},
	}
	for _, tc := range cases {
		for _, bh := range []bool{false, true} {
			r.SLA.BusinessHours = bh
			en, zh := tc.en, tc.zh
			if bh {
				en, zh = tc.enBH, tc.zhBH
			}
			if got := answerWithin(r, tc.queue, tc.u, "en"); got != en {
				t.Errorf("%s/%s business hours %v, en: %q, want %q %s", tc.queue, tc.u, bh, got, en, tc.comment)
			}
			if got := answerWithin(r, tc.queue, tc.u, "zh"); got != zh {
				t.Errorf("%s/%s business hours %v, zh: %q, want %q %s", tc.queue, tc.u, bh, got, zh, tc.comment)
			}
		}
	}
}

func TestFillTemplate(t *testing.T) {
	r := &config.Routing{Queues: map[string]config.RoutingQueue{
		"refunds": {SLA: map[string]config.SLA{"low": {FirstResponse: config.Duration(24 * time.Hour)}}},
	}}
	c := &store.Conversation{ID: 42, Queue: "refunds", Urgency: message.Low}
	got := fillTemplate("Received as {token}; expect us within {answer_within}. {token} {unknown}", "en", c, r)
	if want := "Received as [#42]; expect us within 1 day. [#42] {unknown}"; got != want {
		t.Fatalf("got %q\nwant %q", got, want)
	}
}

// publisher keeps what the outbox hands to the channels.
type publisher struct {
	mu   sync.Mutex
	sent []message.Outbound
}

func (p *publisher) Publish(_ context.Context, _ string, data []byte, _ string, _ map[string][]string) error {
	var o message.Outbound
	if err := json.Unmarshal(data, &o); err != nil {
		return err
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.sent = append(p.sent, o)
	return nil
}

// replyRig is the real auto-replier over a real store, with the shipped
// rules as tweak changes them.
type replyRig struct {
	st    store.Store
	pub   *publisher
	live  *rules.Live
	reply *autoReplier
}

func newReplyRig(t *testing.T, tweak func(r *config.Routing)) *replyRig {
	t.Helper()
	src, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("config.yaml", src, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	if tweak != nil {
		tweak(&cfg.Routing)
	}
	e, err := rules.Check(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "inroute.db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = st.Close() })
	pub := &publisher{}
	live := rules.NewLive(e, "", zaptest.NewLogger(t))
	return &replyRig{st: st, pub: pub, live: live, reply: &autoReplier{out: &outbox.Outbox{Store: st, Pub: pub}, rules: live}}
}

// mail routes an e-mail by the shipped rules, records it as the router
// does, and sends its auto-reply twice (a redelivery); it returns the one
// stored auto-reply and the conversation.
func (r *replyRig) mail(t *testing.T, id, lang, subject, text string) (*store.Message, store.Conversation) {
	t.Helper()
	ctx := context.Background()
	m := &message.Message{V: message.Version, ID: message.NewID(), Channel: message.Email, ChannelMessageID: "<" + id + "@example.com>",
		ReceivedAt: time.Now().UTC(), From: message.Party{Address: id + "@example.com"}, To: message.Party{Address: "help@example.com"},
		Subject: subject, Text: text, Language: lang}
	d := r.live.Decide(m)
	if d.AutoReply == "" {
		t.Fatalf("no auto-reply decided:\n%s", strings.Join(d.Explain, "\n"))
	}
	res, err := r.st.Record(ctx, []store.Inbound{{Msg: m, Decision: store.Decision{Queue: d.Queue, Urgency: d.Urgency,
		Topic: d.Topic, Explain: d.Explain, RulesVersion: d.RulesVersion, Tags: d.Tags, AutoReply: d.AutoReply}}})
	if err != nil {
		t.Fatal(err)
	}
	conv := res[0].Conversation
	for range 2 {
		if err := r.reply.AutoReply(ctx, m, d.AutoReply, conv.ID); err != nil {
			t.Fatal(err)
		}
	}
	msgs, err := r.st.Messages(ctx, conv.ID)
	if err != nil {
		t.Fatal(err)
	}
	var autos []store.Message
	for _, sm := range msgs {
		if sm.Auto {
			autos = append(autos, sm)
		}
	}
	if len(autos) != 1 {
		t.Fatalf("%d auto-replies stored, want 1", len(autos))
	}
	return &autos[0], conv
}

// The shipped e-mail acknowledgement and security reply, filled for the
// conversation they answer, in the customer's language.
func TestAutoReplyQuotesTheAnswerTime(t *testing.T) {
	cases := []struct {
		name, lang, subject, text string
		businessHours             bool
		queue                     string
		urgency                   message.Urgency
		has                       []string
	}{
		{"ordinary mail, en", "", "Opening hours", "When is your office open on Saturdays?", false, "general", message.Low,
			[]string{"We have received your message as [#%d].", "Expected time until our first answer: 2 days.", "keep [#%d] in the subject"}},
		{"ordinary mail, zh from the text", "", "退款申请", "商品有质量问题，申请退款", false, "refunds", message.Normal,
			[]string{"编号为 [#%d]。", "预计首次回复时间：8小时。", "保留标题中的 [#%d]"}},
		{"ordinary mail, zh from the language, business hours", "zh-Hant", "Refund", "I want a refund for order 118", true, "refunds", message.Normal,
			[]string{"预计首次回复时间：8小时（工作时间）。"}},
		{"ordinary mail, business hours", "en", "Opening hours", "When is your office open on Saturdays?", true, "general", message.Low,
			[]string{"Expected time until our first answer: 2 days (business hours)."}},
		{"security mail keeps the hotline advice", "", "Account hacked", "My wallet password was changed and I did not do it", false, "security", message.Urgent,
			[]string{"Expected time until our first answer: 15 minutes.", "call the 24-hour hotline", "call that hotline"}},
		{"security mail, zh", "", "账户被盗", "我的账户被盗了", false, "security", message.Urgent,
			[]string{"预计首次回复时间：15分钟。", "24小时客服热线"}},
	}
	for i, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rig := newReplyRig(t, func(r *config.Routing) { r.SLA.BusinessHours = tc.businessHours })
			got, conv := rig.mail(t, "c"+string(rune('a'+i)), tc.lang, tc.subject, tc.text)
			if conv.Queue != tc.queue || conv.Urgency != tc.urgency {
				t.Fatalf("conversation in %s/%s, want %s/%s", conv.Queue, conv.Urgency, tc.queue, tc.urgency)
			}
			for _, h := range tc.has {
				if strings.Contains(h, "%d") {
					h = strings.ReplaceAll(h, "%d", itoa(conv.ID))
				}
				if !strings.Contains(got.Text, h) {
					t.Errorf("auto-reply lacks %q:\n%s", h, got.Text)
				}
			}
			if strings.ContainsAny(got.Text, "{}") {
				t.Errorf("placeholder left in the auto-reply:\n%s", got.Text)
			}
			rig.pub.mu.Lock()
			defer rig.pub.mu.Unlock()
			if len(rig.pub.sent) != 1 || rig.pub.sent[0].Text != got.Text || !rig.pub.sent[0].Auto {
				t.Fatalf("published %d replies, want the stored one once: %+v", len(rig.pub.sent), rig.pub.sent)
			}
		})
	}
}

// A queue without a first-response target for the urgency still gets a
// reply that reads well.
func TestAutoReplyWithoutATarget(t *testing.T) {
	rig := newReplyRig(t, func(r *config.Routing) {
		r.SLA.BusinessHours = true // no target: nothing to qualify
		q := r.Queues["general"]
		q.SLA = nil
		r.Queues["general"] = q
	})
	got, _ := rig.mail(t, "nt", "", "Opening hours", "When is your office open on Saturdays?")
	if want := "Expected time until our first answer: as soon as we can."; !strings.Contains(got.Text, want) {
		t.Fatalf("auto-reply lacks %q:\n%s", want, got.Text)
	}
	got, _ = rig.mail(t, "nt-zh", "zh", "营业时间", "你们周六几点开门？")
	if want := "预计首次回复时间：尽快。"; !strings.Contains(got.Text, want) {
		t.Fatalf("auto-reply lacks %q:\n%s", want, got.Text)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }
