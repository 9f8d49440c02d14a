package system_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/connectors"
	"github.com/inroute/inroute/desk"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/system"
	"go.uber.org/zap/zaptest"
)

const (
	appToken   = "e2e-app"
	agentToken = "e2e-agent"
)

func testConfig(t *testing.T) *config.Config {
	cfg := config.Default()
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.NATS.Embedded.Listen = "127.0.0.1:-1"
	cfg.Conns.App.Enabled = true
	cfg.Conns.App.Apps = []config.App{{Name: "wallet", Token: appToken}}
	// Tests drain whole queues: a capacity high enough not to matter.
	cfg.Agents = []config.Agent{{Name: "ann", Token: agentToken, Role: config.RoleAgent, Capacity: 1000}}
	return cfg
}

func start(t *testing.T, cfg *config.Config, roles system.Role) *system.System {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sys, err := system.Start(ctx, system.Options{Config: cfg, Roles: roles, Log: zaptest.NewLogger(t), Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		if err := sys.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
	})
	return sys
}

func do(t *testing.T, method, url, tok string, body any) (int, []byte, http.Header) {
	t.Helper()
	var r io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		r = bytes.NewReader(data)
	}
	req, _ := http.NewRequest(method, url, r)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data, resp.Header
}

func postApp(t *testing.T, base, id, text string) (int, string) {
	t.Helper()
	status, data, _ := do(t, "POST", base+"/v1/channels/app/messages", appToken,
		map[string]any{"message_id": id, "user": map[string]string{"id": "u-" + id}, "text": text})
	var resp struct{ ID string }
	_ = json.Unmarshal(data, &resp)
	return status, resp.ID
}

// pulled is what the tests read of a conversation taken with next.
type pulled struct {
	ID             string // the latest customer message
	ConversationID int64
	Queue          string
	Urgency        message.Urgency
	Explain        []string
	RulesVersion   string
}

func next(t *testing.T, base string) (int, *pulled) {
	t.Helper()
	status, data, _ := do(t, "POST", base+"/v1/agent/next", agentToken, nil)
	if status != http.StatusOK {
		return status, nil
	}
	var v desk.View
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("agent next: %v: %s", err, data)
	}
	p := &pulled{ConversationID: v.Conversation.ID, Queue: v.Conversation.Queue, Urgency: v.Conversation.Urgency,
		Explain: v.Explain, RulesVersion: v.Conversation.RulesVersion}
	for _, m := range v.Messages {
		if m.Direction == store.In {
			p.ID = m.ID
		}
	}
	return status, p
}

// waitQueued waits until the router has enqueued n items.
func waitQueued(t *testing.T, b *bus.Bus, n uint64) {
	t.Helper()
	testbus.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		st, err := b.JS.Stream(context.Background(), bus.StreamQueues)
		if err != nil {
			return err
		}
		info, err := st.Info(context.Background())
		if err != nil {
			return err
		}
		if info.State.Msgs != n {
			return fmt.Errorf("%d items queued, want %d", info.State.Msgs, n)
		}
		return nil
	})
}

func TestEndToEndMostUrgentFirst(t *testing.T) {
	sys := start(t, testConfig(t), system.RoleAll)
	base := "http://" + sys.HTTPAddr()

	if status, _, _ := do(t, "GET", base+"/healthz", "", nil); status != 200 {
		t.Fatalf("healthz %d", status)
	}
	if status, body, _ := do(t, "GET", base+"/readyz", "", nil); status != 200 {
		t.Fatalf("readyz %d: %s", status, body)
	}
	if status, _, _ := do(t, "POST", base+"/v1/agent/next", "", nil); status != 401 {
		t.Fatalf("agent next without token: %d", status)
	}
	if status, _ := next(t, base); status != http.StatusNoContent {
		t.Fatalf("empty queue: %d", status)
	}

	// An e-mail (low) arrives first, then two in-app messages (high), then a
	// call (urgent). The mail and the call come from their connectors over
	// the bus, as any connector process would publish them.
	pub := &connectors.Inbound{Bus: sys.Bus()}
	email := &message.Message{V: 1, ID: message.NewID(), Channel: message.Email, ChannelMessageID: "<1@x>",
		ReceivedAt: time.Now().UTC(), From: message.Party{Address: "a@example.com"}, Subject: "Question", Text: "How do I close my account?"}
	if _, _, err := pub.Publish(context.Background(), email); err != nil {
		t.Fatal(err)
	}
	s1, id1 := postApp(t, base, "a1", "绑定银行卡失败")
	s2, id2 := postApp(t, base, "a2", "payment failed")
	if s1 != 202 || s2 != 202 || id1 == "" || id2 == "" {
		t.Fatalf("app posts: %d %d", s1, s2)
	}
	call := &message.Message{V: 1, ID: message.NewID(), Channel: message.Voice, ChannelMessageID: "CA1",
		ReceivedAt: time.Now().UTC(), From: message.Party{Address: "+14155550100"}, Extra: map[string]string{"call_status": "no-answer"}}
	if _, _, err := pub.Publish(context.Background(), call); err != nil {
		t.Fatal(err)
	}
	waitQueued(t, sys.Bus(), 4)

	want := []struct {
		id      string
		urgency message.Urgency
	}{{call.ID, message.Urgent}, {id1, message.High}, {id2, message.High}, {email.ID, message.Low}}
	for i, w := range want {
		status, it := next(t, base)
		if status != 200 {
			t.Fatalf("pull %d: status %d", i, status)
		}
		if it.ID != w.id || it.Urgency != w.urgency || it.Queue != "general" || len(it.Explain) == 0 {
			t.Fatalf("pull %d: got %s %s %s, want %s %s", i, it.ID, it.Urgency, it.Queue, w.id, w.urgency)
		}
	}
	if status, _ := next(t, base); status != http.StatusNoContent {
		t.Fatalf("after draining: %d", status)
	}
}

// The system against an outside NATS server that goes away and comes back.
func TestOutsideNATSDownThenBack(t *testing.T) {
	srv := testbus.Start(t)
	cfg := testConfig(t)
	cfg.NATS.URL = srv.URL
	cfg.NATS.ReconnectWait = config.Duration(50 * time.Millisecond)
	sys := start(t, cfg, system.RoleAll)
	if sys.NATSURL() != "" {
		t.Fatal("embedded a server although nats.url was set")
	}
	base := "http://" + sys.HTTPAddr()

	var accepted []string
	for i := range 5 {
		status, id := postApp(t, base, fmt.Sprint("before-", i), "hello")
		if status != 202 {
			t.Fatalf("status %d", status)
		}
		accepted = append(accepted, id)
	}
	// Routed before the outage; a batch cut off mid-flight is the router's
	// own test (it comes back after the ack wait).
	waitQueued(t, sys.Bus(), uint64(len(accepted)))
	srv.Shutdown()
	status, body, hdr := do(t, "POST", base+"/v1/channels/app/messages", appToken,
		map[string]any{"message_id": "during", "user": map[string]string{"id": "u"}, "text": "hello"})
	if status != 503 || hdr.Get("Retry-After") == "" {
		t.Fatalf("bus down: %d %s", status, body)
	}
	if status, _, _ := do(t, "GET", base+"/readyz", "", nil); status != 503 {
		t.Fatalf("readyz with the bus down: %d", status)
	}
	// Agents keep working from the store while the bus is away.
	if status, body, _ := do(t, "GET", base+"/v1/queues", agentToken, nil); status != 200 || !bytes.Contains(body, []byte(`"waiting":5`)) {
		t.Fatalf("queue board with the bus down: %d %s", status, body)
	}
	srv.Restart()
	var duringID string
	testbus.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		status, id := postApp(t, base, "during", "hello")
		if status != 202 {
			return fmt.Errorf("status %d", status)
		}
		duringID = id
		return nil
	})
	accepted = append(accepted, duringID)
	waitQueued(t, sys.Bus(), uint64(len(accepted)))
	got := map[string]bool{}
	for {
		status, it := next(t, base)
		if status == http.StatusNoContent {
			break
		}
		if status != 200 {
			t.Fatalf("next: %d", status)
		}
		if got[it.ID] {
			t.Fatalf("item %s twice", it.ID)
		}
		got[it.ID] = true
	}
	for _, id := range accepted {
		if !got[id] {
			t.Fatalf("acknowledged message %s was lost", id)
		}
	}
	if len(got) != len(accepted) {
		t.Fatalf("got %d items, want %d", len(got), len(accepted))
	}
}

// Acknowledged messages survive a restart of the whole embedded system.
func TestRestartKeepsAcceptedWork(t *testing.T) {
	cfg := testConfig(t)
	ctx := context.Background()
	sys, err := system.Start(ctx, system.Options{Config: cfg, Roles: system.RoleAll, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + sys.HTTPAddr()
	status, id := postApp(t, base, "keep", "please keep me")
	if status != 202 {
		t.Fatal(status)
	}
	waitQueued(t, sys.Bus(), 1)
	if err := sys.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	sys2 := start(t, cfg, system.RoleAll)
	status, it := next(t, "http://"+sys2.HTTPAddr())
	if status != 200 || it.ID != id {
		t.Fatalf("after restart: %d %+v", status, it)
	}
}

func TestPartsAloneNeedASharedBus(t *testing.T) {
	cfg := testConfig(t)
	_, err := system.Start(context.Background(), system.Options{Config: cfg, Roles: system.RoleRouter})
	if err == nil {
		t.Fatal("router without nats.url started an embedded bus")
	}
}

// The parts as separate processes would run them: connector, router and
// API each with their own connection to one shared NATS.
func TestSeparateParts(t *testing.T) {
	srv := testbus.Start(t)
	cfg := testConfig(t)
	cfg.NATS.URL = srv.URL
	conn := start(t, cfg, system.RoleConnectors)
	start(t, cfg, system.RoleRouter)
	start(t, cfg, system.RoleRouter)
	apiSys := start(t, cfg, system.RoleAPI)
	for i := range 20 {
		if status, _ := postApp(t, "http://"+conn.HTTPAddr(), fmt.Sprint("p", i), "hi"); status != 202 {
			t.Fatal(status)
		}
	}
	waitQueued(t, apiSys.Bus(), 20)
	n := 0
	for {
		status, _ := next(t, "http://"+apiSys.HTTPAddr())
		if status == http.StatusNoContent {
			break
		}
		n++
	}
	if n != 20 {
		t.Fatalf("pulled %d, want 20", n)
	}
	// The API process serves no connector endpoints.
	if status, _, _ := do(t, "POST", "http://"+apiSys.HTTPAddr()+"/v1/channels/app/messages", appToken, map[string]any{}); status != 404 && status != 405 {
		t.Fatalf("api process answered the app endpoint: %d", status)
	}
}

// A start that fails part way stops what it started and says why.
func TestStartFailsCleanlyOnBusyPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cfg := testConfig(t)
	cfg.HTTP.Listen = ln.Addr().String()
	_, err = system.Start(context.Background(), system.Options{Config: cfg, Roles: system.RoleAll, Log: zaptest.NewLogger(t)})
	if err == nil || !strings.Contains(err.Error(), "http listen") {
		t.Fatalf("got %v, want an http listen error", err)
	}
	// The embedded server was stopped: the same data dir starts again.
	cfg.HTTP.Listen = "127.0.0.1:0"
	start(t, cfg, system.RoleAll)
}

// An admin edits config.yaml while inroute runs: a valid change takes
// effect within a second, a broken one is refused with its position and
// routing goes on with the old rules.
func TestEditRulesWhileRunning(t *testing.T) {
	path := filepath.Join(t.TempDir(), "config.yaml")
	rules := func(version, queue string) string {
		return fmt.Sprintf(`routing:
  version: %s
  queues: {general: {}, refunds: {}, billing: {}}
  topics:
    refunds: {queue: %s, match: [{any: [refund]}]}
    general: {}
  precedence: [refunds, general]
`, version, queue)
	}
	if err := os.WriteFile(path, []byte(rules("v1", "refunds")), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Conns.App.Enabled = true
	cfg.Conns.App.Apps = []config.App{{Name: "wallet", Token: appToken}}
	cfg.Agents = []config.Agent{{Name: "ann", Token: agentToken, Role: config.RoleAdmin, Capacity: 100}}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sys, err := system.Start(ctx, system.Options{Config: cfg, Roles: system.RoleAll, ConfigPath: path, Log: zaptest.NewLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = sys.Shutdown(context.Background()) })
	base := "http://" + sys.HTTPAddr()
	status := func() map[string]any {
		_, body, _ := do(t, "GET", base+"/v1/admin/routing", agentToken, nil)
		var st map[string]any
		_ = json.Unmarshal(body, &st)
		return st
	}
	if st := status(); st["version"] != "v1" {
		t.Fatalf("status %v", st)
	}
	time.Sleep(100 * time.Millisecond) // the watcher is up
	if err := os.WriteFile(path, []byte(rules("v2", "billing")), 0o600); err != nil {
		t.Fatal(err)
	}
	testbus.CheckFor(t, time.Second, 20*time.Millisecond, func() error {
		if v := status()["version"]; v != "v2" {
			return fmt.Errorf("version %v", v)
		}
		return nil
	})
	if err := os.WriteFile(path, []byte(strings.Replace(rules("v3", "billing"), "precedence: [refunds, general]", "precedence: [refunds]", 1)), 0o600); err != nil {
		t.Fatal(err)
	}
	testbus.CheckFor(t, 2*time.Second, 20*time.Millisecond, func() error {
		st := status()
		if e, _ := st["last_error"].(string); !strings.Contains(e, path+":6:5: routing.topics.general: topic \"general\" is not in routing.precedence") {
			return fmt.Errorf("status %v", st)
		}
		if st["version"] != "v2" {
			return fmt.Errorf("version %v", st["version"])
		}
		return nil
	})
	// The refusal is a metric too.
	_, metrics, _ := do(t, "GET", base+"/metrics", "", nil)
	for _, want := range []string{"inroute_rules_refused_total 1", `inroute_rules_info{version="v2"} 1`} {
		if !bytes.Contains(metrics, []byte(want)) {
			t.Fatalf("/metrics lacks %q", want)
		}
	}
	// Routing goes on with v2: refunds go to billing.
	if s, _ := postApp(t, base, "r1", "I want a refund"); s != 202 {
		t.Fatal(s)
	}
	waitQueued(t, sys.Bus(), 1)
	if s, it := next(t, base); s != 200 || it.Queue != "billing" || it.RulesVersion != "v2" {
		t.Fatalf("next: %d %+v", s, it)
	}
}
