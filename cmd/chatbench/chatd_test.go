package main

import (
	"testing"

	"github.com/chatd/chat/internal/testserver"
)

// startChatd starts a real chatd process for the test (built from this
// checkout by internal/testserver) and returns its ws:// base URL. The
// per-connection rate limit is off so short bursts of the pacer never
// trip it.
func startChatd(t *testing.T) string {
	t.Helper()
	s := testserver.Start(t, []string{"-log-level", "warn", "-rate-limit", "0"})
	return "ws://" + s.Addr
}
