// Package budget is chatd's rate limiter: token buckets kept per key (a
// user, an address, a room), on a clock the caller passes in. Passing the
// time into every call, instead of reading the wall clock, lets tests
// advance time explicitly rather than sleep through real windows.
package budget

import (
	"net/netip"
	"sync"
	"time"
)

// Limiter holds one token bucket per key. Each bucket holds at most Burst
// tokens and gains Rate tokens a second; Allow takes one. A key that has
// not been seen starts full. At most MaxKeys buckets are held: when the map
// is full, buckets that have refilled completely (and so are the same as
// absent ones) are dropped, and if that frees nothing, arbitrary ones are:
// forgetting a key can only make a limit more lenient, never lock anyone out.
//
// A Limiter is safe for concurrent use. A nil *Limiter allows everything,
// so a disabled limit costs one nil check.
type Limiter struct {
	rate    float64 // tokens a second; > 0
	burst   float64 // bucket size; >= 1
	maxKeys int

	mu      sync.Mutex
	buckets map[string]*bucket // guarded by mu
}

type bucket struct {
	tokens float64
	last   time.Time // when tokens was computed
}

// DefaultMaxKeys bounds a Limiter's memory when New is given 0: about 100
// bytes a key.
const DefaultMaxKeys = 100_000

// New returns a limiter of rate tokens a second and bursts of burst (at
// least 1), holding at most maxKeys keys (DefaultMaxKeys if 0). A rate of 0
// or less means no limit: New returns nil, which allows everything.
func New(rate float64, burst int, maxKeys int) *Limiter {
	if rate <= 0 {
		return nil
	}
	if maxKeys <= 0 {
		maxKeys = DefaultMaxKeys
	}
	return &Limiter{rate: rate, burst: float64(max(1, burst)), maxKeys: maxKeys, buckets: make(map[string]*bucket)}
}

// PerWindow returns a limiter that allows n events per window on average,
// in bursts of up to n: the bucket holds n tokens and refills steadily over
// window. n of 0 or less means no limit (nil).
func PerWindow(n int, window time.Duration, maxKeys int) *Limiter {
	if n <= 0 || window <= 0 {
		return nil
	}
	return New(float64(n)/window.Seconds(), n, maxKeys)
}

// Allow takes a token from key's bucket at time now and reports whether
// there was one.
func (l *Limiter) Allow(key string, now time.Time) bool {
	if l == nil {
		return true
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refillLocked(key, now)
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// AllowN takes n tokens from key's bucket at time now if it holds them
// all, and reports whether it did. If it did not, it takes nothing and
// also returns how long from now until the bucket holds n tokens; n over
// Burst never fits (use Burst to refuse such requests first), and then
// the wait is how long until the bucket is full.
func (l *Limiter) AllowN(key string, n int, now time.Time) (bool, time.Duration) {
	if l == nil || n <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refillLocked(key, now)
	if b.tokens >= float64(n) {
		b.tokens -= float64(n)
		return true, 0
	}
	need := min(float64(n), l.burst) - b.tokens
	return false, time.Duration(need / l.rate * float64(time.Second))
}

// Burst returns the bucket size: the most tokens AllowN can ever take at
// once. A nil Limiter has no limit and returns 0.
func (l *Limiter) Burst() int {
	if l == nil {
		return 0
	}
	return int(l.burst)
}

// Wait returns how long from now until key's bucket has a token again (0
// if it has one now). It takes nothing.
func (l *Limiter) Wait(key string, now time.Time) time.Duration {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.refillLocked(key, now)
	if b.tokens >= 1 {
		return 0
	}
	return time.Duration((1 - b.tokens) / l.rate * float64(time.Second))
}

// refillLocked returns key's bucket brought up to now, creating it full if
// needed. l.mu must be held.
func (l *Limiter) refillLocked(key string, now time.Time) *bucket {
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= l.maxKeys {
			l.makeRoomLocked(now)
		}
		b = &bucket{tokens: l.burst, last: now}
		l.buckets[key] = b
		return b
	}
	if d := now.Sub(b.last); d > 0 {
		b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
		b.last = now
	}
	return b
}

// full reports whether b has refilled completely by now.
func (l *Limiter) full(b *bucket, now time.Time) bool {
	return b.tokens+now.Sub(b.last).Seconds()*l.rate >= l.burst
}

// makeRoomLocked frees at least one slot. l.mu must be held.
func (l *Limiter) makeRoomLocked(now time.Time) {
	for k, b := range l.buckets {
		if l.full(b, now) {
			delete(l.buckets, k)
		}
	}
	for k := range l.buckets {
		if len(l.buckets) < l.maxKeys {
			break
		}
		delete(l.buckets, k)
	}
}

// Sweep drops the buckets that have refilled completely by now; a
// background loop calls it now and then to return memory.
func (l *Limiter) Sweep(now time.Time) {
	if l == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	for k, b := range l.buckets {
		if l.full(b, now) {
			delete(l.buckets, k)
		}
	}
}

// Len returns the number of buckets held.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.buckets)
}

// AddrKey returns the key under which an address is limited: an IPv4
// address as it is, an IPv6 address as its /64 prefix (one subscriber
// usually holds a whole /64, so counting single IPv6 addresses would let
// one client take any number of them). Anything that is not an IP address
// is returned unchanged.
func AddrKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		return ip
	}
	a = a.Unmap()
	if a.Is4() {
		return a.String()
	}
	p, err := a.WithZone("").Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}
