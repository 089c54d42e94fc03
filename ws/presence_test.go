package ws

import (
	"context"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"testing"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/wstest"
	"github.com/chatd/chat/memory"
)

// presenceConfig is a hub config with presence on, a fast batch (the
// coalescing window; tests wait for events, never for the window) and the
// injected clock.
func presenceConfig(clk *fakeClock) Config {
	return Config{Echo: true, Presence: true, PresenceBatch: 5 * time.Millisecond, PresenceInterval: time.Second,
		PresenceTTL: 3 * time.Second, TypingTimeout: 6 * time.Second, Now: clk.Now}
}

// v1 dials a chatd.v1 client named user into room and checks that hello
// and then the presence list come first.
func (th *testHub) v1(t *testing.T, user, room string) (*wstest.Client, *wstest.Roster) {
	t.Helper()
	c := th.dial(t, "user="+user+"&room="+room)
	if f := c.Next(t); f.Str("type") != "hello" || f["presence"] != true {
		t.Fatalf("%s: first frame %v, want hello with presence", user, f)
	}
	r := &wstest.Roster{}
	f := c.Next(t)
	if !r.Apply(f) || f.Str("type") != "presence" || !r.Users[user] && f["truncated"] != true {
		t.Fatalf("%s: second frame %v, want the presence list with %s in it", user, f, user)
	}
	return c, r
}

// waitConns waits until h has n connections (a closed client's server side
// has gone).
func waitConns(t *testing.T, h *Hub, n int) {
	t.Helper()
	for deadline := time.Now().Add(wstest.Timeout); h.Stats().Connections != n; time.Sleep(2 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("hub has %d connections, want %d", h.Stats().Connections, n)
		}
	}
}

// TestPresenceAcrossHubs: two hubs on one bus play two processes. Every
// v1 client sees the same presence; a user with tabs on both leaves only
// when both are closed; a tutorial client counts as present but gets no
// presence frame.
func TestPresenceAcrossHubs(t *testing.T) {
	clk := newFakeClock()
	bus := memory.NewBus()
	p1, p2 := newTestHub(t, bus, presenceConfig(clk)), newTestHub(t, bus, presenceConfig(clk))
	alice, ra := p1.v1(t, "alice", "r")
	bob, rb := p2.v1(t, "bob", "r")
	legacy := wstest.Dial(t, wstest.WSURL(p1.srv.URL, "/?user=carol&room=r"), wstest.Options{})
	alice.WaitRoster(t, ra, "alice", "bob", "carol")
	bob.WaitRoster(t, rb, "alice", "bob", "carol")

	// A second tab of alice, on the other process: nobody sees a join.
	joins := len(rb.Joins)
	alice2, ra2 := p2.v1(t, "alice", "r")
	alice2.WaitRoster(t, ra2, "alice", "bob", "carol")
	// The first tab closes; then dave arrives on the same process. By the
	// time bob sees dave, alice's first tab has left process 1's state
	// (its deltas are in order): she must still be there.
	alice.Close()
	waitConns(t, p1.hub, 1)
	dave, rd := p1.v1(t, "dave", "r")
	bob.WaitRoster(t, rb, "alice", "bob", "carol", "dave")
	if slices.Contains(rb.Leaves, "alice") || slices.Contains(rb.Joins[joins:], "alice") {
		t.Fatalf("bob saw alice's second tab or first tab: joins %v leaves %v", rb.Joins, rb.Leaves)
	}
	dave.WaitRoster(t, rd, "alice", "bob", "carol", "dave")
	// Her last tab closes: everyone sees her leave.
	alice2.Close()
	bob.WaitRoster(t, rb, "bob", "carol", "dave")
	dave.WaitRoster(t, rd, "bob", "carol", "dave")
	if rb.Count != 3 {
		t.Errorf("bob's count %d", rb.Count)
	}
	// The API view agrees, on both processes.
	for _, p := range []*testHub{p1, p2} {
		ms, on := p.hub.Presence("chat:r")
		if !on || len(ms) != 3 {
			t.Errorf("Presence = %v, %v", ms, on)
		}
		if p.hub.Online("alice") || !p.hub.Online("carol") {
			t.Errorf("Online: alice %v, carol %v", p.hub.Online("alice"), p.hub.Online("carol"))
		}
	}
	// The tutorial client's first frame is the next chat message: it was
	// never sent a presence frame.
	bob.Send(t, map[string]string{"message": "hi"})
	if f := legacy.Next(t); f.Str("type") != "chat_message" || f.Str("message") != "hi" {
		t.Fatalf("tutorial client got %v, want only the chat message", f)
	}
}

// TestPresenceOfCutOffHub: a hub whose layer is gone (a dead process, as
// far as the others know) has its users leave the others' presence once
// the TTL passes on the injected clock.
func TestPresenceOfCutOffHub(t *testing.T) {
	clk := newFakeClock()
	bus := memory.NewBus()
	p1 := newTestHub(t, bus, presenceConfig(clk))
	h2 := NewHub(presenceConfig(clk))
	l2 := bus.Attach(h2.Receive)
	if err := h2.Start(context.Background(), l2); err != nil {
		t.Fatal(err)
	}
	srv2 := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h2.Accept(w, r, JoinOptions{Group: "chat:r", Room: "r", User: &chat.User{Username: r.URL.Query().Get("user")}})
	}))
	t.Cleanup(func() { _ = h2.Shutdown(context.Background()); srv2.Close() })
	alice, ra := p1.v1(t, "alice", "r")
	bob := wstest.Dial(t, wstest.WSURL(srv2.URL, "/?user=bob"), wstest.Options{Subprotocol: Subprotocol})
	alice.WaitRoster(t, ra, "alice", "bob")

	_ = l2.Close() // process 2 is cut off; bob's socket stays open
	clk.Advance(2 * time.Second)
	// A barrier: erin joins on process 1; bob must still be present then.
	erin, _ := p1.v1(t, "erin", "r")
	alice.WaitRoster(t, ra, "alice", "bob", "erin")
	clk.Advance(1500 * time.Millisecond) // past the 3 s TTL
	alice.WaitRoster(t, ra, "alice", "erin")
	_, _ = bob, erin
}

// TestPresenceCountAboveMaxList: above PresenceMaxList users, clients get
// head counts instead of joins and leaves, and the list again when the
// room shrinks back.
func TestPresenceCountAboveMaxList(t *testing.T) {
	cfg := presenceConfig(newFakeClock())
	cfg.PresenceMaxList = 3
	th := newTestHub(t, memory.NewBus(), cfg)
	watcher, r := th.v1(t, "w", "big")
	var guests []*wstest.Client
	for _, u := range []string{"g1", "g2", "g3", "g4", "g5"} {
		guests = append(guests, wstest.Dial(t, wstest.WSURL(th.srv.URL, "/?room=big&user="+u), wstest.Options{}))
	}
	watcher.WaitFor(t, r, func() bool { return r.Count == 6 }, "a head count of 6")
	last := r.Frames[len(r.Frames)-1]
	if last.Str("type") != "presence_count" {
		t.Errorf("big room announced with %v", last)
	}
	late, rl := th.v1(t, "late", "big")
	if f := rl.Frames[0]; f.Int("count") != 7 || f["truncated"] != true || len(f["users"].([]any)) != 0 {
		t.Errorf("late joiner's list: %v", f)
	}
	for _, g := range guests[:4] {
		g.Close()
	}
	watcher.WaitRoster(t, r, "w", "g5", "late")
	if f := r.Frames[len(r.Frames)-1]; f.Str("type") != "presence" {
		t.Errorf("shrunk room announced with %v, want the list", f)
	}
	_ = late
}

// TestTyping: a typing frame reaches the room's other v1 clients (not the
// sender's own tabs, not tutorial clients), repeated frames are relayed once
// per TypingTimeout/3, a message ends it, and it expires by itself when the
// injected clock passes TypingTimeout.
func TestTyping(t *testing.T) {
	clk := newFakeClock()
	th := newTestHub(t, memory.NewBus(), presenceConfig(clk))
	alice, ra := th.v1(t, "alice", "r")
	alice2, ra2 := th.v1(t, "alice", "r")
	bob, rb := th.v1(t, "bob", "r")
	legacy := wstest.Dial(t, wstest.WSURL(th.srv.URL, "/?user=carol&room=r"), wstest.Options{})
	alice.WaitRoster(t, ra, "alice", "bob", "carol")
	alice2.WaitRoster(t, ra2, "alice", "bob", "carol")
	bob.WaitRoster(t, rb, "alice", "bob", "carol")

	typing := map[string]string{"type": "typing"}
	for range 5 { // one keystroke each; relayed once
		alice.Send(t, typing)
	}
	f := bob.NextOfType(t, "typing")
	if f.Str("user") != "alice" || f.Int("expires_in") != 6000 {
		t.Fatalf("bob got %v", f)
	}
	alice.Send(t, map[string]string{"message": "done typing"})
	// bob: typing_stop, then the message; no second typing frame.
	for _, want := range []string{"typing_stop", "chat_message"} {
		if f := bob.Next(t); f.Str("type") != want || f.Str("user") != "alice" {
			t.Fatalf("bob got %v, want %s from alice", f, want)
		}
	}
	// alice and her other tab: the message, never a typing frame.
	for _, c := range []*wstest.Client{alice, alice2} {
		if f := c.Next(t); f.Str("type") != "chat_message" {
			t.Fatalf("the typist's tab got %v before the message", f)
		}
	}
	// Typing again after the message is relayed at once, then expires on
	// the clock.
	alice.Send(t, typing)
	if f := bob.Next(t); f.Str("type") != "typing" {
		t.Fatalf("bob got %v", f)
	}
	clk.Advance(5 * time.Second)
	alice.Send(t, typing) // 5 s after the last relay: a renewal, relayed
	if f := bob.Next(t); f.Str("type") != "typing" {
		t.Fatalf("bob got %v, want the renewal", f)
	}
	clk.Advance(5 * time.Second) // 5 s after the renewal: not expired yet
	bob.Send(t, map[string]string{"message": "barrier"})
	if f := bob.Next(t); f.Str("type") != "chat_message" {
		t.Fatalf("bob got %v before the barrier: the renewal did not renew", f)
	}
	clk.Advance(2 * time.Second) // 7 s: expired
	if f := bob.Next(t); f.Str("type") != "typing_stop" || f.Str("user") != "alice" {
		t.Fatalf("bob got %v, want alice's typing to expire", f)
	}
	// The tutorial client saw the two messages and nothing else.
	for _, want := range []string{"done typing", "barrier"} {
		if f := legacy.Next(t); f.Str("type") != "chat_message" || f.Str("message") != want {
			t.Fatalf("tutorial client got %v, want %q", f, want)
		}
	}
}

// TestTypingFlood: typing frames are charged like any frame; a flood gets
// rate_limited errors and then the connection is closed.
func TestTypingFlood(t *testing.T) {
	cfg := presenceConfig(newFakeClock())
	cfg.RateLimit, cfg.RateBurst, cfg.InvalidFrames = 5, 5, 3
	th := newTestHub(t, memory.NewBus(), cfg)
	c, _ := th.v1(t, "mallory", "r")
	for range 20 {
		_ = c.TrySend([]byte(`{"type":"typing"}`))
	}
	limited := 0
	for {
		f, err := c.TryNext(wstest.Timeout)
		if err != nil {
			break
		}
		if f.Str("type") == "error" && f.Str("code") == CodeRateLimited {
			limited++
		}
	}
	if code, _ := c.WaitClose(t); code != ClosePolicyViolation || limited == 0 {
		t.Fatalf("closed with %d after %d rate_limited errors", code, limited)
	}
}

// TestUnknownTypeAndPresenceOff: an unknown frame type gets an error frame
// naming the types a client may send; with presence off, hello says so, no
// presence frame is sent and typing frames are accepted and dropped.
func TestUnknownTypeAndPresenceOff(t *testing.T) {
	th := newTestHub(t, memory.NewBus(), Config{Echo: true})
	c := th.dial(t, "user=a&room=r")
	if f := c.Next(t); f.Str("type") != "hello" || f["presence"] != false {
		t.Fatalf("hello %v", f)
	}
	c.Send(t, map[string]string{"type": "join"})
	if f := c.Next(t); f.Str("code") != CodeUnknownType {
		t.Fatalf("got %v", f)
	}
	c.Send(t, map[string]string{"type": "typing"})
	c.Send(t, map[string]string{"message": "after"})
	if f := c.Next(t); f.Str("type") != "chat_message" {
		t.Fatalf("got %v, want the message only", f)
	}
}

// TestTypingRelayAllocatesNothingPerRecipient: relaying a typing frame to
// a room's watchers allocates nothing per recipient.
func TestTypingRelayAllocatesNothingPerRecipient(t *testing.T) {
	h := NewHub(Config{SendQueueBytes: 1 << 30, Presence: true})
	h.layer = memory.New(h.Receive)
	conns := pipeConns(t, h, "g", 200)
	r := h.rooms["g"]
	for _, c := range conns {
		c.writing = true
		c.v1 = true
		c.watchIdx = len(r.watchers)
		r.watchers = append(r.watchers, c)
	}
	frame := mustFrame(typingFrame{Type: "typing", User: "x"})
	user := []byte("x")
	reset := func() {
		for _, c := range conns {
			clear(c.queue)
			c.queue, c.queued = c.queue[:0], 0
		}
	}
	r.mu.Lock()
	h.relayTypingLocked(r, user, frame)
	r.mu.Unlock()
	reset()
	allocs := testing.AllocsPerRun(100, func() {
		r.mu.Lock()
		h.relayTypingLocked(r, user, frame)
		r.mu.Unlock()
		reset()
	})
	if allocs != 0 {
		t.Errorf("typing relay to %d watchers allocated %.1f times; want 0", len(conns), allocs)
	}
}

// BenchmarkTypingRelay measures what a typing frame costs a process that
// has 100 members in the room, against BenchmarkBroadcast/100members (a
// chat message to the same room): 100 different typists' frames arrive
// from the layer and are relayed to the 99 other members each, whose
// writers write them to real loopback sockets. It reports ns per delivery.
func BenchmarkTypingRelay(b *testing.B) {
	h := NewHub(Config{SendQueueBytes: 64 << 20, Presence: true})
	h.layer = memory.New(h.Receive)
	conns := pipeConns(b, h, "g", 100)
	r := h.rooms["g"]
	var envs [][]byte
	for i, c := range conns {
		c.user = &chat.User{Username: "typist" + strconv.Itoa(i)}
		c.v1 = true
		c.watchIdx = len(r.watchers)
		r.watchers = append(r.watchers, c)
		envs = append(envs, h.typingEnvelope(c.id, c.user.Username, false))
	}
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		h.Receive("g", envs[i%len(envs)])
		i++
	}
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
	d := float64(b.N * (len(conns) - 1))
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/d, "ns/delivery")
	b.ReportMetric(d/b.Elapsed().Seconds(), "deliveries/s")
}
