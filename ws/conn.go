package ws

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/core"
	"github.com/lxzan/gws"
)

// JoinOptions say who a new connection is and where it goes. The web layer
// fills them from the URL and the session after authorising the request.
type JoinOptions struct {
	Group   string     // the room's key (chat.Room.Key), also its layer group
	Room    string     // room name shown in frames
	User    *chat.User // never nil
	Session string     // opaque session id, so logout can close its sockets
	Echo    *bool      // nil: the hub's default
	// ClientIP is the client's address for the per-address limits, as the
	// web layer sees it (behind a trusted proxy, from X-Forwarded-For);
	// empty means the connection's peer address.
	ClientIP string
	// After, if not negative, resumes the room after that seq (?after=):
	// the connection gets exactly the messages with a higher seq, then
	// live ones. Negative: the room's latest HistoryOnJoin messages first.
	After int64
	// Expires, if not zero, is when the session ends: the connection is
	// closed (1008) at the first keepalive sweep after it.
	Expires time.Time
	// Recheck, if not nil, checks the user's right to enter the room once
	// more after the connection has joined, just before the 101. Access
	// taken away later reaches the connection through Hub.Revoke; this
	// check closes the race of a revocation made while the socket opens.
	Recheck func(ctx context.Context) error
}

// Conn is one WebSocket connection.
//
// Goroutines: gws's ReadLoop (the reader) runs the event handler for every
// frame the client sends; at most one writer goroutine (writeLoop) exists at
// a time and is started on demand when frames are queued, so an idle
// connection costs no writer goroutine. The writer is the only one writing
// data frames; gws itself writes only close frames, and all writes to the
// socket are serialized by wmu (gws writes through lockedConn).
type Conn struct {
	hub     *Hub
	id      uint64
	group   string
	kind    uint8 // the room's kind, for the counters (metrics.go)
	room    *room // set on join
	roomTag string
	user    *chat.User
	session string
	v1      bool // negotiated chatd.v1
	echo    bool
	path    string
	peer    string
	start   time.Time
	sock    *gws.Conn
	raw     net.Conn // the hijacked connection; data writes go here under wmu

	// recheck is JoinOptions.Recheck; set once, before the connection is shared.
	recheck func(ctx context.Context) error
	// after is JoinOptions.After and expires JoinOptions.Expires; set once.
	after   int64
	expires time.Time
	// expiry closes c when its session expires; stopped by OnClose.
	expiry *time.Timer
	// lim is c's place in the hub's connection caps and message budgets.
	lim connLimit

	// idx is c's index in room.members (-1 when not a member); guarded by
	// room.mu.
	idx int
	// sent is the seq of the last chat message queued for c: the room
	// never queues a seq twice. Guarded by room.mu once c is a member;
	// before that only the goroutine admitting c uses it.
	sent int64
	// cursor is where catchUp starts (the last seq c already has).
	cursor int64
	// registered is set while c counts in hub.conns; guarded by hub.mu.
	registered bool

	// present is set while c counts in its room's presence, and watchIdx
	// is c's index in room.watchers (-1 when not a watcher); both guarded
	// by room.mu. presence is the presence list c gets right after hello;
	// set while joining, by the goroutine that runs Accept.
	present  bool
	watchIdx int
	presence []byte
	// typingOn is set while c's user is typing as far as the room was
	// told, and typingNext is when c's next typing frame is relayed; used
	// only by the reader.
	typingOn   bool
	typingNext time.Time

	// lastRead is when the client last sent any frame (unix nanos).
	lastRead atomic.Int64

	// tokens and lastTok are the rate limiter's bucket; used only by the reader.
	tokens  float64
	lastTok time.Time

	wmu sync.Mutex
	// framing is set once the handshake response is out: from then on every
	// write is whole WebSocket frames. Guarded by wmu.
	framing bool
	// closeWritten is set once a close frame went out; no data may follow.
	// Guarded by wmu.
	closeWritten bool
	// sentCode is the code of the close frame the server sent; guarded by wmu.
	sentCode uint16

	mu           sync.Mutex
	queue        [][]byte // frames waiting for the writer; guarded by mu
	spare        [][]byte // the writer's previous batch, reused; guarded by mu
	queued       int      // bytes queued or being written; guarded by mu
	writing      bool     // a writer goroutine is running; guarded by mu
	closing      bool     // no more frames are accepted; guarded by mu
	closePending bool     // the writer must send a close frame; guarded by mu
	closeCode    uint16   // guarded by mu
	closeReason  string   // guarded by mu
	// dropSpare makes the writer let go of the arrays of the batches it
	// writes, instead of keeping one as its spare, until it finds the
	// queue empty: set after the burst of history a connection gets on
	// joining (or a catch-up page), so that burst costs no memory once it
	// is written. Guarded by mu.
	dropSpare bool
}

// Channel returns the connection's channel name, unique across processes:
// SendTo(Channel()) reaches it wherever it lives.
func (c *Conn) Channel() string { return fmt.Sprintf("%016x.%016x", c.hub.pid, c.id) }

// session adapts gws's per-connection storage to hold only our *Conn, which
// keeps gws from allocating a map for every connection.
type session struct{ c *Conn }

func (s *session) Len() int                     { return 1 }
func (s *session) Load(string) (any, bool)      { return s.c, s.c != nil }
func (s *session) Delete(string)                {}
func (s *session) Store(string, any)            {}
func (s *session) Range(func(string, any) bool) {}

func connOf(sock *gws.Conn) *Conn { return sock.Session().(*session).c }

// lockedConn is the net.Conn gws sees. Its writes (the handshake response
// and close frames) are serialized with the writer's by c.wmu. Its Close
// only half-closes: after a close frame the reader keeps reading, for at
// most CloseGrace, so the client's close reply is consumed and the client
// sees a clean close instead of a reset. The reader's exit closes the socket
// for good.
type lockedConn struct {
	net.Conn
	c *Conn
}

func (l *lockedConn) Write(p []byte) (int, error) {
	l.c.wmu.Lock()
	defer l.c.wmu.Unlock()
	if l.c.closeWritten {
		return 0, net.ErrClosed
	}
	isClose := l.c.framing && len(p) >= 2 && p[0]&0x0F == opClose
	if isClose {
		l.c.closeWritten = true
	}
	_ = l.Conn.SetWriteDeadline(time.Now().Add(l.c.hub.cfg.WriteTimeout))
	n, err := l.Conn.Write(p)
	if isClose && err == nil && len(p) >= 4 && p[1]&0x7F >= 2 {
		l.c.sentCode = uint16(p[2])<<8 | uint16(p[3])
	}
	return n, err
}

func (l *lockedConn) Close() error {
	l.c.stopWriting()
	_ = l.Conn.SetReadDeadline(time.Now().Add(l.c.hub.cfg.CloseGrace))
	if tcp, ok := l.Conn.(*net.TCPConn); ok {
		return tcp.CloseWrite()
	}
	return nil
}

// Accept upgrades the request to a WebSocket, joins the room in opts and
// serves the connection until it closes. The caller has already checked the
// origin, the room and the user's right to enter; Accept writes the response
// itself (101, or an error status before the upgrade).
func (h *Hub) Accept(w http.ResponseWriter, r *http.Request, opts JoinOptions) {
	if h.Closing() {
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	hj, ok := w.(http.Hijacker)
	if !ok {
		http.Error(w, "websocket upgrade not supported on this connection", http.StatusInternalServerError)
		return
	}
	c := &Conn{
		hub:      h,
		id:       h.nextID.Add(1),
		group:    opts.Group,
		kind:     roomKind(opts.Group),
		roomTag:  opts.Room,
		user:     opts.User,
		session:  opts.Session,
		recheck:  opts.Recheck,
		after:    opts.After,
		expires:  opts.Expires,
		idx:      -1,
		watchIdx: -1,
		echo:     h.cfg.Echo,
		path:     r.URL.Path,
		peer:     r.RemoteAddr,
		start:    time.Now(),
	}
	if opts.Echo != nil {
		c.echo = *opts.Echo
	}
	c.tokens = float64(h.cfg.RateBurst)
	c.lastTok = h.cfg.Now()
	c.lastRead.Store(c.start.UnixNano())

	c.v1 = headerHasToken(r.Header, "Sec-WebSocket-Protocol", Subprotocol) || r.URL.Query().Get("protocol") == Subprotocol
	// The connection joins its room before the handshake response goes
	// out, so a client that has its 101 misses nothing sent after it.
	// Until the upgrade is done, writing is held: frames are queued but
	// no writer starts.
	c.writing = true
	if !h.admitConn(w, r, c, &opts) {
		return
	}
	if !h.register(c) {
		h.limits.release(c)
		http.Error(w, "server shutting down", http.StatusServiceUnavailable)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), h.cfg.WriteTimeout)
	member, err := h.join(ctx, c)
	cancel()
	if err != nil {
		h.unregister(c)
		h.log.Error("ws: cannot join room", "group", c.group, "err", err)
		reason := "the channel layer is unavailable"
		if errors.Is(err, errStore) {
			reason = "the message store is unavailable"
		}
		h.log.Info("WebSocket REJECT", "path", c.path, "peer", c.peer, "status", 503, "reason", reason)
		http.Error(w, "503 Service Unavailable: "+reason+", try again later", http.StatusServiceUnavailable)
		return
	}
	if c.recheck != nil {
		// The connection is registered and joined, so a revocation from now
		// on reaches it through Revoke; this check sees any made before.
		ctx, cancel := context.WithTimeout(r.Context(), recheckTimeout)
		err := c.recheck(ctx)
		cancel()
		if err != nil {
			h.abandon(c, member)
			status, reason := http.StatusServiceUnavailable, "access could not be checked, try again later"
			if why, gone := denied(err); gone {
				status, reason = http.StatusForbidden, why
			}
			h.log.Info("WebSocket REJECT", "path", c.path, "peer", c.peer, "status", status, "reason", reason)
			http.Error(w, http.StatusText(status)+": "+reason, status)
			return
		}
	}

	netConn, brw, err := hj.Hijack()
	if err != nil {
		h.abandon(c, member)
		h.log.Error("ws: hijack failed", "path", c.path, "peer", c.peer, "err", err)
		return
	}
	c.mu.Lock()
	c.raw = netConn // guarded by mu until the upgrade, for Shutdown
	c.mu.Unlock()
	// net/http's buffered reader may hold bytes the client sent right after
	// the request; only then is it kept (wrapped). Otherwise gws reads from
	// a reader of ReadBufferSize. net/http's 4 KiB writer is dropped either
	// way: chatd writes its own way.
	var br *bufio.Reader
	if brw.Reader.Buffered() > 0 {
		br = bufio.NewReaderSize(brw.Reader, h.cfg.ReadBufferSize)
	} else {
		br = bufio.NewReaderSize(netConn, h.cfg.ReadBufferSize)
	}
	up := h.plainUpgrader
	if c.v1 && headerHasToken(r.Header, "Sec-WebSocket-Protocol", Subprotocol) {
		up = h.v1Upgrader
	}
	sock, err := up.UpgradeFromConn(&lockedConn{Conn: netConn, c: c}, br, r)
	if err != nil {
		// gws has answered 400 with the reason; lockedConn only half-closed.
		_ = netConn.Close()
		h.abandon(c, member)
		h.log.Info("WebSocket REJECT", "path", c.path, "peer", c.peer, "status", 400, "reason", err.Error())
		return
	}
	c.sock = sock
	sock.Session().(*session).c = c
	c.wmu.Lock()
	c.framing = true
	c.wmu.Unlock()
	h.log.Info("WebSocket CONNECT", "path", c.path, "peer", c.peer, "user", c.user.Username, "protocol", sock.SubProtocol())
	h.count.opened[c.kind].Add(1)

	// Release the writer; a v1 client's hello (and the room's presence
	// list) goes before anything queued.
	var first [][]byte
	if c.v1 {
		hello, _ := encodeFrame(helloFrame{Type: "hello", User: c.user.Username, Name: c.user.DisplayName, Room: c.roomTag, Protocol: Subprotocol, Echo: c.echo,
			History: h.history(), Presence: h.presenceOn()})
		first = append(first, hello)
		if c.presence != nil {
			first = append(first, c.presence)
			c.presence = nil
		}
	}
	c.mu.Lock()
	if len(first) > 0 && !c.closing {
		c.queue = append(first, c.queue...)
		for _, f := range first {
			c.queued += len(f)
		}
	}
	if len(c.queue) > 0 || c.closePending {
		go c.writeLoop()
	} else {
		c.writing = false
	}
	c.mu.Unlock()
	if !member {
		go h.catchUp(c.room, c)
	}
	if !c.expires.IsZero() {
		c.mu.Lock()
		if !c.closing {
			c.expiry = time.AfterFunc(time.Until(c.expires), func() {
				c.Close(ClosePolicyViolation, "session expired; sign in again")
			})
		}
		c.mu.Unlock()
	}
	// A fresh goroutine rather than this handler's: net/http's per-request
	// state becomes garbage as soon as the handler returns.
	go sock.ReadLoop()
}

// abandon undoes register and join for a connection whose upgrade failed.
func (h *Hub) abandon(c *Conn, member bool) {
	c.mu.Lock()
	c.closing = true
	clear(c.queue)
	c.queue = nil
	c.mu.Unlock()
	if member {
		h.leave(c)
	} else if c.room != nil {
		c.room.mu.Lock()
		h.absentLocked(c.room, c)
		c.room.mu.Unlock()
		h.dropPending(c.room)
	}
	h.unregister(c)
}

// enqueue adds frame to c's send queue and makes sure a writer runs. It
// never blocks. A client whose queue would exceed SendQueueBytes is a slow
// consumer: it is closed (1008) and never holds up the room. It reports
// whether the frame was queued.
func (c *Conn) enqueue(frame []byte) bool {
	c.mu.Lock()
	if c.closing {
		c.mu.Unlock()
		return false
	}
	if c.queued+len(frame) > c.hub.cfg.SendQueueBytes {
		c.beginCloseLocked(ClosePolicyViolation, "slow consumer: send queue full", true)
		c.mu.Unlock()
		c.hub.slow.Add(1)
		return false
	}
	c.queue = append(c.queue, frame)
	c.queued += len(frame)
	if !c.writing {
		c.writing = true
		go c.writeLoop()
	}
	c.mu.Unlock()
	return true
}

// burstQueued marks what is queued as a one-off burst (history on join, a
// catch-up page): see dropSpare.
func (c *Conn) burstQueued() {
	c.mu.Lock()
	c.dropSpare = true
	c.mu.Unlock()
}

// isClosing reports whether c is closing or closed.
func (c *Conn) isClosing() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.closing
}

// Close closes c with code and reason after the frames already queued.
func (c *Conn) Close(code uint16, reason string) {
	c.mu.Lock()
	c.beginCloseLocked(code, reason, false)
	c.mu.Unlock()
}

// beginCloseLocked starts a server-side close. With drop, queued frames are
// discarded and a writer blocked on the socket is given CloseGrace to finish.
func (c *Conn) beginCloseLocked(code uint16, reason string, drop bool) {
	if c.closing {
		return
	}
	c.closing = true
	c.closePending = true
	c.closeCode, c.closeReason = code, reason
	if drop {
		for _, f := range c.queue {
			c.queued -= len(f)
		}
		clear(c.queue)
		c.queue = c.queue[:0]
		if c.raw != nil { // nil until the hijack
			_ = c.raw.SetWriteDeadline(time.Now().Add(c.hub.cfg.CloseGrace))
		}
	}
	if !c.writing {
		c.writing = true
		go c.writeLoop()
	}
}

// trim lets an idle connection's queue arrays go, so that a burst long
// past costs no memory. Active connections keep theirs: regrowing them on
// every burst would allocate on the broadcast path. The keepalive sweep
// calls it once per PingInterval.
func (c *Conn) trim() {
	c.mu.Lock()
	if !c.writing && len(c.queue) == 0 && cap(c.queue)+cap(c.spare) > 32 {
		c.queue, c.spare = nil, nil
	}
	c.mu.Unlock()
}

// stopWriting drops anything queued and refuses more: the connection is
// closed or closing from the reader's side.
func (c *Conn) stopWriting() {
	c.mu.Lock()
	c.closing = true
	c.closePending = false
	clear(c.queue)
	c.queue = c.queue[:0]
	c.mu.Unlock()
}

// bufPool holds the writers' coalescing buffers, so that an idle
// connection holds none.
var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// writeLoop writes queued frames until the queue is empty, then exits. It
// takes the whole queue at once and copies it into one buffer, so a burst
// of frames costs one system call.
func (c *Conn) writeLoop() {
	var bufp *[]byte // taken from bufPool only when a batch has frames to coalesce
	defer func() {
		if bufp != nil {
			bufPool.Put(bufp)
		}
	}()
	for {
		c.mu.Lock()
		batch := c.queue
		if len(batch) == 0 {
			pending, code, reason := c.closePending, c.closeCode, c.closeReason
			c.closePending = false
			c.writing = false
			c.mu.Unlock()
			if pending {
				// gws writes the close frame (through lockedConn) and
				// marks itself closed, so it won't answer the client's
				// close reply with a second one.
				_ = c.sock.WriteClose(code, []byte(closeReason(reason)))
			}
			return
		}
		c.queue = c.spare[:0]
		c.mu.Unlock()

		if len(batch) > 1 && bufp == nil {
			bufp = bufPool.Get().(*[]byte)
		}
		n, err := c.writeBatch(batch, bufp)
		clear(batch)

		if err == nil {
			c.hub.count.bytesOut.add(c.id, uint64(n))
		}
		c.mu.Lock()
		c.spare = batch[:0]
		if c.dropSpare {
			c.spare = nil
			c.dropSpare = len(c.queue) > 0
		}
		c.queued -= n
		if err != nil {
			c.closing, c.closePending, c.writing = true, false, false
			clear(c.queue)
			c.queue = c.queue[:0]
			c.mu.Unlock()
			_ = c.raw.Close() // the reader sees the error and cleans up
			return
		}
		c.mu.Unlock()
	}
}

// writeBatch writes frames, coalesced into *bufp (nil for a single frame),
// and returns their size.
func (c *Conn) writeBatch(batch [][]byte, bufp *[]byte) (int, error) {
	total := 0
	for _, f := range batch {
		total += len(f)
	}
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.closeWritten {
		return total, net.ErrClosed
	}
	_ = c.raw.SetWriteDeadline(time.Now().Add(c.hub.cfg.WriteTimeout))
	if len(batch) == 1 { // nothing to coalesce: no copy, no buffer
		_, err := c.raw.Write(batch[0])
		return total, err
	}
	buf := (*bufp)[:0]
	for _, f := range batch {
		if len(buf)+len(f) > cap(buf) && len(buf) > 0 {
			if _, err := c.raw.Write(buf); err != nil {
				return total, err
			}
			buf = buf[:0]
		}
		if len(f) > cap(buf) {
			if _, err := c.raw.Write(f); err != nil {
				return total, err
			}
			continue
		}
		buf = append(buf, f...)
	}
	if len(buf) > 0 {
		if _, err := c.raw.Write(buf); err != nil {
			return total, err
		}
	}
	*bufp = buf[:0]
	return total, nil
}

// allow takes a token from the connection's rate limiter.
func (c *Conn) allow(now time.Time) bool {
	cfg := &c.hub.cfg
	if cfg.RateLimit <= 0 {
		return true
	}
	if d := now.Sub(c.lastTok); d > 0 { // a clock stepping back gives nothing
		c.tokens = min(float64(cfg.RateBurst), c.tokens+d.Seconds()*cfg.RateLimit)
		c.lastTok = now
	}
	if c.tokens < 1 {
		return false
	}
	c.tokens--
	return true
}

// eventHandler receives gws's events for every connection of a hub.
type eventHandler struct{ h *Hub }

func (e eventHandler) OnOpen(*gws.Conn) {}

func (e eventHandler) OnPing(sock *gws.Conn, payload []byte) {
	c := connOf(sock)
	c.lastRead.Store(time.Now().UnixNano())
	if c.allow(c.hub.limits.now()) { // a ping flood is charged like messages; over it, no pong
		c.enqueue(newFrame(opPong, payload))
	}
}

func (e eventHandler) OnPong(sock *gws.Conn, _ []byte) {
	connOf(sock).lastRead.Store(time.Now().UnixNano())
}

func (e eventHandler) OnMessage(sock *gws.Conn, m *gws.Message) {
	defer m.Close()
	c := connOf(sock)
	now := time.Now()
	c.lastRead.Store(now.UnixNano())
	if m.Opcode != gws.OpcodeText {
		c.Close(CloseUnsupportedData, "binary frames are not supported; send JSON text")
		return
	}
	c.hub.count.received.add(c.id, 1)
	if !c.admitFrame() { // charged before parsing, valid or not (limits.go)
		return
	}
	text, id, typing, ferr := parseInbound(m.Bytes())
	if ferr != nil {
		c.enqueue(newErrorFrame(ferr.Code, ferr.Detail, id))
		c.hub.count.refuse(ferr.Code)
		c.strike(c.hub.limits.now())
		return
	}
	if typing {
		c.typing(c.hub.cfg.Now())
		return
	}
	c.stopTyping() // a message ends its sender's typing
	post := &core.Post{Room: c.group, UserID: c.user.ID, User: c.user.Username, Name: c.user.DisplayName, Text: text, ClientID: id, Origin: c.id,
		Done: func(res core.Result) { c.report(res, id) }}
	ctx, cancel := context.WithTimeout(context.Background(), submitTimeout)
	err := c.hub.node.Submit(ctx, post)
	cancel()
	if errors.Is(err, core.ErrStopped) {
		c.enqueue(newErrorFrame(CodeUnavailable, "the server is shutting down; the message was not sent, send it again after reconnecting", id))
	} else if err != nil {
		c.enqueue(newErrorFrame(CodeUnavailable, "the server is busy; the message was not sent, try again", id))
	}
	if err != nil {
		c.hub.count.refuse(CodeUnavailable)
	}
}

// submitTimeout bounds how long a reader waits for room in the commit
// queue before refusing the message.
const submitTimeout = 5 * time.Second

// report reports the outcome of c's message with client id id: an ack to a
// chatd.v1 client once it is stored (and published), or an error frame
// naming the id. It runs on the node's committer goroutine.
func (c *Conn) report(res core.Result, id string) {
	switch {
	case res.Err != nil:
		lv := slog.LevelWarn
		if chat.ErrorCode(res.Err) == chat.EUNAVAILABLE {
			lv = slog.LevelDebug // an outage is logged once, by the node or the layer
		}
		c.hub.log.Log(context.Background(), lv, "ws: message not sent", "group", c.group, "err", res.Err)
		detail := "the message could not be stored right now; it was not sent, try again"
		if !c.hub.history() {
			detail = "the message could not be delivered (channel layer unavailable); try again"
		}
		c.enqueue(newErrorFrame(CodeUnavailable, detail, id))
		c.hub.count.refuse(CodeUnavailable)
	case res.PublishErr != nil && !c.hub.history():
		// Nothing keeps the message: tell the sender, as before.
		c.hub.log.Debug("ws: publish failed", "group", c.group, "err", res.PublishErr)
		c.enqueue(newErrorFrame(CodeUnavailable, "the message could not be delivered (channel layer unavailable); try again", id))
		c.hub.count.refuse(CodeUnavailable)
	case c.v1 && id != "":
		// Stored (and, if the layer is down, delivered locally now and to
		// other processes from the store when it returns).
		c.enqueue(mustFrame(ackFrame{Type: "ack", ID: id, Seq: res.Message.Seq}))
	}
}

func (e eventHandler) OnClose(sock *gws.Conn, err error) {
	c := connOf(sock)
	c.stopTyping()
	c.stopWriting()
	c.mu.Lock()
	if c.expiry != nil {
		c.expiry.Stop()
	}
	c.mu.Unlock()
	_ = c.raw.Close()
	c.hub.leave(c)
	c.hub.unregister(c)

	// A close the client started shows as *gws.CloseError even though gws
	// answered it. Otherwise the code the server chose (even if its close
	// frame could not be written to a stuck client), or the one gws sent
	// for a protocol error, tells. gws answers a connection that simply
	// ended (EOF, reset) with a 1000 close frame of its own: that is no
	// choice of the server's, so it is logged as 1006 by the client.
	code, by := uint16(0), "client"
	var ce *gws.CloseError
	c.mu.Lock()
	chosen := c.closeCode
	c.mu.Unlock()
	c.wmu.Lock()
	sent := c.sentCode
	c.wmu.Unlock()
	switch {
	case errors.As(err, &ce):
		code = ce.Code
	case chosen != 0:
		code, by = chosen, "server"
	case sent != 0 && sent != CloseNormal:
		code, by = sent, "server"
	}
	if code == 0 {
		code = 1006 // no close frame either way: the connection just ended
	}
	c.hub.count.disconnected(c.kind, code, by == "server")
	c.hub.log.Info("WebSocket DISCONNECT", "path", c.path, "peer", c.peer, "code", code, "by", by,
		"duration", time.Since(c.start).Round(time.Millisecond))
}

// headerHasToken reports whether the comma-separated header name contains
// token, case-insensitively.
func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for part := range strings.SplitSeq(v, ",") {
			if strings.EqualFold(strings.TrimSpace(part), token) {
				return true
			}
		}
	}
	return false
}
