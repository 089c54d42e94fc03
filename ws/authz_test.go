package ws

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
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
		id, _ := strconv.ParseInt(r.URL.Query().Get("id"), 10, 64)
		h.Accept(w, r, JoinOptions{Group: r.URL.Query().Get("room"), Room: "course:1", User: &chat.User{ID: id, Username: user},
			Session: r.URL.Query().Get("session"), Recheck: acc.check(user), After: -1})
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
	return dialQuery(t, base, "user="+user+"&room=course:1")
}

func dialQuery(t *testing.T, base, query string) *wstest.Client {
	t.Helper()
	c := wstest.Dial(t, wstest.WSURL(base, "/?"+query), wstest.Options{Subprotocol: Subprotocol})
	if f := c.Next(t); f.Str("type") != "hello" {
		t.Fatalf("first frame %v", f)
	}
	return c
}

// TestRecheckOnJoin: the access check runs once more after the socket has
// joined and before its 101: access gone answers 403 with the reason, a
// transient failure 503, and neither is ever upgraded.
func TestRecheckOnJoin(t *testing.T) {
	h, acc, base := newRecheckHub(t, memory.NewBus())
	olga := dialUser(t, base, "olga")
	for _, tc := range []struct {
		err    error
		status int
		reason string
	}{
		{chat.Errorf(chat.EFORBIDDEN, "no longer enrolled"), http.StatusForbidden, "no longer enrolled"},
		{errors.New("database is down"), http.StatusServiceUnavailable, "access could not be checked"},
	} {
		acc.set("alice", tc.err)
		status, body := wstest.DialStatus(t, wstest.WSURL(base, "/?user=alice&room=course:1"))
		if status != tc.status || !strings.Contains(body, tc.reason) {
			t.Errorf("%v: %d %q, want %d with %q", tc.err, status, body, tc.status, tc.reason)
		}
	}
	if n := h.Stats().Connections; n != 1 {
		t.Errorf("%d connections registered after refusals, want 1 (olga)", n)
	}
	// The room still works for olga, and a refused alice never joined it.
	olga.Send(t, map[string]string{"message": "still here"})
	if f := olga.Next(t); f.Str("message") != "still here" {
		t.Errorf("olga got %v", f)
	}
}

// TestRevoke: a revocation closes exactly the connections it selects – by
// user, by session, by course room – with 1008 and its reason.
func TestRevoke(t *testing.T) {
	h, _, base := newRecheckHub(t, memory.NewBus())
	a1 := dialQuery(t, base, "user=alice&id=7&session=11&room=course:1")
	a2 := dialQuery(t, base, "user=alice&id=7&session=12&room=course:2")
	a3 := dialQuery(t, base, "user=alice&id=7&session=12&room=chat:lobby")
	bob := dialQuery(t, base, "user=bob&id=8&session=13&room=course:1")

	if n := h.Revoke(chat.Revocation{}); n != 0 {
		t.Fatalf("an empty revocation closed %d", n)
	}
	if n := h.Revoke(chat.Revocation{UserID: 7, SessionID: 11, Reason: "logged out"}); n != 1 {
		t.Fatalf("session revocation closed %d, want 1", n)
	}
	if code, reason := a1.WaitClose(t); code != ClosePolicyViolation || reason != "logged out" {
		t.Errorf("a1 close %d %q", code, reason)
	}
	if n := h.Revoke(chat.Revocation{UserID: 7, CourseID: 2, Reason: "no longer enrolled"}); n != 1 {
		t.Fatalf("course revocation closed %d, want 1", n)
	}
	if code, reason := a2.WaitClose(t); code != ClosePolicyViolation || reason != "no longer enrolled" {
		t.Errorf("a2 close %d %q", code, reason)
	}
	if n := h.Revoke(chat.Revocation{CourseID: 1, Reason: "course deleted"}); n != 1 {
		t.Fatalf("course deletion closed %d, want 1 (bob)", n)
	}
	if code, reason := bob.WaitClose(t); code != ClosePolicyViolation || reason != "course deleted" {
		t.Errorf("bob close %d %q", code, reason)
	}
	// alice's public-room socket was never selected.
	a3.Send(t, map[string]string{"message": "still here"})
	if f := a3.Next(t); f.Str("message") != "still here" {
		t.Errorf("a3 got %v", f)
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
