package redis_test

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	"github.com/chatd/chat/internal/testserver"
	"github.com/chatd/chat/internal/wstest"
)

// TestMultiProcess runs three real chatd processes on one Redis and talks to
// them with real WebSocket clients: in one room, two clients on each process
// and a sender on each process; in another room, one client on each process.
// Every message must reach every client of its room exactly once, in order
// per sender, and never a client of the other room.
func TestMultiProcess(t *testing.T) {
	redisURL := testURL(t)
	if testing.Short() {
		t.Skip("starts three chatd processes; skipped with -short")
	}
	const (
		procs   = 3
		perSend = 200 // messages from each sender in room A
		inB     = 50  // messages in room B
	)
	suffix := randHex(t)
	roomA, roomB := "e2e-a-"+suffix, "e2e-b-"+suffix

	// One deployment: the processes share a database (and so would share
	// the default channel prefix); an explicit prefix of the test's own
	// keeps the subscriber counts below exact on a shared Redis.
	prefix := "chatd-e2e-" + suffix + ":"
	data := t.TempDir()
	var servers []*testserver.Server
	for range procs {
		servers = append(servers, testserver.Start(t, nil,
			"CHANNEL_LAYER=redis", "REDIS_URL="+redisURL, "DATA_DIR="+data, "CHANNEL_PREFIX="+prefix,
			"RATE_LIMIT=0")) // the senders below send as fast as they can
	}
	for i, s := range servers {
		resp, err := http.Get(s.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), `"layer":"ok"`) {
			t.Fatalf("process %d /readyz: %d %s", i, resp.StatusCode, body)
		}
	}

	// dial connects to room on server s with the chatd.v1 subprotocol and
	// waits for the hello frame, which the server sends once the connection
	// has joined the room (and the process has subscribed to it).
	dial := func(s *testserver.Server, room string) *wstest.Client {
		t.Helper()
		ws := "ws://" + s.Addr + "/ws/chat/" + room + "/"
		c := wstest.Dial(t, ws, wstest.Options{Subprotocol: "chatd.v1"})
		c.NextOfType(t, "hello")
		return c
	}
	type member struct {
		name string
		c    *wstest.Client
	}
	var inA, inRoomB []member
	var senders []*wstest.Client
	for i, s := range servers {
		for j := range 2 {
			c := dial(s, roomA)
			inA = append(inA, member{fmt.Sprintf("A client %d on process %d", j, i), c})
			if j == 0 {
				senders = append(senders, c)
			}
		}
		inRoomB = append(inRoomB, member{fmt.Sprintf("B client on process %d", i), dial(s, roomB)})
	}

	// One subscription per room per process, however many clients: Redis
	// lists each room's channel with one subscriber per process.
	if u, err := url.Parse(redisURL); err == nil && u.User == nil && u.Scheme == "redis" {
		chans := []string{prefix + "chat:" + roomA, prefix + "chat:" + roomB}
		if n := numsub(t, u.Host, chans...); n[0] != procs || n[1] != procs {
			t.Errorf("Redis lists %v subscribers of rooms A and B, want %d each (one per process)", n, procs)
		}
	}

	// The senders interleave: message k of each sender in turn, each on its
	// own process. Room B gets its messages from process 1 in between.
	bSender := inRoomB[1].c
	for k := range perSend {
		for i, c := range senders {
			c.Send(t, map[string]string{"message": fmt.Sprintf("s%d-%d", i, k)})
		}
		if k < inB {
			bSender.Send(t, map[string]string{"message": fmt.Sprintf("b-%d", k)})
		}
	}
	for i, c := range senders {
		c.Send(t, map[string]string{"message": fmt.Sprintf("s%d-end", i)})
	}
	bSender.Send(t, map[string]string{"message": "b-end"})

	// Each client reads until it has every sender's end marker: a sender's
	// messages arrive in order, so by then all of that sender's earlier
	// messages (and any duplicate of them) have arrived.
	for _, m := range inA {
		got := readUntilEnds(t, m.c, procs, "s")
		for i := range procs {
			checkSequence(t, m.name, fmt.Sprintf("sender %d", i), got[fmt.Sprintf("s%d", i)], perSend)
		}
		for key := range got {
			if !strings.HasPrefix(key, "s") {
				t.Errorf("%s received room B's messages %q", m.name, key)
			}
		}
	}
	for _, m := range inRoomB {
		got := readUntilEnds(t, m.c, 1, "b")
		checkSequence(t, m.name, "room B's sender", got["b"], inB)
		for key := range got {
			if key != "b" {
				t.Errorf("%s received room A's messages from %q", m.name, key)
			}
		}
	}
}

// readUntilEnds reads chat messages "<sender>-<n>" or "<sender>-end" from c
// until it has seen ends end markers of senders named with prefix, and
// returns each sender's message numbers in arrival order.
func readUntilEnds(t *testing.T, c *wstest.Client, ends int, prefix string) map[string][]int {
	t.Helper()
	got := make(map[string][]int)
	ended := make(map[string]bool)
	for len(ended) < ends {
		f := c.NextOfType(t, "chat_message")
		sender, n, ok := strings.Cut(f.Str("message"), "-")
		if !ok {
			t.Fatalf("unexpected message %q", f.Str("message"))
		}
		if n == "end" {
			if ended[sender] {
				t.Errorf("end marker of %s received twice", sender)
			}
			if strings.HasPrefix(sender, prefix) {
				ended[sender] = true
			}
			continue
		}
		k, err := strconv.Atoi(n)
		if err != nil {
			t.Fatalf("unexpected message %q", f.Str("message"))
		}
		got[sender] = append(got[sender], k)
	}
	return got
}

// checkSequence checks that got is exactly 0, 1, ..., n-1.
func checkSequence(t *testing.T, who, from string, got []int, n int) {
	t.Helper()
	if len(got) != n {
		t.Errorf("%s: %d messages from %s, want %d (lost or duplicated)", who, len(got), from, n)
	}
	for i, k := range got {
		if k != i {
			t.Errorf("%s: message %d from %s is number %d (out of order, lost or duplicated)", who, i, from, k)
			return
		}
	}
}

func randHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// TestMultiProcessRedisRestart runs two chatd processes on a private Redis,
// kills Redis (SIGKILL) while clients are connected and starts it again on
// the same port. It checks what users and operators see: /readyz turns 503
// and /healthz says degraded while Redis is away, nothing crashes and no
// WebSocket is dropped, both processes report ready again once Redis is
// back, and the rooms joined before the outage deliver again without anyone
// rejoining (the layer resubscribed by itself). Each process logs the loss
// and the recovery once. A message sent meanwhile is stored and reaches
// everyone, the other process once Redis is back (history on); with
// HISTORY=off nothing keeps it, so its sender gets an error frame instead
// of silence.
func TestMultiProcessRedisRestart(t *testing.T) {
	testURL(t) // the same gate as the other Redis tests
	if testing.Short() {
		t.Skip("starts chatd processes; skipped with -short")
	}
	for _, history := range []string{"on", "off"} {
		t.Run("history "+history, func(t *testing.T) { testRedisRestart(t, history) })
	}
}

func testRedisRestart(t *testing.T, history string) {
	srv := startRedis(t)
	data := t.TempDir() // one deployment: one database, so one channel prefix
	var servers []*testserver.Server
	for range 2 {
		servers = append(servers, testserver.Start(t, nil, "CHANNEL_LAYER=redis", "REDIS_URL="+srv.url(), "DATA_DIR="+data, "HISTORY="+history))
	}
	room := "e2e-restart-" + randHex(t)
	dial := func(s *testserver.Server) *wstest.Client {
		t.Helper()
		c := wstest.Dial(t, "ws://"+s.Addr+"/ws/chat/"+room+"/", wstest.Options{Subprotocol: "chatd.v1"})
		c.NextOfType(t, "hello")
		return c
	}
	x, y := dial(servers[0]), dial(servers[1])
	send := func(c *wstest.Client, msg string) {
		t.Helper()
		c.Send(t, map[string]string{"message": msg})
	}
	expect := func(c *wstest.Client, who, want string) {
		t.Helper()
		if got := c.NextOfType(t, "chat_message").Str("message"); got != want {
			t.Fatalf("%s received %q, want %q", who, got, want)
		}
	}
	send(x, "before")
	expect(x, "x", "before")
	expect(y, "y", "before")

	srv.kill()
	for i, s := range servers {
		eventually(t, fmt.Sprintf("process %d's /readyz to answer 503", i), func() bool {
			code, _ := get(t, s.URL+"/readyz")
			return code == http.StatusServiceUnavailable
		})
		code, body := get(t, s.URL+"/healthz")
		if code != http.StatusOK || !strings.Contains(body, `"status":"degraded"`) {
			t.Errorf("process %d /healthz while Redis is down: %d %s", i, code, body)
		}
		t.Logf("process %d /healthz while Redis is down: %s", i, body)
	}
	send(x, "during")
	if history == "off" {
		f := x.NextOfType(t, "error")
		if f.Str("code") != "unavailable" {
			t.Errorf("error frame for a message sent while Redis is down: %v, want code unavailable", f)
		}
		t.Logf("error frame: %v", f)
	} else {
		expect(x, "x", "during") // stored, and delivered on its own process
	}

	srv.start()
	for i, s := range servers {
		eventually(t, fmt.Sprintf("process %d's /readyz to answer 200", i), func() bool {
			code, _ := get(t, s.URL+"/readyz")
			return code == http.StatusOK
		})
	}
	if history == "on" {
		expect(y, "y", "during") // read from the store after the reconnection
	}
	// Ready means resubscribed: the first message after recovery reaches
	// both connections, which never left the room.
	send(x, "after")
	expect(x, "x", "after")
	expect(y, "y", "after")
	send(y, "reply")
	expect(x, "x", "reply")
	expect(y, "y", "reply")

	for i, s := range servers {
		logs := s.Stderr()
		if n := strings.Count(logs, "redis layer lost its connection"); n != 1 {
			t.Errorf("process %d logged the loss %d times, want once", i, n)
		}
		if n := strings.Count(logs, "redis layer reconnected"); n != 1 {
			t.Errorf("process %d logged the recovery %d times, want once", i, n)
		}
	}
}

// get fetches url and returns the status code and body.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
