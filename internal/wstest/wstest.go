// Package wstest is a synchronous WebSocket client for tests: dial, send,
// take the next frame, wait for the close. It runs over real sockets (gws's
// client); every wait is bounded by Timeout, a failure bound and never a
// measurement.
package wstest

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lxzan/gws"
)

// Timeout bounds every wait for a frame or a close.
var Timeout = 10 * time.Second

// Client is one test WebSocket connection.
type Client struct {
	sock   *gws.Conn
	frames chan []byte
	done   chan struct{}

	mu     sync.Mutex
	code   uint16 // close code received (0: none); guarded by mu
	reason string // guarded by mu
	err    error  // why the read loop ended; guarded by mu
}

// Options for Dial.
type Options struct {
	Origin      string
	Subprotocol string
	Header      http.Header
	// Buffer is how many received frames may wait unread; default 4096.
	// More means the test forgot to read: the client panics.
	Buffer int
}

// TryDial connects to url (ws://...) and returns the HTTP response of a
// refused handshake as well as the error.
func TryDial(url string, o Options) (*Client, *http.Response, error) {
	h := http.Header{}
	for k, v := range o.Header {
		h[k] = v
	}
	if o.Origin != "" {
		h.Set("Origin", o.Origin)
	}
	if o.Subprotocol != "" {
		h.Set("Sec-WebSocket-Protocol", o.Subprotocol)
	}
	if o.Buffer <= 0 {
		o.Buffer = 4096
	}
	c := &Client{frames: make(chan []byte, o.Buffer), done: make(chan struct{})}
	sock, resp, err := gws.NewClient(handler{c}, &gws.ClientOption{
		Addr:               url,
		RequestHeader:      h,
		HandshakeTimeout:   Timeout,
		ReadMaxPayloadSize: 16 << 20,
	})
	if err != nil {
		return nil, resp, err
	}
	c.sock = sock
	go sock.ReadLoop()
	return c, resp, nil
}

// Dial connects or fails the test.
func Dial(t testing.TB, url string, o Options) *Client {
	t.Helper()
	c, resp, err := TryDial(url, o)
	if err != nil {
		status := 0
		if resp != nil {
			status = resp.StatusCode
		}
		t.Fatalf("dial %s: %v (HTTP %d)", url, err, status)
	}
	t.Cleanup(c.Close)
	return c
}

// Subprotocol returns the negotiated subprotocol.
func (c *Client) Subprotocol() string { return c.sock.SubProtocol() }

// Send sends v as a JSON text frame.
func (c *Client) Send(t testing.TB, v any) {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	c.SendRaw(t, gws.OpcodeText, b)
}

// SendText sends s as a text frame as it is (it may be invalid JSON or UTF-8).
func (c *Client) SendText(t testing.TB, s string) {
	t.Helper()
	c.SendRaw(t, gws.OpcodeText, []byte(s))
}

// SendRaw sends one frame of opcode.
func (c *Client) SendRaw(t testing.TB, op gws.Opcode, b []byte) {
	t.Helper()
	if err := c.sock.WriteMessage(op, b); err != nil {
		t.Fatalf("send: %v", err)
	}
}

// Frame is a decoded JSON frame.
type Frame map[string]any

// Str returns field k as a string ("" if absent or not a string).
func (f Frame) Str(k string) string { s, _ := f[k].(string); return s }

// NextRaw returns the next frame's bytes, or fails the test.
func (c *Client) NextRaw(t testing.TB) []byte {
	t.Helper()
	select {
	case b := <-c.frames:
		return b
	case <-c.done:
		select {
		case b := <-c.frames:
			return b
		default:
		}
		code, reason := c.closeInfo()
		t.Fatalf("connection closed (code %d %q, %v) while waiting for a frame", code, reason, c.readErr())
	case <-time.After(Timeout):
		t.Fatalf("no frame within %v", Timeout)
	}
	return nil
}

// Next returns the next frame decoded as a JSON object.
func (c *Client) Next(t testing.TB) Frame {
	t.Helper()
	b := c.NextRaw(t)
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil {
		t.Fatalf("frame is not a JSON object: %q: %v", b, err)
	}
	return f
}

// NextOfType skips frames until one of type typ arrives.
func (c *Client) NextOfType(t testing.TB, typ string) Frame {
	t.Helper()
	for {
		if f := c.Next(t); f.Str("type") == typ {
			return f
		}
	}
}

// WaitClose waits until the server closes the connection and returns the
// close code it sent (1006 if the connection ended without a close frame).
func (c *Client) WaitClose(t testing.TB) (uint16, string) {
	t.Helper()
	select {
	case <-c.done:
	case <-time.After(Timeout):
		t.Fatalf("connection not closed within %v", Timeout)
	}
	code, reason := c.closeInfo()
	if code == 0 {
		code = 1006
	}
	return code, reason
}

// Closed reports whether the connection has ended.
func (c *Client) Closed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// Close closes the connection (normal closure).
func (c *Client) Close() {
	_ = c.sock.WriteClose(1000, nil)
	_ = c.sock.NetConn().Close()
}

func (c *Client) closeInfo() (uint16, string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.code, c.reason
}

func (c *Client) readErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

type handler struct{ c *Client }

func (h handler) OnOpen(*gws.Conn)             {}
func (h handler) OnPing(s *gws.Conn, p []byte) { _ = s.WritePong(p) }
func (h handler) OnPong(*gws.Conn, []byte)     {}
func (h handler) OnMessage(_ *gws.Conn, m *gws.Message) {
	b := append([]byte(nil), m.Bytes()...)
	m.Close()
	select {
	case h.c.frames <- b:
	default:
		panic(fmt.Sprintf("wstest: more than %d unread frames (Options.Buffer)", cap(h.c.frames)))
	}
}

func (h handler) OnClose(_ *gws.Conn, err error) {
	h.c.mu.Lock()
	var ce *gws.CloseError
	if errors.As(err, &ce) {
		h.c.code, h.c.reason = ce.Code, string(ce.Reason)
	}
	h.c.err = err
	h.c.mu.Unlock()
	close(h.c.done)
}

// WSURL turns an http:// base URL into ws:// and appends path.
func WSURL(base, path string) string {
	return "ws" + strings.TrimPrefix(base, "http") + path
}

// String describes the client for messages.
func (c *Client) String() string { return fmt.Sprintf("wstest.Client(%s)", c.sock.RemoteAddr()) }

// DialStatus sends a WebSocket handshake to url (ws://...) with plain
// net/http and returns the HTTP status and body of the answer: for
// checking a refusal before the upgrade (a 101 is returned as such, with
// the connection closed).
func DialStatus(t testing.TB, url string, header ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http"+strings.TrimPrefix(url, "ws"), nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Connection", "Upgrade")
	req.Header.Set("Upgrade", "websocket")
	req.Header.Set("Sec-WebSocket-Version", "13")
	req.Header.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	cl := &http.Client{Timeout: Timeout}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatalf("handshake to %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode == http.StatusSwitchingProtocols {
		return resp.StatusCode, ""
	}
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// ErrClosed is returned by TryNext once the connection has ended and every
// frame received before has been taken.
var ErrClosed = errors.New("wstest: connection closed")

// TryNext returns the next frame, ErrClosed once the connection has ended,
// or an error after timeout: for tests in which the server goes away.
func (c *Client) TryNext(timeout time.Duration) (Frame, error) {
	var b []byte
	select {
	case b = <-c.frames:
	case <-c.done:
		select {
		case b = <-c.frames:
		default:
			return nil, ErrClosed
		}
	case <-time.After(timeout):
		return nil, fmt.Errorf("wstest: no frame within %v", timeout)
	}
	var f Frame
	if err := json.Unmarshal(b, &f); err != nil {
		return nil, fmt.Errorf("wstest: frame is not a JSON object: %q: %v", b, err)
	}
	return f, nil
}

// Int returns field k as an int64 (0 if absent or not a number).
func (f Frame) Int(k string) int64 { n, _ := f[k].(float64); return int64(n) }

// TrySend sends b as a text frame and returns the error instead of failing
// the test: for tests in which the server goes away.
func (c *Client) TrySend(b []byte) error { return c.sock.WriteMessage(gws.OpcodeText, b) }

// Roster is a chatd.v1 client's view of its room's presence, built from the
// frames it receives: presence (the list, replacing what was known), join,
// leave and presence_count. A join of someone present or a leave of
// someone absent changes nothing, as on a page.
type Roster struct {
	Users  map[string]bool
	Count  int      // the room's head count (from the list, joins and leaves, or presence_count)
	Joins  []string // every join seen, in order
	Leaves []string // every leave seen, in order
	Frames []Frame  // every frame seen, presence or not, in order
}

// Apply takes one frame into r and reports whether it was a presence frame.
func (r *Roster) Apply(f Frame) bool {
	if r.Users == nil {
		r.Users = map[string]bool{}
	}
	r.Frames = append(r.Frames, f)
	switch f.Str("type") {
	case "presence":
		clear(r.Users)
		users, _ := f["users"].([]any)
		for _, u := range users {
			if m, ok := u.(map[string]any); ok {
				name, _ := m["user"].(string)
				r.Users[name] = true
			}
		}
		r.Count = int(f.Int("count"))
	case "join":
		r.Joins = append(r.Joins, f.Str("user"))
		if !r.Users[f.Str("user")] {
			r.Users[f.Str("user")] = true
			r.Count++
		}
	case "leave":
		r.Leaves = append(r.Leaves, f.Str("user"))
		if r.Users[f.Str("user")] {
			delete(r.Users, f.Str("user"))
			r.Count--
		}
	case "presence_count":
		r.Count = int(f.Int("count"))
	default:
		return false
	}
	return true
}

// Is reports whether r holds exactly users.
func (r *Roster) Is(users ...string) bool {
	if len(r.Users) != len(users) {
		return false
	}
	for _, u := range users {
		if !r.Users[u] {
			return false
		}
	}
	return true
}

// List returns r's users, sorted.
func (r *Roster) List() []string {
	out := make([]string, 0, len(r.Users))
	for u := range r.Users {
		out = append(out, u)
	}
	sort.Strings(out)
	return out
}

// WaitRoster reads frames into r until it holds exactly users, or fails
// the test after Timeout.
func (c *Client) WaitRoster(t testing.TB, r *Roster, users ...string) {
	t.Helper()
	c.WaitFor(t, r, func() bool { return r.Is(users...) }, fmt.Sprintf("presence %v", users))
}

// WaitFor reads frames into r until done reports true (checked first and
// after every frame), or fails the test after Timeout naming what.
func (c *Client) WaitFor(t testing.TB, r *Roster, done func() bool, what string) {
	t.Helper()
	c.WaitForWithin(t, Timeout, r, done, what)
}

// WaitForWithin is WaitFor with a failure bound of its own.
func (c *Client) WaitForWithin(t testing.TB, bound time.Duration, r *Roster, done func() bool, what string) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !done() {
		f, err := c.TryNext(time.Until(deadline))
		if err != nil {
			t.Fatalf("%s: waiting for %s: %v; roster %v (count %d), last frames %v", c, what, err, r.List(), r.Count, tail(r.Frames, 8))
		}
		r.Apply(f)
	}
}

func tail(fs []Frame, n int) []Frame {
	if len(fs) > n {
		return fs[len(fs)-n:]
	}
	return fs
}
