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
	DataDir string     `yaml:"data_dir"`
	Log     Log        `yaml:"log"`
	NATS    NATS       `yaml:"nats"`
	HTTP    HTTP       `yaml:"http"`
	Routing Routing    `yaml:"routing"`
	Conns   Connectors `yaml:"connectors"`
	Store   Store      `yaml:"store"`
	// Agents are the people allowed to pull work; names and tokens must be
	// unique.
	Agents []Agent `yaml:"agents"`
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

// Routing is the routing configuration. The rules engine grows it; for now
// it holds the channel guidance and the default queue.
type Routing struct {
	// DefaultQueue receives every message no rule claims. It becomes a NATS
	// subject token, so it is limited to [a-z0-9_-]+. Default "general".
	DefaultQueue string `yaml:"default_queue"`
	// Channels is the channel guidance: default urgency per channel. Keys
	// are channel names (email, sms, voice, telegram, messenger, wechat,
	// webchat, app). A channel left out gets its default guidance (voice
	// urgent; webchat and app high; sms, telegram, messenger and wechat
	// normal; email low); a channel listed without an urgency gets its
	// default urgency.
	Channels map[string]ChannelGuidance `yaml:"channels"`
}

// ChannelGuidance is the default urgency of one channel and the admins' note.
type ChannelGuidance struct {
	// Urgency is low, normal, high or urgent.
	Urgency string `yaml:"urgency"`
	// Note is free text for admins and agents; inroute does not interpret it.
	Note string `yaml:"note"`
}

// Connectors holds one block per connector.
type Connectors struct {
	App AppConnector `yaml:"app"`
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
}

// App is one app backend that posts customer messages.
type App struct {
	// Name identifies the app in logs and messages: [a-z0-9_-]+, unique.
	Name string `yaml:"name"`
	// Token is the app's bearer secret; unique across apps and agents.
	Token string `yaml:"token"`
}

// Agent is a person who pulls work.
type Agent struct {
	// Name is unique among agents.
	Name string `yaml:"name"`
	// Token is the agent's bearer secret; unique across apps and agents.
	Token string `yaml:"token"`
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
