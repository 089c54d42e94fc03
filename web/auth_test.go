package web

import (
	"fmt"
	"testing"
	"time"
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

func TestDMGroup(t *testing.T) {
	if DMGroup("Bob", "alice") != "dm:alice|bob" || DMGroup("alice", "BOB") != DMGroup("bob", "Alice") {
		t.Errorf("DMGroup not canonical: %q %q", DMGroup("Bob", "alice"), DMGroup("alice", "BOB"))
	}
}
