package router

import (
	"github.com/inroute/inroute/message"
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	in *prometheus.CounterVec
	// inBy holds in's counter of each channel, resolved once: the label
	// lookup would otherwise run for every routed message.
	inBy    map[message.Channel]prometheus.Counter
	latency prometheus.Histogram
}

func (m *metrics) countIn(ch message.Channel) {
	if c, ok := m.inBy[ch]; ok {
		c.Inc()
	}
}

func newMetrics() metrics {
	m := metrics{
		in: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "inroute_messages_in_total",
			Help: "Customer messages routed, by channel (redeliveries not counted)."}, []string{"channel"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "inroute_routing_latency_seconds",
			Help:    "Time from a connector's publish to the routed message's hand-off to its queue or agent.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
		inBy: map[message.Channel]prometheus.Counter{},
	}
	for _, ch := range message.Channels {
		m.inBy[ch] = m.in.WithLabelValues(string(ch))
	}
	return m
}

// Collectors are the stage's Prometheus metrics, for registration.
func (s *Stage) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.in, s.metrics.latency}
}
