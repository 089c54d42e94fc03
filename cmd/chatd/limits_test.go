package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/testserver"
	"github.com/chatd/chat/internal/wstest"
	"github.com/chatd/chat/password"
	"github.com/chatd/chat/web"
)

// Tests of the limits that keep one client from taking the server down
// (issue 9). Every one runs through real sockets against a real server on
// 127.0.0.1. Client addresses are told apart by X-Forwarded-For with
// TRUST_PROXY=true; rate limits and throttles run on a fakeClock that the
// test advances, never on sleeps.

// fakeClock is a clock that moves only when the test says so.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{t: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// startClock starts chatd in this process with clk as its limits' clock.
func startClock(t *testing.T, clk *fakeClock, args []string, env ...string) *server {
	t.Helper()
	return startCtx(t, withClock(t.Context(), clk.Now), args, env...)
}

// fromAddr is the header that makes a request come from ip (TRUST_PROXY).
func fromAddr(ip string) http.Header { return http.Header{"X-Forwarded-For": {ip}} }

// dialFrom opens a socket on path from ip, with cookie (may be empty).
func (s *server) dialFrom(t *testing.T, path, ip, cookie string) *wstest.Client {
	t.Helper()
	h := fromAddr(ip)
	if cookie != "" {
		h.Set("Cookie", cookie)
	}
	return wstest.Dial(t, s.ws(path), wstest.Options{Header: h})
}

// refusedFrom tries to open a socket from ip and returns the status and
// body of the refused handshake; an upgrade fails the test.
func (s *server) refusedFrom(t *testing.T, path, ip, cookie string) (int, string) {
	t.Helper()
	h := fromAddr(ip)
	if cookie != "" {
		h.Set("Cookie", cookie)
	}
	c, resp, err := wstest.TryDial(s.ws(path), wstest.Options{Header: h})
	if err == nil {
		c.Close()
		t.Fatalf("socket from %s was upgraded; want a refusal before any 101", ip)
	}
	if resp == nil {
		t.Fatalf("socket from %s: %v (no HTTP response)", ip, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.Header.Get("Retry-After") == "" {
		t.Errorf("refusal %d without Retry-After", resp.StatusCode)
	}
	return resp.StatusCode, string(body)
}

// stillServing checks that /healthz and /chat/ answer 200.
func stillServing(t *testing.T, base string) {
	t.Helper()
	for _, path := range []string{"/healthz", "/chat/"} {
		resp, err := noRedirects.Get(base + path)
		if err != nil {
			t.Fatalf("GET %s: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("GET %s: %d, want 200", path, resp.StatusCode)
		}
	}
}

// TestConnectionCaps: over the per-address cap an upgrade is answered 429
// with a reason before any 101, over the global cap 503, pages and health
// probes keep answering, and a burst of refusals is logged once.
func TestConnectionCaps(t *testing.T) {
	s := start(t, nil, "TRUST_PROXY=true", "MAX_CONNS_PER_IP=3", "MAX_CONNS=5")
	for i := range 3 {
		s.dialFrom(t, fmt.Sprintf("/ws/chat/r%d/", i), "203.0.113.5", "")
	}
	for range 20 { // a flood from one address
		status, body := s.refusedFrom(t, "/ws/chat/r/", "203.0.113.5", "")
		if status != http.StatusTooManyRequests || !strings.Contains(body, "too many open connections from your address (limit 3)") {
			t.Fatalf("4th socket from one address: %d %q, want 429 with the reason", status, body)
		}
	}
	stillServing(t, s.base)
	// Other addresses connect, up to the global cap.
	s.dialFrom(t, "/ws/chat/r/", "198.51.100.1", "")
	c := s.dialFrom(t, "/ws/chat/r/", "198.51.100.2", "")
	status, body := s.refusedFrom(t, "/ws/chat/r/", "198.51.100.3", "")
	if status != http.StatusServiceUnavailable || !strings.Contains(body, "connection limit (5)") {
		t.Errorf("over the global cap: %d %q, want 503 with the reason", status, body)
	}
	stillServing(t, s.base)
	// A closed socket gives its place back.
	c.Close()
	waitConnections(t, s, 4)
	s.dialFrom(t, "/ws/chat/r/", "198.51.100.3", "")

	logs := s.logs.String()
	if n := strings.Count(logs, `limit=ip key=203.0.113.5`); n != 1 {
		t.Errorf("the flood of 20 refusals from one address was logged %d times, want once:\n%s", n, logs)
	}
	if strings.Contains(logs, "status=429") && strings.Contains(logs, "msg=HTTP") {
		for _, line := range strings.Split(logs, "\n") {
			if strings.Contains(line, "msg=HTTP") && strings.Contains(line, "status=429") {
				t.Errorf("a refused upgrade was logged per attempt: %s", line)
				break
			}
		}
	}
}

// TestConnectionCapPerAccount: one signed-in account's sockets are capped
// wherever they come from; other accounts are not affected.
func TestConnectionCapPerAccount(t *testing.T) {
	sc := newSchool(t, "sqlite", nil, "TRUST_PROXY=true", "MAX_CONNS_PER_USER=2")
	alice := sc.session(t, "alice")
	sc.dialFrom(t, "/ws/chat/lobby/", "203.0.113.1", alice)
	sc.dialFrom(t, "/ws/chat/room/"+strconv.FormatInt(sc.courseID, 10)+"/", "203.0.113.2", alice)
	status, body := sc.refusedFrom(t, "/ws/chat/dm/bob/", "203.0.113.3", sc.session(t, "alice")) // another session too
	if status != http.StatusTooManyRequests || !strings.Contains(body, "too many open connections for your account (limit 2)") {
		t.Errorf("alice's 3rd socket: %d %q, want 429 with the reason", status, body)
	}
	sc.dialFrom(t, "/ws/chat/lobby/", "203.0.113.1", sc.session(t, "bob"))
	stillServing(t, sc.base)
}

// TestDescriptorsReservedAtTheCap reproduces the descriptor exhaustion on a
// small scale: chatd with 256 open files (prlimit) and no per-address cap,
// one client opening sockets until refused. MAX_CONNS=auto keeps a reserve,
// so the refusal is a clean 503 and pages and probes still answer; before,
// accept4 failed with "too many open files" and everything stopped.
func TestDescriptorsReservedAtTheCap(t *testing.T) {
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("prlimit (util-linux) is not installed")
	}
	s := testserver.StartWrapped(t, []string{prlimit, "--nofile=256:256", "--"},
		[]string{"-max-conns-per-ip", "0", "-log-level", "info"})
	const want = 256 - 256/4 // auto: the limit minus the reserve (a quarter of a small limit)
	opened := 0
	for opened <= want {
		c, resp, err := wstest.TryDial("ws://"+s.Addr+"/ws/chat/r/", wstest.Options{})
		if err != nil {
			if resp == nil {
				t.Fatalf("socket %d: %v (no HTTP answer)", opened+1, err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusServiceUnavailable {
				t.Fatalf("socket %d: %d, want 503", opened+1, resp.StatusCode)
			}
			break
		}
		t.Cleanup(c.Close)
		opened++
	}
	if opened != want {
		t.Errorf("%d sockets accepted, want %d (MAX_CONNS=auto)", opened, want)
	}
	for range 20 {
		_, resp, err := wstest.TryDial("ws://"+s.Addr+"/ws/chat/r/", wstest.Options{})
		if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("at the cap: %v %v, want 503", err, resp)
		}
		resp.Body.Close()
	}
	stillServing(t, s.URL)
	if strings.Contains(s.Stderr(), "too many open files") {
		t.Errorf("chatd ran out of descriptors:\n%s", s.Stderr())
	}
	if !strings.Contains(s.Stderr(), "max_conns="+strconv.Itoa(want)) {
		t.Errorf("the chosen connection limit was not logged")
	}
}

// TestTrickledBodyIsCut: a POST whose body trickles in is answered 408 and
// its connection closed once REQUEST_BODY_TIMEOUT has passed, however many
// bytes keep coming; a WebSocket opened before it outlives it.
func TestTrickledBodyIsCut(t *testing.T) {
	s := start(t, []string{"-body-timeout", "200ms"})
	sock := s.dial(t, "/ws/chat/r/")
	conn, err := net.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(wstest.Timeout)) // a failure bound, not a measurement
	fmt.Fprintf(conn, "POST /accounts/login/ HTTP/1.1\r\nHost: %s\r\nContent-Type: application/x-www-form-urlencoded\r\n"+
		"Sec-Fetch-Site: same-origin\r\nContent-Length: 100000\r\n\r\nusername=a", strings.TrimPrefix(s.base, "http://"))
	// Trickle a byte at a time until the server stops taking them.
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(10 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte("x")); err != nil {
					return
				}
			}
		}
	}()
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatalf("no answer to a trickled body: %v", err)
	}
	if resp.StatusCode != http.StatusRequestTimeout || !resp.Close {
		t.Errorf("trickled body: %d (close %v), want 408 and the connection closed", resp.StatusCode, resp.Close)
	}
	io.Copy(io.Discard, resp.Body)
	// The server closes: EOF, or a reset since trickled bytes were unread.
	var ne net.Error
	if _, err := br.ReadByte(); err == nil || errors.As(err, &ne) && ne.Timeout() {
		t.Errorf("after the 408 the connection is still open (read: %v)", err)
	}
	// The socket opened before the POST has lived past its timeout.
	send(t, sock, "still connected")
	expectMessage(t, sock, "still connected")
	stillServing(t, s.base)
}

// signupForm is a valid sign-up for name.
func signupForm(name string) url.Values {
	return url.Values{"username": {name}, "password": {"long enough pw"}, "password2": {"long enough pw"}}
}

// TestSignupThrottledPerAddress: sign-ups from one address are throttled
// (429 with Retry-After and a reason) while logins from it and sign-ups
// from elsewhere go on; the allowance comes back with time.
func TestSignupThrottledPerAddress(t *testing.T) {
	clk := newFakeClock()
	sc := newSchoolCtx(t, withClock(t.Context(), clk.Now), "sqlite", nil, "TRUST_PROXY=true", "SIGNUP_LIMIT=3", "SIGNUP_WINDOW=1h")
	from := func(ip string) []string { return []string{"X-Forwarded-For", ip} }
	for i := range 3 {
		if resp, body := sc.post(t, "/accounts/signup/", "", signupForm(fmt.Sprintf("new%d", i)), from("203.0.113.7")...); resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("sign-up %d: %d\n%s", i+1, resp.StatusCode, body)
		}
	}
	resp, body := sc.post(t, "/accounts/signup/", "", signupForm("new3"), from("203.0.113.7")...)
	if resp.StatusCode != http.StatusTooManyRequests || resp.Header.Get("Retry-After") != "1200" ||
		!strings.Contains(body, "Too many accounts were created from your network address. Wait 20 minutes") {
		t.Fatalf("4th sign-up from one address: %d (Retry-After %q), want 429 with the reason", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
	if _, err := sc.st.UserByUsername(t.Context(), "new3"); chat.ErrorCode(err) != chat.ENOTFOUND {
		t.Errorf("the refused sign-up created its account: %v", err)
	}
	if resp, _ := sc.login(t, "alice", testPassword, from("203.0.113.7")...); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("login from the throttled address: %d, want 303", resp.StatusCode)
	}
	if resp, _ := sc.post(t, "/accounts/signup/", "", signupForm("elsewhere"), from("198.51.100.7")...); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-up from another address: %d, want 303", resp.StatusCode)
	}
	clk.Advance(20 * time.Minute) // a third of the window: one more
	if resp, _ := sc.post(t, "/accounts/signup/", "", signupForm("new3"), from("203.0.113.7")...); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("sign-up after 20 minutes: %d, want 303", resp.StatusCode)
	}
	if resp, _ := sc.post(t, "/accounts/signup/", "", signupForm("new4"), from("203.0.113.7")...); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("a second one at once: %d, want 429", resp.StatusCode)
	}
}

// TestUsersPaginated: /users/ lists a page at a time, with a link to the
// next page, however many accounts there are.
func TestUsersPaginated(t *testing.T) {
	sc := newSchool(t, "sqlite", nil)
	hash, err := password.Hash("a long password")
	if err != nil {
		t.Fatal(err)
	}
	for i := range web.UsersPerPage + 10 { // 4 accounts exist already
		if err := sc.st.CreateUser(t.Context(), &chat.User{Username: fmt.Sprintf("u%03d", i)}, hash); err != nil {
			t.Fatal(err)
		}
	}
	cookie := sc.session(t, "alice")
	seen := map[string]bool{}
	path, pages := "/users/", 0
	for path != "" {
		resp, body := sc.get(t, path, cookie)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %d", path, resp.StatusCode)
		}
		pages++
		n := strings.Count(body, "<li>")
		if n > web.UsersPerPage {
			t.Fatalf("%s lists %d accounts, more than a page", path, n)
		}
		for _, line := range strings.Split(body, "<li>")[1:] {
			name := line[strings.Index(line, "<bdi>")+len("<bdi>"):]
			name = name[:strings.Index(name, "</bdi>")]
			if seen[name] {
				t.Errorf("%s lists %s again", path, name)
			}
			seen[name] = true
		}
		path = ""
		if i := strings.Index(body, `id="users-next" rel="next"`); i >= 0 {
			href := body[strings.LastIndex(body[:i], `href="`)+6:]
			path = strings.ReplaceAll(href[:strings.Index(href, `"`)], "&amp;", "&")
		}
	}
	if pages != 2 || len(seen) != web.UsersPerPage+14 {
		t.Errorf("%d pages listing %d accounts, want 2 pages listing all %d", pages, len(seen), web.UsersPerPage+14)
	}
}

// TestSharedMessageBudgets: the sockets of one address, or of one account,
// share one budget: beyond it every message is refused with a rate_limited
// error frame, while another client's socket still sends.
func TestSharedMessageBudgets(t *testing.T) {
	t.Run("per address", func(t *testing.T) {
		clk := newFakeClock()
		s := startClock(t, clk, nil, "TRUST_PROXY=true", "IP_RATE_LIMIT=5") // bursts of 10
		var socks []*wstest.Client
		for i := range 10 { // one room each: a socket sees only its own messages
			socks = append(socks, s.dialFrom(t, fmt.Sprintf("/ws/chat/g%d/", i), "203.0.113.9", ""))
		}
		for _, c := range socks {
			send(t, c, "within")
			expectMessage(t, c, "within")
		}
		for _, c := range socks {
			send(t, c, "beyond")
			if f := c.Next(t); f.Str("code") != "rate_limited" || !strings.Contains(f.Str("message"), "your network address") {
				t.Fatalf("got %v, want a rate_limited error frame", f)
			}
		}
		other := s.dialFrom(t, "/ws/chat/elsewhere/", "198.51.100.1", "")
		send(t, other, "another address")
		expectMessage(t, other, "another address")
		clk.Advance(time.Second) // 5 more
		for _, c := range socks[:5] {
			send(t, c, "later")
			expectMessage(t, c, "later")
		}
	})
	t.Run("per account", func(t *testing.T) {
		clk := newFakeClock()
		sc := newSchoolCtx(t, withClock(t.Context(), clk.Now), "sqlite", nil, "TRUST_PROXY=true", "USER_RATE_LIMIT=2", "HISTORY_ON_JOIN=0") // bursts of 4
		var alice []*wstest.Client
		for i := range 4 {
			alice = append(alice, sc.dialFrom(t, fmt.Sprintf("/ws/chat/a%d/", i), fmt.Sprintf("203.0.113.%d", i), sc.session(t, "alice")))
		}
		for _, c := range alice {
			send(t, c, "within")
			expectMessage(t, c, "within")
		}
		for _, c := range alice {
			send(t, c, "beyond")
			if f := c.Next(t); f.Str("code") != "rate_limited" || !strings.Contains(f.Str("message"), "your account") {
				t.Fatalf("got %v, want a rate_limited error frame", f)
			}
		}
		bob := sc.dialFrom(t, "/ws/chat/a0/", "203.0.113.0", sc.session(t, "bob"))
		send(t, bob, "bob is fine")
		expectMessage(t, bob, "bob is fine")
	})
}

// TestGarbageFramesChargedAndSenderClosed: invalid frames (60 KB of bad
// JSON) use up the sender's budget like messages, and a connection that
// keeps sending them is closed with 1008 and a reason.
func TestGarbageFramesChargedAndSenderClosed(t *testing.T) {
	clk := newFakeClock()
	s := startClock(t, clk, []string{"-rate-limit", "5", "-invalid-frames", "5"}) // bursts of 10
	bystander := s.dial(t, "/ws/chat/other/")
	c := s.dial(t, "/ws/chat/r/")
	garbage := strings.Repeat("{", 60_000)
	for range 5 {
		c.SendText(t, garbage)
		if f := c.Next(t); f.Str("code") != "invalid_json" {
			t.Fatalf("got %v, want invalid_json", f)
		}
	}
	for i := range 5 {
		send(t, c, fmt.Sprint(i))
		expectMessage(t, c, fmt.Sprint(i))
	}
	// Ten frames in all: the garbage was charged, so the budget is spent.
	send(t, c, "one too many")
	if f := c.Next(t); f.Str("code") != "rate_limited" {
		t.Fatalf("11th frame: got %v, want rate_limited", f)
	}
	// That refusal was the 6th strike: more than -invalid-frames.
	if code, reason := c.WaitClose(t); code != 1008 || reason != "too many invalid or refused frames" {
		t.Errorf("close %d %q, want 1008 \"too many invalid or refused frames\"", code, reason)
	}
	send(t, bystander, "unaffected")
	expectMessage(t, bystander, "unaffected")
}

func TestLimitSettings(t *testing.T) {
	parse := func(env map[string]string, args ...string) (*config, error) {
		return parseConfig(args, func(k string) string { return env[k] }, io.Discard)
	}
	c, err := parse(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := limitsConfig{MaxConns: -1, FDReserve: 1024, MaxConnsPerIP: 200, MaxConnsPerUser: 20,
		UserRateLimit: -1, IPRateLimit: -1, RoomRateLimit: -1, InvalidFrames: 20,
		BodyTimeout: 10 * time.Second, RequestTimeout: 30 * time.Second, SignupLimit: 20, SignupWindow: time.Hour,
		LoginUserFailures: 20, LoginIPFailures: 100}
	if c.limitsConfig != want {
		t.Errorf("defaults %+v, want %+v", c.limitsConfig, want)
	}
	// auto budgets follow RATE_LIMIT; RATE_LIMIT=0 (benchmarks) turns them off.
	if c.UserRateLimit.or(c.RateLimit) != 50 || c.IPRateLimit.or(2*c.RateLimit) != 100 || c.RoomRateLimit.or(4*c.RateLimit) != 200 {
		t.Errorf("auto budgets do not follow RATE_LIMIT 50")
	}
	c, err = parse(map[string]string{"IP_RATE_LIMIT": "7", "MAX_CONNS": "123"}, "-max-conns-per-ip", "0")
	if err != nil || c.IPRateLimit.or(1) != 7 || c.MaxConns != 123 || c.MaxConnsPerIP != 0 {
		t.Errorf("set values: %+v %v", c, err)
	}
	if c, err := parse(nil, "-max-conns", "auto", "-room-rate-limit", "2.5"); err != nil || c.MaxConns != -1 || c.RoomRateLimit.or(0) != 2.5 {
		t.Errorf("flags: %+v %v", c, err)
	}
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"MAX_CONNS": "lots"}, "MAX_CONNS must be auto or a whole number"},
		{map[string]string{"IP_RATE_LIMIT": "-1"}, "IP_RATE_LIMIT must be auto or a number"},
		{map[string]string{"MAX_CONNS_PER_IP": "-1"}, "MAX_CONNS_PER_IP must not be negative"},
		{map[string]string{"MAX_CONNS_PER_USER": "-2"}, "MAX_CONNS_PER_USER must not be negative"},
		{map[string]string{"FD_RESERVE": "-2"}, "FD_RESERVE must not be negative"},
		{map[string]string{"INVALID_FRAME_LIMIT": "-1"}, "INVALID_FRAME_LIMIT must not be negative"},
		{map[string]string{"REQUEST_BODY_TIMEOUT": "0s"}, "REQUEST_BODY_TIMEOUT must be at least 10ms"},
		{map[string]string{"REQUEST_TIMEOUT": "1ms"}, "REQUEST_TIMEOUT must be at least 10ms"},
		{map[string]string{"SIGNUP_LIMIT": "-3"}, "SIGNUP_LIMIT must not be negative"},
		{map[string]string{"SIGNUP_WINDOW": "10ms"}, "SIGNUP_WINDOW must be at least 1s"},
		{map[string]string{"LOGIN_USER_FAILURE_LIMIT": "0"}, "LOGIN_USER_FAILURE_LIMIT must be at least 1"},
		{map[string]string{"LOGIN_IP_FAILURE_LIMIT": "0"}, "LOGIN_IP_FAILURE_LIMIT must be at least 1"},
	} {
		if _, err := parse(tc.env); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want %q", tc.env, err, tc.want)
		}
	}
	var out strings.Builder
	if err := run(t.Context(), []string{"-h"}, func(string) string { return "" }, nil, io.Discard, &out); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"MAX_CONNS", "FD_RESERVE", "MAX_CONNS_PER_IP", "MAX_CONNS_PER_USER", "USER_RATE_LIMIT",
		"IP_RATE_LIMIT", "ROOM_RATE_LIMIT", "INVALID_FRAME_LIMIT", "REQUEST_BODY_TIMEOUT", "REQUEST_TIMEOUT",
		"SIGNUP_LIMIT", "SIGNUP_WINDOW", "LOGIN_USER_FAILURE_LIMIT", "LOGIN_IP_FAILURE_LIMIT"} {
		if !strings.Contains(out.String(), "("+name+")") {
			t.Errorf("chatd -h does not document %s", name)
		}
	}
}

func TestAutoMaxConns(t *testing.T) {
	for _, tc := range []struct {
		nofile  uint64
		reserve int
		want    int
	}{
		{20000, 1024, 18976},
		{1024, 1024, 768}, // the reserve is at most a quarter
		{256, 1024, 192},
		{4096, 0, 4096},
		{1 << 62, 1024, 0}, // unlimited
		{2, 1024, 2},
	} {
		if got := autoMaxConns(tc.nofile, tc.reserve); got != tc.want {
			t.Errorf("autoMaxConns(%d, %d) = %d, want %d", tc.nofile, tc.reserve, got, tc.want)
		}
	}
}
