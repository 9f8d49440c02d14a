package system_test

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/connectors/twilio"
	"github.com/inroute/inroute/connectors/twilio/twiliotest"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/system"
)

// publicURL is where "Twilio" believes inroute is: behind a proxy, not the
// test's listener, so the signatures exercise connectors.twilio.public_url.
const publicURL = "https://support.example.com"

func postTwilio(t *testing.T, base, path string, form url.Values) (int, string) {
	t.Helper()
	req, _ := http.NewRequest("POST", base+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", twiliotest.Sign(twiliotest.AuthToken, publicURL+path, form))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// Tried as an operator would: an SMS lands in its queue and the agent's
// reply goes back through the Messages API from the number written to; a
// missed call is at the top of the queue as an urgent call-back request.
func TestTwilioSMSAndMissedCallEndToEnd(t *testing.T) {
	double := twiliotest.New()
	t.Cleanup(double.Close)
	cfg := shippedConfig(t)
	on := true
	cfg.Conns.Twilio = config.TwilioConnector{Enabled: &on, AccountSID: twiliotest.AccountSID, AuthToken: twiliotest.AuthToken,
		PublicURL: publicURL, Numbers: []string{"+14155550000"}, APIURL: double.URL, MessagesPerSecond: 10,
		MaxMediaSize: 1 << 20, Voice: config.TwilioVoice{Language: "en-US", Greeting: "Hello", MaxLength: config.Duration(time.Minute)}}
	sys := start(t, cfg, system.RoleAll)
	base := "http://" + sys.HTTPAddr()

	sms := url.Values{"MessageSid": {"SM00000000000000000000000000000001"}, "AccountSid": {twiliotest.AccountSID},
		"From": {"+8613900000042"}, "To": {"+14155550000"}, "Body": {"My payment failed at the shop"}, "NumMedia": {"0"}}
	for range 2 { // Twilio's retry is the same message
		if s, body := postTwilio(t, base, twilio.PathSMS, sms); s != 200 || !strings.Contains(body, "<Response") {
			t.Fatalf("sms webhook: %d %s", s, body)
		}
	}
	forged := url.Values{"MessageSid": {"SM2"}, "From": {"+1"}, "To": {"+14155550000"}, "Body": {"x"}}
	req, _ := http.NewRequest("POST", base+twilio.PathSMS, strings.NewReader(forged.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("X-Twilio-Signature", "forged")
	if resp, err := http.DefaultClient.Do(req); err != nil || resp.StatusCode != 403 {
		t.Fatalf("forged webhook: %v %v", resp, err)
	}
	waitWaiting(t, sys, 1)

	v := viewOK(t, "POST", base+"/v1/agent/next", agentToken)
	if v.Conversation.Queue != "payments" || v.Conversation.Channel != message.SMS || len(v.Messages) != 1 {
		t.Fatalf("the SMS: queue %s channel %s, %d messages", v.Conversation.Queue, v.Conversation.Channel, len(v.Messages))
	}
	reply := fmt.Sprintf("%s/v1/conversations/%d/reply", base, v.Conversation.ID)
	for range 2 {
		if s, data, _ := doKey(t, reply, agentToken, "sms-1", map[string]any{"text": "We are looking into it"}); s != 201 && s != 200 {
			t.Fatalf("reply: %d %s", s, data)
		}
	}
	testbus.CheckFor(t, 15*time.Second, 50*time.Millisecond, func() error {
		sent := double.Created("Messages")
		if len(sent) != 1 {
			return fmt.Errorf("%d Messages requests", len(sent))
		}
		f := sent[0].Form
		if f.Get("From") != "+14155550000" || f.Get("To") != "+8613900000042" || f.Get("Body") != "We are looking into it" ||
			!strings.HasPrefix(f.Get("StatusCallback"), publicURL+twilio.PathStatus) {
			return fmt.Errorf("Messages request %v", f)
		}
		return nil
	})

	// A caller who hangs up before the beep: urgent, at the top.
	call := url.Values{"CallSid": {"CA00000000000000000000000000000007"}, "AccountSid": {twiliotest.AccountSID},
		"From": {"+8613900000099"}, "To": {"+14155550000"}, "CallStatus": {"ringing"}}
	if s, body := postTwilio(t, base, twilio.PathVoice, call); s != 200 || !strings.Contains(body, "<Record") {
		t.Fatalf("voice webhook: %d %s", s, body)
	}
	waitWaiting(t, sys, 1)
	v = viewOK(t, "POST", base+"/v1/agent/next", agentToken)
	if v.Conversation.Channel != message.Voice || v.Conversation.Urgency != message.Urgent {
		t.Fatalf("the missed call: %s %s", v.Conversation.Channel, v.Conversation.Urgency)
	}
}
