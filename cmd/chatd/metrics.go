package main

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/chatd/chat/core"
	"github.com/chatd/chat/metrics"
	"github.com/chatd/chat/web"
	"github.com/chatd/chat/ws"
	"github.com/prometheus/client_golang/prometheus"
)

// defaultAdminAddr is where the admin listener (metrics and pprof) listens
// unless ADMIN_ADDR says otherwise: loopback, on the port the net/http/pprof
// documentation uses.
const defaultAdminAddr = "127.0.0.1:6060"

// adminConfig is the part of chatd's configuration about its admin
// listener and metrics.
type adminConfig struct {
	AdminAddr adminAddr
	Metrics   string // on | off
}

// adminAddr is ADMIN_ADDR: an address, or "" / "off" for no admin
// listener. set records that the operator chose it (environment or flag):
// only then is failing to listen on it an error. The default address may
// be taken, by a second chatd on the same machine for example; that one
// runs without an admin listener and says so.
type adminAddr struct {
	addr string
	set  bool
}

func (a *adminAddr) String() string { return a.addr }

func (a *adminAddr) Set(s string) error {
	a.addr, a.set = strings.TrimSpace(s), true
	return nil
}

// off reports whether the admin listener is turned off.
func (a adminAddr) off() bool { return a.addr == "" || a.addr == "off" }

// bindAdmin registers the admin listener's flags.
func (e *envFlags) bindAdmin(c *adminConfig) {
	c.AdminAddr.addr = defaultAdminAddr
	if v := e.env("ADMIN_ADDR", ""); v != "" {
		_ = c.AdminAddr.Set(v)
	}
	e.fs.Var(&c.AdminAddr, "admin-addr", "`address` (host:port) of the admin listener that serves /metrics and /debug/pprof/, never reachable on ADDR; keep it loopback or private; off (or empty) for none (ADMIN_ADDR)")
	e.String(&c.Metrics, "metrics", "METRICS", "on", "on: serve Prometheus metrics at ADMIN_ADDR/metrics; off: no metrics (pprof stays)")
}

func (c *adminConfig) validate() error {
	if c.Metrics != "on" && c.Metrics != "off" {
		return fmt.Errorf("METRICS must be on or off, not %q", c.Metrics)
	}
	if !c.AdminAddr.off() {
		if _, _, err := net.SplitHostPort(c.AdminAddr.addr); err != nil {
			return fmt.Errorf("ADMIN_ADDR must be host:port (such as 127.0.0.1:6060) or off, not %q", c.AdminAddr.addr)
		}
	}
	return nil
}

// newMetrics returns the process's metrics registry, or nil with METRICS=off.
func newMetrics(c *adminConfig, log *slog.Logger) *metrics.Metrics {
	if c.Metrics == "off" {
		return nil
	}
	return metrics.New(version, log)
}

// adminListener is the running admin listener (nil when there is none).
type adminListener struct {
	srv  *http.Server
	addr string
}

// startAdmin registers c's collector with m and starts the admin listener:
// /metrics from m (nil: none) and net/http/pprof, on a listener of its own
// so that neither is reachable through ADDR. With ADMIN_ADDR off, or when
// the default address is taken, it starts nothing (the latter with a
// warning); an address the operator chose that cannot be used is an error.
func startAdmin(c *adminConfig, m *metrics.Metrics, col prometheus.Collector, log *slog.Logger) (*adminListener, error) {
	if err := m.Register(col); err != nil {
		return nil, err
	}
	if c.AdminAddr.off() {
		return nil, nil
	}
	ln, err := net.Listen("tcp", c.AdminAddr.addr)
	if err != nil {
		if c.AdminAddr.set {
			return nil, fmt.Errorf("admin listener on %s (ADMIN_ADDR): %w", c.AdminAddr.addr, err)
		}
		log.Warn("no admin listener: its default address is taken (another chatd?); set ADMIN_ADDR to serve /metrics and pprof",
			"addr", c.AdminAddr.addr, "err", err)
		return nil, nil
	}
	if host, _, _ := net.SplitHostPort(c.AdminAddr.addr); !isLoopback(host) {
		log.Warn("the admin listener is not on loopback: keep its address private, it serves pprof", "addr", ln.Addr().String())
	}
	a := &adminListener{addr: ln.Addr().String(), srv: &http.Server{
		Handler:           metrics.AdminHandler(m),
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}}
	go func() {
		if err := a.srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("admin listener stopped", "err", err)
		}
	}()
	log.Info("admin listener started", "addr", a.addr, "metrics", c.Metrics)
	return a, nil
}

// announce prints the admin address on stdout, after the main listener's
// line (which tests and scripts read first).
func (a *adminListener) announce(stdout io.Writer) {
	if a != nil {
		fmt.Fprintf(stdout, "chatd admin (metrics, pprof) on http://%s/\n", a.addr)
	}
}

// stop closes the admin listener.
func (a *adminListener) stop() {
	if a != nil {
		_ = a.srv.Close()
	}
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// collector reads the hub's, the node's and the web server's counters when
// Prometheus scrapes (see package metrics): nothing on the message path
// calls into Prometheus.
type collector struct {
	hub  *ws.Hub
	node *core.Node
	web  *web.Server

	opened, open, connRefused, closes, slow              *prometheus.Desc
	received, refused, rateLimited                       *prometheus.Desc
	stored, duplicates, commits, queued, delivered, sent *prometheus.Desc
	history, recovered, rooms                            *prometheus.Desc
	storeUp, flapping, draining, logins                  *prometheus.Desc
}

func newCollector(hub *ws.Hub, node *core.Node, srv *web.Server) *collector {
	d := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(metrics.Namespace+"_"+name, help, labels, nil)
	}
	return &collector{
		hub: hub, node: node, web: srv,
		opened:      d("connections_opened_total", "WebSocket connections upgraded, by room kind (public, course, dm).", "kind"),
		open:        d("connections", "WebSocket connections open now, by room kind.", "kind"),
		connRefused: d("connections_refused_total", "WebSocket upgrades refused at a connection cap: global (MAX_CONNS, 503), ip (MAX_CONNS_PER_IP, 429), user (MAX_CONNS_PER_USER, 429).", "limit"),
		closes:      d("closes_total", "WebSocket connections closed, by close code (1006: no close frame) and by the side that closed: server or client.", "code", "by"),
		slow:        d("send_queue_overflows_total", "Connections closed (1008) because their send queue overflowed SEND_QUEUE_BYTES: slow consumers."),
		received:    d("messages_received_total", "Text frames received from clients (chat messages, valid or not)."),
		refused:     d("messages_refused_total", "Frames refused with an error frame, by its code (invalid_json, rate_limited, unavailable, ...).", "reason"),
		rateLimited: d("rate_limited_total", "Frames refused by a message budget: connection (RATE_LIMIT), user, ip, room (flood guard).", "budget"),
		stored:      d("messages_stored_total", "Messages committed to the store."),
		duplicates:  d("messages_duplicate_total", "Retried messages found already stored (same client id) and not stored again."),
		commits:     d("commits_total", "Group commits (store transactions of messages) that succeeded."),
		queued:      d("commit_queue_messages", "Messages waiting for a commit now."),
		delivered:   d("messages_delivered_total", "Chat messages queued to clients live, one per recipient."),
		sent:        d("sent_bytes_total", "Bytes of WebSocket frames written to clients."),
		history:     d("history_messages_total", "Messages sent to connections on joins and resumes, by source: memory (the room's window) or store.", "source"),
		recovered:   d("recovered_messages_total", "Messages read from the store to fill a gap in live delivery or after the channel layer lost messages."),
		rooms:       d("rooms", "Rooms with local members (each one a layer subscription)."),
		storeUp:     d("store_up", "1 while messages can be stored, 0 after a failed commit until the store answers again."),
		flapping:    d("layer_flapping", "1 when the channel layer's connection was restored 3 or more times in the last minute."),
		draining:    d("draining", "1 while the server shuts down."),
		logins:      d("logins_total", "Login attempts by result: ok, failed (wrong username or password), throttled (429 after too many failures).", "result"),
	}
}

func (c *collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.opened, c.open, c.connRefused, c.closes, c.slow, c.received, c.refused,
		c.rateLimited, c.stored, c.duplicates, c.commits, c.queued, c.delivered, c.sent, c.history, c.recovered,
		c.rooms, c.storeUp, c.flapping, c.draining, c.logins} {
		ch <- d
	}
}

func (c *collector) Collect(ch chan<- prometheus.Metric) {
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	flag := func(d *prometheus.Desc, on bool) {
		v := 0.0
		if on {
			v = 1
		}
		gauge(d, v)
	}
	h := c.hub.Counters()
	for kind, n := range h.Opened {
		counter(c.opened, n, kind)
		gauge(c.open, float64(h.Open[kind]), kind)
	}
	for limit, n := range h.ConnRefused {
		counter(c.connRefused, n, limit)
	}
	for _, cc := range h.Closes {
		by := "client"
		if cc.ByServer {
			by = "server"
		}
		counter(c.closes, cc.N, cc.Code, by)
	}
	counter(c.slow, h.SlowClosed)
	counter(c.received, h.Received)
	for reason, n := range h.Refused {
		counter(c.refused, n, reason)
	}
	for budget, n := range h.RateLimited {
		counter(c.rateLimited, n, budget)
	}
	counter(c.delivered, h.Delivered)
	counter(c.sent, h.BytesOut)
	counter(c.history, h.HistoryMemory, "memory")
	counter(c.history, h.HistoryStore, "store")
	counter(c.recovered, h.Recovered)
	gauge(c.rooms, float64(h.Rooms))

	n := c.node.Stats()
	counter(c.stored, n.Stored)
	counter(c.duplicates, n.Duplicates)
	counter(c.commits, n.Commits)
	gauge(c.queued, float64(n.Queued))
	flag(c.storeUp, c.node.Err() == nil)
	flag(c.flapping, c.hub.LayerFlapping() != nil)
	flag(c.draining, c.hub.Closing())

	l := c.web.LoginCounts()
	counter(c.logins, l.OK, "ok")
	counter(c.logins, l.Failed, "failed")
	counter(c.logins, l.Throttled, "throttled")
}
