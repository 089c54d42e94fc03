package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"regexp"
	"runtime"
	"strings"
	"testing"

	"github.com/chatd/chat/internal/metricstest"
	"github.com/chatd/chat/internal/redistest"
	"github.com/chatd/chat/internal/wstest"
	"github.com/lxzan/gws"
)

// Tests of /metrics (issue 11): a real chatd on 127.0.0.1, driven over
// real sockets, its admin listener scraped. Every wait is a poll of the
// scrape bounded by metricstest.Timeout, never a sleep.

// withAdmin are the arguments that give a test server an admin listener
// of its own (the default address is shared by every chatd on the machine).
var withAdmin = []string{"-admin-addr", "127.0.0.1:0"}

var adminLine = regexp.MustCompile(`msg="admin listener started" addr=(\S+)`)

// admin returns the base URL of s's admin listener, from its log.
func (s *server) admin(t *testing.T) string {
	t.Helper()
	m := adminLine.FindStringSubmatch(s.logs.String())
	if m == nil {
		t.Fatalf("no admin listener in the log:\n%s", s.logs)
	}
	return "http://" + m[1]
}

func httpStatus(t *testing.T, url string) int {
	t.Helper()
	resp, err := noRedirects.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAdminListenerOnly: /metrics and the pprof profiles answer on the
// admin listener and nowhere on the public one.
func TestAdminListenerOnly(t *testing.T) {
	s := start(t, withAdmin)
	admin := s.admin(t)
	for _, path := range []string{"/metrics", "/debug/pprof/", "/debug/pprof/cmdline", "/debug/pprof/heap", "/debug/pprof/goroutine?debug=1"} {
		if got := httpStatus(t, s.base+path); got != http.StatusNotFound {
			t.Errorf("public GET %s: %d, want 404", path, got)
		}
		if got := httpStatus(t, admin+path); got != http.StatusOK {
			t.Errorf("admin GET %s: %d, want 200", path, got)
		}
	}
	// The admin listener serves nothing of the public site.
	for _, path := range []string{"/chat/", "/healthz", "/accounts/login/"} {
		if got := httpStatus(t, admin+path); got != http.StatusNotFound {
			t.Errorf("admin GET %s: %d, want 404", path, got)
		}
	}
	metricstest.Scrape(t, admin+"/metrics").Get(t, `chatd_build_info{goversion="`+runtime.Version()+`",version="dev"}`)
}

// TestMetricsOffAndAdminOff: METRICS=off keeps pprof and drops /metrics;
// ADMIN_ADDR=off starts no admin listener.
func TestMetricsOffAndAdminOff(t *testing.T) {
	s := start(t, withAdmin, "METRICS=off")
	admin := s.admin(t)
	if got := httpStatus(t, admin+"/metrics"); got != http.StatusNotFound {
		t.Errorf("GET /metrics with METRICS=off: %d, want 404", got)
	}
	if got := httpStatus(t, admin+"/debug/pprof/"); got != http.StatusOK {
		t.Errorf("GET /debug/pprof/ with METRICS=off: %d, want 200", got)
	}
	// The message path works uninstrumented.
	c := s.dial(t, "/ws/chat/r/")
	send(t, c, "hi")
	expectMessage(t, c, "hi")

	off := start(t, []string{"-admin-addr", "off"})
	if strings.Contains(off.logs.String(), "admin listener") {
		t.Errorf("ADMIN_ADDR=off started an admin listener:\n%s", off.logs)
	}
}

// TestAdminAddrTaken: an address the operator chose that is taken stops
// chatd with a clear error; the default one only costs the admin listener.
func TestAdminAddrTaken(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().String()

	var stderr bytes.Buffer
	err = run(t.Context(), []string{"-addr", "127.0.0.1:0", "-admin-addr", taken}, func(k string) string {
		if k == "DATA_DIR" {
			return t.TempDir()
		}
		return ""
	}, strings.NewReader(""), &bytes.Buffer{}, &stderr)
	if err == nil || !strings.Contains(err.Error(), "ADMIN_ADDR") || !strings.Contains(err.Error(), taken) {
		t.Errorf("run with a taken ADMIN_ADDR: %v, want an error naming ADMIN_ADDR and %s", err, taken)
	}

	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	a, err := startAdmin(&adminConfig{AdminAddr: adminAddr{addr: taken}, Metrics: "on"}, nil, nil, log)
	if err != nil || a != nil {
		t.Errorf("default address taken: %v, %v; want no listener and no error", a, err)
	}
	if !strings.Contains(logs.String(), "no admin listener") {
		t.Errorf("no warning logged: %s", logs.String())
	}
}

func TestAdminSettings(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  []string
		ok   bool
	}{
		{nil, []string{"ADMIN_ADDR=nonsense"}, false},
		{[]string{"-admin-addr", "127.0.0.1"}, nil, false},
		{nil, []string{"METRICS=maybe"}, false},
		{nil, []string{"METRICS=off", "ADMIN_ADDR=off"}, true},
		{[]string{"-admin-addr", ""}, nil, true},
		{nil, []string{"ADMIN_ADDR=[::1]:9100"}, true},
	} {
		env := map[string]string{}
		for _, kv := range tc.env {
			k, v, _ := strings.Cut(kv, "=")
			env[k] = v
		}
		c, err := parseConfig(tc.args, func(k string) string { return env[k] }, &bytes.Buffer{})
		if (err == nil) != tc.ok {
			t.Errorf("%v %v: err %v, want ok=%v", tc.args, tc.env, err, tc.ok)
		}
		if err == nil && len(tc.env) == 0 && !c.AdminAddr.set {
			t.Errorf("%v: the flag did not count as the operator's choice", tc.args)
		}
	}
	c, err := parseConfig(nil, func(string) string { return "" }, &bytes.Buffer{})
	if err != nil || c.AdminAddr.addr != defaultAdminAddr || c.AdminAddr.set || c.Metrics != "on" {
		t.Errorf("defaults: %+v %v", c.adminConfig, err)
	}
}

// TestMetricsMessagePath: a message moves received, stored, delivered,
// bytes and the timings; a bad frame moves refused{reason}; a join is
// served from memory; a client's close is counted by its code.
func TestMetricsMessagePath(t *testing.T) {
	s := start(t, withAdmin)
	m := s.admin(t) + "/metrics"
	a, b := s.dial(t, "/ws/chat/lobby/"), s.dial(t, "/ws/chat/lobby/")
	metricstest.Wait(t, m, `chatd_connections{kind="public"}`, metricstest.Eq(2))
	send(t, a, "hello")
	raw := a.NextRaw(t)
	expectMessage(t, b, "hello")
	// The counters move after the frames are handed on, so wait for each:
	// the publish is timed once the fan-out returned, and the bytes are
	// counted once the writer's write returned.
	for series, want := range map[string]float64{
		"chatd_messages_delivered_total":                2,
		"chatd_messages_received_total":                 1,
		"chatd_messages_stored_total":                   1,
		"chatd_commits_total":                           1,
		"chatd_commit_batch_messages_count":             1,
		`chatd_store_seconds_count{op="append"}`:        1,
		`chatd_store_errors_total{op="append"}`:         0,
		"chatd_layer_publish_seconds_count":             1,
		"chatd_layer_up":                                1,
		"chatd_store_up":                                1,
		`chatd_connections_opened_total{kind="public"}`: 2,
		`chatd_connections{kind="course"}`:              0,
		"chatd_rooms":                                   1,
		// Two chat frames, and nothing else was sent: no hello (these
		// clients asked for no subprotocol), no history (the room was new).
		"chatd_sent_bytes_total": float64(2 * (len(raw) + frameHeader(len(raw)))),
	} {
		metricstest.Wait(t, m, series, metricstest.Eq(want))
	}

	a.SendText(t, `{"message": `)
	if f := a.Next(t); f.Str("code") != "invalid_json" {
		t.Fatalf("got %v, want an invalid_json error frame", f)
	}
	metricstest.Wait(t, m, `chatd_messages_refused_total{reason="invalid_json"}`, metricstest.Eq(1))
	metricstest.Wait(t, m, "chatd_messages_received_total", metricstest.Eq(2))

	// A new client gets the room's message from the window, in memory.
	c := s.dial(t, "/ws/chat/lobby/")
	expectMessage(t, c, "hello")
	metricstest.Wait(t, m, `chatd_history_messages_total{source="memory"}`, metricstest.Eq(1))

	// b leaves with 1000; a sends a binary frame and is closed with 1003.
	b.Close()
	metricstest.Wait(t, m, `chatd_closes_total{by="client",code="1000"}`, metricstest.Eq(1))
	a.SendRaw(t, gws.OpcodeBinary, []byte{1, 2, 3})
	if code, _ := a.WaitClose(t); code != 1003 {
		t.Errorf("binary frame: closed with %d, want 1003", code)
	}
	metricstest.Wait(t, m, `chatd_closes_total{by="server",code="1003"}`, metricstest.Eq(1))
	metricstest.Wait(t, m, `chatd_connections{kind="public"}`, metricstest.Eq(1))
	if got := metricstest.Scrape(t, m).Get(t, `chatd_connections_opened_total{kind="public"}`); got != 3 {
		t.Errorf("opened %v, want 3", got)
	}
}

// TestMetricsHistoryFromStore: a client resuming from further back than
// the room's window is served from the store.
func TestMetricsHistoryFromStore(t *testing.T) {
	s := start(t, withAdmin)
	m := s.admin(t) + "/metrics"
	sendAcked(t, s, "/ws/chat/h/", "m", 300) // the window holds 256
	c := wstest.Dial(t, s.ws("/ws/chat/h/?after=0"), wstest.Options{Buffer: 1024})
	for i := range 300 {
		expectMessage(t, c, fmt.Sprint("m ", i))
	}
	// One page from the store holds all 300; the window then adds nothing.
	metricstest.Wait(t, m, `chatd_history_messages_total{source="store"}`, metricstest.Eq(300))
	metricstest.Wait(t, m, `chatd_history_messages_total{source="memory"}`, metricstest.Eq(0))
	if got := metricstest.Scrape(t, m).Get(t, `chatd_store_seconds_count{op="messages"}`); got < 2 {
		t.Errorf("store reads %v: want the room's load and the catch-up", got)
	}
}

// TestMetricsSlowConsumer: a client that never reads is closed with 1008
// and counted as a queue overflow, by the server.
func TestMetricsSlowConsumer(t *testing.T) {
	s := start(t, append([]string{"-send-queue", "4096", "-history", "off"}, withAdmin...))
	m := s.admin(t) + "/metrics"
	sender := s.dial(t, "/ws/chat/slow/?echo=0") // reads nothing, gets nothing
	rawClient(t, s, "/ws/chat/slow/", 4096)      // never reads
	metricstest.Wait(t, m, `chatd_connections{kind="public"}`, metricstest.Eq(2))
	big := strings.Repeat("x", 3900)
	// The kernel's socket buffers take a few MiB before the 4 KiB queue
	// overflows; send until it has, at most 20 MiB.
	for i := 0; ; i++ {
		send(t, sender, big)
		if i%100 == 99 && metricstest.Scrape(t, m)["chatd_send_queue_overflows_total"] > 0 {
			break
		}
		if i > 5000 {
			t.Fatal("no queue overflow after 20 MiB")
		}
	}
	metricstest.Wait(t, m, `chatd_closes_total{by="server",code="1008"}`, metricstest.Eq(1))
	metricstest.Wait(t, m, "chatd_send_queue_overflows_total", metricstest.Eq(1))
	metricstest.Wait(t, m, `chatd_connections{kind="public"}`, metricstest.Eq(1))
}

// TestMetricsLimits: a connection over the per-address cap and a frame
// over the connection's budget are counted by limit.
func TestMetricsLimits(t *testing.T) {
	clk := newFakeClock() // frozen: the budget never refills during the test
	s := startClock(t, clk, append([]string{"-rate-limit", "1", "-max-conns-per-ip", "1"}, withAdmin...))
	m := s.admin(t) + "/metrics"
	c := s.dial(t, "/ws/chat/r/")
	if _, resp, err := wstest.TryDial(s.ws("/ws/chat/r/"), wstest.Options{}); err == nil || resp == nil || resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("second socket from one address: %v %v, want 429", resp, err)
	}
	metricstest.Wait(t, m, `chatd_connections_refused_total{limit="ip"}`, metricstest.Eq(1))
	for i := range 3 { // bursts of 2
		send(t, c, fmt.Sprint("m", i))
	}
	for got := 0; got < 2; {
		if f := c.Next(t); f.Str("type") == "chat_message" {
			got++
		} else if f.Str("code") != "rate_limited" {
			t.Fatalf("got %v", f)
		}
	}
	metricstest.Wait(t, m, `chatd_rate_limited_total{budget="connection"}`, metricstest.Eq(1))
	metricstest.Wait(t, m, `chatd_messages_refused_total{reason="rate_limited"}`, metricstest.Eq(1))
	if got := metricstest.Scrape(t, m).Get(t, "chatd_messages_received_total"); got != 3 {
		t.Errorf("received %v, want 3", got)
	}
}

// TestMetricsLogins: logins by result, and a course room's socket counted
// under its kind.
func TestMetricsLogins(t *testing.T) {
	sc := newSchoolCtx(t, withClock(t.Context(), newFakeClock().Now), "sqlite", withAdmin, "LOGIN_FAILURE_LIMIT=2")
	m := sc.admin(t) + "/metrics"
	for range 2 {
		if resp, _ := sc.login(t, "alice", "wrong password"); resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("wrong password: %d, want 400", resp.StatusCode)
		}
	}
	if resp, _ := sc.login(t, "alice", testPassword); resp.StatusCode != http.StatusTooManyRequests {
		t.Fatalf("throttled login: %d, want 429", resp.StatusCode)
	}
	if resp, _ := sc.login(t, "bob", testPassword); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("bob's login: %d, want 303", resp.StatusCode)
	}
	sm := metricstest.Scrape(t, m)
	for result, want := range map[string]float64{"ok": 1, "failed": 2, "throttled": 1} {
		if got := sm.Get(t, `chatd_logins_total{result="`+result+`"}`); got != want {
			t.Errorf("logins %s = %v, want %v", result, got, want)
		}
	}
	sc.dialAs(t, fmt.Sprintf("/ws/chat/room/%d/", sc.courseID), sc.session(t, "alice"))
	metricstest.Wait(t, m, `chatd_connections{kind="course"}`, metricstest.Eq(1))
	metricstest.Wait(t, m, `chatd_store_seconds_count{op="session"}`, metricstest.AtLeast(1))
}

// TestMetricsRedisLayer: with the Redis layer (a private redis-server),
// the layer's state follows Redis going away and coming back, and the
// reconnection is counted.
func TestMetricsRedisLayer(t *testing.T) {
	rs := redistest.Start(t)
	s := start(t, withAdmin, "CHANNEL_LAYER=redis", "REDIS_URL="+rs.URL())
	m := s.admin(t) + "/metrics"
	c := s.dial(t, "/ws/chat/r/")
	send(t, c, "via redis")
	expectMessage(t, c, "via redis")
	// The PUBLISH is timed when Redis has answered it, which may be after
	// the message went round.
	metricstest.Wait(t, m, "chatd_layer_publish_seconds_count", metricstest.Eq(1))
	metricstest.Wait(t, m, "chatd_layer_up", metricstest.Eq(1))
	metricstest.Wait(t, m, "chatd_layer_restores_total", metricstest.Eq(0))
	rs.Kill()
	metricstest.Wait(t, m, "chatd_layer_up", metricstest.Eq(0))
	rs.Restart()
	metricstest.Wait(t, m, "chatd_layer_up", metricstest.Eq(1))
	metricstest.Wait(t, m, "chatd_layer_restores_total", metricstest.Eq(1))
}

// frameHeader is the size of an unmasked server frame's header for a
// payload of n bytes.
func frameHeader(n int) int {
	switch {
	case n < 126:
		return 2
	case n < 1<<16:
		return 4
	}
	return 10
}
