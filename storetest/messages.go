package storetest

import (
	"context"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	chat "github.com/chatd/chat"
)

// base is the time of the tests' first message: not UTC and not a whole
// microsecond, so that the tests see the stores normalise it.
var base = time.Date(2026, 11, 22, 3, 0, 0, 123456789, time.FixedZone("CET", 3600))

// stored returns t as stores keep it: UTC, whole microseconds.
func stored(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// msg returns a message from a guest called user (uid 0) or an account.
func msg(room string, uid int64, user, clientID, text string, tm time.Time) *chat.Message {
	return &chat.Message{Room: room, UserID: uid, User: user, ClientID: clientID, Text: text, Time: tm}
}

func mustAppend(t *testing.T, s chat.Store, msgs ...*chat.Message) {
	t.Helper()
	if err := s.AppendMessages(t.Context(), msgs); err != nil {
		t.Fatalf("AppendMessages: %v", err)
	}
}

// appendN appends n messages to room, one batch, at base + i minutes.
func appendN(t *testing.T, s chat.Store, room string, n int) []*chat.Message {
	t.Helper()
	msgs := make([]*chat.Message, n)
	for i := range msgs {
		msgs[i] = msg(room, 0, "guest-1", "", fmt.Sprintf("%s #%d", room, i+1), base.Add(time.Duration(i)*time.Minute))
	}
	mustAppend(t, s, msgs...)
	return msgs
}

func readAll(t *testing.T, s chat.Store, room string) []*chat.Message {
	t.Helper()
	var all []*chat.Message
	after := int64(0)
	for {
		got, err := s.Messages(t.Context(), room, chat.MessageQuery{After: after, Limit: chat.MaxMessagesQuery})
		if err != nil {
			t.Fatalf("Messages(%s): %v", room, err)
		}
		if len(got) == 0 {
			return all
		}
		all = append(all, got...)
		after = got[len(got)-1].Seq
	}
}

func seqs(msgs []*chat.Message) string {
	s := make([]string, len(msgs))
	for i, m := range msgs {
		s[i] = fmt.Sprint(m.Seq)
	}
	return strings.Join(s, ",")
}

// seqRange returns "from,from+1,...,to".
func seqRange(from, to int64) string {
	var s []string
	for i := from; i <= to; i++ {
		s = append(s, fmt.Sprint(i))
	}
	return strings.Join(s, ",")
}

// sameMessage fails unless got is want as stored and read back.
func sameMessage(t *testing.T, what string, got, want *chat.Message) {
	t.Helper()
	w := *want
	w.Duplicate = false
	if got == nil || *got != w || got.Time.Location() != time.UTC {
		t.Fatalf("%s = %+v, want %+v", what, got, &w)
	}
}

func wantRoomSeq(t *testing.T, s chat.Store, room string, first, last int64) {
	t.Helper()
	f, l, err := s.RoomSeq(t.Context(), room)
	if err != nil || f != first || l != last {
		t.Fatalf("RoomSeq(%s) = %d, %d, %v; want %d, %d", room, f, l, err, first, last)
	}
}

func testAppendMessages(t *testing.T, s chat.Store) {
	ctx := t.Context()
	if err := s.AppendMessages(ctx, nil); err != nil {
		t.Fatalf("AppendMessages(nil): %v", err)
	}
	got, err := s.Messages(ctx, "chat:lobby", chat.MessageQuery{Limit: 10})
	if err != nil || got == nil || len(got) != 0 {
		t.Fatalf("Messages of an unknown room = %v, %v; want an empty, non-nil slice", got, err)
	}
	wantRoomSeq(t, s, "chat:lobby", 0, 0)

	// One batch spanning two rooms, interleaved: each room is numbered in
	// batch order.
	lobby, dm := "chat:lobby", chat.DMRoom(9, 4).Key()
	batch := []*chat.Message{
		msg(lobby, 0, "guest-1a2b", "", "hello", base),
		msg(dm, 4, "alice", "c1", "hi bob — 🎓", base.Add(time.Second)),
		msg(lobby, 7, "bob", "b-1", "hi all", base.Add(2*time.Second)),
		msg(dm, 9, "bob", "", "hi alice\nsecond line", base.Add(3*time.Second)),
		msg(lobby, 0, "guest-1a2b", "", "hello", base.Add(4*time.Second)), // same text, no client id: a new message
	}
	batch[0].Seq, batch[0].Duplicate = 99, true // outputs are overwritten
	mustAppend(t, s, batch...)
	for i, want := range []int64{1, 1, 2, 2, 3} {
		m := batch[i]
		if m.Seq != want || m.Duplicate {
			t.Fatalf("message %d: Seq %d, Duplicate %v; want %d, false", i, m.Seq, m.Duplicate, want)
		}
		if m.Time != stored(base.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("message %d: Time %v, want it as stored (UTC, µs) %v", i, m.Time, stored(base.Add(time.Duration(i)*time.Second)))
		}
	}
	got = readAll(t, s, lobby)
	if seqs(got) != "1,2,3" {
		t.Fatalf("lobby seqs = %s", seqs(got))
	}
	for i, want := range []*chat.Message{batch[0], batch[2], batch[4]} {
		sameMessage(t, fmt.Sprintf("lobby[%d]", i), got[i], want)
	}
	got = readAll(t, s, dm)
	if seqs(got) != "1,2" {
		t.Fatalf("dm seqs = %s", seqs(got))
	}
	sameMessage(t, "dm[0]", got[0], batch[1])
	sameMessage(t, "dm[1]", got[1], batch[3])
	wantRoomSeq(t, s, lobby, 1, 3)
	wantRoomSeq(t, s, dm, 1, 2)

	// Later batches continue the numbering.
	next := msg(lobby, 0, "guest-9", "", "later", base.Add(time.Hour))
	mustAppend(t, s, next)
	if next.Seq != 4 {
		t.Fatalf("next batch got Seq %d, want 4", next.Seq)
	}
	wantRoomSeq(t, s, lobby, 1, 4)
	// A room's key is all that identifies it: "chat:lobby" is not "chat:Lobby".
	other := msg("chat:Lobby", 0, "g", "", "x", base)
	mustAppend(t, s, other)
	if other.Seq != 1 {
		t.Fatalf("chat:Lobby got Seq %d, want 1", other.Seq)
	}
}

func testAppendIdempotent(t *testing.T, s chat.Store) {
	room := "chat:lobby"
	first := msg(room, 7, "bob", "abc", "original", base)
	mustAppend(t, s, first)

	// A retry in a later batch, with other text and time: not stored again,
	// and it gets the stored message's Seq, Time and Text.
	retry := msg(room, 7, "Bobby", "abc", "edited", base.Add(time.Hour))
	mustAppend(t, s, retry)
	if !retry.Duplicate || retry.Seq != first.Seq || retry.Text != "original" || retry.Time != first.Time {
		t.Fatalf("retry = %+v, want a duplicate of %+v", retry, first)
	}
	if retry.User != "Bobby" || retry.UserID != 7 || retry.ClientID != "abc" || retry.Room != room {
		t.Fatalf("duplicate had other fields modified: %+v", retry)
	}

	// Within one batch: the second copy is a duplicate of the first, which
	// is new; senders are told apart by SenderKey.
	batch := []*chat.Message{
		msg(room, 7, "bob", "xyz", "one", base.Add(time.Minute)),                           // 2
		msg(room, 8, "carol", "xyz", "other account", base),                                // 3: another sender
		msg(room, 0, "bob", "xyz", "a guest called bob", base),                             // 4: a guest is not account 7
		msg(room, 0, "bob", "xyz", "the same guest", base.Add(time.Hour)),                  // dup of 4
		msg(room, 7, "bob", "xyz", "two", base.Add(2*time.Minute)),                         // dup of 2
		msg(room, 7, "bob", "abc", "three", base.Add(3*time.Minute)),                       // dup of 1, stored earlier
		msg(room, 0, "guest-2", "", "no id", base),                                         // 5
		msg(room, 0, "guest-2", "", "no id", base),                                         // 6: no client id, never a duplicate
		msg("chat:other", 7, "bob", "xyz", "another room", base),                           // 1 in another room
		msg(room, 9, "dave", strings.Repeat("k", chat.MaxClientIDLen), "longest id", base), // 7
	}
	mustAppend(t, s, batch...)
	want := []struct {
		seq  int64
		dup  bool
		text string
	}{
		{2, false, "one"}, {3, false, "other account"}, {4, false, "a guest called bob"},
		{4, true, "a guest called bob"}, {2, true, "one"}, {1, true, "original"},
		{5, false, "no id"}, {6, false, "no id"}, {1, false, "another room"}, {7, false, "longest id"},
	}
	for i, w := range want {
		m := batch[i]
		if m.Seq != w.seq || m.Duplicate != w.dup || m.Text != w.text {
			t.Fatalf("batch[%d] = seq %d dup %v %q; want seq %d dup %v %q", i, m.Seq, m.Duplicate, m.Text, w.seq, w.dup, w.text)
		}
	}
	if batch[3].Time != batch[2].Time || batch[4].Time != batch[0].Time {
		t.Fatal("an in-batch duplicate did not get the stored message's Time")
	}
	got := readAll(t, s, room)
	if seqs(got) != "1,2,3,4,5,6,7" {
		t.Fatalf("stored seqs = %s, want 1..7", seqs(got))
	}
	sameMessage(t, "stored[0]", got[0], first)
	sameMessage(t, "stored[3]", got[3], batch[2])

	// A batch made only of duplicates stores nothing and keeps the counter.
	again := []*chat.Message{msg(room, 7, "bob", "abc", "x", base), msg(room, 8, "carol", "xyz", "y", base)}
	mustAppend(t, s, again...)
	if again[0].Seq != 1 || again[1].Seq != 3 || !again[0].Duplicate || !again[1].Duplicate {
		t.Fatalf("all-duplicate batch = %+v, %+v", again[0], again[1])
	}
	wantRoomSeq(t, s, room, 1, 7)
	n := msg(room, 0, "g", "", "after", base)
	mustAppend(t, s, n)
	if n.Seq != 8 {
		t.Fatalf("after an all-duplicate batch Seq = %d, want 8", n.Seq)
	}
}

func testAppendInvalid(t *testing.T, s chat.Store) {
	ctx := t.Context()
	room := "chat:lobby"
	valid := func() *chat.Message { return msg(room, 0, "g", "id-1", "ok", base) }
	tests := []struct {
		name string
		bad  *chat.Message
	}{
		{"nil message", nil},
		{"empty room", msg("", 0, "g", "", "x", base)},
		{"empty user", msg(room, 1, "", "", "x", base)},
		{"empty text", msg(room, 0, "g", "", "", base)},
		{"zero time", msg(room, 0, "g", "", "x", time.Time{})},
		{"long client id", msg(room, 0, "g", strings.Repeat("k", chat.MaxClientIDLen+1), "x", base)},
		{"text not UTF-8", msg(room, 0, "g", "", "a\xffb", base)},
		{"NUL in text", msg(room, 0, "g", "", "a\x00b", base)},
		{"user not UTF-8", msg(room, 0, "g\xff", "", "x", base)},
		{"NUL in client id", msg(room, 0, "g", "a\x00", "x", base)},
	}
	for _, tt := range tests {
		v := valid()
		before := *v
		err := s.AppendMessages(ctx, []*chat.Message{v, tt.bad})
		wantCode(t, err, chat.EINVALID, tt.name)
		if *v != before {
			t.Fatalf("%s: the valid message was modified: %+v", tt.name, v)
		}
	}
	wantRoomSeq(t, s, room, 0, 0)
	if got := readAll(t, s, room); len(got) != 0 {
		t.Fatalf("invalid batches stored %d messages", len(got))
	}

	// A batch that fails for another reason (here a cancelled context)
	// changes nothing either.
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	v := valid()
	before := *v
	if err := s.AppendMessages(cctx, []*chat.Message{v}); err == nil {
		t.Fatal("AppendMessages with a cancelled context succeeded")
	}
	if *v != before {
		t.Fatalf("a failed append modified the message: %+v", v)
	}
	wantRoomSeq(t, s, room, 0, 0)
	// The valid message alone still goes in as the first.
	v = valid()
	mustAppend(t, s, v)
	if v.Seq != 1 {
		t.Fatalf("first stored message got Seq %d, want 1", v.Seq)
	}
}

// testAppendConcurrentOneRoom appends to one room from many goroutines, each
// batch followed by a retry of the same batch: every message gets a distinct
// number, the numbers are 1..N without a gap, and every retry finds the
// original's number.
func testAppendConcurrentOneRoom(t *testing.T, s chat.Store) {
	ctx := t.Context()
	room := "chat:busy"
	const workers, batches = 8, 10
	var (
		mu   sync.Mutex
		errs []error
		all  []*chat.Message
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				size := 1 + (w+b)%4
				batch := make([]*chat.Message, size)
				retry := make([]*chat.Message, size)
				for i := range batch {
					id := fmt.Sprintf("w%d-b%d-m%d", w, b, i)
					batch[i] = msg(room, int64(w+1), fmt.Sprint("user", w), id, id, base.Add(time.Duration(b)*time.Second))
					retry[i] = msg(room, int64(w+1), fmt.Sprint("user", w), id, "retry", base.Add(time.Hour))
				}
				err := s.AppendMessages(ctx, batch)
				if err == nil {
					err = s.AppendMessages(ctx, retry)
				}
				for i := 0; err == nil && i < size; i++ {
					if !retry[i].Duplicate || retry[i].Seq != batch[i].Seq || retry[i].Text != batch[i].Text {
						err = fmt.Errorf("retry %+v of %+v is not its duplicate", retry[i], batch[i])
					}
				}
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				}
				all = append(all, batch...)
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Fatal(err)
	}
	n := int64(len(all))
	bySeq := make(map[int64]*chat.Message)
	for _, m := range all {
		if m.Duplicate || m.Seq < 1 || m.Seq > n || bySeq[m.Seq] != nil {
			t.Fatalf("message %q got Seq %d (duplicate %v); want distinct numbers in 1..%d", m.Text, m.Seq, m.Duplicate, n)
		}
		bySeq[m.Seq] = m
	}
	got := readAll(t, s, room)
	if seqs(got) != seqRange(1, n) {
		t.Fatalf("stored seqs = %s, want 1..%d", seqs(got), n)
	}
	for _, g := range got {
		sameMessage(t, fmt.Sprint("stored seq ", g.Seq), g, bySeq[g.Seq])
	}
	wantRoomSeq(t, s, room, 1, n)
}

// testAppendConcurrentRooms runs batches that span the same rooms in
// different orders at once. Stores lock rooms in key order, so none of them
// waits for another in a cycle (PostgreSQL would abort one with a deadlock
// error); every room still ends up numbered without a gap.
func testAppendConcurrentRooms(t *testing.T, s chat.Store) {
	ctx := t.Context()
	rooms := []string{"chat:a", "chat:b", "course:3", "dm:1:2"}
	orders := [][]int{{0, 1}, {1, 0}, {3, 2, 1, 0}, {0, 2, 1, 3}, {2, 0}, {1, 3, 0}}
	const workers, batches = 6, 8
	var (
		mu    sync.Mutex
		errs  []error
		count = make(map[string]int64)
		all   []*chat.Message
	)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for b := range batches {
				order := orders[(w+b)%len(orders)]
				var batch []*chat.Message
				for _, r := range order {
					for i := range 2 {
						batch = append(batch, msg(rooms[r], 0, "g", "", fmt.Sprintf("w%d b%d %d", w, b, i), base))
					}
				}
				err := s.AppendMessages(ctx, batch)
				mu.Lock()
				if err != nil {
					errs = append(errs, err)
				} else {
					for _, m := range batch {
						count[m.Room]++
					}
					all = append(all, batch...)
				}
				mu.Unlock()
				if err != nil {
					return
				}
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		t.Fatal(err)
	}
	for _, room := range rooms {
		got := readAll(t, s, room)
		if seqs(got) != seqRange(1, count[room]) {
			t.Fatalf("%s: stored seqs = %s, want 1..%d", room, seqs(got), count[room])
		}
		wantRoomSeq(t, s, room, 1, count[room])
	}
	// Within a batch a room's messages are numbered in batch order.
	type key struct {
		room string
		seq  int64
	}
	seen := make(map[key]bool)
	for _, m := range all {
		if seen[key{m.Room, m.Seq}] {
			t.Fatalf("two messages got %s seq %d", m.Room, m.Seq)
		}
		seen[key{m.Room, m.Seq}] = true
	}
}

func testMessagesQuery(t *testing.T, s chat.Store) {
	ctx := t.Context()
	room := "chat:q"
	appendN(t, s, room, 10)
	appendN(t, s, "chat:other", 3)
	tests := []struct {
		q    chat.MessageQuery
		want string
	}{
		{chat.MessageQuery{Limit: chat.MaxMessagesQuery}, "1,2,3,4,5,6,7,8,9,10"},
		{chat.MessageQuery{Limit: 1}, "1"},
		{chat.MessageQuery{Limit: 1, Newest: true}, "10"},
		{chat.MessageQuery{After: 3, Limit: 2}, "4,5"},
		{chat.MessageQuery{After: 3, Limit: 2, Newest: true}, "9,10"},
		{chat.MessageQuery{Before: 5, Limit: 10}, "1,2,3,4"},
		{chat.MessageQuery{Before: 5, Limit: 2, Newest: true}, "3,4"},
		{chat.MessageQuery{After: 2, Before: 8, Limit: 3}, "3,4,5"},
		{chat.MessageQuery{After: 2, Before: 8, Limit: 3, Newest: true}, "5,6,7"},
		{chat.MessageQuery{After: 2, Before: 8, Limit: 100, Newest: true}, "3,4,5,6,7"},
		{chat.MessageQuery{After: 9, Limit: 5}, "10"},
		{chat.MessageQuery{After: 10, Limit: 5}, ""},
		{chat.MessageQuery{After: 100, Limit: 5, Newest: true}, ""},
		{chat.MessageQuery{Before: 1, Limit: 5}, ""},
		{chat.MessageQuery{After: 4, Before: 5, Limit: 5}, ""},
		{chat.MessageQuery{After: 6, Before: 3, Limit: 5}, ""},
		{chat.MessageQuery{After: -5, Before: -1, Limit: 3}, "1,2,3"}, // Before <= 0: no upper bound
		{chat.MessageQuery{Before: 11, Limit: 2, Newest: true}, "9,10"},
	}
	for _, tt := range tests {
		got, err := s.Messages(ctx, room, tt.q)
		if err != nil {
			t.Fatalf("Messages(%+v): %v", tt.q, err)
		}
		if got == nil || seqs(got) != tt.want {
			t.Fatalf("Messages(%+v) = %s, want %s", tt.q, seqs(got), tt.want)
		}
		for _, m := range got {
			if m.Room != room || m.Text != fmt.Sprintf("%s #%d", room, m.Seq) || m.Duplicate {
				t.Fatalf("Messages(%+v) returned %+v", tt.q, m)
			}
			if want := stored(base.Add(time.Duration(m.Seq-1) * time.Minute)); m.Time != want {
				t.Fatalf("message %d has Time %v, want %v", m.Seq, m.Time, want)
			}
		}
	}
	for _, limit := range []int{0, -1, chat.MaxMessagesQuery + 1} {
		got, err := s.Messages(ctx, room, chat.MessageQuery{Limit: limit})
		wantCode(t, err, chat.EINVALID, fmt.Sprintf("Messages(limit %d)", limit))
		if got != nil {
			t.Fatalf("Messages(limit %d) returned messages with an error", limit)
		}
	}
	// A full page.
	many := make([]*chat.Message, chat.MaxMessagesQuery+20)
	for i := range many {
		many[i] = msg("chat:big", 0, "g", "", "m", base)
	}
	mustAppend(t, s, many...)
	got, err := s.Messages(ctx, "chat:big", chat.MessageQuery{Limit: chat.MaxMessagesQuery})
	if err != nil || seqs(got) != seqRange(1, chat.MaxMessagesQuery) {
		t.Fatalf("Messages(limit max) = %s, %v; want 1..%d", seqs(got), err, chat.MaxMessagesQuery)
	}
	got, err = s.Messages(ctx, "chat:big", chat.MessageQuery{Limit: chat.MaxMessagesQuery, Newest: true})
	if err != nil || seqs(got) != seqRange(21, int64(len(many))) {
		t.Fatalf("Messages(limit max, newest) = %s, %v; want 21..%d", seqs(got), err, len(many))
	}
}

func testRoomSeqAndPruneAll(t *testing.T, s chat.Store) {
	ctx := t.Context()
	room := "chat:r"
	wantRoomSeq(t, s, room, 0, 0)
	appendN(t, s, room, 5)
	wantRoomSeq(t, s, room, 1, 5)
	// Everything is older than this: the room is emptied, its counter stays.
	n, err := s.PruneMessages(ctx, base.Add(time.Hour), 0)
	if err != nil || n != 5 {
		t.Fatalf("PruneMessages(all) = %d, %v; want 5", n, err)
	}
	wantRoomSeq(t, s, room, 0, 5)
	if got := readAll(t, s, room); len(got) != 0 {
		t.Fatalf("after pruning everything %d messages remain", len(got))
	}
	m := msg(room, 0, "g", "", "after prune", base.Add(2*time.Hour))
	mustAppend(t, s, m)
	if m.Seq != 6 {
		t.Fatalf("after pruning everything the next message got Seq %d, want 6", m.Seq)
	}
	wantRoomSeq(t, s, room, 6, 6)
}

func testPruneMessages(t *testing.T, s chat.Store) {
	ctx := t.Context()
	if n, err := s.PruneMessages(ctx, time.Time{}, 0); err != nil || n != 0 {
		t.Fatalf("PruneMessages on an empty store = %d, %v", n, err)
	}
	appendN(t, s, "chat:a", 10) // times base+0..9 min
	appendN(t, s, "chat:b", 4)  // times base+0..3 min
	appendN(t, s, "chat:c", 2)

	// Nothing to do: no age limit, no count limit.
	if n, err := s.PruneMessages(ctx, time.Time{}, 0); err != nil || n != 0 {
		t.Fatalf("PruneMessages(no limits) = %d, %v; want 0", n, err)
	}
	// Nothing is older than the first message.
	if n, err := s.PruneMessages(ctx, base, 0); err != nil || n != 0 {
		t.Fatalf("PruneMessages(base) = %d, %v; want 0", n, err)
	}
	// By age: created before base+3min, i.e. seq 1..3 of every room.
	n, err := s.PruneMessages(ctx, base.Add(3*time.Minute), 0)
	if err != nil || n != 3+3+2 {
		t.Fatalf("PruneMessages(by age) = %d, %v; want 8", n, err)
	}
	wantRoomSeq(t, s, "chat:a", 4, 10)
	wantRoomSeq(t, s, "chat:b", 4, 4)
	wantRoomSeq(t, s, "chat:c", 0, 2)
	// By count: keep the newest 4 of every room.
	n, err = s.PruneMessages(ctx, time.Time{}, 4)
	if err != nil || n != 3 {
		t.Fatalf("PruneMessages(keep 4) = %d, %v; want 3", n, err)
	}
	wantRoomSeq(t, s, "chat:a", 7, 10)
	wantRoomSeq(t, s, "chat:b", 4, 4)
	if got := readAll(t, s, "chat:a"); seqs(got) != "7,8,9,10" || got[0].Text != "chat:a #7" {
		t.Fatalf("chat:a after pruning = %s", seqs(got))
	}
	// Both at once: whichever deletes more wins, room by room.
	d := make([]*chat.Message, 6)
	for i := range d {
		d[i] = msg("chat:d", 0, "g", "", "d", base.Add(time.Duration(10+i)*time.Minute))
	}
	mustAppend(t, s, d...)
	n, err = s.PruneMessages(ctx, base.Add(8*time.Minute), 5)
	// By age: a's seq 7 and 8 (6 and 7 min; seq 9, at 8 min, is not older)
	// and b's seq 4; by count: d's seq 1.
	if err != nil || n != 2+1+1 {
		t.Fatalf("PruneMessages(age and count) = %d, %v; want 4", n, err)
	}
	wantRoomSeq(t, s, "chat:a", 9, 10)
	wantRoomSeq(t, s, "chat:b", 0, 4)
	wantRoomSeq(t, s, "chat:d", 2, 6)
	// The numbering goes on.
	m := msg("chat:a", 0, "g", "", "new", base)
	mustAppend(t, s, m)
	if m.Seq != 11 {
		t.Fatalf("after pruning the next message got Seq %d, want 11", m.Seq)
	}
}

// testPruneMessagesKeepsRange checks that pruning by age deletes only from
// the old end: an old message that follows a newer one (two processes'
// clocks a little apart) stays, so that a room's stored messages never have
// a hole.
func testPruneMessagesKeepsRange(t *testing.T, s chat.Store) {
	ctx := t.Context()
	room := "chat:skew"
	mins := []int{0, 1, 5, 2, 6, 3} // seq 3 was stamped later than seq 4
	batch := make([]*chat.Message, len(mins))
	for i, m := range mins {
		batch[i] = msg(room, 0, "g", "", fmt.Sprint("m", i+1), base.Add(time.Duration(m)*time.Minute))
	}
	mustAppend(t, s, batch...)
	n, err := s.PruneMessages(ctx, base.Add(4*time.Minute), 0)
	if err != nil || n != 2 {
		t.Fatalf("PruneMessages = %d, %v; want 2 (seq 1 and 2; seq 4 and 6 follow seq 3, which is newer)", n, err)
	}
	if got := readAll(t, s, room); seqs(got) != "3,4,5,6" {
		t.Fatalf("stored seqs after pruning = %s, want 3,4,5,6", seqs(got))
	}
	n, err = s.PruneMessages(ctx, base.Add(6*time.Minute), 0)
	if err != nil || n != 2 {
		t.Fatalf("PruneMessages = %d, %v; want 2 (seq 3 and 4)", n, err)
	}
	wantRoomSeq(t, s, room, 5, 6)
	n, err = s.PruneMessages(ctx, base.Add(7*time.Minute), 0)
	if err != nil || n != 2 {
		t.Fatalf("PruneMessages = %d, %v; want 2 (the rest)", n, err)
	}
	wantRoomSeq(t, s, room, 0, 6)
}

func testDeleteCourseMessages(t *testing.T, s chat.Store) {
	ctx := t.Context()
	owner := mustUser(t, s, "owner")
	c := mustCourse(t, s, "C", owner)
	keep := mustCourse(t, s, "Keep", owner)
	room, keepRoom := chat.CourseRoom(c.ID).Key(), chat.CourseRoomKey(keep.ID)
	appendN(t, s, room, 3)
	appendN(t, s, keepRoom, 2)
	appendN(t, s, "chat:lobby", 2)
	if err := s.DeleteCourse(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if got := readAll(t, s, room); len(got) != 0 {
		t.Fatalf("DeleteCourse left %d messages in its room", len(got))
	}
	wantRoomSeq(t, s, room, 0, 0)
	wantRoomSeq(t, s, keepRoom, 1, 2)
	wantRoomSeq(t, s, "chat:lobby", 1, 2)
	if got := readAll(t, s, keepRoom); seqs(got) != "1,2" {
		t.Fatalf("another course's messages = %s", seqs(got))
	}
	// A failed DeleteCourse deletes nothing.
	wantCode(t, s.DeleteCourse(ctx, keep.ID+1000), chat.ENOTFOUND, "DeleteCourse(missing)")
	wantRoomSeq(t, s, keepRoom, 1, 2)
}

// revocationsAfter returns every revocation after v.
func revocationsAfter(t *testing.T, s chat.Store, v int64) []chat.Revocation {
	t.Helper()
	revs, err := s.Revocations(t.Context(), v, 1000)
	if err != nil {
		t.Fatalf("Revocations(%d): %v", v, err)
	}
	if revs == nil {
		t.Fatalf("Revocations(%d) = nil, want a non-nil slice", v)
	}
	return revs
}

func testRevocationsRecorded(t *testing.T, s chat.Store) {
	ctx := t.Context()
	if v, err := s.RevocationVersion(ctx); err != nil || v != 0 {
		t.Fatalf("RevocationVersion on an empty store = %d, %v; want 0", v, err)
	}
	if revs := revocationsAfter(t, s, 0); len(revs) != 0 {
		t.Fatalf("Revocations on an empty store = %+v", revs)
	}
	owner := mustUser(t, s, "owner")
	alice := mustUser(t, s, "alice")
	bob := mustUser(t, s, "bob")
	c := mustCourse(t, s, "C", owner)
	mustEnroll(t, s, c, alice)
	newSess := func(u *chat.User) *chat.Session {
		t.Helper()
		sess, err := s.CreateSession(ctx, u.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return sess
	}
	a1, a2 := newSess(alice), newSess(alice)
	newSess(alice)
	newSess(bob)

	last := int64(0)
	// step runs do and checks that it recorded exactly want (nil: nothing).
	step := func(what string, do func() error, want *chat.Revocation) {
		t.Helper()
		before := time.Now().UTC().Truncate(time.Microsecond)
		if err := do(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		after := time.Now()
		revs := revocationsAfter(t, s, last)
		if want == nil {
			if len(revs) != 0 {
				t.Fatalf("%s recorded %+v, want nothing", what, revs)
			}
			return
		}
		if len(revs) != 1 {
			t.Fatalf("%s recorded %+v, want one revocation", what, revs)
		}
		r := revs[0]
		if r.Version <= last {
			t.Fatalf("%s: version %d, want > %d", what, r.Version, last)
		}
		if r.Time.Before(before) || r.Time.After(after) || r.Time.Location() != time.UTC {
			t.Fatalf("%s: Time %v, want between %v and %v, in UTC", what, r.Time, before, after)
		}
		w := *want
		w.Version, w.Time = r.Version, r.Time
		if r != w {
			t.Fatalf("%s recorded %+v, want %+v", what, r, w)
		}
		if v, err := s.RevocationVersion(ctx); err != nil || v != r.Version {
			t.Fatalf("%s: RevocationVersion = %d, %v; want %d", what, v, err, r.Version)
		}
		last = r.Version
	}
	fails := func(code string, f func() error) func() error {
		return func() error {
			err := f()
			if chat.ErrorCode(err) != code {
				return fmt.Errorf("error %v, want code %q", err, code)
			}
			return nil
		}
	}

	step("DeleteSession", func() error { return s.DeleteSession(ctx, a1.Token) },
		&chat.Revocation{UserID: alice.ID, SessionID: a1.ID, Reason: "logged out"})
	step("DeleteSession again", func() error { return s.DeleteSession(ctx, a1.Token) }, nil)
	step("DeleteSession(unknown)", func() error { return s.DeleteSession(ctx, "no-such-token") }, nil)
	step("DeleteSession(empty)", func() error { return s.DeleteSession(ctx, "") }, nil)
	step("DeleteUserSessions", func() error { return s.DeleteUserSessions(ctx, alice.ID) },
		&chat.Revocation{UserID: alice.ID, Reason: "signed out everywhere"})
	step("DeleteUserSessions without sessions", func() error { return s.DeleteUserSessions(ctx, alice.ID) }, nil)
	step("DeleteUserSessions(unknown user)", func() error { return s.DeleteUserSessions(ctx, bob.ID+1000) }, nil)
	step("DeleteUserSessions(guest)", func() error { return s.DeleteUserSessions(ctx, 0) }, nil)
	step("DeleteSession of an ended session", func() error { return s.DeleteSession(ctx, a2.Token) }, nil)
	step("CreateSession, Enroll", func() error {
		if _, err := s.CreateSession(ctx, alice.ID, time.Hour); err != nil {
			return err
		}
		return s.Enroll(ctx, c.ID, bob.ID)
	}, nil)
	step("SetPassword", func() error { return s.SetPassword(ctx, alice.ID, "other-hash") }, nil)
	step("DeleteExpiredSessions", func() error { _, err := s.DeleteExpiredSessions(ctx); return err }, nil)
	step("Unenroll", func() error { return s.Unenroll(ctx, c.ID, alice.ID) },
		&chat.Revocation{UserID: alice.ID, CourseID: c.ID, Reason: "no longer enrolled"})
	step("Unenroll again", fails(chat.ENOTFOUND, func() error { return s.Unenroll(ctx, c.ID, alice.ID) }), nil)
	step("SetUserActive(false)", func() error { return s.SetUserActive(ctx, bob.ID, false) },
		&chat.Revocation{UserID: bob.ID, Reason: "account deactivated"})
	step("SetUserActive(false) again", func() error { return s.SetUserActive(ctx, bob.ID, false) }, nil)
	step("SetUserActive(true)", func() error { return s.SetUserActive(ctx, bob.ID, true) }, nil)
	step("SetUserAdmin, RenameCourse", func() error {
		if err := s.SetUserAdmin(ctx, bob.ID, true); err != nil {
			return err
		}
		return s.RenameCourse(ctx, c.ID, "C2")
	}, nil)
	step("DeleteUser(owner of a course)", fails(chat.ECONFLICT, func() error { return s.DeleteUser(ctx, owner.ID) }), nil)
	step("DeleteUser", func() error { return s.DeleteUser(ctx, alice.ID) },
		&chat.Revocation{UserID: alice.ID, Reason: "account deleted"})
	step("DeleteUser again", fails(chat.ENOTFOUND, func() error { return s.DeleteUser(ctx, alice.ID) }), nil)
	step("DeleteCourse", func() error { return s.DeleteCourse(ctx, c.ID) },
		&chat.Revocation{CourseID: c.ID, Reason: "course deleted"})
	step("DeleteCourse again", fails(chat.ENOTFOUND, func() error { return s.DeleteCourse(ctx, c.ID) }), nil)
	// Deleting the course removed bob's enrollment with it: that is the
	// course's revocation, not one per student.
	if revs := revocationsAfter(t, s, 0); len(revs) != 6 {
		t.Fatalf("%d revocations in all, want 6: %+v", len(revs), revs)
	}
}

func testRevocationsPaging(t *testing.T, s chat.Store) {
	ctx := t.Context()
	owner := mustUser(t, s, "owner")
	stu := mustUser(t, s, "stu")
	c := mustCourse(t, s, "C", owner)
	for range 5 {
		mustEnroll(t, s, c, stu)
		if err := s.Unenroll(ctx, c.ID, stu.ID); err != nil {
			t.Fatal(err)
		}
	}
	all := revocationsAfter(t, s, 0)
	if len(all) != 5 {
		t.Fatalf("%d revocations, want 5", len(all))
	}
	for i := 1; i < len(all); i++ {
		if all[i].Version <= all[i-1].Version {
			t.Fatalf("versions not increasing: %+v", all)
		}
	}
	page := func(after int64, limit int) []chat.Revocation {
		t.Helper()
		revs, err := s.Revocations(ctx, after, limit)
		if err != nil {
			t.Fatalf("Revocations(%d, %d): %v", after, limit, err)
		}
		return revs
	}
	if got := page(0, 2); len(got) != 2 || got[0] != all[0] || got[1] != all[1] {
		t.Fatalf("first page = %+v", got)
	}
	if got := page(all[1].Version, 2); len(got) != 2 || got[0] != all[2] || got[1] != all[3] {
		t.Fatalf("second page = %+v", got)
	}
	if got := page(all[3].Version, 2); len(got) != 1 || got[0] != all[4] {
		t.Fatalf("last page = %+v", got)
	}
	if got := page(all[4].Version, 2); got == nil || len(got) != 0 {
		t.Fatalf("page after the newest = %+v, want empty", got)
	}
	if got := page(all[0].Version, 1); len(got) != 1 || got[0] != all[1] {
		t.Fatalf("page of one = %+v", got)
	}
	if got := page(-1, 100); len(got) != 5 {
		t.Fatalf("Revocations(-1) = %d, want 5", len(got))
	}
	for _, limit := range []int{0, -1} {
		revs, err := s.Revocations(ctx, 0, limit)
		wantCode(t, err, chat.EINVALID, fmt.Sprintf("Revocations(limit %d)", limit))
		if revs != nil {
			t.Fatal("Revocations returned revocations with an error")
		}
	}
	if v, err := s.RevocationVersion(ctx); err != nil || v != all[4].Version {
		t.Fatalf("RevocationVersion = %d, %v; want %d", v, err, all[4].Version)
	}
}

func testPruneRevocations(t *testing.T, s chat.Store) {
	ctx := t.Context()
	if n, err := s.PruneRevocations(ctx, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil || n != 0 {
		t.Fatalf("PruneRevocations on an empty store = %d, %v", n, err)
	}
	owner := mustUser(t, s, "owner")
	stu := mustUser(t, s, "stu")
	c := mustCourse(t, s, "C", owner)
	for range 4 {
		mustEnroll(t, s, c, stu)
		if err := s.Unenroll(ctx, c.ID, stu.ID); err != nil {
			t.Fatal(err)
		}
	}
	all := revocationsAfter(t, s, 0)
	newest := all[len(all)-1]
	for _, cutoff := range []time.Time{{}, all[0].Time} {
		if n, err := s.PruneRevocations(ctx, cutoff); err != nil || n != 0 {
			t.Fatalf("PruneRevocations(%v) = %d, %v; want 0", cutoff, n, err)
		}
	}
	// Up to the third one's time: exactly the ones recorded before it go.
	cutoff := all[2].Time
	var want []chat.Revocation
	for _, r := range all {
		if !r.Time.Before(cutoff) {
			want = append(want, r)
		}
	}
	n, err := s.PruneRevocations(ctx, cutoff)
	if err != nil || n != int64(len(all)-len(want)) {
		t.Fatalf("PruneRevocations(third) = %d, %v; want %d", n, err, len(all)-len(want))
	}
	if got := revocationsAfter(t, s, 0); !slices.Equal(got, want) {
		t.Fatalf("after pruning: %+v, want %+v", got, want)
	}
	// Everything is old now, but the newest stays, and so does the version.
	if _, err := s.PruneRevocations(ctx, time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)); err != nil {
		t.Fatal(err)
	}
	if got := revocationsAfter(t, s, 0); len(got) != 1 || got[0] != newest {
		t.Fatalf("after pruning everything: %+v, want only the newest %+v", got, newest)
	}
	if v, err := s.RevocationVersion(ctx); err != nil || v != newest.Version {
		t.Fatalf("RevocationVersion after pruning = %d, %v; want %d", v, err, newest.Version)
	}
	// New revocations continue above it.
	mustEnroll(t, s, c, stu)
	if err := s.Unenroll(ctx, c.ID, stu.ID); err != nil {
		t.Fatal(err)
	}
	if got := revocationsAfter(t, s, newest.Version); len(got) != 1 || got[0].Version <= newest.Version {
		t.Fatalf("revocation after pruning = %+v, want a version above %d", got, newest.Version)
	}
}

var hex32 = regexp.MustCompile(`^[0-9a-f]{32}$`)

func testDeploymentID(t *testing.T, s chat.Store) {
	ctx := t.Context()
	// Concurrent first calls agree.
	const n = 8
	ids := make([]string, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { ids[i], errs[i] = s.DeploymentID(ctx) })
	}
	wg.Wait()
	for i := range n {
		if errs[i] != nil {
			t.Fatalf("DeploymentID: %v", errs[i])
		}
		if ids[i] != ids[0] {
			t.Fatalf("concurrent DeploymentID calls returned %q and %q", ids[0], ids[i])
		}
	}
	if !hex32.MatchString(ids[0]) {
		t.Fatalf("DeploymentID = %q, want 32 lower-case hex characters", ids[0])
	}
	if id, err := s.DeploymentID(ctx); err != nil || id != ids[0] {
		t.Fatalf("DeploymentID again = %q, %v; want %q", id, err, ids[0])
	}
}

// testDeploymentIDDiffers checks that two databases get different ids.
func testDeploymentIDDiffers(t *testing.T, newStore NewStore) {
	a, err := newStore(t).DeploymentID(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	b, err := newStore(t).DeploymentID(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two databases share the deployment id %q", a)
	}
}
