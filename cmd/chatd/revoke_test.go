package main

import (
	"net/http"
	"strconv"
	"sync"
	"testing"

	"github.com/chatd/chat/internal/redistest"
	"github.com/chatd/chat/internal/wstest"
)

// TestLogoutWithRedisDown: with the Redis layer down, logout still closes
// the session's private-room socket (every process reads revocations from
// the store, not from the layer), and so that socket receives none of the
// private messages sent after Redis returns.
func TestLogoutWithRedisDown(t *testing.T) {
	rs := redistest.Start(t)
	sc := newSchool(t, "sqlite", nil, "CHANNEL_LAYER=redis", "REDIS_URL="+rs.URL())
	alice, bob := sc.session(t, "alice"), sc.session(t, "bob")
	dm := sc.dialAs(t, "/ws/chat/dm/bob/", alice)
	peer := sc.dialAs(t, "/ws/chat/dm/alice/", bob)

	rs.Kill()
	if resp, _ := sc.post(t, "/accounts/logout/", alice, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout while Redis is down: %d", resp.StatusCode)
	}
	if code, reason := dm.WaitClose(t); code != 1008 || reason != "logged out" {
		t.Errorf("the logged-out session's socket: close %d %q, want 1008 \"logged out\"", code, reason)
	}
	rs.Restart()
	for range 3 {
		send(t, peer, "private")
	}
	// bob's own socket carries on (it gets its messages back).
	expectMessage(t, peer, "private")
}

// TestSocketsOpenedDuringLogout: sockets opened while their session logs
// out are each either refused (401) or closed (1008 "logged out"): none
// survives the logout.
func TestSocketsOpenedDuringLogout(t *testing.T) {
	// 60 sockets of one account: more than MAX_CONNS_PER_USER's default 20,
	// which would answer 429 to those opened before the logout lands.
	sc := newSchool(t, "sqlite", []string{"-max-conns-per-user", "0"})
	cookie := sc.session(t, "alice")
	course := "/ws/chat/room/" + strconv.FormatInt(sc.courseID, 10) + "/"
	const n = 60
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		opened  []*wstest.Client
		refused int
	)
	start := make(chan struct{})
	for range n {
		wg.Go(func() {
			<-start
			c, resp, err := wstest.TryDial(sc.ws(course), wstest.Options{Header: cookieHeader(cookie)})
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				if resp == nil || (resp.StatusCode != http.StatusUnauthorized && resp.StatusCode != http.StatusForbidden) {
					t.Errorf("dial during logout: %v (%v)", err, resp)
				}
				refused++
				return
			}
			t.Cleanup(c.Close)
			opened = append(opened, c)
		})
	}
	close(start)
	if resp, _ := sc.post(t, "/accounts/logout/", cookie, nil); resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
	wg.Wait()
	for _, c := range opened {
		if code, reason := c.WaitClose(t); code != 1008 || reason != "logged out" {
			t.Errorf("a socket opened during logout: close %d %q, want 1008 \"logged out\"", code, reason)
		}
	}
	t.Logf("%d sockets opened and were closed, %d refused", len(opened), refused)
}
