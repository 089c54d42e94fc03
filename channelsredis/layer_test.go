package channelsredis_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/channelsredis"
	"github.com/chatd/chat/internal/redistest"
	"github.com/chatd/chat/layertest"
	"github.com/chatd/chat/redis"
	goredis "github.com/redis/go-redis/v9"
)

// patience bounds every wait: a failure bound, not a measurement.
const patience = 30 * time.Second

func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// inbound records the Django events one process took.
type inbound struct {
	mu  sync.Mutex
	got []string // room + ":" + message
	ch  chan struct{}
}

func newInbound() *inbound { return &inbound{ch: make(chan struct{}, 100)} }

func (in *inbound) fn(_ context.Context, room chat.Room, ev channelsredis.Event) {
	msg, _ := ev.String("message")
	name := room.Name
	if room.Kind != chat.RoomPublic {
		name = room.Key()
	}
	in.mu.Lock()
	in.got = append(in.got, name+":"+msg)
	in.mu.Unlock()
	in.ch <- struct{}{}
}

func (in *inbound) list() []string {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]string(nil), in.got...)
}

// open returns a Layer (one chatd "process") of deployment dep.
func open(t *testing.T, srv *redistest.Server, kind, dep string, in *inbound, recv chat.Receiver) *channelsredis.Layer {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), patience)
	defer cancel()
	if recv == nil {
		recv = func(string, []byte) {}
	}
	inner, err := redis.New(ctx, redis.Options{URL: srv.URL(), Prefix: "chatd-" + dep + ":", Logger: quiet()}, recv)
	if err != nil {
		t.Fatal(err)
	}
	opt := channelsredis.Options{Kind: kind, Hosts: []string{srv.URL()}, Deployment: dep, Logger: quiet()}
	if in != nil {
		opt.Inbound = in.fn
	}
	l, err := channelsredis.New(ctx, opt, inner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func TestConformance(t *testing.T) {
	srv := redistest.Start(t)
	for _, kind := range []string{channelsredis.KindCore, channelsredis.KindPubSub} {
		t.Run(kind, func(t *testing.T) {
			layertest.Run(t, func(t *testing.T, recv chat.Receiver) chat.Layer {
				return open(t, srv, kind, "0123456789abcdef", nil, recv)
			})
		})
	}
}

// waitFor waits until cond holds.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(patience)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBridge checks the bridge between deployments: what one chatd
// deployment sends reaches the other's Inbound exactly once however many
// processes it has, never its own processes, and events of other types
// are ignored.
func TestBridge(t *testing.T) {
	for _, kind := range []string{channelsredis.KindCore, channelsredis.KindPubSub} {
		t.Run(kind, func(t *testing.T) {
			srv := redistest.Start(t)
			ctx := context.Background()
			// Deployment A has two processes in room lobby; B one.
			inA1, inA2, inB := newInbound(), newInbound(), newInbound()
			a1 := open(t, srv, kind, "aaaaaaaaaaaaaaaa", inA1, nil)
			a2 := open(t, srv, kind, "aaaaaaaaaaaaaaaa", inA2, nil)
			b := open(t, srv, kind, "bbbbbbbbbbbbbbbb", inB, nil)
			for _, l := range []*channelsredis.Layer{a1, a2, b} {
				if err := l.Subscribe(ctx, chat.PublicRoom("lobby").Key()); err != nil {
					t.Fatal(err)
				}
			}
			const n = 20
			for i := range n {
				if _, err := b.SendChat(ctx, "lobby", []channelsredis.Field{{Key: "message", Value: fmt.Sprint("from b ", i)}, {Key: "user", Value: "bob"}}); err != nil {
					t.Fatal(err)
				}
			}
			if _, err := a1.SendChat(ctx, "lobby", []channelsredis.Field{{Key: "message", Value: "from a"}}); err != nil {
				t.Fatal(err)
			}
			// A's processes together take B's messages exactly once each, in
			// order; B gets A's once; nobody gets its own deployment's.
			waitFor(t, "B's messages in A", func() bool { return len(inA1.list())+len(inA2.list()) >= n })
			waitFor(t, "A's message in B", func() bool { return len(inB.list()) >= 1 })
			// A marker from B, sent last, shows that nothing else is on its way.
			if _, err := b.SendChat(ctx, "lobby", []channelsredis.Field{{Key: "message", Value: "marker"}}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the marker", func() bool { return len(inA1.list())+len(inA2.list()) == n+1 })
			all := append(inA1.list(), inA2.list()...)
			if len(all) != n+1 {
				t.Fatalf("A took %d events, want %d: %q", len(all), n+1, all)
			}
			// One process holds the room's lease while events keep coming.
			one := inA1.list()
			if len(one) == 0 {
				one = inA2.list()
			}
			for i := range n {
				if one[i] != fmt.Sprint("lobby:from b ", i) {
					t.Fatalf("event %d is %q (order or duplicates): %q", i, one[i], one)
				}
			}
			if got := inB.list(); len(got) != 1 || got[0] != "lobby:from a" {
				t.Errorf("B got %q, want only A's message", got)
			}
			// Every event reaches both of A's processes: one takes it, the
			// other skips it, each when its own copy arrives.
			waitFor(t, "A's processes to count every event", func() bool {
				st, st2 := a1.Stats(), a2.Stats()
				return st.Received+st2.Received == n+1 && st.Skipped+st2.Skipped == n+1
			})
		})
	}
}

// TestUnknownTypeAndGarbage checks that what a Django project may put in a
// group besides chat messages is ignored, and the room goes on.
func TestUnknownTypeAndGarbage(t *testing.T) {
	for _, kind := range []string{channelsredis.KindCore, channelsredis.KindPubSub} {
		t.Run(kind, func(t *testing.T) {
			srv := redistest.Start(t)
			ctx := context.Background()
			in := newInbound()
			l := open(t, srv, kind, "aaaaaaaaaaaaaaaa", in, nil)
			other := open(t, srv, kind, "bbbbbbbbbbbbbbbb", nil, nil)
			if err := l.Subscribe(ctx, chat.PublicRoom("lobby").Key()); err != nil {
				t.Fatal(err)
			}
			rc := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
			defer rc.Close()
			// Garbage straight into the inbox or the channel.
			if kind == channelsredis.KindCore {
				key := "asgi" + l.ChannelName("chat_lobby")[:strings.Index(l.ChannelName("chat_lobby"), "!")+1]
				if err := rc.ZAdd(ctx, key, goredis.Z{Score: 1, Member: "123456789012\xc1garbage"}).Err(); err != nil {
					t.Fatal(err)
				}
			} else if err := rc.Publish(ctx, "asgi__group__chat_lobby", "\xc1garbage").Err(); err != nil {
				t.Fatal(err)
			}
			// An event of another type (SendChat always says chat_message,
			// so the event type setting is used to send one).
			_ = other
			weird := openWithType(t, srv, kind, "cccccccccccccccc", "user.joined")
			if _, err := weird.SendChat(ctx, "lobby", []channelsredis.Field{{Key: "message", Value: "not chat"}}); err != nil {
				t.Fatal(err)
			}
			if _, err := other.SendChat(ctx, "lobby", []channelsredis.Field{{Key: "message", Value: "after"}}); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "the chat message", func() bool { return len(in.list()) == 1 })
			waitFor(t, "the counters", func() bool { st := l.Stats(); return st.Ignored == 1 && st.Undecodable == 1 })
			if got := in.list(); got[0] != "lobby:after" {
				t.Errorf("got %q", got)
			}
		})
	}
}

func openWithType(t *testing.T, srv *redistest.Server, kind, dep, typ string) *channelsredis.Layer {
	t.Helper()
	ctx := context.Background()
	inner, err := redis.New(ctx, redis.Options{URL: srv.URL(), Prefix: "chatd-" + dep + ":", Logger: quiet()}, func(string, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	l, err := channelsredis.New(ctx, channelsredis.Options{Kind: kind, Hosts: []string{srv.URL()}, Deployment: dep, EventType: typ, Logger: quiet()}, inner)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

// TestCapacityReported fills a Django process's inbox (core) and checks
// that the drops channels_redis makes silently are counted.
func TestCapacityReported(t *testing.T) {
	srv := redistest.Start(t)
	ctx := context.Background()
	l := open(t, srv, channelsredis.KindCore, "aaaaaaaaaaaaaaaa", nil, nil)
	rc := goredis.NewClient(&goredis.Options{Addr: srv.Addr()})
	defer rc.Close()
	// A Django consumer that never reads: a member of the group.
	member := "specific.0123456789abcdef0123456789abcdef!feedface"
	if err := rc.ZAdd(ctx, "asgi:group:chat_lobby", goredis.Z{Score: float64(time.Now().Unix()), Member: member}).Err(); err != nil {
		t.Fatal(err)
	}
	full := 0
	for i := range 105 {
		n, err := l.SendChat(ctx, "lobby", []channelsredis.Field{{Key: "message", Value: fmt.Sprint(i)}})
		if err != nil {
			t.Fatal(err)
		}
		full += n
	}
	if full != 5 || l.Stats().Full != 5 {
		t.Errorf("full = %d, stats %+v; want 5", full, l.Stats())
	}
	if n := rc.ZCard(ctx, "asgispecific.0123456789abcdef0123456789abcdef!").Val(); n != 100 {
		t.Errorf("inbox holds %d, want 100", n)
	}
	if ttl := rc.TTL(ctx, "asgispecific.0123456789abcdef0123456789abcdef!").Val(); ttl <= 0 || ttl > 60*time.Second {
		t.Errorf("inbox ttl %v, want <= 60s", ttl)
	}
	// A member that joined more than a day ago is gone after a send, as
	// channels_redis's group_send removes it.
	if err := rc.ZAdd(ctx, "asgi:group:chat_lobby", goredis.Z{Score: float64(time.Now().Add(-25 * time.Hour).Unix()), Member: member}).Err(); err != nil {
		t.Fatal(err)
	}
	if _, err := l.SendChat(ctx, "lobby", []channelsredis.Field{{Key: "message", Value: "x"}}); err != nil {
		t.Fatal(err)
	}
	if n := rc.ZCard(ctx, "asgi:group:chat_lobby").Val(); n != 0 {
		t.Errorf("group has %d members, want 0", n)
	}
}
