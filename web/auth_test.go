package web

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/memory"
	"github.com/chatd/chat/password"
	"github.com/chatd/chat/sqlite"
	"github.com/chatd/chat/ws"
)

func TestSafeNext(t *testing.T) {
	for _, tc := range []struct{ next, want string }{
		{"/chat/lobby/", "/chat/lobby/"},
		{"/courses/?a=b#c", "/courses/?a=b#c"},
		{"", "/fallback"},
		{"chat/", "/fallback"},
		{"//evil.example/", "/fallback"},
		{"/\\evil.example", "/fallback"},
		{"\\\\evil.example", "/fallback"},
		{"https://evil.example/", "/fallback"},
		{"http:/evil.example", "/fallback"},
		{"javascript:alert(1)", "/fallback"},
		{"/\t/evil.example", "/fallback"},
		{"/\n/evil.example", "/fallback"},
		{"/%2F%2Fevil.example", "/%2F%2Fevil.example"}, // a path on this site
	} {
		if got := safeNext(tc.next, "/fallback"); got != tc.want {
			t.Errorf("safeNext(%q) = %q, want %q", tc.next, got, tc.want)
		}
	}
}

func TestThrottle(t *testing.T) {
	now := time.Unix(1000, 0)
	th := newThrottle(3, time.Minute, 4)
	th.now = func() time.Time { return now }
	for range 2 {
		th.Fail("ip:a", "user:x")
	}
	if _, blocked := th.Blocked("ip:a", "user:x"); blocked {
		t.Fatal("blocked below the limit")
	}
	th.Fail("ip:a", "user:x")
	wait, blocked := th.Blocked("ip:b", "user:x")
	if !blocked || wait != time.Minute {
		t.Fatalf("at the limit: blocked %v, wait %v; want a minute", blocked, wait)
	}
	now = now.Add(59 * time.Second)
	if wait, _ := th.Blocked("user:x"); wait != time.Second {
		t.Errorf("wait %v, want 1s", wait)
	}
	now = now.Add(time.Second)
	if _, blocked := th.Blocked("ip:a", "user:x"); blocked {
		t.Error("still blocked after the window")
	}
	// A failure after the window starts a new one.
	th.Fail("user:x")
	if _, blocked := th.Blocked("user:x"); blocked {
		t.Error("blocked after one failure in a new window")
	}
	th.Reset("user:x")
	if th.Len() != 1 { // ip:a remains, expired
		t.Errorf("len %d after reset", th.Len())
	}
	// Memory stays bounded.
	for i := range 100 {
		th.Fail(fmt.Sprintf("ip:%d", i))
	}
	if th.Len() > 4 {
		t.Errorf("len %d, want at most 4", th.Len())
	}
	now = now.Add(time.Hour)
	th.Sweep()
	if th.Len() != 0 {
		t.Errorf("len %d after sweep", th.Len())
	}
}

// TestDMRoomKey: both people of a private room reach the same room key,
// whoever opens it.
func TestDMRoomKey(t *testing.T) {
	if a, b := chat.DMRoom(7, 3).Key(), chat.DMRoom(3, 7).Key(); a != "dm:3:7" || a != b {
		t.Errorf("DM room keys %q and %q, want both dm:3:7", a, b)
	}
}

// TestBackgroundSweep: Run deletes expired sessions and returns when its
// context ends.
func TestBackgroundSweep(t *testing.T) {
	st, err := sqlite.Open(t.Context(), filepath.Join(t.TempDir(), "chatd.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hash, err := password.Hash("a long password")
	if err != nil {
		t.Fatal(err)
	}
	u := &chat.User{Username: "alice"}
	if err := st.CreateUser(t.Context(), u, hash); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := st.CreateSession(t.Context(), u.ID, time.Millisecond); err != nil {
			t.Fatal(err)
		}
	}
	live, err := st.CreateSession(t.Context(), u.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(5 * time.Millisecond)
	hub := ws.NewHub(ws.Config{})
	if err := hub.Start(t.Context(), memory.New(hub.Receive)); err != nil {
		t.Fatal(err)
	}
	defer hub.Shutdown(context.Background())
	// Run logs each sweep that deleted something: the test waits for that
	// line (an event) rather than for a time it hopes is long enough.
	swept := make(chan struct{}, 1)
	logs := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) {
		if strings.Contains(string(p), "deleted expired sessions") && strings.Contains(string(p), "count=3") {
			select {
			case swept <- struct{}{}:
			default:
			}
		}
	}), nil))
	s, err := NewServer(Config{Store: st, Logger: logs, SweepInterval: 10 * time.Millisecond, RecheckInterval: 10 * time.Millisecond}, hub)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() { s.Run(ctx); close(done) }()
	select {
	case <-swept:
	case <-time.After(10 * time.Second): // a failure bound
		t.Fatal("Run did not delete the expired sessions")
	}
	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
	if n, err := st.DeleteExpiredSessions(t.Context()); err != nil || n != 0 {
		t.Errorf("after Run, %d expired sessions were left (err %v)", n, err)
	}
	if _, _, err := st.SessionUser(t.Context(), live.Token); err != nil {
		t.Errorf("live session swept: %v", err)
	}
}

// writerFunc is an io.Writer that hands every write to a function.
type writerFunc func(p []byte)

func (f writerFunc) Write(p []byte) (int, error) { f(p); return len(p), nil }

func TestNewServerNeedsStore(t *testing.T) {
	if _, err := NewServer(Config{}, ws.NewHub(ws.Config{})); err == nil || !strings.Contains(err.Error(), "web: Config.Store is required") {
		t.Errorf("NewServer without a store: %v", err)
	}
}
