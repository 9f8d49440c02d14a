package twilio

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"

	"github.com/inroute/inroute/blob"
	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/connectors"
	"go.uber.org/zap"
)

// whNoNetwork fails every media fetch at once: the fuzzer must not reach
// out, and a failing fetch is a path worth exercising.
type whNoNetwork struct{}

func (whNoNetwork) RoundTrip(*http.Request) (*http.Response, error) {
	return nil, errors.New("no network in the fuzzer")
}

// FuzzWebhook posts arbitrary form bodies, signed or not, with arbitrary
// queries to every endpoint: the connector never panics, never accepts an
// unsigned request, and answers only with statuses Twilio understands.
func FuzzWebhook(f *testing.F) {
	srv := testbus.Start(f)
	b := srv.Connect(f)
	dir, err := blob.Open(f.TempDir(), 0)
	if err != nil {
		f.Fatal(err)
	}
	c := New(&connectors.Inbound{Bus: b}, b, Options{AccountSID: whSID, AuthToken: whToken, PublicURL: whPublic,
		Blobs: dir, MediaTypes: []string{"image/*"}, HTTPClient: &http.Client{Transport: whNoNetwork{}}}, zap.NewNop())
	mux := http.NewServeMux()
	c.Register(mux)
	paths := []string{PathSMS, PathVoice, PathRecording, PathTranscription, PathStatus}

	f.Add(uint8(0), "", smsForm("SMf1", "STOP").Encode(), true)
	f.Add(uint8(0), "", "MessageSid=SMf2&From=%2B1&NumMedia=2&MediaUrl0=https://x/y&MediaContentType0=image/png&MediaUrl1=%00", true)
	f.Add(uint8(1), "", callForm("CAf1").Encode(), true)
	f.Add(uint8(2), "from=%2B1&to=%2B2", "RecordingUrl=https://x/RE1&CallSid=CA1", true)
	f.Add(uint8(3), "from=&to=", "TranscriptionStatus=failed&RecordingSid=RE1", true)
	f.Add(uint8(4), "reply=01X", "MessageSid=SM1&MessageStatus=failed&ErrorCode=30007", true)
	f.Add(uint8(4), "reply=01X", "CallSid=CA1&CallStatus=busy", false)
	f.Add(uint8(0), "a=%zz", "Body=%ff%fe&MessageSid=SM%00", true)
	f.Add(uint8(0), "", "MessageSid=SM1&MessageSid=SM2&From=x", true)
	f.Add(uint8(2), "", strings.Repeat("a", 70<<10), true)

	f.Fuzz(func(t *testing.T, p uint8, query, body string, signed bool) {
		target := paths[int(p)%len(paths)]
		if query != "" {
			target += "?" + url.PathEscape(query)
		}
		req := httptest.NewRequest(http.MethodPost, target, strings.NewReader(body))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		if signed {
			form, _ := url.ParseQuery(body)
			req.Header.Set("X-Twilio-Signature", whSign(whToken, whPublic+req.RequestURI, form))
		}
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, req)
		switch rec.Code {
		case http.StatusOK:
			if !signed {
				t.Fatalf("unsigned request accepted: %q", body)
			}
		case http.StatusBadRequest, http.StatusForbidden, http.StatusRequestEntityTooLarge,
			http.StatusUnprocessableEntity, http.StatusServiceUnavailable:
		default:
			t.Fatalf("status %d for %q", rec.Code, body)
		}
	})
}
