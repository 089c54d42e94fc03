package ws

import (
	"context"
	"encoding/binary"
	"time"

	"github.com/chatd/chat/presence"
)

// Presence and typing (see docs/presence.md).
//
// Who is in a room is kept by a presence.Tracker: every connection counts
// from the moment it is admitted to its room until it leaves, and the
// tracker exchanges each process's state with the others over the layer, on
// presenceGroup. Once per PresenceBatch the hub publishes what the tracker
// has to say and announces to each room's chatd.v1 clients what changed
// since its last announcement: join and leave frames while the room has at
// most PresenceMaxList users, a presence_count frame above that, and a new
// presence list when it shrinks back. A client is sent the room's list
// (as last announced, plus itself) right after its hello, and from then on
// every announcement, so it misses nothing and sees nothing twice.
//
// Typing frames ride on the room's own group as kindTyping envelopes: they
// never touch the store or the sequencer. Each process that has members in
// the room relays a typing frame to its chatd.v1 members other than the
// typist's own connections and remembers the typist until TypingTimeout
// passes without a renewal, or a typing_stop arrives (the typist sent a
// message or closed); then it tells its members typing_stop. A connection's
// typing frames are relayed at most once per TypingTimeout/3: the rest only
// renew what was already said, so a client may send one per keystroke.
//
// Presence and typing frames are framed once per room per announcement and
// the same bytes are queued for every recipient, like chat messages.

// Envelope kinds and flags of presence and typing.
const (
	kindPresence = 'P' // a presence.Tracker message, on presenceGroup
	kindTyping   = 'Y' // a typing frame for a room's members, on the room's group
	flagStop     = 2   // kindTyping: the typist stopped (typing_stop)
)

const presenceGroup = "chatd.presence"

// bigRoomEvery is how often at most a room over PresenceMaxList users gets
// a presence_count frame: during a connect storm into a 15,000-person room
// every count costs one write per member, so a head count once a second
// is plenty. It paces the server (real time), like the batch ticker.
const bigRoomEvery = time.Second

// presenceFrame is the room's presence list: right after hello, and when a
// room shrinks back to PresenceMaxList users or fewer. A room bigger than
// that has an empty list, Truncated and its Count.
type presenceFrame struct {
	Type      string         `json:"type"` // "presence"
	Users     []presenceUser `json:"users"`
	Count     int            `json:"count"`               // users in the room
	Truncated bool           `json:"truncated,omitempty"` // the room has more than PresenceMaxList users: Users is empty
}

type presenceUser struct {
	User  string `json:"user"`
	Since string `json:"since"`
}

// joinFrame says a user arrived ("join") or left ("leave", no Since).
type joinFrame struct {
	Type  string `json:"type"`
	User  string `json:"user"`
	Since string `json:"since,omitempty"`
}

// countFrame gives a big room's head count instead of joins and leaves.
type countFrame struct {
	Type  string `json:"type"` // "presence_count"
	Count int    `json:"count"`
}

// typingFrame says a user is typing ("typing", with how long it lasts
// unless renewed) or stopped ("typing_stop").
type typingFrame struct {
	Type      string `json:"type"`
	User      string `json:"user"`
	ExpiresIn int64  `json:"expires_in,omitempty"` // milliseconds
}

// presenceOn reports whether presence and typing are enabled.
func (h *Hub) presenceOn() bool { return h.pres != nil }

// runPresence publishes the tracker's messages and announces changes once
// per PresenceBatch until Shutdown.
func (h *Hub) runPresence() {
	t := time.NewTicker(h.cfg.PresenceBatch)
	defer t.Stop()
	for {
		select {
		case <-h.stop:
			return
		case <-t.C:
			h.presenceTick()
		}
	}
}

// presenceTick is one batch: publish, announce, expire typists.
func (h *Hub) presenceTick() {
	for _, body := range h.pres.Tick() {
		h.publishPresence(body)
	}
	for _, group := range h.pres.ChangedRooms() {
		h.announce(group)
	}
	h.expireTyping(h.cfg.Now())
}

// publishPresence sends a tracker message to every process. A failure is
// not retried: the other processes notice the gap in the numbers, or the
// silence, and this one publishes a snapshot when its layer is restored.
func (h *Hub) publishPresence(body []byte) {
	env := make([]byte, envHeader, envHeader+len(body))
	env[0] = kindPresence
	binary.BigEndian.PutUint64(env[1:9], h.pid)
	env = append(env, body...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := h.layer.Publish(ctx, presenceGroup, env); err != nil {
		h.log.Debug("ws: presence not published", "err", err)
	}
}

// announce tells a room's local chatd.v1 members what changed in its
// presence since the last announcement.
//
// The Diff is taken under the lock that orders the room's joins: the room's
// mu, or, when this process has no room for the group, the hub's mu (a
// room is put in the map under it before anyone joins), so a client whose
// list was taken from Told gets every later Diff and no earlier one.
func (h *Hub) announce(group string) {
	var r *room
	for {
		h.mu.RLock()
		r = h.rooms[group]
		if r == nil {
			h.pres.Diff(group) // no one here to tell; keep the tracker in step
			h.mu.RUnlock()
			return
		}
		h.mu.RUnlock()
		r.mu.Lock()
		if !r.removed {
			break
		}
		r.mu.Unlock() // released meanwhile: look again
	}
	defer r.mu.Unlock()
	now := time.Now()
	if h.pres.ToldCount(group) > h.cfg.PresenceMaxList && now.Sub(r.countSent) < bigRoomEvery {
		// A big room's clients had a head count less than bigRoomEvery
		// ago: the room stays changed and is looked at again next batch.
		return
	}
	ch := h.pres.Diff(group)
	if ch.Empty() {
		return
	}
	frames := h.changeFrames(group, ch)
	if frames == nil {
		return
	}
	if ch.Count > h.cfg.PresenceMaxList {
		r.countSent = now
	}
	n := 0
	for _, c := range r.watchers {
		if c.enqueue(frames) {
			n++
		}
	}
	h.delivered.Add(uint64(n))
}

// changeFrames returns the frames that announce ch, back to back in one
// slice (one queue entry per recipient however many they are).
func (h *Hub) changeFrames(group string, ch presence.Change) []byte {
	max := h.cfg.PresenceMaxList
	switch {
	case ch.Count > max:
		if ch.Count == ch.Before {
			return nil
		}
		return mustFrame(countFrame{Type: "presence_count", Count: ch.Count})
	case ch.Before > max:
		ms, count, _ := h.pres.Told(group, max, "")
		return mustFrame(listFrame(ms, count))
	}
	var b []byte
	for _, u := range ch.Leaves {
		b = append(b, mustFrame(joinFrame{Type: "leave", User: u})...)
	}
	for _, m := range ch.Joins {
		b = append(b, mustFrame(joinFrame{Type: "join", User: m.User, Since: formatTime(m.Since)})...)
	}
	return b
}

func listFrame(ms []presence.Member, count int) presenceFrame {
	f := presenceFrame{Type: "presence", Users: make([]presenceUser, len(ms)), Count: count, Truncated: count > len(ms)}
	for i, m := range ms {
		f.Users[i] = presenceUser{User: m.User, Since: formatTime(m.Since)}
	}
	return f
}

// presentLocked counts c in its room's presence and, for a chatd.v1
// client, makes it a watcher and prepares the list it gets after hello:
// the room as last announced, plus c's own user (announced to the others
// at the next batch). r.mu is held.
func (h *Hub) presentLocked(r *room, c *Conn) {
	if h.pres == nil || c.present {
		return
	}
	c.present = true
	h.pres.Add(r.group, c.user.Username)
	if !c.v1 {
		return
	}
	c.watchIdx = len(r.watchers)
	r.watchers = append(r.watchers, c)
	max := h.cfg.PresenceMaxList
	ms, count, has := h.pres.Told(r.group, max, c.user.Username)
	if !has {
		count++
		if count <= max {
			ms = append(ms, presence.Member{User: c.user.Username, Since: h.cfg.Now()})
		} else {
			ms = nil // a big room: the count only
		}
	}
	c.presence = mustFrame(listFrame(ms, count))
}

// absentLocked undoes presentLocked; calling it again does nothing. r.mu
// is held.
func (h *Hub) absentLocked(r *room, c *Conn) {
	if !c.present {
		return
	}
	c.present = false
	h.pres.Remove(r.group, c.user.Username)
	if i := c.watchIdx; i >= 0 && i < len(r.watchers) && r.watchers[i] == c {
		last := len(r.watchers) - 1
		moved := r.watchers[last]
		r.watchers[i] = moved
		moved.watchIdx = i
		r.watchers[last] = nil
		r.watchers = r.watchers[:last]
	}
	c.watchIdx = -1
}

// Presence returns the users in the room with key group now, on every
// process, the longest present first, and whether presence is on.
func (h *Hub) Presence(group string) ([]presence.Member, bool) {
	if h.pres == nil {
		return nil, false
	}
	return h.pres.Present(group), true
}

// Online reports whether user has a connection to some room on some
// process (false with presence off).
func (h *Hub) Online(user string) bool { return h.pres != nil && h.pres.Online(user) }

// PresenceOn reports whether presence is enabled.
func (h *Hub) PresenceOn() bool { return h.pres != nil }

// typing handles a typing frame from c's client. Only c's reader calls it.
func (c *Conn) typing(now time.Time) {
	h := c.hub
	if h.pres == nil || now.Before(c.typingNext) {
		return // off, or absorbed: the last relay has not half expired
	}
	c.typingNext = now.Add(h.cfg.TypingTimeout / 3)
	c.typingOn = true
	h.publishTyping(c, false)
}

// stopTyping tells the room c's user stopped typing, if they were: c sent
// a message or is closing. Only c's reader calls it.
func (c *Conn) stopTyping() {
	if !c.typingOn {
		return
	}
	c.typingOn = false
	c.typingNext = time.Time{}
	c.hub.publishTyping(c, true)
}

// publishTyping publishes c's typing (or typing_stop) frame to its room on
// every process. The envelope's body is the typist's name (two bytes of
// length, then the name) followed by the frame.
func (h *Hub) publishTyping(c *Conn, stop bool) {
	env := h.typingEnvelope(c.id, c.user.Username, stop)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := h.layer.Publish(ctx, c.group, env); err != nil {
		h.log.Debug("ws: typing not published", "group", c.group, "err", err)
	}
}

// typingEnvelope returns the layer message of name's typing (or
// typing_stop) frame, sent by connection origin.
func (h *Hub) typingEnvelope(origin uint64, name string, stop bool) []byte {
	f := typingFrame{Type: "typing", User: name, ExpiresIn: h.cfg.TypingTimeout.Milliseconds()}
	var flags byte
	if stop {
		f, flags = typingFrame{Type: "typing_stop", User: name}, flagStop
	}
	buf, start, err := encodeFramed(f, envHeader+2+len(name))
	if err != nil {
		panic(err) // strings and numbers always encode
	}
	env := buf[start-envHeader-2-len(name):]
	env[0] = kindTyping
	binary.BigEndian.PutUint64(env[1:9], h.pid)
	binary.BigEndian.PutUint64(env[9:17], origin)
	env[17] = flags
	binary.BigEndian.PutUint16(env[envHeader:], uint16(len(name)))
	copy(env[envHeader+2:], name)
	return env
}

// receiveTyping relays a typing envelope to the room's local chatd.v1
// members, except the typist's own connections, and tracks the typist.
func (h *Hub) receiveTyping(group string, proc, origin uint64, flags byte, body []byte) {
	if h.pres == nil || len(body) < 2 {
		return
	}
	n := int(binary.BigEndian.Uint16(body))
	if len(body) < 2+n {
		return
	}
	user, frame := body[2:2+n], body[2+n:]
	h.mu.RLock()
	r := h.rooms[group]
	h.mu.RUnlock()
	if r == nil {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if flags&flagStop != 0 {
		if _, ok := r.typers[string(user)]; !ok {
			return // told already (expired here)
		}
		delete(r.typers, string(user))
	} else {
		if r.typers == nil {
			r.typers = make(map[string]time.Time)
		}
		if len(r.typers) == 0 {
			h.typingMu.Lock()
			h.typingRooms[r] = struct{}{}
			h.typingMu.Unlock()
		}
		r.typers[string(user)] = h.cfg.Now().Add(h.cfg.TypingTimeout)
	}
	h.relayTypingLocked(r, user, frame)
}

// relayTypingLocked queues frame for r's chatd.v1 members other than
// user's connections. r.mu is held.
func (h *Hub) relayTypingLocked(r *room, user, frame []byte) {
	n := 0
	for _, c := range r.watchers {
		if c.user.Username == string(user) { // compared without a copy
			continue
		}
		if c.enqueue(frame) {
			n++
		}
	}
	h.delivered.Add(uint64(n))
}

// expireTyping tells rooms that typists silent for TypingTimeout stopped.
func (h *Hub) expireTyping(now time.Time) {
	h.typingMu.Lock()
	rooms := make([]*room, 0, len(h.typingRooms))
	for r := range h.typingRooms {
		rooms = append(rooms, r)
	}
	h.typingMu.Unlock()
	for _, r := range rooms {
		r.mu.Lock()
		for u, until := range r.typers {
			if now.Before(until) {
				continue
			}
			delete(r.typers, u)
			h.relayTypingLocked(r, []byte(u), mustFrame(typingFrame{Type: "typing_stop", User: u}))
		}
		if len(r.typers) == 0 {
			h.typingMu.Lock()
			delete(h.typingRooms, r)
			h.typingMu.Unlock()
		}
		r.mu.Unlock()
	}
}
