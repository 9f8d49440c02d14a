package config_test

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/inroute/inroute/config"
)

// envOf turns a map into the lookup Parse wants; a nil map is an empty
// environment.
func envOf(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) {
		v, ok := m[k]
		return v, ok
	}
}

func mustParse(t *testing.T, src string, env map[string]string) *config.Config {
	t.Helper()
	c, err := config.Parse("config.yaml", []byte(src), envOf(env))
	if err != nil {
		t.Fatalf("Parse:\n%s\nerror:\n%v", src, err)
	}
	return c
}

func TestDefault(t *testing.T) {
	c := config.Default()
	checks := []struct {
		name      string
		got, want any
	}{
		{"data_dir", c.DataDir, "./data"},
		{"log.level", c.Log.Level, "info"},
		{"log.format", c.Log.Format, "auto"},
		{"nats.url", c.NATS.URL, ""},
		{"nats.embedded.listen", c.NATS.Embedded.Listen, "127.0.0.1:-1"},
		{"nats.embedded.sync", c.NATS.Embedded.Sync, "always"},
		{"nats.embedded.max_store", c.NATS.Embedded.MaxStore, config.ByteSize(0)},
		{"nats.streams.duplicate_window", c.NATS.Streams.DuplicateWindow.D(), time.Hour},
		{"nats.streams.inbound_max_age", c.NATS.Streams.InboundMaxAge.D(), 7 * 24 * time.Hour},
		{"nats.streams.events_max_age", c.NATS.Streams.EventsMaxAge.D(), 7 * 24 * time.Hour},
		{"nats.streams.dead_letter_max_age", c.NATS.Streams.DeadLetterMaxAge.D(), 30 * 24 * time.Hour},
		{"nats.streams.replicas", c.NATS.Streams.Replicas, 1},
		{"nats.reconnect_wait", c.NATS.ReconnectWait.D(), 250 * time.Millisecond},
		{"nats.publish_timeout", c.NATS.PublishTimeout.D(), 5 * time.Second},
		{"http.listen", c.HTTP.Listen, "127.0.0.1:8080"},
		{"http.shutdown_timeout", c.HTTP.ShutdownTimeout.D(), 15 * time.Second},
		{"routing.default_queue", c.Routing.DefaultQueue, "general"},
		{"connectors.app.enabled", c.Conns.App.Enabled, false},
		{"connectors.app.max_body", c.Conns.App.MaxBody.Int64(), int64(64 * 1024)},
		{"connectors.app.apps", len(c.Conns.App.Apps), 0},
		{"agents", len(c.Agents), 0},
	}
	for _, ch := range checks {
		if !reflect.DeepEqual(ch.got, ch.want) {
			t.Errorf("%s = %#v, want %#v", ch.name, ch.got, ch.want)
		}
	}
	wantUrgency := map[string]string{
		"voice": "urgent", "webchat": "high", "app": "high", "sms": "normal",
		"telegram": "normal", "messenger": "normal", "wechat": "normal", "email": "low",
	}
	if len(c.Routing.Channels) != len(wantUrgency) {
		t.Errorf("channels = %v, want exactly %v", c.Routing.Channels, wantUrgency)
	}
	for ch, u := range wantUrgency {
		g := c.Routing.Channels[ch]
		if g.Urgency != u || g.Note == "" {
			t.Errorf("channels.%s = %+v, want urgency %q and a note", ch, g, u)
		}
	}
	if got := c.DevTokens(); len(got) != 0 {
		t.Errorf("DevTokens() = %v, want none", got)
	}
}

// An empty file, a file of comments, and a file that writes every setting
// empty must all mean "defaults".
func TestEmptyMeansDefault(t *testing.T) {
	for _, src := range []string{
		"",
		"# nothing yet\n",
		"---\n",
		"\xef\xbb\xbf# saved by a Windows editor\n",
		`data_dir:
log: {level: "", format: ""}
nats:
  url: ""
  embedded: {listen: "", sync: "", max_store: 0}
  streams: {duplicate_window: 0s, inbound_max_age: 0, events_max_age: "", dead_letter_max_age: , replicas: 0}
  reconnect_wait: ~
  publish_timeout: null
http: {listen: , shutdown_timeout: }
routing: {default_queue: "", channels: {}}
connectors: {app: {enabled: false, max_body: 0, apps: []}}
agents: []
`,
	} {
		c := config.StripPositions(mustParse(t, src, nil))
		d := config.Default()
		// Written-empty lists decode as empty rather than nil slices.
		c.Conns.App.Apps, c.Agents = nil, nil
		if !reflect.DeepEqual(c, d) {
			t.Errorf("Parse(%q) =\n%+v\nwant Default() =\n%+v", src, c, d)
		}
	}
}

func TestChannelDefaultsMerge(t *testing.T) {
	c := mustParse(t, `routing:
  channels:
    email: {urgency: high, note: "we answer e-mail fast"}
    sms: {note: "our own note"}
    voice: {}
`, nil)
	def := config.Default().Routing.Channels
	want := map[string]config.ChannelGuidance{}
	for k, v := range def {
		want[k] = v
	}
	want["email"] = config.ChannelGuidance{Urgency: "high", Note: "we answer e-mail fast"}
	want["sms"] = config.ChannelGuidance{Urgency: "normal", Note: "our own note"}
	if !reflect.DeepEqual(c.Routing.Channels, want) {
		t.Errorf("channels =\n%v\nwant\n%v", c.Routing.Channels, want)
	}
}

func TestEnvExpansion(t *testing.T) {
	tests := []struct {
		name string
		src  string
		env  map[string]string
		get  func(*config.Config) any
		want any
	}{
		{"set", "data_dir: ${DIR}\n", map[string]string{"DIR": "/var/lib/inroute"},
			func(c *config.Config) any { return c.DataDir }, "/var/lib/inroute"},
		{"unset without default is empty, then defaulted", "data_dir: ${DIR}\n", nil,
			func(c *config.Config) any { return c.DataDir }, "./data"},
		{"unset without default in a string", "routing: {channels: {email: {note: 'x${NOPE}y'}}}\n", nil,
			func(c *config.Config) any { return c.Routing.Channels["email"].Note }, "xy"},
		{"default when unset", "data_dir: ${DIR:-/srv/inroute}\n", nil,
			func(c *config.Config) any { return c.DataDir }, "/srv/inroute"},
		{"default when empty", "data_dir: ${DIR:-/srv/inroute}\n", map[string]string{"DIR": ""},
			func(c *config.Config) any { return c.DataDir }, "/srv/inroute"},
		{"set beats default", "data_dir: ${DIR:-/srv/inroute}\n", map[string]string{"DIR": "/x"},
			func(c *config.Config) any { return c.DataDir }, "/x"},
		{"empty default", "nats: {url: '${U:-}'}\n", nil,
			func(c *config.Config) any { return c.NATS.URL }, ""},
		{"nested default", "data_dir: ${A:-${B:-/b}}\n", map[string]string{"B": "/from-b"},
			func(c *config.Config) any { return c.DataDir }, "/from-b"},
		{"several references", "http: {listen: '${HOST}:${PORT}'}\n", map[string]string{"HOST": "0.0.0.0", "PORT": "9090"},
			func(c *config.Config) any { return c.HTTP.Listen }, "0.0.0.0:9090"},
		{"$$ is a literal $", "data_dir: /srv/$$HOME\n", map[string]string{"HOME": "/root"},
			func(c *config.Config) any { return c.DataDir }, "/srv/$HOME"},
		{"$${X} is not a reference", `data_dir: "$${X}"`, map[string]string{"X": "no"},
			func(c *config.Config) any { return c.DataDir }, "${X}"},
		{"a lone $ stays", "data_dir: /srv/a$b$\n", nil,
			func(c *config.Config) any { return c.DataDir }, "/srv/a$b$"},
		{"secret with # and ': ' stays one string", "agents:\n- name: a\n  token: ${SECRET}\n",
			map[string]string{"SECRET": "s3cr3t # x: y"},
			func(c *config.Config) any { return c.Agents[0].Token }, "s3cr3t # x: y"},
		{"value with YAML syntax stays one string", "routing:\n  channels:\n    email:\n      note: ${NOTE}\n",
			map[string]string{"NOTE": "[a, {b: c}]\n- d"},
			func(c *config.Config) any { return c.Routing.Channels["email"].Note }, "[a, {b: c}]\n- d"},
		{"number-like secret keeps its digits", "agents:\n- name: a\n  token: ${SECRET}\n",
			map[string]string{"SECRET": "007"},
			func(c *config.Config) any { return c.Agents[0].Token }, "007"},
		{"plain reference into an int", "nats:\n  streams:\n    replicas: ${REPLICAS}\n", map[string]string{"REPLICAS": "3"},
			func(c *config.Config) any { return c.NATS.Streams.Replicas }, 3},
		{"plain default into an int", "nats:\n  streams:\n    replicas: ${REPLICAS:-5}\n", nil,
			func(c *config.Config) any { return c.NATS.Streams.Replicas }, 5},
		{"unset plain reference into an int is the default", "nats:\n  streams:\n    replicas: ${REPLICAS}\n", nil,
			func(c *config.Config) any { return c.NATS.Streams.Replicas }, 1},
		{"plain reference into a bool", "connectors:\n  app:\n    enabled: ${ON}\n    apps: [{name: a, token: t}]\n",
			map[string]string{"ON": "true"},
			func(c *config.Config) any { return c.Conns.App.Enabled }, true},
		{"plain reference into a duration", "nats:\n  publish_timeout: ${T}\n", map[string]string{"T": "2d"},
			func(c *config.Config) any { return c.NATS.PublishTimeout.D() }, 48 * time.Hour},
		{"plain reference into a size", "connectors:\n  app:\n    max_body: ${B}\n", map[string]string{"B": "2048"},
			func(c *config.Config) any { return c.Conns.App.MaxBody.Int64() }, int64(2048)},
		{"quoted reference stays a string", `routing: {channels: {email: {note: "${N}"}}}`, map[string]string{"N": "true"},
			func(c *config.Config) any { return c.Routing.Channels["email"].Note }, "true"},
		{"plain number-like reference into a string", "routing:\n  channels:\n    email:\n      note: ${N}\n", map[string]string{"N": "1.50"},
			func(c *config.Config) any { return c.Routing.Channels["email"].Note }, "1.50"},
		{"block scalar", "routing:\n  channels:\n    email:\n      note: |\n        Hi ${WHO}\n        # not a comment\n", map[string]string{"WHO": "there"},
			func(c *config.Config) any { return c.Routing.Channels["email"].Note }, "Hi there\n# not a comment\n"},
		{"!!str keeps the text", "agents:\n- name: a\n  token: !!str ${T}\n", map[string]string{"T": "0x10"},
			func(c *config.Config) any { return c.Agents[0].Token }, "0x10"},
		{"through an anchor", "data_dir: &d ${DIR}\nagents: [{name: *d, token: t}]\n", map[string]string{"DIR": "/x"},
			func(c *config.Config) any { return c.Agents[0].Name }, "/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustParse(t, tt.src, tt.env)
			if got := tt.get(c); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("got %#v, want %#v", got, tt.want)
			}
		})
	}
}

// Expansion happens after parsing, so a value can never add keys.
func TestEnvCannotInjectKeys(t *testing.T) {
	c := mustParse(t, "data_dir: ${D}\n", map[string]string{"D": "x\nlog: {level: debug}"})
	if c.DataDir != "x\nlog: {level: debug}" || c.Log.Level != "info" {
		t.Errorf("data_dir = %q, log.level = %q", c.DataDir, c.Log.Level)
	}
}

// minimalApp is a valid enabled app connector, for tests that need one.
const minimalApp = "connectors: {app: {enabled: true, apps: [{name: w, token: t1}]}}\n"

func TestErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		env  map[string]string
		want string
	}{
		// Unknown keys.
		{"unknown top-level key", "data_dir: x\nlisten: 1\n",
			nil, `config.yaml:2:1: unknown field "listen"`},
		{"unknown nested key", "http:\n  listen: 127.0.0.1:1\n  listn: x\n",
			nil, `config.yaml:3:3: unknown field "listn" in http`},
		{"unknown deeply nested key", "nats:\n  streams:\n    replica: 3\n",
			nil, `config.yaml:3:5: unknown field "replica" in nats.streams`},
		{"unknown key in a list item", "agents:\n  - name: a\n    tokn: x\n    token: y\n",
			nil, `config.yaml:3:5: unknown field "tokn" in agents[0]`},
		{"unknown key in a channel", "routing:\n  channels:\n    email: {urgncy: low}\n",
			nil, `config.yaml:3:13: unknown field "urgncy" in routing.channels.email`},
		{"keys are not expanded", "${K}: x\n", map[string]string{"K": "data_dir"},
			`config.yaml:1:1: unknown field "${K}"`},

		// The store.
		{"store url not postgres", "store:\n  url: mysql://x/y\n",
			nil, `config.yaml:2:8: store.url: want a postgres:// URL (or leave it empty for the embedded SQLite store)`},
		{"store phone region", "store:\n  phone_region: china\n",
			nil, `config.yaml:2:17: store.phone_region: want a two-letter country code such as CN, HK, TW or US, got "china"`},
		{"store negative retention", "store:\n  retention: -1h\n",
			nil, `config.yaml:2:14: store.retention: must not be negative`},

		// Wrong types.
		{"string for an int", "nats:\n  streams:\n    replicas: three\n",
			nil, `config.yaml:3:15: nats.streams.replicas: want an integer, got "three"`},
		{"quoted number for an int", "nats:\n  streams:\n    replicas: \"3\"\n",
			nil, `config.yaml:3:15: nats.streams.replicas: want an integer, got the quoted string "3" (remove the quotes)`},
		{"quoted reference for an int", "nats: {streams: {replicas: '${R}'}}\n", map[string]string{"R": "3"},
			`config.yaml:1:28: nats.streams.replicas: want an integer, got the quoted string "3" (remove the quotes)`},
		{"float for an int", "nats:\n  streams:\n    replicas: 1.5\n",
			nil, `config.yaml:3:15: nats.streams.replicas: want an integer, got 1.5`},
		{"huge int", "nats:\n  streams:\n    replicas: 99999999999999999999\n",
			nil, `config.yaml:3:15: nats.streams.replicas: 99999999999999999999 is out of range`},
		{"yes for a bool", "connectors:\n  app:\n    enabled: yes\n",
			nil, `config.yaml:3:14: connectors.app.enabled: want true or false, got "yes"`},
		{"mapping for a list", "agents:\n  name: a\n",
			nil, `config.yaml:2:3: agents: want a list, got a mapping`},
		{"scalar for a mapping", "http: 127.0.0.1:8080\n",
			nil, `config.yaml:1:7: http: want a mapping, got "127.0.0.1:8080"`},
		{"list for a string", "data_dir: [a, b]\n",
			nil, `config.yaml:1:11: data_dir: want a string, got a list`},
		{"bad duration", "nats:\n  reconnect_wait: 5 minutes\n",
			nil, `config.yaml:2:19: nats.reconnect_wait: invalid duration "5 minutes" (want e.g. 250ms, 30s, 5m, 1h, 7d or 1d12h)`},
		{"number for a duration", "http: {shutdown_timeout: 30}\n",
			nil, `config.yaml:1:26: http.shutdown_timeout: invalid duration "30" (want e.g. 250ms, 30s, 5m, 1h, 7d or 1d12h)`},
		{"mapping for a duration", "http:\n  shutdown_timeout: {s: 1}\n",
			nil, `config.yaml:2:21: http.shutdown_timeout: want a duration such as 30s, 5m or 7d, got a mapping`},
		{"bad size", "connectors:\n  app:\n    max_body: 64XB\n",
			nil, `config.yaml:3:15: connectors.app.max_body: invalid size "64XB" (want e.g. 65536, 64KiB, 1MiB or 10MB)`},
		{"fractional bytes", "nats: {embedded: {max_store: 1.1KiB}}\n",
			nil, `config.yaml:1:30: nats.embedded.max_store: invalid size "1.1KiB" (not a whole number of bytes)`},
		{"list for a size", "nats: {embedded: {max_store: [1]}}\n",
			nil, `config.yaml:1:30: nats.embedded.max_store: want a size such as 65536, 64KiB or 1MiB, got a list`},
		{"not a mapping at the top", "- a\n- b\n",
			nil, `config.yaml:1:1: the file must be a mapping of settings (key: value lines), got a list`},
		{"aliased key", "&k data_dir: x\nlog:\n  *k : y\n",
			nil, `config.yaml:3:3: unknown field "data_dir" in log`},

		// Environment references.
		{"unterminated reference", "http:\n  listen: ${HTTP_ADDR\n",
			nil, `config.yaml:2:11: http.listen: unterminated variable reference "${HTTP_ADDR": missing "}" (write $$ for a literal $)`},
		{"unterminated default", "data_dir: \"${A:-${B}\"\n",
			nil, `config.yaml:1:11: data_dir: unterminated variable reference "${A:-${B}": missing "}" (write $$ for a literal $)`},
		{"unsupported operator", "data_dir: ${DIR-x}\n",
			nil, `config.yaml:1:11: data_dir: invalid variable reference "${DIR-x}": want ${NAME} or ${NAME:-default} (write $$ for a literal $)`},
		{"bad name", "data_dir: ${1DIR}\n",
			nil, `config.yaml:1:11: data_dir: invalid variable reference "${1DIR}": want ${NAME} or ${NAME:-default} (write $$ for a literal $)`},
		{"empty name", "data_dir: a${}b\n",
			nil, `config.yaml:1:11: data_dir: empty variable name in "${}" (write $$ for a literal $)`},
		{"bad reference under an unknown key", "extra:\n  x: ${Y\n",
			nil, "config.yaml:1:1: unknown field \"extra\"\n" +
				`config.yaml:2:6: unterminated variable reference "${Y": missing "}" (write $$ for a literal $)`},

		// Malformed YAML, aliases, tags, documents.
		{"unclosed flow sequence", "agents: [a\n",
			nil, `config.yaml:1:9: invalid YAML: sequence end token ']' not found`},
		{"tab indentation", "http:\n\tlisten: x\n",
			nil, "config.yaml:2:1: invalid YAML: found character '\t' that cannot start any token"},
		{"duplicate key", "data_dir: a\ndata_dir: b\n",
			nil, `config.yaml:2:1: invalid YAML: mapping key "data_dir" already defined at [1:1]`},
		{"bad indentation", "http:\n  listen: x\n shutdown_timeout: 1s\n",
			nil, `config.yaml:3:2: invalid YAML: value is not allowed in this context`},
		{"second document", "data_dir: a\n---\ndata_dir: b\n",
			nil, `config.yaml:2:1: only one YAML document is allowed; this is document 2`},
		{"unknown alias", "data_dir: *nowhere\n",
			nil, `config.yaml:1:11: data_dir: unknown alias "*nowhere" (an alias must follow its &anchor)`},
		{"alias before its anchor", "data_dir: *d\nlog: {level: &d debug}\n",
			nil, `config.yaml:1:11: data_dir: unknown alias "*d" (an alias must follow its &anchor)`},
		{"unsupported tag", "data_dir: !secret x\n",
			nil, `config.yaml:1:11: data_dir: unsupported tag "!secret"`},
		{"merge of a scalar", "log:\n  <<: debug\n",
			nil, `config.yaml:2:7: log: "<<" wants a mapping or a list of mappings, got "debug"`},

		// Validation, one rule at a time.
		{"log level", "log:\n  level: verbose\n",
			nil, `config.yaml:2:10: log.level: unknown level "verbose" (want one of debug, info, warn, error)`},
		{"log format", "log:\n  format: text\n",
			nil, `config.yaml:2:11: log.format: unknown format "text" (want one of auto, console, json)`},
		{"nats url scheme", "nats:\n  url: http://user:pw@nats:4222\n",
			nil, `config.yaml:2:8: nats.url: the URL "http://user:xxxxx@nats:4222" has scheme "http" (want nats://, tls://, ws:// or wss://)`},
		{"nats url without scheme", "nats:\n  url: localhost:4222\n",
			nil, `config.yaml:2:8: nats.url: the URL has no scheme (want nats://host:port, tls://, ws:// or wss://)`},
		{"nats url list", "nats:\n  url: nats://a:4222, nats://b:99999\n",
			nil, `config.yaml:2:8: nats.url: server 2 of 2 "nats://b:99999" has port "99999" (want 1 to 65535)`},
		{"nats url empty list item", "nats:\n  url: nats://a:4222,,nats://c\n",
			nil, `config.yaml:2:8: nats.url: server 2 of 3 is empty`},
		{"nats url without host", "nats:\n  url: nats://:4222\n",
			nil, `config.yaml:2:8: nats.url: the URL "nats://:4222" has no host`},
		{"nats url unparsable", "nats:\n  url: \"nats://a b:4222\"\n",
			nil, `config.yaml:2:8: nats.url: the URL is not a valid URL: invalid character " " in host name`},
		{"embedded listen without port", "nats:\n  embedded:\n    listen: localhost\n",
			nil, `config.yaml:3:13: nats.embedded.listen: "localhost" is not host:port (missing port in address)`},
		{"embedded listen port too low", "nats:\n  embedded:\n    listen: 127.0.0.1:-2\n",
			nil, `config.yaml:3:13: nats.embedded.listen: port "-2" in "127.0.0.1:-2" is not a number from -1 to 65535`},
		{"embedded sync", "nats:\n  embedded:\n    sync: sometimes\n",
			nil, `config.yaml:3:11: nats.embedded.sync: want "always" or a positive duration such as 2m, got "sometimes"`},
		{"embedded sync zero", "nats:\n  embedded:\n    sync: 0s\n",
			nil, `config.yaml:3:11: nats.embedded.sync: want "always" or a positive duration such as 2m, got "0s"`},
		{"negative duration", "nats:\n  reconnect_wait: -1s\n",
			nil, `config.yaml:2:19: nats.reconnect_wait: must be positive, got -1s`},
		{"negative max age", "nats:\n  streams:\n    events_max_age: -7d\n",
			nil, `config.yaml:3:21: nats.streams.events_max_age: must be positive, got -7d`},
		{"duplicate window longer than a max age", "nats:\n  streams:\n    duplicate_window: 2h\n    inbound_max_age: 1h\n",
			nil, `config.yaml:3:23: nats.streams.duplicate_window: 2h0m0s is longer than nats.streams.inbound_max_age (1h0m0s); JetStream needs the duplicate window to fit within every stream's max age`},
		{"defaulted duplicate window longer than a max age", "nats:\n  streams:\n    dead_letter_max_age: 30m\n",
			nil, `config.yaml:2:3: nats.streams.duplicate_window: 1h0m0s is longer than nats.streams.dead_letter_max_age (30m0s); JetStream needs the duplicate window to fit within every stream's max age`},
		{"replicas too many", "nats:\n  streams:\n    replicas: 6\n",
			nil, `config.yaml:3:15: nats.streams.replicas: must be between 1 and 5, got 6`},
		{"replicas negative", "nats:\n  streams:\n    replicas: -1\n",
			nil, `config.yaml:3:15: nats.streams.replicas: must be between 1 and 5, got -1`},
		{"http listen", "http:\n  listen: 8080\n",
			nil, `config.yaml:2:11: http.listen: "8080" is not host:port (missing port in address)`},
		{"http listen port", "http:\n  listen: \":http\"\n",
			nil, `config.yaml:2:11: http.listen: port "http" in ":http" is not a number from 0 to 65535`},
		{"http listen from env", "http:\n  listen: ${ADDR}\n", map[string]string{"ADDR": "0.0.0.0:123456"},
			`config.yaml:2:11: http.listen: port "123456" in "0.0.0.0:123456" is not a number from 0 to 65535`},
		{"unknown channel", "routing:\n  channels: {fax: {urgency: high}}\n",
			nil, `config.yaml:2:14: routing.channels.fax: unknown channel "fax" (want one of email, sms, voice, telegram, messenger, wechat, webchat, app)`},
		{"unknown channel, block style", "routing:\n  channels:\n    voice: {urgency: urgent}\n    fax:\n      urgency: high\n",
			nil, `config.yaml:4:5: routing.channels.fax: unknown channel "fax" (want one of email, sms, voice, telegram, messenger, wechat, webchat, app)`},
		{"unknown channel with an odd name", "routing:\n  channels:\n    \"e mail\": {urgency: low}\n",
			nil, `config.yaml:3:5: routing.channels["e mail"]: unknown channel "e mail" (want one of email, sms, voice, telegram, messenger, wechat, webchat, app)`},
		{"urgency", "routing:\n  channels:\n    email:\n      urgency: critical\n",
			nil, `config.yaml:4:16: routing.channels.email.urgency: unknown urgency "critical" (want one of low, normal, high, urgent)`},
		{"default queue", "routing:\n  default_queue: Sales Team\n",
			nil, `config.yaml:2:18: routing.default_queue: "Sales Team" is not a valid queue name (want lowercase letters, digits, "_" and "-" only; it becomes part of a NATS subject)`},
		{"default queue with a dot", "routing:\n  default_queue: a.b\n",
			nil, `config.yaml:2:18: routing.default_queue: "a.b" is not a valid queue name (want lowercase letters, digits, "_" and "-" only; it becomes part of a NATS subject)`},
		{"app connector without apps key", "connectors:\n  app:\n    enabled: true\n",
			nil, `config.yaml:3:14: connectors.app.apps: the app connector is enabled but lists no apps; add one with a name and a token, or set enabled: false`},
		{"app connector with empty apps", "connectors:\n  app:\n    enabled: true\n    apps: []\n",
			nil, `config.yaml:4:11: connectors.app.apps: the app connector is enabled but lists no apps; add one with a name and a token, or set enabled: false`},
		{"app connector with apps written empty", "connectors:\n  app:\n    enabled: true\n    apps:\n",
			nil, `config.yaml:4:5: connectors.app.apps: the app connector is enabled but lists no apps; add one with a name and a token, or set enabled: false`},
		{"app name missing", "connectors:\n  app:\n    enabled: true\n    apps:\n      - token: t\n",
			nil, `config.yaml:5:9: connectors.app.apps[0].name: missing (every app needs a name)`},
		{"app name invalid", "connectors:\n  app:\n    enabled: true\n    apps:\n      - name: My App\n        token: t\n",
			nil, `config.yaml:5:15: connectors.app.apps[0].name: "My App" is not a valid app name (want lowercase letters, digits, "_" and "-" only)`},
		{"app name duplicate", "connectors:\n  app:\n    enabled: true\n    apps:\n      - name: w\n        token: t1\n      - name: w\n        token: t2\n",
			nil, `config.yaml:7:15: connectors.app.apps[1].name: duplicate app name "w" (also at line 5)`},
		{"app token missing", "connectors:\n  app:\n    enabled: true\n    apps:\n      - name: w\n",
			nil, `config.yaml:5:9: connectors.app.apps[0].token: missing (every app needs a secret token)`},
		{"app token from unset variable", "connectors:\n  app:\n    enabled: true\n    apps:\n      - name: w\n        token: ${APP_TOKEN}\n",
			nil, `config.yaml:6:16: connectors.app.apps[0].token: empty because $APP_TOKEN is not set (every app needs a secret token)`},
		{"app token with a space", "connectors:\n  app:\n    enabled: true\n    apps:\n      - name: w\n        token: ${T}\n",
			map[string]string{"T": "abc\n"},
			`config.yaml:6:16: connectors.app.apps[0].token: starts or ends with whitespace or contains a control character (a newline from a secret file?), which an HTTP Authorization header cannot carry`},
		{"agent token with a control character", "agents:\n  - name: ann\n    token: \"a\\tb\"\n",
			nil, `config.yaml:3:12: agents[0].token: starts or ends with whitespace or contains a control character (a newline from a secret file?), which an HTTP Authorization header cannot carry`},
		{"app token duplicate", "connectors:\n  app:\n    enabled: true\n    apps:\n      - name: a\n        token: same\n      - name: b\n        token: same\n",
			nil, `config.yaml:8:16: connectors.app.apps[1].token: same token as connectors.app.apps[0].token; every app and agent needs its own token`},
		{"max body too small", "connectors:\n  app:\n    max_body: 100B\n",
			nil, `config.yaml:3:15: connectors.app.max_body: must be between 1KiB and 16MiB, got 100B`},
		{"max body too large", "connectors:\n  app:\n    max_body: 1GB\n",
			nil, `config.yaml:3:15: connectors.app.max_body: must be between 1KiB and 16MiB, got 1GB`},
		{"agent name missing", "agents:\n  - token: t\n",
			nil, `config.yaml:2:5: agents[0].name: missing (every agent needs a name)`},
		{"agent name duplicate", "agents:\n  - {name: ann, token: t1}\n  - {name: ann, token: t2}\n",
			nil, `config.yaml:3:12: agents[1].name: duplicate agent name "ann" (also at line 2)`},
		{"agent token missing", "agents:\n  - name: ann\n    token: \"\"\n",
			nil, `config.yaml:3:12: agents[0].token: missing (every agent needs a secret token)`},
		{"agent token duplicate", "agents:\n  - {name: ann, token: t}\n  - {name: bob, token: t}\n",
			nil, `config.yaml:3:24: agents[1].token: same token as agents[0].token; every app and agent needs its own token`},
		{"agent token same as an app's", minimalApp + "agents:\n  - {name: ann, token: t1}\n",
			nil, `config.yaml:3:24: agents[0].token: same token as connectors.app.apps[0].token; every app and agent needs its own token`},
		{"agent role unknown", "agents:\n  - {name: ann, token: t, role: boss}\n",
			nil, `config.yaml:2:33: agents[0].role: unknown role "boss" (want one of agent, admin)`},
		{"agent queue unknown", "routing:\n  queues: {general: {}}\nagents:\n  - {name: ann, token: t, queues: [vip]}\n",
			nil, `config.yaml:4:36: agents[0].queues[0]: unknown queue "vip" (declare it under routing.queues)`},
		{"agent capacity zero after a value", "agents:\n  - {name: ann, token: t, capacity: -1}\n",
			nil, `config.yaml:2:37: agents[0].capacity: must be between 1 and 1000, got -1`},
		{"agent phone not E.164", "agents:\n  - {name: ann, token: t, phone: 13800138000}\n",
			nil, `config.yaml:2:34: agents[0].phone: "13800138000" is not a phone number in E.164 form (+8613800138000)`},
		{"lease too short", "desk:\n  lease: 1s\n",
			nil, `config.yaml:2:10: desk.lease: must be between 10s and 24h, got 1s`},
		{"webhook without secret", "desk:\n  webhook: {url: \"https://ops.example.com/hook\"}\n",
			nil, `config.yaml:2:3: desk.webhook.secret: missing (a webhook needs a secret to sign its calls)`},
		{"webhook not http", "desk:\n  webhook: {url: \"ftp://x\", secret: 0123456789abcdef0}\n",
			nil, `config.yaml:2:18: desk.webhook.url: "ftp://x" is not an http or https URL`},
		{"escalation out of order", "routing:\n  sla:\n    escalation:\n      - {after: 1h, notify: true}\n      - {after: 5m, notify: true}\n",
			nil, `config.yaml:5:17: routing.sla.escalation[1].after: steps must be in order of after (5m0s comes after 1h0m0s)`},
		{"escalation step does nothing", "routing:\n  sla:\n    escalation:\n      - {after: 1h}\n",
			nil, `config.yaml:4:9: routing.sla.escalation[0]: a step needs at least one of raise, urgency, move_to, notify`},
		{"business hours past midnight", "routing:\n  business_hours: {start: \"22:00\", end: \"06:00\"}\n",
			nil, `config.yaml:2:41: routing.business_hours.end: 06:00 is not after start 22:00 (hours that run past midnight are not supported)`},
		{"twilio on without a public url", "connectors:\n  twilio:\n    account_sid: AC123\n    auth_token: tok\n",
			nil, `config.yaml:2:3: connectors.twilio.public_url: missing (Twilio signs requests with the URL it calls; say what that URL is)`},
		{"twilio account sid", "connectors:\n  twilio:\n    account_sid: XY123\n    auth_token: tok\n    public_url: https://x.example\n",
			nil, `config.yaml:3:18: connectors.twilio.account_sid: "XY123" is not an account SID (they start with AC)`},
		{"twilio number", "connectors:\n  twilio:\n    enabled: true\n    account_sid: AC1\n    auth_token: t\n    public_url: https://x.example\n    numbers: [\"0800\"]\n",
			nil, `config.yaml:7:15: connectors.twilio.numbers[0]: "0800" is not a phone number in E.164 form`},
		{"disabled app connector is not checked", "connectors: {app: {apps: [{name: Bad Name}]}}\nlog: {level: x}\n",
			nil, `config.yaml:2:14: log.level: unknown level "x" (want one of debug, info, warn, error)`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := config.Parse("config.yaml", []byte(tt.src), envOf(tt.env))
			if err == nil {
				t.Fatalf("Parse succeeded with %+v, want error\n%s", c, tt.want)
			}
			if c != nil {
				t.Errorf("Parse returned a config along with an error")
			}
			if err.Error() != tt.want {
				t.Errorf("error:\n%s\nwant:\n%s", err, tt.want)
			}
			var e *config.Error
			if !errors.As(err, &e) || e.File != "config.yaml" || e.Line < 1 || e.Col < 1 || e.Msg == "" {
				t.Errorf("error %#v is not a positioned *config.Error", err)
			}
		})
	}
}

func TestMultipleErrors(t *testing.T) {
	src := `log:
  level: loud
  format: json
http:
  listn: 127.0.0.1:1
nats:
  streams:
    replicas: many
routing:
  channels:
    fax: {}
    email: {urgency: asap}
agents:
  - name: ann
  - name: ann
    token: t
`
	want := strings.Join([]string{
		`config.yaml:2:10: log.level: unknown level "loud" (want one of debug, info, warn, error)`,
		`config.yaml:5:3: unknown field "listn" in http`,
		`config.yaml:8:15: nats.streams.replicas: want an integer, got "many"`,
		`config.yaml:11:5: routing.channels.fax: unknown channel "fax" (want one of email, sms, voice, telegram, messenger, wechat, webchat, app)`,
		`config.yaml:12:22: routing.channels.email.urgency: unknown urgency "asap" (want one of low, normal, high, urgent)`,
		`config.yaml:14:5: agents[0].token: missing (every agent needs a secret token)`,
		`config.yaml:15:11: agents[1].name: duplicate agent name "ann" (also at line 14)`,
	}, "\n")
	_, err := config.Parse("config.yaml", []byte(src), nil)
	if err == nil || err.Error() != want {
		t.Fatalf("error:\n%v\nwant:\n%s", err, want)
	}
	var errs config.Errors
	if !errors.As(err, &errs) || len(errs) != 7 {
		t.Fatalf("error %T is not config.Errors of 7", err)
	}
	if !slices.IsSortedFunc(errs, func(a, b *config.Error) int {
		if a.Line != b.Line {
			return a.Line - b.Line
		}
		return a.Col - b.Col
	}) {
		t.Errorf("errors not sorted by position")
	}
	var first *config.Error
	if !errors.As(err, &first) || first.Line != 2 {
		t.Errorf("errors.As(*Error) = %v, want the first problem", first)
	}
}

// A setting that failed to decode is not validated again: "apps: want a
// list" must not be followed by "lists no apps".
func TestNoFollowUpErrors(t *testing.T) {
	_, err := config.Parse("config.yaml", []byte("connectors:\n  app:\n    enabled: true\n    apps: {name: w}\n"), nil)
	want := `config.yaml:4:11: connectors.app.apps: want a list, got a mapping`
	if err == nil || err.Error() != want {
		t.Errorf("error:\n%v\nwant:\n%s", err, want)
	}
}

func TestErrorsFormat(t *testing.T) {
	errs := config.Errors{
		{File: "c.yaml", Line: 9, Col: 1, Msg: "b"},
		{File: "c.yaml", Line: 2, Col: 7, Msg: "a"},
	}
	if got, want := errs.Error(), "c.yaml:2:7: a\nc.yaml:9:1: b"; got != want {
		t.Errorf("Errors.Error() = %q, want %q", got, want)
	}
	if errs[0].Line != 9 {
		t.Errorf("Error() reordered the slice")
	}
}

func TestAnchorsAndMerges(t *testing.T) {
	c := mustParse(t, `routing:
  channels:
    telegram: &social {urgency: normal, note: social}
    messenger: *social
    wechat:
      <<: *social
      note: china
agents:
  - &ann {name: ann, token: t1}
  - <<: *ann
    name: bob
    token: t2
`, nil)
	ch := c.Routing.Channels
	if ch["messenger"] != ch["telegram"] || ch["wechat"] != (config.ChannelGuidance{Urgency: "normal", Note: "china"}) {
		t.Errorf("channels = %v", ch)
	}
	if len(c.Agents) != 2 || (c.Agents[1].Name != "bob" || c.Agents[1].Token != "t2" || c.Agents[1].Role != "agent" || c.Agents[1].Capacity != 5) {
		t.Errorf("agents = %v", c.Agents)
	}
}

func TestSelfReferencingAliasIsAnError(t *testing.T) {
	for _, src := range []string{
		"log: &b\n  level: debug\n  <<: *b\n",
		"agents: &a\n  - *a\n",
		"a: &a [*a, *a]\nagents: *a\n",
	} {
		if _, err := config.Parse("config.yaml", []byte(src), nil); err == nil {
			t.Errorf("Parse(%q) succeeded", src)
		}
	}
}

// Aliases can multiply work exponentially ("billion laughs"); a config file
// must not be able to stall startup.
func TestAliasBombIsBounded(t *testing.T) {
	var b strings.Builder
	b.WriteString("l0: &l0 {level: debug}\n")
	for i := 1; i < 20; i++ {
		fmt.Fprintf(&b, "l%d: &l%d {<<: [", i, i)
		for j := range 10 {
			if j > 0 {
				b.WriteString(", ")
			}
			fmt.Fprintf(&b, "*l%d", i-1)
		}
		b.WriteString("]}\n")
	}
	b.WriteString("log: *l19\n")
	_, err := config.Parse("config.yaml", []byte(b.String()), nil)
	if err == nil || !strings.Contains(err.Error(), "the file expands to more than 100000 values") {
		t.Errorf("error = %v", err)
	}
}

func TestDeepNesting(t *testing.T) {
	src := "data_dir: " + strings.Repeat("[", 5000) + strings.Repeat("]", 5000) + "\n"
	_, err := config.Parse("config.yaml", []byte(src), nil)
	if want := "config.yaml:1:11: data_dir: want a string, got a list"; err == nil || err.Error() != want {
		t.Errorf("error = %v, want %s", err, want)
	}
}

func TestDevTokens(t *testing.T) {
	c := mustParse(t, `connectors:
  app:
    enabled: true
    apps:
      - {name: wallet, token: dev-app-token}
      - {name: shop, token: real-secret-1}
agents:
  - {name: dev, token: dev-agent-token}
  - {name: ann, token: real-secret-2}
`, nil)
	if got, want := c.DevTokens(), []string{"app wallet", "agent dev"}; !slices.Equal(got, want) {
		t.Errorf("DevTokens() = %q, want %q", got, want)
	}
}

func TestLoad(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "inroute.yaml")
	if err := os.WriteFile(path, []byte("data_dir: ${INROUTE_TEST_DIR}\nlog: {level: debug}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("INROUTE_TEST_DIR", "/tmp/x")
	c, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != "/tmp/x" || c.Log.Level != "debug" {
		t.Errorf("Load: data_dir %q, log.level %q", c.DataDir, c.Log.Level)
	}

	if err := os.WriteFile(path, []byte("log: {level: loud}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err = config.Load(path)
	var e *config.Error
	if !errors.As(err, &e) || e.File != path || !strings.HasPrefix(err.Error(), path+":1:14: log.level: ") {
		t.Errorf("Load error = %v, want one at %s:1:14", err, path)
	}
}

func TestLoadMissingFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing.yaml")
	_, err := config.Load(path)
	if !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Load(missing) = %v, want fs.ErrNotExist", err)
	}
	if want := "load config: open " + path + ": no such file or directory"; err.Error() != want {
		t.Errorf("error = %q, want %q", err, want)
	}
}

// The shipped config.yaml must work as it is and say what it does.
func TestShippedConfig(t *testing.T) {
	src, err := os.ReadFile("../config.yaml")
	if err != nil {
		t.Fatal(err)
	}
	c, err := config.Parse("config.yaml", src, nil)
	if err != nil {
		t.Fatalf("shipped config.yaml does not load:\n%v", err)
	}

	// Apart from switching the app connector on with one app and adding one
	// agent, the file spells out the defaults.
	want := config.Default()
	want.Conns.App.Enabled = true
	want.Conns.App.Apps = []config.App{{Name: "wallet", Token: "dev-app-token", Webhook: config.Webhook{MaxAttempts: 12}}}
	want.Agents = []config.Agent{{Name: "dev", Token: "dev-agent-token", Role: config.RoleAdmin, Capacity: 5}}
	// One mailbox, off until INROUTE_IMAP_ADDR names a server.
	want.Conns.Email.Mailboxes = []config.Mailbox{{Name: "support",
		IMAP: config.IMAP{TLS: config.TLSImplicit, Folder: "INBOX", PollEvery: config.Duration(time.Minute)},
		SMTP: config.SMTP{TLS: config.TLSStart}}}
	// The routing rules are the triage's own; router/rules tests them.
	if n := len(c.Routing.SLA.Escalation); n != 3 {
		t.Errorf("shipped escalation ladder has %d steps, want 3", n)
	}
	want.Routing = c.Routing
	if !reflect.DeepEqual(config.StripPositions(c), want) {
		t.Errorf("shipped config =\n%+v\nwant\n%+v", c, want)
	}
	// And the values its comments promise.
	for _, ch := range []struct {
		got, want any
	}{
		{c.DataDir, "./data"},
		{c.HTTP.Listen, "127.0.0.1:8080"},
		{c.NATS.URL, ""},
		{c.Routing.Channels["voice"].Urgency, "urgent"},
		{c.Routing.Channels["email"].Urgency, "low"},
		{c.Routing.Channels["webchat"].Urgency, "high"},
		{c.Routing.Channels["app"].Urgency, "high"},
		{c.Routing.Channels["telegram"].Urgency, "normal"},
	} {
		if ch.got != ch.want {
			t.Errorf("got %v, want %v", ch.got, ch.want)
		}
	}
	if got := c.DevTokens(); !slices.Equal(got, []string{"app wallet", "agent dev"}) {
		t.Errorf("DevTokens() = %q", got)
	}

	// The environment overrides what it says it overrides.
	c, err = config.Parse("config.yaml", src, envOf(map[string]string{
		"INROUTE_HTTP":        "0.0.0.0:9000",
		"INROUTE_NATS_URL":    "nats://a:4222,nats://b:4222",
		"INROUTE_APP_TOKEN":   "0123456789abcdef",
		"INROUTE_AGENT_TOKEN": "fedcba9876543210",
	}))
	if err != nil {
		t.Fatal(err)
	}
	if c.HTTP.Listen != "0.0.0.0:9000" || c.NATS.URL != "nats://a:4222,nats://b:4222" ||
		c.Conns.App.Apps[0].Token != "0123456789abcdef" || c.Agents[0].Token != "fedcba9876543210" {
		t.Errorf("environment not applied: %+v", c)
	}
	if got := c.DevTokens(); len(got) != 0 {
		t.Errorf("DevTokens() = %q, want none", got)
	}
}

func FuzzParse(f *testing.F) {
	if src, err := os.ReadFile("../config.yaml"); err == nil {
		f.Add(src)
	}
	for _, s := range []string{
		"",
		minimalApp,
		"http: {listen: ${A:-${B}}}\n",
		"log: &b\n  level: debug\n  <<: *b\n",
		"a: &a [*a, *a]\nagents: *a\n",
		"routing:\n  channels:\n    email: !!str 1\n",
		"nats: {streams: {replicas: ${R}}}\n",
		"agents:\n  - {name: ann, token: t}\n  - ? x\n    : y\n",
		"connectors: {app: {max_body: 1.5KiB}}\n",
		"--- \n...\n",
		"\xef\xbb\xbf? [a]\n: b\n",
	} {
		f.Add([]byte(s))
	}
	env := envOf(map[string]string{"A": "1", "R": "3", "E": "", "S": "a: [b # c"})
	f.Fuzz(func(t *testing.T, src []byte) {
		// The fuzzer has no per-input timeout: a hang would only show as a
		// stalled exec count. Crashing the worker makes it report the input.
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("Parse hangs on %q", src)) })
		defer watchdog.Stop()
		c, err := config.Parse("f.yaml", src, env)
		if err != nil {
			if c != nil {
				t.Fatal("config returned with an error")
			}
			var errs []*config.Error
			var e *config.Error
			var es config.Errors
			switch {
			case errors.As(err, &es):
				errs = es
			case errors.As(err, &e):
				errs = []*config.Error{e}
			default:
				t.Fatalf("error %T is neither *Error nor Errors: %v", err, err)
			}
			for _, e := range errs {
				if e.File != "f.yaml" || e.Line < 1 || e.Col < 1 || e.Msg == "" {
					t.Fatalf("badly positioned error %#v", e)
				}
			}
			// Reporting must be deterministic.
			if _, err2 := config.Parse("f.yaml", src, env); err2 == nil || err2.Error() != err.Error() {
				t.Fatalf("second Parse gave\n%v\nfirst gave\n%v", err2, err)
			}
			return
		}
		if c == nil {
			t.Fatal("nil config without an error")
		}
		if r := c.NATS.Streams.Replicas; r < 1 || r > 5 {
			t.Fatalf("invalid config accepted: replicas %d", r)
		}
		if len(c.Routing.Channels) != 8 {
			t.Fatalf("invalid config accepted: channels %v", c.Routing.Channels)
		}
	})
}
