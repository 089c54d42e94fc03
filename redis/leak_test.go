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
			l := newLayer(t, redis.Options{URL: u, PingInterval: 10 * time.Millisecond}, func(string, []byte) {})
			if u == url {
				if err := l.Subscribe(context.Background(), "leak"); err != nil {
					t.Fatal(err)
				}
			}
			time.Sleep(20 * time.Millisecond) // let the watchdog and the retries run
			if err := l.Close(); err != nil {
				t.Fatal(err)
			}
		}
	}
	deadline := time.Now().Add(10 * time.Second) // a failure bound
	for runtime.NumGoroutine() > before+2 {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("%d goroutines before, %d after closing every layer:\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(10 * time.Millisecond)
	}
}
