package config_test

import (
	"strings"
	"testing"

	"github.com/inroute/inroute/config"
)

// A placeholder the auto-replier cannot fill stops the version at load,
// at the template's line and column, instead of reaching a customer.
func TestTemplatePlaceholdersAreCheckedAtLoad(t *testing.T) {
	const head = `
routing:
  topics: {general: {}}
  precedence: [general]
  templates:
    ack:
`
	cases := []struct{ name, templates, want string }{
		{"known placeholders", `      en: "Received as {token}; expect us within {answer_within}."
      zh: "已收到 {token}，预计回复时间：{answer_within}。"
      fr: "Reçu : {token}."`, ""},
		{"braces that are no placeholder", `      en: "Reply with {your order number} or { token }."`, ""},
		{"unknown placeholder", `      en: "Hello {name}, received as {token}."`,
			`config.yaml:7:11: routing.templates.ack.en: unknown placeholder {name} (known: {answer_within}, {token})`},
		{"placeholders are lower case", `      en: "Received as {Token}."`, `unknown placeholder {Token}`},
		{"answer time in a language it cannot be written in", `      en: "Within {answer_within}."
      fr: "Sous {answer_within}."`,
			`config.yaml:8:11: routing.templates.ack.fr: {answer_within} can only be written in en, zh, not in a "fr" template`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := config.Parse("config.yaml", []byte(head+tc.templates+"\n"), envOf(nil))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestRuleTestsQueueHintAndAutoReplyAreChecked(t *testing.T) {
	src := `
routing:
  queues: {refunds: {}, general: {}}
  default_queue: general
  topics: {general: {}}
  precedence: [general]
  templates: {ack: {en: "Received."}}
  tests:
    - name: hinted
      message: {channel: email, text: hi, queue_hint: refunds}
      expect: {auto_reply: ack}
    - name: typo
      message: {channel: email, text: hi, queue_hint: refund}
      expect: {auto_reply: akc}
`
	_, err := config.Parse("config.yaml", []byte(src), envOf(nil))
	if err == nil {
		t.Fatal("no error")
	}
	for _, want := range []string{
		`routing.tests[1].message.queue_hint: unknown queue "refund"`,
		`routing.tests[1].expect.auto_reply: unknown template "akc"`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q:\n%v", want, err)
		}
	}
	if strings.Contains(err.Error(), "routing.tests[0]") {
		t.Errorf("the first test is valid:\n%v", err)
	}
}

func TestFillTemplate(t *testing.T) {
	got := config.FillTemplate("{token}: {answer_within}, {other} {token}", func(name string) (string, bool) {
		switch name {
		case config.PlaceholderToken:
			return "[#7]", true
		case config.PlaceholderAnswerWithin:
			return "4 hours", true
		}
		return "", false
	})
	if want := "[#7]: 4 hours, {other} [#7]"; got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}
