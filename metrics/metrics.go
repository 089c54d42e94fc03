// Package metrics is chatd's Prometheus instrumentation: a registry of its
// own (no package-level state, nothing on prometheus.DefaultRegisterer),
// the timings that only exist where an operation is timed (channel layer
// publishes, store calls, commit batch sizes), and the admin HTTP handler
// that serves /metrics beside net/http/pprof.
//
// Counting stays cheap by design. The hub, the node and the web server
// keep their own counters as plain atomics; cmd/chatd registers a
// collector that copies them when Prometheus scrapes, so the message path
// never calls into this package per frame or per recipient. What this
// package times directly is per message at most (a layer publish) or per
// batch (a store commit): a clock read and a histogram observation each.
//
// A nil *Metrics is valid and means metrics are off: Layer and Store
// return what they are given, Register does nothing, and the admin handler
// serves pprof alone.
package metrics

import (
	"log/slog"
	"net/http"
	"runtime"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every chatd metric name.
const Namespace = "chatd"

// Metrics is one chatd process's registry and its directly timed metrics.
// It is safe for concurrent use.
type Metrics struct {
	reg *prometheus.Registry
	log *slog.Logger

	publish       prometheus.Histogram
	publishErrors prometheus.Counter
	storeSeconds  *prometheus.HistogramVec
	storeErrors   *prometheus.CounterVec
	batchSize     prometheus.Histogram
}

// New returns a registry holding the Go runtime and process collectors,
// chatd_build_info for version, and chatd's timings. log receives errors
// met while serving /metrics (nil: discarded).
func New(version string, log *slog.Logger) *Metrics {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	m := &Metrics{reg: prometheus.NewRegistry(), log: log}
	m.publish = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "layer_publish_seconds",
		Help:    "Time to hand one message to the channel layer: a Redis PUBLISH round trip, or with the memory layer the local fan-out itself.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	})
	m.publishErrors = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "layer_publish_errors_total",
		Help: "Publishes the channel layer refused or failed (senders got an unavailable error, or a stored message waits for the store-based recovery).",
	})
	m.storeSeconds = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "store_seconds",
		Help:    "Time of store calls by operation: append (one group commit), messages (history reads), room_seq, session (the session lookup of a request), revocations (the access poll), prune (retention).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
	}, []string{"op"})
	m.storeErrors = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "store_errors_total",
		Help: "Store calls that failed for the store's own reasons (unreachable, locked, timed out), by operation; a caller's bad input or a missing row does not count.",
	}, []string{"op"})
	m.batchSize = prometheus.NewHistogram(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "commit_batch_messages",
		Help:    "Messages per group commit (one store transaction).",
		Buckets: prometheus.ExponentialBuckets(1, 2, 10), // 1 .. 512, the largest batch
	})
	for _, op := range storeOps {
		m.storeSeconds.WithLabelValues(op)
		m.storeErrors.WithLabelValues(op)
	}
	m.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "build_info",
			Help:        "Always 1; the labels say which chatd is running.",
			ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()},
		}, func() float64 { return 1 }),
		m.publish, m.publishErrors, m.storeSeconds, m.storeErrors, m.batchSize,
	)
	return m
}

// Register adds collectors to the registry. With a nil m it does nothing.
func (m *Metrics) Register(cs ...prometheus.Collector) error {
	if m == nil {
		return nil
	}
	for _, c := range cs {
		if err := m.reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// Registry returns the registry (for tests and embedding).
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics, when the scraper asks for it).
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{
		ErrorLog:          slogAdapter{m.log},
		ErrorHandling:     promhttp.ContinueOnError,
		EnableOpenMetrics: true,
	})
}

// slogAdapter is promhttp's logger.
type slogAdapter struct{ log *slog.Logger }

func (a slogAdapter) Println(v ...any) { a.log.Warn("metrics: scrape", "err", v) }
