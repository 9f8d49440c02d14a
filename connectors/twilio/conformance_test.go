package twilio

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/inroute/inroute/bus/testbus"
	"github.com/inroute/inroute/connectors"
	"github.com/inroute/inroute/connectors/conformance"
	"github.com/inroute/inroute/message"
	"go.uber.org/zap"
)

// TestConformance runs the suite every connector passes, with Twilio's
// side played by signed SMS webhooks over real HTTP.
func TestConformance(t *testing.T) {
	conformance.Run(t, func(t *testing.T, busURL string) conformance.Harness {
		b := testbus.Connect(t, busURL)
		mux := http.NewServeMux()
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		c := New(&connectors.Inbound{Bus: b}, b, Options{AccountSID: whSID, AuthToken: whToken, PublicURL: srv.URL,
			Numbers: []string{whNumber}}, zap.NewNop())
		c.Register(mux)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan error, 1)
		go func() { done <- c.Run(ctx) }()
		t.Cleanup(cancel)
		return conformance.Harness{
			Channel: message.SMS,
			Deliver: func(ctx context.Context, id string) error {
				form := smsForm(id, "hello "+id)
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+PathSMS, strings.NewReader(form.Encode()))
				if err != nil {
					return err
				}
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.Header.Set("X-Twilio-Signature", whSign(whToken, srv.URL+PathSMS, form))
				resp, err := srv.Client().Do(req)
				if err != nil {
					return err
				}
				defer resp.Body.Close()
				if resp.StatusCode != http.StatusOK {
					return fmt.Errorf("twilio webhook answered %s (Retry-After %q)", resp.Status, resp.Header.Get("Retry-After"))
				}
				return nil
			},
			Stop: func(ctx context.Context) error {
				cancel()
				select {
				case err := <-done:
					return err
				case <-ctx.Done():
					return errors.New("connector did not stop")
				}
			},
		}
	})
}
