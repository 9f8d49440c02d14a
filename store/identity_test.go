package store

import (
	"reflect"
	"testing"
	"time"

	"github.com/inroute/inroute/message"
)

func TestNormalizePhone(t *testing.T) {
	cases := []struct{ in, region, want string }{
		{"+86 138 0013 8000", "CN", "+8613800138000"},
		{"13800138000", "CN", "+8613800138000"},
		{"(415) 555-0100", "US", "+14155550100"},
		{"+1 415-555-0100", "CN", "+14155550100"},
		{"0044 20 7946 0958", "GB", "+442079460958"},
	}
	for _, tc := range cases {
		got, err := NormalizePhone(tc.in, tc.region)
		if err != nil || got != tc.want {
			t.Errorf("%q (%s): got %q %v, want %q", tc.in, tc.region, got, err, tc.want)
		}
	}
	for _, bad := range []string{"call me", "12", ""} {
		if _, err := NormalizePhone(bad, "CN"); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

func TestIdentities(t *testing.T) {
	m := func(ch message.Channel, from message.Party, to string) *message.Message {
		return &message.Message{V: 1, ID: message.NewID(), Channel: ch, ChannelMessageID: "x", ReceivedAt: time.Now(), From: from, To: message.Party{Address: to}, Text: "t"}
	}
	cases := []struct {
		name string
		msg  *message.Message
		want []Identity
	}{
		{"email folds case", m(message.Email, message.Party{Address: "Ann@Example.COM"}, "support@w"),
			[]Identity{{Kind: KindEmail, Value: "ann@example.com", Verified: true}}},
		{"sms to E.164", m(message.SMS, message.Party{Address: "+8613800138000"}, "+1"),
			[]Identity{{Kind: KindPhone, Value: "+8613800138000", Verified: true}}},
		{"app with verified phone and unverified email", m(message.App, message.Party{Address: "u-1", Phone: "138 0013 8000", PhoneVerified: true, Email: "A@x.com"}, "wallet"),
			[]Identity{{Kind: KindApp, Value: "wallet/u-1", Verified: true}, {Kind: KindEmail, Value: "a@x.com"}, {Kind: KindPhone, Value: "+8613800138000", Verified: true}}},
		{"telegram", m(message.Telegram, message.Party{Address: "12345"}, "bot"),
			[]Identity{{Kind: "telegram", Value: "12345", Verified: true}}},
		{"email channel with the same email again", m(message.Email, message.Party{Address: "a@x.com", Email: "A@X.com"}, "s"),
			[]Identity{{Kind: KindEmail, Value: "a@x.com", Verified: true}}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := Identities(tc.msg, "CN"); !reflect.DeepEqual(got, tc.want) {
				t.Fatalf("got %+v, want %+v", got, tc.want)
			}
		})
	}
}
