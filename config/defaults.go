package config

import (
	"path/filepath"
	"time"
)

// Urgencies, lowest first.
const (
	UrgencyLow    = "low"
	UrgencyNormal = "normal"
	UrgencyHigh   = "high"
	UrgencyUrgent = "urgent"
)

// channelNames lists the channels inroute has connectors for, in the order
// messages about them are listed.
var channelNames = []string{"email", "sms", "voice", "telegram", "messenger", "wechat", "webchat", "app"}

var urgencyNames = []string{UrgencyLow, UrgencyNormal, UrgencyHigh, UrgencyUrgent}

// defaultGuidance follows the wallet's published contact guidance: phone for
// urgent problems, website and in-app chat for quick real-time help, social
// media for slower contact, and e-mail, the slowest, for detailed problems
// that are not urgent. SMS is not in that guidance and is treated like
// social media.
func defaultGuidance() map[string]ChannelGuidance {
	return map[string]ChannelGuidance{
		"voice":     {Urgency: UrgencyUrgent, Note: "Phone: for urgent problems."},
		"webchat":   {Urgency: UrgencyHigh, Note: "Website chat: quick, real-time help."},
		"app":       {Urgency: UrgencyHigh, Note: "In-app chat: quick, real-time help."},
		"sms":       {Urgency: UrgencyNormal, Note: "Text message: not in the published guidance; handled like social media."},
		"telegram":  {Urgency: UrgencyNormal, Note: "Social media: for slower contact."},
		"messenger": {Urgency: UrgencyNormal, Note: "Social media: for slower contact."},
		"wechat":    {Urgency: UrgencyNormal, Note: "Social media: for slower contact."},
		"email":     {Urgency: UrgencyLow, Note: "E-mail: for detailed problems that are not urgent; the slowest to be answered."},
	}
}

// Defaults, also listed on the fields they apply to.
const (
	defaultDataDir          = "./data"
	defaultLogLevel         = "info"
	defaultLogFormat        = "auto"
	defaultEmbeddedListen   = "127.0.0.1:-1"
	defaultSync             = "always"
	defaultDuplicateWindow  = Duration(time.Hour)
	defaultInboundMaxAge    = Duration(7 * day)
	defaultEventsMaxAge     = Duration(7 * day)
	defaultDeadLetterMaxAge = Duration(30 * day)
	defaultReplicas         = 1
	defaultReconnectWait    = Duration(250 * time.Millisecond)
	defaultPublishTimeout   = Duration(5 * time.Second)
	defaultHTTPListen       = "127.0.0.1:8080"
	defaultShutdownTimeout  = Duration(15 * time.Second)
	defaultQueue            = "general"
	defaultMaxBody          = ByteSize(64 << 10)
	defaultChatWindow       = Duration(24 * time.Hour)
	defaultReopenWindow     = Duration(7 * day)
	defaultPhoneRegion      = "CN"
	defaultAttachmentMax    = ByteSize(25 << 20)
	defaultCapacity         = 5
	defaultWebhookAttempts  = 12
)

// Default returns the configuration of an empty config.yaml: every default
// applied, no apps (the app connector is off) and no agents.
func Default() *Config {
	c := &Config{}
	c.applyDefaults()
	return c
}

// applyDefaults replaces zero values by defaults. It runs after decoding,
// so "not written", "written empty" and "${VAR} with VAR unset" all mean
// the same thing: the default.
func (c *Config) applyDefaults() {
	setDefault(&c.DataDir, defaultDataDir)
	setDefault(&c.Log.Level, defaultLogLevel)
	setDefault(&c.Log.Format, defaultLogFormat)

	n := &c.NATS
	setDefault(&n.Embedded.Listen, defaultEmbeddedListen)
	setDefault(&n.Embedded.Sync, defaultSync)
	setDefault(&n.Streams.DuplicateWindow, defaultDuplicateWindow)
	setDefault(&n.Streams.InboundMaxAge, defaultInboundMaxAge)
	setDefault(&n.Streams.EventsMaxAge, defaultEventsMaxAge)
	setDefault(&n.Streams.DeadLetterMaxAge, defaultDeadLetterMaxAge)
	setDefault(&n.Streams.Replicas, defaultReplicas)
	setDefault(&n.ReconnectWait, defaultReconnectWait)
	setDefault(&n.PublishTimeout, defaultPublishTimeout)

	setDefault(&c.HTTP.Listen, defaultHTTPListen)
	setDefault(&c.HTTP.ShutdownTimeout, defaultShutdownTimeout)

	setDefault(&c.Routing.DefaultQueue, defaultQueue)
	if c.Routing.Channels == nil {
		c.Routing.Channels = make(map[string]ChannelGuidance, len(channelNames))
	}
	for name, def := range defaultGuidance() {
		g, ok := c.Routing.Channels[name]
		switch {
		case !ok:
			g = def
		case g.Urgency == "":
			// Only an entry with neither urgency nor note takes the default
			// note too: an admin's own note stays as written.
			g.Urgency = def.Urgency
			if g.Note == "" {
				g.Note = def.Note
			}
		}
		c.Routing.Channels[name] = g
	}

	if len(c.Routing.Haste.Words) > 0 {
		setDefault(&c.Routing.Haste.Raise, 1)
	}
	bh := &c.Routing.BusinessHours
	setDefault(&bh.Timezone, "UTC")
	setDefault(&bh.Start, "09:00")
	setDefault(&bh.End, "18:00")
	if len(bh.Days) == 0 {
		bh.Days = []string{"mon", "tue", "wed", "thu", "fri"}
	}

	setDefault(&c.Conns.App.MaxBody, defaultMaxBody)
	tw := &c.Conns.Twilio
	setDefault(&tw.MaxMediaSize, ByteSize(5<<20))
	if len(tw.MediaTypes) == 0 {
		tw.MediaTypes = []string{"image/*", "application/pdf", "text/plain", "audio/*", "video/*"}
	}
	setDefault(&tw.MessagesPerSecond, 1)
	setDefault(&tw.APIURL, "https://api.twilio.com")
	setDefault(&tw.Voice.Language, "en-US")
	setDefault(&tw.Voice.Greeting, "Thank you for calling. Please leave a message after the tone, and we will call you back.")
	setDefault(&tw.Voice.MaxLength, Duration(2*time.Minute))
	c.emailDefaults()
	setDefault(&c.Conns.App.ReplyRetention, Duration(7*24*time.Hour))
	for i := range c.Conns.App.Apps {
		setDefault(&c.Conns.App.Apps[i].Webhook.MaxAttempts, defaultWebhookAttempts)
	}

	for i := range c.Agents {
		setDefault(&c.Agents[i].Role, RoleAgent)
		setDefault(&c.Agents[i].Capacity, defaultCapacity)
	}
	d := &c.Desk
	setDefault(&d.Lease, Duration(5*time.Minute))
	setDefault(&d.MaxWait, Duration(time.Minute))
	setDefault(&d.CheckEvery, Duration(10*time.Second))
	setDefault(&d.OnlineWindow, Duration(2*time.Minute))
	setDefault(&d.Webhook.MaxAttempts, defaultWebhookAttempts)

	st := &c.Store
	setDefault(&st.ChatWindow, defaultChatWindow)
	setDefault(&st.ReopenWindow, defaultReopenWindow)
	setDefault(&st.PhoneRegion, defaultPhoneRegion)
	setDefault(&st.Attachments.MaxSize, defaultAttachmentMax)
}

// StorePath is the SQLite file used when store.url is empty.
func (c *Config) StorePath() string { return filepath.Join(c.DataDir, "inroute.db") }

// BlobDir is where attachment bytes are kept.
func (c *Config) BlobDir() string {
	if c.Store.Attachments.Dir != "" {
		return c.Store.Attachments.Dir
	}
	return filepath.Join(c.DataDir, "blobs")
}

func setDefault[T comparable](field *T, def T) {
	var zero T
	if *field == zero {
		*field = def
	}
}
