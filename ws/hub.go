// Package ws is chatd's WebSocket side: a hub per process that maps rooms to
// local connections, the connections' read and write loops, and the wire
// protocol.
//
// How a message travels: a connection's reader goroutine parses a client
// frame, encodes the outgoing chat_message JSON once, frames it once (a
// server frame is the same bytes for every recipient) and publishes it to the
// room's group on the channel layer. Every process subscribed to the group
// (this one included) receives the envelope in Hub.Receive, looks up the room
// and appends the same frame slice to each member's send queue. Each
// connection's writer copies whatever is queued into one buffer and writes it
// with one system call. Nothing on that path allocates per recipient.
package ws

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/core"
	"github.com/chatd/chat/presence"
	"github.com/lxzan/gws"
)

// Config holds the hub's limits and timings. Zero fields take the defaults
// documented on each field.
type Config struct {
	ReadLimit      int           // largest frame a client may send; default 64 KiB (close 1009 above)
	ReadBufferSize int           // per-connection read buffer; default 4 KiB
	SendQueueBytes int           // bytes queued for one client before it counts as slow; default 1 MiB
	WriteTimeout   time.Duration // longest single write; default 10 s
	PingInterval   time.Duration // how often the server pings; default 25 s
	PongTimeout    time.Duration // silence after a ping that closes the connection; default 20 s
	CloseGrace     time.Duration // wait for the client's close reply; default 2 s
	Echo           bool          // send a message back to its sender unless the connection asks otherwise
	RateLimit      float64       // messages per second per connection; 0 means no limit
	RateBurst      int           // messages a connection may send at once; default 2 x RateLimit
	// HistoryOnJoin is how many of a room's latest messages a new
	// connection gets first (HISTORY_ON_JOIN); 0 sends none.
	HistoryOnJoin int
	// HistoryWindow is how many recent frames each room keeps in memory
	// for joins and resumes; default max(256, HistoryOnJoin).
	HistoryWindow int
	Logger        *slog.Logger

	// Limits that keep one client from taking the server down (limits.go).
	// Zero means no limit.
	MaxConns        int     // connections on this process (503 over it)
	MaxConnsPerIP   int     // connections from one client address, IPv6 by /64 (429 over it)
	MaxConnsPerUser int     // connections of one signed-in account (429 over it)
	UserRateLimit   float64 // messages per second of one account across its connections (bursts of twice that)
	IPRateLimit     float64 // messages per second from one address across its connections (bursts of twice that)
	RoomRateLimit   float64 // messages per second into one room from this process (bursts of twice that)
	InvalidFrames   int     // invalid or refused frames in a burst before a connection is closed (1008)
	// Now is the clock of the rate limits, of presence and of typing;
	// default time.Now. Tests set their own and advance it instead of
	// sleeping.
	Now func() time.Time

	// Presence turns on presence (who is in each room, join and leave) and
	// typing, for chatd.v1 clients (PRESENCE); see presence.go.
	Presence bool
	// PresenceMaxList is the largest room whose joins and leaves are sent
	// one by one and whose presence list is sent whole; above it clients
	// get presence_count frames. Default 100.
	PresenceMaxList int
	// PresenceBatch is how often presence changes are published and
	// announced, coalesced; default 250 ms.
	PresenceBatch time.Duration
	// PresenceInterval is how often a process that had nothing else to
	// publish sends a presence heartbeat; default 5 s.
	PresenceInterval time.Duration
	// PresenceTTL is how long a silent process keeps its users present
	// elsewhere; default 3 × PresenceInterval.
	PresenceTTL time.Duration
	// PresenceLeaveGrace is how long a user must have been gone before
	// clients are told they left (a page reload is not a leave); default 0.
	PresenceLeaveGrace time.Duration
	// TypingTimeout is how long a typing indicator lasts unless renewed;
	// default 6 s.
	TypingTimeout time.Duration
}

func (c *Config) setDefaults() {
	if c.ReadLimit <= 0 {
		c.ReadLimit = 64 << 10
	}
	if c.ReadBufferSize <= 0 {
		c.ReadBufferSize = 4 << 10
	}
	if c.SendQueueBytes <= 0 {
		c.SendQueueBytes = 1 << 20
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 25 * time.Second
	}
	if c.PongTimeout <= 0 {
		c.PongTimeout = 20 * time.Second
	}
	if c.CloseGrace <= 0 {
		c.CloseGrace = 2 * time.Second
	}
	if c.RateLimit > 0 && c.RateBurst <= 0 {
		c.RateBurst = max(1, int(2*c.RateLimit))
	}
	if c.HistoryOnJoin < 0 {
		c.HistoryOnJoin = 0
	}
	if c.HistoryWindow < c.HistoryOnJoin || c.HistoryWindow <= 0 {
		c.HistoryWindow = max(256, c.HistoryOnJoin)
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	if c.PresenceMaxList <= 0 {
		c.PresenceMaxList = 100
	}
	if c.PresenceBatch <= 0 {
		c.PresenceBatch = 250 * time.Millisecond
	}
	if c.PresenceInterval <= 0 {
		c.PresenceInterval = 5 * time.Second
	}
	if c.PresenceTTL <= 0 {
		c.PresenceTTL = 3 * c.PresenceInterval
	}
	if c.TypingTimeout <= 0 {
		c.TypingTimeout = 6 * time.Second
	}
}

// WebSocket close codes chatd sends.
const (
	CloseNormal          = 1000
	CloseGoingAway       = 1001 // server shutting down
	CloseUnsupportedData = 1003 // binary frame
	CloseInvalidPayload  = 1007 // invalid UTF-8 (sent by gws)
	ClosePolicyViolation = 1008 // logged out, access revoked, slow consumer
	CloseTooBig          = 1009 // frame over the read limit (sent by gws)
	CloseInternalError   = 1011 // keepalive timeout, channel layer unavailable
	CloseTryAgainLater   = 1013 // history could not be read; reconnect to resume
)

// Envelope kinds, the first byte of every message chatd puts on the layer.
const (
	kindChat    = 'M' // a framed message for a room's members
	kindDirect  = 'D' // a framed message for one connection
	kindControl = 'C' // a JSON control command, e.g. close a user's sockets
)

// Envelope flags.
const flagV1Only = 1 // only connections that negotiated chatd.v1 get it

// envHeader is the envelope header: kind, origin process, origin
// connection, flags, and the message's seq in its room (0 for none).
const envHeader = 1 + 8 + 8 + 1 + 8

const controlGroup = "chatd.control"

// Hub is one process's set of live connections, grouped by room.
type Hub struct {
	cfg Config
	log *slog.Logger
	pid uint64 // this process's id on the layer
	// upgraders: v1 negotiates the chatd.v1 subprotocol; plain serves
	// clients that offer none (gws refuses a client that offers none when
	// subprotocols are configured, so the hub picks by what is offered).
	v1Upgrader, plainUpgrader *gws.Upgrader
	layer                     chat.Layer // set by Start
	node                      *core.Node // set by UseNode or Start

	// subMu serializes the transitions of a room between "no local members,
	// not subscribed" and "subscribed": the layer's Subscribe/Unsubscribe
	// calls for one group always happen in the order the map changes.
	subMu sync.Mutex

	mu      sync.RWMutex
	rooms   map[string]*room // group -> room; guarded by mu
	conns   map[uint64]*Conn // every registered connection; guarded by mu
	closing bool             // Shutdown has begun; guarded by mu

	nextID atomic.Uint64
	live   sync.WaitGroup // one count per registered connection
	stop   chan struct{}  // closed by Shutdown; stops the keepalive loop

	pingFrame []byte
	limits    *limits // connection caps and message budgets (limits.go)

	// pres tracks who is in which room on every process; nil with
	// presence off.
	pres *presence.Tracker
	// typingRooms are the rooms with typists to expire; guarded by
	// typingMu. Lock order: room.mu, then typingMu.
	typingMu    sync.Mutex
	typingRooms map[*room]struct{}

	restoreMu    sync.Mutex  // guards restoreTimes
	restoreTimes []time.Time // when the layer was last restored

	// Counters for /metrics and tests.
	delivered atomic.Uint64 // frames queued to clients
	slow      atomic.Uint64 // connections closed as slow consumers
	count     counters      // the rest of them (metrics.go)
}

// NewHub returns a hub with cfg. Call Start before serving connections.
func NewHub(cfg Config) *Hub {
	cfg.setDefaults()
	var b [8]byte
	_, _ = rand.Read(b[:])
	h := &Hub{
		cfg:       cfg,
		log:       cfg.Logger,
		pid:       binary.BigEndian.Uint64(b[:]),
		rooms:     make(map[string]*room),
		conns:     make(map[uint64]*Conn),
		stop:      make(chan struct{}),
		pingFrame: newFrame(opPing, nil),
	}
	h.limits = newLimits(&h.cfg)
	if cfg.Presence {
		h.pres = presence.New(presence.Config{Self: h.pid, Interval: cfg.PresenceInterval, TTL: cfg.PresenceTTL,
			LeaveGrace: cfg.PresenceLeaveGrace, Now: cfg.Now})
		h.typingRooms = make(map[*room]struct{})
	}
	opt := func(subprotocols []string) *gws.ServerOption {
		return &gws.ServerOption{
			ReadMaxPayloadSize: cfg.ReadLimit,
			ReadBufferSize:     cfg.ReadBufferSize,
			CheckUtf8Enabled:   true, // invalid UTF-8 in a text frame: close 1007
			HandshakeTimeout:   cfg.WriteTimeout,
			SubProtocols:       subprotocols,
			NewSession:         func() gws.SessionStorage { return new(session) },
			Recovery: func(gws.Logger) {
				if r := recover(); r != nil {
					h.log.Error("ws: panic in message handler", "panic", r)
				}
			},
		}
	}
	h.v1Upgrader = gws.NewUpgrader(eventHandler{h}, opt([]string{Subprotocol}))
	h.plainUpgrader = gws.NewUpgrader(eventHandler{h}, opt(nil))
	return h
}

// UseNode makes n (whose Publisher must be h) the hub's message path. Call
// it before Start; without it Start makes a node with history off.
func (h *Hub) UseNode(n *core.Node) { h.node = n }

// Node returns the hub's message path.
func (h *Hub) Node() *core.Node { return h.node }

// history reports whether messages are stored and sequenced.
func (h *Hub) history() bool { return h.node != nil && h.node.History() }

// Start attaches the hub to layer (whose Receiver must be h.Receive),
// subscribes to the control and per-process groups, and starts keepalive.
func (h *Hub) Start(ctx context.Context, layer chat.Layer) error {
	h.layer = layer
	if h.node == nil {
		n, err := core.New(core.Config{Publisher: h, HistoryOff: true, Logger: h.log})
		if err != nil {
			return err
		}
		h.node = n
	}
	if rn, ok := layer.(chat.RestoreNotifier); ok {
		rn.OnRestore(h.layerRestored)
	}
	groups := []string{controlGroup, h.procGroup(h.pid)}
	if h.pres != nil {
		groups = append(groups, presenceGroup)
	}
	for _, g := range groups {
		err := layer.Subscribe(ctx, g)
		switch {
		case err == nil:
		case chat.ErrorCode(err) == chat.EUNAVAILABLE:
			// The layer's backend (Redis) is away: the layer keeps the group
			// and subscribes when it returns. Start degraded (/readyz says
			// 503) rather than exit, so a restart of Redis and chatd
			// together needs no ordering.
			h.log.Warn("ws: channel layer unavailable at start; serving degraded until it returns", "group", g, "err", err)
		default:
			return fmt.Errorf("ws: subscribe %s: %w", g, err)
		}
	}
	go h.keepalive()
	if h.pres != nil {
		go h.runPresence()
	}
	return nil
}

func (h *Hub) procGroup(pid uint64) string { return fmt.Sprintf("chatd.proc.%016x", pid) }

// Receive is the chat.Receiver the hub's layer delivers to.
func (h *Hub) Receive(group string, msg []byte) {
	if len(msg) < envHeader {
		h.log.Warn("ws: short envelope from layer", "group", group, "len", len(msg))
		return
	}
	proc := binary.BigEndian.Uint64(msg[1:9])
	conn := binary.BigEndian.Uint64(msg[9:17])
	flags := msg[17]
	seq := int64(binary.BigEndian.Uint64(msg[18:26]))
	body := msg[envHeader:]
	switch msg[0] {
	case kindChat:
		h.mu.RLock()
		r := h.rooms[group]
		h.mu.RUnlock()
		switch {
		case r == nil:
		case seq > 0 && h.history():
			h.sequence(r, seq, body, proc, conn, flags)
		default:
			r.mu.Lock()
			h.deliverUnordered(r, body, proc, conn, flags)
			r.mu.Unlock()
		}
	case kindDirect:
		h.mu.RLock()
		c := h.conns[conn]
		h.mu.RUnlock()
		if c != nil {
			c.enqueue(body)
		}
	case kindPresence:
		if h.pres != nil && !h.pres.Receive(proc, body) {
			h.log.Warn("ws: bad presence message", "proc", proc)
		}
	case kindTyping:
		h.receiveTyping(group, proc, conn, flags, body)
	case kindControl:
		var cmd Control
		if err := json.Unmarshal(body, &cmd); err != nil {
			h.log.Warn("ws: bad control message", "err", err)
			return
		}
		h.applyControl(cmd)
	default:
		h.log.Warn("ws: unknown envelope kind", "group", group, "kind", msg[0])
	}
}

// envelope returns a layer message: the envelope header followed by v
// encoded as JSON and framed as a WebSocket text frame, built in one buffer.
func envelope(kind byte, proc, conn uint64, flags byte, seq int64, v any) ([]byte, error) {
	buf, start, err := encodeFramed(v, envHeader)
	if err != nil {
		return nil, err
	}
	env := buf[start-envHeader:]
	env[0] = kind
	binary.BigEndian.PutUint64(env[1:9], proc)
	binary.BigEndian.PutUint64(env[9:17], conn)
	env[17] = flags
	binary.BigEndian.PutUint64(env[18:26], uint64(seq))
	return env, nil
}

// Publish implements core.Publisher: it encodes m as a chat_message frame
// once and publishes it, with its seq, to m's room on every process.
func (h *Hub) Publish(ctx context.Context, m *chat.Message, origin uint64) error {
	env, err := envelope(kindChat, h.pid, origin, 0, m.Seq, chatMessage(m))
	if err != nil {
		return err
	}
	err = h.layer.Publish(ctx, m.Room, env)
	if err != nil && m.Seq > 0 {
		// The message is stored; deliver it here at least. Other processes
		// get it from the store when their layer connection is restored, or
		// when the next message shows them the gap.
		h.Receive(m.Room, env)
	}
	return err
}

// chatFrame returns m's chat_message frame: the same bytes Publish sends.
func (h *Hub) chatFrame(m *chat.Message) []byte {
	f, err := encodeFrame(chatMessage(m))
	if err != nil {
		panic(err) // strings and numbers always encode
	}
	return f
}

// deliverUnordered queues frame for every member of r, without seq (history
// off). r.mu is held, so joins and leaves wait; enqueue never blocks.
func (h *Hub) deliverUnordered(r *room, frame []byte, proc, origin uint64, flags byte) {
	h.fanOut(r, 0, frame, proc, origin, flags)
}

// fanOut queues frame for every member of r that should get it: not the
// sender if it asked for no echo, only chatd.v1 clients for v1-only frames,
// and, for a stored message (seq > 0), only members that have not had seq
// yet. r.mu is held. It allocates nothing.
func (h *Hub) fanOut(r *room, seq int64, frame []byte, proc, origin uint64, flags byte) {
	fromHere := proc == h.pid
	n := 0
	for _, c := range r.members {
		if seq > 0 {
			if c.sent >= seq {
				continue
			}
			c.sent = seq
		}
		if fromHere && c.id == origin && !c.echo {
			continue
		}
		if flags&flagV1Only != 0 && !c.v1 {
			continue
		}
		if c.enqueue(frame) {
			n++
		}
	}
	h.delivered.Add(uint64(n))
}

// Control is a command carried to every process on the control group.
// Op "close" closes every local connection that matches all the non-empty
// selectors (User, Session, Group) with Code and Reason.
type Control struct {
	Op      string `json:"op"`
	User    string `json:"user,omitempty"`
	Session string `json:"session,omitempty"`
	Group   string `json:"group,omitempty"`
	Code    uint16 `json:"code,omitempty"`
	Reason  string `json:"reason,omitempty"`
}

// CloseWhere closes, on every process, the connections that match sel's
// selectors (at least one must be set): logout closes a session's sockets,
// unenrolling closes a user's sockets in a course room.
func (h *Hub) CloseWhere(ctx context.Context, sel Control) error {
	return PublishControl(ctx, h.layer, sel)
}

func (h *Hub) applyControl(cmd Control) {
	if cmd.Op != "close" {
		h.log.Warn("ws: unknown control op", "op", cmd.Op)
		return
	}
	for _, c := range h.snapshot() {
		if (cmd.User == "" || c.user.Username == cmd.User) &&
			(cmd.Session == "" || c.session == cmd.Session) &&
			(cmd.Group == "" || c.group == cmd.Group) {
			c.Close(cmd.Code, cmd.Reason)
		}
	}
}

// SendTo sends v as a frame to the one connection named by channel (see
// Conn.Channel), on whichever process holds it.
func (h *Hub) SendTo(ctx context.Context, channel string, v any) error {
	var proc, conn uint64
	if _, err := fmt.Sscanf(channel, "%016x.%016x", &proc, &conn); err != nil {
		return fmt.Errorf("ws: bad channel name %q", channel)
	}
	env, err := envelope(kindDirect, h.pid, conn, 0, 0, v)
	if err != nil {
		return err
	}
	return h.layer.Publish(ctx, h.procGroup(proc), env)
}

// snapshot returns the registered connections.
func (h *Hub) snapshot() []*Conn {
	h.mu.RLock()
	defer h.mu.RUnlock()
	cs := make([]*Conn, 0, len(h.conns))
	for _, c := range h.conns {
		cs = append(cs, c)
	}
	return cs
}

// keepalive pings every connection each PingInterval and closes those that
// have sent nothing (not even a pong) for PingInterval+PongTimeout. One
// goroutine and one pre-built ping frame serve the whole hub.
func (h *Hub) keepalive() {
	t := time.NewTicker(h.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case now := <-t.C:
			limit := now.Add(-(h.cfg.PingInterval + h.cfg.PongTimeout)).UnixNano()
			h.limits.sweep()
			for _, c := range h.snapshot() {
				if c.lastRead.Load() < limit {
					c.Close(CloseInternalError, "keepalive timeout: no pong received")
				} else {
					c.trim()
					c.enqueue(h.pingFrame)
				}
			}
		}
	}
}

// Stats is a snapshot of the hub for health and metrics endpoints.
type Stats struct {
	Connections int    `json:"connections"`
	Rooms       int    `json:"rooms"`
	Delivered   uint64 `json:"delivered"`
	SlowClosed  uint64 `json:"slow_closed"`
}

// Stats returns the hub's current counts.
func (h *Hub) Stats() Stats {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return Stats{Connections: len(h.conns), Rooms: len(h.rooms), Delivered: h.delivered.Load(), SlowClosed: h.slow.Load()}
}

// LayerErr reports the channel layer's health (nil when healthy).
func (h *Hub) LayerErr() error {
	if h.layer == nil {
		return errors.New("ws: hub not started")
	}
	return h.layer.Err()
}

// Shutdown stops accepting connections, closes every connection with 1001
// after its queued frames, and waits for them to finish until ctx is done;
// then it cuts the rest.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.mu.Lock()
	first := !h.closing
	if !h.closing {
		h.closing = true
		close(h.stop)
	}
	h.mu.Unlock()
	if first && h.pres != nil && h.layer != nil {
		// The other processes drop this one's users now rather than
		// after PresenceTTL.
		h.publishPresence(h.pres.Goodbye())
	}
	for _, c := range h.snapshot() {
		c.Close(CloseGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() { h.live.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		for _, c := range h.snapshot() {
			c.mu.Lock()
			raw := c.raw
			c.mu.Unlock()
			if raw != nil {
				_ = raw.Close()
			}
		}
		<-done
		return ctx.Err()
	}
}

// register adds c to the hub, or reports that the hub is shutting down.
func (h *Hub) register(c *Conn) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closing {
		return false
	}
	h.conns[c.id] = c
	c.registered = true
	h.live.Add(1)
	return true
}

func (h *Hub) unregister(c *Conn) {
	h.mu.Lock()
	was := c.registered
	delete(h.conns, c.id)
	c.registered = false
	h.mu.Unlock()
	h.limits.release(c)
	if was {
		h.live.Done()
	}
}

// Closing reports whether Shutdown has begun.
func (h *Hub) Closing() bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return h.closing
}

// IsUpgrade reports whether r asks for a WebSocket upgrade.
func IsUpgrade(r *http.Request) bool {
	return headerHasToken(r.Header, "Connection", "upgrade") && headerHasToken(r.Header, "Upgrade", "websocket")
}

// layerRestored runs after the channel layer reconnected: messages
// published meanwhile never reached this process, so every room reads what
// it missed from the store (with history on), in the background.
func (h *Hub) layerRestored() {
	if h.pres != nil {
		h.pres.Restored()
	}
	h.restoreMu.Lock()
	h.restoreTimes = append(h.restoreTimes, time.Now())
	if len(h.restoreTimes) > 16 {
		h.restoreTimes = h.restoreTimes[len(h.restoreTimes)-16:]
	}
	h.restoreMu.Unlock()
	if !h.history() {
		return
	}
	h.mu.RLock()
	rooms := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	h.mu.RUnlock()
	go func() {
		for _, r := range rooms {
			h.resync(r)
		}
	}()
}

// flapWindow and flapCount define a flapping layer: restored flapCount
// times within flapWindow.
const (
	flapWindow = time.Minute
	flapCount  = 3
)

// LayerFlapping reports whether the channel layer's connection was restored
// at least flapCount times in the last flapWindow: it keeps dropping (for
// example Redis disconnects a subscriber that cannot keep up). Messages are
// not lost – rooms recover them from the store – but live delivery stutters,
// so /readyz reports it.
func (h *Hub) LayerFlapping() error {
	h.restoreMu.Lock()
	defer h.restoreMu.Unlock()
	n := 0
	for _, t := range h.restoreTimes {
		if time.Since(t) < flapWindow {
			n++
		}
	}
	if n >= flapCount {
		return fmt.Errorf("ws: the channel layer's subscription was lost and restored %d times in the last %s", n, flapWindow)
	}
	return nil
}

// Revoke closes, on this process, the connections a revocation matches
// (see chat.Revocation): every process applies every revocation it reads
// from the store.
func (h *Hub) Revoke(rv chat.Revocation) int {
	group := ""
	if rv.CourseID != 0 {
		group = chat.CourseRoomKey(rv.CourseID)
	}
	sess := ""
	if rv.SessionID != 0 {
		sess = strconv.FormatInt(rv.SessionID, 10)
	}
	if rv.UserID == 0 && sess == "" && group == "" {
		return 0
	}
	n := 0
	for _, c := range h.snapshot() {
		if (rv.UserID == 0 || c.user.ID == rv.UserID) &&
			(sess == "" || c.session == sess) &&
			(group == "" || c.group == group) && !c.isClosing() {
			h.log.Info("ws: access revoked", "path", c.path, "user", c.user.Username, "reason", rv.Reason)
			c.Close(ClosePolicyViolation, rv.Reason)
			n++
		}
	}
	return n
}

// OpenSessions returns the distinct JoinOptions.Session values of this
// process's open connections (signed-in ones only), so a caller that
// authenticates sessions elsewhere (a Django site's) can re-check them.
func (h *Hub) OpenSessions() map[string]bool {
	out := make(map[string]bool)
	for _, c := range h.snapshot() {
		if c.session != "" && !c.isClosing() {
			out[c.session] = true
		}
	}
	return out
}
