package twilio

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/inroute/inroute/connectors/conformance"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/connectors"
	"github.com/inroute/inroute/connectors/twilio/twiliotest"
	"github.com/inroute/inroute/message"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap/zaptest"
)

const (
	obWait     = 15 * time.Second
	obEvery    = 10 * time.Millisecond
	obSender   = "+15550001111"
	obSender2  = "+15550002222"
	obCustomer = "+15557654321"
	obAgent    = "+15559990000"
	obPublic   = "https://inroute.example.com"
)

// obHarness is a running connector with its bus, Twilio double and the
// delivery reports it published.
type obHarness struct {
	c   *Connector
	b   *bus.Bus
	api *twiliotest.Server

	rep *conformance.Reports
}

func startOutbound(t *testing.T, edit func(*Options)) *obHarness {
	t.Helper()
	srv := testbus.Start(t)
	b := srv.Connect(t)
	api := twiliotest.New()
	t.Cleanup(api.Close)
	opt := Options{AccountSID: api.SID, AuthToken: api.Token, PublicURL: obPublic,
		Numbers: []string{obSender, obSender2}, MessagesPerSecond: 50, APIURL: api.URL}
	if edit != nil {
		edit(&opt)
	}
	h := &obHarness{b: b, api: api, rep: conformance.WatchReports(t, b, bus.SubjectsDelivery)}
	h.c = New(&connectors.Inbound{Bus: b}, b, opt, zaptest.NewLogger(t))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- h.c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("Run did not return after its context ended")
		}
	})
	return h
}

func obReply(id string, ch message.Channel, text string) message.Outbound {
	return message.Outbound{V: 1, ID: id, ConversationID: 42, Channel: ch, To: obCustomer, From: obSender,
		Text: text, Agent: "ann", CreatedAt: time.Date(2026, 11, 27, 10, 0, 0, 0, time.UTC)}
}

// publish puts o on outbound.<channel>; msgID "" lets the same reply in
// again, as a republish after the duplicate window would.
func (h *obHarness) publish(t *testing.T, o message.Outbound, msgID string) {
	t.Helper()
	data, err := json.Marshal(o)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := h.b.Publish(context.Background(), bus.OutboundSubject(o.Channel), data, msgID, nil); err != nil {
		t.Fatal(err)
	}
}

// report waits for n reports of id with status and returns the last.
func (h *obHarness) report(t *testing.T, id, status string, n int) message.Delivery {
	t.Helper()
	return h.rep.Wait(t, obWait, id, status, n)
}

func (h *obHarness) noReport(t *testing.T, id, status string) {
	t.Helper()
	if n := h.rep.Count(id, status); n > 0 {
		t.Errorf("%d unexpected %s reports of %s: %+v", n, status, id, h.rep.All())
	}
}

func TestOutboundSMSSentOnce(t *testing.T) {
	t.Parallel()
	h := startOutbound(t, nil)
	o := obReply("r1", message.SMS, "Your order shipped.")
	o.Attachments = []message.Attachment{
		{Name: "label.png", URL: "https://cdn.example.com/label.png"},
		{Name: "invoice.pdf", URL: "sha256:0123abcd"},
	}
	h.publish(t, o, o.ID)
	d := h.report(t, "r1", message.DeliverySent, 1)
	created := h.api.Created("Messages")
	if len(created) != 1 {
		t.Fatalf("%d messages created, want 1", len(created))
	}
	f := created[0].Form
	want := map[string]string{
		"From": obSender, "To": obCustomer,
		"Body":           "Your order shipped.\n(attachment: invoice.pdf)",
		"StatusCallback": obPublic + PathStatus + "?" + ParamReply + "=r1",
		"MediaUrl":       "https://cdn.example.com/label.png",
	}
	for k, v := range want {
		if got := f.Get(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if len(f["MediaUrl"]) != 1 {
		t.Errorf("MediaUrl = %q, want only the http one", f["MediaUrl"])
	}
	if !strings.HasPrefix(d.ChannelMessageID, "SM") || d.Channel != message.SMS || d.ConversationID != 42 {
		t.Errorf("sent report = %+v", d)
	}

	// The same reply again, past JetStream's dedupe (another msg id): it
	// is acked and reported, not sent.
	h.publish(t, o, "r1-again")
	h.report(t, "r1", message.DeliverySent, 2)
	if n := len(h.api.Requests()); n != 1 {
		t.Fatalf("%d requests to Twilio, want 1", n)
	}
	testbus.CheckFor(t, obWait, obEvery, func() error {
		info, err := h.b.JS.Stream(context.Background(), bus.StreamOutbound)
		if err != nil {
			return err
		}
		// Acked replies leave the work-queue stream.
		if msgs := info.CachedInfo().State.Msgs; msgs != 0 {
			return fmt.Errorf("%d replies left in OUTBOUND", msgs)
		}
		return nil
	})
}

func TestOutboundSenderChoice(t *testing.T) {
	t.Parallel()
	h := startOutbound(t, nil)
	o := obReply("r-from2", message.SMS, "hi")
	o.From = obSender2
	h.publish(t, o, o.ID)
	o2 := obReply("r-fromother", message.SMS, "hi")
	o2.From = "+15550000000" // not ours: the first number
	h.publish(t, o2, o2.ID)
	h.report(t, "r-from2", message.DeliverySent, 1)
	h.report(t, "r-fromother", message.DeliverySent, 1)
	from := map[string]string{}
	for _, r := range h.api.Created("Messages") {
		from[r.Form.Get("Body")+r.Form.Get("StatusCallback")] = r.Form.Get("From")
	}
	if got := from["hi"+obPublic+PathStatus+"?reply=r-from2"]; got != obSender2 {
		t.Errorf("reply from our second number went from %q", got)
	}
	if got := from["hi"+obPublic+PathStatus+"?reply=r-fromother"]; got != obSender {
		t.Errorf("reply from a foreign number went from %q, want the first", got)
	}
}

func TestOutboundNoNumbers(t *testing.T) {
	t.Parallel()
	h := startOutbound(t, func(o *Options) { o.Numbers = nil })
	h.publish(t, obReply("r-nonum", message.SMS, "hi"), "r-nonum")
	d := h.report(t, "r-nonum", message.DeliveryFailed, 1)
	if !strings.Contains(d.Detail, "no Twilio sender number") {
		t.Errorf("detail = %q", d.Detail)
	}
	if n := len(h.api.Requests()); n != 0 {
		t.Errorf("%d requests to Twilio, want 0", n)
	}
}

func TestOutboundRetriesTransient(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		fail twiliotest.Failure
	}{
		{"429", twiliotest.Failure{Status: http.StatusTooManyRequests, Code: 20429, Message: "Too Many Requests", RetryAfter: "1"}},
		{"500", twiliotest.Failure{Status: http.StatusInternalServerError, Code: 20500, Message: "Internal Server Error"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			h := startOutbound(t, nil)
			h.api.FailNextWith(1, tc.fail)
			h.publish(t, obReply("r-retry", message.SMS, "hello"), "r-retry")
			d := h.report(t, "r-retry", message.DeliverySent, 1)
			reqs := h.api.Requests()
			if len(reqs) != 2 || reqs[0].Status != tc.fail.Status || reqs[1].Status != http.StatusCreated {
				t.Fatalf("requests = %+v, want the failure then one create", reqs)
			}
			if len(h.api.Created("Messages")) != 1 || d.ChannelMessageID == "" {
				t.Errorf("created %d, report %+v", len(h.api.Created("Messages")), d)
			}
			if tc.fail.RetryAfter != "" {
				if gap := reqs[1].At.Sub(reqs[0].At); gap < 900*time.Millisecond {
					t.Errorf("retried %v after a Retry-After: 1", gap)
				}
			}
			h.noReport(t, "r-retry", message.DeliveryFailed)
		})
	}
}

func TestOutboundPermanentError(t *testing.T) {
	t.Parallel()
	h := startOutbound(t, nil)
	h.api.FailNext(1, http.StatusBadRequest, 21211, "Invalid 'To' Phone Number")
	h.publish(t, obReply("r-bad", message.SMS, "hello"), "r-bad")
	d := h.report(t, "r-bad", message.DeliveryFailed, 1)
	if d.Detail != "Twilio error 21211: Invalid 'To' Phone Number" || d.Channel != message.SMS {
		t.Errorf("failed report = %+v", d)
	}
	if n := len(h.api.Requests()); n != 1 {
		t.Errorf("%d requests, want 1 (no retry of a 400)", n)
	}
}

func TestOutboundTwilioOptOutRecorded(t *testing.T) {
	t.Parallel()
	h := startOutbound(t, nil)
	h.api.FailNext(1, http.StatusBadRequest, 21610, "Attempt to send to unsubscribed recipient")
	h.publish(t, obReply("r-21610", message.SMS, "hello"), "r-21610")
	d := h.report(t, "r-21610", message.DeliveryFailed, 1)
	if !strings.Contains(d.Detail, "21610") {
		t.Errorf("detail = %q", d.Detail)
	}
	out, err := h.c.optOuts.Out(context.Background(), obCustomer)
	if err != nil || !out {
		t.Errorf("opt-out after 21610: %v, %v", out, err)
	}
}

func TestOutboundOptedOut(t *testing.T) {
	t.Parallel()
	h := startOutbound(t, nil)
	if err := h.c.optOuts.Set(context.Background(), obCustomer, true); err != nil {
		t.Fatal(err)
	}
	h.publish(t, obReply("r-stop", message.SMS, "hello"), "r-stop")
	d := h.report(t, "r-stop", message.DeliveryFailed, 1)
	if d.Detail != detailOptedOut {
		t.Errorf("detail = %q", d.Detail)
	}
	if n := len(h.api.Requests()); n != 0 {
		t.Errorf("%d requests to Twilio, want 0", n)
	}
}

func TestOutboundRatePerSender(t *testing.T) {
	t.Parallel()
	const rate = 4 // per second: 250ms apart
	h := startOutbound(t, func(o *Options) { o.MessagesPerSecond = rate })
	for _, id := range []string{"r-rate1", "r-rate2"} {
		h.publish(t, obReply(id, message.SMS, id), id)
	}
	h.report(t, "r-rate1", message.DeliverySent, 1)
	h.report(t, "r-rate2", message.DeliverySent, 1)
	created := h.api.Created("Messages")
	if len(created) != 2 {
		t.Fatalf("%d created, want 2", len(created))
	}
	gap := created[1].At.Sub(created[0].At)
	// Generous tolerance: the bound is a minimum; timers only run late.
	if minGap := time.Second / rate * 8 / 10; gap < minGap {
		t.Errorf("two messages from one sender %v apart, want at least %v", gap, minGap)
	}
}

func TestOutboundCallback(t *testing.T) {
	t.Parallel()
	h := startOutbound(t, nil)
	o := obReply("r-call", message.Voice, "")
	o.AgentPhone = obAgent
	h.publish(t, o, o.ID)
	d := h.report(t, "r-call", message.DeliverySent, 1)
	if !strings.HasPrefix(d.ChannelMessageID, "CA") || d.Channel != message.Voice {
		t.Errorf("sent report = %+v", d)
	}
	calls := h.api.Created("Calls")
	if len(calls) != 1 {
		t.Fatalf("%d calls, want 1", len(calls))
	}
	f := calls[0].Form
	if f.Get("To") != obAgent || f.Get("From") != obSender {
		t.Errorf("call To %q From %q, want the agent from our number", f.Get("To"), f.Get("From"))
	}
	tw := f.Get("Twiml")
	for _, want := range []string{"<Say>" + callbackGreeting + "</Say>", `<Dial callerId="` + obSender + `">` + obCustomer + "</Dial>"} {
		if !strings.Contains(tw, want) {
			t.Errorf("twiml %s lacks %s", tw, want)
		}
	}
	if f.Get("StatusCallback") != obPublic+PathStatus+"?reply=r-call" || f.Get("StatusCallbackEvent") != "completed" {
		t.Errorf("status callback %q events %q", f.Get("StatusCallback"), f["StatusCallbackEvent"])
	}
	// A redelivery places no second call.
	h.publish(t, o, "r-call-again")
	h.report(t, "r-call", message.DeliverySent, 2)
	if n := len(h.api.Requests()); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
}

func TestOutboundCallbackNoAgentPhone(t *testing.T) {
	t.Parallel()
	h := startOutbound(t, nil)
	h.publish(t, obReply("r-noagent", message.Voice, ""), "r-noagent")
	d := h.report(t, "r-noagent", message.DeliveryFailed, 1)
	if !strings.Contains(d.Detail, "agent phone") {
		t.Errorf("detail = %q", d.Detail)
	}
	if n := len(h.api.Requests()); n != 0 {
		t.Errorf("%d requests, want 0", n)
	}
}

func TestClassify(t *testing.T) {
	for _, tc := range []struct {
		name      string
		err       error
		rec       lastResponse
		permanent bool
		code      int
		after     time.Duration
	}{
		{"network", errors.New("dial tcp: connection refused"), lastResponse{}, false, 0, 0},
		{"429", errors.New("x"), lastResponse{status: 429, retryAfter: "3"}, false, 0, 3 * time.Second},
		{"503 html", errors.New("error decoding"), lastResponse{status: 503}, false, 0, 0},
		{"400", errors.New("x"), lastResponse{status: 400}, true, 0, 0},
		{"retry-after capped", errors.New("x"), lastResponse{status: 429, retryAfter: "99999"}, false, 0, maxRetryAfter},
	} {
		te := classify(tc.err, &tc.rec)
		if te.permanent != tc.permanent || te.code != tc.code || te.retryAfter != tc.after {
			t.Errorf("%s: %+v", tc.name, te)
		}
	}
}

func TestSentKey(t *testing.T) {
	for id, want := range map[string]string{
		"01JDXYZ":   "01JDXYZ",
		"a b":       "_x612062",
		"_xabc":     "_x5f78616263",
		"trailing.": "_x747261696c696e672e",
	} {
		if got := sentKey(id); got != want {
			t.Errorf("sentKey(%q) = %q, want %q", id, got, want)
		}
	}
}

// fakeMsg is a delivered-n-times reply, to test giving up without waiting
// for a dozen real backoffs.
type fakeMsg struct {
	jetstream.Msg
	delivered uint64
	mu        sync.Mutex
	termed    bool
	naked     bool
}

func (m *fakeMsg) Metadata() (*jetstream.MsgMetadata, error) {
	return &jetstream.MsgMetadata{NumDelivered: m.delivered}, nil
}

func (m *fakeMsg) Term() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.termed = true
	return nil
}

func (m *fakeMsg) NakWithDelay(time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.naked = true
	return nil
}

func TestOutboundGivesUp(t *testing.T) {
	t.Parallel()
	h := startOutbound(t, nil)
	r := &outboundRun{c: h.c, log: zaptest.NewLogger(t)}
	o := obReply("r-giveup", message.SMS, "hello")
	te := &twilioError{detail: "Twilio error 20500: Internal Server Error"}

	// Deliveries grow with pacing (a full queue, a send slot) too: only
	// failed sends count towards giving up.
	for i := 1; i < outboundMaxAttempts; i++ {
		early := &fakeMsg{delivered: uint64(3 * i)}
		r.retry(context.Background(), job{m: early, o: &o, ch: message.SMS}, te, errors.New("500"))
		if !early.naked || early.termed {
			t.Fatalf("failure %d (delivery %d): naked %v termed %v, want a retry", i, 3*i, early.naked, early.termed)
		}
	}
	last := &fakeMsg{delivered: 3 * outboundMaxAttempts}
	r.retry(context.Background(), job{m: last, o: &o, ch: message.SMS}, te, errors.New("500"))
	if !last.termed {
		t.Error("last attempt not terminated")
	}
	d := h.report(t, "r-giveup", message.DeliveryFailed, 1)
	if want := fmt.Sprintf("gave up after %d attempts: %s", outboundMaxAttempts, te.detail); d.Detail != want {
		t.Errorf("detail = %q, want %q", d.Detail, want)
	}
}

// TestAPIURLPrefix: an APIURL with a path (a proxy) keeps it in front of
// twilio-go's paths.
func TestAPIURLPrefix(t *testing.T) {
	paths := make(chan string, 1)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		paths <- r.URL.Path
		w.WriteHeader(http.StatusCreated)
		_, _ = w.Write([]byte(`{"sid":"SM1","status":"queued"}`))
	}))
	defer srv.Close()
	c := New(nil, nil, Options{AccountSID: twiliotest.AccountSID, AuthToken: twiliotest.AuthToken,
		APIURL: srv.URL + "/proxy/"}, zaptest.NewLogger(t))
	rec := &lastResponse{}
	api, err := c.api(rec)
	if err != nil {
		t.Fatal(err)
	}
	o := obReply("r-prefix", message.SMS, "hi")
	sid, err := c.createMessage(api, &o, obSender)
	if err != nil || sid != "SM1" || rec.status != http.StatusCreated {
		t.Fatalf("create: %q %v (status %d)", sid, err, rec.status)
	}
	if got, want := <-paths, "/proxy/2010-04-01/Accounts/"+twiliotest.AccountSID+"/Messages.json"; got != want {
		t.Errorf("path %q, want %q", got, want)
	}
}
