package storetest

import (
	"strings"
	"sync"
	"testing"
	"time"

	chat "github.com/chatd/chat"
)

// Deactivated accounts, the administrator flag, renamed courses and API
// keys: what the admin pages and commands change.

func testDeactivateUser(t *testing.T, s chat.Store) {
	ctx := t.Context()
	owner := mustUser(t, s, "owner")
	alice := mustUser(t, s, "alice")
	bob := mustUser(t, s, "bob")
	c := mustCourse(t, s, "C", owner)
	mustEnroll(t, s, c, alice)
	a1, err := s.CreateSession(ctx, alice.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	b1, err := s.CreateSession(ctx, bob.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v0, err := s.RevocationVersion(ctx)
	if err != nil {
		t.Fatal(err)
	}

	if err := s.SetUserActive(ctx, alice.ID, false); err != nil {
		t.Fatal(err)
	}
	_, _, err = s.SessionUser(ctx, a1.Token)
	wantCode(t, err, chat.ENOTFOUND, "SessionUser of a deactivated user's session")
	if _, _, err := s.SessionUser(ctx, b1.Token); err != nil {
		t.Fatalf("another user's session after the deactivation: %v", err)
	}
	_, err = s.CreateSession(ctx, alice.ID, time.Hour)
	wantCode(t, err, chat.EFORBIDDEN, "CreateSession(deactivated)")
	revs := revocationsAfter(t, s, v0)
	if len(revs) != 1 || revs[0].UserID != alice.ID || revs[0].SessionID != 0 || revs[0].CourseID != 0 ||
		revs[0].Reason != "account deactivated" {
		t.Fatalf("deactivation recorded %+v, want one revocation {UserID: alice, Reason: account deactivated}", revs)
	}

	want := *alice
	want.Deactivated = true
	got, err := s.UserByID(ctx, alice.ID)
	if err != nil {
		t.Fatal(err)
	}
	sameUser(t, "UserByID(deactivated)", got, &want)
	got, err = s.UserByUsername(ctx, "ALICE")
	if err != nil {
		t.Fatal(err)
	}
	sameUser(t, "UserByUsername(deactivated)", got, &want)
	got, h, err := s.UserPasswordHash(ctx, "alice")
	if err != nil || h != hash {
		t.Fatalf("UserPasswordHash(deactivated) = %v, %q, %v; want the user and the hash (login says why)", got, h, err)
	}
	sameUser(t, "UserPasswordHash(deactivated)", got, &want)
	users, err := s.ListUsers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range users {
		if u.Deactivated != (u.ID == alice.ID) {
			t.Fatalf("ListUsers: %s has Deactivated %v", u.Username, u.Deactivated)
		}
	}
	page, err := s.ListUsersPage(ctx, "", 10)
	if err != nil || len(page) != 3 || !page[0].Deactivated || page[1].Deactivated {
		t.Fatalf("ListUsersPage = %+v, %v; want alice deactivated first", page, err)
	}
	// Enrollments stay: reactivated, alice is a student again at once.
	members, err := s.CourseMembers(ctx, c.ID)
	if err != nil || usernames(members) != "alice" || !members[0].Deactivated {
		t.Fatalf("CourseMembers = %s (%+v), %v; want alice, deactivated", usernames(members), members, err)
	}

	// Again: nothing changes, nothing is recorded.
	v1, _ := s.RevocationVersion(ctx)
	if err := s.SetUserActive(ctx, alice.ID, false); err != nil {
		t.Fatal(err)
	}
	if revs := revocationsAfter(t, s, v1); len(revs) != 0 {
		t.Fatalf("deactivating again recorded %+v", revs)
	}

	// Reactivated: signs in again; records nothing; old sessions stay ended.
	if err := s.SetUserActive(ctx, alice.ID, true); err != nil {
		t.Fatal(err)
	}
	if revs := revocationsAfter(t, s, v1); len(revs) != 0 {
		t.Fatalf("reactivating recorded %+v", revs)
	}
	_, _, err = s.SessionUser(ctx, a1.Token)
	wantCode(t, err, chat.ENOTFOUND, "SessionUser of a session ended by the deactivation")
	a2, err := s.CreateSession(ctx, alice.ID, time.Hour)
	if err != nil {
		t.Fatalf("CreateSession after reactivating: %v", err)
	}
	got, _, err = s.SessionUser(ctx, a2.Token)
	if err != nil {
		t.Fatal(err)
	}
	sameUser(t, "SessionUser after reactivating", got, alice)
	if ok, err := s.CanEnterCourse(ctx, c.ID, alice.ID); !ok || err != nil {
		t.Fatalf("CanEnterCourse after reactivating = %v, %v", ok, err)
	}
	if err := s.SetUserActive(ctx, alice.ID, true); err != nil {
		t.Fatalf("reactivating an active user: %v", err)
	}

	// A user without sessions is deactivated all the same, and recorded:
	// sockets may outlive sessions (an expired one still open).
	v2, _ := s.RevocationVersion(ctx)
	if err := s.SetUserActive(ctx, owner.ID, false); err != nil {
		t.Fatal(err)
	}
	if revs := revocationsAfter(t, s, v2); len(revs) != 1 || revs[0].UserID != owner.ID {
		t.Fatalf("deactivating a user without sessions recorded %+v", revs)
	}

	wantCode(t, s.SetUserActive(ctx, bob.ID+1000, false), chat.ENOTFOUND, "SetUserActive(missing user, false)")
	wantCode(t, s.SetUserActive(ctx, bob.ID+1000, true), chat.ENOTFOUND, "SetUserActive(missing user, true)")
	wantCode(t, s.SetUserActive(ctx, 0, false), chat.ENOTFOUND, "SetUserActive(guest)")
	_, err = s.CreateSession(ctx, bob.ID+1000, time.Hour)
	wantCode(t, err, chat.ENOTFOUND, "CreateSession(missing user)")
}

// testDeactivateRacesLogin creates sessions for a user while it is
// deactivated: whatever the interleaving, no session of the user works
// afterwards.
func testDeactivateRacesLogin(t *testing.T, s chat.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "racer")
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		tokens []string
	)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 10 {
				sess, err := s.CreateSession(ctx, u.ID, time.Hour)
				switch chat.ErrorCode(err) {
				case "":
					mu.Lock()
					tokens = append(tokens, sess.Token)
					mu.Unlock()
				case chat.EFORBIDDEN:
				default:
					t.Errorf("CreateSession during a deactivation: %v", err)
					return
				}
			}
		}()
	}
	if err := s.SetUserActive(ctx, u.ID, false); err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	for _, tok := range tokens {
		if _, _, err := s.SessionUser(ctx, tok); chat.ErrorCode(err) != chat.ENOTFOUND {
			t.Fatalf("a session created around the deactivation still works: %v", err)
		}
	}
}

func testSetUserAdmin(t *testing.T, s chat.Store) {
	ctx := t.Context()
	u := mustUser(t, s, "alice")
	for _, admin := range []bool{true, true, false, false, true} {
		if err := s.SetUserAdmin(ctx, u.ID, admin); err != nil {
			t.Fatal(err)
		}
		got, err := s.UserByID(ctx, u.ID)
		if err != nil || got.IsAdmin != admin {
			t.Fatalf("after SetUserAdmin(%v): %+v, %v", admin, got, err)
		}
	}
	sess, err := s.CreateSession(ctx, u.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if got, _, err := s.SessionUser(ctx, sess.Token); err != nil || !got.IsAdmin {
		t.Fatalf("SessionUser of an admin = %+v, %v", got, err)
	}
	wantCode(t, s.SetUserAdmin(ctx, u.ID+1000, true), chat.ENOTFOUND, "SetUserAdmin(missing user)")
}

func testRenameCourse(t *testing.T, s chat.Store) {
	ctx := t.Context()
	owner := mustUser(t, s, "owner")
	c := mustCourse(t, s, "Old title", owner)
	d := mustCourse(t, s, "Other", owner)
	if err := s.RenameCourse(ctx, c.ID, "  New title — ünïcode  "); err != nil {
		t.Fatal(err)
	}
	got, err := s.CourseByID(ctx, c.ID)
	if err != nil {
		t.Fatal(err)
	}
	want := *c
	want.Title = "New title — ünïcode"
	sameCourse(t, "CourseByID after RenameCourse", got, &want)
	if got, _ := s.CourseByID(ctx, d.ID); got.Title != "Other" {
		t.Fatalf("RenameCourse renamed another course too: %q", got.Title)
	}
	for _, bad := range []string{"", "   ", strings.Repeat("x", chat.MaxCourseTitleLen+1), "a\x00b", "tab\there"} {
		wantCode(t, s.RenameCourse(ctx, c.ID, bad), chat.EINVALID, "RenameCourse("+bad+")")
	}
	wantCode(t, s.RenameCourse(ctx, c.ID+1000, "x"), chat.ENOTFOUND, "RenameCourse(missing course)")
	if got, _ := s.CourseByID(ctx, c.ID); got.Title != want.Title {
		t.Fatalf("failed renames changed the title to %q", got.Title)
	}
}

func sameKey(t *testing.T, what string, got, want *chat.APIKey) {
	t.Helper()
	w := *want
	w.Secret = ""
	if got == nil || got.ID != w.ID || got.Name != w.Name || got.Bot != w.Bot || got.Rooms != w.Rooms ||
		got.Prefix != w.Prefix || got.CreatedBy != w.CreatedBy || !got.CreatedAt.Equal(w.CreatedAt) ||
		!got.RevokedAt.Equal(w.RevokedAt) || got.Secret != "" {
		t.Fatalf("%s = %+v, want %+v", what, got, &w)
	}
}

func testAPIKeys(t *testing.T, s chat.Store) {
	ctx := t.Context()
	if keys, err := s.ListAPIKeys(ctx); err != nil || keys == nil || len(keys) != 0 {
		t.Fatalf("ListAPIKeys on an empty store = %v, %v; want an empty, non-nil slice", keys, err)
	}
	k := &chat.APIKey{Name: "news", Bot: "newsbot", Rooms: " chat:announce-* , course:12,, ", CreatedBy: "olga"}
	if err := s.CreateAPIKey(ctx, k); err != nil {
		t.Fatal(err)
	}
	if k.ID <= 0 || k.Rooms != "chat:announce-*,course:12" || k.Revoked() {
		t.Fatalf("CreateAPIKey set %+v", k)
	}
	recent(t, "CreatedAt", k.CreatedAt)
	if !strings.HasPrefix(k.Secret, chat.APIKeySecretPrefix) || len(k.Secret) < 40 || !strings.HasPrefix(k.Secret, k.Prefix) ||
		len(k.Prefix) >= len(k.Secret)/2 || len(k.Prefix) <= len(chat.APIKeySecretPrefix) {
		t.Fatalf("secret %q with prefix %q", k.Secret, k.Prefix)
	}
	k2 := &chat.APIKey{Name: "ops", Bot: "news", Rooms: "*"}
	if err := s.CreateAPIKey(ctx, k2); err != nil {
		t.Fatal(err)
	}
	if k2.Secret == k.Secret || k2.ID == k.ID {
		t.Fatal("two keys share a secret or an id")
	}

	got, err := s.APIKeyBySecret(ctx, k.Secret)
	if err != nil {
		t.Fatal(err)
	}
	sameKey(t, "APIKeyBySecret", got, k)
	if !got.AllowsRoom("chat:announce-all") || !got.AllowsRoom("course:12") || got.AllowsRoom("course:1") ||
		got.AllowsRoom("chat:lobby") {
		t.Fatalf("key %q allows the wrong rooms", got.Rooms)
	}
	for _, bad := range []string{"", k.Secret + "x", k.Secret[:len(k.Secret)-1], strings.ToUpper(k.Secret), k.Prefix} {
		_, err := s.APIKeyBySecret(ctx, bad)
		wantCode(t, err, chat.ENOTFOUND, "APIKeyBySecret("+bad+")")
	}

	dup := &chat.APIKey{Name: "news", Bot: "other", Rooms: "chat:*"}
	wantCode(t, s.CreateAPIKey(ctx, dup), chat.ECONFLICT, "CreateAPIKey(taken name)")
	if dup.ID != 0 || dup.Secret != "" {
		t.Fatalf("a failed CreateAPIKey changed its argument: %+v", dup)
	}

	if err := s.RevokeAPIKey(ctx, k.ID); err != nil {
		t.Fatal(err)
	}
	_, err = s.APIKeyBySecret(ctx, k.Secret)
	wantCode(t, err, chat.ENOTFOUND, "APIKeyBySecret(revoked)")
	wantCode(t, s.RevokeAPIKey(ctx, k.ID), chat.ENOTFOUND, "RevokeAPIKey twice")
	wantCode(t, s.RevokeAPIKey(ctx, k2.ID+1000), chat.ENOTFOUND, "RevokeAPIKey(missing)")
	if got, err := s.APIKeyBySecret(ctx, k2.Secret); err != nil || got.ID != k2.ID {
		t.Fatalf("the other key after a revocation: %+v, %v", got, err)
	}

	// A revoked key's name may be given again; the list keeps both.
	k3 := &chat.APIKey{Name: "news", Bot: "newsbot", Rooms: "chat:*"}
	if err := s.CreateAPIKey(ctx, k3); err != nil {
		t.Fatalf("CreateAPIKey with a revoked key's name: %v", err)
	}
	keys, err := s.ListAPIKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || keys[0].ID != k.ID || keys[1].ID != k2.ID || keys[2].ID != k3.ID {
		t.Fatalf("ListAPIKeys = %+v, want the three keys by id", keys)
	}
	if !keys[0].Revoked() || keys[1].Revoked() || keys[2].Revoked() {
		t.Fatalf("ListAPIKeys revoked flags wrong: %+v", keys)
	}
	recent(t, "RevokedAt", keys[0].RevokedAt)
	wantK := *k
	wantK.RevokedAt = keys[0].RevokedAt
	sameKey(t, "ListAPIKeys[0]", keys[0], &wantK)
	sameKey(t, "ListAPIKeys[1]", keys[1], k2)
}

func testAPIKeysInvalid(t *testing.T, s chat.Store) {
	ctx := t.Context()
	for _, k := range []chat.APIKey{
		{Name: "", Bot: "b", Rooms: "chat:*"},
		{Name: "has space", Bot: "b", Rooms: "chat:*"},
		{Name: "colon:", Bot: "b", Rooms: "chat:*"},
		{Name: "..", Bot: "b", Rooms: "chat:*"},
		{Name: strings.Repeat("n", chat.MaxUsernameLen+1), Bot: "b", Rooms: "chat:*"},
		{Name: "n", Bot: "", Rooms: "chat:*"},
		{Name: "n", Bot: "bot:x", Rooms: "chat:*"},
		{Name: "n", Bot: "a\x00b", Rooms: "chat:*"},
		{Name: "n", Bot: "b", Rooms: ""},
		{Name: "n", Bot: "b", Rooms: " , ,"},
		{Name: "n", Bot: "b", Rooms: "lobby"},
		{Name: "n", Bot: "b", Rooms: "chat:[a"},
		{Name: "n", Bot: "b", Rooms: "chat:a b"},
		{Name: "n", Bot: "b", Rooms: "chat:*," + strings.Repeat("x", chat.MaxRoomPatternsLen)},
		{Name: "n", Bot: "b", Rooms: "chat:*", CreatedBy: "not a username"},
	} {
		wantCode(t, s.CreateAPIKey(ctx, &k), chat.EINVALID, "CreateAPIKey("+k.Name+", "+k.Bot+", "+k.Rooms+")")
	}
	wantCode(t, s.CreateAPIKey(ctx, nil), chat.EINVALID, "CreateAPIKey(nil)")
	if keys, err := s.ListAPIKeys(ctx); err != nil || len(keys) != 0 {
		t.Fatalf("invalid keys were stored: %+v, %v", keys, err)
	}
}
