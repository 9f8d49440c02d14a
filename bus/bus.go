package bus

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// ErrUnavailable means the bus cannot take the message now; the caller
// should tell its sender to retry (HTTP 503, IMAP: leave the checkpoint).
var ErrUnavailable = errors.New("bus unavailable")

// ErrTooLarge means the message exceeds the server's max payload.
var ErrTooLarge = errors.New("message too large for the bus")

// Options configures a bus connection.
type Options struct {
	// URL of a NATS server or cluster (comma-separated). Ignored when
	// InProcess is set.
	URL string
	// InProcess connects to an embedded server without a socket.
	InProcess *server.Server
	// Name identifies this process in the server's connection list.
	Name string
	// ReconnectWait is the pause between reconnect attempts.
	ReconnectWait time.Duration
	// PublishTimeout bounds the wait for a JetStream publish ack.
	PublishTimeout time.Duration
	Logger         *zap.Logger
}

// Bus is a connection to NATS with JetStream.
type Bus struct {
	NC             *nats.Conn
	JS             jetstream.JetStream
	publishTimeout time.Duration
	log            *zap.Logger
	closed         chan struct{}
	closing        *atomic.Bool
}

// Connect dials the bus. It keeps reconnecting forever once connected: a
// bus that goes away is waited for, never given up on.
func Connect(ctx context.Context, o Options) (*Bus, error) {
	log := o.Logger
	if log == nil {
		log = zap.NewNop()
	}
	if o.PublishTimeout <= 0 {
		o.PublishTimeout = 5 * time.Second
	}
	if o.ReconnectWait <= 0 {
		o.ReconnectWait = 250 * time.Millisecond
	}
	closed := make(chan struct{})
	closing := new(atomic.Bool)
	opts := []nats.Option{
		nats.Name(o.Name),
		nats.ClosedHandler(func(*nats.Conn) { close(closed) }),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(o.ReconnectWait),
		nats.ReconnectJitter(o.ReconnectWait/4, o.ReconnectWait/4),
		// A publish made while disconnected must fail now (so the caller
		// answers 503) rather than sit in a buffer nobody acknowledges.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if closing.Load() {
				return // our own Close, not an outage
			}
			log.Warn("bus disconnected", zap.Error(err))
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			log.Info("bus reconnected", zap.String("url", nc.ConnectedUrlRedacted()))
		}),
		nats.ErrorHandler(func(_ *nats.Conn, sub *nats.Subscription, err error) {
			subject := ""
			if sub != nil {
				subject = sub.Subject
			}
			log.Error("bus error", zap.String("subject", subject), zap.Error(err))
		}),
	}
	url := o.URL
	if o.InProcess != nil {
		opts = append(opts, nats.InProcessServer(o.InProcess))
		url = ""
	}
	if deadline, ok := ctx.Deadline(); ok {
		opts = append(opts, nats.Timeout(time.Until(deadline)))
	}
	nc, err := nats.Connect(url, opts...)
	if err != nil {
		return nil, fmt.Errorf("connect to nats %s: %w", redact(url), err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	return &Bus{NC: nc, JS: js, publishTimeout: o.PublishTimeout, log: log, closed: closed, closing: closing}, nil
}

func redact(url string) string {
	if url == "" {
		return "(in-process)"
	}
	return url
}

// Publish sends data to subject and returns only once JetStream has stored
// it (or found msgID already stored: ack.Duplicate). Errors wrap
// ErrUnavailable or ErrTooLarge.
func (b *Bus) Publish(ctx context.Context, subject string, data []byte, msgID string, hdr nats.Header) (*jetstream.PubAck, error) {
	if !b.NC.IsConnected() {
		return nil, fmt.Errorf("publish %s: %w: not connected", subject, ErrUnavailable)
	}
	ctx, cancel := context.WithTimeout(ctx, b.publishTimeout)
	defer cancel()
	msg := &nats.Msg{Subject: subject, Data: data, Header: hdr}
	var opts []jetstream.PublishOpt
	if msgID != "" {
		opts = append(opts, jetstream.WithMsgID(msgID))
	}
	ack, err := b.JS.PublishMsg(ctx, msg, opts...)
	if err != nil {
		if errors.Is(err, nats.ErrMaxPayload) {
			return nil, fmt.Errorf("publish %s: %w", subject, ErrTooLarge)
		}
		return nil, fmt.Errorf("publish %s: %w: %v", subject, ErrUnavailable, err)
	}
	return ack, nil
}

// Ready reports whether the bus is connected and every stream exists.
func (b *Bus) Ready(ctx context.Context) error {
	if !b.NC.IsConnected() {
		return fmt.Errorf("%w: not connected (%s)", ErrUnavailable, b.NC.Status())
	}
	return StreamsPresent(ctx, b.JS)
}

// Close drains the connection: pending publishes and acks are flushed
// before it closes.
func (b *Bus) Close() error {
	if b.NC.IsClosed() {
		return nil
	}
	b.closing.Store(true)
	if err := b.NC.Drain(); err != nil {
		b.NC.Close()
		return fmt.Errorf("drain nats: %w", err)
	}
	<-b.closed
	return nil
}
