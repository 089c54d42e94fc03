package redis_test

import (
	"context"
	"runtime"
	"testing"
	"time"

	"github.com/chatd/chat/redis"
)

// TestCloseReleasesGoroutines checks that Close stops every goroutine the
// layer started, whether it was connected or still retrying.
func TestCloseReleasesGoroutines(t *testing.T) {
	url := testURL(t)
	before := runtime.NumGoroutine()
	for range 10 {
		for _, u := range []string{url, "redis://127.0.0.1:" + freePort(t) + "/0"} {
			// The default ping interval: this test is about goroutines, not
			// the watchdog's timing, and a ping interval of a few
			// milliseconds declares a healthy Redis dead whenever the
			// machine is busy.
			l := newLayer(t, redis.Options{URL: u}, func(string, []byte) {})
			if u == url {
				// A confirmed subscription means the supervisor, its read
				// and the watchdog are all running.
				if err := l.Subscribe(context.Background(), "leak"); err != nil {
					t.Fatal(err)
				}
			} else if l.Err() == nil {
				// New returned after the first failed attempt: the
				// supervisor is now waiting to retry.
				t.Fatal("a layer on a closed port reports no error")
			}
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	// Goroutines exit after Close returns (Close waits for the supervisor,
	// but the driver's pool reaper may take a moment): wait for the count to
	// fall, bounded only as a failure bound.
	deadline := time.Now().Add(30 * time.Second)
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after closing every layer:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
