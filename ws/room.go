package ws

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	chat "github.com/chatd/chat"
)

// Ordered delivery. With history on, every chat message carries its room's
// seq, and each process delivers a room's messages to its local members in
// strictly increasing seq with no gap, whatever the channel layer does:
//
//   - a message whose seq was already delivered is dropped (a duplicate
//     publish, or one that history already covered);
//   - a message that arrives early (several processes publish into one room
//     and their publications interleave) is held back; if the missing ones
//     do not arrive within gapWait they are read from the store;
//   - after the layer lost messages (its connection to Redis was restored)
//     every room reads what it missed from the store (resync).
//
// Each room keeps a window of its most recent frames, so a client that
// joins with history, or resumes after a short absence, is served from
// memory: a reconnect storm does not become one store query per client.
// Clients that were away longer are served from the store, a page at a time
// (catchUp), and join the live stream once the window covers them.

// errStore marks a join that failed because the store could not be read.
var errStore = errors.New("ws: the message store is unavailable")

// gapWait is how long a room waits for a missing seq to arrive from the
// layer before it reads it from the store.
const gapWait = 150 * time.Millisecond

// fillPage is how many messages one store read for a gap or a catch-up
// returns.
const fillPage = 500

// room is one group's local members and, with history on, its delivery
// state.
type room struct {
	group string
	tag   string // the room's name in frames
	mu    sync.Mutex
	// members are the room's local connections; guarded by mu. Each
	// connection's idx field is its position, for O(1) removal.
	members []*Conn
	// pending counts connections catching up from the store that are
	// about to become members; the room is kept while it is not 0.
	// Guarded by mu.
	pending int
	// removed is set when the room left the hub's map; guarded by mu.
	removed bool
	// watchers are the room's chatd.v1 connections that get presence and
	// typing frames (members, and those catching up to become members);
	// guarded by mu. Each one's watchIdx is its position.
	watchers []*Conn
	// typers maps the users typing in the room to when that expires;
	// guarded by mu.
	typers map[string]time.Time
	// countSent is when the room's clients last got a presence_count
	// frame; guarded by mu.
	countSent time.Time

	// The sequencer (history on); all guarded by mu.
	ready   bool             // the window has been loaded; until then frames are held
	next    int64            // the seq to deliver next
	held    map[int64][]byte // frames that arrived before their turn
	filling bool             // a goroutine is filling a gap from the store
	win     window           // the most recent frames
}

// window is a ring of the last frames delivered in a room; their seqs are
// consecutive, ending at next-1.
type window struct {
	frames [][]byte
	times  []int64 // when each frame was delivered here (unix nanos), for retention
	start  int     // index of the oldest frame
	n      int     // frames held
	first  int64   // seq of the oldest frame (when n > 0)
}

func newWindow(size int) window {
	return window{frames: make([][]byte, size), times: make([]int64, size)}
}

func (w *window) push(seq int64, f []byte, now int64) {
	if len(w.frames) == 0 {
		return
	}
	if w.n == len(w.frames) {
		w.frames[w.start], w.times[w.start] = f, now
		w.start = (w.start + 1) % len(w.frames)
		w.first++
		return
	}
	if w.n == 0 {
		w.first = seq
	}
	i := (w.start + w.n) % len(w.frames)
	w.frames[i], w.times[i] = f, now
	w.n++
}

// dropOldest removes the oldest frame.
func (w *window) dropOldest() {
	w.frames[w.start] = nil
	w.start = (w.start + 1) % len(w.frames)
	w.first++
	w.n--
}

// trim removes the frames that retention deletes from the store: seqs up to
// last-maxPerRoom (if maxPerRoom > 0) and frames delivered before cutoff
// (unix nanos, if not 0), so the window never serves what the store no
// longer has.
func (w *window) trim(last int64, maxPerRoom int, cutoff int64) {
	for w.n > 0 {
		byCount := maxPerRoom > 0 && w.first <= last-int64(maxPerRoom)
		byAge := cutoff != 0 && w.times[w.start] < cutoff
		if !byCount && !byAge {
			return
		}
		w.dropOldest()
	}
}

// covers reports whether every frame from seq from on (up to the newest)
// is in the window.
func (w *window) covers(from, next int64) bool {
	return from >= next || (w.n > 0 && from >= w.first)
}

// bytesFrom returns the size of the frames with seq >= from.
func (w *window) bytesFrom(from int64) int {
	n := 0
	w.each(from, func(_ int64, f []byte) { n += len(f) })
	return n
}

// each calls f for the frames with seq >= from, oldest first, and returns
// how many it passed.
func (w *window) each(from int64, f func(seq int64, frame []byte)) (n uint64) {
	for i := 0; i < w.n; i++ {
		seq := w.first + int64(i)
		if seq >= from {
			f(seq, w.frames[(w.start+i)%len(w.frames)])
			n++
		}
	}
	return n
}

// sequence delivers a stored message's frame in seq order; see above.
func (h *Hub) sequence(r *room, seq int64, frame []byte, proc, origin uint64, flags byte) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.ready {
		r.hold(seq, frame)
		return
	}
	switch {
	case seq < r.next:
		return // delivered already
	case seq > r.next:
		r.hold(seq, frame)
		if !r.filling {
			r.filling = true
			go h.fillGap(r)
		}
		return
	}
	h.deliverLocked(r, seq, frame, proc, origin, flags)
	h.drainHeldLocked(r)
}

// maxHeld bounds the frames a room holds back; past it the oldest gap is
// filled from the store at once.
const maxHeld = 4096

func (r *room) hold(seq int64, frame []byte) {
	if r.held == nil {
		r.held = make(map[int64][]byte)
	}
	if len(r.held) < maxHeld {
		r.held[seq] = frame
	}
}

// deliverLocked queues frame for every member that has not had seq yet and
// records it in the window. r.mu is held.
func (h *Hub) deliverLocked(r *room, seq int64, frame []byte, proc, origin uint64, flags byte) {
	h.fanOut(r, seq, frame, proc, origin, flags)
	r.win.push(seq, frame, nanotime())
	r.next = seq + 1
}

// drainHeldLocked delivers held frames that are now in turn. r.mu is held.
func (h *Hub) drainHeldLocked(r *room) {
	for len(r.held) > 0 {
		for seq := range r.held {
			if seq < r.next {
				delete(r.held, seq)
			}
		}
		f, ok := r.held[r.next]
		if !ok {
			return
		}
		delete(r.held, r.next)
		h.deliverLocked(r, r.next, f, 0, 0, 0)
	}
}

// fillGap waits gapWait for a room's missing messages and then reads from
// the store whatever is still missing, until the room has no gap.
func (h *Hub) fillGap(r *room) {
	t := time.NewTimer(gapWait)
	defer t.Stop()
	select {
	case <-t.C:
	case <-h.stop:
	}
	for {
		r.mu.Lock()
		if len(r.held) == 0 {
			r.filling = false
			r.mu.Unlock()
			return
		}
		from := r.next
		r.mu.Unlock()
		if !h.fillFrom(r, from) {
			// The store failed: try again a little later.
			select {
			case <-time.After(time.Second):
			case <-h.stop:
				r.mu.Lock()
				r.filling = false
				r.mu.Unlock()
				return
			}
		}
	}
}

// fillFrom reads the room's stored messages from seq from on (one page) and
// delivers those still missing. It reports false if the store failed.
func (h *Hub) fillFrom(r *room, from int64) bool {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	msgs, err := h.node.Store().Messages(ctx, r.group, chat.MessageQuery{After: from - 1, Limit: fillPage})
	cancel()
	if err != nil {
		h.log.Warn("ws: cannot read missing messages from the store; will retry", "group", r.group, "err", err)
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, m := range msgs {
		if m.Seq < r.next {
			continue
		}
		if m.Seq > r.next {
			// Removed by retention (or never stored): nothing to wait for.
			h.log.Warn("ws: messages missing from the store; skipping", "group", r.group, "from", r.next, "to", m.Seq-1)
			r.next = m.Seq
		}
		h.deliverLocked(r, m.Seq, h.chatFrame(m), 0, 0, 0)
		h.count.recovered.Add(1)
	}
	if len(msgs) == 0 && len(r.held) > 0 {
		// The store has nothing after from, yet later seqs were published:
		// they are not committed as far as this reader sees, or were
		// removed. Skip to the lowest held one rather than wait forever.
		low := int64(-1)
		for seq := range r.held {
			if low < 0 || seq < low {
				low = seq
			}
		}
		if low > r.next {
			r.next = low
		}
	}
	h.drainHeldLocked(r)
	return true
}

// resync reads from the store what a room may have missed while the layer
// was disconnected, and delivers it. The layer calls for it after a
// reconnection; it is also safe at any other time.
func (h *Hub) resync(r *room) {
	for {
		r.mu.Lock()
		if !r.ready {
			r.mu.Unlock()
			return
		}
		from := r.next
		r.mu.Unlock()
		if !h.fillFrom(r, from) {
			return
		}
		r.mu.Lock()
		done := r.next-from < fillPage
		r.mu.Unlock()
		if done {
			return
		}
	}
}

// loadRoom fills a new room's window from the store and starts its
// sequencer; frames that arrived meanwhile were held and are delivered now.
func (h *Hub) loadRoom(ctx context.Context, r *room) error {
	st := h.node.Store()
	msgs, err := st.Messages(ctx, r.group, chat.MessageQuery{Newest: true, Limit: h.cfg.HistoryWindow})
	if err != nil {
		return err
	}
	var next int64 = 1
	if len(msgs) > 0 {
		next = msgs[len(msgs)-1].Seq + 1
	} else {
		_, last, err := st.RoomSeq(ctx, r.group)
		if err != nil {
			return err
		}
		next = last + 1
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.win = newWindow(h.cfg.HistoryWindow)
	for _, m := range msgs {
		r.win.push(m.Seq, h.chatFrame(m), m.Time.UnixNano())
	}
	r.next = next
	r.ready = true
	h.drainHeldLocked(r)
	if len(r.held) > 0 && !r.filling {
		r.filling = true
		go h.fillGap(r)
	}
	return nil
}

// nanotime returns the wall clock in unix nanoseconds.
func nanotime() int64 { return time.Now().UnixNano() }

// TrimHistory removes from every room's window what retention is about to
// delete from the store (see window.trim); core.Node.RunRetention calls it
// before each prune, so a join or resume served from memory never shows a
// message the store no longer has.
func (h *Hub) TrimHistory(olderThan time.Time, maxPerRoom int) {
	var cutoff int64
	if !olderThan.IsZero() {
		cutoff = olderThan.UnixNano()
	}
	h.mu.RLock()
	rooms := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rooms = append(rooms, r)
	}
	h.mu.RUnlock()
	for _, r := range rooms {
		r.mu.Lock()
		r.win.trim(r.next-1, maxPerRoom, cutoff)
		r.mu.Unlock()
	}
}

// admit makes c a member of r if everything c must get before live
// messages is in r's window: it queues those frames and returns true.
// Otherwise it counts c as pending and returns false; catchUp then serves
// c from the store. gone reports that r was released before c could be
// counted (the caller needs a new room). r.mu must not be held.
func (h *Hub) admit(r *room, c *Conn) (member, gone bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.removed {
		return false, true
	}
	c.room = r
	h.presentLocked(r, c)
	if !h.history() {
		r.addLocked(c)
		return true, false
	}
	from := c.from(r.next)
	if !r.win.covers(from, r.next) || r.win.bytesFrom(from) > h.cfg.SendQueueBytes/2 {
		// Older than the window, or too much to queue at once before the
		// upgrade (large messages): catchUp serves it at the pace the
		// client reads.
		r.pending++
		c.cursor = from - 1
		return false, false
	}
	h.count.historyMemory.Add(r.win.each(from, func(seq int64, f []byte) {
		c.enqueue(f)
	}))
	if from < r.next {
		c.burstQueued()
	}
	c.sent = max(c.sent, r.next-1)
	r.addLocked(c)
	return true, false
}

// from returns the first seq c must get, given the room's next seq.
func (c *Conn) from(next int64) int64 {
	if c.after >= 0 {
		return min(c.after+1, next) // a client ahead of the room gets live ones only
	}
	return max(1, next-int64(c.hub.cfg.HistoryOnJoin))
}

// catchUp serves c from the store, a page at a time and at the pace its
// writer drains, until the room's window covers the rest; then c joins
// the live stream with nothing missing and nothing twice.
func (h *Hub) catchUp(r *room, c *Conn) {
	cursor := c.cursor
	st := h.node.Store()
	for {
		if !c.waitDrained() {
			h.dropPending(r)
			return
		}
		r.mu.Lock()
		if r.win.covers(cursor+1, r.next) && r.win.bytesFrom(cursor+1) <= h.cfg.SendQueueBytes/2 {
			r.pending--
			if c.isClosing() {
				// OnClose may have run its leave before c was a member.
				empty := len(r.members) == 0 && r.pending == 0
				r.mu.Unlock()
				if empty {
					h.release(r)
				}
				return
			}
			h.count.historyMemory.Add(r.win.each(cursor+1, func(seq int64, f []byte) { c.enqueue(f) }))
			c.burstQueued()
			c.sent = max(cursor, r.next-1)
			r.addLocked(c)
			r.mu.Unlock()
			return
		}
		next, first := r.next, r.next
		if r.win.n > 0 {
			first = r.win.first
		}
		r.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		msgs, err := st.Messages(ctx, r.group, chat.MessageQuery{After: cursor, Limit: fillPage})
		cancel()
		if err != nil {
			h.log.Warn("ws: cannot read history for a client; closing it so it resumes", "group", r.group, "err", err)
			c.Close(CloseTryAgainLater, "history is unavailable right now; reconnect to resume")
			h.dropPending(r)
			return
		}
		switch {
		case len(msgs) > 0 && msgs[0].Seq > cursor+1:
			// Retention removed the messages the client asked for.
			c.enqueue(mustFrame(historyFrame{Type: "history_truncated", After: cursor, First: msgs[0].Seq}))
		case len(msgs) == 0 && cursor+1 < next:
			// Nothing stored after cursor, yet the room went on: removed by
			// retention since it was delivered. Go on from the window.
			c.enqueue(mustFrame(historyFrame{Type: "history_truncated", After: cursor, First: first}))
			cursor = first - 1
		}
		h.count.historyStore.Add(uint64(len(msgs)))
		for _, m := range msgs {
			if !c.waitDrained() {
				h.dropPending(r)
				return
			}
			c.enqueue(h.chatFrame(m))
			cursor = m.Seq
		}
	}
}

func (h *Hub) dropPending(r *room) {
	r.mu.Lock()
	r.pending--
	empty := len(r.members) == 0 && r.pending == 0
	r.mu.Unlock()
	if empty {
		h.release(r)
	}
}

// waitDrained waits until c's queue is at most half full, so a catch-up
// never overflows it; it reports false if c is closing.
func (c *Conn) waitDrained() bool {
	for {
		c.mu.Lock()
		closing, queued := c.closing, c.queued
		c.mu.Unlock()
		if closing {
			return false
		}
		if queued <= c.hub.cfg.SendQueueBytes/2 {
			return true
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// addLocked makes c a member of r; admit has set c.room already, before
// c's reader started (leave reads c.room without r's lock).
func (r *room) addLocked(c *Conn) {
	c.idx = len(r.members)
	r.members = append(r.members, c)
}

// join makes c a member of its room, subscribing this process to the
// room's group (and loading the room's window) first if c is the room's
// first local member. It reports false when c must first catch up from the
// store; the caller then runs catchUp once c's writer is running.
func (h *Hub) join(ctx context.Context, c *Conn) (member bool, err error) {
	for {
		r, err := h.roomFor(ctx, c.group)
		if err != nil {
			return false, err
		}
		member, gone := h.admit(r, c)
		if !gone {
			return member, nil
		}
		// r was emptied and released meanwhile: make a new one.
	}
}

// roomFor returns group's room, creating it (subscribed and, with history
// on, loaded) if this process has none.
func (h *Hub) roomFor(ctx context.Context, group string) (*room, error) {
	h.mu.RLock()
	r := h.rooms[group]
	h.mu.RUnlock()
	if r != nil {
		r.mu.Lock()
		ready := r.ready
		r.mu.Unlock()
		if ready {
			return r, nil
		}
	}
	h.subMu.Lock()
	defer h.subMu.Unlock()
	h.mu.RLock()
	r = h.rooms[group]
	h.mu.RUnlock()
	if r != nil {
		return r, nil // made ready by whoever held subMu
	}
	r = &room{group: group, tag: roomTag(group), ready: !h.history()}
	// The room is in the map before the subscription, so frames that
	// arrive while its window loads are held, not lost.
	h.mu.Lock()
	h.rooms[group] = r
	h.mu.Unlock()
	fail := func(err error) (*room, error) {
		h.mu.Lock()
		delete(h.rooms, group)
		h.mu.Unlock()
		r.mu.Lock()
		r.removed = true
		r.mu.Unlock()
		uctx, cancel := context.WithTimeout(context.Background(), time.Second)
		_ = h.layer.Unsubscribe(uctx, group)
		cancel()
		return nil, err
	}
	if err := h.layer.Subscribe(ctx, group); err != nil {
		return fail(err)
	}
	if h.history() {
		if err := h.loadRoom(ctx, r); err != nil {
			return fail(fmt.Errorf("%w: %w", errStore, err))
		}
	}
	return r, nil
}

// roomTag returns the room's name as frames show it: a public room's name,
// or the key of any other room.
func roomTag(group string) string {
	if r, ok := chat.ParseRoomKey(group); ok && r.Kind == chat.RoomPublic {
		return r.Name
	}
	return group
}

// leave removes c from its room and releases the room when it has no
// local members left.
func (h *Hub) leave(c *Conn) {
	r := c.room
	if r == nil {
		return
	}
	r.mu.Lock()
	h.absentLocked(r, c)
	if c.idx < 0 || c.idx >= len(r.members) || r.members[c.idx] != c {
		r.mu.Unlock() // not a member (still catching up, or never admitted)
		return
	}
	r.removeLocked(c)
	empty := len(r.members) == 0 && r.pending == 0
	r.mu.Unlock()
	if empty {
		h.release(r)
	}
}

func (r *room) removeLocked(c *Conn) {
	last := len(r.members) - 1
	moved := r.members[last]
	r.members[c.idx] = moved
	moved.idx = c.idx
	r.members[last] = nil
	r.members = r.members[:last]
	c.idx = -1
}

// release removes an empty room and unsubscribes from its group.
func (h *Hub) release(r *room) {
	h.subMu.Lock()
	defer h.subMu.Unlock()
	r.mu.Lock()
	if len(r.members) > 0 || r.pending > 0 || r.removed { // someone joined meanwhile
		r.mu.Unlock()
		return
	}
	r.removed = true
	h.mu.Lock()
	if h.rooms[r.group] == r {
		delete(h.rooms, r.group)
	}
	h.mu.Unlock()
	r.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := h.layer.Unsubscribe(ctx, r.group); err != nil {
		h.log.Warn("ws: unsubscribe failed", "group", r.group, "err", err)
	}
}
