package message_test

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/inroute/inroute/message"
)

func TestOutboundRoundTrip(t *testing.T) {
	o := message.Outbound{V: 1, ID: message.NewID(), ConversationID: 7, Channel: message.SMS, To: "+8613800138000",
		Text: "您好", Agent: "ann", CreatedAt: time.Date(2026, 11, 27, 9, 0, 0, 0, time.UTC)}
	data, _ := json.Marshal(o)
	got, err := message.DecodeOutbound(data)
	if err != nil || got.ID != o.ID || got.To != o.To || got.Text != o.Text || !got.CreatedAt.Equal(o.CreatedAt) {
		t.Fatalf("round trip: %+v, %v", got, err)
	}
	for _, bad := range []string{`{`, `{"v":2,"id":"x","channel":"sms","to":"+1"}`, `{"v":1,"channel":"sms","to":"+1"}`,
		`{"v":1,"id":"x","channel":"fax","to":"+1"}`, `{"v":1,"id":"x","channel":"sms"}`} {
		if _, err := message.DecodeOutbound([]byte(bad)); err == nil {
			t.Errorf("DecodeOutbound accepted %s", bad)
		}
	}
	if _, err := message.DecodeOutbound([]byte(`{"v":9,"id":"x","channel":"sms","to":"+1"}`)); !errors.Is(err, message.ErrUnsupportedVersion) {
		t.Errorf("a future version: %v", err)
	}
}

func TestDeliveryDecode(t *testing.T) {
	if d, err := message.DecodeDelivery([]byte(`{"v":1,"message_id":"m","channel":"sms","status":"failed","detail":"30007 filtered"}`)); err != nil ||
		d.Status != message.DeliveryFailed || d.Detail != "30007 filtered" {
		t.Fatalf("%+v, %v", d, err)
	}
	for _, bad := range []string{`[]`, `{"v":1,"message_id":"m","status":"lost"}`, `{"v":1,"status":"sent"}`, `{"v":0,"message_id":"m","status":"sent"}`} {
		if _, err := message.DecodeDelivery([]byte(bad)); err == nil {
			t.Errorf("DecodeDelivery accepted %s", bad)
		}
	}
}

// Outbound messages and delivery reports come off the bus, from other
// processes: no input may panic the decoder.
func FuzzDecodeOutbound(f *testing.F) {
	f.Add([]byte(`{"v":1,"id":"x","channel":"sms","to":"+1","text":"hi"}`))
	f.Add([]byte(`{"v":1,"message_id":"m","channel":"sms","status":"sent"}`))
	f.Add([]byte(`{"v":1,"id":"x","channel":"email","to":"a@b","thread":{"references":["<a>"]},"attachments":[{"size":-1}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		if o, err := message.DecodeOutbound(data); err == nil && (o.ID == "" || !o.Channel.Valid()) {
			t.Fatalf("accepted an outbound without id or channel: %s", data)
		}
		if d, err := message.DecodeDelivery(data); err == nil && d.MessageID == "" {
			t.Fatalf("accepted a report without message id: %s", data)
		}
	})
}
