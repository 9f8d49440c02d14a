// Package router is the routing stage: it takes normalized messages off the
// INBOUND stream, decides queue, topic and urgency, and enqueues the work.
package router

import (
	"fmt"

	"github.com/inroute/inroute/message"
)

// Decision is where a message goes and why.
type Decision struct {
	Queue        string
	Urgency      message.Urgency
	Topic        string
	Tags         []string
	AutoReply    string // template name, if the decision asks for one
	Explain      []string
	RulesVersion string
}

// Decider makes routing decisions. It must be safe for concurrent use.
type Decider interface {
	Decide(m *message.Message) Decision
}

// Guidance is the channel guidance alone: every message goes to one queue at
// its channel's default urgency. The rules engine builds on top of it.
type Guidance struct {
	Queue    string
	Urgency  map[message.Channel]message.Urgency
	Notes    map[message.Channel]string
	Version  string
	Fallback message.Urgency
}

var _ Decider = (*Guidance)(nil)

// Decide implements Decider.
func (g *Guidance) Decide(m *message.Message) Decision {
	u, ok := g.Urgency[m.Channel]
	explain := fmt.Sprintf("channel guidance: %s messages start at %s", m.Channel, u)
	if !ok {
		u = g.Fallback
		if !u.Valid() {
			u = message.Normal
		}
		explain = fmt.Sprintf("channel %s has no guidance; default urgency %s", m.Channel, u)
	}
	if note := g.Notes[m.Channel]; note != "" {
		explain += " (" + note + ")"
	}
	return Decision{
		Queue:        g.Queue,
		Urgency:      u,
		Topic:        "general",
		Explain:      []string{"no routing rules yet: queue " + g.Queue, explain},
		RulesVersion: g.Version,
	}
}
