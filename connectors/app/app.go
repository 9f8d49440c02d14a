// Package app is the in-app channel: the wallet's app backend posts each
// customer message to POST /v1/channels/app/messages with its own bearer
// token, and gets inroute's message id back once the message is durable.
// Replies go the other way through a feed the backend reads with
// GET /v1/channels/app/replies, and optionally to its signed webhook.
package app

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/inroute/inroute/api"
	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/connectors"
	"github.com/inroute/inroute/message"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// Path is the endpoint the app backend posts to.
const Path = "/v1/channels/app/messages"

// MaxMessageIDBytes bounds the app's own message id.
const MaxMessageIDBytes = 200

// Options configures the connector. Zero values are the production
// defaults.
type Options struct {
	// Apps maps app name → bearer token.
	Apps map[string]string
	// Webhooks maps app name → the webhook its replies are posted to; an
	// app without one (or with an empty URL) only reads the feed.
	Webhooks map[string]Webhook
	// MaxBody is the largest request body accepted.
	MaxBody int64
	// RetryAfter is what a 503 tells the app to wait.
	RetryAfter time.Duration
	// ReplyRetention is how long replies stay in the feed (default 7d).
	ReplyRetention time.Duration
	// DuplicateWindow is the feed's Nats-Msg-Id memory (default 1h, at
	// most ReplyRetention); use nats.streams.duplicate_window.
	DuplicateWindow time.Duration
	// Replicas of the feed stream (default 1); use nats.streams.replicas.
	Replicas int
	// WebhookTimeout bounds one webhook POST (default 10s).
	WebhookTimeout time.Duration
	// Backoff is the wait before retrying a reply after a failed attempt
	// (default webhook.Backoff; the feed publish caps it at 30s). Tests
	// shorten it.
	Backoff func(attempt int) time.Duration
	// PollWait is how long an idle consumer fetch waits; it bounds how
	// long Run takes to stop (default 1s).
	PollWait time.Duration
	Now      func() time.Time
}

// Webhook is where an app's replies are posted.
type Webhook struct {
	URL    string
	Secret string
	// MaxAttempts bounds the tries of one reply (default 12).
	MaxAttempts int
}

// Connector is the in-app channel.
type Connector struct {
	pub    *connectors.Inbound
	bus    *bus.Bus
	tokens *api.Tokens
	opt    Options
	log    *zap.Logger
	// feed is the reply feed stream, once Run (or a read) has found it.
	feedMu sync.Mutex
	feed   jetstream.Stream
}

var _ connectors.Connector = (*Connector)(nil)

// New returns the connector publishing through pub.
func New(pub *connectors.Inbound, opt Options, log *zap.Logger) *Connector {
	if opt.MaxBody <= 0 {
		opt.MaxBody = 64 << 10
	}
	if opt.RetryAfter <= 0 {
		opt.RetryAfter = 5 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	opt.setReplyDefaults()
	return &Connector{pub: pub, bus: pub.Bus, tokens: api.NewTokens(opt.Apps), opt: opt, log: log}
}

// Name implements connectors.Connector.
func (c *Connector) Name() string { return string(message.App) }

// Register implements connectors.Connector.
func (c *Connector) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST "+Path, c.handlePost)
	mux.HandleFunc("GET "+RepliesPath, c.handleReplies)
}

// Run implements connectors.Connector: it moves replies from outbound.app
// into the reply feed and posts them to the apps' webhooks (outbound.go,
// replies.go) until ctx ends.
func (c *Connector) Run(ctx context.Context) error {
	return c.runReplies(ctx)
}

// authenticate returns the app whose token r carries, or answers 401.
func (c *Connector) authenticate(w http.ResponseWriter, r *http.Request) (string, bool) {
	tok, ok := api.BearerToken(r)
	appName, known := c.tokens.Lookup(tok)
	if !ok || !known {
		w.Header().Set("WWW-Authenticate", `Bearer realm="inroute app channel"`)
		api.WriteError(w, http.StatusUnauthorized, api.CodeUnauthorized, "missing or wrong app token")
		return "", false
	}
	return appName, true
}

// Request is the body the app backend posts.
type Request struct {
	// MessageID is the app's own id; posting it again is safe.
	MessageID   string               `json:"message_id"`
	User        User                 `json:"user"`
	Text        string               `json:"text"`
	Attachments []message.Attachment `json:"attachments,omitempty"`
	// Language is the app's UI language (BCP 47), if known.
	Language string `json:"language,omitempty"`
}

// User is the customer as the app knows them.
type User struct {
	ID    string `json:"id"`
	Name  string `json:"name,omitempty"`
	Email string `json:"email,omitempty"`
	Phone string `json:"phone,omitempty"`
	// EmailVerified and PhoneVerified: the app has confirmed them (a code
	// sent to the phone, a link to the mailbox). Only verified ones make
	// the customer's messages on other channels part of one history.
	EmailVerified bool `json:"email_verified,omitempty"`
	PhoneVerified bool `json:"phone_verified,omitempty"`
}

// Response is the 202 body.
type Response struct {
	ID        string `json:"id"`
	Duplicate bool   `json:"duplicate"`
}

func (c *Connector) handlePost(w http.ResponseWriter, r *http.Request) {
	appName, ok := c.authenticate(w, r)
	if !ok {
		return
	}
	if ct := r.Header.Get("Content-Type"); ct != "" {
		if mt, _, err := mime.ParseMediaType(ct); err != nil || mt != "application/json" {
			api.WriteError(w, http.StatusUnsupportedMediaType, api.CodeUnsupportedType,
				fmt.Sprintf("Content-Type %q is not supported: send application/json", ct))
			return
		}
	}
	var req Request
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, c.opt.MaxBody))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			api.WriteError(w, http.StatusRequestEntityTooLarge, api.CodeBodyTooLarge,
				fmt.Sprintf("body is larger than %d bytes", c.opt.MaxBody))
			return
		}
		api.WriteError(w, http.StatusBadRequest, api.CodeInvalidJSON, "body is not valid JSON for this endpoint: "+err.Error())
		return
	}
	if dec.More() {
		api.WriteError(w, http.StatusBadRequest, api.CodeInvalidJSON, "body has data after the JSON object")
		return
	}
	if err := req.validate(); err != nil {
		api.WriteError(w, http.StatusUnprocessableEntity, api.CodeInvalidMessage, err.Error())
		return
	}
	m := c.normalize(appName, &req)
	id, dup, err := c.pub.Publish(r.Context(), m)
	switch {
	case err == nil:
	case errors.Is(err, bus.ErrUnavailable):
		c.log.Warn("app message not accepted: bus unavailable", zap.String("app", appName), zap.Error(err))
		w.Header().Set("Retry-After", strconv.Itoa(int(c.opt.RetryAfter.Seconds())))
		api.WriteError(w, http.StatusServiceUnavailable, api.CodeUnavailable, "the message bus is unavailable; retry later with the same message_id")
		return
	case errors.Is(err, message.ErrInvalid), errors.Is(err, bus.ErrTooLarge):
		api.WriteError(w, http.StatusUnprocessableEntity, api.CodeInvalidMessage, err.Error())
		return
	default:
		c.log.Error("app message not accepted", zap.String("app", appName), zap.Error(err))
		api.WriteError(w, http.StatusInternalServerError, api.CodeInternal, "could not accept the message")
		return
	}
	c.log.Info("app message accepted", zap.String("app", appName), zap.String("message_id", id), zap.Bool("duplicate", dup))
	api.WriteJSON(w, http.StatusAccepted, Response{ID: id, Duplicate: dup})
}

func (c *Connector) normalize(appName string, req *Request) *message.Message {
	return &message.Message{
		V:                message.Version,
		ID:               message.NewID(),
		Channel:          message.App,
		ChannelMessageID: appName + "/" + req.MessageID,
		ReceivedAt:       c.opt.Now().UTC(),
		From: message.Party{Address: req.User.ID, Name: req.User.Name, Email: req.User.Email, Phone: req.User.Phone,
			EmailVerified: req.User.EmailVerified, PhoneVerified: req.User.PhoneVerified},
		To:          message.Party{Address: appName},
		Text:        req.Text,
		Attachments: req.Attachments,
		Language:    req.Language,
	}
}

func (r *Request) validate() error {
	var problems []string
	need := func(field, v string, max int) {
		switch {
		case strings.TrimSpace(v) == "":
			problems = append(problems, field+" is required")
		case len(v) > max:
			problems = append(problems, fmt.Sprintf("%s is longer than %d bytes", field, max))
		}
	}
	need("message_id", r.MessageID, MaxMessageIDBytes)
	need("user.id", r.User.ID, 256)
	if strings.TrimSpace(r.Text) == "" && len(r.Attachments) == 0 {
		problems = append(problems, "text (or at least one attachment) is required")
	}
	if len(r.Text) > message.MaxTextBytes {
		problems = append(problems, fmt.Sprintf("text is longer than %d bytes", message.MaxTextBytes))
	}
	if !utf8.ValidString(r.Text) {
		problems = append(problems, "text is not valid UTF-8")
	}
	if r.User.Email != "" && !strings.Contains(r.User.Email, "@") {
		problems = append(problems, "user.email is not an e-mail address")
	}
	if r.User.Phone != "" && !plausiblePhone(r.User.Phone) {
		problems = append(problems, "user.phone is not a phone number")
	}
	if len(r.Attachments) > message.MaxAttachments {
		problems = append(problems, fmt.Sprintf("more than %d attachments", message.MaxAttachments))
	}
	for i, a := range r.Attachments {
		if a.Size < 0 {
			problems = append(problems, fmt.Sprintf("attachments[%d].size is negative", i))
		}
		if a.URL == "" {
			problems = append(problems, fmt.Sprintf("attachments[%d].url is required", i))
		}
	}
	if len(problems) > 0 {
		return errors.New(strings.Join(problems, "; "))
	}
	return nil
}

// plausiblePhone accepts what people type for a phone number; the store
// normalizes it to E.164.
func plausiblePhone(s string) bool {
	digits := 0
	for _, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == '+' || r == ' ' || r == '-' || r == '(' || r == ')' || r == '.':
		default:
			return false
		}
	}
	return digits >= 3 && digits <= 20
}
