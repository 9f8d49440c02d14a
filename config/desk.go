package config

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

var (
	agentNameRE = regexp.MustCompile(`^[A-Za-z0-9./][A-Za-z0-9._@+/:-]{0,63}$`)
	e164RE      = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
)

// validateAgents checks what validateAccess leaves: roles, skills,
// capacity and call-back phones, and the desk's settings.
func (c *Config) validateAgents(v *validator) {
	for i, ag := range c.Agents {
		path := fmt.Sprintf("agents[%d]", i)
		if ag.Name != "" && !agentNameRE.MatchString(ag.Name) {
			v.errorf(path+".name", "%s is not a valid agent name (letters, digits and . _ @ + - / : only, at most 64)", quote(ag.Name))
		}
		v.oneOf(path+".role", "role", ag.Role, []string{RoleAgent, RoleAdmin})
		for j, q := range ag.Queues {
			qp := fmt.Sprintf("%s.queues[%d]", path, j)
			if c.queueRef(v, qp, q) && slices.Index(ag.Queues, q) != j {
				v.errorf(qp, "queue %s is listed twice", quote(q))
			}
		}
		if ag.Capacity < 1 || ag.Capacity > 1000 {
			v.errorf(path+".capacity", "must be between 1 and 1000, got %d", ag.Capacity)
		}
		if ag.Phone != "" && !e164RE.MatchString(ag.Phone) {
			v.errorf(path+".phone", "%s is not a phone number in E.164 form (+8613800138000)", quote(ag.Phone))
		}
	}
	d := &c.Desk
	if d.Lease < Duration(10*time.Second) || d.Lease > Duration(24*time.Hour) {
		v.errorf("desk.lease", "must be between 10s and 24h, got %s", d.Lease)
	}
	if d.MaxWait < Duration(time.Second) || d.MaxWait > Duration(10*time.Minute) {
		v.errorf("desk.max_wait", "must be between 1s and 10m, got %s", d.MaxWait)
	}
	if d.CheckEvery < Duration(100*time.Millisecond) || d.CheckEvery > Duration(10*time.Minute) {
		v.errorf("desk.check_every", "must be between 100ms and 10m, got %s", d.CheckEvery)
	}
	v.positive("desk.online_window", d.OnlineWindow)
	v.webhook("desk.webhook", d.Webhook)
	for i, app := range c.Conns.App.Apps {
		v.webhook(fmt.Sprintf("connectors.app.apps[%d].webhook", i), app.Webhook)
	}
	v.positive("connectors.app.reply_retention", c.Conns.App.ReplyRetention)
}

// webhook checks an outgoing callback; an empty URL turns it off.
func (v *validator) webhook(path string, w Webhook) {
	if w.URL == "" {
		return
	}
	u, err := url.Parse(w.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errorf(path+".url", "%s is not an http or https URL", quote(w.URL))
	}
	if w.Secret == "" {
		v.missing(path+".secret", "a webhook needs a secret to sign its calls")
	} else if len(w.Secret) < 16 {
		v.errorf(path+".secret", "is shorter than 16 characters; use a long random secret")
	}
	if w.MaxAttempts < 1 || w.MaxAttempts > 100 {
		v.errorf(path+".max_attempts", "must be between 1 and 100, got %d", w.MaxAttempts)
	}
}

// validateSLA checks the escalation ladder.
func (c *Config) validateSLA(v *validator) {
	r := &c.Routing
	var prev Duration = -1
	for i, st := range r.SLA.Escalation {
		path := fmt.Sprintf("routing.sla.escalation[%d]", i)
		switch {
		case st.After < 0:
			v.errorf(path+".after", "must not be negative")
		case st.After < prev:
			v.errorf(path+".after", "steps must be in order of after (%s comes after %s)", st.After, prev)
		}
		prev = st.After
		if st.Raise < 0 || st.Raise > 3 {
			v.errorf(path+".raise", "must be between 0 and 3, got %d", st.Raise)
		}
		if st.Urgency != "" {
			v.oneOf(path+".urgency", "urgency", st.Urgency, urgencyNames)
		}
		if st.MoveTo != "" {
			c.queueRef(v, path+".move_to", st.MoveTo)
		}
		if st.Raise == 0 && st.Urgency == "" && st.MoveTo == "" && !st.Notify {
			v.errorf(path, "a step needs at least one of raise, urgency, move_to, notify")
		}
	}
}

// validateTwilio checks the Twilio connector when it runs.
func (c *Config) validateTwilio(v *validator) {
	t := &c.Conns.Twilio
	if !t.On() {
		return
	}
	if t.AccountSID == "" {
		v.missing("connectors.twilio.account_sid", "the Twilio connector needs the account SID")
	} else if !strings.HasPrefix(t.AccountSID, "AC") {
		v.errorf("connectors.twilio.account_sid", "%s is not an account SID (they start with AC)", quote(t.AccountSID))
	}
	if t.AuthToken == "" {
		v.missing("connectors.twilio.auth_token", "the Twilio connector needs the auth token to check signatures")
	}
	if t.PublicURL == "" {
		v.missing("connectors.twilio.public_url", "Twilio signs requests with the URL it calls; say what that URL is")
	} else if u, err := url.Parse(t.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errorf("connectors.twilio.public_url", "%s is not an http or https URL", quote(t.PublicURL))
	}
	for i, n := range t.Numbers {
		if !e164RE.MatchString(n) {
			v.errorf(fmt.Sprintf("connectors.twilio.numbers[%d]", i), "%s is not a phone number in E.164 form", quote(n))
		}
	}
	if t.MessagesPerSecond <= 0 || t.MessagesPerSecond > 1000 {
		v.errorf("connectors.twilio.messages_per_second", "must be above 0 and at most 1000, got %g", t.MessagesPerSecond)
	}
	if t.MaxMediaSize < 1<<10 || t.MaxMediaSize > 100<<20 {
		v.errorf("connectors.twilio.max_media_size", "must be between 1KiB and 100MiB, got %s", t.MaxMediaSize)
	}
	if u, err := url.Parse(t.APIURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		v.errorf("connectors.twilio.api_url", "%s is not an http or https URL", quote(t.APIURL))
	}
}
