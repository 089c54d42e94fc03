package main

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lxzan/gws"
)

// window holds the measurement window in Unix nanoseconds. The run sets it
// once the clients are connected, while their read goroutines already run,
// so the fields are atomic.
type window struct {
	from atomic.Int64 // messages sent at or after this are measured for latency
	to   atomic.Int64 // deliveries received in [from, to] count towards throughput
}

// client is one WebSocket connection of the benchmark. It is the gws event
// handler of its own connection, so OnMessage finds its state without a
// lookup.
//
// Concurrency: the fields below "read goroutine only" are touched only by
// the connection's read goroutine (gws calls OnMessage from ReadLoop, and
// parallel dispatch is off) until done is closed; the run reads them after
// that. The atomic fields are read by the progress and drain loops while the
// run is going.
type client struct {
	gws.BuiltinEventHandler

	id     int // index over all clients
	room   int // room index
	local  int // index within the room; senders are local < senders per room
	run    string
	win    *window
	conn   wsConn        // nil if the connection failed; set before connectAll returns
	up     atomic.Bool   // conn is set (for the progress line, which runs meanwhile)
	done   chan struct{} // closed when the read side has ended (see finish)
	once   *sync.Once    // replaced, not reset, when a storm reconnects: the old read loop may still be finishing its Do
	quit   atomic.Bool   // set before chatbench closes the connection itself
	closeE atomic.Value  // errBox: why the connection ended

	// Set by the sender goroutine; read by others through atomics.
	sent       atomic.Uint64 // messages written
	sendErrors atomic.Uint64
	backlog    atomic.Uint64 // most messages this sender was ever behind its schedule

	// Live counters.
	recvOthers atomic.Uint64 // first deliveries of other senders' messages
	recvSelf   atomic.Uint64 // first deliveries of this client's own messages (echo)
	acked      atomic.Uint64 // first acks of this sender's messages (-ack)
	nacked     atomic.Uint64 // error frames naming one of this sender's ids

	// slots holds one token per unacknowledged message when -window limits
	// them: the sender puts one in before it writes, an ack or a refusal
	// takes one out. nil: no window.
	slots chan struct{}
	// after is the room seq to resume after (?after=) on the next dial;
	// negative: a fresh join. Set between connections only.
	after int64

	// Read goroutine only.
	frames    uint64
	dup       uint64
	ooo       uint64
	wrongRoom uint64
	foreign   uint64 // chatbench messages of another run (history, other benchmarks)
	other     uint64 // frames that are not chatbench messages
	errFrames uint64 // {"type":"error",...} frames from the server
	firstErr  string // the first of them
	inWindow  uint64
	tracks    []track // per sender of the room
	lat       *hist   // allocated on first delivery, so idle clients stay small

	// Room seqs (chatd with history on), read goroutine only: every chat
	// message frame of the room, history or live, of any run, must carry
	// the seq after the previous one; a client that resumes with
	// ?after=lastSeq continues the same count.
	lastSeq   int64  // highest seq seen; 0: none yet
	seqFrames uint64 // frames with a seq
	seqGaps   uint64 // seqs skipped (never received)
	seqDups   uint64 // frames whose seq was not above the last one

	// Acks (-ack), read goroutine only.
	ackTrack    track // by the sender's sequence number
	ackDup      uint64
	ackLat      *hist // send to ack, for messages sent in the measured window
	ackInWindow uint64
}

// track follows the messages of one sender as seen by one receiver.
type track struct {
	seen []uint64 // bit per sequence number
	hi   uint64   // highest sequence number seen
	any  bool
}

// mark records seq and reports whether it had been seen before.
func (t *track) mark(seq uint64) (dup bool) {
	w := int(seq >> 6)
	if w >= len(t.seen) {
		n := max(2*len(t.seen), w+1, 16)
		s := make([]uint64, n)
		copy(s, t.seen)
		t.seen = s
	}
	bit := uint64(1) << (seq & 63)
	if t.seen[w]&bit != 0 {
		return true
	}
	t.seen[w] |= bit
	return false
}

var errorType = []byte(`"type":"error"`)

// maxSeq bounds the sequence numbers accepted, so a corrupt frame cannot
// make mark allocate gigabytes.
const maxSeq = 1 << 34

// wsConn is the write side of a connection; the read side calls
// client.handle for every frame and client.finish when it ends.
type wsConn interface {
	WriteText(p []byte) error // one text message; called by the sender goroutine only
	CloseNormal()             // start the closing handshake (1000)
	Abort()                   // close the socket now
	Cut()                     // end the connection now; its read side sees the end and finishes the client
}

// gwsConn is a connection read and written by gws (-client gws).
type gwsConn struct{ *gws.Conn }

func (g gwsConn) WriteText(p []byte) error { return g.WriteMessage(gws.OpcodeText, p) }
func (g gwsConn) CloseNormal()             { _ = g.WriteClose(1000, nil) }
func (g gwsConn) Abort()                   { _ = g.NetConn().Close() }
func (g gwsConn) Cut()                     { _ = g.NetConn().Close() }

// Abort closes the socket of a rawConn.
func (rc *rawConn) Abort() { rc.closeFD() }

// errBox lets atomic.Value hold errors of different types.
type errBox struct{ err error }

func (c *client) setCloseErr(err error) {
	if err != nil {
		c.closeE.Store(errBox{err})
	}
}

func (c *client) closeErr() error {
	b, _ := c.closeE.Load().(errBox)
	return b.err
}

// finish marks the read side ended; it may be called more than once.
func (c *client) finish() { c.once.Do(func() { close(c.done) }) }

// OnMessage handles one frame. gws recycles the frame buffer after Close.
func (c *client) OnMessage(_ *gws.Conn, msg *gws.Message) {
	c.handle(msg.Bytes(), time.Now().UnixNano())
	_ = msg.Close()
}

// OnPing answers the server's keepalive pings with the same payload.
func (c *client) OnPing(s *gws.Conn, payload []byte) { _ = s.WritePong(payload) }

// OnClose remembers why the connection ended.
func (c *client) OnClose(_ *gws.Conn, err error) { c.setCloseErr(err) }

// handle accounts for one received frame that arrived at now (Unix ns).
func (c *client) handle(frame []byte, now int64) {
	c.frames++
	if bytes.HasPrefix(frame, ackPrefix) {
		c.handleAck(frame, now)
		return
	}
	m, ok := parseFrame(frame)
	if !ok {
		if s, ok := parseSeq(frame); ok { // a chat message that is not chatbench's
			c.checkSeq(s)
		}
		c.other++
		if bytes.Contains(frame, errorType) {
			if c.errFrames == 0 {
				c.firstErr = string(frame[:min(len(frame), 300)])
			}
			c.errFrames++
			if id, ok := parseID(frame); ok && string(id.run) == c.run && id.sender == c.local {
				c.nacked.Add(1) // refused: the window slot is free again
				c.release()
			}
		}
		return
	}
	if s, ok := parseSeq(m.rest); ok {
		c.checkSeq(s)
	}
	if string(m.run) != c.run {
		c.foreign++ // history of earlier runs (history on join), other benchmarks
		return
	}
	if m.room != c.room {
		c.wrongRoom++
		return
	}
	if m.sender >= len(c.tracks) || m.seq >= maxSeq {
		c.other++
		return
	}
	t := &c.tracks[m.sender]
	if t.mark(m.seq) {
		c.dup++
		return
	}
	if t.any && m.seq < t.hi {
		c.ooo++
	} else {
		t.hi, t.any = m.seq, true
	}
	if m.sender == c.local {
		c.recvSelf.Add(1)
	} else {
		c.recvOthers.Add(1)
	}
	from := c.win.from.Load()
	if from == 0 {
		return
	}
	to := c.win.to.Load()
	if m.ns >= from && m.ns <= to { // sent in the measured window
		if c.lat == nil {
			c.lat = newHist()
		}
		c.lat.record(now - m.ns)
	}
	if now >= from && now <= to {
		c.inWindow++
	}
}

// checkSeq follows the room's seqs: each must be the one after the last.
func (c *client) checkSeq(s int64) {
	c.seqFrames++
	switch {
	case c.lastSeq == 0 || s == c.lastSeq+1:
		c.lastSeq = s
	case s <= c.lastSeq:
		c.seqDups++
	default:
		c.seqGaps += uint64(s - c.lastSeq - 1)
		c.lastSeq = s
	}
}

// handleAck accounts for an ack of one of this sender's messages.
func (c *client) handleAck(frame []byte, now int64) {
	a, ok := parseAck(frame)
	if !ok || string(a.run) != c.run || a.sender != c.local || a.seq >= maxSeq {
		c.other++
		return
	}
	if c.ackTrack.mark(a.seq) {
		c.ackDup++
		return
	}
	c.acked.Add(1)
	c.release()
	from := c.win.from.Load()
	if from == 0 {
		return
	}
	if to := c.win.to.Load(); a.ns >= from && a.ns <= to {
		if c.ackLat == nil {
			c.ackLat = newHist()
		}
		c.ackLat.record(now - a.ns)
		c.ackInWindow++
	}
}

// acquire takes a window slot before a message is written; it reports
// false if ctx or stop ended first. Without a window it returns at once.
func (c *client) acquire(ctx context.Context, stop <-chan time.Time) bool {
	if c.slots == nil {
		return true
	}
	select {
	case c.slots <- struct{}{}:
		return true
	case <-ctx.Done():
		return false
	case <-stop:
		return false
	}
}

// release frees a window slot (an ack or a refusal arrived).
func (c *client) release() {
	if c.slots == nil {
		return
	}
	select {
	case <-c.slots:
	default:
	}
}
