package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const rulesConfig = `routing:
  version: cli-test
  queues: {general: {}, refunds: {}}
  topics:
    refunds: {floor: normal, match: [{any: [退款, refund]}]}
    general: {}
  precedence: [refunds, general]
  haste: {words: [紧急, urgent]}
  tests:
    - message: {channel: email, text: please refund me}
      expect: {queue: refunds, urgency: normal}
`

func TestRulesCommands(t *testing.T) {
	p := writeConfig(t, rulesConfig)
	rules := func(stdin string, args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		old := os.Stdin
		if stdin != "" {
			f := filepath.Join(t.TempDir(), "in.jsonl")
			_ = os.WriteFile(f, []byte(stdin), 0o600)
			args = append(args, "--input", f)
		}
		defer func() { os.Stdin = old }()
		code := run(context.Background(), append([]string{"rules"}, append(args, "--config", p)...), &out, &errb)
		return code, out.String(), errb.String()
	}
	if code, out, errs := rules("", "check"); code != 0 || !strings.Contains(out, "rules version cli-test: 2 topics, 0 rules, 1 tests passed") {
		t.Fatalf("check: %d %q %q", code, out, errs)
	}
	code, out, errs := rules(`{"channel":"sms","text":"紧急！我要退款","queue":"ignored"}
{"channel":"fax","text":"x"}
{"channel":"email","subject":"hello","text":"opening hours?"}
`, "test")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != exitFail || len(lines) != 3 || !strings.Contains(errs, "line 2: unknown channel") {
		t.Fatalf("test: %d %q %q", code, out, errs)
	}
	var first struct {
		Queue, Urgency, Topic string
		Explain               []string
	}
	if err := json.Unmarshal([]byte(lines[0]), &first); err != nil || first.Queue != "refunds" || first.Urgency != "high" || len(first.Explain) < 3 {
		t.Fatalf("first line %s (%v)", lines[0], err)
	}
	if !strings.Contains(lines[1], `"error"`) || !strings.Contains(lines[2], `"queue":"general"`) {
		t.Fatalf("lines %q", lines)
	}
	if code, out, _ := rules("", "explain", "--channel", "sms", "我要退款，很紧急"); code != 0 ||
		!strings.Contains(out, "queue:    refunds") || !strings.Contains(out, "haste words") || !strings.Contains(out, `"退款"`) {
		t.Fatalf("explain: %d %q", code, out)
	}
	// A broken rules file: exit 1 with file:line:col.
	bad := writeConfig(t, strings.Replace(rulesConfig, "expect: {queue: refunds, urgency: normal}", "expect: {queue: general}", 1))
	var out2, errb2 bytes.Buffer
	if code := run(context.Background(), []string{"rules", "check", "--config", bad}, &out2, &errb2); code != exitFail ||
		!strings.Contains(errb2.String(), bad+":10:7: routing.tests[0]: test 1: queue refunds, want general") {
		t.Fatalf("broken check: %d %q", code, errb2.String())
	}
	for _, args := range [][]string{{"rules"}, {"rules", "frob"}, {"rules", "explain", "--config", p, "no channel"}} {
		if code := run(context.Background(), args, &out2, &errb2); code != exitConfig {
			t.Errorf("%v: exit %d", args, code)
		}
	}
}
