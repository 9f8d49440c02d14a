// Package connectors holds what every channel connector shares: the small
// contract a connector fulfils and the one way to hand a normalized message
// to the bus and learn whether it is durable.
package connectors

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/message"
	"github.com/nats-io/nats.go/jetstream"
)

// Connector bridges one channel. Webhook connectors register HTTP
// endpoints; polling connectors do their work in Run. Either way a message
// is acknowledged upstream only after Inbound.Publish returned nil.
type Connector interface {
	// Name is the connector's name in config and on the command line.
	Name() string
	// Register adds the connector's HTTP endpoints, if any.
	Register(mux *http.ServeMux)
	// Run receives and sends until ctx ends, then returns once in-flight
	// work is finished.
	Run(ctx context.Context) error
}

// Inbound publishes normalized messages to the INBOUND stream.
type Inbound struct {
	Bus *bus.Bus
}

// Publish stores m on the bus under its dedupe key and returns the inroute
// id the message is known by: m.ID, or the id of the copy an earlier
// delivery of the same channel message stored (dup is then true). It
// returns only once JetStream has the message; errors wrap
// bus.ErrUnavailable when the sender should retry later.
func (p *Inbound) Publish(ctx context.Context, m *message.Message) (id string, dup bool, err error) {
	data, err := message.Encode(m)
	if err != nil {
		return "", false, err
	}
	ack, err := p.Bus.Publish(ctx, bus.InboundSubject(m.Channel), data, m.DedupeKey(), nil)
	if err != nil {
		return "", false, err
	}
	if !ack.Duplicate {
		return m.ID, false, nil
	}
	orig, err := p.original(ctx, ack.Sequence)
	if err != nil {
		return "", true, fmt.Errorf("look up original of duplicate %s: %w", m.DedupeKey(), err)
	}
	return orig, true, nil
}

func (p *Inbound) original(ctx context.Context, seq uint64) (string, error) {
	st, err := p.Bus.JS.Stream(ctx, bus.StreamInbound)
	if err != nil {
		return "", fmt.Errorf("%w: %v", bus.ErrUnavailable, err)
	}
	raw, err := st.GetMsg(ctx, seq)
	if err != nil {
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			return "", fmt.Errorf("sequence %d is gone: %w", seq, err)
		}
		return "", fmt.Errorf("%w: %v", bus.ErrUnavailable, err)
	}
	m, err := message.Decode(raw.Data)
	if err != nil {
		return "", err
	}
	return m.ID, nil
}
