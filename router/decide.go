// Package router is the routing stage: it takes normalized messages off the
// INBOUND stream, decides queue, topic and urgency, and enqueues the work.
package router

import "github.com/inroute/inroute/message"

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
