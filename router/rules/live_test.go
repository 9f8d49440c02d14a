package rules_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/router/rules"
	"go.uber.org/zap/zaptest"
)

func version(v, refundQueue string) string {
	return fmt.Sprintf(`
routing:
  version: %s
  queues: {general: {}, refunds: {}, billing: {}}
  topics:
    refunds: {queue: %s, match: [{any: [refund]}]}
    general: {}
  precedence: [refunds, general]
`, v, refundQueue)
}

func refundQueue(l *rules.Live) string {
	return l.Decide(&message.Message{Channel: message.Email, Text: "a refund please", ReceivedAt: time.Now()}).Queue
}

func waitFor(t *testing.T, what string, fn func() bool) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for !fn() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func startLive(t *testing.T) (*rules.Live, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(path, []byte(version("v1", "refunds")), 0o600); err != nil {
		t.Fatal(err)
	}
	l := liveFrom(t, path)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Watch(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("watch: %v", err)
		}
	})
	time.Sleep(50 * time.Millisecond) // let the watcher start
	return l, path
}

func TestHotReload(t *testing.T) {
	l, path := startLive(t)
	if got := refundQueue(l); got != "refunds" {
		t.Fatalf("v1 routes refunds to %s", got)
	}

	// A valid edit in place takes effect within a second.
	if err := os.WriteFile(path, []byte(version("v2", "billing")), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "v2", func() bool { return l.Status().Version == "v2" })
	if got := refundQueue(l); got != "billing" {
		t.Fatalf("v2 routes refunds to %s", got)
	}

	// A broken edit is refused with its position; v2 keeps routing.
	broken := strings.Replace(version("v3", "billing"), "precedence: [refunds, general]", "precedence: [refunds, general, nope]", 1)
	if err := os.WriteFile(path, []byte(broken), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refusal", func() bool { return l.Status().LastError != "" })
	st := l.Status()
	if st.Version != "v2" || !strings.Contains(st.LastError, path+":8:34: routing.precedence[2]") || !strings.Contains(st.LastError, `unknown topic "nope"`) {
		t.Fatalf("after a broken edit: %+v", st)
	}
	if got := refundQueue(l); got != "billing" {
		t.Fatalf("the broken version took over: refunds go to %s", got)
	}

	// An editor that writes a new file and renames it over the old one.
	tmp := path + ".swp"
	if err := os.WriteFile(tmp, []byte(version("v4", "refunds")), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "v4", func() bool { return l.Status().Version == "v4" })
	if st := l.Status(); st.LastError != "" || st.Refused != 1 {
		t.Fatalf("after a good version: %+v", st)
	}
}

func TestReloadRefusesFailingTests(t *testing.T) {
	l, path := startLive(t)
	bad := version("v9", "billing") + `  tests:
    - message: {channel: email, text: refund}
      expect: {queue: refunds}
`
	if err := os.WriteFile(path, []byte(bad), 0o600); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the refusal", func() bool { return l.Status().LastError != "" })
	if st := l.Status(); st.Version != "v1" || !strings.Contains(st.LastError, "queue billing, want refunds") {
		t.Fatalf("%+v", st)
	}
}

// liveFrom loads the config at path and puts its rules in force.
func liveFrom(t *testing.T, path string) *rules.Live {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	e, err := rules.Check(cfg)
	if err != nil {
		t.Fatal(err)
	}
	l := rules.NewLive(e, path, zaptest.NewLogger(t))
	l.SetFiles(cfg.Files())
	return l
}
