// Package desk is the agents' side of inroute: who may take what, the
// unified pull across queues, leases, the actions on a conversation
// (reply, note, transfer, urgency, release, resolve, reopen), the queue
// board, and the monitors that return lapsed claims and escalate missed
// response targets. The store decides every claim; the QUEUES stream is
// kept as a mirror of what waits, for outside consumers and to wake
// long-polls.
package desk

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/inroute/inroute/config"
	"github.com/inroute/inroute/message"
	"github.com/inroute/inroute/outbox"
	"github.com/inroute/inroute/store"
	"go.uber.org/zap"
)

// Sentinel errors the API turns into status codes.
var (
	ErrForbidden = errors.New("forbidden")
	ErrInvalid   = errors.New("invalid request")
)

// Agent is one configured agent.
type Agent struct {
	Name     string
	Admin    bool
	Queues   []string // nil: every queue
	Capacity int
	Phone    string
}

// Takes reports whether the agent may take work from queue q.
func (a *Agent) Takes(q string) bool {
	return a.Admin || a.Queues == nil || slices.Contains(a.Queues, q)
}

// Options configures a Desk.
type Options struct {
	Store store.Store
	// Mirror keeps the QUEUES stream in step; nil leaves it alone.
	Mirror Mirror
	Outbox *outbox.Outbox
	// Blobs stores reply attachments.
	Blobs BlobPutter
	// MaxAttachment bounds one reply attachment.
	MaxAttachment int64
	Agents        []config.Agent
	Desk          config.Desk
	// Routing gives queue names and descriptions, SLA targets and the
	// escalation ladder.
	Routing func() *config.Routing
	Log     *zap.Logger
	Now     func() time.Time
	Metrics *Metrics
	// Notify publishes SLA events; nil publishes none.
	Notify func(ctx context.Context, kind string, ev SLAEvent) error
}

// Desk serves agents.
type Desk struct {
	o      Options
	agents map[string]*Agent
	log    *zap.Logger

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when work may have arrived

	stopOnce sync.Once
	stopping chan struct{} // closed when the server shuts down
}

// Stop ends every long-poll at once (they answer "nothing waits"), so a
// graceful shutdown does not wait out their waits.
func (d *Desk) Stop() { d.stopOnce.Do(func() { close(d.stopping) }) }

// New builds a Desk.
func New(o Options) *Desk {
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.Log == nil {
		o.Log = zap.NewNop()
	}
	if o.Metrics == nil {
		o.Metrics = NewMetrics()
	}
	d := &Desk{o: o, agents: map[string]*Agent{}, log: o.Log, changed: make(chan struct{}), stopping: make(chan struct{})}
	for _, a := range o.Agents {
		ag := &Agent{Name: a.Name, Admin: a.Role == config.RoleAdmin, Capacity: a.Capacity, Phone: a.Phone}
		if len(a.Queues) > 0 {
			ag.Queues = slices.Clone(a.Queues)
		}
		if ag.Capacity <= 0 {
			ag.Capacity = 5
		}
		d.agents[a.Name] = ag
	}
	return d
}

// Agent returns the configured agent called name.
func (d *Desk) Agent(name string) (*Agent, bool) {
	a, ok := d.agents[name]
	return a, ok
}

// Lease is how long a claim holds.
func (d *Desk) Lease() time.Duration { return d.o.Desk.Lease.D() }

// Wake tells long-polls that work may have arrived.
func (d *Desk) Wake() {
	d.mu.Lock()
	close(d.changed)
	d.changed = make(chan struct{})
	d.mu.Unlock()
}

func (d *Desk) waitChange() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.changed
}

// QueueNames lists the configured queues, sorted.
func (d *Desk) QueueNames() []string {
	var out []string
	if r := d.routing(); r != nil {
		for q := range r.Queues {
			out = append(out, q)
		}
		if r.DefaultQueue != "" && !slices.Contains(out, r.DefaultQueue) {
			out = append(out, r.DefaultQueue)
		}
	}
	slices.Sort(out)
	return out
}

// Deadline is store.Options.Deadline for the routing config's targets,
// counted on cal (business hours, or around the clock).
func Deadline(r *config.Routing, add func(from time.Time, d time.Duration) time.Time) func(store.SLAKind, string, message.Urgency, time.Time) *time.Time {
	return func(kind store.SLAKind, queue string, u message.Urgency, from time.Time) *time.Time {
		q, ok := r.Queues[queue]
		if !ok {
			return nil
		}
		sla, ok := q.SLA[string(u)]
		if !ok {
			return nil
		}
		d := sla.FirstResponse.D()
		if kind == store.NextResponse {
			d = sla.NextResponse.D()
		}
		if d <= 0 {
			return nil
		}
		at := add(from, d).UTC()
		return &at
	}
}

// routing is the routing config in force, or nil.
func (d *Desk) routing() *config.Routing {
	if d.o.Routing == nil {
		return nil
	}
	return d.o.Routing()
}

// Phone is the configured phone of an agent ("" if none), for call-backs.
func (d *Desk) Phone(agent string) string {
	if a, ok := d.agents[agent]; ok {
		return a.Phone
	}
	return ""
}
