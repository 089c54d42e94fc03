package ws

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/wstest"
	"github.com/chatd/chat/memory"
)

// access is a per-user verdict the test changes while sockets are open.
type access struct {
	mu  sync.Mutex
	err map[string]error // guarded by mu
}

func (a *access) set(user string, err error) {
	a.mu.Lock()
	a.err[user] = err
	a.mu.Unlock()
}

func (a *access) check(user string) func(context.Context) error {
	return func(context.Context) error {
		a.mu.Lock()
		defer a.mu.Unlock()
		return a.err[user]
	}
}

func newRecheckHub(t *testing.T, bus *memory.Bus) (*Hub, *access, string) {
	t.Helper()
	h := NewHub(Config{Echo: true})
	l := bus.Attach(h.Receive)
	if err := h.Start(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	acc := &access{err: map[string]error{}}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := r.URL.Query().Get("user")
		h.Accept(w, r, JoinOptions{Group: "course:1", Room: "course:1", User: &chat.User{ID: 1, Username: user}, Recheck: acc.check(user)})
	}))
	t.Cleanup(func() {
		_ = h.Shutdown(context.Background())
		srv.Close()
		_ = l.Close()
	})
	return h, acc, srv.URL
}

func dialUser(t *testing.T, base, user string) *wstest.Client {
	t.Helper()
	c := wstest.Dial(t, wstest.WSURL(base, "/?user="+user), wstest.Options{Subprotocol: Subprotocol})
	if f := c.Next(t); f.Str("type") != "hello" {
		t.Fatalf("first frame %v", f)
	}
	return c
}

func TestRecheckBeforeSend(t *testing.T) {
	_, acc, base := newRecheckHub(t, memory.NewBus())
	alice, olga := dialUser(t, base, "alice"), dialUser(t, base, "olga")

	// A transient failure refuses the message and keeps the connection.
	acc.set("alice", errors.New("database is down"))
	alice.Send(t, map[string]string{"message": "lost"})
	if f := alice.Next(t); f.Str("type") != "error" || f.Str("code") != CodeUnavailable {
		t.Fatalf("got %v, want an unavailable error frame", f)
	}
	acc.set("alice", nil)
	alice.Send(t, map[string]string{"message": "ok"})
	if f := olga.Next(t); f.Str("message") != "ok" {
		t.Fatalf("olga got %v, want ok (and never lost)", f)
	}
	alice.Next(t)

	// Access gone: the message is not sent, the socket closes with 1008.
	acc.set("alice", chat.Errorf(chat.EFORBIDDEN, "no longer enrolled"))
	alice.Send(t, map[string]string{"message": "not for olga"})
	if code, reason := alice.WaitClose(t); code != ClosePolicyViolation || reason != "no longer enrolled" {
		t.Errorf("close %d %q", code, reason)
	}
	olga.Send(t, map[string]string{"message": "mine"})
	if f := olga.Next(t); f.Str("message") != "mine" {
		t.Errorf("olga got %v, want her own message first", f)
	}
}

func TestHubRecheck(t *testing.T) {
	h, acc, base := newRecheckHub(t, memory.NewBus())
	alice, olga := dialUser(t, base, "alice"), dialUser(t, base, "olga")
	acc.set("olga", errors.New("transient"))
	if n := h.Recheck(context.Background()); n != 0 {
		t.Fatalf("closed %d with access intact", n)
	}
	acc.set("alice", chat.Errorf(chat.EUNAUTHORIZED, "session ended"))
	if n := h.Recheck(context.Background()); n != 1 {
		t.Fatalf("closed %d, want 1", n)
	}
	if code, reason := alice.WaitClose(t); code != ClosePolicyViolation || reason != "session ended" {
		t.Errorf("close %d %q", code, reason)
	}
	if olga.Closed() {
		t.Error("a transient error closed olga")
	}
}

// TestPublishControl: a process without a hub (the admin command) closes a
// user's sockets in one group on every hub attached to the layer.
func TestPublishControl(t *testing.T) {
	bus := memory.NewBus()
	_, _, base1 := newRecheckHub(t, bus)
	_, _, base2 := newRecheckHub(t, bus)
	a1, a2, olga := dialUser(t, base1, "alice"), dialUser(t, base2, "alice"), dialUser(t, base1, "olga")
	admin := bus.Attach(func(string, []byte) {})
	defer admin.Close()
	if err := PublishControl(context.Background(), admin, Control{}); err == nil {
		t.Error("PublishControl without a selector succeeded")
	}
	if err := PublishControl(context.Background(), admin, Control{User: "alice", Group: "course:1", Reason: "no longer enrolled"}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*wstest.Client{a1, a2} {
		if code, reason := c.WaitClose(t); code != ClosePolicyViolation || reason != "no longer enrolled" {
			t.Errorf("close %d %q", code, reason)
		}
	}
	olga.Send(t, map[string]string{"message": "still here"})
	if f := olga.Next(t); f.Str("message") != "still here" {
		t.Errorf("olga got %v", f)
	}
}
