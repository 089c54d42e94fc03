package channelsredis_test

import (
	"context"
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/channelsredis"
	"github.com/chatd/chat/internal/redistest"
	"github.com/chatd/chat/redis"
)

// blackhole is a TCP proxy to a Redis server whose connections can be
// made to swallow every byte both ways while staying open: a peer that
// vanished without a FIN, or a NAT that forgot the flow. Connections made
// afterwards work.
type blackhole struct {
	ln    net.Listener
	to    string
	mu    sync.Mutex
	conns []*bhConn
}

type bhConn struct {
	a, b net.Conn
	dead atomic.Bool
}

func newBlackhole(t *testing.T, to string) *blackhole {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &blackhole{ln: ln, to: to}
	go p.serve()
	t.Cleanup(func() {
		_ = ln.Close()
		p.mu.Lock()
		defer p.mu.Unlock()
		for _, c := range p.conns {
			_ = c.a.Close()
			_ = c.b.Close()
		}
	})
	return p
}

func (p *blackhole) url() string { return "redis://" + p.ln.Addr().String() + "/0" }

func (p *blackhole) serve() {
	for {
		a, err := p.ln.Accept()
		if err != nil {
			return
		}
		b, err := net.Dial("tcp", p.to)
		if err != nil {
			_ = a.Close()
			continue
		}
		c := &bhConn{a: a, b: b}
		p.mu.Lock()
		p.conns = append(p.conns, c)
		p.mu.Unlock()
		go c.pipe(a, b)
		go c.pipe(b, a)
	}
}

func (c *bhConn) pipe(dst, src net.Conn) {
	defer func() { _ = dst.Close(); _ = src.Close() }()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		if err != nil {
			return
		}
		if c.dead.Load() {
			continue
		}
		if _, err := dst.Write(buf[:n]); err != nil {
			return
		}
	}
}

// swallow makes every open connection silent.
func (p *blackhole) swallow() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.dead.Store(true)
	}
}

// TestPubSubLiveness checks the pub/sub connection's liveness ping: when
// the connection stays open but falls silent, the bridge notices (Stats,
// Err meanwhile), makes a new one with its subscriptions, and Django's
// events reach it again. Without the ping the subscription would wait on
// the dead connection for ever.
func TestPubSubLiveness(t *testing.T) {
	srv := redistest.Start(t)
	hole := newBlackhole(t, srv.Addr())
	ctx := context.Background()
	in := newInbound()
	inner, err := redis.New(ctx, redis.Options{URL: srv.URL(), Prefix: "chatd-a:", Logger: quiet()}, func(string, []byte) {})
	if err != nil {
		t.Fatal(err)
	}
	a, err := channelsredis.New(ctx, channelsredis.Options{Kind: channelsredis.KindPubSub, Hosts: []string{hole.url()}, Deployment: "aaaaaaaaaaaaaaaa",
		Inbound: in.fn, PingInterval: 100 * time.Millisecond, Timeout: time.Second, Logger: quiet()}, inner)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	django := open(t, srv, channelsredis.KindPubSub, "bbbbbbbbbbbbbbbb", nil, nil) // stands for the Django side
	if err := a.Subscribe(ctx, chat.PublicRoom("lobby").Key()); err != nil {
		t.Fatal(err)
	}
	if _, err := django.SendChat(ctx, "lobby", []channelsredis.Field{{Key: "message", Value: "before"}}); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the first event", func() bool { return len(in.list()) == 1 })

	hole.swallow()
	waitFor(t, "the bridge to notice the silence", func() bool { return a.Stats().Silent >= 1 })
	// Events sent from now on reach the bridge once it has a new
	// connection (an event that meets the old one is lost, at most once
	// like channels_redis).
	for i := 0; ; i++ {
		if _, err := django.SendChat(ctx, "lobby", []channelsredis.Field{{Key: "message", Value: fmt.Sprint("after ", i)}}); err != nil {
			t.Fatal(err)
		}
		if len(in.list()) > 1 {
			break
		}
		if i > int(patience/(50*time.Millisecond)) {
			t.Fatalf("no event after the connection fell silent; got %q", in.list())
		}
		time.Sleep(50 * time.Millisecond)
	}
	waitFor(t, "the bridge to be healthy again", func() bool { return a.Err() == nil })
}
