package e2e_test

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chat/internal/testserver"
	"github.com/chatd/chat/internal/wstest"
	"github.com/chatd/chat/ws"
)

// patience bounds every wait in these tests: a failure bound, never a
// measurement.
const patience = 60 * time.Second

// guestCookie returns a Cookie header value for a new guest: the guest
// keeps its name (and so its message ids) across reconnects and restarts.
func guestCookie() string {
	b := make([]byte, 24)
	_, _ = rand.Read(b)
	return "chatd_guest=" + base64.RawURLEncoding.EncodeToString(b)
}

// chatClient is one chatd.v1 client of one room that checks, frame by
// frame, that chat messages arrive in increasing seq with no gap and none
// twice, across reconnects (it resumes with ?after=).
type chatClient struct {
	t      *testing.T
	name   string
	base   func() string // the server's ws:// URL of the room, without query
	cookie string

	c      *wstest.Client
	last   int64            // the last seq received
	texts  map[int64]string // seq -> message text
	ids    map[string]int64 // client id -> seq, from acks
	acked  map[string]bool
	errors []string // error frames received
}

func newChatClient(t *testing.T, name string, base func() string) *chatClient {
	return &chatClient{t: t, name: name, base: base, cookie: guestCookie(),
		texts: map[int64]string{}, ids: map[string]int64{}, acked: map[string]bool{}}
}

// connect dials the room resuming after the last seq received (from 0 on
// the first connect, so the client sees the room's whole history).
func (cc *chatClient) connect() {
	cc.t.Helper()
	url := cc.base() + "?after=" + strconv.FormatInt(cc.last, 10)
	c, resp, err := wstest.TryDial(url, wstest.Options{Subprotocol: ws.Subprotocol, Header: http.Header{"Cookie": {cc.cookie}}, Buffer: 1 << 16})
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		cc.t.Fatalf("%s: dial %s: %v (HTTP %d)", cc.name, url, err, status)
	}
	cc.t.Cleanup(c.Close)
	cc.c = c
	f, err := c.TryNext(patience)
	if err != nil || f.Str("type") != "hello" {
		cc.t.Fatalf("%s: first frame %v, %v; want hello", cc.name, f, err)
	}
}

// send sends a message with client id id (no wait for its ack).
func (cc *chatClient) send(id, text string) error {
	b, _ := json.Marshal(map[string]string{"type": "chat_message", "message": text, "id": id})
	return cc.c.TrySend(b)
}

// pump reads frames until done reports true (checked after every frame),
// the connection ends (it returns wstest.ErrClosed) or patience runs out
// (the test fails). Chat frames must come in order: seq last+1 each time.
func (cc *chatClient) pump(done func() bool) error {
	cc.t.Helper()
	deadline := time.Now().Add(patience)
	for !done() {
		f, err := cc.c.TryNext(time.Until(deadline))
		if errors.Is(err, wstest.ErrClosed) {
			return err
		}
		if err != nil {
			cc.t.Fatalf("%s: %v (last seq %d, %d acks)", cc.name, err, cc.last, len(cc.acked))
		}
		cc.take(f)
	}
	return nil
}

// take records one frame.
func (cc *chatClient) take(f wstest.Frame) {
	cc.t.Helper()
	switch f.Str("type") {
	case "chat_message":
		seq := f.Int("seq")
		if seq != cc.last+1 {
			cc.t.Fatalf("%s: got seq %d after %d: a gap or a duplicate", cc.name, seq, cc.last)
		}
		cc.last = seq
		cc.texts[seq] = f.Str("message")
	case "ack":
		id, seq := f.Str("id"), f.Int("seq")
		if prev, ok := cc.ids[id]; ok && prev != seq {
			cc.t.Fatalf("%s: id %s acked as seq %d and %d", cc.name, id, prev, seq)
		}
		if seq <= 0 {
			cc.t.Fatalf("%s: ack without seq: %v", cc.name, f)
		}
		cc.ids[id], cc.acked[id] = seq, true
	case "error":
		cc.errors = append(cc.errors, f.Str("code")+": "+f.Str("detail"))
	}
}

// history reads a room's whole stored history through the HTTP API.
func history(t *testing.T, httpBase, apiPath string, cookie string) []map[string]any {
	t.Helper()
	var all []map[string]any
	after := int64(0)
	for {
		req, _ := http.NewRequest(http.MethodGet, httpBase+apiPath+"?limit=500&after="+strconv.FormatInt(after, 10), nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("history: %v", err)
		}
		var body struct {
			Messages []map[string]any `json:"messages"`
		}
		err = json.NewDecoder(resp.Body).Decode(&body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK || err != nil {
			t.Fatalf("history: %d %v", resp.StatusCode, err)
		}
		all = append(all, body.Messages...)
		if len(body.Messages) < 500 {
			return all
		}
		after = int64(body.Messages[len(body.Messages)-1]["seq"].(float64))
	}
}

// checkHistory checks that a room's stored messages are seq 1..n with no
// gap, each client id (per sender) stored once, and that every client's log
// is exactly that sequence.
func checkHistory(t *testing.T, msgs []map[string]any, clients ...*chatClient) {
	t.Helper()
	seen := map[string]int64{}
	for i, m := range msgs {
		seq := int64(m["seq"].(float64))
		if seq != int64(i+1) {
			t.Fatalf("stored message %d has seq %d: the sequence has a gap", i, seq)
		}
		key := fmt.Sprint(m["user"], "/", m["id"])
		if prev, dup := seen[key]; dup && m["id"] != nil {
			t.Fatalf("client id %s stored twice, as seq %d and %d", key, prev, seq)
		}
		seen[key] = seq
	}
	for _, cc := range clients {
		if cc.last != int64(len(msgs)) {
			t.Errorf("%s saw %d messages, the store has %d", cc.name, cc.last, len(msgs))
		}
		for seq, text := range cc.texts {
			if want := msgs[seq-1]["message"]; text != want {
				t.Errorf("%s: seq %d is %q, stored %q", cc.name, seq, text, want)
			}
		}
		for id, seq := range cc.ids {
			if got := msgs[seq-1]["id"]; got != id {
				t.Errorf("%s: id %s was acked as seq %d, which stores id %v", cc.name, id, seq, got)
			}
		}
	}
}

// wsURL returns the ws:// URL of path on s.
func wsURL(s *testserver.Server, path string) string { return "ws://" + s.Addr + path }

// proxy is a TCP proxy the test controls: it forwards to target and can cut
// every connection it carries, as a network failure would.
type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	conns  []net.Conn // guarded by mu
	down   bool       // new connections are closed at once; guarded by mu
}

// setDown makes the proxy refuse (down) or carry (up) new connections;
// going down also cuts the ones it carries, as a network partition would.
func (p *proxy) setDown(down bool) {
	p.mu.Lock()
	p.down = down
	p.mu.Unlock()
	if down {
		p.cut()
	}
}

func newProxy(t *testing.T, target string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, target: target}
	go p.serve()
	t.Cleanup(func() { ln.Close(); p.cut() })
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		down := p.down
		p.mu.Unlock()
		if down {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.mu.Unlock()
		go func() { _, _ = io.Copy(u, c); u.Close() }()
		go func() { _, _ = io.Copy(c, u); c.Close() }()
	}
}

// cut resets every connection through the proxy.
func (p *proxy) cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.SetLinger(0)
		}
		c.Close()
	}
	p.conns = nil
}

// get returns the status and body of a GET.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, strings.TrimSpace(string(b))
}
