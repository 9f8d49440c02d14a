package desk

import (
	"context"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/store"
	"github.com/prometheus/client_golang/prometheus"
)

// Board is the queue view.
type Board struct {
	Queues []QueueView `json:"queues"`
	AtRisk []RiskView  `json:"at_risk"`
	Agents []AgentView `json:"agents"`
	At     time.Time   `json:"at"`
}

// QueueView is one queue's depth and age.
type QueueView struct {
	Name          string                  `json:"name"`
	Description   string                  `json:"description,omitempty"`
	Waiting       int                     `json:"waiting"`
	ByUrgency     map[string]UrgencyDepth `json:"by_urgency"`
	OldestSeconds int64                   `json:"oldest_seconds"`
	AtRisk        int                     `json:"at_risk"`
	Breached      int                     `json:"breached"`
}

// UrgencyDepth is one urgency level of a queue.
type UrgencyDepth struct {
	Waiting       int   `json:"waiting"`
	OldestSeconds int64 `json:"oldest_seconds"`
}

// RiskView is an open conversation whose target is missed or near.
type RiskView struct {
	ID       int64           `json:"id"`
	Queue    string          `json:"queue"`
	Urgency  message.Urgency `json:"urgency"`
	Status   store.Status    `json:"status"`
	Assignee string          `json:"assignee,omitempty"`
	Due      time.Time       `json:"due"`
	Breached bool            `json:"breached"`
}

// AgentView is an agent's presence and load.
type AgentView struct {
	Name     string     `json:"name"`
	Role     string     `json:"role"`
	Online   bool       `json:"online"`
	Open     int        `json:"open"`
	Capacity int        `json:"capacity"`
	LastSeen *time.Time `json:"last_seen,omitempty"`
}

// riskHorizon: a target due within this much of now counts as at risk.
const riskHorizon = 15 * time.Minute

// Board builds the queue view.
func (d *Desk) Board(ctx context.Context) (*Board, error) {
	now := d.o.Now()
	stats, err := d.o.Store.QueueStats(ctx)
	if err != nil {
		return nil, err
	}
	b := &Board{At: now.UTC(), AtRisk: []RiskView{}, Agents: []AgentView{}}
	byName := map[string]*QueueView{}
	for _, q := range d.QueueNames() {
		qv := QueueView{Name: q, ByUrgency: map[string]UrgencyDepth{}}
		if r := d.routing(); r != nil {
			qv.Description = r.Queues[q].Description
		}
		b.Queues = append(b.Queues, qv)
	}
	for i := range b.Queues {
		byName[b.Queues[i].Name] = &b.Queues[i]
	}
	for _, s := range stats {
		qv, ok := byName[s.Queue]
		if !ok { // a queue that left the config still shows what waits in it
			b.Queues = append(b.Queues, QueueView{Name: s.Queue, ByUrgency: map[string]UrgencyDepth{}})
			byName = map[string]*QueueView{}
			for i := range b.Queues {
				byName[b.Queues[i].Name] = &b.Queues[i]
			}
			qv = byName[s.Queue]
		}
		age := since(now, s.Oldest)
		qv.ByUrgency[string(s.Urgency)] = UrgencyDepth{Waiting: s.Waiting, OldestSeconds: age}
		qv.Waiting += s.Waiting
		qv.OldestSeconds = max(qv.OldestSeconds, age)
	}
	risky, err := d.o.Store.Due(ctx, now.Add(riskHorizon), 200, -1)
	if err != nil {
		return nil, err
	}
	for _, c := range risky {
		r := RiskView{ID: c.ID, Queue: c.Queue, Urgency: c.Urgency, Status: c.Status, Assignee: c.Assignee,
			Due: c.Due().UTC(), Breached: !c.Due().After(now)}
		b.AtRisk = append(b.AtRisk, r)
		if qv, ok := byName[c.Queue]; ok {
			qv.AtRisk++
			if r.Breached {
				qv.Breached++
			}
		}
	}
	loads, err := d.o.Store.AgentLoads(ctx)
	if err != nil {
		return nil, err
	}
	seen := map[string]store.AgentLoad{}
	for _, l := range loads {
		seen[l.Name] = l
	}
	names := make([]string, 0, len(d.agents))
	for n := range d.agents {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		a, l := d.agents[n], seen[n]
		av := AgentView{Name: n, Role: "agent", Open: l.Open, Capacity: a.Capacity}
		if a.Admin {
			av.Role = "admin"
		}
		if !l.LastSeen.IsZero() {
			ls := l.LastSeen.UTC()
			av.LastSeen = &ls
			av.Online = now.Sub(l.LastSeen) <= d.o.Desk.OnlineWindow.D()
		}
		b.Agents = append(b.Agents, av)
	}
	return b, nil
}

// Search finds a customer's conversations by an identity value (e-mail,
// phone, user id) or a contact id.
func (d *Desk) Search(ctx context.Context, q string) ([]store.Contact, []store.Conversation, error) {
	var contacts []store.Contact
	if id, err := strconv.ParseInt(q, 10, 64); err == nil && id > 0 {
		if c, err := d.o.Store.Contact(ctx, id); err == nil {
			contacts = append(contacts, *c)
		}
	}
	found, err := d.o.Store.FindContacts(ctx, q)
	if err != nil {
		return nil, nil, err
	}
	contacts = append(contacts, found...)
	convs := []store.Conversation{}
	done := map[int64]bool{}
	for _, c := range contacts {
		list, err := d.o.Store.ContactConversations(ctx, c.ID)
		if err != nil {
			return nil, nil, err
		}
		for _, cv := range list {
			if !done[cv.ID] {
				done[cv.ID] = true
				convs = append(convs, cv)
			}
		}
	}
	slices.SortFunc(convs, func(a, b store.Conversation) int { return b.CreatedAt.Compare(a.CreatedAt) })
	if contacts == nil {
		contacts = []store.Contact{}
	}
	return contacts, convs, nil
}

// QueueCollector exports queue depth and oldest age per queue and urgency,
// read from the store at scrape time (at most every 2s).
type QueueCollector struct {
	d     *Desk
	depth *prometheus.Desc
	age   *prometheus.Desc
	mu    sync.Mutex
	last  time.Time
	cache []store.QueueStat
}

// NewQueueCollector makes the collector.
func (d *Desk) NewQueueCollector() *QueueCollector {
	return &QueueCollector{d: d,
		depth: prometheus.NewDesc("inroute_queue_depth", "Conversations waiting, by queue and urgency.", []string{"queue", "urgency"}, nil),
		age: prometheus.NewDesc("inroute_queue_oldest_seconds", "Age of the oldest waiting conversation, by queue and urgency.",
			[]string{"queue", "urgency"}, nil)}
}

// Describe implements prometheus.Collector.
func (q *QueueCollector) Describe(ch chan<- *prometheus.Desc) { ch <- q.depth; ch <- q.age }

// Collect implements prometheus.Collector.
func (q *QueueCollector) Collect(ch chan<- prometheus.Metric) {
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.d.o.Now()
	if now.Sub(q.last) > 2*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		stats, err := q.d.o.Store.QueueStats(ctx)
		cancel()
		if err == nil {
			q.cache, q.last = stats, now
		}
	}
	seen := map[[2]string]bool{}
	for _, s := range q.cache {
		seen[[2]string{s.Queue, string(s.Urgency)}] = true
		ch <- prometheus.MustNewConstMetric(q.depth, prometheus.GaugeValue, float64(s.Waiting), s.Queue, string(s.Urgency))
		ch <- prometheus.MustNewConstMetric(q.age, prometheus.GaugeValue, float64(since(now, s.Oldest)), s.Queue, string(s.Urgency))
	}
	// Empty queues report 0, so a dashboard sees a queue drain to zero
	// rather than vanish.
	for _, name := range q.d.QueueNames() {
		for _, u := range message.Urgencies {
			if !seen[[2]string{name, string(u)}] {
				ch <- prometheus.MustNewConstMetric(q.depth, prometheus.GaugeValue, 0, name, string(u))
				ch <- prometheus.MustNewConstMetric(q.age, prometheus.GaugeValue, 0, name, string(u))
			}
		}
	}
}
