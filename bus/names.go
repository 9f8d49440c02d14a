// Package bus is inroute's NATS JetStream layer: the names of every stream,
// subject and durable consumer (defined here and nowhere else), idempotent
// stream setup, the embedded nats-server, and publishing that reports whether
// a message is durable.
package bus

import (
	"strconv"

	"github.com/inroute/inroute/message"
)

// Stream names.
const (
	StreamInbound    = "INBOUND"
	StreamQueues     = "QUEUES"
	StreamOutbound   = "OUTBOUND"
	StreamEvents     = "EVENTS"
	StreamDeadLetter = "DEADLETTER"
)

// Subject wildcards each stream captures.
const (
	SubjectsInbound    = "inbound.>"
	SubjectsQueues     = "queue.>"
	SubjectsOutbound   = "outbound.>"
	SubjectsEvents     = "events.>"
	SubjectsDeadLetter = "deadletter.>"
)

// Durable consumer names.
const (
	// ConsumerRouter is shared by every router process, so each inbound
	// message is handed to exactly one of them.
	ConsumerRouter = "router"
	// consumerAgentsPrefix + urgency names the agent pull consumers.
	consumerAgentsPrefix = "agents-"
)

// Headers inroute sets on bus messages.
const (
	// HeaderDeadReason says why a message was dead-lettered.
	HeaderDeadReason = "Inroute-Dead-Reason"
	// HeaderOrigSubject is the subject a dead-lettered message came from.
	HeaderOrigSubject = "Inroute-Orig-Subject"
	// HeaderOrigSeq is its stream sequence.
	HeaderOrigSeq = "Inroute-Orig-Seq"
)

// InboundSubject is where connectors publish a channel's messages.
func InboundSubject(ch message.Channel) string { return "inbound." + string(ch) }

// QueueSubject is where the router puts a conversation's queue item. The
// QUEUES stream keeps one message per subject, so a follow-up replaces the
// item of a conversation that is still waiting instead of adding another.
func QueueSubject(queue string, u message.Urgency, conversation int64) string {
	return "queue." + queue + "." + string(u) + "." + strconv.FormatInt(conversation, 10)
}

// QueueUrgencyFilter matches every queue's work at one urgency.
func QueueUrgencyFilter(u message.Urgency) string { return "queue.*." + string(u) + ".*" }

// AgentConsumer names the durable pull consumer for one urgency level.
func AgentConsumer(u message.Urgency) string { return consumerAgentsPrefix + string(u) }

// OutboundSubject is where replies wait for a channel's connector.
func OutboundSubject(ch message.Channel) string { return "outbound." + string(ch) }

// DeadLetterSubject is where a stage puts what it cannot process.
func DeadLetterSubject(stage string) string { return "deadletter." + stage }

// EventSubject names an event, such as "conversation.routed".
func EventSubject(name string) string { return "events." + name }
