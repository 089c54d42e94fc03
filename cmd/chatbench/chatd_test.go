package main

import (
	"os"
	"strings"
	"testing"

	"github.com/chatd/chat/internal/testserver"
)

// startChatd starts a real chatd process for the test (built from this
// checkout by internal/testserver) and returns its ws:// base URL. The
// per-connection rate limit is off so short bursts of the pacer never
// trip it.
func startChatd(t *testing.T, args ...string) string {
	t.Helper()
	s := testserver.Start(t, append([]string{"-log-level", "warn", "-rate-limit", "0"}, args...))
	return "ws://" + s.Addr
}

// TestNoEcho runs against a chatd that does not echo a message to its
// sender: -echo auto must notice, and expect one delivery fewer per message.
func TestNoEcho(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	res := runBench(t, smallConfig(startChatd(t, "-echo=false")))
	if res.Echo {
		t.Fatal("echo detected, but chatd runs with -echo=false")
	}
	checkExpected(t, res)
	if res.Lost != 0 || res.Duplicates != 0 || res.Received != res.Expected {
		t.Fatalf("received %d of %d, lost %d, dup %d", res.Received, res.Expected, res.Lost, res.Duplicates)
	}
}

// TestSeveralServers spreads each room over two chatd processes that share
// one Redis: every message must reach every client, whichever process it is
// connected to.
func TestSeveralServers(t *testing.T) {
	redisURL := os.Getenv("CHATD_TEST_REDIS_URL")
	if redisURL == "" {
		t.Skip("CHATD_TEST_REDIS_URL is unset; set it (e.g. redis://127.0.0.1:6379/0) to run chatbench against two chatd processes")
	}
	var urls []string
	data := t.TempDir() // one deployment: one database, so one channel prefix
	for range 2 {
		s := testserver.Start(t, []string{"-log-level", "warn", "-rate-limit", "0"}, "CHANNEL_LAYER=redis", "REDIS_URL="+redisURL, "DATA_DIR="+data)
		urls = append(urls, "ws://"+s.Addr)
	}
	res := runBench(t, smallConfig(strings.Join(urls, ",")))
	checkExpected(t, res)
	if res.Lost != 0 || res.Duplicates != 0 || res.WrongRoom != 0 || res.Received != res.Expected {
		t.Fatalf("received %d of %d, lost %d, dup %d, wrong room %d", res.Received, res.Expected, res.Lost, res.Duplicates, res.WrongRoom)
	}
}

// TestNoSettle sends the first message the moment the last handshake
// completes. chatd joins the room before it answers 101 (since 9adf9ac), so
// nothing may be lost; before, the clients that connected last missed the
// first messages.
func TestNoSettle(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	cfg := smallConfig(startChatd(t))
	cfg.Settle, cfg.Warmup = 0, 0
	res := runBench(t, cfg)
	checkExpected(t, res)
	if res.Lost != 0 || res.Received != res.Expected {
		t.Fatalf("received %d of %d, lost %d: %v", res.Received, res.Expected, res.Lost, res.LostSamples)
	}
}
