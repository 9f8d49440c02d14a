package message

import (
	"encoding/json"
	"fmt"
	"time"
)

// OutboundVersion is the version of Outbound's and Delivery's wire forms.
const OutboundVersion = 1

// Outbound is a reply on its way to a customer: what the agent API (or the
// router, for an auto-reply) publishes on outbound.<channel> for that
// channel's connector. Its ID is the stored reply's id and the publish's
// Nats-Msg-Id, so a connector that sees the same ID twice must send once.
type Outbound struct {
	V  int    `json:"v"`
	ID string `json:"id"`
	// ConversationID is the conversation the reply belongs to.
	ConversationID int64   `json:"conversation_id"`
	Channel        Channel `json:"channel"`
	// To is the customer's address on the channel: an e-mail address, an
	// E.164 number, a chat user id, the app's own user id.
	To string `json:"to"`
	// From is our side, as the customer last wrote to it (the mailbox, the
	// number, the bot, the app's name); empty lets the connector pick its
	// default.
	From    string `json:"from,omitempty"`
	Subject string `json:"subject,omitempty"`
	Text    string `json:"text"`
	HTML    string `json:"html,omitempty"`
	// Attachments refer to the blob store ("sha256:<hex>").
	Attachments []Attachment `json:"attachments,omitempty"`
	// Thread: InReplyTo and References are the customer's mail that this
	// answers (e-mail); ChatID is the chat to answer in.
	Thread Thread `json:"thread,omitzero"`
	// Auto marks an auto-reply (e-mail sets Auto-Submitted: auto-replied).
	Auto bool `json:"auto,omitempty"`
	// Agent who wrote it ("inroute" for auto-replies).
	Agent string `json:"agent"`
	// AgentPhone is the agent's number to ring first on a voice call-back.
	AgentPhone string `json:"agent_phone,omitempty"`
	// Language of the text, when known (BCP 47).
	Language  string    `json:"language,omitempty"`
	CreatedAt time.Time `json:"created_at"`
}

// DecodeOutbound reads and checks an outbound message.
func DecodeOutbound(data []byte) (*Outbound, error) {
	var o Outbound
	if err := json.Unmarshal(data, &o); err != nil {
		return nil, fmt.Errorf("decode outbound: %w: %w", ErrInvalid, err)
	}
	if o.V != OutboundVersion {
		return nil, fmt.Errorf("outbound version %d: %w", o.V, ErrUnsupportedVersion)
	}
	switch {
	case o.ID == "":
		return nil, fmt.Errorf("outbound has no id: %w", ErrInvalid)
	case !o.Channel.Valid():
		return nil, fmt.Errorf("outbound channel %q: %w", o.Channel, ErrInvalid)
	case o.To == "":
		return nil, fmt.Errorf("outbound %s has no recipient: %w", o.ID, ErrInvalid)
	}
	return &o, nil
}

// Delivery statuses a connector reports, in the order they may happen.
// Failed is final and may follow any other.
const (
	DeliverySent      = "sent"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Delivery is a connector's report on an outbound message, published on
// events.delivery.<channel>. Reports may arrive late, twice or out of
// order; the store keeps the furthest status and never leaves failed.
type Delivery struct {
	V int `json:"v"`
	// MessageID is the Outbound's ID.
	MessageID      string  `json:"message_id"`
	ConversationID int64   `json:"conversation_id,omitempty"`
	Channel        Channel `json:"channel"`
	Status         string  `json:"status"`
	// Detail explains a failure in the channel's words (an SMTP answer, a
	// Twilio error code and text).
	Detail string `json:"detail,omitempty"`
	// ChannelMessageID is the channel's id of what was sent (a Twilio
	// MessageSid, an SMTP Message-ID), when it has one.
	ChannelMessageID string    `json:"channel_message_id,omitempty"`
	At               time.Time `json:"at"`
}

// DecodeDelivery reads and checks a delivery report.
func DecodeDelivery(data []byte) (*Delivery, error) {
	var d Delivery
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("decode delivery: %w: %w", ErrInvalid, err)
	}
	if d.V != OutboundVersion {
		return nil, fmt.Errorf("delivery version %d: %w", d.V, ErrUnsupportedVersion)
	}
	switch d.Status {
	case DeliverySent, DeliveryDelivered, DeliveryFailed:
	default:
		return nil, fmt.Errorf("delivery status %q: %w", d.Status, ErrInvalid)
	}
	if d.MessageID == "" {
		return nil, fmt.Errorf("delivery has no message id: %w", ErrInvalid)
	}
	return &d, nil
}
