package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/chatd/chat/internal/wstest"
	"github.com/lxzan/gws"
)

// server is chatd running in this test process, on a real socket.
type server struct {
	base   string // http://127.0.0.1:PORT
	cancel context.CancelFunc
	done   chan error
	logs   *syncBuffer
}

type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// start runs chatd with args and env on 127.0.0.1:0 and stops it at cleanup.
func start(t *testing.T, args []string, env ...string) *server {
	t.Helper()
	return startCtx(t, context.Background(), args, env...)
}

// startCtx is start with a parent context for run, which may carry a
// clock for the limits (withClock).
func startCtx(t *testing.T, parent context.Context, args []string, env ...string) *server {
	t.Helper()
	// Presence is off unless a test turns it on: most tests read exact
	// sequences of frames, and presence has tests of its own
	// (presence_test.go).
	envm := map[string]string{"DATA_DIR": t.TempDir(), "PRESENCE": "off"}
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		envm[k] = v
	}
	ctx, cancel := context.WithCancel(parent)
	pr, pw := io.Pipe()
	s := &server{cancel: cancel, done: make(chan error, 1), logs: &syncBuffer{}}
	args = append([]string{"-addr", "127.0.0.1:0", "-rate-limit", "0"}, args...)
	go func() {
		s.done <- run(ctx, args, func(k string) string { return envm[k] }, strings.NewReader(""), pw, s.logs)
		pw.Close()
	}()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatalf("server did not start: %v\n%s", err, s.logs)
	}
	go io.Copy(io.Discard, pr)
	addr := strings.TrimSuffix(strings.TrimPrefix(strings.TrimSpace(line), "chatd listening on http://"), "/chat/")
	s.base = "http://" + addr
	t.Cleanup(func() {
		s.stop(t)
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs)
		}
	})
	return s
}

func (s *server) stop(t *testing.T) {
	s.cancel()
	select {
	case err := <-s.done:
		if err != nil {
			t.Errorf("run returned %v", err)
		}
		s.done <- nil // let a second stop return at once
	case <-time.After(30 * time.Second):
		t.Fatal("server did not stop")
	}
}

func (s *server) ws(path string) string { return wstest.WSURL(s.base, path) }

func (s *server) dial(t *testing.T, path string) *wstest.Client {
	t.Helper()
	return wstest.Dial(t, s.ws(path), wstest.Options{})
}

func send(t *testing.T, c *wstest.Client, text string) {
	t.Helper()
	c.Send(t, map[string]string{"message": text})
}

// expectMessage takes c's next frame and checks it is chat message text.
func expectMessage(t *testing.T, c *wstest.Client, text string) wstest.Frame {
	t.Helper()
	f := c.Next(t)
	if f.Str("type") != "chat_message" || f.Str("message") != text {
		t.Fatalf("got frame %v, want chat_message %q", f, text)
	}
	return f
}

func TestTwoClientsInARoomBothReceive(t *testing.T) {
	s := start(t, nil)
	a, b := s.dial(t, "/ws/chat/lobby/"), s.dial(t, "/ws/chat/lobby/")
	other := s.dial(t, "/ws/chat/elsewhere/")
	send(t, a, "hello, lobby")
	fa := expectMessage(t, a, "hello, lobby")
	fb := expectMessage(t, b, "hello, lobby")
	if fa.Str("user") == "" || fa.Str("user") != fb.Str("user") {
		t.Errorf("user fields %q and %q, want the same non-empty guest name", fa.Str("user"), fb.Str("user"))
	}
	if !strings.HasPrefix(fa.Str("user"), "guest-") {
		t.Errorf("user %q, want a guest name", fa.Str("user"))
	}
	when, err := time.Parse(time.RFC3339Nano, fa.Str("datetime"))
	if err != nil || when.Location() != time.UTC {
		t.Errorf("datetime %q is not ISO 8601 UTC: %v", fa.Str("datetime"), err)
	}
	if time.Since(when) > time.Hour || time.Until(when) > time.Hour {
		t.Errorf("datetime %v is not the server's clock", when)
	}
	// Room isolation: the other room's first frame is its own message.
	send(t, other, "only here")
	expectMessage(t, other, "only here")
	// And the lobby never sees it: its next frame is the next lobby message.
	send(t, b, "second")
	expectMessage(t, a, "second")
	expectMessage(t, b, "second")
}

func TestUnicodeRoomNames(t *testing.T) {
	s := start(t, nil)
	a := s.dial(t, "/ws/chat/caf%C3%A9-%E6%97%A5%E6%9C%AC_1.2/")
	send(t, a, "bonjour")
	if f := expectMessage(t, a, "bonjour"); f.Str("room") != "café-日本_1.2" {
		t.Errorf("room field %q", f.Str("room"))
	}
}

func TestEchoOff(t *testing.T) {
	t.Run("server default", func(t *testing.T) {
		s := start(t, []string{"-echo=false", "-history-on-join=0"})
		a, b := s.dial(t, "/ws/chat/r/"), s.dial(t, "/ws/chat/r/")
		send(t, a, "from a")
		expectMessage(t, b, "from a")
		send(t, b, "from b")
		expectMessage(t, a, "from b") // a's first frame: its own message never came
		// A connection may ask for echo back.
		c := s.dial(t, "/ws/chat/r/?echo=1")
		send(t, c, "from c")
		expectMessage(t, c, "from c")
	})
	t.Run("per connection", func(t *testing.T) {
		s := start(t, []string{"-history-on-join=0"})
		a, b := s.dial(t, "/ws/chat/r/?echo=0"), s.dial(t, "/ws/chat/r/")
		send(t, a, "from a")
		expectMessage(t, b, "from a")
		send(t, b, "from b")
		expectMessage(t, a, "from b")
		expectMessage(t, b, "from b")
	})
	t.Run("bad value", func(t *testing.T) {
		s := start(t, nil)
		_, resp, err := wstest.TryDial(s.ws("/ws/chat/r/?echo=maybe"), wstest.Options{})
		if err == nil || resp == nil || resp.StatusCode != http.StatusBadRequest {
			t.Fatalf("echo=maybe: err %v, resp %v; want HTTP 400", err, resp)
		}
	})
}

func TestBadFramesGetErrorFrames(t *testing.T) {
	s := start(t, nil)
	a, b := s.dial(t, "/ws/chat/r/"), s.dial(t, "/ws/chat/r/")
	for _, tc := range []struct{ name, frame, code string }{
		{"invalid JSON", `{"message": `, "invalid_json"},
		{"not JSON at all", `hello`, "invalid_json"},
		{"array", `["message"]`, "not_object"},
		{"string", `"message"`, "not_object"},
		{"missing message", `{}`, "invalid_message"},
		{"null message", `{"message": null}`, "invalid_message"},
		{"number message", `{"message": 42}`, "invalid_message"},
		{"object message", `{"message": {"text": "x"}}`, "invalid_message"},
		{"empty message", `{"message": ""}`, "empty_message"},
		{"whitespace message", `{"message": " \n\t "}`, "empty_message"},
		{"unknown field", `{"message": "x", "user": "admin"}`, "unknown_field"},
		{"unknown type", `{"type": "rm -rf", "message": "x"}`, "unknown_type"},
		{"too long", `{"message": "` + strings.Repeat("é", 4001) + `"}`, "message_too_long"},
		// No store keeps a NUL: stored, it would fail its whole group commit.
		{"NUL character", `{"message": "a\u0000b"}`, "invalid_message"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a.SendText(t, tc.frame)
			f := a.Next(t)
			if f.Str("type") != "error" || f.Str("code") != tc.code || f.Str("detail") == "" {
				t.Fatalf("got %v, want an error frame with code %q and a detail", f, tc.code)
			}
			if !strings.Contains(f.Str("message"), f.Str("detail")) {
				t.Errorf("error frame's message %q does not carry the detail (tutorial pages show data.message)", f.Str("message"))
			}
		})
	}
	// The connection stays open, and b saw none of it: its next frame is
	// the next real message.
	send(t, a, "still here")
	expectMessage(t, a, "still here")
	expectMessage(t, b, "still here")
}

func TestProtocolViolationsClose(t *testing.T) {
	s := start(t, []string{"-read-limit", "1024"})
	bystander := s.dial(t, "/ws/chat/r/")
	for _, tc := range []struct {
		name string
		op   gws.Opcode
		data []byte
		code uint16
	}{
		{"invalid UTF-8", gws.OpcodeText, []byte("{\"message\": \"\xff\xfe\"}"), 1007},
		{"binary frame", gws.OpcodeBinary, []byte(`{"message": "hi"}`), 1003},
		{"frame over the limit", gws.OpcodeText, []byte(`{"message": "` + strings.Repeat("x", 2000) + `"}`), 1009},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := s.dial(t, "/ws/chat/r/")
			c.SendRaw(t, tc.op, tc.data)
			if code, reason := c.WaitClose(t); code != tc.code {
				t.Errorf("close code %d (%q), want %d", code, reason, tc.code)
			}
		})
	}
	// Everyone else carries on.
	send(t, bystander, "unaffected")
	expectMessage(t, bystander, "unaffected")
}

func TestHTTPErrors(t *testing.T) {
	s := start(t, nil)
	get := func(path string, hdr map[string]string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", s.base+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if h := hdr["Host"]; h != "" {
			req.Host = h
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(body)
	}
	if code, body := get("/ws/chat/lobby/", nil); code != 400 || !strings.Contains(body, "WebSocket") {
		t.Errorf("plain GET of the socket: %d %q, want 400 with a reason", code, body)
	}
	for _, path := range []string{"/chat/bad%20name/", "/chat/a$b/", "/chat/" + strings.Repeat("x", 101) + "/", "/chat/lobby/extra/"} {
		if code, _ := get(path, nil); code != 404 {
			t.Errorf("GET %s: %d, want 404", path, code)
		}
	}
	if code, body := get("/chat/lobby/", nil); code != 200 || !strings.Contains(body, `data-room="lobby"`) {
		t.Errorf("room page: %d", code)
	}
	if code, body := get("/chat/?room=no+spaces", nil); code != 400 || !strings.Contains(body, "letters, digits") {
		t.Errorf("index with a bad room: %d, want 400 with the rule", code)
	}
	if code, _ := get("/chat/", map[string]string{"Host": "evil.example"}); code != 400 {
		t.Errorf("foreign Host header: %d, want 400", code)
	}
	if code, _ := get("/healthz", map[string]string{"Host": "10.0.0.7:8000"}); code != 200 {
		t.Errorf("health probe by address: %d, want 200", code)
	}
	for _, path := range []string{"/ws/chat/bad%20name/", "/ws/chat/..../"} {
		_, resp, err := wstest.TryDial(s.ws(path), wstest.Options{})
		if err == nil || resp == nil || resp.StatusCode != 404 {
			t.Errorf("upgrade of %s: err %v resp %v, want HTTP 404", path, err, resp)
		}
	}
	code, body := get("/healthz", nil)
	var h map[string]any
	if code != 200 || json.Unmarshal([]byte(body), &h) != nil || h["status"] != "ok" {
		t.Errorf("healthz: %d %s", code, body)
	}
}

func TestOriginCheck(t *testing.T) {
	s := start(t, nil, "ALLOWED_HOSTS=127.0.0.1,.example.com,https://chat.school.org")
	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true}, // non-browser client
		{"http://127.0.0.1:1234", true},
		{"http://example.com", true},
		{"https://a.b.example.com:8443", true},
		{"https://chat.school.org", true},
		{"http://chat.school.org", false}, // scheme given: must match
		{"https://chat.school.org:8443", false},
		{"http://evil.com", false},
		{"http://example.com.evil.com", false},
		{"null", false},
	} {
		c, resp, err := wstest.TryDial(s.ws("/ws/chat/r/"), wstest.Options{Origin: tc.origin})
		if tc.ok {
			if err != nil {
				t.Errorf("origin %q refused: %v", tc.origin, err)
				continue
			}
			c.Close()
		} else if err == nil || resp == nil || resp.StatusCode != http.StatusForbidden {
			t.Errorf("origin %q: err %v resp %v, want HTTP 403", tc.origin, err, resp)
		}
	}
}

func TestSubprotocolOptIn(t *testing.T) {
	s := start(t, nil)
	legacy := s.dial(t, "/ws/chat/r/")
	v1 := wstest.Dial(t, s.ws("/ws/chat/r/"), wstest.Options{Subprotocol: "chatd.v1"})
	if v1.Subprotocol() != "chatd.v1" {
		t.Fatalf("subprotocol %q not negotiated", v1.Subprotocol())
	}
	hello := v1.Next(t)
	if hello.Str("type") != "hello" || !strings.HasPrefix(hello.Str("user"), "guest-") || hello.Str("room") != "r" {
		t.Fatalf("first v1 frame %v, want hello", hello)
	}
	send(t, v1, "hi")
	if f := expectMessage(t, v1, "hi"); f.Str("user") != hello.Str("user") {
		t.Errorf("message user %q, hello said %q", f.Str("user"), hello.Str("user"))
	}
	// The legacy client's first frame is the chat message: no hello.
	expectMessage(t, legacy, "hi")
}

// rawClient is a WebSocket client that does the handshake by hand and then
// never reads (a slow consumer) or never answers pings (a dead peer).
func rawClient(t *testing.T, s *server, path string, rcvbuf int) (net.Conn, *bufio.Reader) {
	t.Helper()
	d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
		if rcvbuf > 0 {
			c.Control(func(fd uintptr) { syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, rcvbuf) })
		}
		return nil
	}}
	conn, err := d.Dial("tcp", strings.TrimPrefix(s.base, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	fmt.Fprintf(conn, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n", path, strings.TrimPrefix(s.base, "http://"))
	br := bufio.NewReader(conn)
	resp, err := http.ReadResponse(br, nil)
	if err != nil || resp.StatusCode != 101 {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	return conn, br
}

func health(t *testing.T, s *server) map[string]any {
	t.Helper()
	resp, err := http.Get(s.base + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		t.Fatal(err)
	}
	return h
}

// waitConnections waits (bounded) until the server reports n connections.
func waitConnections(t *testing.T, s *server, n int) {
	t.Helper()
	deadline := time.Now().Add(wstest.Timeout)
	for {
		got := int(health(t, s)["connections"].(float64))
		if got == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("server has %d connections, want %d", got, n)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestSlowConsumerIsClosedAndRoomCarriesOn(t *testing.T) {
	s := start(t, []string{"-send-queue", "65536"})
	sender, fast := s.dial(t, "/ws/chat/r/"), s.dial(t, "/ws/chat/r/")
	rawClient(t, s, "/ws/chat/r/", 4096) // never reads
	waitConnections(t, s, 3)
	big := strings.Repeat("x", 3900)
	// 2000 x 4 KB is more than the kernel's socket buffers (4 MiB at most
	// here) plus the 64 KiB queue, so the slow client must overflow; the
	// others keep getting every message meanwhile.
	for i := range 2000 {
		send(t, sender, fmt.Sprintf("%d %s", i, big))
		expectMessage(t, fast, fmt.Sprintf("%d %s", i, big))
		expectMessage(t, sender, fmt.Sprintf("%d %s", i, big))
	}
	waitConnections(t, s, 2)
	if !strings.Contains(s.logs.String(), "code=1008") {
		t.Errorf("no DISCONNECT with code 1008 logged for the slow consumer")
	}
}

func TestKeepaliveClosesSilentPeers(t *testing.T) {
	s := start(t, []string{"-ping-interval", "100ms", "-pong-timeout", "200ms"})
	alive := s.dial(t, "/ws/chat/r/") // wstest answers pings
	conn, br := rawClient(t, s, "/ws/chat/r/", 0)
	// Read frames without ever answering a ping, until the server closes.
	conn.SetReadDeadline(time.Now().Add(wstest.Timeout))
	pings, closeCode := 0, 0
	for closeCode == 0 {
		var hdr [2]byte
		if _, err := io.ReadFull(br, hdr[:]); err != nil {
			t.Fatalf("after %d pings: %v (no close frame)", pings, err)
		}
		payload := make([]byte, hdr[1]&0x7F)
		io.ReadFull(br, payload)
		switch hdr[0] & 0x0F {
		case 0x9:
			pings++
		case 0x8:
			closeCode = int(payload[0])<<8 | int(payload[1])
		}
	}
	if pings == 0 || closeCode != 1011 {
		t.Errorf("got %d pings then close %d, want pings then 1011", pings, closeCode)
	}
	// The peer that answers pings is still here.
	send(t, alive, "still alive")
	expectMessage(t, alive, "still alive")
}

func TestGracefulShutdownClosesWith1001(t *testing.T) {
	s := start(t, nil)
	a, b := s.dial(t, "/ws/chat/r/"), s.dial(t, "/ws/chat/other/")
	send(t, a, "before")
	expectMessage(t, a, "before")
	s.stop(t)
	for _, c := range []*wstest.Client{a, b} {
		if code, reason := c.WaitClose(t); code != 1001 {
			t.Errorf("close code %d %q, want 1001", code, reason)
		}
	}
	if _, err := http.Get(s.base + "/healthz"); err == nil {
		t.Error("server still accepts HTTP after shutdown")
	}
}

func TestConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{nil, map[string]string{"ENVIRONMENT": "production"}, "ALLOWED_HOSTS must be set"},
		{nil, map[string]string{"ENVIRONMENT": "staging"}, "ENVIRONMENT must be"},
		{nil, map[string]string{"READ_LIMIT": "lots"}, "READ_LIMIT must be an integer"},
		{[]string{"-read-limit", "10"}, nil, "read limit"},
		{nil, map[string]string{"ALLOWED_HOSTS": "http://"}, "ALLOWED_HOSTS entry"},
		{[]string{"-log-level", "loud"}, nil, "LOG_LEVEL"},
		{[]string{"frobnicate"}, nil, "unknown command"},
		{[]string{"-addr", "127.0.0.1:0", "extra"}, nil, "unexpected argument"},
	} {
		err := run(context.Background(), tc.args, func(k string) string { return tc.env[k] }, nil, io.Discard, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("args %v env %v: error %v, want %q", tc.args, tc.env, err, tc.want)
		}
	}
	var out strings.Builder
	if err := run(context.Background(), []string{"-h"}, func(string) string { return "" }, nil, io.Discard, &out); err != nil {
		t.Errorf("-h: %v", err)
	}
	for _, want := range []string{"ALLOWED_HOSTS", "ENVIRONMENT", "ADDR", "CHANNEL_LAYER", "-echo"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("-h does not document %s", want)
		}
	}
}

func TestPortAndEnvironment(t *testing.T) {
	cfg, err := parseConfig(nil, func(k string) string { return map[string]string{"PORT": "9123"}[k] }, io.Discard)
	if err != nil || cfg.Addr != "127.0.0.1:9123" {
		t.Errorf("PORT in development: %v %v", cfg, err)
	}
	env := map[string]string{"PORT": "9123", "ENVIRONMENT": "production", "ALLOWED_HOSTS": "chat.example.com"}
	cfg, err = parseConfig(nil, func(k string) string { return env[k] }, io.Discard)
	if err != nil || cfg.Addr != "0.0.0.0:9123" {
		t.Errorf("PORT in production: %v %v", cfg, err)
	}
	cfg, err = parseConfig([]string{"-addr", "127.0.0.1:7000"}, func(k string) string { return env[k] }, io.Discard)
	if err != nil || cfg.Addr != "127.0.0.1:7000" {
		t.Errorf("flag over env: %v %v", cfg, err)
	}
}

func TestStartsDegradedWhileRedisIsDown(t *testing.T) {
	// A port nothing listens on: bind one, note it, close it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()
	s := start(t, nil, "CHANNEL_LAYER=redis", "REDIS_URL=redis://"+dead+"/0")
	if h := health(t, s); h["status"] != "degraded" {
		t.Errorf("healthz %v, want status degraded", h)
	}
	resp, err := http.Get(s.base + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("readyz %d, want 503", resp.StatusCode)
	}
	_, resp, err = wstest.TryDial(s.ws("/ws/chat/r/"), wstest.Options{})
	if err == nil || resp == nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("upgrade while Redis is down: err %v resp %v, want HTTP 503", err, resp)
	}
}
