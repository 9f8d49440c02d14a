package config

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// validator checks a decoded, defaulted Config and reports each problem at
// the place the setting was written (or, for a default, at the nearest
// enclosing key that was).
type validator struct {
	probs  *problems
	index  map[string]loc
	failed failures
	unset  map[string][]string
}

// nameRE is for names that end up in NATS subjects, where ".", "*", ">" and
// spaces have meaning or are not allowed.
var nameRE = regexp.MustCompile(`^[a-z0-9_-]+$`)

const nameRule = `want lowercase letters, digits, "_" and "-" only`

// pos finds where path was written: its value (or, with key, its key), else
// the key of the nearest enclosing setting that was written, else 1:1.
func (v *validator) pos(path string, key bool) position {
	if l, ok := v.index[path]; ok {
		if key && l.hasKey {
			return l.key
		}
		return l.val
	}
	for p := parentPath(path); p != ""; p = parentPath(p) {
		if l, ok := v.index[p]; ok {
			if l.hasKey {
				return l.key
			}
			return l.val
		}
	}
	return startOfFile
}

// parentPath strips the last ".name" or "[index]" of a setting path.
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// failures records the settings that could not be decoded, so that the
// validator can skip them: checking what is left of a setting that failed
// would only add confusing follow-up errors ("no apps" after "apps: want a
// list").
type failures struct {
	at     map[string]bool // the failed paths
	within map[string]bool // the failed paths and every path containing one
}

func (f *failures) add(path string) {
	f.at[path] = true
	for p := path; !f.within[p]; p = parentPath(p) {
		f.within[p] = true
		if p == "" {
			break
		}
	}
}

// suppressed reports whether path, a setting containing it or a setting
// within it failed to decode.
func (v *validator) suppressed(path string) bool {
	if v.failed.within[path] {
		return true
	}
	for p := path; ; p = parentPath(p) {
		if v.failed.at[p] {
			return true
		}
		if p == "" {
			return false
		}
	}
}

func (v *validator) report(path string, key bool, format string, args ...any) {
	if v.suppressed(path) {
		return
	}
	v.probs.addf(v.pos(path, key), "%s: %s", path, fmt.Sprintf(format, args...))
}

// errorf reports a problem with the value at path.
func (v *validator) errorf(path, format string, args ...any) { v.report(path, false, format, args...) }

// missing reports a required setting that is empty, naming the unset
// variables that made it so: "empty" alone sends an admin looking in the
// wrong place when the file says ${INROUTE_APP_TOKEN}.
func (v *validator) missing(path, why string) {
	if names := v.unset[path]; len(names) > 0 {
		refs := make([]string, len(names))
		for i, n := range names {
			refs[i] = "$" + n
		}
		verb := "is"
		if len(refs) > 1 {
			verb = "are"
		}
		v.errorf(path, "empty because %s %s not set (%s)", strings.Join(refs, " and "), verb, why)
		return
	}
	v.errorf(path, "missing (%s)", why)
}

func (v *validator) oneOf(path, what, got string, allowed []string) {
	if !slices.Contains(allowed, got) {
		v.errorf(path, "unknown %s %s (want one of %s)", what, quote(got), strings.Join(allowed, ", "))
	}
}

func (v *validator) positive(path string, d Duration) {
	if d <= 0 {
		v.errorf(path, "must be positive, got %s", d)
	}
}

func (c *Config) validate(v *validator) {
	v.oneOf("log.level", "level", c.Log.Level, []string{"debug", "info", "warn", "error"})
	v.oneOf("log.format", "format", c.Log.Format, []string{"auto", "console", "json"})
	c.validateNATS(v)
	if err := checkHostPort(c.HTTP.Listen, 0); err != nil {
		v.errorf("http.listen", "%v", err)
	}
	v.positive("http.shutdown_timeout", c.HTTP.ShutdownTimeout)
	if c.RoutingFile == "" {
		c.validateRouting(v)
	}
	c.validateAccess(v)
	c.validateAgents(v)
	c.validateTwilio(v)
	c.validateEmail(v)
	c.validateStore(v)
}

var regionRE = regexp.MustCompile(`^[A-Z]{2}$`)

func (c *Config) validateStore(v *validator) {
	st := &c.Store
	if st.URL != "" {
		u, err := url.Parse(st.URL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			v.errorf("store.url", "want a postgres:// URL (or leave it empty for the embedded SQLite store)")
		}
	}
	v.positive("store.chat_window", st.ChatWindow)
	v.positive("store.reopen_window", st.ReopenWindow)
	if !regionRE.MatchString(st.PhoneRegion) {
		v.errorf("store.phone_region", "want a two-letter country code such as CN, HK, TW or US, got %s", quote(st.PhoneRegion))
	}
	if st.Retention < 0 {
		v.errorf("store.retention", "must not be negative")
	}
	if st.Attachments.MaxSize <= 0 {
		v.errorf("store.attachments.max_size", "must be positive")
	}
}

func (c *Config) validateNATS(v *validator) {
	n := &c.NATS
	if n.URL != "" {
		if err := checkNATSURL(n.URL); err != nil {
			v.errorf("nats.url", "%v", err)
		}
	}
	if err := checkHostPort(n.Embedded.Listen, -1); err != nil {
		v.errorf("nats.embedded.listen", "%v", err)
	}
	if n.Embedded.Sync != "always" {
		if d, err := time.ParseDuration(n.Embedded.Sync); err != nil || d <= 0 {
			v.errorf("nats.embedded.sync", `want "always" or a positive duration such as 2m, got %s`, quote(n.Embedded.Sync))
		}
	}
	if n.Embedded.MaxStore < 0 {
		v.errorf("nats.embedded.max_store", "must not be negative")
	}
	v.positive("nats.reconnect_wait", n.ReconnectWait)
	v.positive("nats.publish_timeout", n.PublishTimeout)

	s := &n.Streams
	v.positive("nats.streams.duplicate_window", s.DuplicateWindow)
	ages := []struct {
		path string
		age  Duration
	}{
		{"nats.streams.inbound_max_age", s.InboundMaxAge},
		{"nats.streams.events_max_age", s.EventsMaxAge},
		{"nats.streams.dead_letter_max_age", s.DeadLetterMaxAge},
	}
	for _, a := range ages {
		v.positive(a.path, a.age)
		// JetStream rejects such a stream at startup with a terse message;
		// saying it here, at the right line, saves a confusing failure.
		if a.age > 0 && s.DuplicateWindow > a.age {
			v.errorf("nats.streams.duplicate_window", "%s is longer than %s (%s); JetStream needs the duplicate window to fit within every stream's max age", s.DuplicateWindow, a.path, a.age)
		}
	}
	if s.Replicas < 1 || s.Replicas > 5 {
		v.errorf("nats.streams.replicas", "must be between 1 and 5, got %d", s.Replicas)
	}
}

// validateAccess checks the apps and agents, who authenticate with bearer
// tokens: each must be identifiable by its name and by its token alone.
func (c *Config) validateAccess(v *validator) {
	tokens := map[string]string{} // token -> path of its first user
	checkToken := func(path, token, who string) {
		switch {
		case token == "":
			v.missing(path, who+" needs a secret token")
		case !headerSafe(token):
			v.errorf(path, "starts or ends with whitespace or contains a control character (a newline from a secret file?), which an HTTP Authorization header cannot carry")
		case tokens[token] != "":
			v.errorf(path, "same token as %s; every app and agent needs its own token", tokens[token])
		default:
			tokens[token] = path
		}
	}

	a := &c.Conns.App
	if a.MaxBody < 1<<10 || a.MaxBody > 16<<20 {
		v.errorf("connectors.app.max_body", "must be between 1KiB and 16MiB, got %s", a.MaxBody)
	}
	if a.Enabled {
		if len(a.Apps) == 0 {
			// Without an apps key, point at the switch that asks for apps.
			at := "connectors.app.apps"
			if _, ok := v.index[at]; !ok {
				at = "connectors.app.enabled"
			}
			if !v.suppressed("connectors.app.apps") {
				v.probs.addf(v.pos(at, false), "connectors.app.apps: the app connector is enabled but lists no apps; add one with a name and a token, or set enabled: false")
			}
		}
		appNames := map[string]string{}
		for i, app := range a.Apps {
			path := fmt.Sprintf("connectors.app.apps[%d]", i)
			switch {
			case app.Name == "":
				v.missing(path+".name", "every app needs a name")
			case !nameRE.MatchString(app.Name):
				v.errorf(path+".name", "%s is not a valid app name (%s)", quote(app.Name), nameRule)
			case appNames[app.Name] != "":
				v.errorf(path+".name", "duplicate app name %s (also at line %d)", quote(app.Name), v.pos(appNames[app.Name], false).line)
			default:
				appNames[app.Name] = path + ".name"
			}
			checkToken(path+".token", app.Token, "every app")
		}
	}

	agentNames := map[string]string{}
	for i, ag := range c.Agents {
		path := fmt.Sprintf("agents[%d]", i)
		switch {
		case ag.Name == "":
			v.missing(path+".name", "every agent needs a name")
		case agentNames[ag.Name] != "":
			v.errorf(path+".name", "duplicate agent name %s (also at line %d)", quote(ag.Name), v.pos(agentNames[ag.Name], false).line)
		default:
			agentNames[ag.Name] = path + ".name"
		}
		checkToken(path+".token", ag.Token, "every agent")
	}
}

// headerSafe reports whether a token survives an HTTP header: header values
// cannot hold control characters and lose surrounding whitespace, so such a
// token could never match.
func headerSafe(token string) bool {
	return strings.TrimSpace(token) == token && strings.IndexFunc(token, unicode.IsControl) < 0
}

// mapPath is the path of a map entry as the decoder records it.
func mapPath(path, key string) string {
	if plainKey.MatchString(key) {
		return path + "." + key
	}
	return path + "[" + strconv.Quote(key) + "]"
}

// checkHostPort checks a listen address: host:port with a numeric port from
// minPort to 65535. The host may be empty (all interfaces).
func checkHostPort(addr string, minPort int) error {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		var ae *net.AddrError
		if errors.As(err, &ae) {
			err = errors.New(ae.Err)
		}
		return fmt.Errorf("%s is not host:port (%v)", quote(addr), err)
	}
	p, err := strconv.Atoi(port)
	if err != nil || p < minPort || p > 65535 {
		return fmt.Errorf("port %s in %s is not a number from %d to 65535", quote(port), quote(addr), minPort)
	}
	return nil
}

// checkNATSURL checks a server URL or a comma-separated list of them. URLs
// may carry credentials, so messages show them redacted.
func checkNATSURL(list string) error {
	servers := strings.Split(list, ",")
	for i, raw := range servers {
		which := "the URL"
		if len(servers) > 1 {
			which = fmt.Sprintf("server %d of %d", i+1, len(servers))
		}
		s := strings.TrimSpace(raw)
		if s == "" {
			return fmt.Errorf("%s is empty", which)
		}
		if !strings.Contains(s, "://") {
			return fmt.Errorf("%s has no scheme (want nats://host:port, tls://, ws:// or wss://)", which)
		}
		u, err := url.Parse(s)
		if err != nil {
			var ue *url.Error
			if errors.As(err, &ue) {
				err = ue.Err // url.Error repeats the URL, password included
			}
			return fmt.Errorf("%s is not a valid URL: %v", which, err)
		}
		switch strings.ToLower(u.Scheme) {
		case "nats", "tls", "ws", "wss":
		default:
			return fmt.Errorf("%s %s has scheme %s (want nats://, tls://, ws:// or wss://)", which, quote(u.Redacted()), quote(u.Scheme))
		}
		if u.Hostname() == "" {
			return fmt.Errorf("%s %s has no host", which, quote(u.Redacted()))
		}
		if port := u.Port(); port != "" {
			if p, err := strconv.Atoi(port); err != nil || p < 1 || p > 65535 {
				return fmt.Errorf("%s %s has port %s (want 1 to 65535)", which, quote(u.Redacted()), quote(port))
			}
		}
	}
	return nil
}

// devTokens are the tokens the shipped config.yaml falls back to, so that a
// local trial works without setup. They are public, so serve warns when
// they are in use.
var devTokens = []string{"dev-app-token", "dev-agent-token"}

// DevTokens names the apps and agents ("app wallet", "agent dev") whose token
// is one of the well-known development tokens. Apps of a disabled app
// connector are left out: they accept nothing.
func (c *Config) DevTokens() []string {
	var out []string
	if c.Conns.App.Enabled {
		for _, a := range c.Conns.App.Apps {
			if slices.Contains(devTokens, a.Token) {
				out = append(out, "app "+a.Name)
			}
		}
	}
	for _, a := range c.Agents {
		if slices.Contains(devTokens, a.Token) {
			out = append(out, "agent "+a.Name)
		}
	}
	return out
}
