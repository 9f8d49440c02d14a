// Package bus is inroute's NATS JetStream layer: the names of every stream,
// subject and durable consumer (defined here and nowhere else), idempotent
// stream setup, the embedded nats-server, and publishing that reports whether
// a message is durable.
package bus

import (
	"encoding/hex"
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
	// consumerAgentsPrefix + urgency named the agent pull consumers of
	// the first release; the desk now claims through the store and removes
	// them at start.
	consumerAgentsPrefix = "agents-"
	// ConsumerDelivery is shared by every API process: it applies the
	// connectors' delivery reports to the store.
	ConsumerDelivery = "delivery"
	// ConsumerDeskWebhook delivers SLA events to desk.webhook.
	ConsumerDeskWebhook = "desk-webhook"
)

// The in-app channel's reply feed: one stream the app backends read.
const (
	StreamAppReplies   = "APP_REPLIES"
	SubjectsAppReplies = "app.replies.>"
)

// AppReplySubject holds the replies to one user of one app. The user id is
// hex-encoded: app user ids may hold dots and wildcards.
func AppReplySubject(app, user string) string {
	return "app.replies." + app + "." + hex.EncodeToString([]byte(user))
}

// AppRepliesFilter matches every reply of one app.
func AppRepliesFilter(app string) string { return "app.replies." + app + ".*" }

// ConsumerOutbound names the durable consumer a channel's connector sends
// from; every process running that connector shares it.
func ConsumerOutbound(ch message.Channel) string { return "connector-" + string(ch) }

// ConsumerAppWebhook names the consumer that posts an app's replies to its
// webhook.
func ConsumerAppWebhook(app string) string { return "app-webhook-" + app }

// DeliverySubject is where a channel's connector reports on outbound
// messages (message.Delivery).
func DeliverySubject(ch message.Channel) string { return "events.delivery." + string(ch) }

// SubjectsDelivery matches every delivery report.
const SubjectsDelivery = "events.delivery.>"

// SLASubject names an SLA event: events.sla.breached, events.sla.escalated.
func SLASubject(kind string) string { return "events.sla." + kind }

// BucketSMSOptOut is the KV bucket of numbers that texted STOP.
const BucketSMSOptOut = "SMS_OPTOUT"

// SubjectsSLA matches every SLA event.
const SubjectsSLA = "events.sla.>"

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

// LegacyAgentConsumer names the first release's pull consumer for one
// urgency level, which the desk deletes at start.
func LegacyAgentConsumer(u message.Urgency) string { return consumerAgentsPrefix + string(u) }

// OutboundSubject is where replies wait for a channel's connector.
func OutboundSubject(ch message.Channel) string { return "outbound." + string(ch) }

// DeadLetterSubject is where a stage puts what it cannot process.
func DeadLetterSubject(stage string) string { return "deadletter." + stage }

// EventSubject names an event, such as "conversation.routed".
func EventSubject(name string) string { return "events." + name }
