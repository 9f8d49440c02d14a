package rules

import "github.com/prometheus/client_golang/prometheus"

var (
	descLoaded  = prometheus.NewDesc("inroute_rules_reloads_total", "Routing rules versions loaded since start (the first included).", nil, nil)
	descRefused = prometheus.NewDesc("inroute_rules_refused_total", "Routing rules versions refused (invalid, or their tests failed).", nil, nil)
	descInfo    = prometheus.NewDesc("inroute_rules_info", "The routing rules version in force (value 1).", []string{"version"}, nil)
	descError   = prometheus.NewDesc("inroute_rules_last_refusal_timestamp_seconds", "When a rules version was last refused (0: never).", nil, nil)
)

// Live is a Prometheus collector of its own status, so the metrics never
// disagree with GET /v1/admin/routing.
var _ prometheus.Collector = (*Live)(nil)

// Describe implements prometheus.Collector.
func (l *Live) Describe(ch chan<- *prometheus.Desc) {
	ch <- descLoaded
	ch <- descRefused
	ch <- descInfo
	ch <- descError
}

// Collect implements prometheus.Collector.
func (l *Live) Collect(ch chan<- prometheus.Metric) {
	st := l.Status()
	ch <- prometheus.MustNewConstMetric(descLoaded, prometheus.CounterValue, float64(st.Reloads+1))
	ch <- prometheus.MustNewConstMetric(descRefused, prometheus.CounterValue, float64(st.Refused))
	ch <- prometheus.MustNewConstMetric(descInfo, prometheus.GaugeValue, 1, st.Version)
	ts := 0.0
	if st.LastErrorAt != nil {
		ts = float64(st.LastErrorAt.UnixNano()) / 1e9
	}
	ch <- prometheus.MustNewConstMetric(descError, prometheus.GaugeValue, ts)
}
