package main

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
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/connectors/email/mailtest"
	"github.com/inroute/inroute/system"
	"go.uber.org/zap/zaptest"
)

const (
	agentTestApp = "agent-cli-app"
	agentTestAnn = "agent-cli-ann" // admin, every queue
	agentTestBob = "agent-cli-bob" // agent of general, capacity 1
)

func agentTestConfig(t *testing.T) *config.Config {
	t.Helper()
	p := writeConfig(t, `data_dir: `+filepath.Join(t.TempDir(), "data")+`
log: {level: warn}
http: {listen: 127.0.0.1:0}
nats: {embedded: {listen: 127.0.0.1:-1}}
connectors:
  app:
    enabled: true
    apps: [{name: wallet, token: `+agentTestApp+`}]
routing:
  version: agent-cli-test
  queues: {general: {}, security: {}}
  topics:
    security: {queue: security, floor: urgent, match: [{any: [转走, stolen]}]}
    general: {}
  precedence: [security, general]
agents:
  - {name: ann, token: `+agentTestAnn+`, role: admin, capacity: 5}
  - {name: bob, token: `+agentTestBob+`, queues: [general], capacity: 1}
`)
	cfg, err := config.Load(p)
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

// startAgentSystem runs the whole system in-process and points the agent
// command at it as ann.
func startAgentSystem(t *testing.T, edit ...func(*config.Config)) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := agentTestConfig(t)
	for _, e := range edit {
		e(cfg)
	}
	sys, err := system.Start(ctx, system.Options{Config: cfg, Roles: system.RoleAll, Log: zaptest.NewLogger(t), Name: t.Name()})
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
	base := "http://" + sys.HTTPAddr()
	t.Setenv("INROUTE_URL", base)
	t.Setenv("INROUTE_AGENT_TOKEN", agentTestAnn)
	return base
}

func postAppMessage(t *testing.T, base, user, text string) {
	t.Helper()
	body, _ := json.Marshal(map[string]any{"message_id": user + "-1", "user": map[string]string{"id": user, "name": "李雷"}, "text": text})
	req, _ := http.NewRequest("POST", base+"/v1/channels/app/messages", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+agentTestApp)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		t.Fatalf("post app message: %d", resp.StatusCode)
	}
}

func runAgentCmd(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := run(context.Background(), append([]string{"agent"}, args...), &out, &errb)
	return code, out.String(), errb.String()
}

// waitWaiting polls the queue board until n conversations wait.
func waitWaiting(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		code, out, errs := runAgentCmd("queues", "--json")
		var b struct {
			Queues []struct{ Waiting int } `json:"queues"`
		}
		got := -1
		if code == 0 && json.Unmarshal([]byte(out), &b) == nil {
			got = 0
			for _, q := range b.Queues {
				got += q.Waiting
			}
		}
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d conversations waiting, want %d (exit %d, %s)", got, n, code, errs)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestAgentCommands(t *testing.T) {
	base := startAgentSystem(t)
	postAppMessage(t, base, "u-pay", "payment failed")
	postAppMessage(t, base, "u-sec", "有人从我的账户转走了钱")
	waitWaiting(t, 2)

	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(agentTestBob+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	attachment := filepath.Join(t.TempDir(), "receipt.txt")
	if err := os.WriteFile(attachment, []byte("paid\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := "http://" + ln.Addr().String()
	ln.Close()

	vars := map[string]string{}
	steps := []struct {
		name  string
		args  []string
		token *string // nil: ann's
		stdin string
		code  int
		out   []string // substrings of stdout
		err   []string // substrings of stderr
		save  map[string]string
		check func(t *testing.T, out string)
	}{
		{name: "next takes the most urgent and explains it", args: []string{"next"},
			out:  []string{"queue security  urgency urgent  status assigned  assignee ann  lease ", " left\n", "有人从我的账户转走了钱", "why: ", "转走", "contact ", "app  wallet/u-sec"},
			save: map[string]string{"sec": `^#(\d+)  `}},
		{name: "renew", args: []string{"renew", "{sec}"}, out: []string{"lease on #{sec} renewed until"}},
		{name: "renew json", args: []string{"renew", "{sec}", "--json"}, check: jsonHas("lease_until")},
		{name: "reply with a key", args: []string{"reply", "{sec}", "--key", "k-1", "我们已冻结您的账户", "--channel", "app"},
			out: []string{" to #{sec} on app", "idempotency key: k-1"}, save: map[string]string{"reply": `reply (\S+) to #`}},
		{name: "the same key does not reply twice", args: []string{"reply", "{sec}", "我们已冻结您的账户", "--key", "k-1"},
			out: []string{"already sent with this key: reply {reply} to #{sec}"}},
		{name: "one reply stored", args: []string{"show", "{sec}", "--json"}, check: func(t *testing.T, out string) {
			var v struct {
				Conversation struct{ ID int64 }
				Messages     []struct{ ID, Direction, Author string }
			}
			if err := json.Unmarshal([]byte(out), &v); err != nil {
				t.Fatalf("show --json: %v: %s", err, out)
			}
			n := 0
			for _, m := range v.Messages {
				if m.Direction == "out" && m.Author == "ann" {
					n++
				}
			}
			if fmt.Sprint(v.Conversation.ID) != vars["sec"] || n != 1 {
				t.Fatalf("conversation %d with %d replies by ann, want %s with 1", v.Conversation.ID, n, vars["sec"])
			}
		}},
		{name: "reply from stdin makes up a key", args: []string{"reply", "{sec}", "-"}, stdin: "第二行\nsecond line\n",
			out: []string{"idempotency key: cli-"}},
		{name: "reply json", args: []string{"reply", "{sec}", "--json", "--key", "k-2", "--", "-- dashes are text"},
			check: jsonHas("message", "created")},
		{name: "reply with an attachment", args: []string{"reply", "{sec}", "--attach", attachment, "收据", "--key", "k-3"}, out: []string{" to #{sec} on app"}},
		{name: "note", args: []string{"note", "{sec}", "customer", "verified", "by", "phone"}, out: []string{"note added to #{sec}"}},
		{name: "show reads well", args: []string{"show", "#{sec}"},
			out: []string{"#{sec}  queue security", "有人从我的账户转走了钱", "    why: ", "  app  out  ann", "    我们已冻结您的账户", "    第二行\n    second line\n", "    收据\n    [attachment] receipt.txt (text/plain",
				"notes:", "ann: customer verified by phone"},
			check: func(t *testing.T, out string) { t.Logf("show:\n%s", out) }},
		{name: "urgency", args: []string{"urgency", "{sec}", "HIGH"}, out: []string{"urgency of #{sec} set to high", "urgency high"}},
		{name: "transfer to an agent", args: []string{"transfer", "{sec}", "--agent", "bob"}, out: []string{"transferred #{sec} to bob", "assignee bob"}},
		{name: "bob at capacity", token: ptr(agentTestBob), args: []string{"next"}, code: exitFail, err: []string{"inroute agent: at_capacity: "}},
		{name: "resolve", args: []string{"resolve", "{sec}"}, out: []string{"resolved #{sec}", "status resolved"}},
		{name: "reopen", args: []string{"reopen", "{sec}"}, out: []string{"reopened #{sec}", "status queued"}},
		{name: "not bob's queue", token: ptr(agentTestBob), args: []string{"show", "{sec}"}, code: exitFail, err: []string{"inroute agent: forbidden: "}},
		{name: "transfer to a queue", args: []string{"transfer", "{sec}", "--queue", "general", "--json"}, check: jsonHas("conversation", "messages")},
		{name: "me", args: []string{"me"}, out: []string{"ann (admin)", "queues:  general, security", "lease:   5m"}},
		{name: "me json", args: []string{"me", "--json"}, check: jsonHas("name", "capacity")},
		{name: "token file", token: ptr(""), args: []string{"me", "--token-file", tokenFile}, out: []string{"bob (agent)", "queues:  general"}},
		{name: "queues board", args: []string{"queues"}, out: []string{"QUEUE     WAITING  URGENT  HIGH", "general   2 ", "security  0 ", "agents:", "ann"},
			check: func(t *testing.T, out string) { t.Logf("queues:\n%s", out) }},
		{name: "next json", args: []string{"next", "--json"}, check: jsonHas("conversation", "contact", "messages", "explain"),
			save: map[string]string{"first": `"id": (\d+)`}},
		{name: "release", args: []string{"release", "{first}"}, out: []string{"released #{first} to its queue", "status queued  assignee -  lease -"}},
		{name: "drain 1", args: []string{"next"}, out: []string{"status assigned  assignee ann"}},
		{name: "drain 2", args: []string{"next", "--wait", "1s"}, out: []string{"status assigned  assignee ann"}},
		{name: "nothing waits", args: []string{"next"}, out: []string{"nothing is waiting"}},
		{name: "nothing waits, json", args: []string{"next", "--json"}, err: []string{"nothing is waiting"}, check: func(t *testing.T, out string) {
			if out != "" {
				t.Fatalf("stdout %q, want nothing", out)
			}
		}},
		{name: "nothing waits after a wait", args: []string{"next", "--wait", "50ms"}, out: []string{"nothing is waiting"}},
		{name: "not found", args: []string{"show", "99999"}, code: exitFail, err: []string{"inroute agent: not_found: "}},
		{name: "unknown queue", args: []string{"transfer", "{sec}", "--queue", "nowhere"}, code: exitFail, err: []string{"inroute agent: invalid_request: "}},
		{name: "wrong token", token: ptr("wrong"), args: []string{"me"}, code: exitFail, err: []string{"inroute agent: unauthorized: "}},
		{name: "missing token", token: ptr(""), args: []string{"next"}, code: exitConfig, err: []string{"no agent token", "INROUTE_AGENT_TOKEN", "--token-file"}},
		{name: "no --token flag", args: []string{"me", "--token=s3cr3t-value"}, code: exitConfig, err: []string{"there is no --token flag"}},
		{name: "connection refused", args: []string{"me", "--url", closed}, code: exitFail, err: []string{closed, "connection refused", "inroute serve"}},
		{name: "unknown subcommand", args: []string{"frobnicate"}, code: exitConfig, err: []string{`unknown subcommand "frobnicate"`}},
		{name: "show without id", args: []string{"show"}, code: exitConfig, err: []string{"missing arguments", "Usage: inroute agent show ID"}},
		{name: "show with a bad id", args: []string{"show", "abc"}, code: exitConfig, err: []string{`"abc" is not a conversation id`}},
		{name: "transfer needs a target", args: []string{"transfer", "{sec}"}, code: exitConfig, err: []string{"give one of --queue and --agent"}},
		{name: "bad urgency", args: []string{"urgency", "{sec}", "critical"}, code: exitConfig, err: []string{`"critical" is not an urgency`}},
		{name: "reply needs text", args: []string{"reply", "{sec}"}, code: exitConfig, err: []string{"give the reply's text", "Usage: inroute agent reply ID"}},
		{name: "reply with a missing attachment", args: []string{"reply", "{sec}", "--attach", "/nonexistent/a.pdf", "see attached"}, code: exitConfig, err: []string{"--attach: "}},
		{name: "bad --to", args: []string{"reply", "{sec}", "--to", "nobody", "hi"}, code: exitConfig, err: []string{"want kind:value"}},
		{name: "unknown flag", args: []string{"next", "--queue", "x"}, code: exitConfig, err: []string{"flag provided but not defined", "Usage: inroute agent next"}},
		{name: "subcommand help", args: []string{"reply", "--help"}, out: []string{"Usage: inroute agent reply", "-attach", "-token-file"}},
	}
	subst := func(s string) string {
		for k, v := range vars {
			s = strings.ReplaceAll(s, "{"+k+"}", v)
		}
		return s
	}
	for _, st := range steps {
		ok := t.Run(st.name, func(t *testing.T) {
			if st.token != nil {
				t.Setenv("INROUTE_AGENT_TOKEN", *st.token)
			}
			if st.stdin != "" {
				old := agentStdin
				agentStdin = strings.NewReader(st.stdin)
				defer func() { agentStdin = old }()
			}
			args := make([]string, len(st.args))
			for i, a := range st.args {
				args[i] = subst(a)
			}
			code, out, errs := runAgentCmd(args...)
			if code != st.code {
				t.Fatalf("agent %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, code, st.code, out, errs)
			}
			for _, want := range st.out {
				if want = subst(want); !strings.Contains(out, want) {
					t.Errorf("stdout lacks %q:\n%s", want, out)
				}
			}
			for _, want := range st.err {
				if want = subst(want); !strings.Contains(errs, want) {
					t.Errorf("stderr lacks %q:\n%s", want, errs)
				}
			}
			if strings.Contains(out+errs, "s3cr3t") || strings.Contains(out+errs, agentTestAnn) || strings.Contains(out+errs, agentTestBob) {
				t.Errorf("a token was printed:\n%s\n%s", out, errs)
			}
			for name, re := range st.save {
				m := regexp.MustCompile("(?m)" + re).FindStringSubmatch(out)
				if m == nil {
					t.Fatalf("no %s (%s) in:\n%s", name, re, out)
				}
				vars[name] = m[1]
			}
			if st.check != nil {
				st.check(t, out)
			}
		})
		if !ok && st.save != nil {
			t.FailNow() // later steps need what this one saves
		}
	}
}

func ptr(s string) *string { return &s }

// jsonHas checks that stdout is one JSON object with these keys.
func jsonHas(keys ...string) func(t *testing.T, out string) {
	return func(t *testing.T, out string) {
		t.Helper()
		var m map[string]json.RawMessage
		dec := json.NewDecoder(strings.NewReader(out))
		if err := dec.Decode(&m); err != nil {
			t.Fatalf("not a JSON object: %v\n%s", err, out)
		}
		if _, err := dec.Token(); err != io.EOF {
			t.Fatalf("more than one JSON value:\n%s", out)
		}
		for _, k := range keys {
			if _, ok := m[k]; !ok {
				t.Errorf("JSON lacks %q:\n%s", k, out)
			}
		}
	}
}

func TestAgentHelp(t *testing.T) {
	subs := []string{"next", "show", "reply", "resolve", "transfer", "release", "renew", "note", "urgency", "reopen", "queues", "me"}
	cases := []struct {
		args []string
		code int
	}{
		{[]string{"agent"}, exitConfig},
		{[]string{"agent", "help"}, exitOK},
		{[]string{"help", "agent"}, exitOK},
	}
	for _, tc := range cases {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := run(context.Background(), tc.args, &out, &errb); code != tc.code {
				t.Fatalf("exit %d, want %d: %s", code, tc.code, errb.String())
			}
			for _, s := range append(subs, "INROUTE_URL", "INROUTE_AGENT_TOKEN", "--token-file", "--json") {
				if !strings.Contains(out.String(), s) {
					t.Errorf("help lacks %q", s)
				}
			}
		})
	}
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"help"}, &out, &errb); code != 0 || !strings.Contains(out.String(), "  agent ") {
		t.Fatalf("inroute help does not list agent: %s", out.String())
	}
	for _, sub := range subs {
		out.Reset()
		if code := run(context.Background(), []string{"agent", "help", sub}, &out, &errb); code != 0 || !strings.Contains(out.String(), "Usage: inroute agent "+sub) {
			t.Errorf("agent help %s: %d %s", sub, code, out.String())
		}
	}
}

func TestAgentDisplayWidth(t *testing.T) {
	cases := []struct {
		s string
		w int
	}{{"abc", 3}, {"李雷", 4}, {"Ｌｉ", 4}, {"e\u0301", 1}, {"退款 refund", 11}, {"", 0}}
	for _, tc := range cases {
		if got := displayWidth(tc.s); got != tc.w {
			t.Errorf("displayWidth(%q) = %d, want %d", tc.s, got, tc.w)
		}
	}
	var b bytes.Buffer
	writeTable(&b, "", [][]string{{"李雷", "x"}, {"ann", "y"}})
	if want := "李雷  x\nann   y\n"; b.String() != want {
		t.Fatalf("table %q, want %q", b.String(), want)
	}
	for d, want := range map[time.Duration]string{59 * time.Second: "59s", 5 * time.Minute: "5m", 299 * time.Second: "4m59s", 3 * time.Hour: "3h00m", 72 * time.Hour: "3d00h"} {
		if got := human(d); got != want {
			t.Errorf("human(%v) = %q, want %q", d, got, want)
		}
	}
}

// An admin works the e-mail quarantine from the command line.
func TestAgentQuarantine(t *testing.T) {
	srv := mailtest.StartIMAP(t, mailtest.IMAPOptions{})
	startAgentSystem(t, func(c *config.Config) { c.Conns.Email.Mailboxes = []config.Mailbox{srv.Mailbox()} })
	const bad = "Subject: nobody wrote this\r\nMessage-ID: <q1@nowhere>\r\n\r\nno sender\r\n"
	srv.Deliver("INBOX", []byte(bad))
	var name string
	deadline := time.Now().Add(10 * time.Second)
	for name == "" {
		code, out, errs := runAgentCmd("quarantine", "--json")
		var ans struct{ Quarantine []struct{ Name string } }
		if code == 0 && json.Unmarshal([]byte(out), &ans) == nil && len(ans.Quarantine) == 1 {
			name = ans.Quarantine[0].Name
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("nothing quarantined: exit %d %s %s", code, out, errs)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if code, out, _ := runAgentCmd("quarantine", "list"); code != 0 || !strings.Contains(out, name) || !strings.Contains(out, "no From") {
		t.Errorf("list: exit %d\n%s", code, out)
	}
	if code, out, _ := runAgentCmd("quarantine", "show", name); code != 0 || out != bad {
		t.Errorf("show: exit %d %q", code, out)
	}
	if code, _, errs := runAgentCmd("quarantine", "retry", name); code == 0 || !strings.Contains(errs, "still cannot be read") {
		t.Errorf("retry: exit %d %s", code, errs)
	}
	if code, out, _ := runAgentCmd("quarantine", "drop", name); code != 0 || !strings.Contains(out, "dropped "+name) {
		t.Errorf("drop: exit %d %s", code, out)
	}
	if code, out, _ := runAgentCmd("quarantine"); code != 0 || !strings.Contains(out, "empty") {
		t.Errorf("list after drop: exit %d %s", code, out)
	}
	if code, _, errs := runAgentCmd("quarantine", "retry"); code == 0 || !strings.Contains(errs, "NAME") {
		t.Errorf("retry without a name: exit %d %s", code, errs)
	}
	t.Setenv("INROUTE_AGENT_TOKEN", agentTestBob)
	if code, _, errs := runAgentCmd("quarantine"); code == 0 || !strings.Contains(errs, "forbidden") {
		t.Errorf("an agent listed the quarantine: exit %d %s", code, errs)
	}
}
