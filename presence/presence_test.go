package presence

import (
	"encoding/json"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"
)

// clock is a settable clock shared by the trackers of one test.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2026, 11, 22, 3, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }

func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// net is a set of trackers ("processes") joined by a lossless, ordered
// broadcast, unless a process is cut off.
type net struct {
	clk   *clock
	procs map[uint64]*Tracker
	cut   map[uint64]bool
}

func newNet(ids ...uint64) *net {
	n := &net{clk: newClock(), procs: map[uint64]*Tracker{}, cut: map[uint64]bool{}}
	for _, id := range ids {
		n.procs[id] = New(Config{Self: id, Interval: time.Second, TTL: 3 * time.Second, Now: n.clk.Now})
	}
	return n
}

// tick runs one batch on every process, in id order, delivering what each
// publishes to every process that is not cut off (the sender too, as the
// layer does). It returns the messages' types, for tests that check what
// was sent.
func (n *net) tick() []string {
	var types []string
	ids := make([]uint64, 0, len(n.procs))
	for id := range n.procs {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	for _, id := range ids {
		for _, msg := range n.procs[id].Tick() {
			var w wire
			_ = json.Unmarshal(msg, &w)
			types = append(types, w.T)
			if n.cut[id] {
				continue
			}
			for to, t := range n.procs {
				if !n.cut[to] {
					t.Receive(id, msg)
				}
			}
		}
	}
	return types
}

// settle ticks until nothing but heartbeats is published.
func (n *net) settle(t *testing.T) {
	t.Helper()
	for i := 0; i < 10; i++ {
		quiet := true
		for _, typ := range n.tick() {
			if typ != "h" {
				quiet = false
			}
		}
		if quiet {
			return
		}
	}
	t.Fatal("presence did not settle")
}

func names(ms []Member) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.User
	}
	slices.Sort(out)
	return out
}

func (n *net) want(t *testing.T, room string, users ...string) {
	t.Helper()
	slices.Sort(users)
	for id, tr := range n.procs {
		if n.cut[id] {
			continue
		}
		if got := names(tr.Present(room)); !slices.Equal(got, users) && !(len(got) == 0 && len(users) == 0) {
			t.Errorf("process %d sees %v in %s, want %v", id, got, room, users)
		}
	}
}

func TestMergeAcrossProcesses(t *testing.T) {
	n := newNet(1, 2, 3)
	n.settle(t)
	n.procs[1].Add("chat:lobby", "alice")
	n.procs[2].Add("chat:lobby", "bob")
	n.procs[3].Add("chat:other", "carol")
	n.settle(t)
	n.want(t, "chat:lobby", "alice", "bob")
	n.want(t, "chat:other", "carol")

	// Two tabs of alice, on two processes: she leaves only when both close.
	n.procs[3].Add("chat:lobby", "alice")
	n.settle(t)
	n.procs[1].Remove("chat:lobby", "alice")
	n.settle(t)
	n.want(t, "chat:lobby", "alice", "bob")
	n.procs[3].Remove("chat:lobby", "alice")
	n.settle(t)
	n.want(t, "chat:lobby", "bob")
	if n.procs[1].Online("alice") || !n.procs[1].Online("carol") || n.procs[1].OnlineCount() != 2 {
		t.Errorf("online: alice %v carol %v count %d", n.procs[1].Online("alice"), n.procs[1].Online("carol"), n.procs[1].OnlineCount())
	}
}

func TestDiffCoalesces(t *testing.T) {
	n := newNet(1, 2)
	n.settle(t)
	a, b := n.procs[1], n.procs[2]
	for i := range 50 {
		a.Add("chat:r", fmt.Sprintf("u%02d", i))
	}
	a.Add("chat:r", "flicker")
	a.Remove("chat:r", "flicker") // in and out within one batch: never said
	n.settle(t)
	ch := b.Diff("chat:r")
	if len(ch.Joins) != 50 || len(ch.Leaves) != 0 || ch.Before != 0 || ch.Count != 50 {
		t.Fatalf("diff: %d joins, %d leaves, %d -> %d", len(ch.Joins), len(ch.Leaves), ch.Before, ch.Count)
	}
	if again := b.Diff("chat:r"); !again.Empty() || again.Count != 50 {
		t.Fatalf("second diff not empty: %+v", again)
	}
	if len(b.ChangedRooms()) != 0 {
		t.Fatalf("rooms still changed: %v", b.ChangedRooms())
	}
	// A leave and a rejoin within one batch, on the other process: no change.
	a.Remove("chat:r", "u00")
	n.tick()
	a.Add("chat:r", "u00")
	n.settle(t)
	if ch := b.Diff("chat:r"); !ch.Empty() {
		t.Fatalf("leave and rejoin announced: %+v", ch)
	}
	ms, count, has := b.Told("chat:r", 10, "u49") // over the limit: the count only
	if len(ms) != 0 || count != 50 || !has {
		t.Fatalf("Told: %d members, count %d, has %v", len(ms), count, has)
	}
	ms, _, has = b.Told("chat:r", -1, "u49")
	if len(ms) != 50 || !has {
		t.Fatalf("Told all: %d members, has %v", len(ms), has)
	}
}

func TestSilentProcessExpires(t *testing.T) {
	n := newNet(1, 2)
	n.settle(t)
	n.procs[1].Add("chat:r", "alice")
	n.procs[2].Add("chat:r", "bob")
	n.settle(t)
	n.want(t, "chat:r", "alice", "bob")
	if ch := n.procs[1].Diff("chat:r"); len(ch.Joins) != 2 {
		t.Fatalf("joins: %+v", ch)
	}

	// Process 2 is cut off (or killed): process 1 drops it after the TTL.
	n.cut[2] = true
	n.clk.Advance(2900 * time.Millisecond)
	n.tick()
	n.want(t, "chat:r", "alice", "bob")
	n.clk.Advance(200 * time.Millisecond)
	n.tick()
	n.want(t, "chat:r", "alice")
	if ch := n.procs[1].Diff("chat:r"); !slices.Equal(ch.Leaves, []string{"bob"}) || len(ch.Joins) != 0 || ch.Count != 1 {
		t.Errorf("bob's leave not in %+v", ch)
	}

	// The cut-off process comes back (its layer reconnects): both see both.
	delete(n.cut, 2)
	n.procs[2].Restored()
	n.settle(t)
	n.want(t, "chat:r", "alice", "bob")
}

func TestLostMessageIsRepaired(t *testing.T) {
	n := newNet(1, 2)
	n.settle(t)
	a, b := n.procs[1], n.procs[2]
	a.Add("chat:r", "alice")
	n.settle(t)
	// A delta that the layer loses.
	a.Add("chat:r", "zed")
	a.Remove("chat:r", "alice")
	if msgs := a.Tick(); len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	// The next delta shows b the gap; b asks for a snapshot and gets it.
	a.Add("chat:r", "yann")
	n.settle(t)
	n.want(t, "chat:r", "zed", "yann")

	// A lost last delta is found through the heartbeat's number.
	a.Remove("chat:r", "yann")
	a.Tick()
	n.clk.Advance(time.Second)
	n.settle(t)
	n.want(t, "chat:r", "zed")
	_ = b
}

func TestGoodbye(t *testing.T) {
	n := newNet(1, 2)
	n.settle(t)
	n.procs[2].Add("chat:r", "bob")
	n.settle(t)
	n.procs[1].Receive(2, n.procs[2].Goodbye())
	if got := n.procs[1].Present("chat:r"); len(got) != 0 || n.procs[1].Processes() != 0 {
		t.Fatalf("after goodbye: %v, %d processes", got, n.procs[1].Processes())
	}
}

func TestNewcomerLearnsEveryone(t *testing.T) {
	n := newNet(1, 2)
	n.settle(t)
	n.procs[1].Add("chat:r", "alice")
	n.procs[2].Add("chat:r", "bob")
	n.settle(t)
	n.procs[3] = New(Config{Self: 3, Interval: time.Second, Now: n.clk.Now})
	n.settle(t)
	n.want(t, "chat:r", "alice", "bob")
	if n.procs[3].Processes() != 2 {
		t.Errorf("newcomer knows %d processes", n.procs[3].Processes())
	}
}

func TestSinceIsEarliest(t *testing.T) {
	n := newNet(1, 2)
	n.settle(t)
	n.procs[1].Add("chat:r", "alice")
	first := n.clk.Now()
	n.settle(t)
	n.clk.Advance(time.Minute)
	n.procs[2].Add("chat:r", "alice")
	n.settle(t)
	for id, tr := range n.procs {
		ms := tr.Present("chat:r")
		if len(ms) != 1 || !ms[0].Since.Equal(first.Truncate(time.Millisecond)) && !ms[0].Since.Equal(first) {
			t.Errorf("process %d: %v, want alice since %v", id, ms, first)
		}
	}
}

func TestBadMessages(t *testing.T) {
	tr := New(Config{Self: 1})
	for _, m := range []string{``, `[]`, `{"t":"x"}`, `{"t":"d","n":"x"}`} {
		if tr.Receive(2, []byte(m)) {
			t.Errorf("accepted %q", m)
		}
	}
	if !tr.Receive(1, []byte(`garbage`)) {
		t.Error("own message not ignored")
	}
}

// TestConcurrentUse runs Add, Remove, Tick, Receive and Diff at once (for
// the race detector).
func TestConcurrentUse(t *testing.T) {
	a := New(Config{Self: 1})
	b := New(Config{Self: 2})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				u := fmt.Sprintf("u%d-%d", w, i%20)
				a.Add("chat:r", u)
				if i%3 == 0 {
					a.Remove("chat:r", u)
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 200 {
			for _, m := range a.Tick() {
				b.Receive(1, m)
			}
			for _, r := range b.ChangedRooms() {
				b.Diff(r)
			}
			b.Present("chat:r")
			b.Told("chat:r", 10, "x")
		}
	}()
	wg.Wait()
}

// BenchmarkConnectStorm is the tracker's share of 15,000 connections
// arriving in one room: Add per connection, a Tick and a Diff per batch of
// 500, on the publishing process and on one receiving process.
func BenchmarkConnectStorm(b *testing.B) {
	for b.Loop() {
		a, r := New(Config{Self: 1}), New(Config{Self: 2})
		for i := range 15000 {
			a.Add("chat:big", "guest-"+fmt.Sprint(i))
			if i%500 == 499 {
				for _, m := range a.Tick() {
					r.Receive(1, m)
				}
				r.Diff("chat:big")
				a.Diff("chat:big")
			}
		}
	}
}

// TestLeaveGrace: a user gone for less than LeaveGrace (a reload, a tab
// moving to another process) is never announced as leaving; one gone for
// longer is, at the first Diff after the grace.
func TestLeaveGrace(t *testing.T) {
	clk := newClock()
	tr := New(Config{Self: 1, LeaveGrace: time.Second, Now: clk.Now})
	tr.Add("chat:r", "alice")
	tr.Add("chat:r", "bob")
	tr.Diff("chat:r")
	tr.Remove("chat:r", "alice") // a reload: back 600 ms later
	clk.Advance(600 * time.Millisecond)
	if ch := tr.Diff("chat:r"); !ch.Empty() {
		t.Fatalf("announced during the grace: %+v", ch)
	}
	tr.Add("chat:r", "alice")
	tr.Remove("chat:r", "bob") // bob really goes
	clk.Advance(600 * time.Millisecond)
	if ch := tr.Diff("chat:r"); !ch.Empty() || len(tr.ChangedRooms()) != 1 {
		t.Fatalf("announced during the grace: %+v", ch)
	}
	clk.Advance(500 * time.Millisecond)
	if ch := tr.Diff("chat:r"); !slices.Equal(ch.Leaves, []string{"bob"}) || len(ch.Joins) != 0 || ch.Count != 1 {
		t.Fatalf("after the grace: %+v", ch)
	}
	if len(tr.ChangedRooms()) != 0 {
		t.Fatal("room still changed")
	}
}
