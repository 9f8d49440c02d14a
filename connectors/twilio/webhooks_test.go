package twilio

import (
	"bytes"
	"context"
	"encoding/json"
	"encoding/xml"
	"github.com/inroute/inroute/connectors/twilio/twiliotest"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/inroute/inroute/blob"
	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/connectors"
	"github.com/inroute/inroute/message"
	"github.com/twilio/twilio-go/client"
	"go.uber.org/zap"
)

const (
	whPublic   = "https://support.example.com"
	whSID      = "AC0123456789abcdef0123456789abcdef"
	whToken    = "whtoken-secret"
	whCustomer = "+15557654321"
	whNumber   = "+15550001111"
)

// whSign is Twilio's documented signature (twiliotest.Sign).
func whSign(token, fullURL string, form url.Values) string {
	return twiliotest.Sign(token, fullURL, form)
}

// Twilio's published example (docs "Webhooks security"): auth token
// 12345, this URL and these parameters. The docs have printed it with two
// caller numbers over time; each has its own signature. (The brief paired
// GvWf1cFY... with +12349013030: that pairing does not verify; it belongs
// to +14158675310.)
var (
	vectorURL    = "https://mycompany.com/myapp.php?foo=1&bar=2"
	vectorToken  = "12345"
	vectorSig    = "0/KCTR6DLpKmkAf8muzZqo1nDgQ="
	vectorParams = url.Values{"CallSid": {"CA1234567890ABCDE"}, "Caller": {"+12349013030"}, "Digits": {"1234"},
		"From": {"+12349013030"}, "To": {"+18005551212"}}
	vectorSig2    = "GvWf1cFY/Q7PnoempGyD5oXAezc="
	vectorParams2 = whWith(whWith(vectorParams, "Caller", "+14158675310"), "From", "+14158675310")
)

func TestSignatureVector(t *testing.T) {
	for _, vec := range []struct {
		params url.Values
		sig    string
	}{{vectorParams, vectorSig}, {vectorParams2, vectorSig2}} {
		if got := whSign(vectorToken, vectorURL, vec.params); got != vec.sig {
			t.Fatalf("test signer gives %s for Twilio's vector, want %s", got, vec.sig)
		}
		v := client.NewRequestValidator(vectorToken)
		params := map[string]string{}
		for k := range vec.params {
			params[k] = vec.params.Get(k)
		}
		if !v.Validate(vectorURL, params, vec.sig) {
			t.Fatalf("twilio-go validator rejects Twilio's vector %s", vec.sig)
		}
		if v.Validate(vectorURL, params, vectorSig+vectorSig2) {
			t.Fatal("twilio-go validator accepts a wrong signature")
		}
	}
}

// TestSignatureVectorThroughConnector runs the published vector through
// the connector's own check (public URL + request URI + posted form).
func TestSignatureVectorThroughConnector(t *testing.T) {
	c := New(nil, nil, Options{AuthToken: vectorToken, PublicURL: "https://mycompany.com"}, zap.NewNop())
	h := c.verified(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusNoContent) })
	for _, tc := range []struct {
		name, public, sig string
		form              url.Values
		want              int
	}{
		{"published", "https://mycompany.com", vectorSig, vectorParams, http.StatusNoContent},
		{"published (other caller)", "https://mycompany.com", vectorSig2, vectorParams2, http.StatusNoContent},
		{"signature of the other vector", "https://mycompany.com", vectorSig2, vectorParams, http.StatusForbidden},
		{"public url with :443", "https://mycompany.com:443", vectorSig, vectorParams, http.StatusNoContent},
		{"public url trailing slash", "https://mycompany.com/", vectorSig, vectorParams, http.StatusNoContent},
		{"missing", "https://mycompany.com", "", vectorParams, http.StatusForbidden},
		{"other host", "https://other.example.com", vectorSig, vectorParams, http.StatusForbidden},
		{"changed parameter", "https://mycompany.com", vectorSig, whWith(vectorParams, "Digits", "4321"), http.StatusForbidden},
		{"added parameter", "https://mycompany.com", vectorSig, whWith(vectorParams, "Body", "hi"), http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.opt.PublicURL = tc.public
			req := httptest.NewRequest(http.MethodPost, "/myapp.php?foo=1&bar=2", strings.NewReader(tc.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.sig != "" {
				req.Header.Set("X-Twilio-Signature", tc.sig)
			}
			rec := httptest.NewRecorder()
			h(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("status %d, want %d (%s)", rec.Code, tc.want, rec.Body)
			}
		})
	}
}

func whWith(v url.Values, k, val string) url.Values {
	out := url.Values{}
	for kk, vv := range v {
		out[kk] = append([]string(nil), vv...)
	}
	out.Set(k, val)
	return out
}

// whFixture is a connector on a real embedded JetStream.
type whFixture struct {
	srv *testbus.Server
	b   *bus.Bus
	c   *Connector
	mux *http.ServeMux
}

func newWH(t *testing.T, edit func(*Options)) *whFixture {
	t.Helper()
	srv := testbus.Start(t)
	b := srv.Connect(t)
	opt := Options{AccountSID: whSID, AuthToken: whToken, PublicURL: whPublic, Numbers: []string{whNumber},
		Voice: Voice{Language: "en-GB", Greeting: "Hello, leave a message.", MaxLength: 90 * time.Second}}
	if edit != nil {
		edit(&opt)
	}
	c := New(&connectors.Inbound{Bus: b}, b, opt, zap.NewNop())
	mux := http.NewServeMux()
	c.Register(mux)
	return &whFixture{srv: srv, b: b, c: c, mux: mux}
}

// post sends form to target (path?query) signed as Twilio would over
// signURL (default: the public URL + target); sig "-" sends none.
func (f *whFixture) post(t *testing.T, target string, form url.Values, sig string) *httptest.ResponseRecorder {
	t.Helper()
	if sig == "" {
		sig = whSign(whToken, whPublic+target, form)
	}
	req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if sig != "-" {
		req.Header.Set("X-Twilio-Signature", sig)
	}
	rec := httptest.NewRecorder()
	f.mux.ServeHTTP(rec, req)
	return rec
}

// read returns the messages on subject in the stream.
func (f *whFixture) read(t *testing.T, stream, subject string) [][]byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b := testbus.Connect(t, f.srv.URL)
	st, err := b.JS.Stream(ctx, stream)
	if err != nil {
		t.Fatal(err)
	}
	info, err := st.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var out [][]byte
	for seq := info.State.FirstSeq; info.State.Msgs > 0 && seq <= info.State.LastSeq; seq++ {
		raw, err := st.GetMsg(ctx, seq)
		if err != nil || raw.Subject != subject {
			continue
		}
		out = append(out, raw.Data)
	}
	return out
}

func (f *whFixture) inbound(t *testing.T, ch message.Channel) []*message.Message {
	t.Helper()
	var out []*message.Message
	for _, d := range f.read(t, bus.StreamInbound, bus.InboundSubject(ch)) {
		m, err := message.Decode(d)
		if err != nil {
			t.Fatalf("invalid message on the bus: %v", err)
		}
		out = append(out, m)
	}
	return out
}

func smsForm(sid, body string) url.Values {
	return url.Values{"MessageSid": {sid}, "SmsSid": {sid}, "AccountSid": {whSID}, "From": {whCustomer},
		"To": {whNumber}, "Body": {body}, "NumMedia": {"0"}, "ApiVersion": {"2010-04-01"}}
}

func wantTwiMLOK(t *testing.T, rec *httptest.ResponseRecorder) {
	t.Helper()
	if rec.Code != http.StatusOK {
		t.Fatalf("status %d, want 200: %s", rec.Code, rec.Body)
	}
	if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/xml") {
		t.Fatalf("Content-Type %q, want text/xml", ct)
	}
}

func TestSMSInbound(t *testing.T) {
	f := newWH(t, nil)
	rec := f.post(t, PathSMS, smsForm("SM100", "Hello, my card is blocked"), "")
	wantTwiMLOK(t, rec)
	if rec.Body.String() != emptyTwiML {
		t.Fatalf("body %q, want empty TwiML", rec.Body)
	}
	ms := f.inbound(t, message.SMS)
	if len(ms) != 1 {
		t.Fatalf("%d messages on inbound.sms, want 1", len(ms))
	}
	m := ms[0]
	if m.ChannelMessageID != "SM100" || m.From.Address != whCustomer || m.To.Address != whNumber ||
		m.Text != "Hello, my card is blocked" || m.Extra["account_sid"] != whSID {
		t.Fatalf("message %+v", m)
	}
	// Twilio delivering the same MessageSid again: one message.
	wantTwiMLOK(t, f.post(t, PathSMS, smsForm("SM100", "Hello, my card is blocked"), ""))
	if n := len(f.inbound(t, message.SMS)); n != 1 {
		t.Fatalf("same MessageSid twice gave %d messages, want 1", n)
	}
}

func TestSignatureRejected(t *testing.T) {
	f := newWH(t, nil)
	form := smsForm("SM200", "hi")
	cases := map[string]string{
		"missing":     "-",
		"wrong token": whSign("not-the-token", whPublic+PathSMS, form),
		"changed":     whSign(whToken, whPublic+PathSMS, whWith(form, "Body", "bye")),
		"other path":  whSign(whToken, whPublic+PathVoice, form),
		"http scheme": whSign(whToken, "http://support.example.com"+PathSMS, form),
	}
	for name, sig := range cases {
		if rec := f.post(t, PathSMS, form, sig); rec.Code != http.StatusForbidden {
			t.Errorf("%s: status %d, want 403", name, rec.Code)
		}
	}
	for _, p := range []string{PathVoice, PathRecording, PathTranscription, PathStatus + "?reply=x"} {
		if rec := f.post(t, p, form, "-"); rec.Code != http.StatusForbidden {
			t.Errorf("%s unsigned: status %d, want 403", p, rec.Code)
		}
	}
	if n := len(f.inbound(t, message.SMS)); n != 0 {
		t.Fatalf("rejected requests published %d messages", n)
	}
	// Twilio signs https URLs with or without :443; both are accepted.
	wantTwiMLOK(t, f.post(t, PathSMS, form, whSign(whToken, "https://support.example.com:443"+PathSMS, form)))
	wantTwiMLOK(t, f.post(t, PathSMS, smsForm("SM201", "x"), whSign(whToken, whPublic+PathSMS, smsForm("SM201", "x"))))
	// A public URL configured with the port verifies Twilio's signature
	// over the URL without it.
	f.c.opt.PublicURL = "https://support.example.com:443"
	wantTwiMLOK(t, f.post(t, PathSMS, smsForm("SM202", "y"), ""))
}

func TestBadBodies(t *testing.T) {
	f := newWH(t, nil)
	req := httptest.NewRequest(http.MethodPost, PathSMS, strings.NewReader("a=%zz"))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	rec := httptest.NewRecorder()
	f.mux.ServeHTTP(rec, req)
	if rec.Code != http.StatusBadRequest {
		t.Fatalf("malformed form: status %d, want 400", rec.Code)
	}
	big := url.Values{"Body": {strings.Repeat("x", maxWebhookBody)}}
	if rec := f.post(t, PathSMS, big, ""); rec.Code != http.StatusRequestEntityTooLarge {
		t.Fatalf("oversized body: status %d, want 413", rec.Code)
	}
	if rec := f.post(t, PathSMS, url.Values{"Body": {"no sid"}}, ""); rec.Code != http.StatusBadRequest {
		t.Fatalf("signed but without MessageSid: status %d, want 400", rec.Code)
	}
}

func TestSMSBusDownThenRetry(t *testing.T) {
	f := newWH(t, nil)
	form := smsForm("SM300", "are you there?")
	f.srv.Shutdown()
	rec := f.post(t, PathSMS, form, "")
	if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") == "" {
		t.Fatalf("bus down: status %d Retry-After %q, want 503 with Retry-After", rec.Code, rec.Header().Get("Retry-After"))
	}
	f.srv.Restart()
	testbus.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		if rec := f.post(t, PathSMS, form, ""); rec.Code != http.StatusOK {
			return &whStatusErr{rec.Code}
		}
		return nil
	})
	// Twilio's own retry of the accepted request: still one message.
	wantTwiMLOK(t, f.post(t, PathSMS, form, ""))
	if n := len(f.inbound(t, message.SMS)); n != 1 {
		t.Fatalf("%d messages after the outage and retries, want 1", n)
	}
}

type whStatusErr struct{ code int }

func (e *whStatusErr) Error() string { return http.StatusText(e.code) }

func TestSMSStopStart(t *testing.T) {
	f := newWH(t, nil)
	wantTwiMLOK(t, f.post(t, PathSMS, smsForm("SM400", " Stop "), ""))
	out, err := f.c.optOuts.Out(context.Background(), whCustomer)
	if err != nil || !out {
		t.Fatalf("after STOP: out %v, err %v", out, err)
	}
	ms := f.inbound(t, message.SMS)
	if len(ms) != 1 || ms[0].Extra["opt_out"] != "stop" {
		t.Fatalf("STOP not published for agents: %+v", ms)
	}
	wantTwiMLOK(t, f.post(t, PathSMS, smsForm("SM401", "START"), ""))
	if out, err := f.c.optOuts.Out(context.Background(), whCustomer); err != nil || out {
		t.Fatalf("after START: out %v, err %v", out, err)
	}
}

func TestMMSMedia(t *testing.T) {
	jpeg := bytes.Repeat([]byte{0xff, 0xd8, 0xff}, 100)
	big := bytes.Repeat([]byte("a"), 2048)
	// Twilio's media host: the signed redirect target, no credentials.
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "" {
			t.Errorf("credentials sent to the media host")
		}
		switch r.URL.Path {
		case "/cdn/ME1":
			w.Header().Set("Content-Type", "image/jpeg")
			_, _ = w.Write(jpeg)
		case "/cdn/ME3":
			_, _ = w.Write(big)
		default:
			http.NotFound(w, r)
		}
	}))
	defer cdn.Close()
	var fail bool
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user, pass, ok := r.BasicAuth()
		if !ok || user != whSID || pass != whToken {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if fail {
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		http.Redirect(w, r, cdn.URL+"/cdn/"+strings.TrimPrefix(r.URL.Path, "/media/"), http.StatusTemporaryRedirect)
	}))
	defer api.Close()
	dir, err := blob.Open(t.TempDir(), 0)
	if err != nil {
		t.Fatal(err)
	}
	f := newWH(t, func(o *Options) {
		o.Blobs, o.MaxMediaSize, o.MediaTypes = dir, 1024, []string{"image/*", "text/plain"}
	})
	form := smsForm("MM500", "")
	form.Set("NumMedia", "3")
	form.Set("MediaUrl0", api.URL+"/media/ME1")
	form.Set("MediaContentType0", "image/jpeg")
	form.Set("MediaUrl1", api.URL+"/media/ME2")
	form.Set("MediaContentType1", "application/x-msdownload")
	form.Set("MediaUrl2", api.URL+"/media/ME3")
	form.Set("MediaContentType2", "text/plain")

	// A fetch failure asks Twilio to retry and publishes nothing.
	fail = true
	if rec := f.post(t, PathSMS, form, ""); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("media fetch failing: status %d, want 503", rec.Code)
	}
	if n := len(f.inbound(t, message.SMS)); n != 0 {
		t.Fatalf("%d messages published without their media", n)
	}
	fail = false
	wantTwiMLOK(t, f.post(t, PathSMS, form, ""))
	ms := f.inbound(t, message.SMS)
	if len(ms) != 1 {
		t.Fatalf("%d messages, want 1", len(ms))
	}
	m := ms[0]
	if len(m.Attachments) != 2 {
		t.Fatalf("attachments %+v, want the image and the too-large text", m.Attachments)
	}
	a := m.Attachments[0]
	if !blob.IsRef(a.URL) || a.Size != int64(len(jpeg)) || a.ContentType != "image/jpeg" {
		t.Fatalf("image attachment %+v", a)
	}
	rc, err := dir.Open(a.URL)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	rc.Close()
	if !bytes.Equal(got, jpeg) {
		t.Fatal("stored bytes differ from the media")
	}
	if m.Attachments[1].URL != api.URL+"/media/ME3" || m.Extra["media_2_not_stored"] == "" {
		t.Fatalf("too-large medium: %+v extra %v", m.Attachments[1], m.Extra)
	}
	if m.Extra["media_1_skipped"] == "" {
		t.Fatalf("disallowed type not noted: %v", m.Extra)
	}
}

func TestMMSWithoutBlobsKeepsURLs(t *testing.T) {
	f := newWH(t, nil)
	form := smsForm("MM600", "see photo")
	form.Set("NumMedia", "1")
	form.Set("MediaUrl0", "https://api.twilio.com/2010-04-01/Accounts/AC/Messages/MM600/Media/ME1")
	form.Set("MediaContentType0", "image/png")
	wantTwiMLOK(t, f.post(t, PathSMS, form, ""))
	ms := f.inbound(t, message.SMS)
	if len(ms) != 1 || len(ms[0].Attachments) != 1 || ms[0].Attachments[0].URL != form.Get("MediaUrl0") ||
		ms[0].Attachments[0].Name != "ME1.png" {
		t.Fatalf("messages %+v", ms)
	}
}

// whTwiML is the part of a voice answer the tests read.
type whTwiML struct {
	Say []struct {
		Language string `xml:"language,attr"`
		Text     string `xml:",chardata"`
	} `xml:"Say"`
	Record struct {
		Action             string `xml:"action,attr"`
		MaxLength          string `xml:"maxLength,attr"`
		Transcribe         string `xml:"transcribe,attr"`
		TranscribeCallback string `xml:"transcribeCallback,attr"`
		PlayBeep           string `xml:"playBeep,attr"`
		StatusCallback     string `xml:"recordingStatusCallback,attr"`
	} `xml:"Record"`
	Hangup *struct{} `xml:"Hangup"`
}

func callForm(sid string) url.Values {
	return url.Values{"CallSid": {sid}, "AccountSid": {whSID}, "From": {whCustomer}, "To": {whNumber},
		"CallStatus": {"ringing"}, "Direction": {"inbound"}}
}

func (f *whFixture) call(t *testing.T, sid string) whTwiML {
	t.Helper()
	rec := f.post(t, PathVoice, callForm(sid), "")
	wantTwiMLOK(t, rec)
	var doc whTwiML
	if err := xml.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
		t.Fatalf("voice answer is not TwiML: %v\n%s", err, rec.Body)
	}
	return doc
}

// TestCallHangUpBeforeBeep: the voice webhook alone (no recording ever
// comes) leaves a call-back request on inbound.voice.
func TestCallHangUpBeforeBeep(t *testing.T) {
	f := newWH(t, nil)
	doc := f.call(t, "CA700")
	if len(doc.Say) != 2 || doc.Say[0].Text != "Hello, leave a message." || doc.Say[0].Language != "en-GB" ||
		doc.Record.MaxLength != "90" || doc.Record.Transcribe != "true" || doc.Record.PlayBeep != "true" || doc.Hangup == nil {
		t.Fatalf("TwiML %+v", doc)
	}
	if !strings.HasPrefix(doc.Record.Action, whPublic+PathRecording+"?") ||
		!strings.HasPrefix(doc.Record.TranscribeCallback, whPublic+PathTranscription+"?") {
		t.Fatalf("callbacks %q %q", doc.Record.Action, doc.Record.TranscribeCallback)
	}
	ms := f.inbound(t, message.Voice)
	if len(ms) != 1 {
		t.Fatalf("%d voice messages, want 1", len(ms))
	}
	m := ms[0]
	if m.ChannelMessageID != "CA700" || m.From.Address != whCustomer || m.To.Address != whNumber ||
		m.Thread.ChatID != "CA700" || m.Extra["call_sid"] != "CA700" || m.Extra["call_status"] != "ringing" ||
		!strings.Contains(m.Text, whCustomer) {
		t.Fatalf("call message %+v", m)
	}
}

func TestCallAfterHours(t *testing.T) {
	f := newWH(t, func(o *Options) {
		o.Open = func(time.Time) bool { return false }
		o.Voice.AfterHours = "We are closed; leave a message."
	})
	doc := f.call(t, "CA710")
	if len(doc.Say) == 0 || doc.Say[0].Text != "We are closed; leave a message." {
		t.Fatalf("after-hours greeting missing: %+v", doc.Say)
	}
	if ms := f.inbound(t, message.Voice); len(ms) != 1 || ms[0].Extra["after_hours"] != "true" {
		t.Fatalf("messages %+v", ms)
	}
}

func TestCallBusDown(t *testing.T) {
	f := newWH(t, nil)
	f.srv.Shutdown()
	if rec := f.post(t, PathVoice, callForm("CA720"), ""); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503", rec.Code)
	}
}

// whPath is the target (path?query) of a callback URL from the TwiML.
func whPath(t *testing.T, full string) string {
	t.Helper()
	if !strings.HasPrefix(full, whPublic) {
		t.Fatalf("callback %q is not under the public URL", full)
	}
	return strings.TrimPrefix(full, whPublic)
}

// TestVoicemailFollowUps: the recording (the <Record> action) and the
// transcription callback (sent here without From/To, as some of Twilio's
// callbacks are) join the caller's conversation.
func TestVoicemailFollowUps(t *testing.T) {
	f := newWH(t, nil)
	doc := f.call(t, "CA800")
	recURL := "https://api.twilio.com/2010-04-01/Accounts/" + whSID + "/Recordings/RE800"
	action := callForm("CA800")
	action.Set("CallStatus", "completed")
	action.Set("RecordingUrl", recURL)
	action.Set("RecordingSid", "RE800")
	action.Set("RecordingDuration", "12")
	rec := f.post(t, whPath(t, doc.Record.Action), action, "")
	wantTwiMLOK(t, rec)
	if !strings.Contains(rec.Body.String(), "<Hangup>") && !strings.Contains(rec.Body.String(), "<Hangup/>") {
		t.Fatalf("recording answer %s", rec.Body)
	}
	// The recording status callback (no From/To) for the same recording
	// adds nothing; one for an absent recording is acknowledged.
	status := url.Values{"AccountSid": {whSID}, "CallSid": {"CA800"}, "RecordingSid": {"RE800"}, "RecordingUrl": {recURL},
		"RecordingStatus": {"completed"}, "RecordingDuration": {"12"}}
	wantTwiMLOK(t, f.post(t, whPath(t, doc.Record.StatusCallback), status, ""))
	absent := url.Values{"AccountSid": {whSID}, "CallSid": {"CA800"}, "RecordingSid": {"RE899"}, "RecordingStatus": {"absent"}}
	wantTwiMLOK(t, f.post(t, whPath(t, doc.Record.StatusCallback), absent, ""))
	tr := url.Values{"AccountSid": {whSID}, "CallSid": {"CA800"}, "RecordingSid": {"RE800"}, "RecordingUrl": {recURL},
		"TranscriptionSid": {"TR800"}, "TranscriptionText": {"Please call me back about my card"},
		"TranscriptionStatus": {"completed"}}
	wantTwiMLOK(t, f.post(t, whPath(t, doc.Record.TranscribeCallback), tr, ""))
	// A failed transcription of another recording is still recorded.
	failed := url.Values{"CallSid": {"CA800"}, "RecordingSid": {"RE801"}, "TranscriptionStatus": {"failed"}}
	wantTwiMLOK(t, f.post(t, whPath(t, doc.Record.TranscribeCallback), failed, ""))
	// Twilio's retry of the transcription: no second message.
	wantTwiMLOK(t, f.post(t, whPath(t, doc.Record.TranscribeCallback), tr, ""))

	ms := f.inbound(t, message.Voice)
	if len(ms) != 4 {
		t.Fatalf("%d voice messages, want call, voicemail, 2 transcriptions", len(ms))
	}
	byID := map[string]*message.Message{}
	for _, m := range ms {
		byID[m.ChannelMessageID] = m
		if m.From.Address != whCustomer || m.To.Address != whNumber || m.Thread.ChatID != "CA800" {
			t.Errorf("%s is not from the caller's conversation: from %q to %q chat %q", m.ChannelMessageID, m.From.Address, m.To.Address, m.Thread.ChatID)
		}
	}
	vm := byID["RE800"]
	if vm == nil || vm.Text != "Voicemail (12s): "+recURL || vm.Extra["recording_url"] != recURL || vm.Extra["recording_sid"] != "RE800" {
		t.Fatalf("voicemail %+v", vm)
	}
	tm := byID["transcription:RE800"]
	if tm == nil || !strings.Contains(tm.Text, "Please call me back about my card") || tm.Extra["transcription_status"] != "completed" {
		t.Fatalf("transcription %+v", tm)
	}
	if fm := byID["transcription:RE801"]; fm == nil || fm.Extra["transcription_status"] != "failed" {
		t.Fatalf("failed transcription %+v", fm)
	}
}

func (f *whFixture) deliveries(t *testing.T, ch message.Channel) []message.Delivery {
	t.Helper()
	var out []message.Delivery
	for _, d := range f.read(t, bus.StreamEvents, bus.DeliverySubject(ch)) {
		var r message.Delivery
		if err := json.Unmarshal(d, &r); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	return out
}

func TestStatusCallbacks(t *testing.T) {
	f := newWH(t, nil)
	target := PathStatus + "?" + ParamReply + "=" + url.QueryEscape("01REPLY")
	st := func(sid, status string, extra ...string) url.Values {
		v := url.Values{"MessageSid": {sid}, "MessageStatus": {status}, "AccountSid": {whSID}, "To": {whCustomer}, "From": {whNumber}}
		for i := 0; i+1 < len(extra); i += 2 {
			v.Set(extra[i], extra[i+1])
		}
		return v
	}
	for _, s := range []string{"queued", "sending", "accepted"} {
		wantTwiMLOK(t, f.post(t, target, st("SM900", s), ""))
	}
	wantTwiMLOK(t, f.post(t, target, st("SM900", "sent"), ""))
	wantTwiMLOK(t, f.post(t, target, st("SM900", "delivered"), ""))
	wantTwiMLOK(t, f.post(t, target, st("SM900", "delivered"), "")) // retry
	wantTwiMLOK(t, f.post(t, target, st("SM901", "undelivered", "ErrorCode", "30007"), ""))
	wantTwiMLOK(t, f.post(t, target, st("SM902", "failed", "ErrorCode", "30008", "ErrorMessage", "Unknown error"), ""))

	ds := f.deliveries(t, message.SMS)
	if len(ds) != 4 {
		t.Fatalf("%d reports, want sent, delivered, 2 failed: %+v", len(ds), ds)
	}
	want := []struct{ sid, status, detail string }{
		{"SM900", message.DeliverySent, ""}, {"SM900", message.DeliveryDelivered, ""},
		{"SM901", message.DeliveryFailed, "Twilio error 30007: message filtered by the carrier"},
		{"SM902", message.DeliveryFailed, "Twilio error 30008: Unknown error"},
	}
	for i, w := range want {
		d := ds[i]
		if d.V != message.OutboundVersion || d.MessageID != "01REPLY" || d.Channel != message.SMS ||
			d.ChannelMessageID != w.sid || d.Status != w.status || d.Detail != w.detail {
			t.Errorf("report %d: %+v, want %+v", i, d, w)
		}
	}

	call := url.Values{"CallSid": {"CA901"}, "CallStatus": {"no-answer"}, "AccountSid": {whSID}}
	wantTwiMLOK(t, f.post(t, target, call, ""))
	if ds := f.deliveries(t, message.Voice); len(ds) != 1 || ds[0].Status != message.DeliveryFailed || ds[0].ChannelMessageID != "CA901" {
		t.Fatalf("call report %+v", ds)
	}
	// Without a reply id there is nothing to report on.
	wantTwiMLOK(t, f.post(t, PathStatus, st("SM903", "delivered"), ""))

	f.srv.Shutdown()
	if rec := f.post(t, target, st("SM904", "delivered"), ""); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("bus down: status %d, want 503", rec.Code)
	}
}

func TestMediaAllowed(t *testing.T) {
	for _, tc := range []struct {
		ct       string
		patterns []string
		want     bool
	}{
		{"image/jpeg", nil, true},
		{"image/jpeg", []string{"image/*"}, true},
		{"IMAGE/PNG", []string{"image/*"}, true},
		{"imagex/png", []string{"image/*"}, false},
		{"application/pdf", []string{"image/*", "application/pdf"}, true},
		{"application/pdf; q=1", []string{"application/pdf"}, true},
		{"video/mp4", []string{"image/*"}, false},
		{"", []string{"image/*"}, false},
	} {
		if got := mediaAllowed(tc.ct, tc.patterns); got != tc.want {
			t.Errorf("mediaAllowed(%q, %v) = %v", tc.ct, tc.patterns, got)
		}
	}
}

// TestVoicemailStatusCallbackAlone: when the <Record> action never reached
// us, the recording status callback (which has no From/To) still puts the
// voicemail in the caller's conversation.
func TestVoicemailStatusCallbackAlone(t *testing.T) {
	f := newWH(t, nil)
	doc := f.call(t, "CA810")
	recURL := "https://api.twilio.com/2010-04-01/Accounts/" + whSID + "/Recordings/RE810"
	status := url.Values{"AccountSid": {whSID}, "CallSid": {"CA810"}, "RecordingSid": {"RE810"}, "RecordingUrl": {recURL},
		"RecordingStatus": {"completed"}, "RecordingDuration": {"7"}}
	wantTwiMLOK(t, f.post(t, whPath(t, doc.Record.StatusCallback), status, ""))
	var vm *message.Message
	for _, m := range f.inbound(t, message.Voice) {
		if m.ChannelMessageID == "RE810" {
			vm = m
		}
	}
	if vm == nil || vm.From.Address != whCustomer || vm.To.Address != whNumber || vm.Text != "Voicemail (7s): "+recURL {
		t.Fatalf("voicemail %+v", vm)
	}
}

// TestMMSBlobLimitBelowMediaLimit: a blob store that refuses the size is a
// too-large medium (URL kept), not a failure Twilio would retry forever.
func TestMMSBlobLimitBelowMediaLimit(t *testing.T) {
	cdn := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = w.Write(bytes.Repeat([]byte("p"), 500))
	}))
	defer cdn.Close()
	dir, err := blob.Open(t.TempDir(), 100)
	if err != nil {
		t.Fatal(err)
	}
	f := newWH(t, func(o *Options) { o.Blobs, o.MaxMediaSize = dir, 1000 })
	form := smsForm("MM650", "")
	form.Set("NumMedia", "1")
	form.Set("MediaUrl0", cdn.URL+"/ME1")
	form.Set("MediaContentType0", "image/png")
	wantTwiMLOK(t, f.post(t, PathSMS, form, ""))
	ms := f.inbound(t, message.SMS)
	if len(ms) != 1 || len(ms[0].Attachments) != 1 || ms[0].Attachments[0].URL != cdn.URL+"/ME1" || ms[0].Extra["media_0_not_stored"] == "" {
		t.Fatalf("messages %+v", ms)
	}
}

// A medium Twilio no longer has (404) must not lose the text with it.
func TestMMSGoneMediaKeepsTheMessage(t *testing.T) {
	cdn := httptest.NewServer(http.NotFoundHandler())
	defer cdn.Close()
	dir, err := blob.Open(t.TempDir(), 1<<20)
	if err != nil {
		t.Fatal(err)
	}
	f := newWH(t, func(o *Options) { o.Blobs = dir })
	form := smsForm("MM700", "see the screenshot")
	form.Set("NumMedia", "1")
	form.Set("MediaUrl0", cdn.URL+"/ME404")
	form.Set("MediaContentType0", "image/png")
	wantTwiMLOK(t, f.post(t, PathSMS, form, ""))
	ms := f.inbound(t, message.SMS)
	if len(ms) != 1 || ms[0].Text != "see the screenshot" || ms[0].Extra["media_0_not_stored"] == "" {
		t.Fatalf("messages %+v", ms)
	}
}

// An opt-out asked for while the bus was down is recorded once it is
// back: a failure to reach the bucket is not remembered.
func TestStopAfterABusOutage(t *testing.T) {
	f := newWH(t, nil)
	f.srv.Shutdown()
	if rec := f.post(t, PathSMS, smsForm("SM800", "STOP"), ""); rec.Code != http.StatusServiceUnavailable {
		t.Fatalf("STOP with the bus down: %d, want 503", rec.Code)
	}
	f.srv.Restart()
	testbus.CheckFor(t, 20*time.Second, 100*time.Millisecond, func() error {
		if rec := f.post(t, PathSMS, smsForm("SM800", "STOP"), ""); rec.Code != http.StatusOK {
			return &whStatusErr{rec.Code}
		}
		return nil
	})
	if out, err := f.c.optOuts.Out(context.Background(), whCustomer); err != nil || !out {
		t.Fatalf("after the retried STOP: out %v, err %v", out, err)
	}
}
