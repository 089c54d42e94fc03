// Package msgbatch plans one chat.Store.AppendMessages call, the part that
// is the same on every database: validating the messages, grouping them by
// room in the order in which rooms must be locked, finding the repeats of a
// client id within the batch, numbering the new messages from each room's
// counter, and, once the transaction has committed, setting the messages'
// fields. The sqlite and postgres stores do only the SQL around it:
//
//	b, err := msgbatch.New(msgs)          // EINVALID before any write
//	begin
//	for _, r := range b.Rooms {           // sorted by key
//		lock r.Key's counter row; r.Last = its last_seq
//	}
//	for _, r := range b.Rooms {           // only now: earlier holders have committed
//		look up r.Lookup among r.Key's stored messages; r.Found(...) for each hit
//	}
//	rows := b.Plan()                      // insert rows; set last_seq = r.Next
//	commit
//	b.Apply()                             // only after a successful commit
package msgbatch

import (
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	chat "github.com/chatd/chat"
)

// Key identifies a message for idempotency within a room: its sender's
// chat.Message.SenderKey and its client id.
type Key struct {
	Sender   string
	ClientID string
}

// Stored is what a duplicate takes from the message already stored.
type Stored struct {
	Seq  int64
	Time time.Time
	Text string
}

// Room is one room of a batch.
type Room struct {
	Key string // the room's key (chat.Message.Room)

	// Lookup lists, without repeats and in batch order, the (sender, client
	// id) pairs of the room's messages that have a client id: the store
	// looks them up among the messages already stored and reports each one
	// it finds with Found.
	Lookup []Key

	// Last is the room's last assigned sequence number, read by the store
	// with the room's counter locked (0 for a new room).
	Last int64

	// Next is the room's last sequence number after the batch, set by
	// Plan: the store writes it back to the counter.
	Next int64

	found map[Key]Stored
}

// Found records that k is already stored in the room as s.
func (r *Room) Found(k Key, s Stored) {
	if r.found == nil {
		r.found = make(map[Key]Stored)
	}
	s.Time = s.Time.UTC()
	r.found[k] = s
}

// Row is a message to insert.
type Row struct {
	Msg       *chat.Message
	Seq       int64
	SenderKey string
	Time      time.Time // Msg.Time as stored: UTC, whole microseconds
}

// Batch is one AppendMessages call being planned.
type Batch struct {
	// Rooms are the batch's rooms ordered by key (byte order), the order in
	// which every store locks them, so that two batches sharing rooms never
	// wait for each other in a cycle.
	Rooms []*Room

	msgs    []*chat.Message
	room    []*Room  // room[i] is msgs[i]'s room
	results []result // set by Plan, applied by Apply
	planned bool
}

type result struct {
	seq  int64
	time time.Time
	text string
	dup  bool
}

// New validates msgs and groups them by room. Any invalid message fails the
// whole batch with an EINVALID *chat.Error before anything is written.
func New(msgs []*chat.Message) (*Batch, error) {
	b := &Batch{msgs: msgs, room: make([]*Room, len(msgs))}
	byKey := make(map[string]*Room)
	seen := make(map[string]map[Key]bool)
	for i, m := range msgs {
		if err := Validate(m); err != nil {
			return nil, err
		}
		r := byKey[m.Room]
		if r == nil {
			r = &Room{Key: m.Room}
			byKey[m.Room] = r
			b.Rooms = append(b.Rooms, r)
		}
		b.room[i] = r
		if m.ClientID != "" {
			k := Key{Sender: m.SenderKey(), ClientID: m.ClientID}
			if seen[m.Room] == nil {
				seen[m.Room] = make(map[Key]bool)
			}
			if !seen[m.Room][k] {
				seen[m.Room][k] = true
				r.Lookup = append(r.Lookup, k)
			}
		}
	}
	slices.SortFunc(b.Rooms, func(x, y *Room) int { return strings.Compare(x.Key, y.Key) })
	return b, nil
}

// Validate returns an EINVALID *chat.Error unless m may be stored: Room,
// User and Text not empty, Time set, ClientID at most chat.MaxClientIDLen
// bytes, and every string valid UTF-8 without NUL characters (which
// PostgreSQL's text cannot hold, so neither store accepts them).
func Validate(m *chat.Message) error {
	switch {
	case m == nil:
		return chat.Errorf(chat.EINVALID, "message is missing")
	case m.Room == "":
		return chat.Errorf(chat.EINVALID, "message room is required")
	case m.User == "":
		return chat.Errorf(chat.EINVALID, "message sender is required")
	case m.Text == "":
		return chat.Errorf(chat.EINVALID, "message text is required")
	case m.Time.IsZero():
		return chat.Errorf(chat.EINVALID, "message time is required")
	case len(m.ClientID) > chat.MaxClientIDLen:
		return chat.Errorf(chat.EINVALID, "client id is longer than %d bytes", chat.MaxClientIDLen)
	}
	for _, f := range [...]struct{ what, s string }{
		{"room", m.Room}, {"sender", m.User}, {"text", m.Text}, {"client id", m.ClientID}, {"sender's name", m.Name},
	} {
		if !utf8.ValidString(f.s) || strings.IndexByte(f.s, 0) >= 0 {
			return chat.Errorf(chat.EINVALID, "message %s is not valid UTF-8 or contains NUL", f.what)
		}
	}
	return nil
}

// StoredTime returns t as the stores keep it: UTC, whole microseconds.
func StoredTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// Plan numbers the batch once every room's Last is set and its stored
// duplicates are reported: in batch order, a message whose (sender, client
// id) is already stored, or came earlier in the batch, is a duplicate of
// that message; every other message gets its room's next sequence number.
// It sets each room's Next and returns the rows to insert, in batch order.
// Plan may be called once.
func (b *Batch) Plan() []Row {
	if b.planned {
		panic("msgbatch: Plan called twice")
	}
	b.planned = true
	for _, r := range b.Rooms {
		r.Next = r.Last
	}
	b.results = make([]result, len(b.msgs))
	// earlier holds, per room, the messages of this batch by key.
	earlier := make(map[*Room]map[Key]int)
	rows := make([]Row, 0, len(b.msgs))
	for i, m := range b.msgs {
		r := b.room[i]
		var k Key
		if m.ClientID != "" {
			k = Key{Sender: m.SenderKey(), ClientID: m.ClientID}
			if s, ok := r.found[k]; ok {
				b.results[i] = result{seq: s.Seq, time: s.Time, text: s.Text, dup: true}
				continue
			}
			if j, ok := earlier[r][k]; ok {
				first := b.results[j]
				b.results[i] = result{seq: first.seq, time: first.time, text: first.text, dup: true}
				continue
			}
		}
		r.Next++
		tm := StoredTime(m.Time)
		b.results[i] = result{seq: r.Next, time: tm, text: m.Text}
		rows = append(rows, Row{Msg: m, Seq: r.Next, SenderKey: m.SenderKey(), Time: tm})
		if m.ClientID != "" {
			if earlier[r] == nil {
				earlier[r] = make(map[Key]int)
			}
			earlier[r][k] = i
		}
	}
	return rows
}

// Apply sets the messages' fields from the plan. Call it only after the
// transaction has committed, so that a failed append changes nothing. A new
// message gets its Seq, its Time as stored (UTC, whole microseconds) and
// Duplicate false; a duplicate gets Duplicate true and the stored message's
// Seq, Time and Text.
func (b *Batch) Apply() {
	if !b.planned {
		panic("msgbatch: Apply before Plan")
	}
	for i, m := range b.msgs {
		res := b.results[i]
		m.Seq, m.Time, m.Duplicate = res.seq, res.time, res.dup
		if res.dup {
			m.Text = res.text
		}
	}
}
