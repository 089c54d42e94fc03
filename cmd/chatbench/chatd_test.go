package main

import "testing"

// startChatd starts a real chatd for the test and returns its ws:// base URL.
func startChatd(t *testing.T) string {
	t.Helper()
	t.Skip("internal/testserver is not available yet; set CHATBENCH_TEST_URL")
	return ""
}
