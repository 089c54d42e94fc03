package budget

import (
	"fmt"
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	now := time.Unix(1000, 0)
	l := New(2, 4, 0) // 2 a second, bursts of 4
	for i := range 4 {
		if !l.Allow("a", now) {
			t.Fatalf("token %d of the burst refused", i+1)
		}
	}
	if l.Allow("a", now) {
		t.Fatal("allowed past the burst")
	}
	if w := l.Wait("a", now); w != 500*time.Millisecond {
		t.Errorf("wait %v, want 500ms", w)
	}
	if !l.Allow("b", now) {
		t.Error("another key shares a's bucket")
	}
	now = now.Add(500 * time.Millisecond)
	if !l.Allow("a", now) || l.Allow("a", now) {
		t.Error("half a second should refill exactly one token")
	}
	// A clock that goes backwards takes nothing and gives nothing.
	if l.Allow("a", now.Add(-time.Hour)) {
		t.Error("a clock going back refilled the bucket")
	}
	now = now.Add(time.Hour)
	for i := range 4 {
		if !l.Allow("a", now) {
			t.Fatalf("after an hour, token %d refused", i+1)
		}
	}
	if l.Allow("a", now) {
		t.Error("refilled past the burst")
	}
}

func TestNilLimiterAllows(t *testing.T) {
	var l *Limiter
	if New(0, 10, 0) != nil || PerWindow(0, time.Hour, 0) != nil {
		t.Fatal("a zero rate should give the nil (unlimited) limiter")
	}
	for range 1000 {
		if !l.Allow("x", time.Time{}) {
			t.Fatal("nil limiter refused")
		}
	}
	l.Sweep(time.Now())
	if l.Len() != 0 || l.Wait("x", time.Now()) != 0 {
		t.Error("nil limiter holds state")
	}
}

func TestPerWindow(t *testing.T) {
	now := time.Unix(0, 0)
	l := PerWindow(3, time.Hour, 0)
	for range 3 {
		if !l.Allow("ip", now) {
			t.Fatal("refused within the allowance")
		}
	}
	if l.Allow("ip", now) {
		t.Fatal("a fourth allowed at once")
	}
	if w := l.Wait("ip", now); w != 20*time.Minute {
		t.Errorf("wait %v, want 20m (an hour / 3)", w)
	}
	if !l.Allow("ip", now.Add(20*time.Minute)) {
		t.Error("no token after a third of the window")
	}
}

func TestMemoryBounded(t *testing.T) {
	now := time.Unix(0, 0)
	l := New(1, 1, 10)
	for i := range 100 {
		l.Allow(fmt.Sprint(i), now)
	}
	if l.Len() > 10 {
		t.Errorf("%d keys held, want at most 10", l.Len())
	}
	l.Sweep(now.Add(time.Second))
	if l.Len() != 0 {
		t.Errorf("%d keys after every bucket refilled", l.Len())
	}
}

func TestAddrKey(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"203.0.113.9", "203.0.113.9"},
		{"::ffff:203.0.113.9", "203.0.113.9"},
		{"2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"},
		{"2001:db8:1:2::ff", "2001:db8:1:2::/64"},
		{"fe80::1%eth0", "fe80::/64"},
		{"not an address", "not an address"},
	} {
		if got := AddrKey(tc.in); got != tc.want {
			t.Errorf("AddrKey(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestAllowN(t *testing.T) {
	t0 := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	l := New(10, 20, 0) // 10 a second, bursts of 20
	if l.Burst() != 20 {
		t.Fatalf("Burst = %d", l.Burst())
	}
	if ok, _ := l.AllowN("k", 15, t0); !ok {
		t.Fatal("15 of a full bucket of 20 refused")
	}
	ok, wait := l.AllowN("k", 10, t0)
	if ok || wait != 500*time.Millisecond {
		t.Fatalf("10 of 5 left: %v, wait %v; want refused, 500ms", ok, wait)
	}
	// Refused requests take nothing: 5 are still there.
	if ok, _ := l.AllowN("k", 5, t0); !ok {
		t.Fatal("5 of 5 left refused")
	}
	if ok, _ := l.AllowN("other", 20, t0); !ok {
		t.Fatal("another key shares the bucket")
	}
	if ok, _ := l.AllowN("k", 10, t0.Add(time.Second)); !ok {
		t.Fatal("10 after refilling for 1s refused")
	}
	if ok, wait := l.AllowN("k", 25, t0.Add(time.Hour)); ok || wait != 0 {
		t.Fatalf("25 > burst: %v, wait %v; want refused, 0 (already full)", ok, wait)
	}
	var none *Limiter
	if ok, wait := none.AllowN("k", 1000, t0); !ok || wait != 0 || none.Burst() != 0 {
		t.Fatal("a nil limiter limits")
	}
}
