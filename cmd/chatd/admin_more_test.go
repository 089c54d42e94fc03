package main

import (
	"regexp"
	"strings"
	"testing"
	"time"

	chat "github.com/chatd/chat"
)

// Tests of the admin commands that match the /manage/ pages, against a
// real SQLite store.

func TestDeactivateReactivate(t *testing.T) {
	h := newAdminHarness(t)
	ctx := t.Context()
	h.setup(t)
	alice, _ := h.st.UserByUsername(ctx, "alice")
	sess, err := h.st.CreateSession(ctx, alice.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	v0, _ := h.st.RevocationVersion(ctx)
	out := h.must(t, "", "deactivate", "ALICE")
	if out != "deactivated \"alice\": their sessions are ended and their open sockets close on every server\n" {
		t.Fatalf("deactivate printed %q", out)
	}
	if _, _, err := h.st.SessionUser(ctx, sess.Token); chat.ErrorCode(err) != chat.ENOTFOUND {
		t.Fatalf("the session still works: %v", err)
	}
	revs, _ := h.st.Revocations(ctx, v0, 10)
	if len(revs) != 1 || revs[0].UserID != alice.ID || revs[0].Reason != "account deactivated" {
		t.Fatalf("revocations %+v", revs)
	}
	if out := h.must(t, "", "deactivate", "alice"); out != "\"alice\" is already deactivated\n" {
		t.Fatalf("deactivate again printed %q", out)
	}
	if out := h.must(t, "", "reactivate", "alice"); out != "reactivated \"alice\": they may sign in again\n" {
		t.Fatalf("reactivate printed %q", out)
	}
	if out := h.must(t, "", "reactivate", "alice"); out != "\"alice\" is already active\n" {
		t.Fatalf("reactivate again printed %q", out)
	}
	if _, err := h.st.CreateSession(ctx, alice.ID, time.Hour); err != nil {
		t.Fatalf("reactivated alice cannot sign in: %v", err)
	}
	checkErrors(t, h, []adminErrorCase{
		{"deactivate unknown", "", []string{"deactivate", "ghost"}, `no user named "ghost"`, chat.ENOTFOUND},
		{"deactivate no args", "", []string{"deactivate"}, "missing arguments; usage: chatd deactivate USERNAME", ""},
		{"reactivate two", "", []string{"reactivate", "alice", "bob"}, `unexpected argument "bob"`, ""},
	})
}

func TestGrantRevokeAdmin(t *testing.T) {
	h := newAdminHarness(t)
	h.setup(t)
	if out := h.must(t, "", "grantadmin", "bob"); out != "\"bob\" is an administrator: they see /manage/\n" {
		t.Fatalf("grantadmin printed %q", out)
	}
	if u, _ := h.st.UserByUsername(t.Context(), "bob"); !u.IsAdmin {
		t.Fatal("bob is not an admin")
	}
	if out := h.must(t, "", "revokeadmin", "bob"); out != "\"bob\" is no longer an administrator\n" {
		t.Fatalf("revokeadmin printed %q", out)
	}
	if u, _ := h.st.UserByUsername(t.Context(), "bob"); u.IsAdmin {
		t.Fatal("bob is still an admin")
	}
	checkErrors(t, h, []adminErrorCase{
		{"grantadmin unknown", "", []string{"grantadmin", "ghost"}, `no user named "ghost"`, chat.ENOTFOUND},
	})
}

func TestRenameDeleteCourse(t *testing.T) {
	h := newAdminHarness(t)
	ctx := t.Context()
	id := h.setup(t)
	h.must(t, "", "enroll", id, "alice")
	out := h.must(t, "", "renamecourse", id, "Django", "201", " ")
	if out != "renamed course 1 from \"Django 101\" to \"Django 201\"\n" {
		t.Fatalf("renamecourse printed %q", out)
	}
	if c, _ := h.st.CourseByID(ctx, 1); c.Title != "Django 201" {
		t.Fatalf("title %q", c.Title)
	}
	checkErrors(t, h, []adminErrorCase{
		{"renamecourse no title", "", []string{"renamecourse", id}, "missing arguments; usage: chatd renamecourse COURSE_ID TITLE...", ""},
		{"renamecourse blank title", "", []string{"renamecourse", id, " "}, "course title is required", chat.EINVALID},
		{"renamecourse unknown", "", []string{"renamecourse", "9", "x"}, "no course with id 9", chat.ENOTFOUND},
		{"deletecourse bad id", "", []string{"deletecourse", "x"}, `bad course id "x"`, chat.EINVALID},
		{"deletecourse unknown", "", []string{"deletecourse", "9"}, "no course with id 9", chat.ENOTFOUND},
		// The owner is never a student of their own course.
		{"enroll the owner", "", []string{"enroll", id, "teacher"},
			`"teacher" owns course 1 (Django 201): an owner always may enter the course's room and is not enrolled as a student of their own course`, chat.ECONFLICT},
	})
	v0, _ := h.st.RevocationVersion(ctx)
	if out := h.must(t, "", "deletecourse", id); out != "deleted course 1 (Django 201) with its enrollments and chat history\n" {
		t.Fatalf("deletecourse printed %q", out)
	}
	if _, err := h.st.CourseByID(ctx, 1); chat.ErrorCode(err) != chat.ENOTFOUND {
		t.Fatalf("course still there: %v", err)
	}
	if revs, _ := h.st.Revocations(ctx, v0, 10); len(revs) != 1 || revs[0].CourseID != 1 {
		t.Fatalf("deleting recorded %+v; want the course's revocation (its sockets close)", revs)
	}
}

var secretLine = regexp.MustCompile(`(?m)^chatd_[A-Za-z0-9_-]{43}$`)

func TestKeyCommands(t *testing.T) {
	h := newAdminHarness(t)
	ctx := t.Context()
	if out := h.must(t, "", "listkeys"); !strings.Contains(out, "no API keys yet") {
		t.Fatalf("listkeys on an empty store printed %q", out)
	}
	out := h.must(t, "", "createkey", "--name", "news", "--rooms", "chat:announce-*, course:3")
	secret := secretLine.FindString(out)
	if secret == "" || !strings.HasPrefix(out, "created API key \"news\" (id 1): posts as bot:news to chat:announce-*,course:3\n") ||
		!strings.Contains(out, "shown only now") {
		t.Fatalf("createkey printed %q", out)
	}
	k, err := h.st.APIKeyBySecret(ctx, secret)
	if err != nil || k.Name != "news" || k.Bot != "news" || k.Rooms != "chat:announce-*,course:3" {
		t.Fatalf("the printed secret finds %+v, %v", k, err)
	}
	out = h.must(t, "", "createkey", "--name", "ops", "--bot", "deploy-bot")
	secret2 := secretLine.FindString(out)
	if k2, err := h.st.APIKeyBySecret(ctx, secret2); err != nil || k2.Bot != "deploy-bot" || k2.Rooms != "chat:*" {
		t.Fatalf("second key %+v, %v; want bot deploy-bot, rooms chat:* (the default)", k2, err)
	}
	list := h.must(t, "", "listkeys")
	for _, want := range []string{"ID  NAME  POSTS AS", "news  bot:news ", "ops   bot:deploy-bot", k.Prefix + "…"} {
		if !strings.Contains(list, want) {
			t.Errorf("listkeys does not show %q:\n%s", want, list)
		}
	}
	if strings.Contains(list, secret) || strings.Contains(list, secret2) {
		t.Fatalf("listkeys shows a whole secret:\n%s", list)
	}
	checkErrors(t, h, []adminErrorCase{
		{"createkey no name", "", []string{"createkey"}, "--name NAME is required", ""},
		{"createkey taken", "", []string{"createkey", "--name", "news"}, `an API key named "news" already exists`, chat.ECONFLICT},
		{"createkey bad rooms", "", []string{"createkey", "--name", "x", "--rooms", "lobby"}, `room pattern "lobby" must be * or start with chat:`, chat.EINVALID},
		{"createkey bad bot", "", []string{"createkey", "--name", "x", "--bot", "a b"}, `bot name "a b" must be`, chat.EINVALID},
		{"revokekey nothing", "", []string{"revokekey"}, "missing arguments; usage: chatd revokekey NAME | --id ID", ""},
		{"revokekey both", "", []string{"revokekey", "--id", "1", "news"}, "name one key", ""},
		{"revokekey unknown", "", []string{"revokekey", "ghost"}, `no API key named "ghost" that is not revoked`, chat.ENOTFOUND},
		{"revokekey unknown id", "", []string{"revokekey", "--id", "7"}, "no API key with id 7 that is not revoked", chat.ENOTFOUND},
	})
	if out := h.must(t, "", "revokekey", "news"); out != "revoked API key \"news\" (id 1): it no longer works\n" {
		t.Fatalf("revokekey printed %q", out)
	}
	if _, err := h.st.APIKeyBySecret(ctx, secret); chat.ErrorCode(err) != chat.ENOTFOUND {
		t.Fatalf("revoked key still works: %v", err)
	}
	h.must(t, "", "revokekey", "--id", "2")
	checkErrors(t, h, []adminErrorCase{
		{"revokekey twice", "", []string{"revokekey", "news"}, `no API key named "news" that is not revoked`, chat.ENOTFOUND},
	})
	if list := h.must(t, "", "listkeys"); strings.Count(list, "\n") != 3 || strings.Count(list, " -\n") != 0 {
		t.Fatalf("listkeys after revoking both:\n%s", list)
	}
}
