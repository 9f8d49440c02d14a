package rules

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/expr-lang/expr"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/router"
	"github.com/inroute/inroute/router/textmatch"
)

// scratch is one decision's working memory, pooled so that deciding does
// not allocate per pattern: a pattern was seen in this decision when its
// stamp equals gen.
type scratch struct {
	gen        uint32
	seen       []uint32 // subject or text
	subj, text []uint32
	hits       []textmatch.Hit
	haste      []textmatch.Hit // haste words found, in one field
	not        []textmatch.Hit // haste negations found, in that field
	hasteIDs   []int           // haste words that count
}

func (s *scratch) next() {
	s.gen++
	if s.gen == 0 { // wrapped: old stamps could collide
		clear(s.seen)
		clear(s.subj)
		clear(s.text)
		s.gen = 1
	}
}

// view answers "was this word seen" for one field or both.
type view struct {
	s     *scratch
	marks []uint32
	norm  []string // the normalized field(s), for regular expressions
}

func (v view) has(id int) bool { return v.marks[id] == v.s.gen }

// Decide implements router.Decider.
func (e *Engine) Decide(m *message.Message) router.Decision {
	s := e.scratch.Get().(*scratch)
	defer e.scratch.Put(s)
	if s.subj == nil {
		s.subj, s.text = make([]uint32, len(e.words)), make([]uint32, len(e.words))
	}
	s.next()
	s.hasteIDs = s.hasteIDs[:0]
	subj, text := textmatch.Normalize(m.Subject), textmatch.Normalize(m.Text)
	for _, f := range []struct {
		norm  string
		marks []uint32
	}{{subj, s.subj}, {text, s.text}} {
		s.hits = e.matcher.Find(f.norm, s.hits[:0])
		s.haste, s.not = s.haste[:0], s.not[:0]
		for _, h := range s.hits {
			f.marks[h.Pattern] = s.gen
			s.seen[h.Pattern] = s.gen
			if r := e.role[h.Pattern]; r&roleHaste != 0 {
				s.haste = append(s.haste, h)
			} else if r&roleNotHaste != 0 {
				s.not = append(s.not, h)
			}
		}
		// A haste word inside a negation ("急" in "不急") does not count.
	next:
		for _, h := range s.haste {
			for _, n := range s.not {
				if n.Start <= h.Start && h.End <= n.End {
					continue next
				}
			}
			if !slices.Contains(s.hasteIDs, h.Pattern) {
				s.hasteIDs = append(s.hasteIDs, h.Pattern)
			}
		}
	}
	both := view{s, s.seen, []string{subj, text}}

	d := router.Decision{RulesVersion: e.version}
	u, ok := e.channelUrg[m.Channel]
	if !ok || !u.Valid() {
		u = message.Normal
	}
	line := fmt.Sprintf("channel guidance: %s messages start at %s", m.Channel, u)
	if note := e.channelNote[m.Channel]; note != "" {
		line += " (" + note + ")"
	}
	d.Explain = append(d.Explain, line)

	var tp *topic
	var words []string
	for _, t := range e.topics {
		for _, cl := range t.clauses {
			if w, ok := e.eval(cl, both); ok {
				tp, words = t, w
				break
			}
		}
		if tp != nil {
			break
		}
	}
	matched := tp != nil
	switch {
	case matched:
		d.Explain = append(d.Explain, fmt.Sprintf("topic %s: the message says %s; queue %s", tp.name, quoteAll(words), tp.queue))
	case e.fallback != nil:
		tp = e.fallback
	default:
		tp = &topic{name: "general", queue: e.defaultQueue}
	}
	d.Topic, d.Queue, d.AutoReply = tp.name, tp.queue, tp.autoReply
	if !matched {
		d.Explain = append(d.Explain, e.unmatched(m, &d, tp == e.fallback))
	}
	if tp.floor.Valid() && tp.floor.Rank() > u.Rank() {
		d.Explain = append(d.Explain, fmt.Sprintf("topic %s is at least %s: urgency %s → %s", tp.name, tp.floor, u, tp.floor))
		u = tp.floor
	}
	var haste []string
	for _, id := range s.hasteIDs {
		haste = append(haste, e.words[id])
	}
	if len(haste) > 0 && e.raise > 0 {
		if nu := u.Raise(e.raise); nu != u {
			d.Explain = append(d.Explain, fmt.Sprintf("haste words %s: urgency %s → %s", quoteAll(haste), u, nu))
			u = nu
		} else {
			d.Explain = append(d.Explain, fmt.Sprintf("haste words %s: already %s", quoteAll(haste), u))
		}
	}
	for _, r := range e.rules {
		why, ok := e.ruleMatches(r, m, &d, u, view{s, s.subj, []string{subj}}, view{s, s.text, []string{text}})
		if !ok {
			continue
		}
		var did []string
		t := r.then
		if t.Queue != "" && t.Queue != d.Queue {
			did = append(did, "queue "+d.Queue+" → "+t.Queue)
			d.Queue = t.Queue
		}
		nu := u
		if t.Urgency != "" {
			nu = message.Urgency(t.Urgency)
		}
		if t.Raise != 0 {
			nu = nu.Raise(t.Raise)
		}
		if t.Floor != "" {
			nu = nu.Max(message.Urgency(t.Floor))
		}
		if nu != u {
			did = append(did, fmt.Sprintf("urgency %s → %s", u, nu))
			u = nu
		}
		for _, tag := range t.Tags {
			if !slices.Contains(d.Tags, tag) {
				d.Tags = append(d.Tags, tag)
			}
		}
		if len(t.Tags) > 0 {
			did = append(did, "tags "+strings.Join(t.Tags, ", "))
		}
		if t.AutoReply != "" {
			d.AutoReply = t.AutoReply
			did = append(did, "auto-reply "+t.AutoReply)
		}
		if len(did) == 0 {
			did = append(did, "no change")
		}
		line := fmt.Sprintf("rule %s (%s): %s", r.name, strings.Join(why, "; "), strings.Join(did, "; "))
		if t.Stop {
			line += "; stop"
		}
		d.Explain = append(d.Explain, line)
		if t.Stop {
			break
		}
	}
	d.Urgency = u
	return d
}

// unmatched sets the queue of a message no topic claimed, and explains it.
// The connector's hint applies only here: what a message says outweighs
// where it was sent (a hacked-account mail to refunds@ is security's).
func (e *Engine) unmatched(m *message.Message, d *router.Decision, fallback bool) string {
	line := "no topic matched: "
	if fallback {
		line += "topic " + d.Topic + ", "
	}
	hint := strings.TrimSpace(m.Extra[message.ExtraQueueHint])
	if hint == "" {
		return line + "queue " + d.Queue
	}
	var who string
	switch {
	case m.To.Address == "":
		who = "the " + string(m.Channel) + " connector"
	case m.Channel == message.Email:
		who = "mailbox " + m.To.Address
	default:
		who = string(m.Channel) + " address " + m.To.Address
	}
	if !e.queues[hint] {
		// A mailbox whose queue left the rules must not strand its mail
		// in a queue nobody works.
		return fmt.Sprintf("%s%s hints queue %q, which is not configured; queue %s", line, who, hint, d.Queue)
	}
	d.Queue = hint
	return fmt.Sprintf("%s%s hints queue %s", line, who, hint)
}

// eval reports whether the clause holds and which words made it.
func (e *Engine) eval(cl clause, v view) ([]string, bool) {
	var words []string
	if len(cl.any) > 0 {
		found := false
		for _, id := range cl.any {
			if v.has(id) {
				words, found = append(words, e.words[id]), true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	for _, g := range cl.all {
		found := false
		for _, id := range g {
			if v.has(id) {
				words, found = append(words, e.words[id]), true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	for _, id := range cl.none {
		if v.has(id) {
			return nil, false
		}
	}
	if len(cl.regex) > 0 {
		found := false
		for _, p := range cl.regex {
			if w, ok := p.find(v.norm); ok {
				words, found = append(words, w), true
				break
			}
		}
		if !found {
			return nil, false
		}
	}
	return words, true
}

func (e *Engine) ruleMatches(r *rule, m *message.Message, d *router.Decision, u message.Urgency, subj, text view) ([]string, bool) {
	topic := d.Topic
	var why []string
	if len(r.channels) > 0 {
		if !slices.Contains(r.channels, m.Channel) {
			return nil, false
		}
		why = append(why, "channel "+string(m.Channel))
	}
	if len(r.topics) > 0 {
		if !slices.Contains(r.topics, topic) {
			return nil, false
		}
		why = append(why, "topic "+topic)
	}
	if r.text != nil {
		w, ok := e.eval(*r.text, text)
		if !ok {
			return nil, false
		}
		why = append(why, "text says "+quoteAll(w))
	}
	if r.subject != nil {
		w, ok := e.eval(*r.subject, subj)
		if !ok {
			return nil, false
		}
		why = append(why, "subject says "+quoteAll(w))
	}
	if len(r.from) > 0 {
		if !addressMatches(r.from, m.From.Address) {
			return nil, false
		}
		why = append(why, "from "+m.From.Address)
	}
	if len(r.to) > 0 {
		if !addressMatches(r.to, m.To.Address) {
			return nil, false
		}
		why = append(why, "to "+m.To.Address)
	}
	if r.businessHours != nil {
		open := e.hours.open(m.ReceivedAt)
		if open != *r.businessHours {
			return nil, false
		}
		if open {
			why = append(why, "within business hours")
		} else {
			why = append(why, "outside business hours")
		}
	}
	if r.expr != nil {
		t := m.ReceivedAt.In(e.hours.loc)
		out, err := expr.Run(r.expr, Env{
			Channel: string(m.Channel), Text: m.Text, Subject: m.Subject, From: m.From.Address, To: m.To.Address,
			Topic: topic, Urgency: string(u), Hour: t.Hour(), Weekday: strings.ToLower(t.Weekday().String()[:3]),
			LenText: len([]rune(m.Text)), Queue: d.Queue, AutoReply: d.AutoReply,
		})
		if ok, _ := out.(bool); err != nil || !ok {
			return nil, false
		}
		why = append(why, "expr holds")
	}
	return why, true
}

// addressMatches: exact (case-insensitive), or a suffix when the pattern
// starts with "@" (a domain) or "*".
func addressMatches(patterns []string, addr string) bool {
	addr = strings.ToLower(strings.TrimSpace(addr))
	for _, p := range patterns {
		switch {
		case strings.HasPrefix(p, "*"):
			if strings.HasSuffix(addr, p[1:]) {
				return true
			}
		case strings.HasPrefix(p, "@"):
			if strings.HasSuffix(addr, p) {
				return true
			}
		case p == addr:
			return true
		}
	}
	return false
}

func quoteAll(ws []string) string {
	q := make([]string, len(ws))
	for i, w := range ws {
		q[i] = fmt.Sprintf("%q", w)
	}
	return strings.Join(q, " + ")
}

// TestResult is the outcome of one rule test.
type TestResult struct {
	Index int
	Name  string
	Got   router.Decision
	Want  config.TestExpectation
	// Problem is empty when the test passed.
	Problem string
}

// TestMessage builds the message a rule test describes.
func TestMessage(tm config.TestMessage) *message.Message {
	from := tm.From
	if from == "" {
		from = "rules-test"
	}
	m := &message.Message{V: message.Version, ID: message.NewID(), Channel: message.Channel(tm.Channel),
		ChannelMessageID: "rules-test", From: message.Party{Address: from}, To: message.Party{Address: tm.To},
		Subject: tm.Subject, Text: tm.Text}
	if tm.QueueHint != "" {
		m.Extra = map[string]string{message.ExtraQueueHint: tm.QueueHint}
	}
	return m
}

// RunTests runs the rule tests of this version.
func (e *Engine) RunTests() []TestResult {
	out := make([]TestResult, len(e.tests))
	for i, tc := range e.tests {
		d := e.Decide(TestMessage(tc.Message))
		var bad []string
		if w := tc.Expect.Queue; w != "" && w != d.Queue {
			bad = append(bad, fmt.Sprintf("queue %s, want %s", d.Queue, w))
		}
		if w := tc.Expect.Urgency; w != "" && w != string(d.Urgency) {
			bad = append(bad, fmt.Sprintf("urgency %s, want %s", d.Urgency, w))
		}
		if w := tc.Expect.Topic; w != "" && w != d.Topic {
			bad = append(bad, fmt.Sprintf("topic %s, want %s", d.Topic, w))
		}
		if w := tc.Expect.AutoReply; w != "" && w != d.AutoReply {
			bad = append(bad, fmt.Sprintf("auto-reply %s, want %s", cmp.Or(d.AutoReply, "none"), w))
		}
		out[i] = TestResult{Index: i, Name: tc.Name, Got: d, Want: tc.Expect, Problem: strings.Join(bad, "; ")}
	}
	return out
}

// Check compiles cfg's rules and runs their tests: nil means this version
// may go live. Failures are positioned at the failing test.
func Check(cfg *config.Config) (*Engine, error) {
	e, err := Compile(cfg)
	if err != nil {
		return nil, err
	}
	var errs config.Errors
	for _, r := range e.RunTests() {
		if r.Problem != "" {
			name := r.Name
			if name == "" {
				name = fmt.Sprintf("test %d", r.Index+1)
			}
			errs = append(errs, cfg.At(fmt.Sprintf("routing.tests[%d]", r.Index), "%s: %s", name, r.Problem))
		}
	}
	switch len(errs) {
	case 0:
		return e, nil
	case 1:
		return nil, errs[0]
	default:
		return nil, errs
	}
}
