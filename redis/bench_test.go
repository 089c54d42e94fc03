package redis_test

import (
	"context"
	"os"
	"sync/atomic"
	"testing"

	"github.com/chatd/chat/redis"
)

// BenchmarkPublish measures Publish from many goroutines to one group that
// another layer instance (process) receives, on the shared Redis.
func BenchmarkPublish(b *testing.B) {
	url := testURLB(b)
	var got atomic.Int64
	sub := newLayerB(b, url, func(string, []byte) { got.Add(1) })
	pub := newLayerB(b, url, func(string, []byte) {})
	g := "bench.publish"
	if err := sub.Subscribe(context.Background(), g); err != nil {
		b.Fatal(err)
	}
	msg := make([]byte, 200)
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if err := pub.Publish(context.Background(), g, msg); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// testURLB is testURL for benchmarks.
func testURLB(b *testing.B) string {
	b.Helper()
	u := os.Getenv("CHATD_TEST_REDIS_URL")
	if u == "" {
		b.Skip("CHATD_TEST_REDIS_URL is unset")
	}
	return u
}

func newLayerB(b *testing.B, url string, recv func(string, []byte)) *redis.Layer {
	b.Helper()
	l, err := redis.New(context.Background(), redis.Options{URL: url, Logger: quiet()}, recv)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = l.Close() })
	return l
}
