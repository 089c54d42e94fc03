package main

import (
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/testserver"
	"github.com/chatd/chat/internal/wstest"
	"github.com/chatd/chat/password"
	"github.com/chatd/chat/ws"
	goredis "github.com/redis/go-redis/v9"
)

// deployment is one chatd deployment for TestDeploymentsOnOneRedis: a
// SQLite database with a course (id 1) owned by one user with one enrolled
// student, and chatd processes on it.
type deployment struct {
	dir      string
	redisURL string
	cookies  map[string]string // username -> session cookie
	procs    []*testserver.Server
}

// newDeployment creates the database in a fresh directory: owner owns
// course 1, student is enrolled in it; both get a session.
func newDeployment(t *testing.T, redisURL, owner, student string) *deployment {
	t.Helper()
	d := &deployment{dir: filepath.Join(t.TempDir(), "data"), redisURL: redisURL, cookies: map[string]string{}}
	st, err := openStore(t.Context(), "", d.dir)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	hash, err := password.Hash(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]*chat.User{}
	for _, name := range []string{owner, student} {
		u := &chat.User{Username: name}
		if err := st.CreateUser(t.Context(), u, hash); err != nil {
			t.Fatal(err)
		}
		users[name] = u
		sess, err := st.CreateSession(t.Context(), u.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		d.cookies[name] = "chatd_session=" + sess.Token
	}
	c := &chat.Course{Title: "Course of " + owner, OwnerID: users[owner].ID}
	if err := st.CreateCourse(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if c.ID != 1 {
		t.Fatalf("course id %d, want 1 (a fresh database)", c.ID)
	}
	if err := st.Enroll(t.Context(), c.ID, users[student].ID); err != nil {
		t.Fatal(err)
	}
	return d
}

// start runs another chatd process of the deployment, with the default
// channel prefix (no CHANNEL_PREFIX).
func (d *deployment) start(t *testing.T) *testserver.Server {
	t.Helper()
	s := testserver.Start(t, nil, "DATA_DIR="+d.dir, "CHANNEL_LAYER=redis", "REDIS_URL="+d.redisURL, "ACCESS_RECHECK_INTERVAL=1h")
	d.procs = append(d.procs, s)
	return s
}

var prefixLog = regexp.MustCompile(`channel_prefix=(\S+)`)

// prefixOf returns the channel prefix that process s logged at start. The
// log line is written before the "listening" line that Start waits for, but
// on another pipe, so it may still be on its way.
func prefixOf(t *testing.T, s *testserver.Server) string {
	t.Helper()
	deadline := time.Now().Add(wstest.Timeout) // a failure bound, not a measurement
	for {
		if m := prefixLog.FindStringSubmatch(s.Stderr()); m != nil {
			return m[1]
		}
		if time.Now().After(deadline) {
			t.Fatalf("chatd did not log its channel prefix:\n%s", s.Stderr())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// dialV1 opens path on s with cookie (may be empty) and the chatd.v1
// subprotocol, and waits for the hello frame, sent once the socket is in its
// room (and its process subscribed to the room's channel).
func dialV1(t *testing.T, s *testserver.Server, path, cookie string) *wstest.Client {
	t.Helper()
	c := wstest.Dial(t, "ws://"+s.Addr+path, wstest.Options{Subprotocol: ws.Subprotocol, Header: cookieHeader(cookie)})
	c.NextOfType(t, "hello")
	return c
}

// nextChat returns the text of c's next chat message.
func nextChat(t *testing.T, c *wstest.Client) string {
	t.Helper()
	return c.NextOfType(t, "chat_message").Str("message")
}

// TestDeploymentsOnOneRedis runs two deployments (different SQLite data
// directories, Redis databases 7 and 8 as in the bug report) on the real
// Redis, with the default channel prefix: deployment A has two processes,
// deployment B one. Redis pub/sub ignores the database number, so before
// the channel prefix was derived from the database, B's student received
// course messages from a user who exists only in A, and A's logout of
// session 1 closed B's session 1. Now:
//
//   - each deployment logs its own prefix; the processes of A share one;
//   - the two processes of A exchange public and course room messages;
//   - no frame of A's public room, course room or control group reaches B,
//     and none of B's reaches A.
//
// "Never" is checked without waiting for a silence: Redis delivers to a
// subscription connection in the order it executed the PUBLISHes, and each
// process delivers in the order it receives. So once a marker published
// after A's messages has reached a client of B, any of A's messages that B
// received would have come before the marker.
func TestDeploymentsOnOneRedis(t *testing.T) {
	base := os.Getenv("CHATD_TEST_REDIS_URL")
	if base == "" {
		t.Skip("CHATD_TEST_REDIS_URL is not set: this test runs chatd processes on the real Redis")
	}
	onDB := func(n int) string {
		u, err := url.Parse(base)
		if err != nil {
			t.Fatal(err)
		}
		u.Path = "/" + strconv.Itoa(n)
		return u.String()
	}
	a := newDeployment(t, onDB(7), "olga", "alice")
	b := newDeployment(t, onDB(8), "tom", "bea")
	a1, a2, b1 := a.start(t), a.start(t), b.start(t)

	pa, pa2, pb := prefixOf(t, a1), prefixOf(t, a2), prefixOf(t, b1)
	t.Logf("prefixes: A %s, A %s, B %s", pa, pa2, pb)
	if pa != pa2 {
		t.Errorf("the processes of one deployment use prefixes %q and %q", pa, pa2)
	}
	if pa == pb {
		t.Errorf("two deployments use the same prefix %q", pa)
	}
	for _, p := range []string{pa, pb} {
		if !regexp.MustCompile(`^chatd:\S{12}:$`).MatchString(p) {
			t.Errorf("default prefix %q is not chatd:<12 characters>:", p)
		}
	}

	roomName := "apart-" + randToken(t)
	room := "/ws/chat/" + roomName + "/"
	const course = "/ws/chat/room/1/"
	pubA1, pubA2, pubB := dialV1(t, a1, room, ""), dialV1(t, a2, room, ""), dialV1(t, b1, room, "")
	alice, olga := dialV1(t, a1, course, a.cookies["alice"]), dialV1(t, a2, course, a.cookies["olga"])
	bea := dialV1(t, b1, course, b.cookies["bea"])

	// Redis sees one subscriber per process on each deployment's channel,
	// and nobody on the old shared name.
	rc := goredis.NewClient(mustRedisOptions(t, base))
	defer rc.Close()
	ch := "chat:" + roomName // the room's group
	n, err := rc.PubSubNumSub(t.Context(), pa+ch, pb+ch, "chatd:"+ch).Result()
	if err != nil {
		t.Fatal(err)
	}
	if n[pa+ch] != 2 || n[pb+ch] != 1 || n["chatd:"+ch] != 0 {
		t.Errorf("subscribers %v, want 2 on A's channel, 1 on B's, 0 on the unprefixed one", n)
	}

	// A's messages go round deployment A, across its two processes.
	pubA1.Send(t, map[string]string{"message": "A public"})
	alice.Send(t, map[string]string{"message": "A course"})
	for _, c := range []*wstest.Client{pubA1, pubA2} {
		if got := nextChat(t, c); got != "A public" {
			t.Fatalf("A's public room got %q, want \"A public\"", got)
		}
	}
	for _, c := range []*wstest.Client{alice, olga} {
		if got := nextChat(t, c); got != "A course" {
			t.Fatalf("A's course room got %q, want \"A course\"", got)
		}
	}
	// A logs alice out: a control message for "session 1" of A. B's bea
	// also holds session 1 of B.
	logout(t, a1, a.cookies["alice"])
	if code, reason := alice.WaitClose(t); code != 1008 || reason != "logged out" {
		t.Errorf("alice closed with %d %q, want 1008 \"logged out\"", code, reason)
	}

	// B's markers, published after all of A's: the first frames B's
	// clients get must be their own.
	pubB.Send(t, map[string]string{"message": "B public"})
	bea.Send(t, map[string]string{"message": "B course"})
	if got := nextChat(t, pubB); got != "B public" {
		t.Errorf("deployment B's public room received %q from deployment A", got)
	}
	if got := nextChat(t, bea); got != "B course" {
		t.Errorf("deployment B's student received %q in course room 1 from deployment A", got)
	}
	if bea.Closed() {
		t.Errorf("A's logout of its session 1 closed B's session 1")
	}

	// And the other way round: A's next messages are A's own, published
	// after B's markers.
	pubA2.Send(t, map[string]string{"message": "A again"})
	olga.Send(t, map[string]string{"message": "A course again"})
	if got := nextChat(t, pubA1); got != "A again" {
		t.Errorf("deployment A's public room received %q from deployment B", got)
	}
	if got := nextChat(t, olga); got != "A course again" {
		t.Errorf("deployment A's course room received %q from deployment B", got)
	}
}

// logout posts the logout form on s as the holder of cookie.
func logout(t *testing.T, s *testserver.Server, cookie string) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), "POST", s.URL+"/accounts/logout/", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Cookie", cookie)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	req.Header.Set("Origin", s.URL)
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("logout: %d", resp.StatusCode)
	}
}

func mustRedisOptions(t *testing.T, u string) *goredis.Options {
	t.Helper()
	o, err := goredis.ParseURL(u)
	if err != nil {
		t.Fatal(err)
	}
	return o
}

func randToken(t *testing.T) string {
	t.Helper()
	tok, _, err := chat.NewSessionToken()
	if err != nil {
		t.Fatal(err)
	}
	return strings.ToLower(strings.NewReplacer("-", "", "_", "").Replace(tok))[:12]
}
