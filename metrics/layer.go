package metrics

import (
	"context"
	"time"

	chat "github.com/chatd/chat"
	"github.com/prometheus/client_golang/prometheus"
)

// Layer returns l instrumented: every Publish is timed
// (chatd_layer_publish_seconds) and its failures counted, and the registry
// reports the layer's state at each scrape (chatd_layer_up, and for a
// layer that reconnects, such as Redis, chatd_layer_restores_total). Call
// it once per registry. With a nil m it returns l.
//
// The wrapper passes OnRestore through (chat.RestoreNotifier), so the hub
// still hears of reconnections.
func (m *Metrics) Layer(l chat.Layer) chat.Layer {
	if m == nil {
		return l
	}
	il := &layer{Layer: l, m: m}
	m.reg.MustRegister(newLayerCollector(l))
	return il
}

type layer struct {
	chat.Layer
	m *Metrics
}

var _ chat.RestoreNotifier = (*layer)(nil)

func (l *layer) Publish(ctx context.Context, group string, msg []byte) error {
	start := time.Now()
	err := l.Layer.Publish(ctx, group, msg)
	l.m.publish.Observe(time.Since(start).Seconds())
	if err != nil {
		l.m.publishErrors.Inc()
	}
	return err
}

// OnRestore implements chat.RestoreNotifier for a layer that does; for
// one that never loses messages (memory) f is never called.
func (l *layer) OnRestore(f func()) {
	if rn, ok := l.Layer.(chat.RestoreNotifier); ok {
		rn.OnRestore(f)
	}
}

// restorer is a layer that counts its reconnections (redis.Layer).
type restorer interface{ Restores() uint64 }

// layerCollector reads a layer's state at scrape time.
type layerCollector struct {
	l            chat.Layer
	up, restores *prometheus.Desc
}

func newLayerCollector(l chat.Layer) *layerCollector {
	return &layerCollector{
		l: l,
		up: prometheus.NewDesc(Namespace+"_layer_up",
			"1 while the channel layer delivers between processes (Redis connected and every room subscribed), 0 while it is down.", nil, nil),
		restores: prometheus.NewDesc(Namespace+"_layer_restores_total",
			"Times the channel layer's connection was lost and restored (Redis reconnected and resubscribed); rooms then recover missed messages from the store.", nil, nil),
	}
}

func (c *layerCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.up
	if _, ok := c.l.(restorer); ok {
		ch <- c.restores
	}
}

func (c *layerCollector) Collect(ch chan<- prometheus.Metric) {
	up := 1.0
	if c.l.Err() != nil {
		up = 0
	}
	ch <- prometheus.MustNewConstMetric(c.up, prometheus.GaugeValue, up)
	if r, ok := c.l.(restorer); ok {
		ch <- prometheus.MustNewConstMetric(c.restores, prometheus.CounterValue, float64(r.Restores()))
	}
}
