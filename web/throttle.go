package web

import (
	"sync"
	"time"
)

// maxThrottleKeys bounds the login throttle's memory: about 100 bytes a key.
const maxThrottleKeys = 100_000

// throttle counts failed logins per key (see loginThrottle) in fixed
// windows: the first failure opens a window of length window, and once a
// key has limit failures in its window, Blocked reports it until the window
// ends. The map never holds more than max keys: when full, expired windows
// are swept, and if that frees nothing an arbitrary key is dropped (an
// attacker would need max distinct keys to push a victim's count out).
type throttle struct {
	limit  int
	window time.Duration
	max    int
	now    func() time.Time

	mu   sync.Mutex
	keys map[string]*failures // guarded by mu
}

type failures struct {
	count int
	start time.Time
}

func newThrottle(limit int, window time.Duration, max int) *throttle {
	return &throttle{limit: limit, window: window, max: max, now: time.Now, keys: make(map[string]*failures)}
}

// Blocked reports whether any of keys has reached the limit, and how long
// until the last of those windows ends.
func (t *throttle) Blocked(keys ...string) (time.Duration, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var wait time.Duration
	for _, k := range keys {
		f := t.keys[k]
		if f == nil || now.Sub(f.start) >= t.window {
			continue
		}
		if f.count >= t.limit {
			wait = max(wait, f.start.Add(t.window).Sub(now))
		}
	}
	return wait, wait > 0
}

// Fail records one failure for each of keys.
func (t *throttle) Fail(keys ...string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for _, k := range keys {
		f := t.keys[k]
		if f != nil && now.Sub(f.start) < t.window {
			f.count++
			continue
		}
		if f == nil && len(t.keys) >= t.max {
			t.makeRoomLocked(now)
		}
		t.keys[k] = &failures{count: 1, start: now}
	}
}

// Reset forgets key's failures (after a successful login).
func (t *throttle) Reset(key string) {
	t.mu.Lock()
	delete(t.keys, key)
	t.mu.Unlock()
}

// makeRoomLocked frees at least one slot. t.mu must be held.
func (t *throttle) makeRoomLocked(now time.Time) {
	for k, f := range t.keys {
		if now.Sub(f.start) >= t.window {
			delete(t.keys, k)
		}
	}
	for k := range t.keys {
		if len(t.keys) < t.max {
			break
		}
		delete(t.keys, k)
	}
}

// Sweep removes expired windows; the background loop calls it.
func (t *throttle) Sweep() {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for k, f := range t.keys {
		if now.Sub(f.start) >= t.window {
			delete(t.keys, k)
		}
	}
}

// Len returns the number of keys held.
func (t *throttle) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.keys)
}
