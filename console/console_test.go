package console_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/inroute/inroute/console"
)

func serve(t *testing.T) *httptest.Server {
	t.Helper()
	mux := http.NewServeMux()
	mux.Handle("GET /console/", console.Handler())
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

func get(t *testing.T, url string, hdr map[string]string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("GET", url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

func TestHeadersAndCaching(t *testing.T) {
	srv := serve(t)
	resp, index := get(t, srv.URL+"/console/", nil)
	if resp.StatusCode != 200 {
		t.Fatalf("GET /console/: %d", resp.StatusCode)
	}
	h := resp.Header
	for k, want := range map[string]string{
		"Content-Type":           "text/html; charset=utf-8",
		"Cache-Control":          "no-store",
		"X-Content-Type-Options": "nosniff",
		"X-Frame-Options":        "DENY",
	} {
		if got := h.Get(k); got != want {
			t.Errorf("index %s = %q, want %q", k, got, want)
		}
	}
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") || strings.Contains(csp, "unsafe") {
		t.Errorf("CSP = %q", csp)
	}

	// index.html names each asset with its version.
	m := regexp.MustCompile(`src="(app\.js\?v=[0-9a-f]+)"`).FindStringSubmatch(index)
	if m == nil {
		t.Fatalf("index.html does not name a versioned app.js:\n%s", index)
	}
	resp, js := get(t, srv.URL+"/console/"+m[1], nil)
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "public, max-age=31536000, immutable" ||
		!strings.HasPrefix(resp.Header.Get("Content-Type"), "text/javascript") || resp.Header.Get("Content-Security-Policy") == "" {
		t.Errorf("versioned app.js: %d %v", resp.StatusCode, resp.Header)
	}
	if !strings.Contains(js, "takeNext") {
		t.Error("app.js is not the console's")
	}
	resp, _ = get(t, srv.URL+"/console/app.js?v=old", nil)
	etag := resp.Header.Get("ETag")
	if resp.StatusCode != 200 || resp.Header.Get("Cache-Control") != "no-cache" || etag == "" {
		t.Errorf("app.js under another version: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = get(t, srv.URL+"/console/app.js", map[string]string{"If-None-Match": etag})
	if resp.StatusCode != http.StatusNotModified {
		t.Errorf("revalidation: %d, want 304", resp.StatusCode)
	}
	if resp, _ := get(t, srv.URL+"/console/style.css", nil); !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/css") {
		t.Errorf("style.css content type %q", resp.Header.Get("Content-Type"))
	}
	for _, p := range []string{"/console/nope.js", "/console/static/app.js", "/console/../go.mod"} {
		if resp, _ := get(t, srv.URL+p, nil); resp.StatusCode != 404 {
			t.Errorf("GET %s: %d, want 404", p, resp.StatusCode)
		}
	}
	req, _ := http.NewRequest("HEAD", srv.URL+"/console/", nil)
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 200 {
		t.Errorf("HEAD /console/: %v %v", resp, err)
	}
}

// The page works under default-src 'self': no inline script, style or
// event handler, and customer content never goes through an HTML parser.
func TestNoInlineCodeNoHTMLInjection(t *testing.T) {
	srv := serve(t)
	_, index := get(t, srv.URL+"/console/", nil)
	_, js := get(t, srv.URL+"/console/app.js", nil)
	for _, re := range []string{`<script(?:\s[^>]*)?>\s*[^<\s]`, `<style`, `\sstyle=`, `\son[a-z]+=`, `javascript:`} {
		if loc := regexp.MustCompile(re).FindStringIndex(index); loc != nil {
			t.Errorf("index.html has inline code (%s): %q", re, index[loc[0]:min(loc[1]+40, len(index))])
		}
	}
	for _, bad := range []string{"innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval(", "new Function", ".style.cssText"} {
		if strings.Contains(js, bad) {
			t.Errorf("app.js uses %s", bad)
		}
	}
	for _, id := range []string{"token-input", "sign-in", "signin-error", "whoami", "sign-out", "lang-switch", "error-banner",
		"queue-board", "take-next", "wait-toggle", "conv-header", "conv-urgency", "conv-status", "timeline",
		"reply-text", "reply-channel", "send", "note-text", "add-note", "resolve", "release", "reopen", "transfer",
		"transfer-target", "urgency-select", "set-urgency"} {
		if !strings.Contains(index, `data-testid="`+id+`"`) {
			t.Errorf("index.html lacks data-testid %q", id)
		}
	}
	for _, id := range []string{"queue-row", "message", "message-text", "explain", "delivery", "auto-reply", "note", "event"} {
		if !strings.Contains(js, `'data-testid': '`+id+`'`) {
			t.Errorf("app.js renders no data-testid %q", id)
		}
	}
}
