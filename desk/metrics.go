package desk

import "github.com/prometheus/client_golang/prometheus"

// Metrics are the desk's Prometheus metrics. Queue depth and age are
// collected from the store at scrape time (see Board).
type Metrics struct {
	Claims        prometheus.Counter
	LeaseExpiries prometheus.Counter
	SLABreaches   *prometheus.CounterVec // queue
	Escalations   *prometheus.CounterVec // queue
	Replies       *prometheus.CounterVec // channel
	Deliveries    *prometheus.CounterVec // channel, status
}

// NewMetrics makes unregistered metrics.
func NewMetrics() *Metrics {
	return &Metrics{
		Claims: prometheus.NewCounter(prometheus.CounterOpts{Name: "inroute_claims_total",
			Help: "Conversations claimed by agents."}),
		LeaseExpiries: prometheus.NewCounter(prometheus.CounterOpts{Name: "inroute_lease_expiries_total",
			Help: "Claims that lapsed without a reply and went back to their queue."}),
		SLABreaches: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "inroute_sla_breaches_total",
			Help: "Response targets missed, by queue."}, []string{"queue"}),
		Escalations: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "inroute_sla_escalations_total",
			Help: "Escalation steps taken after missed targets, by queue."}, []string{"queue"}),
		Replies: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "inroute_replies_total",
			Help: "Agent replies sent, by channel."}, []string{"channel"}),
		Deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "inroute_reply_deliveries_total",
			Help: "Delivery reports on replies, by channel and status (sent, delivered, failed)."}, []string{"channel", "status"}),
	}
}

// Collectors lists the metrics for registration.
func (m *Metrics) Collectors() []prometheus.Collector {
	return []prometheus.Collector{m.Claims, m.LeaseExpiries, m.SLABreaches, m.Escalations, m.Replies, m.Deliveries}
}
