package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"

	chat "github.com/chatd/chat"
)

// Display names and read positions (migration 0004).

func testDisplayNames(t *testing.T, s chat.Store) {
	ctx := t.Context()
	alice := mustUser(t, s, "alice")
	if err := s.SetDisplayName(ctx, alice.ID, "  Alice Liddell "); err != nil {
		t.Fatalf("SetDisplayName: %v", err)
	}
	got, err := s.UserByID(ctx, alice.ID)
	if err != nil || got.DisplayName != "Alice Liddell" {
		t.Fatalf("after SetDisplayName: %+v, %v; want the name trimmed", got, err)
	}
	wantCode(t, s.SetDisplayName(ctx, alice.ID, "a\x01b"), chat.EINVALID, "control character")
	wantCode(t, s.SetDisplayName(ctx, alice.ID, "evil\u202Eeman"), chat.EINVALID, "direction override")
	wantCode(t, s.SetDisplayName(ctx, alice.ID, strings.Repeat("x", chat.MaxDisplayNameLen+1)), chat.EINVALID, "too long")
	wantCode(t, s.SetDisplayName(ctx, alice.ID+1000, "Nobody"), chat.ENOTFOUND, "unknown user")

	// A message keeps the name it was written under; a rename changes only
	// later messages. An empty name is stored as empty.
	room := "chat:names"
	first := &chat.Message{Room: room, UserID: alice.ID, User: "alice", Name: "Alice Liddell", Text: "before", Time: base}
	guest := &chat.Message{Room: room, User: "guest-0a1b2c3d4e", Name: "Pablo 🎓", Text: "hola", Time: base.Add(time.Second)}
	plain := &chat.Message{Room: room, User: "guest-ffffffffff", Text: "no name", Time: base.Add(2 * time.Second)}
	mustAppend(t, s, first, guest, plain)
	if err := s.SetDisplayName(ctx, alice.ID, "Alice L."); err != nil {
		t.Fatal(err)
	}
	later := &chat.Message{Room: room, UserID: alice.ID, User: "alice", Name: "Alice L.", Text: "after", Time: base.Add(3 * time.Second)}
	mustAppend(t, s, later)
	all := readAll(t, s, room)
	if len(all) != 4 {
		t.Fatalf("read %d messages, want 4", len(all))
	}
	for i, want := range []*chat.Message{first, guest, plain, later} {
		sameMessage(t, fmt.Sprintf("names[%d]", i), all[i], want)
	}
	bad := &chat.Message{Room: room, User: "g", Name: "a\x00b", Text: "x", Time: base}
	wantCode(t, s.AppendMessages(ctx, []*chat.Message{bad}), chat.EINVALID, "a name with NUL")
}

// reads returns "room:lastRead/lastSeq/unread" for each RoomRead, in order.
func reads(rs []chat.RoomRead) string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = fmt.Sprintf("%s:%d/%d/%d", r.Room, r.LastRead, r.LastSeq, r.Unread)
	}
	return strings.Join(out, " ")
}

func mustRoomReads(t *testing.T, s chat.Store, u *chat.User, also ...string) []chat.RoomRead {
	t.Helper()
	rs, err := s.RoomReads(t.Context(), u.ID, also)
	if err != nil {
		t.Fatalf("RoomReads(%s): %v", u.Username, err)
	}
	return rs
}

func mustMarkRead(t *testing.T, s chat.Store, u *chat.User, room string, seq int64, at time.Time) {
	t.Helper()
	if err := s.MarkRead(t.Context(), u.ID, room, seq, at); err != nil {
		t.Fatalf("MarkRead(%s, %s, %d): %v", u.Username, room, seq, err)
	}
}

func testReadPositions(t *testing.T, s chat.Store) {
	ctx := t.Context()
	alice, bob, carol := mustUser(t, s, "alice"), mustUser(t, s, "bob"), mustUser(t, s, "carol")
	if rs := mustRoomReads(t, s, alice); len(rs) != 0 {
		t.Fatalf("a new user's rooms: %s", reads(rs))
	}
	wantCode(t, s.MarkRead(ctx, 0, "chat:lobby", 1, base), chat.EINVALID, "a guest")
	wantCode(t, s.MarkRead(ctx, alice.ID, "", 1, base), chat.EINVALID, "no room")
	wantCode(t, s.MarkRead(ctx, alice.ID, "chat:lobby", -1, base), chat.EINVALID, "negative seq")
	wantCode(t, s.MarkRead(ctx, carol.ID+1000, "chat:lobby", 1, base), chat.ENOTFOUND, "unknown user")

	// The lobby: three messages by others, one by alice.
	lobby := "chat:lobby"
	mustAppend(t, s,
		msg(lobby, bob.ID, "bob", "", "1", base),
		msg(lobby, 0, "guest-1", "", "2", base.Add(time.Second)),
		msg(lobby, alice.ID, "alice", "", "3", base.Add(2*time.Second)),
		msg(lobby, bob.ID, "bob", "", "4", base.Add(3*time.Second)),
	)
	// A room read before its first message is listed with no counts.
	mustMarkRead(t, s, alice, "chat:empty", 0, base)
	mustMarkRead(t, s, alice, lobby, 2, base.Add(time.Minute))
	rs := mustRoomReads(t, s, alice)
	if got, want := reads(rs), "chat:lobby:2/4/1 chat:empty:0/0/0"; got != want {
		t.Fatalf("RoomReads = %s, want %s (most recently read first; alice's own message 3 is not unread)", got, want)
	}
	if !rs[0].ReadAt.Equal(stored(base.Add(time.Minute))) || rs[0].ReadAt.Location() != time.UTC ||
		!rs[0].LastAt.Equal(stored(base.Add(3*time.Second))) || !rs[1].LastAt.IsZero() {
		t.Fatalf("times: %+v", rs)
	}
	// The position only moves forward; the visit time always.
	mustMarkRead(t, s, alice, lobby, 1, base.Add(2*time.Minute))
	mustMarkRead(t, s, alice, "chat:empty", 0, base.Add(3*time.Minute))
	if got, want := reads(mustRoomReads(t, s, alice)), "chat:empty:0/0/0 chat:lobby:2/4/1"; got != want {
		t.Fatalf("after going back: %s, want %s", got, want)
	}
	mustMarkRead(t, s, alice, lobby, 4, base.Add(4*time.Minute))
	if got, want := reads(mustRoomReads(t, s, alice)), "chat:lobby:4/4/0 chat:empty:0/0/0"; got != want {
		t.Fatalf("after reading all: %s, want %s", got, want)
	}

	// Private rooms are found without a read position, for both people,
	// and never for a third; also adds rooms once each.
	ab, bc := chat.DMRoom(alice.ID, bob.ID).Key(), chat.DMRoom(bob.ID, carol.ID).Key()
	mustAppend(t, s, msg(ab, alice.ID, "alice", "", "hi bob", base), msg(ab, alice.ID, "alice", "", "are you there?", base.Add(time.Second)))
	mustAppend(t, s, msg(bc, carol.ID, "carol", "", "hi bob, carol here", base))
	course := chat.CourseRoomKey(99)
	got := reads(mustRoomReads(t, s, bob, course, ab, course))
	if want := sortedReads(ab+":0/2/2", bc+":0/1/1", course+":0/0/0"); got != want {
		t.Fatalf("bob's rooms: %s, want %s", got, want)
	}
	if got, want := reads(mustRoomReads(t, s, carol)), bc+":0/1/0"; got != want {
		t.Fatalf("carol's rooms: %s, want %s (not alice and bob's)", got, want)
	}
	mustMarkRead(t, s, bob, ab, 2, base.Add(time.Hour))
	if got, want := reads(mustRoomReads(t, s, bob))[:len(ab)+6], ab+":2/2/0"; got != want {
		t.Fatalf("bob after reading alice's messages: %s, want it first with %s", got, want)
	}

	// Counts stop at MaxUnread.
	big := "chat:busy"
	msgs := make([]*chat.Message, chat.MaxUnread+5)
	for i := range msgs {
		msgs[i] = msg(big, 0, "guest-2", "", fmt.Sprint(i), base)
	}
	mustAppend(t, s, msgs...)
	found := false
	for _, r := range mustRoomReads(t, s, carol, big) {
		if r.Room == big {
			found = true
			if r.Unread != chat.MaxUnread || r.LastSeq != int64(len(msgs)) {
				t.Fatalf("busy room: %+v, want Unread %d", r, chat.MaxUnread)
			}
		}
	}
	if !found {
		t.Fatalf("the busy room given in also is not listed")
	}

	// A deleted course takes its read positions along; a deleted user
	// theirs.
	c := mustCourse(t, s, "Django", carol)
	mustMarkRead(t, s, carol, chat.CourseRoomKey(c.ID), 0, base)
	if err := s.DeleteCourse(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	for _, r := range mustRoomReads(t, s, carol) {
		if r.Room == chat.CourseRoomKey(c.ID) {
			t.Fatalf("the deleted course's room is still listed: %s", reads(mustRoomReads(t, s, carol)))
		}
	}
	mustMarkRead(t, s, carol, lobby, 1, base)
	if err := s.DeleteUser(ctx, carol.ID); err != nil {
		t.Fatal(err)
	}
	carol2 := mustUser(t, s, "carol2")
	if rs := mustRoomReads(t, s, carol2); len(rs) != 0 {
		t.Fatalf("a new user's rooms: %s", reads(rs))
	}
}

// sortedReads joins entries ordered by room key, as RoomReads lists rooms
// that were never read.
func sortedReads(entries ...string) string {
	for i := range entries {
		for j := i + 1; j < len(entries); j++ {
			if entries[j] < entries[i] {
				entries[i], entries[j] = entries[j], entries[i]
			}
		}
	}
	return strings.Join(entries, " ")
}
