package email

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/connectors"
	"github.com/inroute/inroute/connectors/email/mailtest"
	"github.com/inroute/inroute/message"
	"go.uber.org/zap/zaptest"
)

// The login of the test mailbox (the IMAP double's and the Dovecot's).
const (
	testUser     = mailtest.DefaultUser
	testPassword = mailtest.DefaultPassword
)

// mail makes a plain customer mail.
func mail(msgID, from, subject, body string, extra ...string) []byte {
	var b strings.Builder
	fmt.Fprintf(&b, "From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: Mon, 03 Jun 2024 10:00:00 +0800\r\nMessage-ID: %s\r\n", from, testUser, subject, msgID)
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n")
	b.WriteString(strings.ReplaceAll(body, "\n", "\r\n") + "\r\n")
	return []byte(b.String())
}

// running is a connector under test.
type running struct {
	c    *Connector
	stop func()
	done chan error
}

func startConnector(t *testing.T, b *bus.Bus, opt Options, crash func(string, uint32) bool) *running {
	t.Helper()
	if opt.BackoffMin == 0 {
		opt.BackoffMin, opt.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	}
	c := New(&connectors.Inbound{Bus: b}, b, opt, zaptest.NewLogger(t))
	c.crash = crash
	ctx, cancel := context.WithCancel(context.Background())
	r := &running{c: c, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	stopped := false
	r.stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-r.done:
			if err != nil {
				t.Errorf("connector: %v", err)
			}
		case <-time.After(15 * time.Second):
			t.Error("connector did not stop")
		}
	}
	t.Cleanup(r.stop)
	return r
}

// inbound reads every message on the INBOUND stream.
func inbound(t testing.TB, b *bus.Bus) []*message.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := b.JS.Stream(ctx, bus.StreamInbound)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out []*message.Message
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil {
			continue
		}
		m, err := message.Decode(raw.Data)
		if err != nil {
			t.Fatalf("invalid message on the bus: %v", err)
		}
		out = append(out, m)
	}
	return out
}

// waitInbound waits until the bus holds n messages and returns them.
func waitInbound(t *testing.T, b *bus.Bus, n int) []*message.Message {
	t.Helper()
	var got []*message.Message
	testbus.CheckFor(t, 10*time.Second, 20*time.Millisecond, func() error {
		if got = inbound(t, b); len(got) < n {
			return fmt.Errorf("%d messages on the bus, want %d", len(got), n)
		}
		return nil
	})
	return got
}
