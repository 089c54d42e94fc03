package ws

import (
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/chatd/chat/internal/budget"
)

// Limits that keep one client from taking the server down.
//
// Connections are capped three ways before the upgrade: on the whole
// process (MaxConns: 503, so descriptors stay free for HTTP pages and
// health probes), per client address (MaxConnsPerIP: 429) and per signed-in
// account (MaxConnsPerUser: 429; guests count per address only). A
// connection counts from the moment Accept admits it until it unregisters.
// The web layer asks RefuseOverLimit first, before it looks up the session,
// so a flood of refused upgrades costs no database query; Accept checks
// again, atomically, and is the one that counts.
//
// Every frame a client sends is charged before it is parsed, valid or not,
// against four message budgets: its connection's (RateLimit), its account's
// across all its connections (UserRateLimit; guests have none), its
// address's across all connections from it (IPRateLimit), and its room's on
// this process (RoomRateLimit, a flood guard). A frame over any of them is
// refused with a rate_limited error frame and never parsed. Invalid frames
// and frames over the sender's own budgets are strikes: a connection with
// more than InvalidFrames strikes in quick succession (they are forgiven at
// InvalidFrames a minute) is closed with 1008. A room's flood guard refuses
// every sender while the room is over it, so it is not a strike.
//
// Refusals of connections are logged once per burst, not per attempt: the
// first refusal of a burst logs a warning; the burst's count is logged when
// a minute has passed without one.

// limits is a hub's connection counts, message budgets and refusal log.
type limits struct {
	maxConns, perIP, perUser int
	now                      func() time.Time

	users, addrs, rooms *budget.Limiter // nil when off

	mu     sync.Mutex
	total  int            // admitted connections; guarded by mu
	byAddr map[string]int // admitted connections per address key; guarded by mu
	byUser map[int64]int  // admitted connections per account; guarded by mu
	log    refusalLog
}

func newLimits(cfg *Config) *limits {
	burst := func(rate float64) int { return max(1, int(2*rate)) }
	l := &limits{
		maxConns: cfg.MaxConns,
		perIP:    cfg.MaxConnsPerIP,
		perUser:  cfg.MaxConnsPerUser,
		now:      cfg.Now,
		users:    budget.New(cfg.UserRateLimit, burst(cfg.UserRateLimit), 0),
		addrs:    budget.New(cfg.IPRateLimit, burst(cfg.IPRateLimit), 0),
		rooms:    budget.New(cfg.RoomRateLimit, burst(cfg.RoomRateLimit), 0),
		byAddr:   make(map[string]int),
		byUser:   make(map[int64]int),
	}
	l.log.log = cfg.Logger
	return l
}

// connLimit is a connection's place in its hub's limits.
type connLimit struct {
	addr    string // budget.AddrKey of the client's address; set before the connection is shared
	userKey string // the account's key in the user budget, "" for a guest; set before sharing
	// counted is set while the connection counts against the caps;
	// guarded by limits.mu.
	counted bool
	// strikes is how many invalid or refused frames are held against the
	// connection as of strikeAt; used only by the reader.
	strikes  float64
	strikeAt time.Time
}

// connRefusal is why a connection is refused before the upgrade.
type connRefusal struct {
	status int
	limit  string // "global", "ip" or "user"
	key    string // the address or the username; "" for global
	max    int
	text   string
}

// checkLocked returns the refusal for one more connection from addr (and
// account userID, if not 0), or nil. l.mu must be held.
func (l *limits) checkLocked(addr string, userID int64, username string) *connRefusal {
	switch {
	case l.maxConns > 0 && l.total >= l.maxConns:
		return &connRefusal{status: http.StatusServiceUnavailable, limit: "global", max: l.maxConns,
			text: "503 Service Unavailable: the server is at its connection limit (" + strconv.Itoa(l.maxConns) + "); try again later"}
	case l.perIP > 0 && l.byAddr[addr] >= l.perIP:
		return &connRefusal{status: http.StatusTooManyRequests, limit: "ip", key: addr, max: l.perIP,
			text: "429 Too Many Requests: too many open connections from your address (limit " + strconv.Itoa(l.perIP) + "); close some and try again"}
	case userID != 0 && l.perUser > 0 && l.byUser[userID] >= l.perUser:
		return &connRefusal{status: http.StatusTooManyRequests, limit: "user", key: username, max: l.perUser,
			text: "429 Too Many Requests: too many open connections for your account (limit " + strconv.Itoa(l.perUser) + "); close some tabs and try again"}
	}
	return nil
}

// admit counts c against the caps, or returns the refusal.
func (l *limits) admit(c *Conn) *connRefusal {
	var uid int64
	if c.lim.userKey != "" {
		uid = c.user.ID
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.checkLocked(c.lim.addr, uid, c.user.Username); f != nil {
		return f
	}
	l.total++
	l.byAddr[c.lim.addr]++
	if uid != 0 {
		l.byUser[uid]++
	}
	c.lim.counted = true
	return nil
}

// release stops counting c; calling it again does nothing.
func (l *limits) release(c *Conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if !c.lim.counted {
		return
	}
	c.lim.counted = false
	l.total--
	if n := l.byAddr[c.lim.addr] - 1; n > 0 {
		l.byAddr[c.lim.addr] = n
	} else {
		delete(l.byAddr, c.lim.addr)
	}
	if c.lim.userKey != "" {
		if n := l.byUser[c.user.ID] - 1; n > 0 {
			l.byUser[c.user.ID] = n
		} else {
			delete(l.byUser, c.user.ID)
		}
	}
}

// sweep ends quiet refusal bursts and drops refilled budgets; the
// keepalive loop calls it.
func (l *limits) sweep() {
	now := l.now()
	l.log.flush(now)
	l.users.Sweep(now)
	l.addrs.Sweep(now)
	l.rooms.Sweep(now)
}

// clientAddr returns the address key of ip, or of the request's peer when
// ip is empty.
func clientAddr(ip string, r *http.Request) string {
	if ip == "" {
		ip = r.RemoteAddr
		if host, _, err := net.SplitHostPort(ip); err == nil {
			ip = host
		}
	}
	return budget.AddrKey(ip)
}

// RefuseOverLimit answers an upgrade request from ip (the client's address
// as the web layer sees it) with 503 or 429 when the process or that address
// is already at its connection cap, and reports whether it did. It counts
// nothing: Accept checks again and counts. Call it before any expensive
// work (the session lookup) so that a flood of refused upgrades is cheap.
func (h *Hub) RefuseOverLimit(w http.ResponseWriter, r *http.Request, ip string) bool {
	l := h.limits
	if l.maxConns <= 0 && l.perIP <= 0 {
		return false
	}
	l.mu.Lock()
	f := l.checkLocked(clientAddr(ip, r), 0, "")
	l.mu.Unlock()
	if f == nil {
		return false
	}
	h.refuse(w, r, f)
	return true
}

// admitConn fills c's limit keys from opts and counts it against the caps;
// over a cap it answers the request and returns false.
func (h *Hub) admitConn(w http.ResponseWriter, r *http.Request, c *Conn, opts *JoinOptions) bool {
	c.lim.addr = clientAddr(opts.ClientIP, r)
	if c.user.ID != 0 {
		c.lim.userKey = strconv.FormatInt(c.user.ID, 10)
	}
	if f := h.limits.admit(c); f != nil {
		h.refuse(w, r, f)
		return false
	}
	return true
}

// refuse answers an upgrade over a connection cap. The connection is
// closed after the answer (a refused client must not keep its descriptor
// as an idle keep-alive connection), and the refusal is logged once per
// burst.
func (h *Hub) refuse(w http.ResponseWriter, r *http.Request, f *connRefusal) {
	h.limits.log.refused(f, h.limits.now())
	h.count.connRefused[capIndex(f.limit)].Add(1)
	h.log.Debug("WebSocket REJECT", "path", r.URL.Path, "peer", r.RemoteAddr, "status", f.status, "limit", f.limit)
	w.Header().Set("Connection", "close")
	w.Header().Set("Retry-After", "10")
	http.Error(w, f.text, f.status)
}

// Error frames of frames refused by a message budget, built once: a flood
// of refusals must not cost an encoding each.
var (
	connLimitedFrame = newErrorFrame(CodeRateLimited, "too many messages on this connection; this one was not sent", "")
	userLimitedFrame = newErrorFrame(CodeRateLimited, "too many messages from your account across its connections; this one was not sent", "")
	addrLimitedFrame = newErrorFrame(CodeRateLimited, "too many messages from your network address; this one was not sent", "")
	roomLimitedFrame = newErrorFrame(CodeRateLimited, "this room is receiving too many messages; this one was not sent, try again shortly", "")
)

// admitFrame charges one frame from c's client against the message
// budgets, before anything parses it, and reports whether it may be
// processed. A refused frame is answered with a rate_limited error frame;
// one over the sender's own budgets is also a strike. Only c's reader
// calls it.
func (c *Conn) admitFrame() bool {
	l := c.hub.limits
	now := l.now()
	var refusal []byte
	var by int // the budget, for the counters
	switch {
	case !c.allow(now):
		refusal, by = connLimitedFrame, budgetConn
	case c.lim.userKey != "" && !l.users.Allow(c.lim.userKey, now):
		refusal, by = userLimitedFrame, budgetUser
	case !l.addrs.Allow(c.lim.addr, now):
		refusal, by = addrLimitedFrame, budgetAddr
	case !l.rooms.Allow(c.group, now):
		c.enqueue(roomLimitedFrame)
		c.hub.count.limited(budgetRoom)
		return false
	default:
		return true
	}
	c.enqueue(refusal)
	c.hub.count.limited(by)
	c.strike(now)
	return false
}

// strike holds one invalid or refused frame against c and closes c (1008)
// when it has more than InvalidFrames of them; they are forgiven at
// InvalidFrames a minute. Only c's reader calls it.
func (c *Conn) strike(now time.Time) {
	n := float64(c.hub.cfg.InvalidFrames)
	if n <= 0 {
		return
	}
	if d := now.Sub(c.lim.strikeAt); d > 0 {
		c.lim.strikes = max(0, c.lim.strikes-d.Minutes()*n)
		c.lim.strikeAt = now
	}
	c.lim.strikes++
	if c.lim.strikes > n {
		c.hub.log.Info("ws: closing a connection that sends too many invalid or refused frames",
			"path", c.path, "peer", c.peer, "user", c.user.Username)
		c.Close(ClosePolicyViolation, "too many invalid or refused frames")
	}
}

// refusalLog logs connection refusals once per burst. A burst is a run of
// refusals by one limit for one key with less than burstQuiet between them.
type refusalLog struct {
	log *slog.Logger

	mu     sync.Mutex
	bursts map[string]*refusalBurst // by limit and key; guarded by mu
}

type refusalBurst struct {
	limit, key  string
	max         int
	n           int
	first, last time.Time
}

const (
	burstQuiet = time.Minute // a burst ends after this long without a refusal
	maxBursts  = 1024        // bursts tracked at once; more are counted under key "*"
)

func (l *refusalLog) refused(f *connRefusal, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.bursts == nil {
		l.bursts = make(map[string]*refusalBurst)
	}
	key := f.key
	k := f.limit + " " + key
	b := l.bursts[k]
	if b == nil && len(l.bursts) >= maxBursts {
		l.flushLocked(now)
		if len(l.bursts) >= maxBursts {
			key = "*"
			k = f.limit + " " + key
			b = l.bursts[k]
		}
	}
	if b != nil && now.Sub(b.last) < burstQuiet {
		b.n++
		if now.After(b.last) {
			b.last = now
		}
		return
	}
	if b != nil {
		l.endLocked(k, b)
	}
	l.bursts[k] = &refusalBurst{limit: f.limit, key: key, max: f.max, n: 1, first: now, last: now}
	l.log.Warn("ws: connection limit reached; refusing connections", "limit", f.limit, "key", key, "max", f.max, "status", f.status)
}

// flush logs and forgets the bursts that have ended by now.
func (l *refusalLog) flush(now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.flushLocked(now)
}

func (l *refusalLog) flushLocked(now time.Time) {
	for k, b := range l.bursts {
		if now.Sub(b.last) >= burstQuiet {
			l.endLocked(k, b)
		}
	}
}

func (l *refusalLog) endLocked(k string, b *refusalBurst) {
	delete(l.bursts, k)
	l.log.Info("ws: connection refusals ended", "limit", b.limit, "key", b.key, "max", b.max,
		"refused", b.n, "over", b.last.Sub(b.first).Round(time.Millisecond))
}
