package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inroute/inroute/api"
	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/connectors"
	"github.com/inroute/inroute/connectors/app"
	"github.com/inroute/inroute/connectors/conformance"
	"github.com/inroute/inroute/message"
	"go.uber.org/zap"
)

const token = "test-app-token"

func newServer(t testing.TB, b *bus.Bus, maxBody int64) (*app.Connector, *httptest.Server) {
	t.Helper()
	c := app.New(&connectors.Inbound{Bus: b}, app.Options{Apps: map[string]string{"wallet": token, "shop": "shop-token"}, MaxBody: maxBody}, zap.NewNop())
	mux := http.NewServeMux()
	c.Register(mux)
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return c, srv
}

type reply struct {
	status int
	header http.Header
	body   []byte
}

func post(t testing.TB, url, tok, contentType string, body []byte) reply {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, url+app.Path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return reply{resp.StatusCode, resp.Header, data}
}

func body(id, text string) []byte {
	b, _ := json.Marshal(app.Request{MessageID: id, User: app.User{ID: "u-1", Name: "Ann", Phone: "+86 138 0013 8000"}, Text: text})
	return b
}

func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T, busURL string) conformance.Harness {
		b := testbus.Connect(t, busURL)
		c, srv := newServer(t, b, 0)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		t.Cleanup(cancel)
		return conformance.Harness{
			Channel: message.App,
			Deliver: func(ctx context.Context, id string) error {
				r := post(t, srv.URL, token, "application/json", body(id, "hello"))
				if r.status != http.StatusAccepted {
					return fmt.Errorf("status %d: %s", r.status, r.body)
				}
				return nil
			},
			Stop: func(ctx context.Context) error {
				cancel()
				select {
				case err := <-done:
					return err
				case <-ctx.Done():
					return ctx.Err()
				}
			},
		}
	})
}

func TestAcceptAndNormalize(t *testing.T) {
	srv := testbus.Start(t)
	b := srv.Connect(t)
	_, h := newServer(t, b, 0)
	req := app.Request{
		MessageID: "m-1", User: app.User{ID: "u-42", Name: "李雷", Email: "li@example.com", Phone: "+8613800138000"},
		Text: "充值没有到账", Language: "zh-CN",
		Attachments: []message.Attachment{{Name: "r.png", ContentType: "image/png", Size: 10, URL: "https://app.example/a/1"}},
	}
	data, _ := json.Marshal(req)
	r := post(t, h.URL, token, "application/json; charset=utf-8", data)
	if r.status != http.StatusAccepted {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	var resp app.Response
	if err := json.Unmarshal(r.body, &resp); err != nil || resp.ID == "" || resp.Duplicate {
		t.Fatalf("bad response %s (%v)", r.body, err)
	}
	st, _ := b.JS.Stream(context.Background(), bus.StreamInbound)
	raw, err := st.GetMsg(context.Background(), 1)
	if err != nil {
		t.Fatal(err)
	}
	m, err := message.Decode(raw.Data)
	if err != nil {
		t.Fatal(err)
	}
	if m.ID != resp.ID || m.Channel != message.App || m.ChannelMessageID != "wallet/m-1" || m.From.Address != "u-42" ||
		m.From.Name != "李雷" || m.From.Email != "li@example.com" || m.From.Phone != "+8613800138000" ||
		m.To.Address != "wallet" || m.Text != "充值没有到账" || m.Language != "zh-CN" || len(m.Attachments) != 1 {
		t.Fatalf("normalized wrongly: %+v", m)
	}
	if time.Since(m.ReceivedAt) > time.Minute {
		t.Fatalf("received_at %v", m.ReceivedAt)
	}
	// The same message_id from another app is another message.
	r2 := post(t, h.URL, "shop-token", "", data)
	var resp2 app.Response
	_ = json.Unmarshal(r2.body, &resp2)
	if r2.status != http.StatusAccepted || resp2.ID == resp.ID || resp2.Duplicate {
		t.Fatalf("other app's message treated as duplicate: %d %s", r2.status, r2.body)
	}
}

func TestSameMessageIDGivesSameID(t *testing.T) {
	srv := testbus.Start(t)
	b := srv.Connect(t)
	_, h := newServer(t, b, 0)
	first := post(t, h.URL, token, "", body("dup-1", "hi"))
	var a app.Response
	_ = json.Unmarshal(first.body, &a)
	if first.status != http.StatusAccepted {
		t.Fatalf("status %d", first.status)
	}
	// In sequence.
	for range 3 {
		r := post(t, h.URL, token, "", body("dup-1", "hi"))
		var got app.Response
		_ = json.Unmarshal(r.body, &got)
		if r.status != http.StatusAccepted || got.ID != a.ID || !got.Duplicate {
			t.Fatalf("repeat gave %d %s, want 202 with id %s", r.status, r.body, a.ID)
		}
	}
	// Concurrently, for a fresh id: everyone gets the same id.
	var wg sync.WaitGroup
	ids := make([]string, 20)
	for i := range ids {
		wg.Go(func() {
			r := post(t, h.URL, token, "", body("dup-2", "hi"))
			var got app.Response
			_ = json.Unmarshal(r.body, &got)
			if r.status != http.StatusAccepted {
				t.Errorf("status %d: %s", r.status, r.body)
			}
			ids[i] = got.ID
		})
	}
	wg.Wait()
	for _, id := range ids {
		if id != ids[0] {
			t.Fatalf("concurrent posts got different ids: %v", ids)
		}
	}
	st, _ := b.JS.Stream(context.Background(), bus.StreamInbound)
	info, _ := st.Info(context.Background())
	if info.State.Msgs != 2 {
		t.Fatalf("stream has %d messages, want 2", info.State.Msgs)
	}
}

func TestRejects(t *testing.T) {
	srv := testbus.Start(t)
	b := srv.Connect(t)
	_, h := newServer(t, b, 1024)
	big := body("big", strings.Repeat("x", 2000))
	cases := []struct {
		name, tok, ctype string
		body             []byte
		status           int
		code             string
	}{
		{"no token", "", "", body("a", "hi"), 401, api.CodeUnauthorized},
		{"wrong token", "nope", "", body("a", "hi"), 401, api.CodeUnauthorized},
		{"malformed json", token, "", []byte(`{"message_id":`), 400, api.CodeInvalidJSON},
		{"not an object", token, "", []byte(`[1,2]`), 400, api.CodeInvalidJSON},
		{"unknown field", token, "", []byte(`{"message_id":"a","user":{"id":"u"},"txt":"hi"}`), 400, api.CodeInvalidJSON},
		{"trailing data", token, "", append(body("a", "hi"), []byte(`{}`)...), 400, api.CodeInvalidJSON},
		{"wrong type", token, "", []byte(`{"message_id":5,"user":{"id":"u"},"text":"hi"}`), 400, api.CodeInvalidJSON},
		{"missing message_id", token, "", []byte(`{"user":{"id":"u"},"text":"hi"}`), 422, api.CodeInvalidMessage},
		{"missing user", token, "", []byte(`{"message_id":"a","text":"hi"}`), 422, api.CodeInvalidMessage},
		{"missing text", token, "", []byte(`{"message_id":"a","user":{"id":"u"}}`), 422, api.CodeInvalidMessage},
		{"bad phone", token, "", []byte(`{"message_id":"a","user":{"id":"u","phone":"call me"},"text":"hi"}`), 422, api.CodeInvalidMessage},
		{"attachment without url", token, "", []byte(`{"message_id":"a","user":{"id":"u"},"attachments":[{"name":"x"}]}`), 422, api.CodeInvalidMessage},
		{"oversized", token, "", big, 413, api.CodeBodyTooLarge},
		{"wrong content type", token, "text/plain", body("a", "hi"), 415, api.CodeUnsupportedType},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := post(t, h.URL, tc.tok, tc.ctype, tc.body)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			var e api.ErrorBody
			if err := json.Unmarshal(r.body, &e); err != nil || e.Error.Code != tc.code || e.Error.Message == "" {
				t.Fatalf("error body %s, want code %s", r.body, tc.code)
			}
			if tc.status == 401 && r.header.Get("WWW-Authenticate") == "" {
				t.Fatal("401 without WWW-Authenticate")
			}
		})
	}
	st, _ := b.JS.Stream(context.Background(), bus.StreamInbound)
	if info, _ := st.Info(context.Background()); info.State.Msgs != 0 {
		t.Fatalf("rejected requests published %d messages", info.State.Msgs)
	}
}

func TestBusDownGives503WithRetryAfter(t *testing.T) {
	srv := testbus.Start(t)
	b := srv.Connect(t)
	_, h := newServer(t, b, 0)
	srv.Shutdown()
	r := post(t, h.URL, token, "", body("down-1", "hi"))
	if r.status != http.StatusServiceUnavailable || r.header.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q: %s", r.status, r.header.Get("Retry-After"), r.body)
	}
	var e api.ErrorBody
	if json.Unmarshal(r.body, &e) != nil || e.Error.Code != api.CodeUnavailable {
		t.Fatalf("body %s", r.body)
	}
}

func FuzzPost(f *testing.F) {
	f.Add([]byte(`{"message_id":"a","user":{"id":"u"},"text":"hi"}`))
	f.Add([]byte(`{"message_id":"a","user":{"id":"u","phone":"+1 (555) 0100"},"attachments":[{"url":"x","size":-1}]}`))
	f.Add([]byte(`{"message_id":"\u0000","user":{"id":"\xff"},"text":"\ud800"}`))
	srv := testbus.Start(f)
	b := srv.Connect(f)
	c := app.New(&connectors.Inbound{Bus: b}, app.Options{Apps: map[string]string{"wallet": token}}, zap.NewNop())
	mux := http.NewServeMux()
	c.Register(mux)
	f.Fuzz(func(t *testing.T, data []byte) {
		req := httptest.NewRequest(http.MethodPost, app.Path, bytes.NewReader(data))
		req.Header.Set("Authorization", "Bearer "+token)
		w := httptest.NewRecorder()
		mux.ServeHTTP(w, req)
		switch w.Code {
		case 202, 400, 413, 422:
		default:
			t.Fatalf("status %d for %q: %s", w.Code, data, w.Body)
		}
		if w.Code != 202 {
			var e api.ErrorBody
			if err := json.Unmarshal(w.Body.Bytes(), &e); err != nil || e.Error.Code == "" {
				t.Fatalf("error answer is not the JSON error shape: %s", w.Body)
			}
		}
	})
}
