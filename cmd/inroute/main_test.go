package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer that the process under test and the test
// can use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func writeConfig(t *testing.T, body string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config.yaml")
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestConfigErrorsExit2WithPosition(t *testing.T) {
	cases := []struct {
		name, body string
		line       int
	}{
		{"unknown key", "data_dir: ./d\nhttp:\n  listn: 127.0.0.1:1\n", 3},
		{"wrong type", "nats:\n  streams:\n    replicas: many\n", 3},
		{"invalid value", "log:\n  level: loud\n", 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := writeConfig(t, tc.body)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"serve", "--config", p}, &stdout, &stderr)
			if code != exitConfig {
				t.Fatalf("exit %d, want %d; stderr: %s", code, exitConfig, stderr.String())
			}
			want := regexp.MustCompile(regexp.QuoteMeta(p) + fmt.Sprintf(`:%d:\d+: `, tc.line))
			if !want.MatchString(stderr.String()) {
				t.Fatalf("stderr %q does not name %s:%d:col", stderr.String(), p, tc.line)
			}
		})
	}
	var stderr bytes.Buffer
	if code := run(context.Background(), []string{"serve", "--config", filepath.Join(t.TempDir(), "missing.yaml")}, io.Discard, &stderr); code != exitConfig {
		t.Fatalf("missing config: exit %d", code)
	}
}

func TestHelpAndVersion(t *testing.T) {
	var out, errb bytes.Buffer
	if code := run(context.Background(), []string{"help"}, &out, &errb); code != 0 {
		t.Fatal(code)
	}
	for _, cmd := range []string{"serve", "router", "api", "connector", "version", "help"} {
		if !strings.Contains(out.String(), cmd) {
			t.Errorf("help does not list %s", cmd)
		}
	}
	for _, cmd := range []string{"serve", "router", "api", "connector"} {
		out.Reset()
		if code := run(context.Background(), []string{"help", cmd}, &out, &errb); code != 0 || !strings.Contains(out.String(), "-config") {
			t.Errorf("help %s: %d %s", cmd, code, out.String())
		}
	}
	out.Reset()
	if code := run(context.Background(), []string{"version"}, &out, &errb); code != 0 || !strings.HasPrefix(out.String(), "inroute ") {
		t.Fatalf("version: %d %q", code, out.String())
	}
	if code := run(context.Background(), []string{"frobnicate"}, &out, &errb); code != exitConfig {
		t.Fatalf("unknown command: %d", code)
	}
	if code := run(context.Background(), nil, &out, &errb); code != exitConfig {
		t.Fatalf("no command: %d", code)
	}
	if code := run(context.Background(), []string{"connector"}, &out, &errb); code != exitConfig {
		t.Fatalf("connector without name: %d", code)
	}
	if code := run(context.Background(), []string{"serve", "--bogus"}, &out, &errb); code != exitConfig {
		t.Fatalf("unknown flag: %d", code)
	}
}

func TestRouterAloneNeedsNATSURL(t *testing.T) {
	p := writeConfig(t, "log:\n  level: warn\n")
	var stderr syncBuffer
	if code := run(context.Background(), []string{"router", "--config", p}, io.Discard, &stderr); code != exitConfig {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	if !strings.Contains(stderr.String(), "nats.url") {
		t.Fatalf("stderr does not say what is missing: %s", stderr.String())
	}
}

// serve as a user runs it: a config file, a data dir, a signal to stop.
func TestServeStartsAndStopsGracefully(t *testing.T) {
	dir := t.TempDir()
	p := writeConfig(t, `
data_dir: `+filepath.Join(dir, "data")+`
http:
  listen: 127.0.0.1:0
connectors:
  app:
    enabled: true
    apps:
      - name: wallet
        token: ${TEST_APP_TOKEN:-dev-app-token}
agents:
  - name: dev
    token: dev-agent-token
`)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stderr syncBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"serve", "--config", p}, io.Discard, &stderr) }()

	addrRe := regexp.MustCompile(`"msg":"http listening","addr":"([^"]+)"`)
	var addr string
	deadline := time.Now().Add(30 * time.Second)
	for addr == "" {
		if m := addrRe.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not start: %s", stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(stderr.String(), "development token in use") {
		t.Errorf("no dev-token warning in %s", stderr.String())
	}
	req, _ := http.NewRequest("POST", "http://"+addr+"/v1/channels/app/messages",
		strings.NewReader(`{"message_id":"m1","user":{"id":"u1"},"text":"hello"}`))
	req.Header.Set("Authorization", "Bearer dev-app-token")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var body struct{ ID string }
	_ = json.NewDecoder(resp.Body).Decode(&body)
	resp.Body.Close()
	if resp.StatusCode != 202 || body.ID == "" {
		t.Fatalf("post: %d", resp.StatusCode)
	}
	cancel() // as SIGTERM would
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("exit %d: %s", code, stderr.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
	if !strings.Contains(stderr.String(), `"msg":"stopped"`) {
		t.Fatalf("no clean stop in log: %s", stderr.String())
	}
	// The embedded JetStream store is under the data dir.
	if _, err := os.Stat(filepath.Join(dir, "data", "nats", "jetstream")); err != nil {
		t.Fatalf("no jetstream store under data dir: %v", err)
	}
}
