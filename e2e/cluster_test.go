package e2e_test

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chat/internal/redistest"
	"github.com/chatd/chat/internal/testserver"
)

// cluster starts n chatd processes on one private Redis and one database
// (env from stores): one deployment, many machines.
func cluster(t *testing.T, n int, env []string) (*redistest.Server, []*testserver.Server) {
	t.Helper()
	rs := redistest.Start(t)
	env = append(env, "CHANNEL_LAYER=redis", "REDIS_URL="+rs.URL(), "RATE_LIMIT=0", "SEND_QUEUE_BYTES=33554432")
	var procs []*testserver.Server
	for range n {
		procs = append(procs, testserver.Start(t, nil, env...))
	}
	return rs, procs
}

// TestTwoProcessesOneRoom: 20 senders on two chatd processes (Redis layer,
// one database) send 10,000 messages into one room at once: the room's
// seqs are 1..10,000 with no gap, every client's log is the same, and each
// client's frames come in increasing seq. (G3, G4 across processes)
func TestTwoProcessesOneRoom(t *testing.T) {
	stores(t, func(t *testing.T, env []string) {
		_, procs := cluster(t, 2, env)
		const senders, perSender = 20, 500
		var clients []*chatClient
		for i := range senders {
			p := procs[i%2]
			cc := newChatClient(t, fmt.Sprintf("sender%d@%s", i, p.Addr), func() string { return wsURL(p, "/ws/chat/busy/") })
			cc.connect()
			clients = append(clients, cc)
		}
		for k := range perSender {
			for i, cc := range clients {
				if err := cc.send(fmt.Sprintf("%d-%d", i, k), fmt.Sprintf("%d from %d", k, i)); err != nil {
					t.Fatal(err)
				}
			}
		}
		const n = senders * perSender
		for _, cc := range clients {
			if err := cc.pump(func() bool { return cc.last == n && len(cc.acked) == perSender }); err != nil {
				t.Fatalf("%s: %v", cc.name, err)
			}
		}
		checkHistory(t, history(t, procs[0].URL, "/api/chat/busy/messages", ""), clients...)
	})
}

// TestLostSubscription: two processes under traffic while Redis is
// restarted, every pub/sub connection is killed (CLIENT KILL TYPE pubsub)
// and the pub/sub output buffer limit is tiny: every client still ends with
// the same gap-free log (what the layer lost is read from the store), and
// /readyz reports the flapping subscription.
func TestLostSubscription(t *testing.T) {
	stores(t, func(t *testing.T, env []string) {
		rs, procs := cluster(t, 2, env)
		var clients []*chatClient
		for i := range 6 {
			p := procs[i%2]
			cc := newChatClient(t, fmt.Sprintf("client%d@%s", i, p.Addr), func() string { return wsURL(p, "/ws/chat/flaky/") })
			cc.connect()
			clients = append(clients, cc)
		}
		sent := 0
		burst := func(size int) {
			t.Helper()
			for k := range size {
				for i, cc := range clients[:4] { // four senders, two readers
					if err := cc.send(fmt.Sprintf("%d-%d", i, sent+k), fmt.Sprintf("%s %d from %d", strings.Repeat("x", 200), sent+k, i)); err != nil {
						t.Fatal(err)
					}
				}
			}
			sent += size
			for _, cc := range clients[:4] {
				if err := cc.pump(func() bool { return len(cc.acked) == sent }); err != nil {
					t.Fatalf("%s: %v", cc.name, err)
				}
			}
		}
		ready := func(p *testserver.Server) (int, string) { return get(t, p.URL+"/readyz") }
		waitReady := func(want int, contains string) {
			t.Helper()
			for _, p := range procs {
				for deadline := time.Now().Add(patience); ; time.Sleep(20 * time.Millisecond) {
					code, body := ready(p)
					if code == want && strings.Contains(body, contains) {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("%s /readyz: %d %s; want %d with %q", p.Addr, code, body, want, contains)
					}
				}
			}
		}

		burst(50)
		// Redis restarts under traffic: messages published meanwhile are
		// lost by the layer; they are stored, so they are not lost.
		rs.Kill()
		burst(30) // stored and acknowledged while Redis is down
		rs.Restart()
		waitReady(200, `"layer":"ok"`)
		burst(30)

		// Every pub/sub connection killed, three times: a flapping
		// subscription, which /readyz reports (with the restart above,
		// each process has been restored four times within a minute).
		for range 3 {
			for deadline := time.Now().Add(patience); rs.PubsubClients() != 2; time.Sleep(20 * time.Millisecond) {
				if time.Now().After(deadline) {
					t.Fatal("the chatd processes did not resubscribe")
				}
			}
			rs.Do("CLIENT", "KILL", "TYPE", "pubsub")
			burst(20)
		}
		waitReady(503, "lost and restored")

		// A tiny pub/sub output buffer: Redis disconnects a subscriber
		// that falls behind a burst of large messages.
		rs.Do("CONFIG", "SET", "client-output-buffer-limit", "pubsub 16384 8192 1")
		burst(100)
		rs.Do("CONFIG", "SET", "client-output-buffer-limit", "pubsub 32mb 8mb 60")
		burst(10)

		msgs := history(t, procs[0].URL, "/api/chat/flaky/messages", "")
		if len(msgs) != 4*sent {
			t.Fatalf("%d stored, want %d", len(msgs), 4*sent)
		}
		for _, cc := range clients {
			if err := cc.pump(func() bool { return cc.last == int64(len(msgs)) }); err != nil {
				t.Fatalf("%s: %v", cc.name, err)
			}
		}
		checkHistory(t, msgs, clients...)
	})
}
