package config

import (
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"
)

var weekdays = []string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}

func sortedKeys[V any](m map[string]V) []string { return slices.Sorted(maps.Keys(m)) }

// validateRouting checks the rules language's structure: names,
// references between queues, topics and templates, urgencies, patterns.
// The rules compiler (router/rules) checks the rest (word lists that
// normalize to nothing, expressions) and reports with Config.At.
func (c *Config) validateRouting(v *validator) {
	r := &c.Routing
	queueName := func(path, q string) { c.queueRef(v, path, q) }
	queueName("routing.default_queue", r.DefaultQueue)
	for _, name := range sortedKeys(r.Queues) {
		path := mapPath("routing.queues", name)
		if !nameRE.MatchString(name) {
			v.report(path, true, "%s is not a valid queue name (%s)", quote(name), nameRule)
		}
		for _, u := range sortedKeys(r.Queues[name].SLA) {
			sp := mapPath(path+".sla", u)
			if !slices.Contains(urgencyNames, u) {
				v.report(sp, true, "unknown urgency %s (want one of %s)", quote(u), strings.Join(urgencyNames, ", "))
				continue
			}
			sla := r.Queues[name].SLA[u]
			if sla.FirstResponse < 0 || sla.NextResponse < 0 {
				v.errorf(sp, "response targets must not be negative")
			}
		}
	}
	for _, name := range sortedKeys(r.Channels) {
		path := mapPath("routing.channels", name)
		if !slices.Contains(channelNames, name) {
			v.report(path, true, "unknown channel %s (want one of %s)", quote(name), strings.Join(channelNames, ", "))
			continue
		}
		v.oneOf(path+".urgency", "urgency", r.Channels[name].Urgency, urgencyNames)
	}
	template := func(path, name string) {
		if name != "" && !hasKey(r.Templates, name) {
			v.errorf(path, "unknown template %s (declare it under routing.templates)", quote(name))
		}
	}
	fallbacks := 0
	for _, name := range sortedKeys(r.Topics) {
		t := r.Topics[name]
		path := mapPath("routing.topics", name)
		if !nameRE.MatchString(name) {
			v.report(path, true, "%s is not a valid topic name (%s)", quote(name), nameRule)
		}
		if t.Queue != "" {
			queueName(path+".queue", t.Queue)
		}
		if t.Floor != "" {
			v.oneOf(path+".floor", "urgency", t.Floor, urgencyNames)
		}
		template(path+".auto_reply", t.AutoReply)
		if len(t.Match) == 0 {
			fallbacks++
		}
		for i, cl := range t.Match {
			c.validateClause(v, fmt.Sprintf("%s.match[%d]", path, i), cl)
		}
		if !slices.Contains(r.Precedence, name) {
			v.report(path, true, "topic %s is not in routing.precedence (list every topic there, most important first)", quote(name))
		}
	}
	if fallbacks > 1 {
		v.errorf("routing.topics", "%d topics have no match clauses; at most one topic may be the fallback", fallbacks)
	}
	seen := map[string]bool{}
	for i, name := range r.Precedence {
		path := fmt.Sprintf("routing.precedence[%d]", i)
		switch {
		case !hasKey(r.Topics, name):
			v.errorf(path, "unknown topic %s", quote(name))
		case seen[name]:
			v.errorf(path, "topic %s is listed twice", quote(name))
		}
		seen[name] = true
	}
	for i, w := range r.Haste.Words {
		if strings.TrimSpace(w) == "" {
			v.errorf(fmt.Sprintf("routing.haste.words[%d]", i), "empty word")
		}
	}
	for i, w := range r.Haste.Not {
		if strings.TrimSpace(w) == "" {
			v.errorf(fmt.Sprintf("routing.haste.not[%d]", i), "empty phrase")
		}
	}
	if r.Haste.Raise < 0 || r.Haste.Raise > 3 {
		v.errorf("routing.haste.raise", "must be between 0 and 3, got %d", r.Haste.Raise)
	}
	ruleNames := map[string]string{}
	for i, rule := range r.Rules {
		path := fmt.Sprintf("routing.rules[%d]", i)
		switch {
		case rule.Name == "":
			v.missing(path+".name", "every rule needs a name (it is shown in explanations)")
		case ruleNames[rule.Name] != "":
			v.errorf(path+".name", "duplicate rule name %s (also at line %d)", quote(rule.Name), v.pos(ruleNames[rule.Name], false).line)
		default:
			ruleNames[rule.Name] = path + ".name"
		}
		w, t := rule.When, rule.Then
		for j, ch := range w.Channel {
			v.oneOf(fmt.Sprintf("%s.when.channel[%d]", path, j), "channel", ch, channelNames)
		}
		for j, tp := range w.Topic {
			if !hasKey(r.Topics, tp) {
				v.errorf(fmt.Sprintf("%s.when.topic[%d]", path, j), "unknown topic %s", quote(tp))
			}
		}
		if w.Text != nil {
			c.validateClause(v, path+".when.text", *w.Text)
		}
		if w.Subject != nil {
			c.validateClause(v, path+".when.subject", *w.Subject)
		}
		if t.Queue != "" {
			queueName(path+".then.queue", t.Queue)
		}
		if t.Urgency != "" {
			v.oneOf(path+".then.urgency", "urgency", t.Urgency, urgencyNames)
		}
		if t.Floor != "" {
			v.oneOf(path+".then.floor", "urgency", t.Floor, urgencyNames)
		}
		if t.Raise < -3 || t.Raise > 3 {
			v.errorf(path+".then.raise", "must be between -3 and 3, got %d", t.Raise)
		}
		template(path+".then.auto_reply", t.AutoReply)
		for j, tag := range t.Tags {
			if !nameRE.MatchString(tag) {
				v.errorf(fmt.Sprintf("%s.then.tags[%d]", path, j), "%s is not a valid tag (%s)", quote(tag), nameRule)
			}
		}
	}
	c.validateSLA(v)
	bh := &r.BusinessHours
	if bh.Timezone != "" {
		if _, err := time.LoadLocation(bh.Timezone); err != nil {
			v.errorf("routing.business_hours.timezone", "unknown time zone %s (want an IANA name such as Asia/Shanghai)", quote(bh.Timezone))
		}
	}
	for i, d := range bh.Days {
		v.oneOf(fmt.Sprintf("routing.business_hours.days[%d]", i), "day", strings.ToLower(d), weekdays)
	}
	for _, f := range []struct{ path, val string }{{"routing.business_hours.start", bh.Start}, {"routing.business_hours.end", bh.End}} {
		if f.val != "" {
			if _, err := time.Parse("15:04", f.val); err != nil {
				v.errorf(f.path, "want a time of day as HH:MM, got %s", quote(f.val))
			}
		}
	}
	if start, err1 := time.Parse("15:04", bh.Start); err1 == nil {
		if end, err2 := time.Parse("15:04", bh.End); err2 == nil && !end.After(start) {
			// Hours past midnight are not supported: such a day would
			// never be open, and SLA targets in business hours never due.
			v.errorf("routing.business_hours.end", "%s is not after start %s (hours that run past midnight are not supported)", bh.End, bh.Start)
		}
	}
	for _, name := range sortedKeys(r.Templates) {
		for _, lang := range sortedKeys(r.Templates[name]) {
			path := mapPath(mapPath("routing.templates", name), lang)
			text := r.Templates[name][lang]
			if strings.TrimSpace(text) == "" {
				v.errorf(path, "empty template text")
			}
			if err := CheckTemplate(lang, text); err != nil {
				v.errorf(path, "%v", err)
			}
		}
	}
	for i, tc := range r.Tests {
		path := fmt.Sprintf("routing.tests[%d]", i)
		v.oneOf(path+".message.channel", "channel", tc.Message.Channel, channelNames)
		if strings.TrimSpace(tc.Message.Text) == "" && strings.TrimSpace(tc.Message.Subject) == "" {
			v.errorf(path+".message", "a test message needs text or a subject")
		}
		if tc.Message.QueueHint != "" {
			queueName(path+".message.queue_hint", tc.Message.QueueHint)
		}
		e := tc.Expect
		if e.Queue == "" && e.Urgency == "" && e.Topic == "" && e.AutoReply == "" {
			v.errorf(path+".expect", "expect at least one of queue, urgency, topic, auto_reply")
		}
		template(path+".expect.auto_reply", e.AutoReply)
		if e.Urgency != "" {
			v.oneOf(path+".expect.urgency", "urgency", e.Urgency, urgencyNames)
		}
		if e.Topic != "" && !hasKey(r.Topics, e.Topic) {
			v.errorf(path+".expect.topic", "unknown topic %s", quote(e.Topic))
		}
	}
}

func (c *Config) validateClause(v *validator, path string, cl Clause) {
	if len(cl.Any) == 0 && len(cl.All) == 0 && len(cl.Regex) == 0 {
		v.errorf(path, "a clause needs any, all or regex (none alone matches nothing)")
	}
	words := func(p string, ws []string) {
		for i, w := range ws {
			if strings.TrimSpace(w) == "" {
				v.errorf(fmt.Sprintf("%s[%d]", p, i), "empty word")
			}
		}
	}
	words(path+".any", cl.Any)
	words(path+".none", cl.None)
	for i, g := range cl.All {
		gp := fmt.Sprintf("%s.all[%d]", path, i)
		if len(g) == 0 {
			v.errorf(gp, "an empty group matches nothing")
		}
		words(gp, g)
	}
	for i, re := range cl.Regex {
		if _, err := regexp.Compile(re); err != nil {
			v.errorf(fmt.Sprintf("%s.regex[%d]", path, i), "invalid regular expression: %v", err)
		}
	}
}

// queueRef reports a setting at path that names a queue which is not a
// valid queue name or not declared under routing.queues.
func (c *Config) queueRef(v *validator, path, q string) bool {
	r := &c.Routing
	switch {
	case !nameRE.MatchString(q):
		v.errorf(path, "%s is not a valid queue name (%s; it becomes part of a NATS subject)", quote(q), nameRule)
	case len(r.Queues) > 0 && q != r.DefaultQueue && !hasKey(r.Queues, q):
		v.errorf(path, "unknown queue %s (declare it under routing.queues)", quote(q))
	default:
		return true
	}
	return false
}

func hasKey[V any](m map[string]V, k string) bool {
	_, ok := m[k]
	return ok
}

// Placeholders an auto-reply template may hold, filled when the reply is
// sent (system's auto-replier does it).
const (
	// PlaceholderAnswerWithin is the first-response target of the
	// conversation's queue and urgency, written for people.
	PlaceholderAnswerWithin = "answer_within"
	// PlaceholderToken is the conversation's token, "[#1234]".
	PlaceholderToken = "token"
)

// placeholderRE finds {name}. Names are read broadly (any case, digits)
// so that a misspelt {Token} is refused rather than sent as it is.
var placeholderRE = regexp.MustCompile(`\{([A-Za-z0-9_]+)\}`)

// PlaceholderLanguages are the template languages {answer_within} can be
// written in.
var PlaceholderLanguages = []string{"en", "zh"}

// CheckTemplate reports a placeholder the auto-replier could not fill in
// a template of language lang. It runs at load, so that a typo stops the
// version instead of reaching a customer.
func CheckTemplate(lang, text string) error {
	for _, m := range placeholderRE.FindAllStringSubmatch(text, -1) {
		switch m[1] {
		case PlaceholderToken:
		case PlaceholderAnswerWithin:
			if !slices.Contains(PlaceholderLanguages, lang) {
				return fmt.Errorf("{%s} can only be written in %s, not in a %s template", m[1], strings.Join(PlaceholderLanguages, ", "), quote(lang))
			}
		default:
			return fmt.Errorf("unknown placeholder %s (known: {%s}, {%s})", m[0], PlaceholderAnswerWithin, PlaceholderToken)
		}
	}
	return nil
}

// FillTemplate replaces every placeholder in text by what fill returns
// for its name; one fill does not know is left as written.
func FillTemplate(text string, fill func(name string) (string, bool)) string {
	return placeholderRE.ReplaceAllStringFunc(text, func(p string) string {
		if s, ok := fill(p[1 : len(p)-1]); ok {
			return s
		}
		return p
	})
}
