package e2e_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"testing"

	"github.com/chatd/chat/internal/testserver"
)

// createKey runs the real binary's "chatd createkey" against the database
// of env and returns the secret it printed.
func createKey(t *testing.T, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(testserver.Binary(t), append([]string{"createkey"}, args...)...)
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME")}, env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chatd createkey: %v\n%s", err, out)
	}
	secret := regexp.MustCompile(`(?m)^chatd_[A-Za-z0-9_-]{43}$`).Find(out)
	if secret == nil {
		t.Fatalf("chatd createkey printed no secret:\n%s", out)
	}
	return string(secret)
}

// post sends one publish request and returns its status and JSON answer.
func post(t *testing.T, url, secret string, body any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(http.MethodPost, url, bytes.NewReader(b))
	req.Header.Set("Authorization", "Bearer "+secret)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("POST %s: %v", url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v map[string]any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, raw)
	}
	return resp.StatusCode, v
}

// TestPublishAcrossProcesses: a real HTTP client posts through the publish
// API of two chatd processes that share one database and one private
// Redis, while sockets on both processes listen. Every answer carries the
// next seq of the room, given after the commit; every socket on either
// process gets every message once, in seq order, with that seq and the
// bot as its user; a retried id answers 200 with the original seq and is
// not delivered twice; a batch reaches rooms on both processes.
func TestPublishAcrossProcesses(t *testing.T) {
	stores(t, func(t *testing.T, env []string) {
		secret := createKey(t, env, "--name", "news", "--bot", "newsroom")
		_, procs := cluster(t, 2, env)
		var listeners []*chatClient
		for i := range 4 {
			p := procs[i%2]
			cc := newChatClient(t, fmt.Sprintf("listener%d@%s", i, p.Addr), func() string { return wsURL(p, "/ws/chat/news/") })
			cc.connect()
			listeners = append(listeners, cc)
		}
		other := newChatClient(t, "other@"+procs[1].Addr, func() string { return wsURL(procs[1], "/ws/chat/other/") })
		other.connect()

		const n = 20
		for i := 1; i <= n; i++ {
			p := procs[i%2]
			status, v := post(t, p.URL+"/api/chat/news/messages", secret,
				map[string]string{"message": fmt.Sprintf("bulletin %d", i), "id": fmt.Sprintf("b-%d", i)})
			if status != http.StatusCreated || v["seq"] != float64(i) || v["user"] != "bot:newsroom" {
				t.Fatalf("post %d to %s: %d %v; want 201 with seq %d by bot:newsroom", i, p.Addr, status, v, i)
			}
		}
		// A retry of a lost answer, to the other process: the same message.
		status, v := post(t, procs[0].URL+"/api/chat/news/messages", secret, map[string]string{"message": "bulletin 7", "id": "b-7"})
		if status != http.StatusOK || v["seq"] != 7.0 {
			t.Fatalf("retry: %d %v; want 200 with seq 7", status, v)
		}
		// One batch to rooms listened to on both processes.
		status, v = post(t, procs[1].URL+"/api/chat/messages", secret,
			map[string]any{"message": "to everyone", "id": "all-1", "rooms": []string{"news", "other"}})
		results, _ := v["results"].([]any)
		if status != http.StatusOK || len(results) != 2 {
			t.Fatalf("batch: %d %v", status, v)
		}
		for i, want := range []float64{n + 1, 1} {
			r := results[i].(map[string]any)
			if r["status"] != 201.0 || r["seq"] != want {
				t.Fatalf("batch result %d: %v; want 201 seq %v", i, r, want)
			}
		}

		for _, cc := range listeners {
			if err := cc.pump(func() bool { return cc.last == n+1 }); err != nil {
				t.Fatalf("%s: %v", cc.name, err)
			}
			for i := 1; i <= n; i++ {
				if cc.texts[int64(i)] != fmt.Sprintf("bulletin %d", i) {
					t.Fatalf("%s: seq %d is %q", cc.name, i, cc.texts[int64(i)])
				}
			}
			if cc.texts[n+1] != "to everyone" {
				t.Fatalf("%s: seq %d is %q", cc.name, n+1, cc.texts[n+1])
			}
		}
		if err := other.pump(func() bool { return other.last == 1 }); err != nil {
			t.Fatal(err)
		}
		// The retry was not delivered again: after a last message, each
		// listener's next frame is that message (take fails on a repeat).
		status, _ = post(t, procs[0].URL+"/api/chat/news/messages", secret, map[string]string{"message": "last"})
		if status != http.StatusCreated {
			t.Fatalf("last post: %d", status)
		}
		for _, cc := range listeners {
			if err := cc.pump(func() bool { return cc.last == n+2 }); err != nil {
				t.Fatal(err)
			}
		}
		msgs := history(t, procs[1].URL, "/api/chat/news/messages", "")
		if len(msgs) != n+2 || msgs[0]["user"] != "bot:newsroom" {
			t.Fatalf("history has %d messages (first %v), want %d by bot:newsroom", len(msgs), msgs[0], n+2)
		}
	})
}
