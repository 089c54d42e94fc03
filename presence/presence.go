// Package presence keeps track of who is in which room, on this chatd
// process and on every other one sharing its channel layer, without a
// store and without anything but the layer's groups.
//
// The mechanism is state exchanged over the layer, with expiry:
//
//   - Each process counts its own connections per (room, user) (Add,
//     Remove). A user is present on a process while it has at least one
//     connection to the room there.
//   - Each process publishes numbered state messages on one group that
//     every process subscribes to: a delta (who arrived, who left) at most
//     once per batch (Tick), and a full snapshot of its local state when
//     asked for one (a newcomer, a gap, a layer that reconnected). A
//     heartbeat carrying the number of the last state message goes out when
//     nothing else did for an interval.
//   - Every process keeps every other process's last known state. A delta
//     is applied in number order; a missing number (the layer is at most
//     once) or a heartbeat announcing one it never got makes it ask that
//     process for a snapshot, which replaces what it had. A process that
//     has not been heard from for the TTL (it died, or it or we lost the
//     layer) is dropped, and its users leave unless another process has
//     them. A process that shuts down says goodbye and is dropped at once.
//   - The room's presence is the union of all processes' states: a user is
//     in the room while any process has them, and joins or leaves only
//     when the first process gains them or the last one loses them, so two
//     tabs on two processes leave only when both are closed.
//
// So, with a working layer, a change reaches every process within one
// batch plus the layer's latency; a lost message is repaired within one
// heartbeat interval; a dead or cut-off process's users leave everyone
// else's presence within the TTL plus one batch; and a process that was
// only cut off comes back by itself: when its layer reconnects it publishes
// a snapshot and asks every other process for theirs (Restored).
//
// What clients are told is coalesced: Diff returns, per room, the net
// change since the room's last Diff, so a user who joins and leaves within
// one batch is never announced, and a storm of joins becomes one list per
// batch. The tracker is transport-free: the ws hub publishes what Tick
// returns, feeds it what the layer delivers (Receive), and turns Diff into
// frames.
package presence

import (
	"cmp"
	"encoding/json"
	"slices"
	"sync"
	"time"
)

// Member is one user present in a room.
type Member struct {
	User  string
	Since time.Time // present, on some process, without interruption since then
}

// Change is what a room's clients must be told: who joined and who left
// since the room's previous Change, and how many users the room had then
// and has now.
type Change struct {
	Room   string
	Joins  []Member // ordered by Since, then name
	Leaves []string // ordered by name
	Before int      // users announced before this change
	Count  int      // users announced after it
}

// Empty reports whether c tells nothing.
func (c Change) Empty() bool { return len(c.Joins) == 0 && len(c.Leaves) == 0 }

// Config configures a Tracker.
type Config struct {
	// Self is this process's id on the layer; messages from it are ignored.
	Self uint64
	// Interval is how often a process that published nothing else sends a
	// heartbeat; default 5 s.
	Interval time.Duration
	// TTL is how long a process may stay silent before its users are
	// dropped; default 3 × Interval.
	TTL time.Duration
	// LeaveGrace is how long a user must have been gone before Diff
	// reports the leave: a page reload, or a second tab opened on another
	// process just before the first closed (whose news may arrive in either
	// order), is not a leave and a join. Default 0.
	LeaveGrace time.Duration
	// Now is the clock; default time.Now. Tests inject their own.
	Now func() time.Time
}

// Tracker is one process's view of presence. It is safe for concurrent use.
type Tracker struct {
	self     uint64
	interval time.Duration
	ttl      time.Duration
	grace    time.Duration
	now      func() time.Time

	mu sync.Mutex
	// local counts this process's connections; guarded by mu.
	local map[string]map[string]*localEntry // room -> user
	// dirty lists the local entries changed since the last state message;
	// guarded by mu.
	dirty map[string]map[string]struct{} // room -> users
	// seq numbers this process's state messages; guarded by mu.
	seq uint64
	// snapshotDue asks Tick for a snapshot instead of a delta; guarded by mu.
	snapshotDue bool
	// lastSent is when this process last published anything; guarded by mu.
	lastSent time.Time
	// requests are snapshot requests for Tick to publish (process ids,
	// 0 for all); guarded by mu.
	requests []uint64
	// procs are the other processes' states; guarded by mu.
	procs map[uint64]*proc
	// rooms is the merged view; guarded by mu.
	rooms map[string]*roomView
	// changed lists the rooms with something to Diff; guarded by mu.
	changed map[string]struct{}
	// online counts, per user, the rooms they are present in; guarded by mu.
	online map[string]int
}

type localEntry struct {
	conns     int       // open connections of the user to the room here
	since     time.Time // when the first of them opened
	announced bool      // the last state message said the user is here
}

// proc is another process's last known state.
type proc struct {
	seq       uint64 // number of the last state message applied
	synced    bool   // a snapshot has been applied since the last gap
	lastSeen  time.Time
	requested time.Time // when a snapshot was last asked of it
	rooms     map[string]map[string]time.Time
}

// roomView is one room's merged presence.
type roomView struct {
	users   map[string]*entry
	changed map[string]struct{} // users whose presence flipped since the last Diff
	told    int                 // users whose entry has told set
}

type entry struct {
	n      int       // processes (this one included) that have the user
	since  time.Time // earliest Since among them while n > 0
	told   bool      // clients were told the user is here
	goneAt time.Time // when n last dropped to 0
}

// New returns a tracker with cfg.
func New(cfg Config) *Tracker {
	if cfg.Interval <= 0 {
		cfg.Interval = 5 * time.Second
	}
	if cfg.TTL <= 0 {
		cfg.TTL = 3 * cfg.Interval
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Tracker{
		self: cfg.Self, interval: cfg.Interval, ttl: cfg.TTL, grace: cfg.LeaveGrace, now: cfg.Now,
		local:       make(map[string]map[string]*localEntry),
		dirty:       make(map[string]map[string]struct{}),
		procs:       make(map[uint64]*proc),
		rooms:       make(map[string]*roomView),
		changed:     make(map[string]struct{}),
		online:      make(map[string]int),
		snapshotDue: true, // a newcomer announces itself ...
		requests:    []uint64{0},
	} // ... and asks everyone for their state
}

// Add counts one more local connection of user to room.
func (t *Tracker) Add(room, user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	users := t.local[room]
	if users == nil {
		users = make(map[string]*localEntry)
		t.local[room] = users
	}
	e := users[user]
	if e == nil {
		e = &localEntry{}
		users[user] = e
	}
	e.conns++
	if e.conns == 1 {
		e.since = t.now()
		t.markDirty(room, user)
		t.hold(room, user, e.since)
	}
}

// Remove counts one local connection of user to room less.
func (t *Tracker) Remove(room, user string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e := t.local[room][user]
	if e == nil || e.conns == 0 {
		return
	}
	e.conns--
	if e.conns > 0 {
		return
	}
	t.release(room, user)
	if e.announced {
		t.markDirty(room, user) // the next delta says they left
	} else {
		t.dropLocal(room, user) // never announced: nothing to say
	}
}

func (t *Tracker) markDirty(room, user string) {
	d := t.dirty[room]
	if d == nil {
		d = make(map[string]struct{})
		t.dirty[room] = d
	}
	d[user] = struct{}{}
}

func (t *Tracker) dropLocal(room, user string) {
	delete(t.local[room], user)
	if len(t.local[room]) == 0 {
		delete(t.local, room)
	}
	if d := t.dirty[room]; d != nil {
		delete(d, user)
		if len(d) == 0 {
			delete(t.dirty, room)
		}
	}
}

// hold records that one more process has user in room.
func (t *Tracker) hold(room, user string, since time.Time) {
	rv := t.rooms[room]
	if rv == nil {
		rv = &roomView{users: make(map[string]*entry), changed: make(map[string]struct{})}
		t.rooms[room] = rv
	}
	e := rv.users[user]
	if e == nil {
		e = &entry{}
		rv.users[user] = e
	}
	e.n++
	if e.n == 1 {
		e.since = since
		t.online[user]++
		t.flip(room, rv, user)
	} else if since.Before(e.since) {
		e.since = since
	}
}

// release records that one process fewer has user in room.
func (t *Tracker) release(room, user string) {
	rv := t.rooms[room]
	if rv == nil {
		return
	}
	e := rv.users[user]
	if e == nil || e.n == 0 {
		return
	}
	e.n--
	if e.n == 0 {
		e.goneAt = t.now()
		if t.online[user]--; t.online[user] <= 0 {
			delete(t.online, user)
		}
		t.flip(room, rv, user)
	}
}

func (t *Tracker) flip(room string, rv *roomView, user string) {
	rv.changed[user] = struct{}{}
	t.changed[room] = struct{}{}
}

// ChangedRooms returns the rooms whose presence changed since their last
// Diff.
func (t *Tracker) ChangedRooms() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	rooms := make([]string, 0, len(t.changed))
	for r := range t.changed {
		rooms = append(rooms, r)
	}
	return rooms
}

// Diff returns what room's clients must be told since its last Diff, and
// records that they were told. The caller holds whatever lock orders the
// room's deliveries, so that a client that starts from Told and then gets
// every Diff misses nothing and gets nothing twice.
func (t *Tracker) Diff(room string) Change {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.changed, room)
	rv := t.rooms[room]
	if rv == nil {
		return Change{Room: room}
	}
	ch := Change{Room: room, Before: rv.told}
	now := t.now()
	graced := false
	for u := range rv.changed {
		e := rv.users[u]
		switch {
		case e.n > 0 && !e.told:
			e.told = true
			rv.told++
			ch.Joins = append(ch.Joins, Member{User: u, Since: e.since})
		case e.n == 0 && e.told && now.Sub(e.goneAt) < t.grace:
			graced = true // not yet: ask again at the next Diff
			continue
		case e.n == 0 && e.told:
			e.told = false
			rv.told--
			ch.Leaves = append(ch.Leaves, u)
		}
		if e.n == 0 {
			delete(rv.users, u)
		}
		delete(rv.changed, u)
	}
	if graced {
		t.changed[room] = struct{}{}
	}
	ch.Count = rv.told
	if len(rv.users) == 0 {
		delete(t.rooms, room)
	}
	sortMembers(ch.Joins)
	slices.Sort(ch.Leaves)
	return ch
}

func sortMembers(ms []Member) {
	slices.SortFunc(ms, func(a, b Member) int {
		if c := a.Since.Compare(b.Since); c != 0 {
			return c
		}
		return cmp.Compare(a.User, b.User)
	})
}

// Told returns the room's users as its clients were last told, the
// longest present first, how many there are, and whether user is among
// them. A room of more than limit users (limit >= 0) returns no list, only
// the count, so that a connect storm into a big room costs O(1) per
// connection, not O(room).
func (t *Tracker) Told(room string, limit int, user string) (members []Member, count int, hasUser bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	rv := t.rooms[room]
	if rv == nil {
		return nil, 0, false
	}
	if e := rv.users[user]; e != nil && e.told {
		hasUser = true
	}
	if limit >= 0 && rv.told > limit {
		return nil, rv.told, hasUser
	}
	members = make([]Member, 0, rv.told)
	for u, e := range rv.users {
		if e.told {
			members = append(members, Member{User: u, Since: e.since})
		}
	}
	sortMembers(members)
	return members, rv.told, hasUser
}

// ToldCount returns how many users the room's clients were last told of.
func (t *Tracker) ToldCount(room string) int {
	t.mu.Lock()
	defer t.mu.Unlock()
	if rv := t.rooms[room]; rv != nil {
		return rv.told
	}
	return 0
}

// Present returns the room's users as they are now (not as clients were
// last told), the longest present first.
func (t *Tracker) Present(room string) []Member {
	t.mu.Lock()
	defer t.mu.Unlock()
	rv := t.rooms[room]
	if rv == nil {
		return nil
	}
	ms := make([]Member, 0, len(rv.users))
	for u, e := range rv.users {
		if e.n > 0 {
			ms = append(ms, Member{User: u, Since: e.since})
		}
	}
	sortMembers(ms)
	return ms
}

// Online reports whether user is present in any room, on any process.
func (t *Tracker) Online(user string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.online[user] > 0
}

// OnlineCount returns how many distinct users are present anywhere.
func (t *Tracker) OnlineCount() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.online)
}

// Wire format of the messages processes exchange (JSON, one per layer
// message; the sender's id travels in the layer envelope).
type wire struct {
	T string `json:"t"`           // "d" delta, "s" snapshot, "h" heartbeat, "q" snapshot request, "b" goodbye
	N uint64 `json:"n,omitempty"` // d, s, h: the number of the sender's last state message
	P uint64 `json:"p,omitempty"` // q: the process asked (0: every process)
	// J: for "s" every local user per room, for "d" those who arrived.
	J map[string][]wireUser `json:"j,omitempty"`
	// L: for "d", per room, the users who left.
	L map[string][]string `json:"l,omitempty"`
}

type wireUser struct {
	U string `json:"u"`
	S int64  `json:"s"` // since, Unix milliseconds
}

// Tick expires silent processes and returns the messages to publish now:
// pending snapshot requests, then a snapshot (if one is due) or a delta (if
// anything changed locally), or a heartbeat if nothing was published for an
// interval. The hub calls it once per batch.
func (t *Tracker) Tick() [][]byte {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	for id, p := range t.procs {
		if now.Sub(p.lastSeen) >= t.ttl {
			t.dropProc(id)
		}
	}
	var out [][]byte
	for _, p := range t.requests {
		out = append(out, mustJSON(wire{T: "q", P: p}))
	}
	t.requests = t.requests[:0]
	switch {
	case t.snapshotDue:
		t.snapshotDue = false
		t.seq++
		w := wire{T: "s", N: t.seq, J: make(map[string][]wireUser, len(t.local))}
		for room, users := range t.local {
			var list []wireUser
			for u, e := range users {
				if e.conns > 0 {
					e.announced = true
					list = append(list, wireUser{U: u, S: e.since.UnixMilli()})
				} else {
					delete(users, u)
				}
			}
			if len(list) == 0 {
				delete(t.local, room)
				continue
			}
			w.J[room] = list
		}
		clear(t.dirty)
		out = append(out, mustJSON(w))
	case len(t.dirty) > 0:
		t.seq++
		w := wire{T: "d", N: t.seq}
		for room, users := range t.dirty {
			for u := range users {
				e := t.local[room][u]
				switch {
				case e == nil:
				case e.conns > 0 && !e.announced:
					e.announced = true
					if w.J == nil {
						w.J = make(map[string][]wireUser)
					}
					w.J[room] = append(w.J[room], wireUser{U: u, S: e.since.UnixMilli()})
				case e.conns == 0 && e.announced:
					if w.L == nil {
						w.L = make(map[string][]string)
					}
					w.L[room] = append(w.L[room], u)
					delete(t.local[room], u)
					if len(t.local[room]) == 0 {
						delete(t.local, room)
					}
				}
			}
		}
		clear(t.dirty)
		if w.J != nil || w.L != nil {
			out = append(out, mustJSON(w))
		} else {
			t.seq-- // nothing to say after all
		}
	}
	if len(out) == 0 && now.Sub(t.lastSent) >= t.interval {
		out = append(out, mustJSON(wire{T: "h", N: t.seq}))
	}
	if len(out) > 0 {
		t.lastSent = now
	}
	return out
}

// Restored is called when this process's layer connection came back after
// an outage: other processes may have dropped it, and it may have missed
// their messages, so the next Tick publishes a snapshot and asks every
// process for theirs.
func (t *Tracker) Restored() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.snapshotDue = true
	t.requests = append(t.requests, 0)
}

// Goodbye returns the message a process publishes when it shuts down, so
// that the others drop it at once instead of after the TTL.
func (t *Tracker) Goodbye() []byte { return mustJSON(wire{T: "b"}) }

// Receive applies a message published by process from. Malformed messages
// are ignored (and reported false).
func (t *Tracker) Receive(from uint64, body []byte) bool {
	if from == t.self {
		return true
	}
	var w wire
	if err := json.Unmarshal(body, &w); err != nil {
		return false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	if w.T == "b" {
		t.dropProc(from)
		return true
	}
	if w.T == "q" {
		if w.P == 0 || w.P == t.self {
			t.snapshotDue = true
		}
		// A request also says the asker is alive.
		if p := t.procs[from]; p != nil {
			p.lastSeen = now
		}
		return true
	}
	p := t.procs[from]
	if p == nil {
		p = &proc{rooms: make(map[string]map[string]time.Time)}
		t.procs[from] = p
	}
	p.lastSeen = now
	switch w.T {
	case "s":
		if p.synced && w.N < p.seq {
			return true // older than what was applied
		}
		t.replace(p, w.J)
		p.seq, p.synced = w.N, true
	case "d":
		switch {
		case !p.synced:
			// Nothing to apply it to: wait for the snapshot.
			t.ask(from, p, now)
		case w.N <= p.seq:
			// Already applied.
		default:
			if w.N != p.seq+1 {
				t.ask(from, p, now) // a gap: apply what we have, ask for the whole
			}
			t.applyDelta(p, w)
			p.seq = w.N
		}
	case "h":
		if !p.synced || w.N > p.seq {
			t.ask(from, p, now)
		}
	default:
		return false
	}
	return true
}

// ask queues a snapshot request to process id, at most once an interval
// (half an interval at start), so a stream of deltas after a gap costs one
// request.
func (t *Tracker) ask(id uint64, p *proc, now time.Time) {
	if !p.requested.IsZero() && now.Sub(p.requested) < t.interval/2 {
		return
	}
	p.requested = now
	p.synced = false
	t.requests = append(t.requests, id)
}

// replace makes p's state rooms, adjusting the merged view.
func (t *Tracker) replace(p *proc, rooms map[string][]wireUser) {
	next := make(map[string]map[string]time.Time, len(rooms))
	for room, list := range rooms {
		m := make(map[string]time.Time, len(list))
		for _, u := range list {
			m[u.U] = time.UnixMilli(u.S)
		}
		next[room] = m
	}
	for room, users := range p.rooms {
		for u := range users {
			if _, ok := next[room][u]; !ok {
				t.release(room, u)
			}
		}
	}
	for room, users := range next {
		for u, since := range users {
			if _, ok := p.rooms[room][u]; !ok {
				t.hold(room, u, since)
			}
		}
	}
	p.rooms = next
}

func (t *Tracker) applyDelta(p *proc, w wire) {
	for room, list := range w.J {
		users := p.rooms[room]
		if users == nil {
			users = make(map[string]time.Time)
			p.rooms[room] = users
		}
		for _, u := range list {
			if _, ok := users[u.U]; !ok {
				since := time.UnixMilli(u.S)
				users[u.U] = since
				t.hold(room, u.U, since)
			}
		}
	}
	for room, list := range w.L {
		users := p.rooms[room]
		for _, u := range list {
			if _, ok := users[u]; ok {
				delete(users, u)
				t.release(room, u)
			}
		}
		if len(users) == 0 {
			delete(p.rooms, room)
		}
	}
}

// dropProc forgets a process: its users leave unless another has them.
func (t *Tracker) dropProc(id uint64) {
	p := t.procs[id]
	if p == nil {
		return
	}
	for room, users := range p.rooms {
		for u := range users {
			t.release(room, u)
		}
	}
	delete(t.procs, id)
}

// Processes returns how many other processes are known (for tests and
// health output).
func (t *Tracker) Processes() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.procs)
}

func mustJSON(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err) // strings and numbers always encode
	}
	return b
}
