package ws

import (
	"strconv"
	"strings"
	"sync/atomic"
)

// The hub's counters for /metrics. They are plain atomics the hub keeps
// whether or not anything reads them, and Counters copies them when a
// scraper asks: nothing on the message path calls into a metrics library,
// takes a lock or allocates for them. What is counted where:
//
//   - per broadcast (not per recipient): delivered, one Add for the whole
//     room (hub.go, room.go);
//   - per frame received and per write system call: received and bytesOut,
//     on counters sharded by connection so that readers and writers on
//     different cores do not fight over one cache line;
//   - everything else on paths that are rare by nature: a connection
//     opening or closing, a refused frame or upgrade, history served on a
//     join.

// Room kinds as the counters label them.
const (
	kindPublic = iota
	kindCourse
	kindDM
	numKinds
)

var kindNames = [numKinds]string{"public", "course", "dm"}

// roomKind returns the kind of a room by its key's prefix (chat.Room.Key);
// a group that is no room key (in tests) counts as public.
func roomKind(group string) uint8 {
	prefix, _, _ := strings.Cut(group, ":")
	switch prefix {
	case "course":
		return kindCourse
	case "dm":
		return kindDM
	}
	return kindPublic
}

// refusalCodes are the error-frame codes a refused frame is counted under;
// a code not listed here is counted as "other".
var refusalCodes = [...]string{
	CodeInvalidJSON, CodeNotObject, CodeInvalidMessage, CodeEmptyMessage, CodeMessageTooLong,
	CodeInvalidID, CodeUnknownField, CodeUnknownType, CodeRateLimited, CodeUnavailable, "other",
}

const numRefusals = len(refusalCodes)

func refusalIndex(code string) int {
	for i, c := range refusalCodes[:numRefusals-1] {
		if c == code {
			return i
		}
	}
	return numRefusals - 1
}

// Message budgets a frame can be refused by (limits.go).
const (
	budgetConn = iota
	budgetUser
	budgetAddr
	budgetRoom
	numBudgets
)

var budgetNames = [numBudgets]string{"connection", "user", "ip", "room"}

// Connection caps an upgrade can be refused at (limits.go: connRefusal.limit).
var capNames = [...]string{"global", "ip", "user"}

func capIndex(limit string) int {
	for i, n := range capNames {
		if n == limit {
			return i
		}
	}
	return 0
}

// closeCodes are the close codes counted one by one; any other code is
// counted as "other". 1005 is a client's close frame without a code, 1006
// a connection that ended without any close frame.
var closeCodes = [...]uint16{1000, 1001, 1003, 1005, 1006, 1007, 1008, 1009, 1011, 1013}

const numCloseCodes = len(closeCodes) + 1 // + other

func closeIndex(code uint16) int {
	for i, c := range closeCodes {
		if c == code {
			return i
		}
	}
	return len(closeCodes)
}

// sharded is a counter split over cache lines, so that goroutines on
// different cores adding to it rarely touch the same line. Add picks the
// shard by a key (a connection id); Load sums the shards.
type sharded struct {
	shards [16]struct {
		n atomic.Uint64
		_ [56]byte
	}
}

func (s *sharded) add(key, n uint64) { s.shards[key&15].n.Add(n) }

func (s *sharded) load() uint64 {
	var t uint64
	for i := range s.shards {
		t += s.shards[i].n.Load()
	}
	return t
}

// counters are a hub's running totals; see above.
type counters struct {
	received sharded // text frames from clients
	bytesOut sharded // bytes written to clients' sockets

	opened      [numKinds]atomic.Uint64
	closed      [numKinds]atomic.Uint64
	refused     [numRefusals]atomic.Uint64
	rateLimited [numBudgets]atomic.Uint64
	connRefused [len(capNames)]atomic.Uint64
	closes      [2][numCloseCodes]atomic.Uint64 // [by server][code]

	historyMemory atomic.Uint64 // frames served on joins and resumes from a room's window
	historyStore  atomic.Uint64 // messages served on joins and resumes from the store
	recovered     atomic.Uint64 // messages read from the store to fill a gap or after a layer outage
}

// refuse counts a frame refused with an error frame of code.
func (k *counters) refuse(code string) {
	k.refused[refusalIndex(code)].Add(1)
}

// limited counts a frame refused by budget b.
func (k *counters) limited(b int) {
	k.rateLimited[b].Add(1)
	k.refused[refusalIndex(CodeRateLimited)].Add(1)
}

// disconnected counts a connection of kind that closed with code.
func (k *counters) disconnected(kind uint8, code uint16, byServer bool) {
	by := 0
	if byServer {
		by = 1
	}
	k.closes[by][closeIndex(code)].Add(1)
	k.closed[kind].Add(1)
}

// Counters is a snapshot of a hub's counters for /metrics. Every field
// only grows, except Open and Rooms. Maps hold every label, zeros too, so
// a scraper sees each series from the start.
type Counters struct {
	Opened      map[string]uint64 // connections upgraded, by room kind: public, course, dm
	Open        map[string]uint64 // connections open now, by room kind
	Received    uint64            // text frames received from clients
	Refused     map[string]uint64 // frames answered with an error frame, by its code
	RateLimited map[string]uint64 // frames refused by a message budget: connection, user, ip, room
	ConnRefused map[string]uint64 // upgrades refused at a connection cap: global, ip, user
	Delivered   uint64            // chat messages queued to clients (one per recipient)
	BytesOut    uint64            // bytes written to clients' sockets (frames; not handshakes or close frames)
	SlowClosed  uint64            // connections closed because their send queue overflowed
	Closes      []CloseCount      // closed connections by close code and side
	// HistoryMemory and HistoryStore count the messages sent to
	// connections on joins and resumes, from a room's in-memory window or
	// from the store; Recovered the messages read from the store to fill a
	// gap in live delivery or after the layer lost messages.
	HistoryMemory, HistoryStore, Recovered uint64
	Rooms                                  int // rooms with local members
}

// CloseCount is how many connections closed with Code, started by the
// server (ByServer) or the client. Code is "other" for unlisted codes.
type CloseCount struct {
	Code     string
	ByServer bool
	N        uint64
}

// Counters returns the hub's counters.
func (h *Hub) Counters() Counters {
	k := &h.count
	c := Counters{
		Opened: make(map[string]uint64, numKinds), Open: make(map[string]uint64, numKinds),
		Refused: make(map[string]uint64, numRefusals), RateLimited: make(map[string]uint64, numBudgets),
		ConnRefused: make(map[string]uint64, len(capNames)),
		Received:    k.received.load(), BytesOut: k.bytesOut.load(),
		Delivered: h.delivered.Load(), SlowClosed: h.slow.Load(),
		HistoryMemory: k.historyMemory.Load(), HistoryStore: k.historyStore.Load(), Recovered: k.recovered.Load(),
	}
	for i, name := range kindNames {
		// closed first: a connection is counted as opened before it can
		// be counted as closed, so open never goes below zero.
		closed := k.closed[i].Load()
		opened := k.opened[i].Load()
		c.Opened[name], c.Open[name] = opened, opened-closed
	}
	for i, code := range refusalCodes {
		c.Refused[code] = k.refused[i].Load()
	}
	for i, name := range budgetNames {
		c.RateLimited[name] = k.rateLimited[i].Load()
	}
	for i, name := range capNames {
		c.ConnRefused[name] = k.connRefused[i].Load()
	}
	for by := range 2 {
		for i := range numCloseCodes {
			code := "other"
			if i < len(closeCodes) {
				code = strconv.Itoa(int(closeCodes[i]))
			}
			c.Closes = append(c.Closes, CloseCount{Code: code, ByServer: by == 1, N: k.closes[by][i].Load()})
		}
	}
	h.mu.RLock()
	c.Rooms = len(h.rooms)
	h.mu.RUnlock()
	return c
}
