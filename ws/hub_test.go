package ws

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/wstest"
	"github.com/chatd/chat/memory"
)

// testHub serves a hub over a real HTTP server: ?user= names the client,
// ?room= its room.
type testHub struct {
	hub *Hub
	srv *httptest.Server
}

func newTestHub(t *testing.T, bus *memory.Bus, cfg Config) *testHub {
	t.Helper()
	h := NewHub(cfg)
	l := bus.Attach(h.Receive)
	if err := h.Start(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		h.Accept(w, r, JoinOptions{
			Group:   "chat:" + q.Get("room"),
			Room:    q.Get("room"),
			User:    &chat.User{ID: 1, Username: q.Get("user")},
			Session: q.Get("session"),
		})
	}))
	t.Cleanup(func() {
		_ = h.Shutdown(context.Background())
		srv.Close()
		_ = l.Close()
	})
	return &testHub{hub: h, srv: srv}
}

func (th *testHub) dial(t *testing.T, query string) *wstest.Client {
	t.Helper()
	return wstest.Dial(t, wstest.WSURL(th.srv.URL, "/?"+query), wstest.Options{Subprotocol: Subprotocol})
}

// TestCrossProcessControl runs two hubs on one bus (two "processes"): a
// message reaches both; closing a user's or a session's sockets reaches
// them wherever they are; a direct send reaches one connection.
func TestCrossProcessControl(t *testing.T) {
	bus := memory.NewBus()
	p1, p2 := newTestHub(t, bus, Config{Echo: true}), newTestHub(t, bus, Config{Echo: true})
	alice1 := p1.dial(t, "user=alice&room=r&session=s1")
	alice2 := p2.dial(t, "user=alice&room=r&session=s2")
	bob := p2.dial(t, "user=bob&room=r&session=s3")
	for _, c := range []*wstest.Client{alice1, alice2, bob} {
		c.NextOfType(t, "hello")
	}
	bob.Send(t, map[string]string{"message": "across"})
	for _, c := range []*wstest.Client{alice1, alice2, bob} {
		if f := c.NextOfType(t, "chat_message"); f.Str("message") != "across" || f.Str("user") != "bob" {
			t.Fatalf("got %v", f)
		}
	}
	// Logout of session s1 (on process 1), requested on process 2.
	if err := p2.hub.CloseWhere(context.Background(), Control{Session: "s1", Reason: "logged out"}); err != nil {
		t.Fatal(err)
	}
	if code, reason := alice1.WaitClose(t); code != ClosePolicyViolation || reason != "logged out" {
		t.Errorf("alice1 closed with %d %q", code, reason)
	}
	// A direct send to bob's channel, from process 1.
	var bobConn *Conn
	for _, c := range p2.hub.snapshot() {
		if c.user.Username == "bob" {
			bobConn = c
		}
	}
	if err := p1.hub.SendTo(context.Background(), bobConn.Channel(), map[string]string{"type": "notice", "message": "just you"}); err != nil {
		t.Fatal(err)
	}
	if f := bob.Next(t); f.Str("message") != "just you" {
		t.Errorf("bob got %v", f)
	}
	// All of alice's sockets, requested on process 1.
	if err := p1.hub.CloseWhere(context.Background(), Control{User: "alice", Reason: "unenrolled"}); err != nil {
		t.Fatal(err)
	}
	if code, _ := alice2.WaitClose(t); code != ClosePolicyViolation {
		t.Errorf("alice2 closed with %d", code)
	}
	// bob carries on, and no longer sees alice anywhere.
	bob.Send(t, map[string]string{"message": "still here"})
	if f := bob.Next(t); f.Str("message") != "still here" {
		t.Errorf("bob got %v", f)
	}
	if err := p1.hub.CloseWhere(context.Background(), Control{}); err == nil {
		t.Error("CloseWhere without a selector succeeded")
	}
}

// pipeConns returns n connections registered in one room of h, each
// backed by a real loopback TCP socket whose far end is drained.
func pipeConns(tb testing.TB, h *Hub, group string, n int) []*Conn {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	var wg sync.WaitGroup
	conns := make([]*Conn, n)
	for i := range n {
		client, err := net.Dial("tcp", ln.Addr().String())
		if err != nil {
			tb.Fatal(err)
		}
		server, err := ln.Accept()
		if err != nil {
			tb.Fatal(err)
		}
		wg.Add(1)
		go func() { defer wg.Done(); _, _ = io.Copy(io.Discard, client) }()
		c := &Conn{hub: h, id: h.nextID.Add(1), group: group, raw: server, user: &chat.User{Username: "u"}, echo: true, idx: -1, after: -1}
		c.framing = true
		conns[i] = c
		if member, err := h.join(context.Background(), c); err != nil || !member {
			tb.Fatal(member, err)
		}
	}
	tb.Cleanup(func() {
		for _, c := range conns {
			_ = c.raw.Close()
		}
		wg.Wait()
	})
	return conns
}

// TestBroadcastAllocatesNothingPerRecipient checks the fan-out itself: once
// a message is framed, queuing it for every member allocates nothing.
func TestBroadcastAllocatesNothingPerRecipient(t *testing.T) {
	h := NewHub(Config{SendQueueBytes: 1 << 30})
	h.layer = memory.New(h.Receive)
	conns := pipeConns(t, h, "g", 200)
	for _, c := range conns {
		c.writing = true // no writer goroutines: measure the queuing alone
	}
	frame := newFrame(opText, []byte(`{"type":"chat_message","message":"hi"}`))
	r := h.rooms["g"]
	reset := func() {
		for _, c := range conns {
			clear(c.queue)
			c.queue, c.queued = c.queue[:0], 0
		}
	}
	// History off: unordered delivery.
	r.mu.Lock()
	h.deliverUnordered(r, frame, 0, 0, 0) // grow the queues once
	r.mu.Unlock()
	reset()
	allocs := testing.AllocsPerRun(100, func() {
		r.mu.Lock()
		h.deliverUnordered(r, frame, 0, 0, 0)
		r.mu.Unlock()
		reset()
	})
	if allocs != 0 {
		t.Errorf("unordered broadcast to %d members allocated %.1f times; want 0", len(conns), allocs)
	}
	// History on: the sequencer, with its window, allocates nothing either.
	startSequencer(r)
	seq := int64(1)
	h.sequence(r, seq, frame, 0, 0, 0)
	reset()
	allocs = testing.AllocsPerRun(100, func() {
		seq++
		h.sequence(r, seq, frame, 0, 0, 0)
		reset()
	})
	if allocs != 0 {
		t.Errorf("sequenced broadcast to %d members allocated %.1f times; want 0", len(conns), allocs)
	}
	if got := len(h.rooms["g"].members); got != 200 {
		t.Errorf("room has %d members", got)
	}
}

// startSequencer makes r sequence messages from seq 1 with an empty window,
// as loadRoom does for a room with no history.
func startSequencer(r *room) {
	r.mu.Lock()
	r.ready, r.next, r.win = true, 1, newWindow(256)
	r.mu.Unlock()
}

// BenchmarkBroadcast measures the broadcast path end to end inside one
// process: a framed message arrives from the layer and is queued for 1,000
// members whose writers write it to real loopback sockets. It reports ns and
// allocations per delivery.
func BenchmarkBroadcast(b *testing.B) {
	for _, seqd := range []bool{false, true} {
		for _, members := range []int{100, 1000} {
			name := fmt.Sprintf("%dmembers", members)
			if seqd {
				name += "/sequenced"
			}
			b.Run(name, func(b *testing.B) {
				h := NewHub(Config{SendQueueBytes: 64 << 20})
				h.layer = memory.New(h.Receive)
				conns := pipeConns(b, h, "g", members)
				r := h.rooms["g"]
				m := &chat.Message{Text: strings.Repeat("x", 100), User: "guest-1", Room: "chat:bench", Time: time.Unix(1, 0)}
				env, err := envelope(kindChat, 1, 1, 0, 0, chatMessage(m))
				if err != nil {
					b.Fatal(err)
				}
				frame := env[envHeader:]
				if seqd {
					startSequencer(r)
				}
				b.ReportAllocs()
				b.ResetTimer()
				seq := int64(0)
				for b.Loop() {
					if seqd {
						// What Receive does with a stored message: the
						// sequencer, its window, then the same fan-out.
						seq++
						h.sequence(r, seq, frame, 1, 1, 0)
					} else {
						h.Receive("g", env)
					}
				}
				// Wait for the writers to finish, inside the timing.
				for _, c := range conns {
					for {
						c.mu.Lock()
						busy := c.writing
						c.mu.Unlock()
						if !busy {
							break
						}
					}
				}
				b.StopTimer()
				d := float64(b.N * members)
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/d, "ns/delivery")
				b.ReportMetric(d/b.Elapsed().Seconds(), "deliveries/s")
			})
		}
	}
}

// TestLongCloseReasonStaysValid closes a socket with a reason too long for
// a close frame, in a script of two-byte characters: the client must get
// the code and a shortened reason that is still valid UTF-8.
func TestLongCloseReasonStaysValid(t *testing.T) {
	th := newTestHub(t, memory.NewBus(), Config{Echo: true})
	c := th.dial(t, "user=zoé&room=r")
	c.NextOfType(t, "hello")
	long := "no longer enrolled in " + strings.Repeat("é", 100)
	if err := th.hub.CloseWhere(context.Background(), Control{User: "zoé", Reason: long}); err != nil {
		t.Fatal(err)
	}
	code, reason := c.WaitClose(t)
	if code != ClosePolicyViolation || !utf8.ValidString(reason) || len(reason) > 123 || !strings.HasPrefix(long, reason) || reason == "" {
		t.Errorf("close %d with a %d-byte reason (valid UTF-8 %v)", code, len(reason), utf8.ValidString(reason))
	}
}
