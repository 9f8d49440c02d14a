// Package store is inroute's memory: contacts and their identities across
// channels, conversations, every message in and out with its routing
// decision, and an append-only event log. It defines what the router and
// the agent API need; store/sqlite (the embedded default) and
// store/postgres (for scale) provide it, both through store/sqlstore.
package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/inroute/inroute/message"
)

// Sentinel errors callers act on.
var (
	ErrNotFound = errors.New("not found")
	// ErrConflict means the action does not fit the current state (merging
	// a contact into itself, undoing a merge twice).
	ErrConflict = errors.New("conflict")
	// ErrAtCapacity means the agent already holds as many open
	// conversations as it may.
	ErrAtCapacity = errors.New("at capacity")
)

// Identity kinds: how a contact can be reached or recognised.
const (
	KindEmail = "email"
	KindPhone = "phone" // E.164
	KindApp   = "app"   // "<app name>/<app user id>"
	// Chat channels use the channel name as the kind: telegram,
	// messenger, wechat, webchat.
)

// Identity is one address of a contact. A verified identity belongs to
// exactly one contact; contacts that share a verified identity are one
// customer and are merged.
type Identity struct {
	ContactID int64  `json:"contact_id"`
	Kind      string `json:"kind"`
	Value     string `json:"value"`
	Verified  bool   `json:"verified"`
}

// Contact is a customer.
type Contact struct {
	ID         int64      `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	MergedInto int64      `json:"merged_into,omitempty"`
	Identities []Identity `json:"identities"`
}

// Status of a conversation.
type Status string

// Conversation statuses. Open means any but resolved.
const (
	StatusQueued   Status = "queued"
	StatusAssigned Status = "assigned"
	StatusWaiting  Status = "waiting" // waiting on the customer
	StatusResolved Status = "resolved"
)

// Open reports whether the conversation still wants work.
func (s Status) Open() bool { return s != StatusResolved }

// Conversation is the unit of agent work: one customer, one problem, any
// number of messages on any channels.
type Conversation struct {
	ID        int64 `json:"id"`
	ContactID int64 `json:"contact_id"`
	// CustomerID is the root of the contact's merge group: the customer
	// whose history this conversation is part of.
	CustomerID int64           `json:"customer_id"`
	Channel    message.Channel `json:"channel"`      // where it started
	LastChan   message.Channel `json:"last_channel"` // of the latest customer message
	Status     Status          `json:"status"`
	Queue      string          `json:"queue"`
	Urgency    message.Urgency `json:"urgency"`
	Topic      string          `json:"topic"`
	Assignee   string          `json:"assignee,omitempty"`
	Subject    string          `json:"subject,omitempty"`
	// RulesVersion is the routing rules version of the latest decision.
	RulesVersion string    `json:"rules_version,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
	// QueuedAt orders waiting conversations oldest first.
	QueuedAt         time.Time  `json:"queued_at"`
	LastInboundAt    time.Time  `json:"last_inbound_at"`
	ResolvedAt       *time.Time `json:"resolved_at,omitempty"`
	FirstResponseDue *time.Time `json:"first_response_due,omitempty"`
	NextResponseDue  *time.Time `json:"next_response_due,omitempty"`
	// LeaseUntil is when an unanswered claim lapses; nil once the agent
	// replied (the conversation then stays with them) or when unclaimed.
	LeaseUntil *time.Time `json:"lease_until,omitempty"`
	// RepliedAt is the latest agent reply.
	RepliedAt *time.Time `json:"replied_at,omitempty"`
	// SLABreachedAt is when the running response target was missed;
	// SLAStep counts the escalation steps taken since.
	SLABreachedAt *time.Time `json:"sla_breached_at,omitempty"`
	SLAStep       int        `json:"sla_step"`
}

// Due is the response target now running, if any.
func (c *Conversation) Due() *time.Time {
	if c.FirstResponseDue != nil {
		return c.FirstResponseDue
	}
	return c.NextResponseDue
}

// Token is the conversation's mark in e-mail subjects, e.g. "[#1234]".
func (c *Conversation) Token() string { return fmt.Sprintf("[#%d]", c.ID) }

// Direction of a message.
type Direction string

// Directions.
const (
	In  Direction = "in"
	Out Direction = "out"
)

// Delivery statuses of outbound messages.
const (
	DeliveryQueued    = "queued"
	DeliverySent      = "sent"
	DeliveryDelivered = "delivered"
	DeliveryFailed    = "failed"
)

// Decision is the routing decision kept with an inbound message.
type Decision struct {
	Queue        string          `json:"queue"`
	Urgency      message.Urgency `json:"urgency"`
	Topic        string          `json:"topic"`
	Explain      []string        `json:"explain,omitempty"`
	RulesVersion string          `json:"rules_version,omitempty"`
	Tags         []string        `json:"tags,omitempty"`
	AutoReply    string          `json:"auto_reply,omitempty"`
}

// Attachment is a file's metadata; the bytes live in the blob store (Ref
// "sha256:<hex>") or at the channel's URL.
type Attachment struct {
	Name        string `json:"name,omitempty"`
	ContentType string `json:"content_type,omitempty"`
	Size        int64  `json:"size"`
	Ref         string `json:"ref"`
}

// Message is a stored message, in or out.
type Message struct {
	ID               string          `json:"id"`
	ConversationID   int64           `json:"conversation_id"`
	ContactID        int64           `json:"contact_id"`
	Direction        Direction       `json:"direction"`
	Channel          message.Channel `json:"channel"`
	ChannelMessageID string          `json:"channel_message_id"`
	// FromKind/FromValue is the identity that wrote (inbound) or that the
	// reply goes to (outbound): replies stay bound to it across merges.
	FromKind    string            `json:"from_kind"`
	FromValue   string            `json:"from_value"`
	FromName    string            `json:"from_name,omitempty"`
	To          string            `json:"to,omitempty"`
	Subject     string            `json:"subject,omitempty"`
	Text        string            `json:"text"`
	HTML        string            `json:"html,omitempty"`
	Attachments []Attachment      `json:"attachments,omitempty"`
	Thread      message.Thread    `json:"thread,omitzero"`
	Language    string            `json:"language,omitempty"`
	Extra       map[string]string `json:"extra,omitempty"`
	Decision    *Decision         `json:"decision,omitempty"`
	// Threading says how the message found its conversation.
	Threading string `json:"threading,omitempty"`
	// Author is the agent who wrote a reply ("inroute" for auto-replies).
	Author string `json:"author,omitempty"`
	// Auto marks an auto-reply.
	Auto bool `json:"auto,omitempty"`
	// Automatic is set on an inbound message a machine wrote (an
	// out-of-office reply, a bounce): the agent sees it, but it was never
	// work of its own.
	Automatic message.Automatic `json:"automatic,omitempty"`
	// PublishedAt is when a reply was handed to its channel's connector.
	PublishedAt    *time.Time `json:"published_at,omitempty"`
	DeliveryStatus string     `json:"delivery_status,omitempty"`
	DeliveryError  string     `json:"delivery_error,omitempty"`
	ReceivedAt     time.Time  `json:"received_at"`
}

// Event kinds in the log.
const (
	EventRouted       = "routed"
	EventJoined       = "joined"
	EventReopened     = "reopened"
	EventEscalated    = "escalated"
	EventClaimed      = "claimed"
	EventReplied      = "replied"
	EventTransferred  = "transferred"
	EventResolved     = "resolved"
	EventReleased     = "released"
	EventMerged       = "contacts_merged"
	EventUnmerged     = "contacts_unmerged"
	EventRulesReload  = "rules_reloaded"
	EventLeaseExpired = "lease_expired"
	EventNote         = "note"
	EventUrgency      = "urgency_changed"
	EventSLABreached  = "sla_breached"
	// EventAutomatic: a machine-written message was recorded on the
	// conversation without changing it.
	EventAutomatic = "automatic"
)

// Event is one line of the append-only log.
type Event struct {
	ID             int64           `json:"id"`
	ConversationID int64           `json:"conversation_id,omitempty"`
	ContactID      int64           `json:"contact_id,omitempty"`
	Kind           string          `json:"kind"`
	Actor          string          `json:"actor"`
	At             time.Time       `json:"at"`
	Data           json.RawMessage `json:"data,omitempty"`
}

// Inbound is one routed customer message to record.
type Inbound struct {
	Msg      *message.Message
	Decision Decision
	// Attachments replaces Msg.Attachments when the connector stored the
	// bytes in the blob store (Ref "sha256:..."); nil keeps the channel's
	// URLs as references.
	Attachments []Attachment
}

// Result says what recording one inbound message did.
type Result struct {
	MessageID    string
	Conversation Conversation
	// Duplicate: the message was stored before (a redelivery); nothing
	// changed and Conversation is its conversation as it is now.
	Duplicate bool
	// Joined: the message continued an existing conversation.
	Joined bool
	// Started: the message started its conversation (also reported for a
	// Duplicate, so a redelivery is treated as the first delivery was).
	Started bool
	// Reopened: it continued a resolved conversation and reopened it.
	Reopened bool
	// Previous is the conversation's queue and urgency before this message
	// (zero for a new conversation), so the caller can move its queue item.
	PrevQueue   string
	PrevUrgency message.Urgency
	PrevStatus  Status
	// Threading explains, in words, how the conversation was found.
	Threading string
	// Automatic: the message was machine-written (message.Automatic) and
	// only recorded: it changed no conversation, so the caller must
	// neither enqueue it nor answer it. Also set on its Duplicate.
	Automatic bool
}

// Reply is an outbound message to record.
type Reply struct {
	// ID, if set, is the reply's message id (a ULID from message.NewID);
	// empty lets RecordReply choose one. The e-mail outbox sets it so the
	// Message-ID it puts on the mail names the reply, and a bounce can be
	// traced back to it. A repeated Key returns the first reply, whatever
	// ID the repeat carries.
	ID             string
	ConversationID int64
	Channel        message.Channel
	// ToKind/ToValue is the identity the reply goes to.
	ToKind, ToValue string
	Subject         string
	Text            string
	HTML            string
	Attachments     []Attachment
	Thread          message.Thread
	// Key makes recording idempotent (the API's idempotency key).
	Key string
	// Agent who wrote it, for the event log.
	Agent string
	// Auto marks an auto-reply.
	Auto bool
	// IfHolder, if set, records the reply only while this agent holds
	// the conversation (ErrConflict otherwise): a reply from an agent
	// whose lease lapsed and who lost the conversation is refused.
	IfHolder string
}

// ClaimRequest asks for the next conversation for an agent.
type ClaimRequest struct {
	Agent string
	// Queues the agent may take work from; nil means every queue.
	Queues []string
	// Capacity is how many open conversations the agent may hold.
	Capacity int
	// Lease is how long the claim holds without a reply.
	Lease time.Duration
}

// Move changes a conversation's place: queue, urgency and who holds it.
// Empty fields stay as they are.
type Move struct {
	Queue   string
	Urgency message.Urgency
	// Agent assigns the conversation to this agent (no lease); with
	// Requeue false and Agent empty the holder stays.
	Agent string
	// Requeue puts it back to waiting, unassigned.
	Requeue bool
	// IfHolder makes the move conditional: it fails with ErrConflict
	// unless this agent holds the conversation.
	IfHolder string
	// IfStatus, if set, makes it conditional on the status being one of
	// these (ErrConflict otherwise), checked in the same transaction.
	IfStatus []Status
	// Resolve closes the conversation (with Requeue and Agent unset).
	Resolve bool
	// Event is the kind logged; Actor who did it; Data any detail.
	Event string
	Actor string
	Data  map[string]any
}

// QueueStat is the depth of one queue at one urgency.
type QueueStat struct {
	Queue   string
	Urgency message.Urgency
	Waiting int
	// Oldest is the queued time of the oldest waiting conversation.
	Oldest time.Time
}

// AgentLoad is what one agent holds.
type AgentLoad struct {
	Name     string
	Open     int
	LastSeen time.Time
}

// Escalation is one SLA step to record on a conversation.
type Escalation struct {
	ConversationID int64
	// FromStep must equal the conversation's sla_step for the step to
	// apply (so two monitors apply each step once); the step makes it
	// FromStep+1. FromStep -1 records the breach itself.
	FromStep int
	Urgency  message.Urgency // raise to this, if higher
	Queue    string          // move a waiting conversation here
	Data     map[string]any
}

// SLAKind names a response target.
type SLAKind string

// Response targets.
const (
	FirstResponse SLAKind = "first_response"
	NextResponse  SLAKind = "next_response"
)

// DeliveryRank orders delivery statuses; failed ranks above all and is final.
func DeliveryRank(status string) int {
	switch status {
	case DeliveryQueued:
		return 1
	case DeliverySent:
		return 2
	case DeliveryDelivered:
		return 3
	case DeliveryFailed:
		return 4
	}
	return 0
}

// QueueFilter selects waiting conversations.
type QueueFilter struct {
	Queue   string          // "" for every queue
	Urgency message.Urgency // "" for every urgency
	Limit   int             // 0 for 100
}

// PurgeStats counts what Purge removed.
type PurgeStats struct {
	Conversations int64
	Messages      int64
	Attachments   int64
	Events        int64
	Blobs         int64
}

// Store is what the router and the agent API need. Implementations are
// safe for concurrent use by many goroutines and many processes.
type Store interface {
	// Record stores a batch of routed messages in one transaction: each
	// message's contact (by identity), its conversation (threading) and
	// the message itself with its decision, plus an event. A message
	// already stored, by (channel, channel message id), is a Duplicate.
	// Results are in the order of in.
	Record(ctx context.Context, in []Inbound) ([]Result, error)

	Conversation(ctx context.Context, id int64) (*Conversation, error)
	// Messages of a conversation, oldest first, across channels.
	Messages(ctx context.Context, conversationID int64) ([]Message, error)
	// ContactConversations lists the conversations of a contact and of
	// every contact merged into it, newest first.
	ContactConversations(ctx context.Context, contactID int64) ([]Conversation, error)
	// Waiting lists queued conversations, most urgent first, then oldest.
	Waiting(ctx context.Context, f QueueFilter) ([]Conversation, error)

	Contact(ctx context.Context, id int64) (*Contact, error)
	// FindContacts finds the contacts with an identity whose value is v
	// (an e-mail address, a phone number in any common format, a user id).
	FindContacts(ctx context.Context, v string) ([]Contact, error)
	// MergeContacts makes from (and whatever was merged into it) part of
	// into. It returns the merge's id for UndoMerge.
	MergeContacts(ctx context.Context, into, from int64, actor string) (int64, error)
	UndoMerge(ctx context.Context, mergeID int64, actor string) error

	// Assign gives a conversation to an agent, whatever its status.
	Assign(ctx context.Context, conversationID int64, agent string) error
	// Claim gives a queued conversation to an agent; ErrConflict if it is
	// not queued (another agent was first, or it was resolved).
	Claim(ctx context.Context, conversationID int64, agent string) error
	// SetStatus moves a conversation (resolve, wait on customer, requeue).
	SetStatus(ctx context.Context, conversationID int64, s Status, actor string) error
	AppendEvent(ctx context.Context, e Event) error
	Events(ctx context.Context, conversationID int64) ([]Event, error)

	// RecordReply stores an outbound message (delivery status queued). The
	// same Key again returns the first copy with created false, so a
	// retried API call never makes a second reply.
	RecordReply(ctx context.Context, r Reply) (msg *Message, created bool, err error)
	// ReplyByKey finds the reply recorded with an idempotency key;
	// ErrNotFound if there is none.
	ReplyByKey(ctx context.Context, key string) (*Message, error)
	// MarkPublished records that a reply was published for its connector.
	MarkPublished(ctx context.Context, messageID string) error
	// Unpublished lists replies recorded before t and never published,
	// oldest first.
	Unpublished(ctx context.Context, t time.Time, limit int) ([]Message, error)
	// SetDelivery records a connector's report on an outbound message.
	// Status never goes back (a late "sent" after "delivered" is ignored);
	// failed is final.
	SetDelivery(ctx context.Context, messageID, status, detail string) error

	// ClaimNext claims, for r.Agent, the queued conversation with the
	// highest urgency, then the oldest, in r.Queues; nil when none waits;
	// ErrAtCapacity when the agent holds r.Capacity open conversations.
	ClaimNext(ctx context.Context, r ClaimRequest) (*Conversation, error)
	// Renew extends the lease the agent holds; ErrConflict if the agent
	// does not hold an unanswered claim on it.
	Renew(ctx context.Context, conversationID int64, agent string, lease time.Duration) (time.Time, error)
	// ExpireLeases puts conversations whose lease lapsed before now back
	// in their queues (event lease_expired) and returns them.
	ExpireLeases(ctx context.Context, now time.Time) ([]Conversation, error)
	// MoveConversation transfers, releases, re-prioritises or reopens.
	MoveConversation(ctx context.Context, conversationID int64, m Move) (*Conversation, error)
	// SeeAgent records that the agent used the API now.
	SeeAgent(ctx context.Context, agent string) error
	// AgentLoads lists agents seen or holding work.
	AgentLoads(ctx context.Context) ([]AgentLoad, error)
	// QueueStats counts waiting conversations per queue and urgency.
	QueueStats(ctx context.Context) ([]QueueStat, error)
	// Due lists open conversations whose response target is before t,
	// most overdue first. With steps >= 0 it leaves out those whose miss
	// is recorded and who took steps escalation steps already: nothing is
	// left to do for them, and they must not crowd out newer misses.
	Due(ctx context.Context, t time.Time, limit, steps int) ([]Conversation, error)
	// Escalate records an SLA breach or escalation step; false if another
	// process recorded it first.
	Escalate(ctx context.Context, e Escalation) (bool, error)
	// LatestInbound is the conversation's latest customer message. A
	// machine-written one (Automatic) counts only when the conversation
	// has no other: replies default to its channel and sender, and an
	// out-of-office answer or a bounce must not become the recipient.
	LatestInbound(ctx context.Context, conversationID int64) (*Message, error)

	// Purge removes resolved conversations resolved before cutoff, their
	// messages, attachments (and blobs no longer referenced) and events.
	Purge(ctx context.Context, cutoff time.Time) (PurgeStats, error)

	Close() error
}

// Options tunes threading and identity.
type Options struct {
	// ChatWindow: a message on SMS, voice, chat or social joins the
	// contact's open conversation on that channel if its last customer
	// message is this recent (default 24h).
	ChatWindow time.Duration
	// ReopenWindow: a reply to a conversation resolved this recently
	// reopens it (default 7 days).
	ReopenWindow time.Duration
	// PhoneRegion is the ISO country for phone numbers written without
	// a country code (default "CN").
	PhoneRegion string
	// Now is the clock; tests set it.
	Now func() time.Time
	// Blobs, if set, is where Purge deletes attachment bytes that no
	// stored message refers to any more.
	Blobs BlobDeleter
	// Deadline, if set, gives a response target's due time for a
	// conversation in queue at urgency u, counted from from; nil when the
	// queue has no such target.
	Deadline func(kind SLAKind, queue string, u message.Urgency, from time.Time) *time.Time
}

// BlobDeleter deletes attachment bytes (blob.Dir does).
type BlobDeleter interface {
	Delete(ref string) error
}

// WithDefaults fills zero fields.
func (o Options) WithDefaults() Options {
	if o.ChatWindow <= 0 {
		o.ChatWindow = 24 * time.Hour
	}
	if o.ReopenWindow <= 0 {
		o.ReopenWindow = 7 * 24 * time.Hour
	}
	if o.PhoneRegion == "" {
		o.PhoneRegion = "CN"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return o
}
