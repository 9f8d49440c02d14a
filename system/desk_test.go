package system_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/connectors"
	"github.com/inroute/inroute/desk"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
	"github.com/inroute/inroute/system"
	"github.com/inroute/inroute/webhook"
)

const (
	adminToken  = "e2e-admin"
	paysToken   = "e2e-pays"
	secondToken = "e2e-second"
)

// shippedConfig is the shipped config.yaml (its triage rules) on a temp
// data dir, with agents of every kind.
func shippedConfig(t *testing.T) *config.Config {
	t.Helper()
	src, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse("config.yaml", src, func(string) (string, bool) { return "", false })
	if err != nil {
		t.Fatal(err)
	}
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.Conns.App.Apps = []config.App{{Name: "wallet", Token: appToken}}
	cfg.Agents = []config.Agent{
		{Name: "ann", Token: agentToken, Role: config.RoleAgent, Capacity: 5},
		{Name: "root", Token: adminToken, Role: config.RoleAdmin, Capacity: 50},
		{Name: "pat", Token: paysToken, Role: config.RoleAgent, Queues: []string{"payments"}, Capacity: 1},
		{Name: "sam", Token: secondToken, Role: config.RoleAgent, Capacity: 5},
	}
	return cfg
}

func view(t *testing.T, status int, data []byte) *desk.View {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("status %d: %s", status, data)
	}
	var v desk.View
	if err := json.Unmarshal(data, &v); err != nil {
		t.Fatalf("%v: %s", err, data)
	}
	return &v
}

func waitWaiting(t *testing.T, sys *system.System, n int) {
	t.Helper()
	testbus.CheckFor(t, 15*time.Second, 20*time.Millisecond, func() error {
		w, err := sys.Store().Waiting(context.Background(), store.QueueFilter{})
		if err != nil {
			return err
		}
		if len(w) < n {
			return fmt.Errorf("%d of %d conversations waiting", len(w), n)
		}
		return nil
	})
}

// The walk-through: three in-app messages come back most urgent
// first, with their explanations; a reply is recorded once however often
// the call is retried; the board shows depths; metrics count it all.
func TestAgentWorkflowOverHTTP(t *testing.T) {
	sys := start(t, shippedConfig(t), system.RoleAll)
	base := "http://" + sys.HTTPAddr()
	for _, m := range [][2]string{
		{"pay", "My payment failed at the shop"},
		{"bind", "How do I bind my bank card?"},
		{"stolen", "有人从我的账户转走了钱 someone took money from my account"},
	} {
		if s, _ := postApp(t, base, m[0], m[1]); s != 202 {
			t.Fatalf("post %s: %d", m[0], s)
		}
	}
	waitWaiting(t, sys, 3)

	s, data, _ := do(t, "GET", base+"/v1/queues", agentToken, nil)
	var board desk.Board
	if s != 200 || json.Unmarshal(data, &board) != nil {
		t.Fatalf("board: %d %s", s, data)
	}
	depth := map[string]int{}
	for _, q := range board.Queues {
		depth[q.Name] = q.Waiting
	}
	if depth["security"] != 1 || depth["payments"] != 1 || depth["account"] != 1 {
		t.Fatalf("board depths %v", depth)
	}

	want := []struct{ queue, urgency, word string }{
		{"security", "urgent", "security"}, {"payments", "high", "payments"}, {"account", "high", "account"},
	}
	var ids []int64
	for i, w := range want {
		v := viewOK(t, "POST", base+"/v1/agent/next", agentToken)
		if v.Conversation.Queue != w.queue || string(v.Conversation.Urgency) != w.urgency || v.Conversation.LeaseUntil == nil {
			t.Fatalf("pull %d: %s/%s lease %v; want %s/%s", i, v.Conversation.Queue, v.Conversation.Urgency, v.Conversation.LeaseUntil, w.queue, w.urgency)
		}
		if !strings.Contains(strings.Join(v.Explain, "\n"), w.word) {
			t.Fatalf("pull %d: explanation does not mention %s: %q", i, w.word, v.Explain)
		}
		ids = append(ids, v.Conversation.ID)
	}
	if s, _, _ := do(t, "POST", base+"/v1/agent/next", agentToken, nil); s != http.StatusNoContent {
		t.Fatalf("drained queue: %d", s)
	}

	// A reply retried with the same key is one reply.
	url := fmt.Sprintf("%s/v1/conversations/%d/reply", base, ids[0])
	statuses := []int{}
	for range 2 {
		s, data, _ := doKey(t, url, agentToken, "idem-7", map[string]any{"text": "我们已冻结您的账户 / we froze your account"})
		if s != 201 && s != 200 {
			t.Fatalf("reply: %d %s", s, data)
		}
		statuses = append(statuses, s)
	}
	if statuses[0] != 201 || statuses[1] != 200 {
		t.Fatalf("reply statuses %v; want 201 then 200", statuses)
	}
	msgs, _ := sys.Store().Messages(context.Background(), ids[0])
	out, auto := 0, 0
	for _, m := range msgs {
		if m.Direction == store.Out && m.Auto {
			auto++ // the security topic's auto-reply
			continue
		}
		if m.Direction == store.Out {
			out++
			if m.Channel != message.App || m.FromValue != "wallet/u-stolen" || m.Author != "ann" {
				t.Fatalf("reply went to %s %s by %s", m.Channel, m.FromValue, m.Author)
			}
		}
	}
	if out != 1 || auto != 1 {
		t.Fatalf("%d replies and %d auto-replies stored, want 1 and 1", out, auto)
	}
	// The app's backend reads both from its feed, each once, and that
	// read is reported back as delivered.
	var feed struct {
		Replies []struct {
			ID   string `json:"id"`
			Text string `json:"text"`
			Auto bool   `json:"auto"`
		} `json:"replies"`
	}
	testbus.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		s, data, _ := do(t, "GET", base+"/v1/channels/app/replies?user=u-stolen", appToken, nil)
		if s != 200 || json.Unmarshal(data, &feed) != nil {
			return fmt.Errorf("feed: %d %s", s, data)
		}
		if len(feed.Replies) != 2 {
			return fmt.Errorf("feed has %d replies: %s", len(feed.Replies), data)
		}
		return nil
	})
	if !feed.Replies[0].Auto || feed.Replies[1].Auto || !strings.Contains(feed.Replies[1].Text, "冻结") {
		t.Fatalf("feed %+v", feed.Replies)
	}
	testbus.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		msgs, _ := sys.Store().Messages(context.Background(), ids[0])
		for _, m := range msgs {
			if m.Direction == store.Out && m.DeliveryStatus != store.DeliveryDelivered {
				return fmt.Errorf("reply %s is %s", m.ID, m.DeliveryStatus)
			}
		}
		return nil
	})

	// A reply with a file: stored content-addressed, served back as a download.
	s, data, _ = doKey(t, fmt.Sprintf("%s/v1/conversations/%d/reply", base, ids[1]), agentToken, "with-file", map[string]any{
		"text": "the receipt", "attachments": []map[string]string{{"name": "r.txt", "content_type": "text/plain", "data": "aGVsbG8="}}})
	var sent struct {
		Message store.Message `json:"message"`
	}
	if s != 201 || json.Unmarshal(data, &sent) != nil || len(sent.Message.Attachments) != 1 {
		t.Fatalf("reply with attachment: %d %s", s, data)
	}
	s, data, hdr := do(t, "GET", base+"/v1/attachments/"+sent.Message.Attachments[0].Ref, agentToken, nil)
	if s != 200 || string(data) != "hello" || hdr.Get("Content-Disposition") != "attachment" {
		t.Fatalf("attachment: %d %q %v", s, data, hdr)
	}

	// Other agents: pat takes payments only (and holds one at most).
	if s, data, _ := do(t, "GET", fmt.Sprintf("%s/v1/conversations/%d", base, ids[0]), paysToken, nil); s != 403 ||
		!strings.Contains(string(data), `"forbidden"`) {
		t.Fatalf("pat reading a security conversation: %d %s", s, data)
	}
	if s, _, _ := do(t, "POST", fmt.Sprintf("%s/v1/conversations/%d/resolve", base, ids[1]), paysToken, nil); s != 403 {
		t.Fatalf("pat resolving ann's conversation: %d", s)
	}
	if s, _, _ := do(t, "GET", base+"/v1/admin/routing", agentToken, nil); s != 403 {
		t.Fatalf("an agent reading the admin endpoint: %d", s)
	}
	if s, _, _ := do(t, "GET", base+"/v1/admin/routing", adminToken, nil); s != 200 {
		t.Fatalf("an admin reading the admin endpoint: %d", s)
	}
	if s, _, _ := do(t, "GET", base+"/v1/me", "wrong", nil); s != 401 {
		t.Fatalf("wrong token: %d", s)
	}
	// Ann releases the payment; pat takes it and is then at capacity.
	doOK(t, "POST", fmt.Sprintf("%s/v1/conversations/%d/release", base, ids[1]), agentToken, nil)
	if v := viewOK(t, "POST", base+"/v1/agent/next", paysToken); v.Conversation.ID != ids[1] {
		t.Fatalf("pat got %d, want the released payment %d", v.Conversation.ID, ids[1])
	}
	postApp(t, base, "pay2", "my transfer failed again")
	waitWaiting(t, sys, 1)
	if s, data, _ := do(t, "POST", base+"/v1/agent/next", paysToken, nil); s != 409 || !strings.Contains(string(data), "at_capacity") {
		t.Fatalf("pat over capacity: %d %s", s, data)
	}
	// Pat (payments only) finds neither the security conversation nor
	// its customer.
	s, data, _ = do(t, "GET", base+"/v1/conversations?contact=wallet/u-stolen", paysToken, nil)
	if s != 200 || strings.Contains(string(data), "u-stolen") {
		t.Fatalf("pat's search shows a security customer: %d %s", s, data)
	}
	// Search by the customer's id finds the conversation.
	s, data, _ = do(t, "GET", base+"/v1/conversations?contact=wallet/u-stolen", adminToken, nil)
	if s != 200 || !strings.Contains(string(data), fmt.Sprintf(`"id":%d`, ids[0])) {
		t.Fatalf("search: %d %s", s, data)
	}

	s, data, _ = do(t, "GET", base+"/metrics", "", nil)
	for _, name := range []string{`inroute_messages_in_total{channel="app"} 4`, "inroute_routing_latency_seconds_count 4",
		`inroute_queue_depth{queue="payments",urgency="high"} 1`, "inroute_claims_total 4", `inroute_replies_total{channel="app"} 2`,
		"inroute_lease_expiries_total 0", `inroute_reply_deliveries_total{channel="app",status="delivered"} 2`} {
		if s != 200 || !strings.Contains(string(data), name) {
			t.Errorf("metrics lack %q", name)
		}
	}
}

func viewOK(t *testing.T, method, url, tok string) *desk.View {
	t.Helper()
	s, data, _ := do(t, method, url, tok, nil)
	return view(t, s, data)
}

func doOK(t *testing.T, method, url, tok string, body any) (int, []byte) {
	t.Helper()
	s, data, _ := do(t, method, url, tok, body)
	if s != 200 {
		t.Fatalf("%s %s: %d %s", method, url, s, data)
	}
	return s, data
}

func doKey(t *testing.T, url, tok, key string, body any) (int, []byte, http.Header) {
	t.Helper()
	data, _ := json.Marshal(body)
	req, _ := http.NewRequest("POST", url, strings.NewReader(string(data)))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Idempotency-Key", key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b, resp.Header
}

// A claim nobody answers comes back after its lease; a long-poll wakes
// when work arrives.
func TestLeaseLapseAndLongPoll(t *testing.T) {
	cfg := shippedConfig(t)
	cfg.Desk.Lease = config.Duration(time.Second)
	cfg.Desk.CheckEvery = config.Duration(50 * time.Millisecond)
	sys := start(t, cfg, system.RoleAll)
	base := "http://" + sys.HTTPAddr()

	got := make(chan *desk.View, 1)
	go func() {
		req, _ := http.NewRequest("POST", base+"/v1/agent/next?wait=20s", nil)
		req.Header.Set("Authorization", "Bearer "+agentToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			got <- nil
			return
		}
		defer resp.Body.Close()
		var v desk.View
		if resp.StatusCode != 200 || json.NewDecoder(resp.Body).Decode(&v) != nil {
			got <- nil
			return
		}
		got <- &v
	}()
	time.Sleep(200 * time.Millisecond) // let the poll start waiting (its wake-up is what is tested)
	postApp(t, base, "late", "My payment failed")
	var v *desk.View
	select {
	case v = <-got:
	case <-time.After(15 * time.Second):
		t.Fatal("the long-poll did not wake on new work")
	}
	if v == nil {
		t.Fatal("the long-poll failed")
	}
	id := v.Conversation.ID
	testbus.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		c, err := sys.Store().Conversation(context.Background(), id)
		if err != nil {
			return err
		}
		if c.Status != store.StatusQueued {
			return fmt.Errorf("still %s by %s", c.Status, c.Assignee)
		}
		return nil
	})
	v = viewOK(t, "POST", base+"/v1/agent/next", secondToken)
	if v.Conversation.ID != id || v.Conversation.Assignee != "sam" {
		t.Fatalf("after the lapse sam got %d (%s)", v.Conversation.ID, v.Conversation.Assignee)
	}
	kinds := []string{}
	for _, e := range v.Events {
		kinds = append(kinds, e.Kind)
	}
	if !strings.Contains(strings.Join(kinds, ","), "claimed,lease_expired,claimed") {
		t.Fatalf("events %v", kinds)
	}
	_, data, _ := do(t, "GET", base+"/metrics", "", nil)
	if !strings.Contains(string(data), "inroute_lease_expiries_total 1") {
		t.Fatal("lease expiry not counted")
	}
}

// A missed target climbs the ladder and reaches the webhook, signed.
func TestSLAEscalationReachesTheWebhook(t *testing.T) {
	const secret = "a-webhook-secret-long-enough"
	got := make(chan desk.SLAEvent, 16)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if err := webhook.Verify([]byte(secret), r.Header.Get(webhook.Header), body, time.Now(), time.Minute); err != nil {
			t.Errorf("webhook signature: %v", err)
			w.WriteHeader(400)
			return
		}
		var ev desk.SLAEvent
		if err := json.Unmarshal(body, &ev); err != nil {
			t.Errorf("webhook body: %v", err)
		}
		got <- ev
	}))
	t.Cleanup(hook.Close)
	cfg := testConfig(t)
	cfg.Routing.Queues = map[string]config.RoutingQueue{"general": {SLA: map[string]config.SLA{
		"high": {FirstResponse: config.Duration(300 * time.Millisecond), NextResponse: config.Duration(time.Hour)}}}}
	cfg.Routing.SLA.Escalation = []config.EscalationStep{
		{After: 0, Notify: true},
		{After: config.Duration(300 * time.Millisecond), Raise: 1, Notify: true},
	}
	cfg.Desk.CheckEvery = config.Duration(50 * time.Millisecond)
	cfg.Desk.Webhook = config.Webhook{URL: hook.URL, Secret: secret, MaxAttempts: 3}
	sys := start(t, cfg, system.RoleAll)
	base := "http://" + sys.HTTPAddr()
	postApp(t, base, "slow", "hello?")

	var evs []desk.SLAEvent
	for len(evs) < 3 {
		select {
		case ev := <-got:
			evs = append(evs, ev)
		case <-time.After(15 * time.Second):
			t.Fatalf("webhook got %d events: %+v", len(evs), evs)
		}
	}
	kinds := fmt.Sprint(evs[0].Kind, evs[1].Kind, evs[1].Step, evs[2].Kind, evs[2].Step)
	if kinds != "breachedescalated1escalated2" || evs[2].Urgency != message.Urgent {
		t.Fatalf("events %+v", evs)
	}
	c, err := sys.Store().Conversation(context.Background(), evs[0].ConversationID)
	if err != nil || c.SLABreachedAt == nil || c.Urgency != message.Urgent || c.SLAStep != 2 {
		t.Fatalf("conversation after the ladder: %+v %v", c, err)
	}
}

// Shutdown does not wait out a long-poll.
func TestShutdownEndsLongPolls(t *testing.T) {
	cfg := testConfig(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	sys, err := system.Start(ctx, system.Options{Config: cfg, Roles: system.RoleAll, Name: t.Name()})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + sys.HTTPAddr()
	done := make(chan int, 1)
	go func() {
		req, _ := http.NewRequest("POST", base+"/v1/agent/next?wait=60s", nil)
		req.Header.Set("Authorization", "Bearer "+agentToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			done <- -1
			return
		}
		resp.Body.Close()
		done <- resp.StatusCode
	}()
	// The poll's arrival shows only in the agent's presence; give its
	// request a moment to reach the wait (what is tested is that it ends).
	testbus.CheckFor(t, 5*time.Second, 20*time.Millisecond, func() error {
		loads, err := sys.Store().AgentLoads(context.Background())
		if err != nil || len(loads) == 0 {
			return fmt.Errorf("agent not seen yet: %v", err)
		}
		return nil
	})
	time.Sleep(200 * time.Millisecond)
	start := time.Now()
	if err := sys.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(start); took > 10*time.Second {
		t.Fatalf("shutdown took %s with a long-poll open", took)
	}
	if code := <-done; code != http.StatusNoContent {
		t.Fatalf("the long-poll answered %d, want 204", code)
	}
}

// The auto-reply goes out once, in the customer's language.
func TestAutoReplyOnceInTheCustomersLanguage(t *testing.T) {
	sys := start(t, shippedConfig(t), system.RoleAll)
	base := "http://" + sys.HTTPAddr()
	for _, id := range []string{"lost-1", "lost-2"} { // the second joins the same conversation
		s, body, _ := do(t, "POST", base+"/v1/channels/app/messages", appToken, map[string]any{"message_id": id,
			"user": map[string]string{"id": "u-lost"}, "text": "I lost my phone, please lock my wallet", "language": "zh-CN"})
		if s != 202 {
			t.Fatalf("post: %d %s", s, body)
		}
	}
	var conv int64
	testbus.CheckFor(t, 10*time.Second, 50*time.Millisecond, func() error {
		w, err := sys.Store().Waiting(context.Background(), store.QueueFilter{})
		if err != nil || len(w) != 1 {
			return fmt.Errorf("waiting %d, %v", len(w), err)
		}
		msgs, _ := sys.Store().Messages(context.Background(), w[0].ID)
		if len(msgs) != 3 {
			return fmt.Errorf("%d messages", len(msgs))
		}
		conv = w[0].ID
		return nil
	})
	msgs, _ := sys.Store().Messages(context.Background(), conv)
	autos := 0
	for _, m := range msgs {
		if m.Auto {
			autos++
			if !strings.Contains(m.Text, "冻结账户") || m.Author != "inroute" {
				t.Fatalf("auto-reply %q by %s; want the Chinese security template", m.Text, m.Author)
			}
		}
	}
	if autos != 1 {
		t.Fatalf("%d auto-replies, want 1", autos)
	}
}

// A call cannot take a text auto-reply: the security call is routed, and
// nothing is sent.
func TestNoAutoReplyOnACall(t *testing.T) {
	sys := start(t, shippedConfig(t), system.RoleAll)
	pub := &connectors.Inbound{Bus: sys.Bus()}
	call := &message.Message{V: 1, ID: message.NewID(), Channel: message.Voice, ChannelMessageID: "CA-stolen",
		ReceivedAt: time.Now().UTC(), From: message.Party{Address: "+8613900000077"}, Text: "someone stole money from my account"}
	if _, _, err := pub.Publish(context.Background(), call); err != nil {
		t.Fatal(err)
	}
	waitWaiting(t, sys, 1)
	w, _ := sys.Store().Waiting(context.Background(), store.QueueFilter{})
	msgs, _ := sys.Store().Messages(context.Background(), w[0].ID)
	if w[0].Queue != "security" || len(msgs) != 1 {
		t.Fatalf("call routed to %s with %d messages; want security and no auto-reply", w[0].Queue, len(msgs))
	}
}
