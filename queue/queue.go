// Package queue holds the unit of agent work on the QUEUES stream: one item
// per waiting conversation, which the router publishes and the desk keeps
// in step with the store (package desk decides claims).
package queue

import (
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/inroute/inroute/bus"
	"github.com/inroute/inroute/message"
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
