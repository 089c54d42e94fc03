// Package storetest is the conformance suite for chat.Store implementations.
// Every store (sqlite, postgres) runs it, so they behave the same:
//
//	func TestConformance(t *testing.T) {
//		storetest.Run(t, func(t *testing.T) chat.Store { ... })
//	}
//
// The factory must return a new, empty store each time it is called and
// close it with t.Cleanup. Subtests run in parallel, each on its own store.
package storetest

import (
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	chat "github.com/chatd/chat"
)

// NewStore returns a new, empty store and registers its Close with t.Cleanup.
type NewStore func(t *testing.T) chat.Store

// Run runs the whole suite against newStore.
func Run(t *testing.T, newStore NewStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s chat.Store)
	}{
		{"CreateUserAndGet", testCreateUser},
		{"CreateUserInvalid", testCreateUserInvalid},
		{"UsernamesUniqueIgnoringCase", testUsernameUnique},
		{"ConcurrentCreateUserSameName", testConcurrentCreateUser},
		{"UserNotFound", testUserNotFound},
		{"ListUsersOrder", testListUsers},
		{"ListUsersPages", testListUsersPage},
		{"PasswordHash", testPasswordHash},
		{"DeleteUser", testDeleteUser},
		{"CreateSessionAndLookup", testSession},
		{"CreateSessionInvalid", testSessionInvalid},
		{"UnknownSessionTokens", testSessionUnknown},
		{"SessionExpiry", testSessionExpiry},
		{"DeleteSessions", testDeleteSessions},
		{"CreateCourseAndGet", testCreateCourse},
		{"CreateCourseInvalid", testCreateCourseInvalid},
		{"ListCoursesAndCoursesForUser", testListCourses},
		{"EnrollUnenroll", testEnroll},
		{"EnrollErrors", testEnrollErrors},
		{"CourseMembers", testCourseMembers},
		{"CanEnterCourse", testCanEnterCourse},
		{"DeleteCourseCascades", testDeleteCourse},
		{"ConcurrentEnroll", testConcurrentEnroll},
		{"AppendMessages", testAppendMessages},
		{"AppendMessagesIdempotent", testAppendIdempotent},
		{"AppendMessagesInvalid", testAppendInvalid},
		{"AppendMessagesConcurrentOneRoom", testAppendConcurrentOneRoom},
		{"AppendMessagesConcurrentRooms", testAppendConcurrentRooms},
		{"MessagesQuery", testMessagesQuery},
		{"RoomSeqAfterPruningAll", testRoomSeqAndPruneAll},
		{"PruneMessages", testPruneMessages},
		{"PruneMessagesKeepsRange", testPruneMessagesKeepsRange},
		{"DeleteCourseDeletesItsMessages", testDeleteCourseMessages},
		{"RevocationsRecorded", testRevocationsRecorded},
		{"RevocationsPaging", testRevocationsPaging},
		{"PruneRevocations", testPruneRevocations},
		{"DeploymentID", testDeploymentID},
		{"DeactivateUser", testDeactivateUser},
		{"DeactivateRacesLogin", testDeactivateRacesLogin},
		{"SetUserAdmin", testSetUserAdmin},
		{"RenameCourse", testRenameCourse},
		{"APIKeys", testAPIKeys},
		{"APIKeysInvalid", testAPIKeysInvalid},
		{"DisplayNames", testDisplayNames},
		{"ReadPositions", testReadPositions},
		{"Close", testClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tt.fn(t, newStore(t))
		})
	}
	t.Run("DeploymentIDDiffers", func(t *testing.T) {
		t.Parallel()
		testDeploymentIDDiffers(t, newStore)
	})
}

// hash is a stand-in password hash: the store keeps it as an opaque string.
const hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0c2FsdA$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2U"

func wantCode(t *testing.T, err error, code string, what string) {
	t.Helper()
	if got := chat.ErrorCode(err); got != code {
		t.Fatalf("%s: error %v (code %q), want code %q", what, err, got, code)
	}
	var e *chat.Error
	if code != "" && code != chat.EINTERNAL && (!errors.As(err, &e) || e.Message == "") {
		t.Fatalf("%s: error %v is not a *chat.Error with a message", what, err)
	}
}

func mustUser(t *testing.T, s chat.Store, username string) *chat.User {
	t.Helper()
	u := &chat.User{Username: username, DisplayName: "User " + username}
	if err := s.CreateUser(t.Context(), u, hash); err != nil {
		t.Fatalf("CreateUser(%q): %v", username, err)
	}
	return u
}

func mustCourse(t *testing.T, s chat.Store, title string, owner *chat.User) *chat.Course {
	t.Helper()
	c := &chat.Course{Title: title, OwnerID: owner.ID}
	if err := s.CreateCourse(t.Context(), c); err != nil {
		t.Fatalf("CreateCourse(%q): %v", title, err)
	}
	return c
}

func mustEnroll(t *testing.T, s chat.Store, c *chat.Course, u *chat.User) {
	t.Helper()
	if err := s.Enroll(t.Context(), c.ID, u.ID); err != nil {
		t.Fatalf("Enroll(%d, %s): %v", c.ID, u.Username, err)
	}
}

func usernames(us []*chat.User) string {
	names := make([]string, len(us))
	for i, u := range us {
		names[i] = u.Username
	}
	return strings.Join(names, ",")
}

func courseIDs(cs []*chat.Course) string {
	ids := make([]string, len(cs))
	for i, c := range cs {
		ids[i] = fmt.Sprint(c.ID)
	}
	return strings.Join(ids, ",")
}

func sameUser(t *testing.T, what string, got, want *chat.User) {
	t.Helper()
	if got == nil || *got != *want {
		t.Fatalf("%s = %+v, want %+v", what, got, want)
	}
}

func sameCourse(t *testing.T, what string, got, want *chat.Course) {
	t.Helper()
	if got == nil || got.ID != want.ID || got.Title != want.Title || got.OwnerID != want.OwnerID ||
		got.OwnerUsername != want.OwnerUsername || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("%s = %+v, want %+v", what, got, want)
	}
}

// recent fails unless tm is within a minute of now and in UTC.
func recent(t *testing.T, what string, tm time.Time) {
	t.Helper()
	if d := time.Since(tm); d < -time.Minute || d > time.Minute || tm.Location() != time.UTC {
		t.Fatalf("%s = %v, want about now, in UTC", what, tm)
	}
}

func testCreateUser(t *testing.T, s chat.Store) {
	ctx := t.Context()
	u := &chat.User{Username: "Alice", DisplayName: "Alice Liddell — élève 🎓", IsAdmin: true}
	if err := s.CreateUser(ctx, u, hash); err != nil {
		t.Fatal(err)
	}
	if u.ID <= 0 {
		t.Fatalf("CreateUser set ID %d, want > 0", u.ID)
	}
	v := &chat.User{Username: "bob"}
	if err := s.CreateUser(ctx, v, hash); err != nil {
		t.Fatal(err)
	}
	if v.ID == u.ID || v.ID <= 0 {
		t.Fatalf("second user got ID %d (first %d)", v.ID, u.ID)
	}
	if v.Guest() || u.Guest() {
		t.Fatal("a stored user reports Guest")
	}
	got, err := s.UserByID(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameUser(t, "UserByID", got, u)
	for _, name := range []string{"Alice", "alice", "ALICE", "aLiCe"} {
		got, err = s.UserByUsername(ctx, name)
		if err != nil {
			t.Fatalf("UserByUsername(%q): %v", name, err)
		}
		sameUser(t, "UserByUsername("+name+")", got, u)
	}
	got, err = s.UserByUsername(ctx, "BOB")
	if err != nil {
		t.Fatal(err)
	}
	sameUser(t, "UserByUsername(BOB)", got, v) // empty display name, not admin
}

func testCreateUserInvalid(t *testing.T, s chat.Store) {
	ctx := t.Context()
	tests := []struct {
		name string
		user *chat.User
		hash string
	}{
		{"nil user", nil, hash},
		{"empty username", &chat.User{}, hash},
		{"space", &chat.User{Username: "alice smith"}, hash},
		{"slash", &chat.User{Username: "a/b"}, hash},
		{"dots", &chat.User{Username: ".."}, hash},
		{"too long", &chat.User{Username: strings.Repeat("a", chat.MaxUsernameLen+1)}, hash},
		{"bad utf-8", &chat.User{Username: "a\xff"}, hash},
		{"control in display name", &chat.User{Username: "alice", DisplayName: "A\nB"}, hash},
		{"long display name", &chat.User{Username: "alice", DisplayName: strings.Repeat("x", chat.MaxDisplayNameLen+1)}, hash},
		{"empty hash", &chat.User{Username: "alice"}, ""},
	}
	for _, tt := range tests {
		err := s.CreateUser(ctx, tt.user, tt.hash)
		wantCode(t, err, chat.EINVALID, tt.name)
		if tt.user != nil && tt.user.ID != 0 {
			t.Fatalf("%s: ID set to %d on failure", tt.name, tt.user.ID)
		}
	}
	users, err := s.ListUsers(ctx)
	if err != nil || len(users) != 0 {
		t.Fatalf("after invalid creates ListUsers = %s, %v; want none", usernames(users), err)
	}
	// The longest valid name is accepted.
	long := &chat.User{Username: strings.Repeat("é", chat.MaxUsernameLen), DisplayName: strings.Repeat("x", chat.MaxDisplayNameLen)}
	if err := s.CreateUser(ctx, long, hash); err != nil {
		t.Fatalf("CreateUser(longest valid name): %v", err)
	}
}

func testUsernameUnique(t *testing.T, s chat.Store) {
	ctx := t.Context()
	first := mustUser(t, s, "Kate")
	for _, name := range []string{"Kate", "kate", "KATE", "kAtE"} {
		u := &chat.User{Username: name}
		err := s.CreateUser(ctx, u, hash)
		wantCode(t, err, chat.ECONFLICT, "CreateUser("+name+")")
		if u.ID != 0 {
			t.Fatalf("CreateUser(%q) set ID %d on conflict", name, u.ID)
		}
	}
	got, err := s.UserByUsername(ctx, "kATE")
	if err != nil {
		t.Fatal(err)
	}
	sameUser(t, "UserByUsername", got, first) // spelling kept as first given
	mustUser(t, s, "Kate2")                   // a different name is fine
	// Look-alikes are the same name (chat.UsernameKey): digit zero for o.
	bob := mustUser(t, s, "bob")
	wantCode(t, s.CreateUser(ctx, &chat.User{Username: "B0B"}, hash), chat.ECONFLICT, "CreateUser(B0B)")
	if got, err := s.UserByUsername(ctx, "b0b"); err != nil || got.ID != bob.ID {
		t.Fatalf("UserByUsername(b0b) = %v, %v; want bob", got, err)
	}
	users, _ := s.ListUsers(ctx)
	if usernames(users) != "bob,Kate,Kate2" {
		t.Fatalf("ListUsers = %s, want bob,Kate,Kate2", usernames(users))
	}
}

func testConcurrentCreateUser(t *testing.T, s chat.Store) {
	ctx := t.Context()
	const n = 16
	var (
		wg        sync.WaitGroup
		mu        sync.Mutex
		won       []*chat.User
		conflicts int
		others    []error
	)
	for i := range n {
		wg.Go(func() {
			name := "racer"
			if i%2 == 1 {
				name = "RACER"
			}
			u := &chat.User{Username: name}
			err := s.CreateUser(ctx, u, hash)
			mu.Lock()
			defer mu.Unlock()
			switch chat.ErrorCode(err) {
			case "":
				won = append(won, u)
			case chat.ECONFLICT:
				conflicts++
			default:
				others = append(others, err)
			}
		})
	}
	wg.Wait()
	if len(won) != 1 || conflicts != n-1 || len(others) != 0 {
		t.Fatalf("%d winners, %d conflicts, other errors %v; want 1, %d, none", len(won), conflicts, others, n-1)
	}
	users, err := s.ListUsers(ctx)
	if err != nil || len(users) != 1 || users[0].ID != won[0].ID {
		t.Fatalf("ListUsers = %s, %v; want only the winner", usernames(users), err)
	}
}

func testUserNotFound(t *testing.T, s chat.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	_, err := s.UserByID(ctx, u.ID+1000)
	wantCode(t, err, chat.ENOTFOUND, "UserByID(missing)")
	_, err = s.UserByID(ctx, 0)
	wantCode(t, err, chat.ENOTFOUND, "UserByID(0)")
	_, err = s.UserByUsername(ctx, "alicia")
	wantCode(t, err, chat.ENOTFOUND, "UserByUsername(missing)")
	_, err = s.UserByUsername(ctx, "")
	wantCode(t, err, chat.ENOTFOUND, "UserByUsername(empty)")
	_, err = s.UserByUsername(ctx, "alice%")
	wantCode(t, err, chat.ENOTFOUND, "UserByUsername(pattern)")
	_, _, err = s.UserPasswordHash(ctx, "nobody")
	wantCode(t, err, chat.ENOTFOUND, "UserPasswordHash(missing)")
}

func testListUsers(t *testing.T, s chat.Store) {
	ctx := t.Context()
	users, err := s.ListUsers(ctx)
	if err != nil || users == nil || len(users) != 0 {
		t.Fatalf("ListUsers on an empty store = %v, %v; want an empty, non-nil slice", users, err)
	}
	for _, name := range []string{"carol", "Bob", "alice", "Dave", "émile", "_x", "9lives"} {
		mustUser(t, s, name)
	}
	users, err = s.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Ordered by case-folded username, compared byte by byte (code point
	// order), identically on every store whatever its collation.
	if got, want := usernames(users), "9lives,_x,alice,Bob,carol,Dave,émile"; got != want {
		t.Fatalf("ListUsers = %s, want %s", got, want)
	}
	if users[2].DisplayName != "User alice" {
		t.Fatalf("ListUsers lost the display name: %+v", users[2])
	}
}

func testListUsersPage(t *testing.T, s chat.Store) {
	ctx := t.Context()
	if users, err := s.ListUsersPage(ctx, "", 10); err != nil || users == nil || len(users) != 0 {
		t.Fatalf("ListUsersPage on an empty store = %v, %v; want an empty, non-nil slice", users, err)
	}
	for _, name := range []string{"carol", "Bob", "alice", "Dave", "émile", "_x", "9lives"} {
		mustUser(t, s, name)
	}
	var pages []string
	after := ""
	for {
		users, err := s.ListUsersPage(ctx, after, 3)
		if err != nil {
			t.Fatal(err)
		}
		if len(users) == 0 {
			break
		}
		pages = append(pages, usernames(users))
		after = users[len(users)-1].Username
	}
	// The pages are ListUsers in slices, however the cursor is spelled.
	if got, want := strings.Join(pages, " | "), "9lives,_x,alice | Bob,carol,Dave | émile"; got != want {
		t.Fatalf("pages of 3: %s, want %s", got, want)
	}
	if users, _ := s.ListUsersPage(ctx, "BOB", 2); usernames(users) != "carol,Dave" {
		t.Fatalf("after BOB: %s, want carol,Dave", usernames(users))
	}
	if users, _ := s.ListUsersPage(ctx, "b", 1); usernames(users) != "Bob" {
		t.Fatalf("after a name that is not an account: %s, want Bob", usernames(users))
	}
	if users, err := s.ListUsersPage(ctx, "", 0); err != nil || len(users) != 0 {
		t.Fatalf("limit 0: %v, %v", usernames(users), err)
	}
}

func testPasswordHash(t *testing.T, s chat.Store) {
	ctx := t.Context()
	u := &chat.User{Username: "Alice", DisplayName: "A", IsAdmin: true}
	if err := s.CreateUser(ctx, u, hash); err != nil {
		t.Fatal(err)
	}
	got, h, err := s.UserPasswordHash(ctx, "ALICE")
	if err != nil || h != hash {
		t.Fatalf("UserPasswordHash = %q, %v; want the stored hash", h, err)
	}
	sameUser(t, "UserPasswordHash user", got, u)
	if err := s.SetPassword(ctx, u.ID, "new-hash"); err != nil {
		t.Fatal(err)
	}
	if _, h, _ = s.UserPasswordHash(ctx, "alice"); h != "new-hash" {
		t.Fatalf("after SetPassword hash = %q", h)
	}
	wantCode(t, s.SetPassword(ctx, u.ID, ""), chat.EINVALID, "SetPassword(empty)")
	wantCode(t, s.SetPassword(ctx, u.ID+1000, "x"), chat.ENOTFOUND, "SetPassword(missing user)")
	if _, h, _ = s.UserPasswordHash(ctx, "alice"); h != "new-hash" {
		t.Fatalf("failed SetPassword changed the hash to %q", h)
	}
}

func testDeleteUser(t *testing.T, s chat.Store) {
	ctx := t.Context()
	owner := mustUser(t, s, "owner")
	alice := mustUser(t, s, "alice")
	bob := mustUser(t, s, "bob")
	c := mustCourse(t, s, "Course", owner)
	mustEnroll(t, s, c, alice)
	mustEnroll(t, s, c, bob)
	sess, err := s.CreateSession(ctx, alice.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bobSess, err := s.CreateSession(ctx, bob.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}

	if err := s.DeleteUser(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.UserByID(ctx, alice.ID)
	wantCode(t, err, chat.ENOTFOUND, "UserByID(deleted)")
	_, _, err = s.SessionUser(ctx, sess.Token)
	wantCode(t, err, chat.ENOTFOUND, "SessionUser of a deleted user") // sessions cascade
	members, err := s.CourseMembers(ctx, c.ID)
	if err != nil || usernames(members) != "bob" {
		t.Fatalf("CourseMembers after delete = %s, %v; want bob", usernames(members), err) // enrollments cascade
	}
	if _, _, err := s.SessionUser(ctx, bobSess.Token); err != nil {
		t.Fatalf("another user's session was deleted: %v", err)
	}
	wantCode(t, s.DeleteUser(ctx, alice.ID), chat.ENOTFOUND, "DeleteUser twice")

	// An owner cannot be deleted while they own courses.
	wantCode(t, s.DeleteUser(ctx, owner.ID), chat.ECONFLICT, "DeleteUser(owner)")
	if _, err := s.CourseByID(ctx, c.ID); err != nil {
		t.Fatalf("refused DeleteUser removed the course: %v", err)
	}
	if err := s.DeleteCourse(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, owner.ID); err != nil {
		t.Fatalf("DeleteUser(owner without courses): %v", err)
	}
	// The name is free again and gets a new id.
	again := mustUser(t, s, "ALICE")
	if again.ID == alice.ID {
		t.Fatalf("a deleted user's id %d was reused", alice.ID)
	}
}

func testSession(t *testing.T, s chat.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	other := mustUser(t, s, "bob")
	sess, err := s.CreateSession(ctx, u.ID, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if len(sess.Token) != 43 || strings.ContainsAny(sess.Token, "+/=") {
		t.Fatalf("token %q is not 32 bytes of unpadded URL-safe base64", sess.Token)
	}
	if sess.ID <= 0 || sess.UserID != u.ID {
		t.Fatalf("session = %+v", sess)
	}
	recent(t, "CreatedAt", sess.CreatedAt)
	if d := sess.ExpiresAt.Sub(sess.CreatedAt); d != 2*time.Hour {
		t.Fatalf("ExpiresAt - CreatedAt = %v, want 2h", d)
	}
	sess2, err := s.CreateSession(ctx, u.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if sess2.Token == sess.Token || sess2.ID == sess.ID {
		t.Fatal("two sessions share a token or id")
	}

	gotU, gotS, err := s.SessionUser(ctx, sess.Token)
	if err != nil {
		t.Fatal(err)
	}
	sameUser(t, "SessionUser user", gotU, u)
	if gotS.Token != "" {
		t.Fatal("SessionUser returned the token: the store should not have it")
	}
	if gotS.ID != sess.ID || gotS.UserID != u.ID || !gotS.CreatedAt.Equal(sess.CreatedAt) || !gotS.ExpiresAt.Equal(sess.ExpiresAt) {
		t.Fatalf("SessionUser session = %+v, want %+v", gotS, sess)
	}
	otherSess, err := s.CreateSession(ctx, other.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if gotU, _, err := s.SessionUser(ctx, otherSess.Token); err != nil || gotU.ID != other.ID {
		t.Fatalf("SessionUser(bob's token) = %+v, %v", gotU, err)
	}
}

func testSessionInvalid(t *testing.T, s chat.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	for _, ttl := range []time.Duration{0, -time.Second} {
		sess, err := s.CreateSession(ctx, u.ID, ttl)
		wantCode(t, err, chat.EINVALID, fmt.Sprintf("CreateSession(ttl %v)", ttl))
		if sess != nil {
			t.Fatal("CreateSession returned a session with an error")
		}
	}
	_, err := s.CreateSession(ctx, u.ID+1000, time.Hour)
	wantCode(t, err, chat.ENOTFOUND, "CreateSession(missing user)")
	_, err = s.CreateSession(ctx, 0, time.Hour)
	wantCode(t, err, chat.ENOTFOUND, "CreateSession(guest)")
}

func testSessionUnknown(t *testing.T, s chat.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	sess, err := s.CreateSession(ctx, u.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	other, _, _ := chat.NewSessionToken()
	for _, tok := range []string{"", "x", other, sess.Token[:42], sess.Token + "A", strings.ToUpper(sess.Token),
		string(chat.HashSessionToken(sess.Token))} {
		_, _, err := s.SessionUser(ctx, tok)
		wantCode(t, err, chat.ENOTFOUND, fmt.Sprintf("SessionUser(%q)", tok))
	}
}

func testSessionExpiry(t *testing.T, s chat.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	short1, err := s.CreateSession(ctx, u.ID, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	short2, err := s.CreateSession(ctx, u.ID, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	long, err := s.CreateSession(ctx, u.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// Wait until the short sessions have certainly expired: the deadline is
	// their ExpiresAt, so the outcome does not depend on how long this takes.
	time.Sleep(time.Until(short2.ExpiresAt) + 5*time.Millisecond)
	for _, sess := range []*chat.Session{short1, short2} {
		_, _, err := s.SessionUser(ctx, sess.Token)
		wantCode(t, err, chat.ENOTFOUND, "SessionUser(expired)")
	}
	if _, _, err := s.SessionUser(ctx, long.Token); err != nil {
		t.Fatalf("SessionUser(long-lived): %v", err)
	}
	n, err := s.DeleteExpiredSessions(ctx)
	if err != nil || n != 2 {
		t.Fatalf("DeleteExpiredSessions = %d, %v; want 2", n, err)
	}
	n, err = s.DeleteExpiredSessions(ctx)
	if err != nil || n != 0 {
		t.Fatalf("DeleteExpiredSessions again = %d, %v; want 0", n, err)
	}
	if _, _, err := s.SessionUser(ctx, long.Token); err != nil {
		t.Fatalf("DeleteExpiredSessions removed a live session: %v", err)
	}
}

func testDeleteSessions(t *testing.T, s chat.Store) {
	ctx := t.Context()
	alice := mustUser(t, s, "alice")
	bob := mustUser(t, s, "bob")
	newSess := func(u *chat.User) *chat.Session {
		t.Helper()
		sess, err := s.CreateSession(ctx, u.ID, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return sess
	}
	a1, a2, a3, b1 := newSess(alice), newSess(alice), newSess(alice), newSess(bob)
	live := func(sess *chat.Session, want bool) {
		t.Helper()
		_, _, err := s.SessionUser(ctx, sess.Token)
		if want && err != nil {
			t.Fatalf("session %d: %v, want live", sess.ID, err)
		}
		if !want {
			wantCode(t, err, chat.ENOTFOUND, fmt.Sprintf("session %d", sess.ID))
		}
	}

	if err := s.DeleteSession(ctx, a1.Token); err != nil {
		t.Fatal(err)
	}
	live(a1, false)
	live(a2, true)
	if err := s.DeleteSession(ctx, a1.Token); err != nil {
		t.Fatalf("DeleteSession twice: %v, want nil", err)
	}
	if err := s.DeleteSession(ctx, "no-such-token"); err != nil {
		t.Fatalf("DeleteSession(unknown): %v, want nil", err)
	}

	if err := s.DeleteUserSessions(ctx, alice.ID); err != nil {
		t.Fatal(err)
	}
	live(a2, false)
	live(a3, false)
	live(b1, true)
	if err := s.DeleteUserSessions(ctx, alice.ID); err != nil {
		t.Fatalf("DeleteUserSessions without sessions: %v", err)
	}
	if err := s.DeleteUserSessions(ctx, bob.ID+1000); err != nil {
		t.Fatalf("DeleteUserSessions(unknown user): %v", err)
	}
	// The user can sign in again.
	live(newSess(alice), true)
}

func testCreateCourse(t *testing.T, s chat.Store) {
	ctx := t.Context()
	owner := mustUser(t, s, "Teacher")
	c := &chat.Course{Title: "  Django 101  ", OwnerID: owner.ID}
	if err := s.CreateCourse(ctx, c); err != nil {
		t.Fatal(err)
	}
	if c.ID <= 0 || c.Title != "Django 101" || c.OwnerUsername != "Teacher" {
		t.Fatalf("CreateCourse set %+v, want an id, trimmed title and the owner's username", c)
	}
	recent(t, "CreatedAt", c.CreatedAt)
	got, err := s.CourseByID(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameCourse(t, "CourseByID", got, c)
	d := mustCourse(t, s, "Django 101", owner) // titles need not be unique
	if d.ID == c.ID {
		t.Fatal("two courses share an id")
	}
	_, err = s.CourseByID(ctx, d.ID+1000)
	wantCode(t, err, chat.ENOTFOUND, "CourseByID(missing)")
	_, err = s.CourseByID(ctx, 0)
	wantCode(t, err, chat.ENOTFOUND, "CourseByID(0)")
}

func testCreateCourseInvalid(t *testing.T, s chat.Store) {
	ctx := t.Context()
	owner := mustUser(t, s, "teacher")
	tests := []struct {
		name   string
		course *chat.Course
		code   string
	}{
		{"nil", nil, chat.EINVALID},
		{"empty title", &chat.Course{OwnerID: owner.ID}, chat.EINVALID},
		{"blank title", &chat.Course{Title: " \t ", OwnerID: owner.ID}, chat.EINVALID},
		{"control char", &chat.Course{Title: "a\x00b", OwnerID: owner.ID}, chat.EINVALID},
		{"too long", &chat.Course{Title: strings.Repeat("x", chat.MaxCourseTitleLen+1), OwnerID: owner.ID}, chat.EINVALID},
		{"missing owner", &chat.Course{Title: "T", OwnerID: owner.ID + 1000}, chat.ENOTFOUND},
		{"no owner", &chat.Course{Title: "T"}, chat.ENOTFOUND},
	}
	for _, tt := range tests {
		wantCode(t, s.CreateCourse(ctx, tt.course), tt.code, tt.name)
		if tt.course != nil && tt.course.ID != 0 {
			t.Fatalf("%s: ID set on failure", tt.name)
		}
	}
	if cs, err := s.ListCourses(ctx); err != nil || len(cs) != 0 {
		t.Fatalf("ListCourses after failures = %s, %v; want none", courseIDs(cs), err)
	}
}

func testListCourses(t *testing.T, s chat.Store) {
	ctx := t.Context()
	cs, err := s.ListCourses(ctx)
	if err != nil || cs == nil || len(cs) != 0 {
		t.Fatalf("ListCourses on an empty store = %v, %v; want an empty, non-nil slice", cs, err)
	}
	t1 := mustUser(t, s, "t1")
	t2 := mustUser(t, s, "t2")
	stu := mustUser(t, s, "student")
	nobody := mustUser(t, s, "nobody")
	a := mustCourse(t, s, "Zoology", t1)
	b := mustCourse(t, s, "Algebra", t2)
	c := mustCourse(t, s, "Music", t1)
	mustEnroll(t, s, b, stu)
	mustEnroll(t, s, c, stu)
	mustEnroll(t, s, b, t1) // t1 owns a and c and studies b

	cs, err = s.ListCourses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := courseIDs(cs), courseIDs([]*chat.Course{a, b, c}); got != want {
		t.Fatalf("ListCourses = %s, want %s (by id)", got, want)
	}
	sameCourse(t, "ListCourses[1]", cs[1], b)

	for _, tt := range []struct {
		user *chat.User
		want []*chat.Course
	}{
		{t1, []*chat.Course{a, b, c}},
		{t2, []*chat.Course{b}},
		{stu, []*chat.Course{b, c}},
		{nobody, nil},
		{&chat.User{ID: nobody.ID + 1000}, nil},
		{&chat.User{}, nil},
	} {
		got, err := s.CoursesForUser(ctx, tt.user.ID)
		if err != nil {
			t.Fatalf("CoursesForUser(%d): %v", tt.user.ID, err)
		}
		if got == nil || courseIDs(got) != courseIDs(tt.want) {
			t.Fatalf("CoursesForUser(%s) = %s, want %s", tt.user.Username, courseIDs(got), courseIDs(tt.want))
		}
		for i := range got {
			sameCourse(t, "CoursesForUser", got[i], tt.want[i])
		}
	}
}

func testEnroll(t *testing.T, s chat.Store) {
	ctx := t.Context()
	owner := mustUser(t, s, "owner")
	stu := mustUser(t, s, "stu")
	c := mustCourse(t, s, "C", owner)
	mustEnroll(t, s, c, stu)
	if ok, err := s.CanEnterCourse(ctx, c.ID, stu.ID); !ok || err != nil {
		t.Fatalf("CanEnterCourse after Enroll = %v, %v", ok, err)
	}
	if err := s.Unenroll(ctx, c.ID, stu.ID); err != nil {
		t.Fatal(err)
	}
	if ok, err := s.CanEnterCourse(ctx, c.ID, stu.ID); ok || err != nil {
		t.Fatalf("CanEnterCourse after Unenroll = %v, %v; want false", ok, err)
	}
	mustEnroll(t, s, c, stu) // again after unenrolling
	// The owner may always enter; they are not enrolled as a student.
	wantCode(t, s.Enroll(ctx, c.ID, owner.ID), chat.ECONFLICT, "Enroll(owner)")
	members, err := s.CourseMembers(ctx, c.ID)
	if err != nil || usernames(members) != "stu" {
		t.Fatalf("CourseMembers = %s, %v", usernames(members), err)
	}
}

func testEnrollErrors(t *testing.T, s chat.Store) {
	ctx := t.Context()
	owner := mustUser(t, s, "owner")
	stu := mustUser(t, s, "stu")
	other := mustUser(t, s, "other")
	c := mustCourse(t, s, "C", owner)
	mustEnroll(t, s, c, stu)

	wantCode(t, s.Enroll(ctx, c.ID, stu.ID), chat.ECONFLICT, "Enroll twice")
	wantCode(t, s.Enroll(ctx, c.ID+1000, stu.ID), chat.ENOTFOUND, "Enroll(missing course)")
	wantCode(t, s.Enroll(ctx, c.ID, other.ID+1000), chat.ENOTFOUND, "Enroll(missing user)")
	wantCode(t, s.Enroll(ctx, c.ID, 0), chat.ENOTFOUND, "Enroll(guest)")
	wantCode(t, s.Enroll(ctx, c.ID+1000, other.ID+1000), chat.ENOTFOUND, "Enroll(missing both)")

	wantCode(t, s.Unenroll(ctx, c.ID, other.ID), chat.ENOTFOUND, "Unenroll(not enrolled)")
	wantCode(t, s.Unenroll(ctx, c.ID, owner.ID), chat.ENOTFOUND, "Unenroll(owner, not enrolled)")
	wantCode(t, s.Unenroll(ctx, c.ID+1000, stu.ID), chat.ENOTFOUND, "Unenroll(missing course)")
	wantCode(t, s.Unenroll(ctx, c.ID, other.ID+1000), chat.ENOTFOUND, "Unenroll(missing user)")
	if err := s.Unenroll(ctx, c.ID, stu.ID); err != nil {
		t.Fatal(err)
	}
	wantCode(t, s.Unenroll(ctx, c.ID, stu.ID), chat.ENOTFOUND, "Unenroll twice")

	members, err := s.CourseMembers(ctx, c.ID)
	if err != nil || len(members) != 0 {
		t.Fatalf("CourseMembers after failed enrolls = %s, %v; want none", usernames(members), err)
	}
}

func testCourseMembers(t *testing.T, s chat.Store) {
	ctx := t.Context()
	owner := mustUser(t, s, "owner")
	c := mustCourse(t, s, "C", owner)
	d := mustCourse(t, s, "D", owner)
	members, err := s.CourseMembers(ctx, c.ID)
	if err != nil || members == nil || len(members) != 0 {
		t.Fatalf("CourseMembers of an empty course = %v, %v; want an empty, non-nil slice", members, err)
	}
	var want []*chat.User
	for _, name := range []string{"zed", "Amy", "bob"} {
		u := mustUser(t, s, name)
		mustEnroll(t, s, c, u)
		want = append(want, u)
	}
	mustEnroll(t, s, d, mustUser(t, s, "dora"))
	members, err = s.CourseMembers(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	if usernames(members) != "Amy,bob,zed" {
		t.Fatalf("CourseMembers = %s, want Amy,bob,zed (by username, owner not included)", usernames(members))
	}
	sameUser(t, "CourseMembers[0]", members[0], want[1])
	_, err = s.CourseMembers(ctx, d.ID+1000)
	wantCode(t, err, chat.ENOTFOUND, "CourseMembers(missing course)")
}

func testCanEnterCourse(t *testing.T, s chat.Store) {
	ctx := t.Context()
	owner := mustUser(t, s, "owner")
	stu := mustUser(t, s, "stu")
	outsider := mustUser(t, s, "outsider")
	otherOwner := mustUser(t, s, "otherowner")
	c := mustCourse(t, s, "C", owner)
	d := mustCourse(t, s, "D", otherOwner)
	mustEnroll(t, s, c, stu)
	mustEnroll(t, s, d, outsider)
	tests := []struct {
		name   string
		course int64
		user   int64
		want   bool
	}{
		{"owner", c.ID, owner.ID, true},
		{"enrolled", c.ID, stu.ID, true},
		{"not enrolled", c.ID, outsider.ID, false},
		{"owner of another course", c.ID, otherOwner.ID, false},
		{"enrolled elsewhere only", d.ID, stu.ID, false},
		{"guest", c.ID, 0, false},
		{"unknown user", c.ID, stu.ID + 1000, false},
	}
	for _, tt := range tests {
		got, err := s.CanEnterCourse(ctx, tt.course, tt.user)
		if err != nil || got != tt.want {
			t.Errorf("CanEnterCourse(%s) = %v, %v; want %v", tt.name, got, err, tt.want)
		}
	}
	_, err := s.CanEnterCourse(ctx, d.ID+1000, owner.ID)
	wantCode(t, err, chat.ENOTFOUND, "CanEnterCourse(missing course)")
}

func testDeleteCourse(t *testing.T, s chat.Store) {
	ctx := t.Context()
	owner := mustUser(t, s, "owner")
	stu := mustUser(t, s, "stu")
	c := mustCourse(t, s, "C", owner)
	keep := mustCourse(t, s, "Keep", owner)
	mustEnroll(t, s, c, stu)
	mustEnroll(t, s, keep, stu)

	if err := s.DeleteCourse(ctx, c.ID); err != nil {
		t.Fatal(err)
	}
	_, err := s.CourseByID(ctx, c.ID)
	wantCode(t, err, chat.ENOTFOUND, "CourseByID(deleted)")
	_, err = s.CanEnterCourse(ctx, c.ID, stu.ID)
	wantCode(t, err, chat.ENOTFOUND, "CanEnterCourse(deleted)")
	_, err = s.CourseMembers(ctx, c.ID)
	wantCode(t, err, chat.ENOTFOUND, "CourseMembers(deleted)")
	wantCode(t, s.DeleteCourse(ctx, c.ID), chat.ENOTFOUND, "DeleteCourse twice")
	if cs, err := s.CoursesForUser(ctx, stu.ID); err != nil || courseIDs(cs) != fmt.Sprint(keep.ID) {
		t.Fatalf("CoursesForUser after delete = %s, %v; want only %d", courseIDs(cs), err, keep.ID)
	}
	// Ids are never reused, so an old link to the deleted course cannot lead
	// into a new one.
	n := mustCourse(t, s, "New", owner)
	if n.ID <= keep.ID {
		t.Fatalf("new course got id %d, want > %d", n.ID, keep.ID)
	}
	if ok, err := s.CanEnterCourse(ctx, n.ID, stu.ID); ok || err != nil {
		t.Fatalf("stale enrollment lets stu into the new course: %v, %v", ok, err)
	}
}

func testConcurrentEnroll(t *testing.T, s chat.Store) {
	ctx := t.Context()
	owner := mustUser(t, s, "owner")
	stu := mustUser(t, s, "stu")
	c := mustCourse(t, s, "C", owner)
	const n = 8
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() { errs[i] = s.Enroll(ctx, c.ID, stu.ID) })
	}
	wg.Wait()
	ok := 0
	for _, err := range errs {
		switch chat.ErrorCode(err) {
		case "":
			ok++
		case chat.ECONFLICT:
		default:
			t.Fatalf("concurrent Enroll: %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d concurrent Enrolls succeeded, want 1", ok)
	}
}

func testClose(t *testing.T, s chat.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close twice: %v", err)
	}
	_, err := s.UserByID(ctx, u.ID)
	wantCode(t, err, chat.EINTERNAL, "UserByID after Close")
	err = s.CreateUser(ctx, &chat.User{Username: "bob"}, hash)
	wantCode(t, err, chat.EINTERNAL, "CreateUser after Close")
	m := msg("chat:lobby", 0, "g", "", "x", base)
	err = s.AppendMessages(ctx, []*chat.Message{m})
	wantCode(t, err, chat.EINTERNAL, "AppendMessages after Close")
	if m.Seq != 0 {
		t.Fatalf("AppendMessages after Close set Seq %d", m.Seq)
	}
	_, err = s.Messages(ctx, "chat:lobby", chat.MessageQuery{Limit: 1})
	wantCode(t, err, chat.EINTERNAL, "Messages after Close")
	_, err = s.DeploymentID(ctx)
	wantCode(t, err, chat.EINTERNAL, "DeploymentID after Close")
}
