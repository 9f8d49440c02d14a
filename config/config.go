// Package config holds inroute's typed configuration: one struct per component,
// loaded from YAML with ${VAR} / ${VAR:-default} expansion and validated at load
// time with file:line:col messages.
//
// Zero values mean "use the default": every default is listed on its field
// and Default returns a Config with all of them applied.
package config

import "time"

// Config is the whole of config.yaml.
type Config struct {
	// DataDir holds the embedded JetStream store and (later) the SQLite store.
	// Default "./data".
	DataDir string  `yaml:"data_dir"`
	Log     Log     `yaml:"log"`
	NATS    NATS    `yaml:"nats"`
	HTTP    HTTP    `yaml:"http"`
	Routing Routing `yaml:"routing"`
	// RoutingFile keeps the routing rules in their own file (relative to
	// this one), so they can be reviewed and changed on their own; its top
	// level holds the keys of routing:. Use one or the other.
	RoutingFile string     `yaml:"routing_file"`
	Conns       Connectors `yaml:"connectors"`
	Store       Store      `yaml:"store"`
	// Agents are the people allowed to pull work; names and tokens must be
	// unique.
	Agents []Agent `yaml:"agents"`
	// Desk configures how agents take and hold work.
	Desk Desk `yaml:"desk"`

	// where remembers the position of every setting, for problems found
	// after loading (the rules compiler's, say).
	where *validator
	// whereRouting positions the routing settings: the same as where, or
	// the routing file's own positions.
	whereRouting *validator
	routingPath  string
	routingSrc   []byte
}

// Log configures zap.
type Log struct {
	// Level is debug, info (the default), warn or error.
	Level string `yaml:"level"`
	// Format is auto (console on a terminal, JSON otherwise; the default),
	// console or json.
	Format string `yaml:"format"`
}

// NATS says which bus to use. An empty URL means: run an embedded server.
type NATS struct {
	// URL is a nats://, tls://, ws:// or wss:// URL, or a comma-separated
	// list of them for a cluster. Empty (the default) runs an embedded server.
	URL string `yaml:"url"`
	// Embedded configures the in-process nats-server used when URL is empty.
	Embedded EmbeddedNATS `yaml:"embedded"`
	Streams  Streams      `yaml:"streams"`
	// ReconnectWait is the pause between reconnect attempts to the bus.
	// Default 250ms.
	ReconnectWait Duration `yaml:"reconnect_wait"`
	// PublishTimeout bounds how long a publish waits for the JetStream ack.
	// Default 5s.
	PublishTimeout Duration `yaml:"publish_timeout"`
}

// EmbeddedNATS configures the in-process nats-server.
type EmbeddedNATS struct {
	// Listen is host:port for outside processes; port 0 or -1 picks a free
	// port. Default 127.0.0.1:-1 (loopback only, random port).
	Listen string `yaml:"listen"`
	// Sync is "always" (fsync on every write, the default) or a duration
	// such as "2m" (the nats-server default interval).
	Sync string `yaml:"sync"`
	// MaxStore caps JetStream file storage; 0 (the default) means no cap.
	MaxStore ByteSize `yaml:"max_store"`
}

// Streams sets the retention of inroute's JetStream streams.
type Streams struct {
	// DuplicateWindow is how long JetStream remembers Nats-Msg-Id values.
	// Default 1h; it may not exceed any of the max ages below, because
	// JetStream refuses a stream whose duplicate window outlives its messages.
	DuplicateWindow Duration `yaml:"duplicate_window"`
	// InboundMaxAge is how long routed inbound messages are kept for replay.
	// Default 7d.
	InboundMaxAge Duration `yaml:"inbound_max_age"`
	// EventsMaxAge is how long events.> are kept. Default 7d.
	EventsMaxAge Duration `yaml:"events_max_age"`
	// DeadLetterMaxAge is how long dead-lettered messages are kept.
	// Default 30d.
	DeadLetterMaxAge Duration `yaml:"dead_letter_max_age"`
	// Replicas is the JetStream replication factor (1 for a single server,
	// the default; 3 for a production cluster). At most 5.
	Replicas int `yaml:"replicas"`
}

// HTTP configures the API listener.
type HTTP struct {
	// Listen is host:port; port 0 picks a free port. Default 127.0.0.1:8080.
	Listen string `yaml:"listen"`
	// ShutdownTimeout bounds graceful shutdown of in-flight requests.
	// Default 15s.
	ShutdownTimeout Duration `yaml:"shutdown_timeout"`
}

// Routing is the routing configuration admins edit: queues, channel
// guidance, topics, haste words, ordered rules, reply templates and the
// rule tests that must pass before a version goes live. docs/routing.md
// describes the language.
type Routing struct {
	// Version labels this rules version in every decision; empty means a
	// hash of the routing section.
	Version string `yaml:"version"`
	// DefaultQueue receives every message no topic or rule claims.
	DefaultQueue string `yaml:"default_queue"`
	// Queues describe each queue and its response targets.
	Queues map[string]RoutingQueue `yaml:"queues"`
	// Channels is the channel guidance: default urgency per channel.
	Channels map[string]ChannelGuidance `yaml:"channels"`
	// Topics say what a message is about, by keywords and patterns.
	Topics map[string]Topic `yaml:"topics"`
	// Precedence orders the topics: when several match, the first wins.
	Precedence []string `yaml:"precedence"`
	// Haste words raise urgency.
	Haste Haste `yaml:"haste"`
	// Rules run in order after the topic is known.
	Rules []Rule `yaml:"rules"`
	// BusinessHours are the hours rules can test with business_hours.
	BusinessHours BusinessHours `yaml:"business_hours"`
	// Templates are auto-replies by name, one text per language.
	Templates map[string]map[string]string `yaml:"templates"`
	// Tests must all pass for a rules version to go live.
	Tests []RuleTest `yaml:"tests"`
	// SLA: how targets are counted and the escalation ladder.
	SLA RoutingSLA `yaml:"sla"`
}

// RoutingQueue describes a queue.
type RoutingQueue struct {
	Description string `yaml:"description"`
	// SLA holds response targets per urgency (low, normal, high, urgent).
	SLA map[string]SLA `yaml:"sla"`
}

// RoutingSLA says how response targets are counted and what happens
// when one is missed.
type RoutingSLA struct {
	// BusinessHours counts targets in business hours only (those of
	// routing.business_hours): a mail at Friday 17:50 with a 1h target is
	// due Monday 09:50.
	BusinessHours bool `yaml:"business_hours"`
	// Escalation is the ladder of steps taken once a target is missed, in
	// order of After.
	Escalation []EscalationStep `yaml:"escalation"`
}

// EscalationStep is one rung of the SLA escalation ladder.
type EscalationStep struct {
	// After is how long after the missed target the step runs (0: at once).
	After Duration `yaml:"after"`
	// Raise raises the urgency by this many levels.
	Raise int `yaml:"raise"`
	// Urgency raises the urgency to at least this level.
	Urgency string `yaml:"urgency"`
	// MoveTo moves a waiting conversation to this queue.
	MoveTo string `yaml:"move_to"`
	// Notify publishes events.sla.escalated and calls desk.webhook.
	Notify bool `yaml:"notify"`
}

// SLA is a pair of response targets.
type SLA struct {
	FirstResponse Duration `yaml:"first_response"`
	NextResponse  Duration `yaml:"next_response"`
}

// ChannelGuidance is the default urgency of one channel and the admins' note.
type ChannelGuidance struct {
	Urgency string `yaml:"urgency"`
	Note    string `yaml:"note"`
}

// Topic is one thing customers write about.
type Topic struct {
	Description string `yaml:"description"`
	// Queue the topic's messages go to; default: the queue named like the
	// topic if there is one, else the default queue.
	Queue string `yaml:"queue"`
	// Floor is the lowest urgency a message on this topic gets.
	Floor string `yaml:"floor"`
	// Match: the topic applies when any one clause matches. A topic with
	// no clauses is a fallback (it applies when no other topic does).
	Match []Clause `yaml:"match"`
	// AutoReply names a template sent once per conversation.
	AutoReply string `yaml:"auto_reply"`
}

// Clause is one way of recognising a topic. Every condition written must
// hold: one of Any, one word of each All group, none of None, one of Regex.
// Words are matched on the normalized subject and text: Chinese as
// substrings (traditional folded to simplified), English as whole words
// with inflections folded (top up / top-up / topped up).
type Clause struct {
	Any   []string   `yaml:"any"`
	All   [][]string `yaml:"all"`
	None  []string   `yaml:"none"`
	Regex []string   `yaml:"regex"`
}

// Haste lists words that ask for haste.
type Haste struct {
	Words []string `yaml:"words"`
	// Not lists phrases that contain a haste word without asking for haste
	// (不急, "not urgent"): a haste word found inside one does not count.
	Not []string `yaml:"not"`
	// Raise is how many levels they raise urgency (default 1).
	Raise int `yaml:"raise"`
}

// Rule is an ordered routing rule.
type Rule struct {
	Name string   `yaml:"name"`
	When RuleWhen `yaml:"when"`
	Then RuleThen `yaml:"then"`
}

// RuleWhen is a rule's condition; every condition written must hold.
type RuleWhen struct {
	Channel []string `yaml:"channel"`
	Topic   []string `yaml:"topic"`
	// Text and Subject match words like a topic clause, in one field.
	Text    *Clause `yaml:"text"`
	Subject *Clause `yaml:"subject"`
	// From and To match addresses: exactly, or by suffix when written
	// "@domain" or "*suffix".
	From []string `yaml:"from"`
	To   []string `yaml:"to"`
	// BusinessHours true: only inside business hours; false: only outside.
	BusinessHours *bool `yaml:"business_hours"`
	// Expr is an expr-lang expression over the message (channel, text,
	// subject, from, to, topic, urgency, hour, weekday, len_text) and the
	// decision so far (queue, and auto_reply: the template chosen, "" for
	// none).
	Expr string `yaml:"expr"`
}

// RuleThen is what a rule does.
type RuleThen struct {
	Queue string `yaml:"queue"`
	// Urgency sets the urgency; Raise raises it by levels; Floor raises it
	// to at least this level.
	Urgency   string   `yaml:"urgency"`
	Raise     int      `yaml:"raise"`
	Floor     string   `yaml:"floor"`
	Tags      []string `yaml:"tags"`
	AutoReply string   `yaml:"auto_reply"`
	// Stop ends rule evaluation after this rule.
	Stop bool `yaml:"stop"`
}

// BusinessHours are the support team's hours.
type BusinessHours struct {
	// Timezone is an IANA zone name; default UTC.
	Timezone string `yaml:"timezone"`
	// Days are weekday names (mon ... sun); default mon-fri.
	Days []string `yaml:"days"`
	// Start and End are "HH:MM"; default 09:00-18:00.
	Start string `yaml:"start"`
	End   string `yaml:"end"`
}

// RuleTest is a message and what routing must decide for it.
type RuleTest struct {
	Name    string          `yaml:"name"`
	Message TestMessage     `yaml:"message"`
	Expect  TestExpectation `yaml:"expect"`
}

// TestMessage is the message of a rule test.
type TestMessage struct {
	Channel string `yaml:"channel"`
	Subject string `yaml:"subject"`
	Text    string `yaml:"text"`
	From    string `yaml:"from"`
	To      string `yaml:"to"`
	// QueueHint stands for the queue a connector suggests (an e-mail
	// mailbox's queue setting), so tests can show where such mail lands.
	QueueHint string `yaml:"queue_hint"`
}

// TestExpectation is what a rule test expects; empty fields are not checked.
type TestExpectation struct {
	Queue   string `yaml:"queue"`
	Urgency string `yaml:"urgency"`
	Topic   string `yaml:"topic"`
	// AutoReply is the template the decision must ask for.
	AutoReply string `yaml:"auto_reply"`
}

// Connectors holds one block per connector.
type Connectors struct {
	App    AppConnector    `yaml:"app"`
	Twilio TwilioConnector `yaml:"twilio"`
	Email  EmailConnector  `yaml:"email"`
}

// TwilioConnector configures SMS, MMS and phone calls through Twilio.
type TwilioConnector struct {
	// Enabled: true or false; left out, the connector runs when both
	// account_sid and auth_token are set.
	Enabled *bool `yaml:"enabled"`
	// AccountSID and AuthToken are the Twilio account's (AuthToken also
	// checks every webhook's X-Twilio-Signature).
	AccountSID string `yaml:"account_sid"`
	AuthToken  string `yaml:"auth_token"`
	// PublicURL is where Twilio reaches inroute (https://support.example.com,
	// or a tunnel's URL): signatures are computed over it, not over the
	// address inroute listens on behind a proxy.
	PublicURL string `yaml:"public_url"`
	// Numbers are the account's numbers (E.164) that customers text and
	// call; a reply goes out from the number the customer wrote to, or the
	// first one.
	Numbers []string `yaml:"numbers"`
	// Voice: what callers hear.
	Voice TwilioVoice `yaml:"voice"`
	// Media limits for MMS: the largest file kept (default 5MiB) and the
	// content types kept (default images, PDF, plain text, audio, video).
	MaxMediaSize ByteSize `yaml:"max_media_size"`
	MediaTypes   []string `yaml:"media_types"`
	// MessagesPerSecond is the sending rate per sender number (default 1,
	// a long code's; a short code takes more).
	MessagesPerSecond float64 `yaml:"messages_per_second"`
	// APIURL is Twilio's REST API (default https://api.twilio.com); tests
	// point it at a local double.
	APIURL string `yaml:"api_url"`
}

// TwilioVoice is the voicemail greeting.
type TwilioVoice struct {
	// Language of the greeting's speech (a Twilio <Say> language such as
	// en-US, zh-CN, cmn-CN). Default en-US.
	Language string `yaml:"language"`
	// Greeting is said before the beep; AfterHours outside
	// routing.business_hours (default: the same greeting).
	Greeting   string `yaml:"greeting"`
	AfterHours string `yaml:"after_hours"`
	// MaxLength of a voicemail (default 2m).
	MaxLength Duration `yaml:"max_length"`
}

// On reports whether the Twilio connector runs.
func (t *TwilioConnector) On() bool {
	if t.Enabled != nil {
		return *t.Enabled
	}
	return t.AccountSID != "" && t.AuthToken != ""
}

// AppConnector configures the in-app channel.
type AppConnector struct {
	// Enabled turns the connector on; it then needs at least one app. The
	// apps of a disabled connector are neither validated nor used.
	Enabled bool `yaml:"enabled"`
	// MaxBody is the largest request body accepted (default 64KiB, allowed
	// 1KiB to 16MiB).
	MaxBody ByteSize `yaml:"max_body"`
	// Apps lists the app backends allowed to post, each with its own token.
	Apps []App `yaml:"apps"`
	// ReplyRetention is how long replies stay in the reply feed. Default 7d.
	ReplyRetention Duration `yaml:"reply_retention"`
}

// App is one app backend that posts customer messages.
type App struct {
	// Name identifies the app in logs and messages: [a-z0-9_-]+, unique.
	Name string `yaml:"name"`
	// Token is the app's bearer secret; unique across apps and agents.
	Token string `yaml:"token"`
	// Webhook, if its url is set, is called with every reply to one of the
	// app's users (signed; retried with backoff). The app may instead, or
	// also, fetch replies from GET /v1/channels/app/replies.
	Webhook Webhook `yaml:"webhook"`
}

// Agent is a person who pulls work.
type Agent struct {
	// Name is unique among agents: [a-z0-9_-]+ or an e-mail-like name.
	Name string `yaml:"name"`
	// Token is the agent's bearer secret; unique across apps and agents.
	Token string `yaml:"token"`
	// Role is agent (the default) or admin. Admins may take work from
	// every queue and use the admin endpoints.
	Role string `yaml:"role"`
	// Queues are the queues (skills) the agent may take work from; empty
	// means every queue.
	Queues []string `yaml:"queues"`
	// Capacity is how many open conversations the agent holds at once.
	// Default 5.
	Capacity int `yaml:"capacity"`
	// Phone is the agent's own number (E.164), rung first on a voice
	// call-back to a customer.
	Phone string `yaml:"phone"`
}

// Agent roles.
const (
	RoleAgent = "agent"
	RoleAdmin = "admin"
)

// Desk configures how agents take and hold work.
type Desk struct {
	// Lease is how long a claim holds without a reply before the
	// conversation goes back to its queue; the console renews it while the
	// agent works. Default 5m.
	Lease Duration `yaml:"lease"`
	// MaxWait caps the long-poll of POST /v1/agent/next?wait=. Default 60s.
	MaxWait Duration `yaml:"max_wait"`
	// CheckEvery is how often lapsed leases and missed SLA targets are
	// looked for. Default 10s.
	CheckEvery Duration `yaml:"check_every"`
	// OnlineWindow: an agent who called the API this recently counts as
	// online. Default 2m.
	OnlineWindow Duration `yaml:"online_window"`
	// Webhook, if its url is set, receives every SLA event (signed).
	Webhook Webhook `yaml:"webhook"`
}

// Webhook is an outgoing HTTP callback. The body is JSON; the header
// Inroute-Signature carries "t=<unix seconds>,v1=<hex HMAC-SHA256 of
// "<t>.<body>" keyed with Secret>".
type Webhook struct {
	// URL is an http or https URL; empty turns the webhook off.
	URL string `yaml:"url"`
	// Secret keys the signature; required with a URL.
	Secret string `yaml:"secret"`
	// MaxAttempts bounds delivery tries (default 12, with backoff from 1s
	// doubling to 5m between them).
	MaxAttempts int `yaml:"max_attempts"`
}

// Duration is a time.Duration written as "30s", "2m", "1h30m" (or "7d" for days).
type Duration time.Duration

// ByteSize is a size in bytes written as 65536, "64KiB", "1MiB", "10MB".
type ByteSize int64

// Store says where contacts, conversations and history live.
type Store struct {
	// URL selects PostgreSQL (postgres:// or postgresql://). Empty (the
	// default) means the embedded SQLite file <data_dir>/inroute.db.
	URL string `yaml:"url"`
	// ChatWindow: a message on SMS, voice, chat or social joins the
	// customer's conversation on that channel if they wrote there this
	// recently. Default 24h.
	ChatWindow Duration `yaml:"chat_window"`
	// ReopenWindow: a reply to a conversation resolved this recently
	// reopens it instead of starting a new one. Default 7d.
	ReopenWindow Duration `yaml:"reopen_window"`
	// PhoneRegion is the country (ISO 3166 code) of phone numbers written
	// without a country code. Default CN.
	PhoneRegion string `yaml:"phone_region"`
	// Retention: `inroute store purge` removes conversations resolved
	// longer ago than this, with their messages and attachments. 0 (the
	// default) keeps everything.
	Retention   Duration    `yaml:"retention"`
	Attachments Attachments `yaml:"attachments"`
}

// Attachments configures where attachment bytes are kept.
type Attachments struct {
	// Dir is the blob directory. Default <data_dir>/blobs.
	Dir string `yaml:"dir"`
	// MaxSize is the largest attachment kept. Default 25MiB.
	MaxSize ByteSize `yaml:"max_size"`
}
