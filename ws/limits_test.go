package ws

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/wstest"
	"github.com/chatd/chat/memory"
)

// fakeClock is a clock that moves only when the test says so.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// lockedBuffer collects a logger's output.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// limitHub serves a hub over a real HTTP server the way the web layer
// does: RefuseOverLimit first, then Accept. The query names the client:
// ?ip= its address, ?id= and ?user= its account (id 0: a guest), ?room=.
type limitHub struct {
	hub   *Hub
	srv   *httptest.Server
	clock *fakeClock
	logs  *lockedBuffer
}

func newLimitHub(t *testing.T, cfg Config) *limitHub {
	t.Helper()
	lh := &limitHub{clock: newFakeClock(), logs: &lockedBuffer{}}
	cfg.Echo = true
	cfg.Now = lh.clock.Now
	cfg.Logger = slog.New(slog.NewTextHandler(lh.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	h := NewHub(cfg)
	l := memory.New(h.Receive)
	if err := h.Start(context.Background(), l); err != nil {
		t.Fatal(err)
	}
	lh.hub = h
	lh.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if h.RefuseOverLimit(w, r, q.Get("ip")) {
			return
		}
		id, _ := strconv.ParseInt(q.Get("id"), 10, 64)
		h.Accept(w, r, JoinOptions{
			Group:    "chat:" + q.Get("room"),
			Room:     q.Get("room"),
			User:     &chat.User{ID: id, Username: q.Get("user")},
			ClientIP: q.Get("ip"),
		})
	}))
	t.Cleanup(func() {
		_ = h.Shutdown(context.Background())
		lh.srv.Close()
		_ = l.Close()
		if t.Failed() {
			t.Logf("hub log:\n%s", lh.logs)
		}
	})
	return lh
}

func (lh *limitHub) url(query string) string { return wstest.WSURL(lh.srv.URL, "/?"+query) }

// dial connects or fails the test.
func (lh *limitHub) dial(t *testing.T, query string) *wstest.Client {
	t.Helper()
	return wstest.Dial(t, lh.url(query), wstest.Options{})
}

// refused tries to connect and returns the refused handshake's status and
// body; it fails the test if the upgrade succeeds.
func (lh *limitHub) refused(t *testing.T, query string) (int, string) {
	t.Helper()
	c, resp, err := wstest.TryDial(lh.url(query), wstest.Options{})
	if err == nil {
		c.Close()
		t.Fatalf("%s: upgraded, want a refusal before the 101", query)
	}
	if resp == nil {
		t.Fatalf("%s: %v (no HTTP response)", query, err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("%s: %d without Retry-After", query, resp.StatusCode)
	}
	return resp.StatusCode, string(body)
}

// waitConns waits (bounded) until the hub counts n connections.
func (lh *limitHub) waitConns(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(wstest.Timeout)
	for {
		lh.hub.limits.mu.Lock()
		got := lh.hub.limits.total
		lh.hub.limits.mu.Unlock()
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("hub counts %d connections, want %d", got, n)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestConnectionCaps(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		lh := newLimitHub(t, Config{MaxConnsPerIP: 3})
		var a []*wstest.Client
		for i := range 3 {
			a = append(a, lh.dial(t, fmt.Sprintf("ip=203.0.113.5&room=r%d", i)))
		}
		status, body := lh.refused(t, "ip=203.0.113.5&room=r")
		if status != http.StatusTooManyRequests || !strings.Contains(body, "too many open connections from your address (limit 3)") {
			t.Errorf("4th from one address: %d %q, want 429 with the reason", status, body)
		}
		// IPv6 counts per /64: two addresses of one prefix share a count.
		lh.dial(t, "ip=2001:db8:1:2::1&room=r")
		lh.dial(t, "ip=2001:db8:1:2::2&room=r")
		lh.dial(t, "ip=2001:db8:1:2::3&room=r")
		if status, _ := lh.refused(t, "ip=2001:db8:1:2::4&room=r"); status != http.StatusTooManyRequests {
			t.Errorf("4th from one IPv6 /64: %d, want 429", status)
		}
		lh.dial(t, "ip=198.51.100.1&room=r") // another address is not affected
		// A closed connection gives its place back once it unregisters.
		a[0].Close()
		lh.waitConns(t, 6)
		lh.dial(t, "ip=203.0.113.5&room=r")
	})
	t.Run("per account", func(t *testing.T) {
		lh := newLimitHub(t, Config{MaxConnsPerUser: 2, MaxConnsPerIP: 10})
		lh.dial(t, "id=7&user=alice&ip=203.0.113.1&room=r")
		lh.dial(t, "id=7&user=alice&ip=203.0.113.2&room=r")
		status, body := lh.refused(t, "id=7&user=alice&ip=203.0.113.3&room=r")
		if status != http.StatusTooManyRequests || !strings.Contains(body, "for your account (limit 2)") {
			t.Errorf("alice's 3rd: %d %q, want 429 with the reason", status, body)
		}
		lh.dial(t, "id=8&user=bob&ip=203.0.113.1&room=r")
		// Guests count per address only.
		for range 3 {
			lh.dial(t, "id=0&user=guest&ip=203.0.113.1&room=r")
		}
	})
	t.Run("global", func(t *testing.T) {
		lh := newLimitHub(t, Config{MaxConns: 2, MaxConnsPerIP: 10})
		lh.dial(t, "ip=203.0.113.1&room=r")
		lh.dial(t, "ip=203.0.113.2&room=r")
		status, body := lh.refused(t, "ip=203.0.113.3&room=r")
		if status != http.StatusServiceUnavailable || !strings.Contains(body, "connection limit (2)") {
			t.Errorf("over the global cap: %d %q, want 503 with the reason", status, body)
		}
	})
}

// TestRefusalsLoggedOncePerBurst: a flood of refused upgrades logs one
// warning, and its count when the burst is over.
func TestRefusalsLoggedOncePerBurst(t *testing.T) {
	lh := newLimitHub(t, Config{MaxConnsPerIP: 1})
	lh.dial(t, "ip=203.0.113.5&room=r")
	for range 25 {
		lh.refused(t, "ip=203.0.113.5&room=r")
	}
	if n := strings.Count(lh.logs.String(), "connection limit reached"); n != 1 {
		t.Errorf("%d warnings for one burst of refusals, want 1", n)
	}
	lh.clock.Advance(burstQuiet)
	lh.hub.limits.sweep()
	if !strings.Contains(lh.logs.String(), "connection refusals ended") || !strings.Contains(lh.logs.String(), "refused=25") {
		t.Errorf("the end of the burst was not logged with its count:\n%s", lh.logs)
	}
	// The next refusal starts a new burst.
	lh.refused(t, "ip=203.0.113.5&room=r")
	if n := strings.Count(lh.logs.String(), "connection limit reached"); n != 2 {
		t.Errorf("%d warnings after a second burst, want 2", n)
	}
}

// exchange sends text on c and returns the next frame, which is c's own
// message back (echo is on) or an error frame.
func exchange(t *testing.T, c *wstest.Client, text string) wstest.Frame {
	t.Helper()
	c.Send(t, map[string]string{"message": text})
	return c.Next(t)
}

func wantSent(t *testing.T, f wstest.Frame, text string) {
	t.Helper()
	if f.Str("type") != "chat_message" || f.Str("message") != text {
		t.Fatalf("got %v, want chat_message %q", f, text)
	}
}

func wantRateLimited(t *testing.T, f wstest.Frame, detail string) {
	t.Helper()
	if f.Str("type") != "error" || f.Str("code") != CodeRateLimited || !strings.Contains(f.Str("detail"), detail) {
		t.Fatalf("got %v, want a rate_limited error frame about %q", f, detail)
	}
}

// TestSharedMessageBudgets: many sockets of one account, or of one
// address, share one budget; another account's socket still sends; the
// budget comes back as the (injected) clock moves.
func TestSharedMessageBudgets(t *testing.T) {
	t.Run("per account", func(t *testing.T) {
		lh := newLimitHub(t, Config{UserRateLimit: 3}) // bursts of 6
		// Each socket in a room of its own, so each sees only its own messages.
		var alice []*wstest.Client
		for i := range 4 {
			alice = append(alice, lh.dial(t, fmt.Sprintf("id=7&user=alice&ip=203.0.113.%d&room=a%d", i, i)))
		}
		for i := range 6 {
			wantSent(t, exchange(t, alice[i%4], fmt.Sprint(i)), fmt.Sprint(i))
		}
		for i := range 4 {
			wantRateLimited(t, exchange(t, alice[i], "over"), "your account")
		}
		bob := lh.dial(t, "id=8&user=bob&ip=203.0.113.0&room=b")
		wantSent(t, exchange(t, bob, "bob is fine"), "bob is fine")
		lh.clock.Advance(time.Second) // 3 more
		for i := range 3 {
			wantSent(t, exchange(t, alice[3-i], "again"), "again")
		}
		wantRateLimited(t, exchange(t, alice[0], "over"), "your account")
	})
	t.Run("per address", func(t *testing.T) {
		lh := newLimitHub(t, Config{IPRateLimit: 2}) // bursts of 4
		var guests []*wstest.Client
		for i := range 5 {
			guests = append(guests, lh.dial(t, fmt.Sprintf("user=guest-%d&ip=203.0.113.9&room=g%d", i, i)))
		}
		for i := range 4 {
			wantSent(t, exchange(t, guests[i], "hi"), "hi")
		}
		wantRateLimited(t, exchange(t, guests[4], "hi"), "your network address")
		other := lh.dial(t, "user=guest-x&ip=198.51.100.7&room=g0")
		wantSent(t, exchange(t, other, "elsewhere"), "elsewhere")
	})
	t.Run("room flood guard", func(t *testing.T) {
		lh := newLimitHub(t, Config{RoomRateLimit: 2, InvalidFrames: 1}) // bursts of 4
		// Senders from different addresses, each in the room with echo: a
		// sender's next frame is its own message or its refusal only if it
		// sends alone, so they take turns and read every frame.
		var in []*wstest.Client
		for i := range 5 {
			in = append(in, lh.dial(t, fmt.Sprintf("user=u%d&ip=203.0.113.%d&room=busy", i, i)))
		}
		for i := range 4 {
			in[i].Send(t, map[string]string{"message": "m" + fmt.Sprint(i)})
			for _, c := range in {
				wantSent(t, c.Next(t), "m"+fmt.Sprint(i))
			}
		}
		wantRateLimited(t, exchange(t, in[4], "one more"), "this room")
		// The room guard is not held against the sender: its strikes
		// (InvalidFrames 1) would have closed it after a second refusal.
		wantRateLimited(t, exchange(t, in[4], "and another"), "this room")
		quiet := lh.dial(t, "user=q&ip=198.51.100.1&room=quiet")
		wantSent(t, exchange(t, quiet, "another room is fine"), "another room is fine")
	})
}

// TestFramesChargedBeforeParsing: invalid frames cost the same budget as
// valid ones, and a connection that keeps sending garbage is closed.
func TestFramesChargedBeforeParsing(t *testing.T) {
	t.Run("garbage uses up the budget", func(t *testing.T) {
		lh := newLimitHub(t, Config{RateLimit: 5}) // bursts of 10
		c := lh.dial(t, "ip=203.0.113.1&room=r")
		for range 10 {
			c.SendText(t, strings.Repeat("{", 1000))
			if f := c.Next(t); f.Str("code") != CodeInvalidJSON {
				t.Fatalf("got %v, want invalid_json", f)
			}
		}
		wantRateLimited(t, exchange(t, c, "valid, but the budget is spent"), "this connection")
	})
	t.Run("shared budget charged by garbage", func(t *testing.T) {
		lh := newLimitHub(t, Config{IPRateLimit: 2}) // bursts of 4
		a := lh.dial(t, "ip=203.0.113.1&room=a")
		b := lh.dial(t, "ip=203.0.113.1&room=b")
		for range 4 {
			a.SendText(t, "not json")
			if f := a.Next(t); f.Str("code") != CodeInvalidJSON {
				t.Fatalf("got %v, want invalid_json", f)
			}
		}
		wantRateLimited(t, exchange(t, b, "hi"), "your network address")
	})
	t.Run("a persistent garbage sender is closed", func(t *testing.T) {
		lh := newLimitHub(t, Config{InvalidFrames: 5})
		c := lh.dial(t, "ip=203.0.113.1&room=r")
		bystander := lh.dial(t, "ip=203.0.113.2&room=r2")
		for range 5 {
			c.SendText(t, "garbage")
			c.Next(t)
		}
		wantSent(t, exchange(t, c, "valid frames still go"), "valid frames still go")
		// Strikes are forgiven at InvalidFrames a minute.
		lh.clock.Advance(time.Minute)
		for range 5 {
			c.SendText(t, "garbage")
			c.Next(t)
		}
		if c.Closed() {
			t.Fatal("closed although the earlier strikes were forgiven")
		}
		c.SendText(t, "garbage") // the 6th within the minute
		if code, reason := c.WaitClose(t); code != ClosePolicyViolation || reason != "too many invalid or refused frames" {
			t.Errorf("close %d %q, want 1008 with the reason", code, reason)
		}
		wantSent(t, exchange(t, bystander, "unaffected"), "unaffected")
	})
	t.Run("a sender that ignores rate_limited is closed", func(t *testing.T) {
		lh := newLimitHub(t, Config{RateLimit: 1, InvalidFrames: 3}) // bursts of 2
		c := lh.dial(t, "ip=203.0.113.1&room=r")
		wantSent(t, exchange(t, c, "1"), "1")
		wantSent(t, exchange(t, c, "2"), "2")
		for range 3 {
			wantRateLimited(t, exchange(t, c, "more"), "this connection")
		}
		c.Send(t, map[string]string{"message": "and more"})
		if code, _ := c.WaitClose(t); code != ClosePolicyViolation {
			t.Errorf("close %d, want 1008", code)
		}
	})
}
