package console_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/css"
	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/system"
	"go.uber.org/zap/zaptest"
)

const (
	appToken   = "console-e2e-app"
	agentToken = "console-e2e-ann"
	adminToken = "console-e2e-root"
)

// chromium finds a Chromium to drive: $INROUTE_CHROMIUM, else the first of
// chromium, chromium-browser, google-chrome on $PATH.
func chromium() string {
	if p := os.Getenv("INROUTE_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	return ""
}

// startSystem runs a whole inroute (embedded NATS and SQLite, router, API,
// app connector, console) with the shipped routing rules, an admin and an
// agent who takes security and payments work.
func startSystem(t *testing.T) *system.System {
	t.Helper()
	src, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	shipped, err := config.Parse("config.yaml", src, nil)
	if err != nil {
		t.Fatalf("shipped config: %v", err)
	}
	cfg := config.Default()
	cfg.Routing = shipped.Routing
	cfg.DataDir = t.TempDir()
	cfg.HTTP.Listen = "127.0.0.1:0"
	cfg.NATS.Embedded.Listen = "127.0.0.1:-1"
	cfg.Conns.App.Enabled = true
	cfg.Conns.App.Apps = []config.App{{Name: "wallet", Token: appToken, Webhook: config.Webhook{MaxAttempts: 12}}}
	cfg.Agents = []config.Agent{
		{Name: "root", Token: adminToken, Role: config.RoleAdmin, Capacity: 5},
		{Name: "ann", Token: agentToken, Role: config.RoleAgent, Queues: []string{"security", "payments"}, Capacity: 5},
	}
	// A short lease, so that the console has to renew it while ann reads.
	cfg.Desk.Lease = config.Duration(15 * time.Second)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
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
	return sys
}

func call(t *testing.T, method, url, tok string, body any) (int, []byte) {
	t.Helper()
	var r io.Reader
	if body != nil {
		data, _ := json.Marshal(body)
		r = bytes.NewReader(data)
	}
	req, err := http.NewRequest(method, url, r)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Authorization", "Bearer "+tok)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, data
}

// checkFor polls fn until it returns nil or wait has passed.
func checkFor(wait, every time.Duration, fn func() error) error {
	deadline := time.Now().Add(wait)
	for {
		err := fn()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(every)
	}
}

func tid(id string) chromedp.CSS { return chromedp.CSS(fmt.Sprintf("[data-testid=%q]", id)) }

// page drives the console in one browser tab.
type page struct {
	t   *testing.T
	ctx context.Context
	// shots is where a failure's screenshot goes.
	shots string
}

func (p *page) fail(format string, args ...any) {
	p.t.Helper()
	msg := fmt.Sprintf(format, args...)
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	if banner, err := chromedp.Run(ctx, chromedp.Evaluate[string](
		`(document.querySelector('[data-testid=error-banner]:not([hidden])') || {textContent: ''}).textContent.trim()`)); err == nil && banner != "" {
		msg += "\nerror banner: " + banner
	}
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		path := filepath.Join(p.shots, "console-failure.png")
		if env := os.Getenv("INROUTE_CONSOLE_SCREENSHOT"); env != "" {
			path = strings.TrimSuffix(env, filepath.Ext(env)) + "-failure.png"
		}
		if os.WriteFile(path, png, 0o644) == nil {
			msg += "\nscreenshot: " + path
		}
	}
	p.t.Fatal(msg)
}

// do runs browser steps with a timeout.
func (p *page) do(what string, steps ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		p.fail("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression to a string.
func (p *page) eval(expr string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[string](expr))
	if err != nil {
		p.fail("evaluate %s: %v", expr, err)
	}
	return v
}

// until waits for a JavaScript expression to be true. On failure, the
// message says what the expression show evaluates to at the end.
func (p *page) until(what, expr, show string) {
	p.t.Helper()
	var last string
	err := checkFor(30*time.Second, 50*time.Millisecond, func() error {
		ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
		defer cancel()
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`!!(`+expr+`)`))
		if err != nil {
			return err
		}
		if !ok {
			if show != "" {
				last, _ = chromedp.Run(ctx, chromedp.Evaluate[string](`String(`+show+`)`))
			}
			return errors.New("not yet")
		}
		return nil
	})
	if err != nil {
		p.fail("waiting for %s: %v (%s)", what, err, last)
	}
}

// JavaScript helpers the expressions below use.
const jsText = `((sel) => { const e = document.querySelector(sel); return e ? e.textContent.trim() : ''; })`
const jsAttr = `((sel, a) => { const e = document.querySelector(sel); return e ? (e.getAttribute(a) || '') : ''; })`

func TestConsoleEndToEnd(t *testing.T) {
	bin := chromium()
	if bin == "" {
		t.Skip("no Chromium: install chromium (or set INROUTE_CHROMIUM) to run the console's browser test")
	}
	sys := startSystem(t)
	base := "http://" + sys.HTTPAddr()

	// The wallet's app backend writes for three customers.
	post := func(id, user, text string) {
		t.Helper()
		status, body := call(t, "POST", base+"/v1/channels/app/messages", appToken,
			map[string]any{"message_id": id, "user": map[string]any{"id": user, "name": "Customer " + user}, "text": text})
		if status != http.StatusAccepted {
			t.Fatalf("post %s: %d %s", id, status, body)
		}
	}
	const (
		securityText = "Someone took money from my account / 有人从我的账户转走了钱"
		paymentText  = "My payment failed at the shop <script>window.__xss=1</script>"
		replyText    = "We have frozen the transfers on your account. 我们已冻结您账户的转账，请勿向任何人透露验证码。"
	)
	post("m-card", "u-card", "How do I bind my bank card?")
	post("m-pay", "u-pay", paymentText)
	post("m-sec", "u-sec", securityText)
	if err := checkFor(15*time.Second, 50*time.Millisecond, func() error {
		status, body := call(t, "GET", base+"/v1/queues", adminToken, nil)
		var q struct{ Queues []struct{ Waiting int } }
		if status != 200 || json.Unmarshal(body, &q) != nil {
			return fmt.Errorf("GET /v1/queues: %d %s", status, body)
		}
		n := 0
		for _, x := range q.Queues {
			n += x.Waiting
		}
		if n != 3 {
			return fmt.Errorf("%d conversations waiting, want 3", n)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	// A headless Chromium with a fresh profile.
	shots := t.TempDir()
	allocCtx, cancel := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(bin),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(filepath.Join(t.TempDir(), "profile")),
		chromedp.WindowSize(1280, 800),
	)
	defer cancel()
	browserCtx, cancel := chromedp.NewContext(allocCtx)
	defer cancel()
	if err := chromedp.Do(browserCtx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatalf("start %s: %v", bin, err)
	}
	ctx, cancel := context.WithTimeout(browserCtx, 3*time.Minute)
	defer cancel()
	p := &page{t: t, ctx: ctx, shots: shots}

	// Every uncaught exception and every CSP refusal fails the test.
	var (
		mu       sync.Mutex
		problems []string
	)
	messages := chromedp.Console(ctx)
	go func() {
		for m, err := range messages {
			if err != nil {
				return
			}
			s := m.String()
			if m.IsException() || strings.Contains(s, "Content Security Policy") {
				mu.Lock()
				problems = append(problems, s)
				mu.Unlock()
			}
		}
	}()
	// Count the console's lease renewals.
	var renewals atomic.Int32
	responses := chromedp.Events(ctx, network.ResponseReceived)
	go func() {
		for ev, err := range responses {
			if err != nil {
				return
			}
			if strings.HasSuffix(ev.Response.URL, "/renew") && ev.Response.Status == 200 {
				renewals.Add(1)
			}
		}
	}()
	if _, err := chromedp.Call(ctx, network.Enable, network.EnableParams{}); err != nil {
		t.Fatal(err)
	}

	// 1. Sign in: a wrong token is refused with a clear message.
	p.do("open the console", chromedp.Navigate(base+"/console/"), chromedp.WaitVisible(tid("token-input")))
	p.do("wrong token", chromedp.SendKeys(tid("token-input"), "not-a-token"), chromedp.Click(tid("sign-in")))
	p.until("the 401 message", `!document.querySelector('[data-testid=signin-error]').hidden && `+jsText+`('[data-testid=signin-error]').includes('401')`,
		jsText+`('[data-testid=signin-error]')`)
	p.do("sign in", chromedp.Evaluate[chromedp.Void](`document.querySelector('[data-testid=token-input]').value = ''`),
		chromedp.SendKeys(tid("token-input"), agentToken),
		chromedp.Click(tid("sign-in")), chromedp.WaitVisible(tid("whoami")))
	p.until("who is signed in", jsText+`('[data-testid=whoami-name]') === 'ann' && `+jsText+`('[data-testid=whoami-load]') === '0/5 open'`,
		jsText+`('[data-testid=whoami]')`)
	if got := p.eval(`sessionStorage.getItem('inroute.token') + ' ' + JSON.stringify(localStorage).includes('` + agentToken + `')`); got != agentToken+" false" {
		t.Errorf("token storage: %q", got)
	}

	// 2. The queue board shows the depths.
	depth := func(q string) string {
		return jsText + `('[data-testid=queue-row][data-queue=` + q + `] [data-testid=queue-depth]')`
	}
	p.until("the queue board", depth("security")+` === '1' && `+depth("payments")+` === '1' && `+
		jsText+`('[data-testid=queue-row][data-queue=security] [data-testid=queue-oldest]') !== '—' && `+
		`!!document.querySelector('[data-testid=queue-row][data-queue=security] .chip.u-urgent')`,
		jsText+`('[data-testid=queue-board]')`)

	// 3. Take next: the security conversation comes first, urgent.
	p.do("take next", chromedp.Click(tid("take-next")))
	p.until("the security conversation", jsText+`('[data-testid=conv-queue]') === 'security' && `+
		jsAttr+`('[data-testid=conv-urgency]', 'data-urgency') === 'urgent' && `+
		jsAttr+`('[data-testid=conv-status]', 'data-status') === 'assigned' && `+
		jsText+`('[data-testid=conv-assignee]').startsWith('ann')`,
		jsText+`('[data-testid=conv-header]')`)
	p.until("the routing explanation", `document.querySelector('[data-testid=conv-explain]').open && `+
		jsText+`('[data-testid=conv-explain] ol').includes('security')`, jsText+`('[data-testid=conv-explain]')`)
	inbound := `[data-testid=message][data-direction=in]`
	p.do("open the message's explanation", chromedp.Click(chromedp.CSS(inbound+` [data-testid=explain] summary`)),
		chromedp.WaitVisible(chromedp.CSS(inbound+` [data-testid=explain] ol li`)))
	if got := p.eval(jsText + `('` + inbound + ` [data-testid=message-text]')`); got != securityText {
		t.Errorf("security message shows %q, want %q", got, securityText)
	}
	if got := p.eval(jsAttr + `('` + inbound + `', 'data-channel')`); got != "app" {
		t.Errorf("security message channel %q", got)
	}
	checkCJKFont(t, p, inbound+` [data-testid=message-text]`)
	if p.eval(`String(!!document.querySelector('[data-testid=message][data-direction=out] [data-testid=auto-reply]'))`) != "true" {
		t.Log("API: no auto-reply shown in the security conversation (the shipped rules name security_incident)")
	}

	// 4. The console renews the lease (15s here, so every 5s) while ann reads.
	if err := checkFor(20*time.Second, 100*time.Millisecond, func() error {
		if renewals.Load() == 0 {
			return errors.New("no successful POST .../renew yet")
		}
		return nil
	}); err != nil {
		p.fail("lease renewal: %v", err)
	}
	p.until("a running lease countdown", `/\d+:\d\d/.test(`+jsText+`('[data-testid=lease]'))`, jsText+`('[data-testid=lease]')`)

	// 5. Reply on the app channel. The first answer is lost on its way back
	// (the API has recorded the reply); send is clicked twice, then again
	// after the error: the same idempotency key goes each time, and the
	// customer gets one reply.
	p.until("the default reply channel", `document.querySelector('[data-testid=reply-channel]').value === '' && `+
		`document.querySelector('[data-testid=reply-channel]').selectedOptions[0].dataset.channel === 'app'`,
		jsText+`('[data-testid=reply-channel]')`)
	paused := chromedp.Events(ctx, fetch.RequestPaused)
	var dropped atomic.Int32
	go func() {
		for ev, err := range paused {
			if err != nil {
				return
			}
			if dropped.Add(1) == 1 {
				_, _ = chromedp.Call(ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: network.ErrorReasonConnectionReset})
			} else {
				_, _ = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
			}
		}
	}()
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: []*fetch.RequestPattern{
		{URLPattern: "*/reply", RequestStage: fetch.RequestStageResponse}}}); err != nil {
		t.Fatal(err)
	}
	// The reply carries a small text file, chosen through the file input.
	const attachName, attachBody = "receipt.txt", "Receipt 收据 #42\nline two\n"
	attachPath := filepath.Join(t.TempDir(), attachName)
	if err := os.WriteFile(attachPath, []byte(attachBody), 0o644); err != nil {
		t.Fatal(err)
	}
	chosen := `document.querySelector('[data-testid=attach-file][data-name="` + attachName + `"]')`
	p.do("attach a file", chromedp.SetUploadFiles(tid("attach-input"), []string{attachPath}))
	p.until("the chosen file", chosen, jsText+`('[data-testid=attach-list]')`)
	p.do("write and send the reply", chromedp.SendKeys(tid("reply-text"), replyText),
		chromedp.Click(tid("send")), chromedp.Click(tid("send")))
	myReply := `[...document.querySelectorAll('[data-testid=message][data-direction=out]')].filter(m => ` +
		`!m.querySelector('[data-testid=auto-reply]') && m.querySelector('[data-testid=message-text]').textContent === ` + jsString(replyText) + `)`
	p.until("the send to finish", `!document.querySelector('[data-testid=send]').disabled && (`+myReply+`.length > 0 || `+
		`!document.querySelector('[data-testid=error-banner]').hidden)`, jsText+`('[data-testid=error-banner]')`)
	if p.eval(`String(`+myReply+`.length)`) == "0" {
		if got := p.eval(`document.querySelector('[data-testid=reply-text]').value`); got != replyText {
			t.Fatalf("after a failed send the draft is %q, want it kept", got)
		}
		if p.eval(`String(!!`+chosen+`)`) != "true" {
			t.Fatal("after a failed send the attached file is gone, want it kept with the draft")
		}
		p.do("send again", chromedp.Click(tid("send")))
	}
	p.until("the reply in the timeline", myReply+`.length === 1`, myReply+`.length`)
	if dropped.Load() == 0 {
		t.Error("the reply's answer was never intercepted: the retry path was not exercised")
	}
	if _, err := chromedp.Call(ctx, fetch.Disable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	if got := p.eval(myReply + `[0].querySelector('[data-testid=message-author]').textContent + ' ' + ` + myReply + `[0].dataset.channel`); got != "ann app" {
		t.Errorf("reply author and channel: %q", got)
	}
	if got := p.eval(`document.querySelector('[data-testid=reply-text]').value`); got != "" {
		t.Errorf("reply box after sending: %q", got)
	}
	if got := p.eval(`document.querySelectorAll('[data-testid=attach-file]').length + ' ' + document.querySelector('[data-testid=attach-list]').hidden`); got != "0 true" {
		t.Errorf("chosen files after sending: %q, want none", got)
	}
	checkAttachment(t, p, base, myReply, attachName, attachBody)
	securityShot := filepath.Join(shots, "console-security.png")
	if png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100)); err == nil {
		_ = os.WriteFile(securityShot, png, 0o644)
	}
	if dir := os.Getenv("INROUTE_CONSOLE_SCREENSHOT"); dir != "" {
		_ = os.WriteFile(strings.TrimSuffix(dir, filepath.Ext(dir))+"-security.png", mustRead(securityShot), 0o644)
	}
	// The app's feed has the reply exactly once.
	var feed []string
	if err := checkFor(10*time.Second, 100*time.Millisecond, func() error {
		status, body := call(t, "GET", base+"/v1/channels/app/replies?user=u-sec&limit=100", appToken, nil)
		var r struct {
			Replies []struct {
				Text  string `json:"text"`
				Auto  bool   `json:"auto"`
				Agent string `json:"agent"`
			} `json:"replies"`
		}
		if status == http.StatusNotFound {
			return errNoFeed
		}
		if status != 200 || json.Unmarshal(body, &r) != nil {
			return fmt.Errorf("GET /v1/channels/app/replies: %d %s", status, body)
		}
		feed = feed[:0]
		for _, x := range r.Replies {
			if x.Text == replyText {
				feed = append(feed, x.Agent)
			}
		}
		if len(feed) == 0 {
			return errors.New("the reply is not in the app's feed")
		}
		return nil
	}); errors.Is(err, errNoFeed) {
		// Go on with the console's part: the missing feed is the API's.
		t.Errorf("%v", err)
	} else if err != nil {
		t.Fatal(err)
	} else if len(feed) != 1 || feed[0] != "ann" {
		t.Fatalf("the app's feed has the reply %d times (agents %v), want once from ann", len(feed), feed)
	}
	if err := checkFor(5*time.Second, 100*time.Millisecond, func() error {
		if !strings.Contains(p.eval(`String(document.querySelector('[data-testid=lease]').hidden)`), "true") {
			return errors.New("lease still shown")
		}
		return nil
	}); err != nil {
		t.Log("API: the conversation still has a lease after the first reply")
	}

	// 6. Resolve.
	p.do("resolve", chromedp.Click(tid("resolve")))
	p.until("resolved", jsAttr+`('[data-testid=conv-status]', 'data-status') === 'resolved' && `+
		`!document.querySelector('[data-testid=reopen]').hidden`, jsText+`('[data-testid=conv-header]')`)

	// 7. Take next: the payment; its <script> is text, not code.
	p.do("take next again", chromedp.Click(tid("take-next")))
	p.until("the payment conversation", jsText+`('[data-testid=conv-queue]') === 'payments' && `+
		jsAttr+`('[data-testid=conv-status]', 'data-status') === 'assigned'`, jsText+`('[data-testid=conv-header]')`)
	if got := p.eval(jsText + `('` + inbound + ` [data-testid=message-text]')`); got != paymentText {
		t.Errorf("payment message shows %q, want %q", got, paymentText)
	}
	if got := p.eval(`typeof window.__xss + ' ' + document.querySelectorAll('[data-testid=timeline] script').length`); got != "undefined 0" {
		t.Errorf("the customer's <script> ran or became an element: %s", got)
	}

	// An internal note and a higher urgency.
	const noteText = "Customer says the shop is 好邻居便利店 <b>not bold</b>"
	p.do("add a note", chromedp.Click(tid("tab-note")), chromedp.SendKeys(tid("note-text"), noteText), chromedp.Click(tid("add-note")))
	p.until("the note in the timeline", `[...document.querySelectorAll('[data-testid=note]')].some(n => n.textContent.includes(`+jsString(noteText)+`))`,
		jsText+`('[data-testid=timeline]')`)
	p.do("raise the urgency", chromedp.Click(tid("tab-reply")), chromedp.SetValue(tid("urgency-select"), "urgent"), chromedp.Click(tid("set-urgency")))
	p.until("urgent", jsAttr+`('[data-testid=conv-urgency]', 'data-urgency') === 'urgent' && `+
		`document.querySelector('[data-testid=conv-urgency]').classList.contains('u-urgent')`, jsText+`('[data-testid=conv-header]')`)

	// 8. Release: back to the queue, unassigned.
	p.do("release", chromedp.Click(tid("release")))
	p.until("released", jsAttr+`('[data-testid=conv-status]', 'data-status') === 'queued' && `+
		jsText+`('[data-testid=conv-assignee]') === 'unassigned'`, jsText+`('[data-testid=conv-header]')`)
	p.until("the payment back on the board", depth("payments")+` === '1'`, jsText+`('[data-testid=queue-board]')`)

	// 9. 中文.
	p.do("switch to Chinese", chromedp.Click(chromedp.CSS(`[data-testid=lang-switch] [data-lang=zh]`)))
	p.until("Chinese labels", jsText+`('[data-testid=take-next]') === '领取下一个' && document.documentElement.lang === 'zh-CN' && `+
		jsText+`('[data-testid=conv-status]') === '排队中' && localStorage.getItem('inroute.lang') === 'zh'`,
		jsText+`('[data-testid=take-next]')`)

	path := os.Getenv("INROUTE_CONSOLE_SCREENSHOT")
	if path == "" {
		path = filepath.Join(shots, "console.png")
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", path)

	// 10. Wait for work: ann takes the payment again and resolves it, then
	// waits; a new customer message arrives while she waits.
	p.do("take the payment again", chromedp.Click(tid("take-next")))
	p.until("the payment again", jsText+`('[data-testid=conv-queue]') === 'payments' && `+
		jsAttr+`('[data-testid=conv-status]', 'data-status') === 'assigned'`, jsText+`('[data-testid=conv-header]')`)
	p.do("resolve the payment", chromedp.Click(tid("resolve")))
	p.until("the payment resolved", jsAttr+`('[data-testid=conv-status]', 'data-status') === 'resolved'`, jsText+`('[data-testid=conv-header]')`)
	p.do("wait for work", chromedp.Click(tid("wait-toggle")), chromedp.Click(tid("take-next")))
	p.until("waiting", jsText+`('[data-testid=take-next]') === '停止等待' && `+jsText+`('[data-testid=take-status]') === '正在等待新工作…'`,
		jsText+`('[data-testid=take-status]')`)
	post("m-late", "u-late", "我的账户被盗了，紧急")
	p.until("the new work", jsText+`('[data-testid=conv-queue]') === 'security' && `+
		jsText+`('[data-testid=message][data-direction=in] [data-testid=message-text]') === '我的账户被盗了，紧急' && `+
		jsText+`('[data-testid=take-next]') === '领取下一个'`, jsText+`('[data-testid=conv-header]')`)

	// 11. Sign out.
	p.do("sign out", chromedp.Click(tid("sign-out")), chromedp.WaitVisible(tid("token-input")))
	if got := p.eval(`String(sessionStorage.getItem('inroute.token'))`); got != "null" {
		t.Errorf("token after sign-out: %q", got)
	}

	mu.Lock()
	defer mu.Unlock()
	for _, s := range problems {
		t.Errorf("browser console: %s", s)
	}
}

var errNoFeed = errors.New("GET /v1/channels/app/replies answers 404: the app's reply feed (docs/agent-api.md) is not served")

func mustRead(path string) []byte {
	b, _ := os.ReadFile(path)
	return b
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

var cjkFont = regexp.MustCompile(`(?i)cjk|wenquanyi|wqy|zen ?hei|pingfang|yahei|hiragino|source han|droid sans fallback|ar pl|song|hei`)

// checkCJKFont checks that Chromium drew the node's Chinese with a font
// that has Chinese glyphs (not boxes), when the machine has one.
func checkCJKFont(t *testing.T, p *page, sel string) {
	t.Helper()
	out, err := exec.Command("fc-list", ":lang=zh", "family").Output()
	if err != nil || len(bytes.TrimSpace(out)) == 0 {
		t.Logf("no Chinese font installed (fc-list :lang=zh is empty); not checking the glyphs (apt-get install fonts-wqy-zenhei)")
		return
	}
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	ids, err := chromedp.Run(ctx, chromedp.QueryNodeIDs(chromedp.CSS(sel)))
	if err != nil || len(ids) == 0 {
		p.fail("node %s: %v", sel, err)
	}
	if _, err := chromedp.Call(ctx, css.Enable, cdp.Empty{}); err != nil {
		t.Fatal(err)
	}
	res, err := chromedp.Call(ctx, css.GetPlatformFontsForNode, css.GetPlatformFontsForNodeParams{NodeID: ids[0]})
	if err != nil {
		t.Fatal(err)
	}
	var used []string
	found := false
	for _, f := range res.Fonts {
		used = append(used, fmt.Sprintf("%s (%v glyphs)", f.FamilyName, f.GlyphCount))
		if cjkFont.MatchString(f.FamilyName) && f.GlyphCount >= 10 {
			found = true
		}
	}
	if !found {
		t.Errorf("the Chinese text was not drawn with a Chinese font; fonts used: %v", used)
	}
	t.Logf("fonts drawing the customer's text: %s", strings.Join(used, ", "))
}

// checkAttachment checks that the console's reply (the first element of the
// JavaScript array reply) was stored with the file, that the timeline shows
// it, and that clicking it downloads the same bytes.
func checkAttachment(t *testing.T, p *page, base, reply, name, body string) {
	t.Helper()
	convID := p.eval(`location.hash.replace('#/c/', '')`)
	status, data := call(t, "GET", base+"/v1/conversations/"+convID, agentToken, nil)
	var view struct {
		Messages []struct {
			Direction   string `json:"direction"`
			Text        string `json:"text"`
			Attachments []struct {
				Name        string `json:"name"`
				ContentType string `json:"content_type"`
				Size        int64  `json:"size"`
				Ref         string `json:"ref"`
			} `json:"attachments"`
		} `json:"messages"`
	}
	if status != 200 || json.Unmarshal(data, &view) != nil {
		t.Fatalf("GET /v1/conversations/%s: %d %s", convID, status, data)
	}
	ref := ""
	for _, m := range view.Messages {
		if m.Direction != "out" || m.Text != p.eval(reply+`[0].querySelector('[data-testid=message-text]').textContent`) {
			continue
		}
		if len(m.Attachments) != 1 {
			t.Fatalf("the stored reply has %d attachments, want 1: %s", len(m.Attachments), data)
		}
		a := m.Attachments[0]
		if a.Name != name || a.Size != int64(len(body)) || !strings.HasPrefix(a.Ref, "sha256:") {
			t.Fatalf("stored attachment %+v, want %s of %d bytes with a sha256: ref", a, name, len(body))
		}
		ref = a.Ref
	}
	if ref == "" {
		t.Fatalf("the reply is not in GET /v1/conversations/%s: %s", convID, data)
	}

	item := reply + `[0].querySelector('[data-testid=attachment-item]')`
	p.until("the attachment in the timeline", item+` && `+item+`.dataset.name === `+jsString(name)+` && `+
		item+`.querySelector('[data-testid=attachment-download]').dataset.ref === `+jsString(ref),
		reply+`[0].textContent`)

	// The API serves the bytes to the signed-in agent.
	ctx, cancel := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[string](`fetch('/v1/attachments/' + encodeURIComponent(`+jsString(ref)+`), `+
		`{headers: {Authorization: 'Bearer ' + sessionStorage.getItem('inroute.token')}}).then(r => r.ok ? r.text() : 'HTTP ' + r.status)`,
		chromedp.EvalAwaitPromise))
	if err != nil || got != body {
		p.fail("fetch the attachment: %q, %v; want %q", got, err, body)
	}

	// Clicking it makes a Blob of the file's bytes and type, named for it.
	p.do("watch the download", chromedp.Evaluate[chromedp.Void](`(() => {
		window.__downloads = [];
		const make = URL.createObjectURL;
		URL.createObjectURL = (b) => { const u = make.call(URL, b); window.__downloads.push({blob: b, url: u}); return u; };
		document.addEventListener('click', (e) => {
			const a = e.target.closest && e.target.closest('a[download]');
			if (a) { window.__downloadName = a.getAttribute('download'); e.preventDefault(); }
		}, true);
	})()`))
	p.do("click the attachment", chromedp.Click(chromedp.CSS(`[data-testid=attachment-download][data-ref="`+ref+`"]`)))
	p.until("the download", `window.__downloads.length === 1 && window.__downloadName === `+jsString(name),
		`window.__downloads.length + ' ' + window.__downloadName`)
	ctx2, cancel2 := context.WithTimeout(p.ctx, 10*time.Second)
	defer cancel2()
	got, err = chromedp.Run(ctx2, chromedp.Evaluate[string](`window.__downloads[0].blob.text().then(s => window.__downloads[0].blob.type + '|' + s)`,
		chromedp.EvalAwaitPromise))
	if err != nil || got != "text/plain|"+body {
		p.fail("downloaded blob: %q, %v; want %q", got, err, "text/plain|"+body)
	}
	if p.eval(`String(document.querySelector('[data-testid=error-banner]').hidden)`) != "true" {
		p.fail("the download showed an error")
	}
}
