package redis_test

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"os"
	"testing"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/layertest"
	"github.com/chatd/chat/redis"
)

// testURL returns the shared Redis server's URL from CHATD_TEST_REDIS_URL,
// or skips the test when it is unset.
func testURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("CHATD_TEST_REDIS_URL")
	if u == "" {
		t.Skip("CHATD_TEST_REDIS_URL is unset; set it (e.g. redis://127.0.0.1:6379/0) to run the Redis layer tests")
	}
	return u
}

// quiet is a logger for layers whose logs the test does not read.
func quiet() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }

// testLogger returns a logger writing to the test log, for layers whose
// state changes help when a test fails.
func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p[:len(p)-1]))
	return len(p), nil
}

func newLayer(t *testing.T, opt redis.Options, recv chat.Receiver) *redis.Layer {
	t.Helper()
	if opt.Logger == nil {
		opt.Logger = quiet()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	l, err := redis.New(ctx, opt, recv)
	if err != nil {
		t.Fatalf("redis.New: %v", err)
	}
	t.Cleanup(func() { _ = l.Close() })
	return l
}

func TestConformance(t *testing.T) {
	url := testURL(t)
	layertest.Run(t, func(t *testing.T, recv chat.Receiver) chat.Layer {
		return newLayer(t, redis.Options{URL: url, Prefix: "chatd-test:"}, recv)
	})
}

func TestNewRejectsBadOptions(t *testing.T) {
	ctx := context.Background()
	recv := func(string, []byte) {}
	for _, tc := range []struct {
		name string
		opt  redis.Options
	}{
		{"no URL", redis.Options{}},
		{"bad scheme", redis.Options{URL: "http://127.0.0.1:6379"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, err := redis.New(ctx, tc.opt, recv)
			if err == nil {
				_ = l.Close()
				t.Fatal("New succeeded")
			}
		})
	}
	if _, err := redis.New(ctx, redis.Options{URL: "redis://127.0.0.1:1/0"}, nil); err == nil {
		t.Error("New with nil receiver succeeded")
	}
}

// TestUnreachableAtStart checks that a layer started without a Redis does
// not fail, reports the outage, and refuses publishes with a clear error.
func TestUnreachableAtStart(t *testing.T) {
	port := freePort(t) // nothing listens there
	url := "redis://127.0.0.1:" + port + "/0"
	l := newLayer(t, redis.Options{URL: url, Logger: testLogger(t)}, func(string, []byte) {})
	err := l.Err()
	if !errors.Is(err, redis.ErrUnavailable) {
		t.Fatalf("Err() = %v, want ErrUnavailable", err)
	}
	if chat.ErrorCode(err) != chat.EUNAVAILABLE {
		t.Errorf("ErrorCode = %q, want %q", chat.ErrorCode(err), chat.EUNAVAILABLE)
	}
	perr := l.Publish(context.Background(), "room", []byte("x"))
	if !errors.Is(perr, redis.ErrUnavailable) {
		t.Fatalf("Publish error = %v, want ErrUnavailable", perr)
	}
	t.Logf("Err: %v", err)
	t.Logf("Publish: %v", perr)
	if err := l.Subscribe(context.Background(), "room"); !errors.Is(err, redis.ErrUnavailable) {
		t.Errorf("Subscribe error = %v, want ErrUnavailable", err)
	}
}
