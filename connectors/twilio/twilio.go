// Package twilio is the SMS, MMS and phone channel through Twilio: signed
// webhooks in (messages, calls, recordings, transcriptions, delivery
// status), replies out through the Messages API, and call-backs through
// the Calls API. Every webhook is checked against X-Twilio-Signature and
// answered 2xx only after what it carries is durable on the bus.
package twilio

import (
	"context"
	"io"
	"net/http"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/connectors"
	"github.com/inroute/inroute/message"
	"go.uber.org/zap"
)

// Webhook paths, under the API's listener.
const (
	PathSMS           = "/v1/channels/twilio/sms"
	PathVoice         = "/v1/channels/twilio/voice"
	PathRecording     = "/v1/channels/twilio/recording"
	PathTranscription = "/v1/channels/twilio/transcription"
	PathStatus        = "/v1/channels/twilio/status"
	// ParamReply names, in the status callback URL the connector gives
	// Twilio, the reply (outbound message id) a status is about.
	ParamReply = "reply"
)

// Options configures the connector.
type Options struct {
	AccountSID string
	AuthToken  string
	// PublicURL is the scheme://host[:port] Twilio calls; signatures are
	// checked against it joined with the request's path and query.
	PublicURL string
	// Numbers are our numbers (E.164); replies go from the number the
	// customer wrote to, else the first.
	Numbers []string
	Voice   Voice
	// MaxMediaSize and MediaTypes limit MMS media kept ("image/*" style
	// patterns allowed).
	MaxMediaSize int64
	MediaTypes   []string
	// MessagesPerSecond is the sending rate per sender number.
	MessagesPerSecond float64
	// APIURL is Twilio's REST API base (https://api.twilio.com).
	APIURL string
	// HTTPClient calls Twilio (default: a client with a timeout).
	HTTPClient *http.Client
	// Blobs stores media bytes; nil keeps Twilio's media URLs as they are.
	Blobs BlobPutter
	// Open reports whether business hours are on at t (nil: always).
	Open func(t time.Time) bool
	Now  func() time.Time
	// RetryAfter is what a 5xx answer asks Twilio to wait (bus down).
	RetryAfter time.Duration
}

// Voice is what callers hear.
type Voice struct {
	Language   string
	Greeting   string
	AfterHours string
	MaxLength  time.Duration
}

// BlobPutter stores bytes and returns their reference (blob.Dir does).
type BlobPutter interface {
	Put(r io.Reader) (ref string, size int64, err error)
}

// Connector is the Twilio channel.
type Connector struct {
	pub *connectors.Inbound
	b   *bus.Bus
	opt Options
	log *zap.Logger
	// optOuts remembers who texted STOP (until START).
	optOuts *OptOuts
}

var _ connectors.Connector = (*Connector)(nil)

// New builds the connector; pub publishes inbound messages on b.
func New(pub *connectors.Inbound, b *bus.Bus, opt Options, log *zap.Logger) *Connector {
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.HTTPClient == nil {
		opt.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if opt.RetryAfter <= 0 {
		opt.RetryAfter = 5 * time.Second
	}
	if opt.MessagesPerSecond <= 0 {
		opt.MessagesPerSecond = 1
	}
	if opt.Voice.MaxLength <= 0 {
		opt.Voice.MaxLength = 2 * time.Minute
	}
	return &Connector{pub: pub, b: b, opt: opt, log: log, optOuts: &OptOuts{b: b}}
}

// Name implements connectors.Connector.
func (c *Connector) Name() string { return "twilio" }

// Channels are the channels this connector serves.
func (c *Connector) Channels() []message.Channel {
	return []message.Channel{message.SMS, message.Voice}
}

// Register implements connectors.Connector.
func (c *Connector) Register(mux *http.ServeMux) {
	c.registerWebhooks(mux)
}

// Run implements connectors.Connector: it sends replies until ctx ends.
func (c *Connector) Run(ctx context.Context) error {
	return c.runOutbound(ctx)
}
