// Package queue holds the unit of agent work on the QUEUES stream and the
// pull that hands the most urgent, then oldest, item to an agent.
package queue

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/message"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/zap"
)

// ItemVersion is the version of Item's wire form.
const ItemVersion = 1

// Item is routed work waiting for an agent.
type Item struct {
	V int `json:"v"`
	// ID is the id of the message that put the conversation here.
	ID string `json:"id"`
	// ConversationID is the work: a conversation, not a single message.
	ConversationID int64 `json:"conversation_id"`
	// ContactID is the customer who wrote.
	ContactID int64 `json:"contact_id,omitempty"`
	// Threading says how the message found its conversation.
	Threading string          `json:"threading,omitempty"`
	Queue     string          `json:"queue"`
	Urgency   message.Urgency `json:"urgency"`
	Topic     string          `json:"topic"`
	Tags      []string        `json:"tags,omitempty"`
	// AutoReply names the template the decision asked for, if any.
	AutoReply string `json:"auto_reply,omitempty"`
	// Explain says, in words, why the item went to this queue at this
	// urgency: which rule fired on which words.
	Explain      []string         `json:"explain"`
	RulesVersion string           `json:"rules_version,omitempty"`
	RoutedAt     time.Time        `json:"routed_at"`
	Message      *message.Message `json:"message"`
}

// Subject is where the item is published.
func (it *Item) Subject() string { return bus.QueueSubject(it.Queue, it.Urgency, it.ConversationID) }

// DecodeItem reads and checks an item.
func DecodeItem(data []byte) (*Item, error) {
	var it Item
	if err := json.Unmarshal(data, &it); err != nil {
		return nil, fmt.Errorf("decode queue item: %w", err)
	}
	if it.V != ItemVersion {
		return nil, fmt.Errorf("queue item version %d: %w", it.V, message.ErrUnsupportedVersion)
	}
	if it.Message == nil {
		return nil, errors.New("queue item has no message")
	}
	if it.ConversationID <= 0 {
		return nil, errors.New("queue item has no conversation")
	}
	if !it.Urgency.Valid() {
		return nil, fmt.Errorf("queue item urgency %q is not valid", it.Urgency)
	}
	return &it, nil
}

// Puller hands out items, most urgent first and oldest first within an
// urgency. It keeps one durable consumer per urgency level on the work-queue
// stream, so an item is delivered to one caller at a time and removed only
// when that caller acknowledges it.
type Puller struct {
	consumers []jetstream.Consumer // most urgent first
	log       *zap.Logger
}

// ClaimWait is how long a fetched item stays reserved for the caller before
// JetStream offers it to someone else; Next acknowledges well before that.
const ClaimWait = 30 * time.Second

// NewPuller creates (or finds) the agent consumers.
func NewPuller(ctx context.Context, js jetstream.JetStream, log *zap.Logger) (*Puller, error) {
	p := &Puller{log: log}
	for i := len(message.Urgencies) - 1; i >= 0; i-- {
		u := message.Urgencies[i]
		c, err := js.CreateOrUpdateConsumer(ctx, bus.StreamQueues, jetstream.ConsumerConfig{
			Durable:       bus.AgentConsumer(u),
			Description:   "agent pulls of " + string(u) + " work",
			FilterSubject: bus.QueueUrgencyFilter(u),
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       ClaimWait,
			MaxAckPending: -1,
		})
		if err != nil {
			return nil, fmt.Errorf("agent consumer %s: %w", u, err)
		}
		p.consumers = append(p.consumers, c)
	}
	return p, nil
}

// Claim is called with an item before it leaves the queue: it records the
// claim (the store assigns the conversation). It returns false for an item
// that is stale (its conversation was taken or resolved meanwhile), which
// is dropped; an error leaves the item queued.
type Claim func(ctx context.Context, it *Item) (bool, error)

// Next claims the most urgent, then oldest, item. It returns (nil, nil)
// when nothing waits. The item leaves the queue only after claim succeeded
// and the server confirmed the ack, so a failure on the way leaves it queued.
func (p *Puller) Next(ctx context.Context, claim Claim) (*Item, error) {
	for _, c := range p.consumers {
		for {
			batch, err := c.FetchNoWait(1)
			if err != nil {
				return nil, fmt.Errorf("fetch queue item: %w", err)
			}
			var got jetstream.Msg
			for m := range batch.Messages() {
				got = m
			}
			if err := batch.Error(); err != nil && got == nil {
				return nil, fmt.Errorf("fetch queue item: %w", err)
			}
			if got == nil {
				break // this urgency is empty; try the next one
			}
			it, err := DecodeItem(got.Data())
			if err != nil {
				// A broken item must not block the queue forever; the
				// router validated it, so this is a bug worth a loud log.
				p.log.Error("dropping undecodable queue item", zap.String("subject", got.Subject()), zap.Error(err))
				_ = got.Term()
				continue
			}
			// Claim and ack must not be cut off half way by a caller that
			// hangs up: a claimed conversation whose item stays queued is
			// dropped as stale later, but one left unacked for nothing
			// would wait out the claim wait.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
			if claim != nil {
				ok, err := claim(cctx, it)
				if err != nil {
					cancel()
					_ = got.Nak()
					return nil, fmt.Errorf("claim conversation %d: %w", it.ConversationID, err)
				}
				if !ok {
					cancel()
					_ = got.Term()
					continue
				}
			}
			// The claim is recorded: the conversation is this caller's now,
			// whatever happens to the ack (an item that comes back is stale
			// and is dropped at the next claim).
			if err := got.DoubleAck(cctx); err != nil {
				p.log.Warn("ack of a claimed item failed; it will come back and be dropped as stale",
					zap.Int64("conversation", it.ConversationID), zap.Error(err))
			}
			cancel()
			return it, nil
		}
	}
	return nil, nil
}
