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
	"github.com/chatd/chat/redis"
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

	var servers []*testserver.Server
	for range procs {
		servers = append(servers, testserver.Start(t, nil,
			"CHANNEL_LAYER=redis", "REDIS_URL="+redisURL,
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
		chans := []string{redis.DefaultPrefix + "chat:" + roomA, redis.DefaultPrefix + "chat:" + roomB}
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
