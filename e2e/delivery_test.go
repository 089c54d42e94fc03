// Package e2e_test holds end-to-end tests of chatd's delivery guarantees
// (README, "Delivery guarantees"): real chatd processes, real sockets, real
// databases, and real failures – SIGKILL, SIGTERM, cut TCP connections, a
// restarted or misbehaving Redis.
package e2e_test

import (
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/chatd/chat/internal/pgtest"
	"github.com/chatd/chat/internal/testserver"
	"github.com/chatd/chat/internal/wstest"
)

// stores are the databases each test runs on: SQLite always, PostgreSQL
// when CHATD_TEST_POSTGRES_URL is set (CI sets it).
func stores(t *testing.T, run func(t *testing.T, env []string)) {
	t.Run("sqlite", func(t *testing.T) { run(t, []string{"DATA_DIR=" + t.TempDir()}) })
	t.Run("postgres", func(t *testing.T) {
		if os.Getenv("CHATD_TEST_POSTGRES_URL") == "" {
			t.Skip("CHATD_TEST_POSTGRES_URL is not set")
		}
		_, url := pgtest.Schema(t, "e2e")
		run(t, []string{"DATABASE_URL=" + url, "DATA_DIR=" + t.TempDir()})
	})
}

// spareAddr returns a loopback address that was free a moment ago, so a
// restarted server can listen where its clients reconnect.
func spareAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// TestKill9: clients send messages with ids while the server is killed with
// SIGKILL and restarted on the same database; after reconnecting with
// ?after= and retrying every unacknowledged id, every acknowledged message
// is stored exactly once, the seqs are 1..N without a gap, and every
// client's log is that same sequence. (G1, G2, G3, G4)
func TestKill9(t *testing.T) {
	stores(t, func(t *testing.T, env []string) {
		addr := spareAddr(t)
		env = append(env, "RATE_LIMIT=0")
		args := []string{"-addr", addr}
		srv := testserver.Start(t, args, env...)
		base := func() string { return "ws://" + addr + "/ws/chat/kill9/" }

		const senders, perSender = 3, 120
		var clients []*chatClient
		for i := range senders {
			clients = append(clients, newChatClient(t, fmt.Sprintf("sender%d", i), base))
		}
		observer := newChatClient(t, "observer", base)
		for _, cc := range append(clients, observer) {
			cc.connect()
		}
		id := func(i, k int) string { return fmt.Sprintf("s%d-%d", i, k) }
		// The first half of every sender's messages goes out at once,
		// unacknowledged, and the server is killed right after: some are
		// committed, some are not, some acks are lost on the way.
		for i, cc := range clients {
			for k := range perSender / 2 {
				if err := cc.send(id(i, k), fmt.Sprintf("message %d of %d", k, i)); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := srv.Cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = srv.Wait(t, patience)
		for _, cc := range append(clients, observer) {
			if err := cc.pump(func() bool { return false }); !errors.Is(err, wstest.ErrClosed) {
				t.Fatalf("%s: %v, want the connection to end", cc.name, err)
			}
		}
		srv = testserver.Start(t, args, env...)

		// Reconnect with resume, retry every unacknowledged id, then send
		// the second half; wait until everything is acknowledged.
		for _, cc := range append(clients, observer) {
			cc.connect()
		}
		for i, cc := range clients {
			for k := range perSender {
				if !cc.acked[id(i, k)] {
					if err := cc.send(id(i, k), fmt.Sprintf("message %d of %d", k, i)); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		for i, cc := range clients {
			if err := cc.pump(func() bool { return len(cc.acked) == perSender }); err != nil {
				t.Fatalf("sender %d: %v", i, err)
			}
			if len(cc.errors) > 0 {
				t.Errorf("sender %d got error frames: %v", i, cc.errors)
			}
		}
		msgs := history(t, srv.URL, "/api/chat/kill9/messages", "")
		if len(msgs) != senders*perSender {
			t.Fatalf("%d messages stored, want %d (each id once)", len(msgs), senders*perSender)
		}
		n := int64(len(msgs))
		for _, cc := range append(clients, observer) {
			if err := cc.pump(func() bool { return cc.last == n }); err != nil {
				t.Fatalf("%s: %v", cc.name, err)
			}
		}
		checkHistory(t, msgs, append(clients, observer)...)
	})
}

// TestCutConnection: a client's TCP connection is cut under it while 500
// messages are sent; it reconnects with ?after= and receives exactly those
// 500, in order. (G4)
func TestCutConnection(t *testing.T) {
	stores(t, func(t *testing.T, env []string) {
		srv := testserver.Start(t, nil, append(env, "RATE_LIMIT=0")...)
		p := newProxy(t, srv.Addr)
		viaProxy := true
		reader := newChatClient(t, "reader", func() string {
			if viaProxy {
				return "ws://" + p.addr() + "/ws/chat/cut/"
			}
			return wsURL(srv, "/ws/chat/cut/")
		})
		sender := newChatClient(t, "sender", func() string { return wsURL(srv, "/ws/chat/cut/") })
		reader.connect()
		sender.connect()
		if err := sender.send("first", "before the cut"); err != nil {
			t.Fatal(err)
		}
		if err := reader.pump(func() bool { return reader.last == 1 }); err != nil {
			t.Fatal(err)
		}
		p.cut()
		if err := reader.pump(func() bool { return false }); !errors.Is(err, wstest.ErrClosed) {
			t.Fatalf("reader: %v, want the connection to end", err)
		}
		for k := range 500 {
			if err := sender.send(fmt.Sprint("m", k), fmt.Sprint("while away ", k)); err != nil {
				t.Fatal(err)
			}
		}
		if err := sender.pump(func() bool { return len(sender.acked) == 501 }); err != nil {
			t.Fatal(err)
		}
		viaProxy = false
		reader.connect()
		if err := reader.pump(func() bool { return reader.last == 501 }); err != nil {
			t.Fatal(err)
		}
		for k := range 500 {
			if got, want := reader.texts[int64(k+2)], fmt.Sprint("while away ", k); got != want {
				t.Fatalf("seq %d: %q, want %q", k+2, got, want)
			}
		}
		checkHistory(t, history(t, srv.URL, "/api/chat/cut/messages", ""), reader, sender)
	})
}

// TestSIGTERMUnderTraffic: SIGTERM while clients send: every socket closes
// with 1001, in-flight commits finish, and nothing acknowledged is lost
// (read back after a restart on the same database). (G6)
func TestSIGTERMUnderTraffic(t *testing.T) {
	stores(t, func(t *testing.T, env []string) {
		addr := spareAddr(t)
		env = append(env, "RATE_LIMIT=0")
		args := []string{"-addr", addr}
		srv := testserver.Start(t, args, env...)
		base := func() string { return "ws://" + addr + "/ws/chat/term/" }
		var clients []*chatClient
		for i := range 4 {
			cc := newChatClient(t, fmt.Sprint("sender", i), base)
			cc.connect()
			clients = append(clients, cc)
		}
		for i, cc := range clients {
			for k := range 200 {
				if err := cc.send(fmt.Sprintf("%d-%d", i, k), "x"); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := srv.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		for _, cc := range clients {
			if err := cc.pump(func() bool { return false }); !errors.Is(err, wstest.ErrClosed) {
				t.Fatalf("%s: %v", cc.name, err)
			}
			if code, reason := cc.c.WaitClose(t); code != 1001 {
				t.Errorf("%s: closed with %d %q, want 1001", cc.name, code, reason)
			}
		}
		if err := srv.Wait(t, patience); err != nil {
			t.Fatalf("chatd exited with %v after SIGTERM", err)
		}
		srv = testserver.Start(t, args, env...)
		msgs := history(t, srv.URL, "/api/chat/term/messages", "")
		stored := map[string]int64{}
		for _, m := range msgs {
			stored[fmt.Sprint(m["id"])] = int64(m["seq"].(float64))
		}
		acked := 0
		for _, cc := range clients {
			for id, seq := range cc.ids {
				acked++
				if stored[id] != seq {
					t.Errorf("%s: %s was acknowledged as seq %d but the store has %d", cc.name, id, seq, stored[id])
				}
			}
		}
		checkHistory(t, msgs)
		t.Logf("%d of 800 messages were acknowledged before the shutdown; %d stored", acked, len(msgs))
	})
}
