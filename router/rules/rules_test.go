package rules_test

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/router/rules"
)

const small = `
routing:
  version: test-1
  default_queue: general
  queues:
    security: {description: incidents}
    refunds: {}
    recharge: {}
    vip: {}
    general: {}
  topics:
    security:
      floor: urgent
      auto_reply: freeze
      match:
        - any: [被盗, hacked, 盗刷]
        - all: [[账户, account], [异常登录, unknown login]]
          none: [怎么]
    refunds:
      floor: normal
      match:
        - any: [退款, refund, money back]
    recharge:
      floor: high
      match:
        - all: [[充值, top up, recharge], [没到账, not arrived, missing, fail]]
        - regex: ['deposit \d+ (usd|rmb)']
    general: {}
  precedence: [security, refunds, recharge, general]
  haste:
    words: [紧急, 急, 马上, urgent, asap]
    not: [不急, not urgent]
  rules:
    - name: vip-mail
      when: {channel: [email], from: ["@vip.example"]}
      then: {queue: vip, floor: high, tags: [vip]}
    - name: long-recharge-mails
      when: {topic: [recharge], expr: 'len_text > 40'}
      then: {tags: [detailed], stop: true}
    - name: never-reached
      when: {topic: [recharge]}
      then: {tags: [after-stop]}
    - name: night-calls
      when: {channel: [voice], business_hours: false}
      then: {tags: [after-hours]}
  business_hours: {timezone: Asia/Shanghai, days: [mon, tue, wed, thu, fri], start: "09:00", end: "18:00"}
  templates:
    freeze: {zh: 请立即冻结账户, en: Freeze your account now}
  tests:
    - name: stolen
      message: {channel: sms, text: 我的账户被盗了}
      expect: {queue: security, urgency: urgent, topic: security}
`

func load(t *testing.T, src string) *config.Config {
	t.Helper()
	cfg, err := config.Parse("config.yaml", []byte(src), nil)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func engine(t *testing.T, src string) *rules.Engine {
	t.Helper()
	e, err := rules.Check(load(t, src))
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// A Wednesday afternoon and a Wednesday night in Shanghai.
var (
	office = time.Date(2026, 11, 25, 14, 0, 0, 0, time.FixedZone("CST", 8*3600))
	night  = time.Date(2026, 11, 25, 23, 0, 0, 0, time.FixedZone("CST", 8*3600))
)

func msg(ch message.Channel, subject, text, from string, at time.Time) *message.Message {
	return &message.Message{V: 1, ID: message.NewID(), Channel: ch, ChannelMessageID: "x", ReceivedAt: at,
		From: message.Party{Address: from}, Subject: subject, Text: text}
}

func TestDecide(t *testing.T) {
	e := engine(t, small)
	cases := []struct {
		name                  string
		m                     *message.Message
		queue, urgency, topic string
		tags                  []string
		explainHas, autoReply string
	}{
		{"security by any word", msg(message.Email, "", "My wallet was HACKED!", "a@x", office), "security", "urgent", "security", nil, `"hacked"`, "freeze"},
		{"security by all groups", msg(message.App, "", "账户有异常登录提醒", "u", office), "security", "urgent", "security", nil, `"账户" + "异常登录"`, "freeze"},
		{"none excludes", msg(message.Email, "", "账户异常登录怎么处理", "a@x", office), "general", "low", "general", nil, "no topic matched", ""},
		{"traditional folds", msg(message.SMS, "", "帳戶被盜", "+1", office), "security", "urgent", "security", nil, `"被盗"`, "freeze"},
		{"precedence: refund beats recharge", msg(message.SMS, "", "充值没到账，我要退款", "+1", office), "refunds", "normal", "refunds", nil, `"退款"`, ""},
		{"recharge floor over channel", msg(message.Email, "", "top up not arrived", "b@x", office), "recharge", "high", "recharge", []string{"after-stop"}, "at least high", ""},
		{"regex", msg(message.Email, "", "I made a deposit 100 usd", "b@x", office), "recharge", "high", "recharge", []string{"after-stop"}, "deposit 100 usd", ""},
		{"subject counts", msg(message.Email, "Refund please", "order 1234", "b@x", office), "refunds", "normal", "refunds", nil, `"refund"`, ""},
		{"haste raises one level", msg(message.SMS, "", "refund ASAP please", "+1", office), "refunds", "high", "refunds", nil, "haste words", ""},
		{"haste never above urgent", msg(message.Voice, "", "紧急 被盗", "+1", office), "security", "urgent", "security", nil, "already urgent", "freeze"},
		{"a negation holds the haste word: no raise", msg(message.SMS, "", "我要退款，不急", "+1", office), "refunds", "normal", "refunds", nil, `"退款"`, ""},
		{"english negation", msg(message.SMS, "", "refund please, not urgent", "+1", office), "refunds", "normal", "refunds", nil, `"refund"`, ""},
		{"real haste beside a negation still raises", msg(message.SMS, "", "退款不急，但是账单马上到期", "+1", office), "refunds", "high", "refunds", nil, `haste words "马上"`, ""},
		{"rule by sender domain", msg(message.Email, "", "hello", "boss@VIP.example", office), "vip", "high", "general", []string{"vip"}, "rule vip-mail", ""},
		{"expr and stop", msg(message.Email, "", "my top up did not arrive and I have waited for two whole days now", "c@x", office), "recharge", "high", "recharge", []string{"detailed"}, "; stop", ""},
		{"rule after stop not applied when stopped", msg(message.Email, "", "top up missing", "c@x", office), "recharge", "high", "recharge", []string{"after-stop"}, "rule never-reached", ""},
		{"business hours false at night", msg(message.Voice, "", "hello", "+1", night), "general", "urgent", "general", []string{"after-hours"}, "outside business hours", ""},
		{"business hours false by day", msg(message.Voice, "", "hello", "+1", office), "general", "urgent", "general", nil, "channel guidance", ""},
		{"word boundary: apple is not app", msg(message.Email, "", "recharge apple", "d@x", office), "general", "low", "general", nil, "no topic", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Decide(tc.m)
			if d.Queue != tc.queue || string(d.Urgency) != tc.urgency || d.Topic != tc.topic || d.AutoReply != tc.autoReply {
				t.Fatalf("got %s/%s/%s reply %q, want %s/%s/%s reply %q\n%s", d.Queue, d.Urgency, d.Topic, d.AutoReply,
					tc.queue, tc.urgency, tc.topic, tc.autoReply, strings.Join(d.Explain, "\n"))
			}
			if strings.Join(d.Tags, ",") != strings.Join(tc.tags, ",") {
				t.Fatalf("tags %v, want %v", d.Tags, tc.tags)
			}
			if !strings.Contains(strings.Join(d.Explain, "\n"), tc.explainHas) {
				t.Fatalf("explanation lacks %q:\n%s", tc.explainHas, strings.Join(d.Explain, "\n"))
			}
			if d.RulesVersion != "test-1" {
				t.Fatalf("rules version %q", d.RulesVersion)
			}
		})
	}
	if got := e.Template("freeze", "zh"); got != "请立即冻结账户" {
		t.Fatalf("template zh: %q", got)
	}
	if got := e.Template("freeze", "fr"); got != "Freeze your account now" {
		t.Fatalf("template fallback: %q", got)
	}
}

func TestCompileErrorsArePositioned(t *testing.T) {
	cases := []struct{ name, src, want string }{
		{"word that normalizes to nothing", `
routing:
  topics:
    refunds:
      match:
        - any: [refund, "!!!"]
    general: {}
  precedence: [refunds, general]
`, `config.yaml:6:25: routing.topics.refunds.match[0].any[1]: "!!!" has no letters or digits left`},
		{"bad expression", `
routing:
  topics: {general: {}}
  precedence: [general]
  rules:
    - name: r
      when: {expr: 'len_text >'}
      then: {tags: [x]}
`, `config.yaml:7:20: routing.rules[0].when.expr:`},
		{"failing rule test", `
routing:
  topics:
    refunds: {match: [{any: [refund]}]}
    general: {}
  precedence: [refunds, general]
  tests:
    - name: wrong on purpose
      message: {channel: email, text: I want a refund}
      expect: {queue: payments}
`, `config.yaml:8:7: routing.tests[0]: wrong on purpose: queue general, want payments`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := rules.Check(load(t, tc.src))
			var ce *config.Error
			if err == nil || !errors.As(err, &ce) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestDefaultVersionIsAHash(t *testing.T) {
	a := engine(t, "routing: {topics: {general: {}}, precedence: [general]}\n")
	b := engine(t, "routing: {topics: {general: {floor: normal}}, precedence: [general]}\n")
	if !strings.HasPrefix(a.Version(), "sha256:") || a.Version() == b.Version() {
		t.Fatalf("versions %q and %q", a.Version(), b.Version())
	}
}

const hinted = `
routing:
  version: hint-1
  default_queue: general
  queues: {security: {}, refunds: {}, vip: {}, general: {}}
  topics:
    security:
      floor: urgent
      auto_reply: freeze
      match: [{any: [hacked]}]
    refunds:
      match: [{any: [refund]}]
    general: {}
  precedence: [security, refunds, general]
  rules:
    - name: vip-mail
      when: {channel: [email], from: ["@vip.example"]}
      then: {queue: vip}
    - name: ack-mail
      when: {channel: [email], expr: 'auto_reply == ""'}
      then: {auto_reply: ack}
    - name: refunds-mailbox-is-normal
      when: {expr: 'queue == "refunds"'}
      then: {floor: normal}
  templates:
    freeze: {en: "Freeze your account, then expect us within {answer_within}."}
    ack: {en: "We have it as {token}.", zh: "已收到 {token}。"}
  tests:
    - name: mail to refunds@ starts in refunds
      message: {channel: email, to: refunds@example.com, queue_hint: refunds, text: hello there}
      expect: {queue: refunds, urgency: normal, topic: general, auto_reply: ack}
    - name: a hacked account mailed to refunds@ is security's
      message: {channel: email, to: refunds@example.com, queue_hint: refunds, text: my account was hacked}
      expect: {queue: security, auto_reply: freeze}
`

func hintMsg(ch message.Channel, to, hint, from, text string) *message.Message {
	m := msg(ch, "", text, from, office)
	m.To = message.Party{Address: to}
	if hint != "" {
		m.Extra = map[string]string{message.ExtraQueueHint: hint}
	}
	return m
}

// A connector's queue hint places mail no topic claims; a topic still
// wins, and later rules still apply.
func TestQueueHint(t *testing.T) {
	e := engine(t, hinted)
	cases := []struct {
		name                         string
		m                            *message.Message
		queue, urgency, topic, reply string
		explain                      string
	}{
		{"hint when no topic matched", hintMsg(message.Email, "refunds@example.com", "refunds", "a@x", "hello there"),
			"refunds", "normal", "general", "ack", "no topic matched: topic general, mailbox refunds@example.com hints queue refunds"},
		{"a matched topic wins over the hint", hintMsg(message.Email, "refunds@example.com", "refunds", "a@x", "my wallet was hacked"),
			"security", "urgent", "security", "freeze", `topic security: the message says "hacked"; queue security`},
		{"later rules still move it", hintMsg(message.Email, "refunds@example.com", "refunds", "boss@vip.example", "hello there"),
			"vip", "low", "general", "ack", "rule vip-mail (channel email; from boss@vip.example): queue refunds → vip"},
		{"an unknown queue is not taken", hintMsg(message.Email, "old@example.com", "closed", "a@x", "hello there"),
			"general", "low", "general", "ack", `mailbox old@example.com hints queue "closed", which is not configured; queue general`},
		{"no hint: the fallback", hintMsg(message.Email, "help@example.com", "", "a@x", "hello there"),
			"general", "low", "general", "ack", "no topic matched: topic general, queue general"},
		{"another channel's hint", hintMsg(message.SMS, "+8610000", "refunds", "+861", "hello there"),
			"refunds", "normal", "general", "", "no topic matched: topic general, sms address +8610000 hints queue refunds"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d := e.Decide(tc.m)
			why := strings.Join(d.Explain, "\n")
			if d.Queue != tc.queue || string(d.Urgency) != tc.urgency || d.Topic != tc.topic || d.AutoReply != tc.reply {
				t.Fatalf("got %s/%s/%s reply %q, want %s/%s/%s reply %q\n%s", d.Queue, d.Urgency, d.Topic, d.AutoReply,
					tc.queue, tc.urgency, tc.topic, tc.reply, why)
			}
			if !strings.Contains(why, tc.explain) {
				t.Fatalf("explanation lacks %q:\n%s", tc.explain, why)
			}
		})
	}
}

// Without a fallback topic (no general: {}), the default queue is what
// the hint replaces.
func TestQueueHintWithoutFallbackTopic(t *testing.T) {
	e := engine(t, `
routing:
  default_queue: general
  queues: {refunds: {}, general: {}}
  topics: {refunds: {match: [{any: [refund]}]}}
  precedence: [refunds]
`)
	d := e.Decide(hintMsg(message.Email, "refunds@example.com", "refunds", "a@x", "hello"))
	if want := "no topic matched: mailbox refunds@example.com hints queue refunds"; d.Queue != "refunds" || !slices.Contains(d.Explain, want) {
		t.Fatalf("queue %s, explain %q; want refunds and %q", d.Queue, d.Explain, want)
	}
}

func TestRuleTestsCheckTheHintAndTheAutoReply(t *testing.T) {
	wrong := strings.Replace(hinted, "expect: {queue: security, auto_reply: freeze}", "expect: {queue: security, auto_reply: ack}", 1)
	_, err := rules.Check(load(t, wrong))
	if err == nil || !strings.Contains(err.Error(), "routing.tests[1]: a hacked account mailed to refunds@ is security's: auto-reply freeze, want ack") {
		t.Fatalf("got %v", err)
	}
	// An SMS takes no ack: the expectation names what is missing.
	sms := strings.Replace(hinted, "message: {channel: email, to: refunds@example.com, queue_hint: refunds, text: hello there}",
		"message: {channel: sms, to: refunds@example.com, queue_hint: refunds, text: hello there}", 1)
	_, err = rules.Check(load(t, sms))
	if err == nil || !strings.Contains(err.Error(), "routing.tests[0]: mail to refunds@ starts in refunds: auto-reply none, want ack") {
		t.Fatalf("got %v", err)
	}
}

func TestTemplateIn(t *testing.T) {
	e := engine(t, hinted)
	for _, tc := range []struct{ name, lang, text, in string }{
		{"ack", "zh", "已收到 {token}。", "zh"},
		{"ack", "fr", "We have it as {token}.", "en"},
		{"freeze", "zh", "Freeze your account, then expect us within {answer_within}.", "en"},
		{"gone", "en", "", ""},
	} {
		if text, in := e.TemplateIn(tc.name, tc.lang); text != tc.text || in != tc.in {
			t.Errorf("TemplateIn(%s, %s) = %q, %q; want %q, %q", tc.name, tc.lang, text, in, tc.text, tc.in)
		}
	}
}
