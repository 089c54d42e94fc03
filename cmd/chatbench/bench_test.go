package main

import (
	"context"
	"net/url"
	"os"
	"strings"
	"testing"
	"time"
)

// target returns the base URL of a real chat server for the end-to-end
// tests: $CHATBENCH_TEST_URL if set (any tutorial-protocol server on
// loopback, e.g. the Django anchor), else a chatd started for the test.
func target(t *testing.T) string {
	t.Helper()
	if u := os.Getenv("CHATBENCH_TEST_URL"); u != "" {
		return u
	}
	return startChatd(t)
}

// smallConfig is a short run: 2 rooms x 3 clients, 2 senders each.
func smallConfig(url string) Config {
	cfg := DefaultConfig()
	cfg.URL = url
	cfg.Rooms = 2
	cfg.Clients = 6
	cfg.Senders = 2
	cfg.Rate = 25
	cfg.Duration = 800 * time.Millisecond
	cfg.Warmup = 200 * time.Millisecond
	cfg.Timeout = 3 * time.Second
	cfg.Progress = false
	return cfg
}

func runBench(t *testing.T, cfg Config) *Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	var log strings.Builder
	res, err := Run(ctx, cfg, &log)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, log.String())
	}
	var sum strings.Builder
	printSummary(&sum, cfg, res)
	t.Logf("\n%s", sum.String())
	return res
}

// checkExpected checks that expected deliveries follow from sent messages:
// every room has 3 connected clients, so each message is owed to 3 of them,
// or 2 when the server does not echo to the sender.
func checkExpected(t *testing.T, res *Result) {
	t.Helper()
	if res.ConnsOK != 6 || res.ConnsFailed != 0 || res.ConnsDropped != 0 {
		t.Fatalf("connections ok %d failed %d dropped %d, want 6/0/0", res.ConnsOK, res.ConnsFailed, res.ConnsDropped)
	}
	if res.Sent == 0 || res.SendErrors != 0 {
		t.Fatalf("sent %d, send errors %d", res.Sent, res.SendErrors)
	}
	perMsg := uint64(2)
	if res.Echo {
		perMsg = 3
	}
	if res.Expected != res.Sent*perMsg {
		t.Fatalf("expected %d deliveries for %d messages (echo %v), want %d", res.Expected, res.Sent, res.Echo, res.Sent*perMsg)
	}
	if res.WrongRoom != 0 || res.OutOfOrder != 0 {
		t.Fatalf("wrong room %d, out of order %d", res.WrongRoom, res.OutOfOrder)
	}
}

func TestEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	url := target(t)
	for _, client := range []string{"epoll", "gws"} {
		t.Run(client, func(t *testing.T) {
			if client == "epoll" && !epollAvailable {
				t.Skip("epoll is Linux only")
			}
			cfg := smallConfig(url)
			cfg.Client = client
			res := runBench(t, cfg)
			checkExpected(t, res)
			if res.Lost != 0 || res.Duplicates != 0 || res.Received != res.Expected {
				t.Fatalf("received %d of %d, lost %d, dup %d", res.Received, res.Expected, res.Lost, res.Duplicates)
			}
			if res.LatN == 0 || res.LatMax <= 0 || res.LatP50 > res.LatP99 || res.LatP99 > res.LatMax {
				t.Fatalf("latency p50 %v p99 %v max %v from %d samples", res.LatP50, res.LatP99, res.LatMax, res.LatN)
			}
		})
	}
}

// TestLargeMessages sends messages bigger than the epoll loop's shared
// buffer, so frames span several reads (the slow path).
func TestLargeMessages(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	cfg := smallConfig(target(t))
	cfg.Size = 3900      // chatd's limit is 4000 characters
	cfg.ReadBuffer = 512 // the epoll loop's buffer is then 4 KiB
	cfg.Client = defaultClient()
	cfg.Rate = 10
	res := runBench(t, cfg)
	checkExpected(t, res)
	if res.Lost != 0 || res.Duplicates != 0 || res.Received != res.Expected {
		t.Fatalf("received %d of %d, lost %d, dup %d", res.Received, res.Expected, res.Lost, res.Duplicates)
	}
}

// TestDroppedFrameIsLost puts a relay between chatbench and the server that
// drops exactly one broadcast frame.
func TestDroppedFrameIsLost(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	r := startRelay(t, hostPort(t, target(t)), 5, 0)
	cfg := smallConfig(r.url())
	cfg.Timeout = 1500 * time.Millisecond // the drain waits for the lost frame
	res := runBench(t, cfg)
	if r.dropped.Load() != 1 {
		t.Fatalf("relay dropped %d frames", r.dropped.Load())
	}
	checkExpected(t, res)
	if res.Lost != 1 || res.Duplicates != 0 || res.Received != res.Expected-1 {
		t.Fatalf("received %d of %d, lost %d, dup %d; want exactly 1 lost", res.Received, res.Expected, res.Lost, res.Duplicates)
	}
}

// TestDuplicatedFrameIsCounted has the relay send one broadcast frame twice.
func TestDuplicatedFrameIsCounted(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	r := startRelay(t, hostPort(t, target(t)), 0, 7)
	res := runBench(t, smallConfig(r.url()))
	if r.duplicated.Load() != 1 {
		t.Fatalf("relay duplicated %d frames", r.duplicated.Load())
	}
	checkExpected(t, res)
	if res.Lost != 0 || res.Duplicates != 1 || res.Received != res.Expected {
		t.Fatalf("received %d of %d, lost %d, dup %d; want exactly 1 duplicate", res.Received, res.Expected, res.Lost, res.Duplicates)
	}
}

// TestIdle holds a few connections and reports this process's RSS, since
// the test passes its own PID as the server's.
func TestIdle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	cfg := smallConfig(target(t))
	cfg.Idle = true
	cfg.Clients = 20
	cfg.Duration = 1200 * time.Millisecond // long enough for a progress line
	cfg.Progress = true
	cfg.PID = os.Getpid()
	res := runBench(t, cfg)
	if res.ConnsOK != 20 || res.ConnsFailed != 0 || res.Sent != 0 {
		t.Fatalf("idle: ok %d failed %d sent %d", res.ConnsOK, res.ConnsFailed, res.Sent)
	}
	if res.ServerRSSEnd <= 0 || res.ConnectRate <= 0 || res.ConnectP99 <= 0 {
		t.Fatalf("idle: rss %d, connect rate %v, p99 %v", res.ServerRSSEnd, res.ConnectRate, res.ConnectP99)
	}
}

func hostPort(t *testing.T, base string) string {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	return u.Host
}
