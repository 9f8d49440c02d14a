// Package rules compiles the routing section of the configuration into an
// Engine that decides, for each message, its topic, queue, urgency, tags
// and auto-reply, and says in words why.
//
// Every word of every topic, rule and haste list is compiled once per rules
// version into one multi-pattern matcher, so a message is scanned once
// however many rules there are.
package rules

import (
	"cmp"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/expr-lang/expr"
	"github.com/expr-lang/expr/vm"
	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/router"
	"github.com/inroute/inroute/router/textmatch"
)

// Engine is one compiled rules version. It is immutable and safe for
// concurrent use.
type Engine struct {
	version      string
	defaultQueue string
	// queues are the queues a connector's queue hint may name.
	queues      map[string]bool
	channelUrg  map[message.Channel]message.Urgency
	channelNote map[message.Channel]string

	matcher *textmatch.Matcher
	words   []string // pattern id -> the word as the admin wrote it

	topics   []*topic // in precedence order, fallback excluded
	fallback *topic
	haste    []int
	raise    int
	// role marks pattern ids that are haste words or haste negations, so
	// the scan can keep their positions.
	role  []uint8
	rules []*rule
	hours hours

	templates map[string]map[string]string
	// routing is the config the engine was compiled from: the desk reads
	// the queues' targets and the escalation ladder of the version in force.
	routing *config.Routing
	tests   []config.RuleTest
	scratch sync.Pool
}

var _ router.Decider = (*Engine)(nil)

type clause struct {
	any, none []int
	all       [][]int
	regex     []*pattern
}

type topic struct {
	name, queue, autoReply string
	floor                  message.Urgency
	clauses                []clause
}

type rule struct {
	name          string
	channels      []message.Channel
	topics        []string
	text, subject *clause
	from, to      []string
	businessHours *bool
	expr          *vm.Program
	then          config.RuleThen
}

type hours struct {
	loc        *time.Location
	days       [7]bool
	start, end int // minutes after midnight
}

const (
	roleHaste uint8 = 1 << iota
	roleNotHaste
)

// Env is what a rule's expr sees.
type Env struct {
	Channel string `expr:"channel"`
	Text    string `expr:"text"`
	Subject string `expr:"subject"`
	From    string `expr:"from"`
	To      string `expr:"to"`
	Topic   string `expr:"topic"`
	Urgency string `expr:"urgency"`
	Hour    int    `expr:"hour"`
	Weekday string `expr:"weekday"`
	LenText int    `expr:"len_text"`
	// Queue and AutoReply are the decision so far, so that a rule can
	// fill in only what no topic or earlier rule chose.
	Queue     string `expr:"queue"`
	AutoReply string `expr:"auto_reply"`
}

// compiler collects words and positioned errors while compiling.
type compiler struct {
	cfg   *config.Config
	words []string
	ids   map[string]int
	errs  config.Errors
}

func (c *compiler) word(path, w string) int {
	if strings.TrimSpace(textmatch.Normalize(w)) == "" {
		c.errs = append(c.errs, c.cfg.At(path, "%q has no letters or digits left after normalization, so it can never match", w))
		return -1
	}
	if id, ok := c.ids[w]; ok {
		return id
	}
	id := len(c.words)
	c.words = append(c.words, w)
	c.ids[w] = id
	return id
}

func (c *compiler) list(path string, ws []string) []int {
	var out []int
	for i, w := range ws {
		if id := c.word(fmt.Sprintf("%s[%d]", path, i), w); id >= 0 {
			out = append(out, id)
		}
	}
	return out
}

func (c *compiler) clause(path string, cl config.Clause) clause {
	out := clause{any: c.list(path+".any", cl.Any), none: c.list(path+".none", cl.None)}
	for i, g := range cl.All {
		out.all = append(out.all, c.list(fmt.Sprintf("%s.all[%d]", path, i), g))
	}
	for i, src := range cl.Regex {
		re, err := compilePattern(src)
		if err != nil {
			c.errs = append(c.errs, c.cfg.At(fmt.Sprintf("%s.regex[%d]", path, i), "invalid regular expression: %v", err))
			continue
		}
		out.regex = append(out.regex, re)
	}
	return out
}

// Compile builds the engine for cfg's routing section. Problems come back
// as config.Errors with the file, line and column of the setting.
func Compile(cfg *config.Config) (*Engine, error) {
	r := &cfg.Routing
	c := &compiler{cfg: cfg, ids: map[string]int{}}
	e := &Engine{
		version: r.Version, defaultQueue: r.DefaultQueue,
		channelUrg: map[message.Channel]message.Urgency{}, channelNote: map[message.Channel]string{},
		raise: r.Haste.Raise, templates: r.Templates, tests: r.Tests, routing: r,
		queues: map[string]bool{r.DefaultQueue: true},
	}
	// A config without a queues section declares its queues by naming
	// them in topics and rules.
	for q := range r.Queues {
		e.queues[q] = true
	}
	for _, t := range r.Topics {
		if t.Queue != "" {
			e.queues[t.Queue] = true
		}
	}
	for _, rc := range r.Rules {
		if rc.Then.Queue != "" {
			e.queues[rc.Then.Queue] = true
		}
	}
	if e.version == "" {
		sum, _ := json.Marshal(r)
		h := sha256.Sum256(sum)
		e.version = "sha256:" + hex.EncodeToString(h[:6])
	}
	for ch, g := range r.Channels {
		e.channelUrg[message.Channel(ch)] = message.Urgency(g.Urgency)
		e.channelNote[message.Channel(ch)] = g.Note
	}
	for _, name := range r.Precedence {
		t, ok := r.Topics[name]
		if !ok {
			continue // config validation reports it
		}
		tp := &topic{name: name, queue: t.Queue, floor: message.Urgency(t.Floor), autoReply: t.AutoReply}
		if tp.queue == "" {
			tp.queue = r.DefaultQueue
			if _, ok := r.Queues[name]; ok {
				tp.queue = name
			}
		}
		for i, cl := range t.Match {
			tp.clauses = append(tp.clauses, c.clause(fmt.Sprintf("routing.topics.%s.match[%d]", name, i), cl))
		}
		if len(tp.clauses) == 0 {
			e.fallback = tp
		} else {
			e.topics = append(e.topics, tp)
		}
	}
	e.haste = c.list("routing.haste.words", r.Haste.Words)
	hasteNot := c.list("routing.haste.not", r.Haste.Not)
	for i, rc := range r.Rules {
		path := fmt.Sprintf("routing.rules[%d]", i)
		ru := &rule{name: rc.Name, topics: rc.When.Topic, from: lower(rc.When.From), to: lower(rc.When.To),
			businessHours: rc.When.BusinessHours, then: rc.Then}
		for _, ch := range rc.When.Channel {
			ru.channels = append(ru.channels, message.Channel(ch))
		}
		if rc.When.Text != nil {
			cl := c.clause(path+".when.text", *rc.When.Text)
			ru.text = &cl
		}
		if rc.When.Subject != nil {
			cl := c.clause(path+".when.subject", *rc.When.Subject)
			ru.subject = &cl
		}
		if rc.When.Expr != "" {
			prog, err := expr.Compile(rc.When.Expr, expr.Env(Env{}), expr.AsBool())
			if err != nil {
				c.errs = append(c.errs, cfg.At(path+".when.expr", "%v", firstLine(err.Error())))
			}
			ru.expr = prog
		}
		e.rules = append(e.rules, ru)
	}
	h, err := compileHours(r.BusinessHours)
	if err != nil {
		c.errs = append(c.errs, cfg.At("routing.business_hours", "%v", err))
	}
	e.hours = h
	if len(c.errs) > 0 {
		if len(c.errs) == 1 {
			return nil, c.errs[0]
		}
		return nil, c.errs
	}
	m, err := textmatch.Compile(c.words)
	if err != nil {
		return nil, fmt.Errorf("compile rules: %w", err)
	}
	e.matcher, e.words = m, c.words
	e.role = make([]uint8, len(c.words))
	for _, id := range e.haste {
		e.role[id] |= roleHaste
	}
	for _, id := range hasteNot {
		e.role[id] |= roleNotHaste
	}
	e.scratch.New = func() any { return &scratch{seen: make([]uint32, len(c.words))} }
	return e, nil
}

func compileHours(b config.BusinessHours) (hours, error) {
	var h hours
	loc, err := time.LoadLocation(cmp.Or(b.Timezone, "UTC"))
	if err != nil {
		return h, err
	}
	h.loc = loc
	for _, d := range b.Days {
		i := slices.Index([]string{"sun", "mon", "tue", "wed", "thu", "fri", "sat"}, strings.ToLower(d))
		if i >= 0 {
			h.days[i] = true
		}
	}
	for _, f := range []struct {
		s   string
		dst *int
	}{{cmp.Or(b.Start, "09:00"), &h.start}, {cmp.Or(b.End, "18:00"), &h.end}} {
		t, err := time.Parse("15:04", f.s)
		if err != nil {
			return h, fmt.Errorf("time of day %q: %w", f.s, err)
		}
		*f.dst = t.Hour()*60 + t.Minute()
	}
	return h, nil
}

func (h hours) open(t time.Time) bool {
	t = t.In(h.loc)
	m := t.Hour()*60 + t.Minute()
	return h.days[t.Weekday()] && m >= h.start && m < h.end
}

func lower(ss []string) []string {
	out := make([]string, len(ss))
	for i, s := range ss {
		out[i] = strings.ToLower(strings.TrimSpace(s))
	}
	return out
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(s, "\n")
	return s
}

// Routing is the routing config of this version (read only).
func (e *Engine) Routing() *config.Routing { return e.routing }

// Version is the rules version every decision records.
func (e *Engine) Version() string { return e.version }

// Template returns an auto-reply template's text in lang, falling back to
// English, then to any language.
func (e *Engine) Template(name, lang string) string {
	text, _ := e.TemplateIn(name, lang)
	return text
}

// TemplateIn is Template that also says which language the text is in,
// for the words filled into it.
func (e *Engine) TemplateIn(name, lang string) (text, in string) {
	t := e.templates[name]
	if s, ok := t[lang]; ok {
		return s, lang
	}
	if s, ok := t["en"]; ok {
		return s, "en"
	}
	for _, k := range slices.Sorted(maps.Keys(t)) {
		return t[k], k
	}
	return "", ""
}
