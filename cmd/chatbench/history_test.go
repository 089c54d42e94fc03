package main

import (
	"context"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chat/internal/testserver"
)

// TestAckWindow sends with ids, one (or 8) unacknowledged messages at a
// time per sender, as fast as the acks come: every message must be acked
// once, and the room's seqs must have no gap or repeat. With HISTORY=off
// chatd acks too (without a seq): relayed, not stored.
func TestAckWindow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	for _, tc := range []struct {
		window  int
		history string
	}{{1, "on"}, {8, "on"}, {1, "off"}} {
		window := tc.window
		t.Run(strconv.Itoa(window)+"-history-"+tc.history, func(t *testing.T) {
			cfg := smallConfig(startChatd(t, "-history", tc.history))
			cfg.Ack, cfg.Window, cfg.Rate = true, window, 0
			res := runBench(t, cfg)
			checkExpected(t, res)
			if res.Lost != 0 || res.Duplicates != 0 {
				t.Fatalf("lost %d, dup %d", res.Lost, res.Duplicates)
			}
			if res.Acked != res.Sent || res.Nacked != 0 || res.Unacked != 0 || res.AckDups != 0 {
				t.Fatalf("sent %d, acked %d, refused %d, unanswered %d, acked twice %d", res.Sent, res.Acked, res.Nacked, res.Unacked, res.AckDups)
			}
			if res.AckN == 0 || res.AckedPerS <= 0 || res.AckP99 <= 0 || res.AckP99 > res.AckMax {
				t.Fatalf("ack latency p99 %v max %v from %d samples, %v/s", res.AckP99, res.AckMax, res.AckN, res.AckedPerS)
			}
			wantSeqs := res.Received
			if tc.history == "off" {
				wantSeqs = 0 // acks and frames without seqs: relayed, not stored
			}
			if res.SeqFrames != wantSeqs || res.SeqGaps != 0 || res.SeqDups != 0 {
				t.Fatalf("room seqs: %d frames for %d deliveries, gaps %d, dups %d", res.SeqFrames, res.Received, res.SeqGaps, res.SeqDups)
			}
		})
	}
}

// TestHistoryOnJoinIsNotLoss runs twice into the same rooms of a chatd
// with history on: the second run's clients get the first run's last
// messages on join. Those are history, not lost, duplicated or misordered
// messages of the second run.
func TestHistoryOnJoinIsNotLoss(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	url := startChatd(t, "-history-on-join", "10")
	cfg := smallConfig(url)
	cfg.RoomPrefix = "hist"
	first := runBench(t, cfg)
	if first.Foreign != 0 {
		t.Fatalf("first run into empty rooms got %d frames of other runs", first.Foreign)
	}
	res := runBench(t, cfg)
	checkExpected(t, res)
	if res.Lost != 0 || res.Duplicates != 0 || res.Received != res.Expected {
		t.Fatalf("received %d of %d, lost %d, dup %d", res.Received, res.Expected, res.Lost, res.Duplicates)
	}
	if want := uint64(10 * cfg.Clients); res.Foreign != want {
		t.Fatalf("history frames (other runs) %d, want 10 per client = %d", res.Foreign, want)
	}
	if res.SeqGaps != 0 || res.SeqDups != 0 || res.SeqFrames != res.Received+res.Foreign {
		t.Fatalf("room seqs: %d frames, gaps %d, dups %d", res.SeqFrames, res.SeqGaps, res.SeqDups)
	}
}

// TestResumeStorm restarts chatd after the first round: every client must
// reconnect with ?after= and end with every message of its room exactly
// once, including those the senders sent while the others were still
// reconnecting.
func TestResumeStorm(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	addr := freeAddr(t)
	args := []string{"-log-level", "warn", "-rate-limit", "0", "-addr", addr}
	data := "DATA_DIR=" + t.TempDir()
	srv := testserver.Start(t, args, data)
	restarts := 0
	cfg := smallConfig("ws://" + addr)
	cfg.Clients = 40 // 20 per room
	cfg.ResumeSend = 500 * time.Millisecond
	cfg.ReconnectTimeout = 20 * time.Second
	cfg.Restart = func(ctx context.Context) (int, error) {
		restarts++
		srv.Stop(t)
		srv = testserver.Start(t, args, data)
		return srv.PID(), nil
	}
	res := runBench(t, cfg)
	if restarts != 1 || res.Storm == nil {
		t.Fatalf("%d restarts, storm %+v", restarts, res.Storm)
	}
	s := res.Storm
	if s.Reconnected != 40 || s.Failed != 0 || s.Sent == 0 || s.AllLiveMS <= 0 || s.NewServerPID != srv.PID() {
		t.Fatalf("storm: %+v", s)
	}
	if res.ConnsDropped != 0 || res.Lost != 0 || res.Duplicates != 0 || res.OutOfOrder != 0 || res.Received != res.Expected || res.Expected != res.Sent*20 {
		t.Fatalf("sent %d, expected %d, received %d, lost %d, dup %d, out of order %d, dropped %d: %v",
			res.Sent, res.Expected, res.Received, res.Lost, res.Duplicates, res.OutOfOrder, res.ConnsDropped, res.LostSamples)
	}
	if res.SeqGaps != 0 || res.SeqDups != 0 || res.SeqFrames != res.Received {
		t.Fatalf("room seqs: %d frames for %d deliveries, gaps %d, dups %d", res.SeqFrames, res.Received, res.SeqGaps, res.SeqDups)
	}
}

// TestCookiesCourseRoom: signed-in users in a course room, one session
// cookie per client from -cookies, the room named by -room-names. The
// course socket refuses anyone not signed in, so every connection that
// opens used its cookie.
func TestCookiesCourseRoom(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	dir := t.TempDir()
	data := "DATA_DIR=" + dir
	srv := testserver.Start(t, []string{"-log-level", "warn", "-rate-limit", "0"}, data)
	admin := func(stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(testserver.Binary(t), args...)
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), data}
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("chatd %v: %v\n%s", args, err, out)
		}
		return string(out)
	}
	var cookies []string
	courseID := ""
	for i := range 3 {
		name := "student" + strconv.Itoa(i)
		admin("secret-password-1\n", "createuser", name, "--password-stdin")
		if i == 0 {
			out := admin("", "createcourse", "--owner", name, "Benchmarks")
			courseID = strings.Fields(out)[len(strings.Fields(out))-1]
		} else {
			admin("", "enroll", courseID, name)
		}
		cookies = append(cookies, login(t, srv.URL, name, "secret-password-1"))
	}
	if _, err := strconv.Atoi(courseID); err != nil {
		t.Fatalf("createcourse printed no id: %q", courseID)
	}
	cfg := smallConfig("ws://" + srv.Addr)
	cfg.Path = "/ws/chat/room/%s/"
	cfg.RoomNames = []string{courseID}
	cfg.Clients = 3
	cfg.Cookies = cookies
	res := runBench(t, cfg)
	if res.Rooms != 1 || res.ConnsOK != 3 || res.ConnsFailed != 0 {
		t.Fatalf("rooms %d, connections ok %d failed %d: %v", res.Rooms, res.ConnsOK, res.ConnsFailed, res.ConnectErrors)
	}
	if res.Lost != 0 || res.Received != res.Expected || res.Expected != res.Sent*3 {
		t.Fatalf("sent %d, expected %d, received %d, lost %d", res.Sent, res.Expected, res.Received, res.Lost)
	}
	// Without cookies the course room refuses every connection.
	cfg.Cookies = nil
	res = runBench(t, cfg)
	if res.ConnsOK != 0 || len(res.ConnectErrors) == 0 || !strings.Contains(res.ConnectErrors[0], "401") {
		t.Fatalf("anonymous: ok %d, errors %v", res.ConnsOK, res.ConnectErrors)
	}
}

// login signs in through the login form and returns the session cookie as
// a Cookie header value.
func login(t *testing.T, base, user, pw string) string {
	t.Helper()
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }, Timeout: 10 * time.Second}
	resp, err := c.PostForm(base+"/accounts/login/", url.Values{"username": {user}, "password": {pw}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	for _, ck := range resp.Cookies() {
		if ck.Name == "chatd_session" {
			return ck.Name + "=" + ck.Value
		}
	}
	t.Fatalf("login %s: %s, no chatd_session cookie", user, resp.Status)
	return ""
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

func TestReadCookies(t *testing.T) {
	p := filepath.Join(t.TempDir(), "cookies")
	if err := os.WriteFile(p, []byte("# sessions\nchatd_session=a\n\n  chatd_session=b  \n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := readCookies(p)
	if err != nil || len(got) != 2 || got[0] != "chatd_session=a" || got[1] != "chatd_session=b" {
		t.Fatalf("readCookies = %q, %v", got, err)
	}
	if err := os.WriteFile(p, []byte("\n# none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := readCookies(p); err == nil {
		t.Fatal("a file without cookies was accepted")
	}
}
