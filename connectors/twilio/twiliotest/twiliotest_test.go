package twiliotest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/inroute/inroute/connectors/twilio/twiliotest"
)

func post(t *testing.T, s *twiliotest.Server, path, user, pass string, form url.Values) (*http.Response, map[string]any) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL+path, strings.NewReader(form.Encode()))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if user != "" {
		req.SetBasicAuth(user, pass)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatalf("answer is not JSON: %v", err)
	}
	return resp, body
}

func TestServer(t *testing.T) {
	s := twiliotest.New()
	defer s.Close()
	msgs := "/2010-04-01/Accounts/" + s.SID + "/Messages.json"
	calls := "/2010-04-01/Accounts/" + s.SID + "/Calls.json"
	sms := url.Values{"From": {"+15550001111"}, "To": {"+15557654321"}, "Body": {"hi"}}

	resp, body := post(t, s, msgs, s.SID, "wrong", sms)
	if resp.StatusCode != http.StatusUnauthorized || body["code"] != float64(20003) {
		t.Errorf("bad token: %d %v", resp.StatusCode, body)
	}
	resp, body = post(t, s, msgs, s.SID, s.Token, sms)
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(body["sid"].(string), "SM") || body["status"] != "queued" {
		t.Errorf("create message: %d %v", resp.StatusCode, body)
	}
	s.FailNextWith(1, twiliotest.Failure{Status: 429, Code: 20429, Message: "Too Many Requests", RetryAfter: "2"})
	s.FailNext(1, 400, 21211, "Invalid 'To' Phone Number")
	resp, body = post(t, s, msgs, s.SID, s.Token, sms)
	if resp.StatusCode != 429 || resp.Header.Get("Retry-After") != "2" || body["code"] != float64(20429) {
		t.Errorf("429: %d %v", resp.StatusCode, body)
	}
	resp, body = post(t, s, msgs, s.SID, s.Token, sms)
	if resp.StatusCode != 400 || body["code"] != float64(21211) || body["message"] != "Invalid 'To' Phone Number" ||
		body["status"] != float64(400) || body["more_info"] == "" {
		t.Errorf("400: %d %v", resp.StatusCode, body)
	}
	resp, body = post(t, s, calls, s.SID, s.Token, url.Values{"From": {"+1"}, "To": {"+2"}, "Twiml": {"<Response/>"}})
	if resp.StatusCode != http.StatusCreated || !strings.HasPrefix(body["sid"].(string), "CA") {
		t.Errorf("create call: %d %v", resp.StatusCode, body)
	}
	resp, _ = post(t, s, calls, s.SID, s.Token, url.Values{"From": {"+1"}, "To": {"+2"}})
	if resp.StatusCode != 400 {
		t.Errorf("call without TwiML: %d", resp.StatusCode)
	}
	resp, _ = post(t, s, "/2010-04-01/Accounts/"+s.SID+"/Other.json", s.SID, s.Token, nil)
	if resp.StatusCode != 404 {
		t.Errorf("unknown path: %d", resp.StatusCode)
	}

	reqs := s.Requests()
	if len(reqs) != 7 {
		t.Fatalf("%d requests recorded, want 7", len(reqs))
	}
	if r := reqs[1]; r.Method != http.MethodPost || r.Path != msgs || r.Kind != "Messages" || r.Form.Get("Body") != "hi" || r.Status != 201 {
		t.Errorf("recorded %+v", r)
	}
	if n := len(s.Created("Messages")); n != 1 {
		t.Errorf("%d messages created, want 1", n)
	}
	if n := len(s.Created("Calls")); n != 1 {
		t.Errorf("%d calls created, want 1", n)
	}
}
