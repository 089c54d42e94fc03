package main

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chat/internal/wstest"
)

// sendAcked sends n messages "<prefix> i" with ids from a chatd.v1 socket
// and waits for every ack.
func sendAcked(t *testing.T, s *server, room, prefix string, n int) {
	t.Helper()
	c := wstest.Dial(t, s.ws(room), wstest.Options{Subprotocol: "chatd.v1", Buffer: 1 << 14})
	defer c.Close()
	c.NextOfType(t, "hello")
	for i := range n {
		c.Send(t, map[string]string{"type": "chat_message", "message": fmt.Sprint(prefix, " ", i), "id": fmt.Sprint(prefix, i)})
	}
	for acked := 0; acked < n; {
		if f := c.Next(t); f.Str("type") == "ack" {
			acked++
		} else if f.Str("type") == "error" {
			t.Fatalf("error frame %v", f)
		}
	}
}

// apiGet fetches a history URL and decodes its JSON.
func apiGet(t *testing.T, s *server, path, cookie string) (int, map[string]any) {
	t.Helper()
	resp, body := s.get(t, path, cookie)
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("%s: %d, not JSON: %q", path, resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("%s: Content-Type %q", path, ct)
	}
	return resp.StatusCode, v
}

// seqs returns the seqs of a history answer's messages.
func seqs(v map[string]any) []int {
	var out []int
	for _, m := range v["messages"].([]any) {
		out = append(out, int(m.(map[string]any)["seq"].(float64)))
	}
	return out
}

func span(from, to int) []int {
	var out []int
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func TestHistoryAPI(t *testing.T) {
	s := start(t, nil)
	sendAcked(t, s, "/ws/chat/lobby/", "m", 120)
	for _, tc := range []struct {
		query string
		want  []int
	}{
		{"", span(71, 120)}, // the newest 50, oldest first
		{"?before=71", span(21, 70)},
		{"?before=21&limit=500", span(1, 20)},
		{"?after=100", span(101, 120)},
		{"?after=0&limit=500", span(1, 120)},
		{"?after=10&before=15", span(11, 14)},
		{"?limit=3", span(118, 120)},
		{"?after=120", nil},
	} {
		code, v := apiGet(t, s, "/api/chat/lobby/messages"+tc.query, "")
		if code != 200 || fmt.Sprint(seqs(v)) != fmt.Sprint(tc.want) {
			t.Errorf("history%s: %d %v, want %v", tc.query, code, seqs(v), tc.want)
		}
	}
	_, v := apiGet(t, s, "/api/chat/lobby/messages?after=4&limit=1", "")
	m := v["messages"].([]any)[0].(map[string]any)
	if m["type"] != "chat_message" || m["message"] != "m 4" || m["id"] != "m4" || m["room"] != "lobby" ||
		!strings.HasPrefix(fmt.Sprint(m["user"]), "guest-") || m["datetime"] == "" {
		t.Errorf("message 5 as listed: %v", m)
	}
	if code, v := apiGet(t, s, "/api/chat/empty/messages", ""); code != 200 || len(v["messages"].([]any)) != 0 {
		t.Errorf("a room without messages: %d %v", code, v)
	}
	for _, bad := range []string{"?after=-1", "?after=x", "?before=0", "?before=1.5", "?limit=0", "?limit=501", "?limit=ten", "?after=5&before=6"} {
		if code, v := apiGet(t, s, "/api/chat/lobby/messages"+bad, ""); code != 400 || v["error"] != "bad_request" || v["detail"] == "" {
			t.Errorf("history%s: %d %v, want 400 with a reason", bad, code, v)
		}
	}
	if code, v := apiGet(t, s, "/api/chat/no%20such/messages", ""); code != 404 {
		t.Errorf("invalid room name: %d %v, want 404", code, v)
	}
}

// TestHistoryAPIAccess: the history of a course or private room follows
// the room's access rules.
func TestHistoryAPIAccess(t *testing.T) {
	sc := newSchool(t, "sqlite", nil)
	course := "/api/chat/room/" + strconv.FormatInt(sc.courseID, 10) + "/messages"
	alice, bob := sc.session(t, "alice"), sc.session(t, "bob")
	c := sc.dialAs(t, "/ws/chat/room/"+strconv.FormatInt(sc.courseID, 10)+"/", alice)
	send(t, c, "for the class")
	expectMessage(t, c, "for the class")
	for _, tc := range []struct {
		who, cookie, path string
		status            int
	}{
		{"anonymous", "", course, 401},
		{"not enrolled", bob, course, 403},
		{"enrolled", alice, course, 200},
		{"unknown course", alice, "/api/chat/room/999/messages", 404},
		{"anonymous DM", "", "/api/chat/dm/bob/messages", 401},
		{"own DM", alice, "/api/chat/dm/bob/messages", 200},
		{"DM with oneself", alice, "/api/chat/dm/alice/messages", 400},
		{"DM with nobody", alice, "/api/chat/dm/nobody/messages", 404},
	} {
		code, v := apiGet(t, sc.server, tc.path, tc.cookie)
		if code != tc.status {
			t.Errorf("%s %s: %d %v, want %d", tc.who, tc.path, code, v, tc.status)
		}
		if code == 200 && tc.path == course {
			if got := seqs(v); fmt.Sprint(got) != "[1]" {
				t.Errorf("course history %v", got)
			}
		}
	}
	// A resume on a room one may not enter is refused like any socket.
	if got := sc.dialStatus(t, "/ws/chat/room/"+strconv.FormatInt(sc.courseID, 10)+"/?after=0", bob); got != 403 {
		t.Errorf("bob resuming the course room: %d, want 403", got)
	}
}

// TestHistoryOnJoin: a tutorial client (no subprotocol) gets the room's
// latest HISTORY_ON_JOIN messages as ordinary chat_message frames, oldest
// first, then live ones.
func TestHistoryOnJoin(t *testing.T) {
	s := start(t, []string{"-history-on-join", "5"})
	sendAcked(t, s, "/ws/chat/r/", "old", 8)
	c := s.dial(t, "/ws/chat/r/")
	for i := 3; i < 8; i++ {
		if f := expectMessage(t, c, fmt.Sprint("old ", i)); f.Int("seq") != int64(i+1) {
			t.Errorf("history frame %v, want seq %d", f, i+1)
		}
	}
	send(t, c, "live")
	if f := expectMessage(t, c, "live"); f.Int("seq") != 9 {
		t.Errorf("live frame %v, want seq 9", f)
	}
}

// TestResumeBadInput: ?after= must be a whole number >= 0; with
// HISTORY=off it is refused, and the history API says history is off.
func TestResumeBadInput(t *testing.T) {
	s := start(t, nil)
	for _, q := range []string{"?after=", "?after=-1", "?after=x", "?after=1e3"} {
		status, body := wstest.DialStatus(t, s.ws("/ws/chat/r/"+q))
		if status != 400 || !strings.Contains(body, "after must be a whole number") {
			t.Errorf("%s: %d %q, want 400 with the rule", q, status, body)
		}
	}
	off := start(t, []string{"-history", "off"})
	if status, body := wstest.DialStatus(t, off.ws("/ws/chat/r/?after=3")); status != 400 || !strings.Contains(body, "HISTORY=off") {
		t.Errorf("resume with history off: %d %q", status, body)
	}
	if code, v := apiGet(t, off, "/api/chat/r/messages", ""); code != 404 || v["error"] != "history_off" {
		t.Errorf("history API with history off: %d %v", code, v)
	}
	// With history off a chatd.v1 sender's ack carries no seq, and frames
	// none either: nothing is stored.
	c := wstest.Dial(t, off.ws("/ws/chat/r/"), wstest.Options{Subprotocol: "chatd.v1"})
	if f := c.Next(t); f.Str("type") != "hello" || f["history"] != false {
		t.Errorf("hello with history off: %v", f)
	}
	c.Send(t, map[string]string{"message": "x", "id": "a"})
	for got := 0; got < 2; got++ {
		f := c.Next(t)
		if _, has := f["seq"]; has {
			t.Errorf("frame with a seq while history is off: %v", f)
		}
	}
}

// TestRetention: HISTORY_MAX_PER_ROOM keeps the newest messages; a client
// resuming from a removed seq is told where history now starts, then gets
// everything from there; the next message continues the sequence.
func TestRetention(t *testing.T) {
	s := start(t, []string{"-history-max-per-room", "10", "-history-prune-interval", "20ms"})
	sendAcked(t, s, "/ws/chat/kept/", "m", 30)
	deadline := time.Now().Add(30 * time.Second)
	for {
		_, v := apiGet(t, s, "/api/chat/kept/messages?after=0&limit=500", "")
		if got := seqs(v); fmt.Sprint(got) == fmt.Sprint(span(21, 30)) {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("retention kept %v, want 21..30", got)
		}
		time.Sleep(20 * time.Millisecond)
	}
	c := wstest.Dial(t, s.ws("/ws/chat/kept/?after=5"), wstest.Options{Subprotocol: "chatd.v1"})
	c.NextOfType(t, "hello")
	if f := c.Next(t); f.Str("type") != "history_truncated" || f.Int("after") != 5 || f.Int("first") != 21 {
		t.Fatalf("first frame after the hello: %v, want history_truncated after 5, first 21", f)
	}
	for seq := int64(21); seq <= 30; seq++ {
		if f := c.Next(t); f.Int("seq") != seq {
			t.Fatalf("frame %v, want seq %d", f, seq)
		}
	}
	c.Send(t, map[string]string{"message": "next"})
	if f := c.NextOfType(t, "chat_message"); f.Int("seq") != 31 {
		t.Errorf("the next message has seq %d, want 31", f.Int("seq"))
	}
	if code, _ := s.get(t, "/readyz", ""); code.StatusCode != http.StatusOK {
		t.Errorf("/readyz %d", code.StatusCode)
	}
}

// TestResumeLargerThanSendQueue: a resume whose history is many times the
// client's send queue is served at the pace the client reads, never closed
// as a slow consumer, and joins the live stream with nothing missing.
func TestResumeLargerThanSendQueue(t *testing.T) {
	s := start(t, []string{"-send-queue", "65536"})
	c := wstest.Dial(t, s.ws("/ws/chat/big/"), wstest.Options{Subprotocol: "chatd.v1", Buffer: 1 << 12})
	c.NextOfType(t, "hello")
	big := strings.Repeat("x", 3000)
	const n = 300 // about 900 KB of frames, 14 times the send queue
	for i := range n {
		c.Send(t, map[string]string{"message": fmt.Sprint(i, big), "id": fmt.Sprint(i)})
		for {
			if f := c.Next(t); f.Str("type") == "ack" {
				break
			}
		}
	}
	head := int64(n)
	for _, q := range []string{"?after=0", ""} { // a resume, and history on join
		r := wstest.Dial(t, s.ws("/ws/chat/big/"+q), wstest.Options{Buffer: 1 << 12})
		first := int64(1)
		if q == "" {
			first = head - 49 // HISTORY_ON_JOIN's 50
		}
		for seq := first; seq <= head; seq++ {
			if f := r.Next(t); f.Int("seq") != seq {
				t.Fatalf("%q: frame seq %d, want %d", q, f.Int("seq"), seq)
			}
		}
		c.Send(t, map[string]string{"message": "live " + q})
		head++
		if f := expectMessage(t, r, "live "+q); f.Int("seq") != head {
			t.Errorf("live frame %v, want seq %d", f, head)
		}
	}
}
