// Package layertest is the conformance suite for chat.Layer implementations.
// Every layer (memory, redis) runs it, so they behave the same:
//
//	func TestConformance(t *testing.T) {
//		layertest.Run(t, func(t *testing.T, recv chat.Receiver) chat.Layer { ... })
//	}
//
// The factory must return a new layer instance (a "process") attached to the
// same backend each time it is called within one test; the suite uses fresh
// random group names, so backends may be shared between tests.
package layertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"testing"
	"time"

	chat "github.com/chatd/chat"
)

// NewLayer returns a new layer instance attached to the shared backend that
// delivers to recv. It should register its own cleanup with t.Cleanup.
type NewLayer func(t *testing.T, recv chat.Receiver) chat.Layer

// wait bounds every wait for a delivery; it is a failure timeout, not a
// measurement, and generous so that slow CI machines do not flake.
const wait = 10 * time.Second

// Run runs the whole suite against newLayer.
func Run(t *testing.T, newLayer NewLayer) {
	t.Run("DeliversToEverySubscribedProcess", func(t *testing.T) { testFanout(t, newLayer) })
	t.Run("GroupsAreIsolated", func(t *testing.T) { testIsolation(t, newLayer) })
	t.Run("UnsubscribeStopsDelivery", func(t *testing.T) { testUnsubscribe(t, newLayer) })
	t.Run("SubscribeTwiceDeliversOnce", func(t *testing.T) { testSubscribeTwice(t, newLayer) })
	t.Run("OrderPerPublisher", func(t *testing.T) { testOrder(t, newLayer) })
	t.Run("ConcurrentPublishers", func(t *testing.T) { testConcurrent(t, newLayer) })
	t.Run("BinarySafePayload", func(t *testing.T) { testBinary(t, newLayer) })
	t.Run("HealthyAndClosed", func(t *testing.T) { testClose(t, newLayer) })
}

// inbox records what one layer instance received.
type inbox struct {
	mu   sync.Mutex
	msgs map[string][]string // group -> payloads in arrival order
	ch   chan struct{}       // signalled on every arrival
}

func newInbox() *inbox {
	return &inbox{msgs: make(map[string][]string), ch: make(chan struct{}, 1)}
}

func (in *inbox) recv(group string, msg []byte) {
	in.mu.Lock()
	in.msgs[group] = append(in.msgs[group], string(msg))
	in.mu.Unlock()
	select {
	case in.ch <- struct{}{}:
	default:
	}
}

func (in *inbox) get(group string) []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.msgs[group]...)
}

// waitFor waits until group has n messages and returns them.
func (in *inbox) waitFor(t *testing.T, group string, n int) []string {
	t.Helper()
	deadline := time.After(wait)
	for {
		if got := in.get(group); len(got) >= n {
			return got
		}
		select {
		case <-in.ch:
		case <-deadline:
			t.Fatalf("group %q: got %d messages, want %d", group, len(in.get(group)), n)
		}
	}
}

// settle gives a layer time to deliver anything it wrongly would, before a
// test asserts that nothing arrived. Delivery happens through a marker
// message published after the checked ones: once the marker arrives, any
// earlier message on the same path has arrived too.
//
// settle waits for the marker itself, not for one more message than had
// arrived: with a layer that delivers asynchronously (redis), a checked
// message may still be in flight when settle starts, and counting would then
// return before the marker.
func settle(t *testing.T, ctx context.Context, pub chat.Layer, in *inbox, group string) {
	t.Helper()
	markers := func() int {
		n := 0
		for _, m := range in.get(group) {
			if m == "marker" {
				n++
			}
		}
		return n
	}
	before := markers()
	if err := pub.Publish(ctx, group, []byte("marker")); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(wait)
	for markers() == before {
		select {
		case <-in.ch:
		case <-deadline:
			t.Fatalf("group %q: the marker did not arrive within %v", group, wait)
		}
	}
}

func group(t *testing.T, name string) string {
	t.Helper()
	b := make([]byte, 6)
	_, _ = rand.Read(b)
	return "layertest." + name + "." + hex.EncodeToString(b)
}

func subscribe(t *testing.T, l chat.Layer, g string) {
	t.Helper()
	if err := l.Subscribe(context.Background(), g); err != nil {
		t.Fatalf("Subscribe(%q): %v", g, err)
	}
}

func testFanout(t *testing.T, newLayer NewLayer) {
	ctx := context.Background()
	g := group(t, "fanout")
	var ins []*inbox
	var ls []chat.Layer
	for range 3 {
		in := newInbox()
		l := newLayer(t, in.recv)
		subscribe(t, l, g)
		ins, ls = append(ins, in), append(ls, l)
	}
	// An unsubscribed publisher reaches all three; so does a subscribed one
	// (it gets its own message too, as Channels' group_send does).
	pub := newLayer(t, func(string, []byte) {})
	if err := pub.Publish(ctx, g, []byte("one")); err != nil {
		t.Fatal(err)
	}
	if err := ls[0].Publish(ctx, g, []byte("two")); err != nil {
		t.Fatal(err)
	}
	for i, in := range ins {
		got := in.waitFor(t, g, 2)
		if len(got) != 2 || got[0] != "one" || got[1] != "two" {
			t.Errorf("process %d got %q, want [one two]", i, got)
		}
	}
}

func testIsolation(t *testing.T, newLayer NewLayer) {
	ctx := context.Background()
	a, b := group(t, "a"), group(t, "b")
	inA, inB := newInbox(), newInbox()
	la, lb := newLayer(t, inA.recv), newLayer(t, inB.recv)
	subscribe(t, la, a)
	subscribe(t, lb, b)
	if err := la.Publish(ctx, a, []byte("for-a")); err != nil {
		t.Fatal(err)
	}
	inA.waitFor(t, a, 1)
	settle(t, ctx, la, inB, b)
	if got := inB.get(b); len(got) != 1 || got[0] != "marker" {
		t.Errorf("group b received %q, want only the marker", got)
	}
	if got := inB.get(a); len(got) != 0 {
		t.Errorf("process not subscribed to a received %q", got)
	}
}

func testUnsubscribe(t *testing.T, newLayer NewLayer) {
	ctx := context.Background()
	g, other := group(t, "unsub"), group(t, "other")
	in := newInbox()
	l := newLayer(t, in.recv)
	subscribe(t, l, g)
	subscribe(t, l, other)
	if err := l.Publish(ctx, g, []byte("before")); err != nil {
		t.Fatal(err)
	}
	in.waitFor(t, g, 1)
	if err := l.Unsubscribe(ctx, g); err != nil {
		t.Fatal(err)
	}
	if err := l.Publish(ctx, g, []byte("after")); err != nil {
		t.Fatal(err)
	}
	settle(t, ctx, l, in, other) // same connection, published later
	if got := in.get(g); len(got) != 1 {
		t.Errorf("after Unsubscribe got %q, want only [before]", got)
	}
	// Unsubscribing from a group one is not in is harmless.
	if err := l.Unsubscribe(ctx, group(t, "never")); err != nil {
		t.Errorf("Unsubscribe of unknown group: %v", err)
	}
}

func testSubscribeTwice(t *testing.T, newLayer NewLayer) {
	ctx := context.Background()
	g := group(t, "twice")
	in := newInbox()
	l := newLayer(t, in.recv)
	subscribe(t, l, g)
	subscribe(t, l, g)
	if err := l.Publish(ctx, g, []byte("x")); err != nil {
		t.Fatal(err)
	}
	settle(t, ctx, l, in, g)
	if got := in.get(g); len(got) != 2 || got[0] != "x" {
		t.Errorf("got %q, want [x marker]", got)
	}
}

func testOrder(t *testing.T, newLayer NewLayer) {
	ctx := context.Background()
	g := group(t, "order")
	const n = 2000
	in1, in2 := newInbox(), newInbox()
	subscribe(t, newLayer(t, in1.recv), g)
	subscribe(t, newLayer(t, in2.recv), g)
	pub := newLayer(t, func(string, []byte) {})
	for i := range n {
		if err := pub.Publish(ctx, g, fmt.Appendf(nil, "%d", i)); err != nil {
			t.Fatal(err)
		}
	}
	for p, in := range []*inbox{in1, in2} {
		got := in.waitFor(t, g, n)
		for i, m := range got {
			if m != fmt.Sprint(i) {
				t.Fatalf("process %d: message %d is %q, want %d (order or loss)", p, i, m, i)
			}
		}
	}
}

func testConcurrent(t *testing.T, newLayer NewLayer) {
	ctx := context.Background()
	g := group(t, "concurrent")
	const pubs, each = 8, 250
	in := newInbox()
	subscribe(t, newLayer(t, in.recv), g)
	var wg sync.WaitGroup
	for p := range pubs {
		l := newLayer(t, func(string, []byte) {})
		wg.Go(func() {
			for i := range each {
				if err := l.Publish(ctx, g, fmt.Appendf(nil, "%d:%d", p, i)); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	got := in.waitFor(t, g, pubs*each)
	next := make(map[int]int)
	for _, m := range got {
		var p, i int
		if _, err := fmt.Sscanf(m, "%d:%d", &p, &i); err != nil {
			t.Fatalf("bad payload %q", m)
		}
		if i != next[p] {
			t.Fatalf("publisher %d: got %d, want %d", p, i, next[p])
		}
		next[p]++
	}
	if len(got) != pubs*each {
		t.Errorf("got %d messages, want %d (duplicates?)", len(got), pubs*each)
	}
}

func testBinary(t *testing.T, newLayer NewLayer) {
	ctx := context.Background()
	g := group(t, "binary")
	in := newInbox()
	l := newLayer(t, in.recv)
	subscribe(t, l, g)
	payload := []byte{0, 1, 2, 0xff, '\n', '\r', 0xc3, 0x28, 'x'}
	big := make([]byte, 256<<10)
	for i := range big {
		big[i] = byte(i)
	}
	for _, p := range [][]byte{payload, big, {}} {
		if err := l.Publish(ctx, g, p); err != nil {
			t.Fatal(err)
		}
	}
	got := in.waitFor(t, g, 3)
	if got[0] != string(payload) || got[1] != string(big) || got[2] != "" {
		t.Errorf("payloads changed in transit (lens %d %d %d)", len(got[0]), len(got[1]), len(got[2]))
	}
}

func testClose(t *testing.T, newLayer NewLayer) {
	ctx := context.Background()
	g := group(t, "close")
	in := newInbox()
	l := newLayer(t, in.recv)
	if err := l.Err(); err != nil {
		t.Errorf("fresh layer reports %v", err)
	}
	subscribe(t, l, g)
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if err := l.Publish(ctx, g, []byte("x")); err == nil {
		t.Error("Publish after Close succeeded")
	}
	if err := l.Subscribe(ctx, g); err == nil {
		t.Error("Subscribe after Close succeeded")
	}
	// A closed layer no longer receives.
	other := newLayer(t, func(string, []byte) {})
	in2 := newInbox()
	l2 := newLayer(t, in2.recv)
	subscribe(t, l2, g)
	if err := other.Publish(ctx, g, []byte("y")); err != nil {
		t.Fatal(err)
	}
	in2.waitFor(t, g, 1)
	if got := in.get(g); len(got) != 0 {
		t.Errorf("closed layer received %q", got)
	}
}
