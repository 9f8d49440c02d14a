package router

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	in      *prometheus.CounterVec
	latency prometheus.Histogram
}

func newMetrics() metrics {
	return metrics{
		in: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "inroute_messages_in_total",
			Help: "Customer messages routed, by channel (redeliveries not counted)."}, []string{"channel"}),
		latency: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "inroute_routing_latency_seconds",
			Help:    "Time from a connector's publish to the routed message's hand-off to its queue or agent.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30}}),
	}
}

// Collectors are the stage's Prometheus metrics, for registration.
func (s *Stage) Collectors() []prometheus.Collector {
	return []prometheus.Collector{s.metrics.in, s.metrics.latency}
}
