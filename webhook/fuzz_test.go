package webhook_test

import (
	"errors"
	"testing"
	"time"

	"github.com/inroute/inroute/webhook"
)

// FuzzVerify: any header and body give one of the documented errors or nil,
// never a panic, and nil only for a header that really signs the body.
func FuzzVerify(f *testing.F) {
	now := time.Unix(1_800_000_000, 0)
	f.Add(webhook.Sign(secret, now, []byte("{}")), []byte("{}"))
	f.Add("t=1800000000,v1=", []byte("x"))
	f.Add("t=,v1=00,v1=00,,=", []byte(""))
	f.Add("t=99999999999999999999999,v1=zz", []byte("x"))
	f.Add("v1=aa,t=-1", []byte("x"))
	f.Fuzz(func(t *testing.T, header string, body []byte) {
		err := webhook.Verify(secret, header, body, now, time.Minute)
		switch {
		case err == nil:
			if webhook.Verify([]byte("another secret"), header, body, now, time.Minute) == nil {
				t.Fatalf("header %q verifies under two secrets", header)
			}
		case errors.Is(err, webhook.ErrNoSignature), errors.Is(err, webhook.ErrBadSignature), errors.Is(err, webhook.ErrExpired):
		default:
			t.Fatalf("undocumented error %v for %q", err, header)
		}
	})
}
