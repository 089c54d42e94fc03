package main

import (
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/wstest"
	"github.com/chatd/chat/password"
)

// Tests of the admin pages (/manage/) through a real HTTP client against a
// real chatd, with real sockets for the access they take away.

// withAdmin adds the administrator "root" to the school.
func (sc *school) withAdmin(t *testing.T) string {
	t.Helper()
	hash, err := password.Hash(testPassword)
	if err != nil {
		t.Fatal(err)
	}
	u := &chat.User{Username: "root", IsAdmin: true}
	if err := sc.st.CreateUser(t.Context(), u, hash); err != nil {
		t.Fatal(err)
	}
	sc.users["root"] = u
	return sc.session(t, "root")
}

// expectRedirect checks a successful change: 303 to page, whose next GET
// shows notice.
func (sc *school) expectRedirect(t *testing.T, resp *http.Response, body, cookie, page, notice string) string {
	t.Helper()
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != page {
		t.Fatalf("answer %d to %q, want 303 to %s: %s", resp.StatusCode, resp.Header.Get("Location"), page, body)
	}
	// The notice travels in a cookie to the next page, once.
	var flash string
	for _, c := range resp.Cookies() {
		if c.Name == "chatd_flash" {
			flash = c.Name + "=" + c.Value
		}
	}
	if flash == "" {
		t.Fatalf("no notice cookie on %v", resp.Header)
	}
	resp2, html := sc.get(t, page, cookie+"; "+flash)
	if resp2.StatusCode != 200 || !strings.Contains(html, notice) {
		t.Fatalf("GET %s: %d, want 200 with the notice %q:\n%s", page, resp2.StatusCode, notice, html)
	}
	return html
}

// logged checks that the server logged msg with every key=value pair.
func (sc *school) logged(t *testing.T, msg string, pairs ...string) {
	t.Helper()
	for _, line := range strings.Split(sc.logs.String(), "\n") {
		if !strings.Contains(line, `msg="`+msg+`"`) {
			continue
		}
		ok := true
		for _, p := range pairs {
			ok = ok && strings.Contains(line, " "+p)
		}
		if ok {
			return
		}
	}
	t.Errorf("no log line %q with %v in:\n%s", msg, pairs, sc.logs)
}

func TestManageAccess(t *testing.T) {
	sc := newSchool(t, "sqlite", nil)
	root := sc.withAdmin(t)
	cid := strconv.FormatInt(sc.courseID, 10)
	olga, bob := sc.session(t, "olga"), sc.session(t, "bob")
	for _, tc := range []struct {
		name, path, cookie string
		status             int
	}{
		{"anonymous", "/manage/", "", http.StatusFound},
		{"anonymous course", "/manage/courses/" + cid + "/", "", http.StatusFound},
		{"a user owning nothing", "/manage/", bob, http.StatusForbidden},
		{"a course owner", "/manage/", olga, http.StatusOK},
		{"the owner's course", "/manage/courses/" + cid + "/", olga, http.StatusOK},
		{"the owner, all courses", "/manage/courses/", olga, http.StatusForbidden},
		{"the owner, users", "/manage/users/", olga, http.StatusForbidden},
		{"the owner, keys", "/manage/keys/", olga, http.StatusForbidden},
		{"someone else's course", "/manage/courses/" + cid + "/", bob, http.StatusForbidden},
		{"a missing course, not admin", "/manage/courses/999/", bob, http.StatusForbidden},
		{"a missing course, admin", "/manage/courses/999/", root, http.StatusNotFound},
		{"admin", "/manage/", root, http.StatusOK},
		{"admin courses", "/manage/courses/", root, http.StatusOK},
		{"admin users", "/manage/users/", root, http.StatusOK},
		{"admin keys", "/manage/keys/", root, http.StatusOK},
	} {
		resp, body := sc.get(t, tc.path, tc.cookie)
		if resp.StatusCode != tc.status {
			t.Errorf("%s: GET %s = %d, want %d", tc.name, tc.path, resp.StatusCode, tc.status)
		}
		if tc.status == http.StatusFound && !strings.HasPrefix(resp.Header.Get("Location"), "/accounts/login/?next=") {
			t.Errorf("%s: redirected to %q, want the login page", tc.name, resp.Header.Get("Location"))
		}
		if tc.status == http.StatusForbidden && !strings.Contains(body, "Access denied") && !strings.Contains(body, "Administrators only") {
			t.Errorf("%s: 403 page without a reason:\n%s", tc.name, body)
		}
	}
	// The owner's page has enrollments only; the admin's rename and delete.
	_, page := sc.get(t, "/manage/courses/"+cid+"/", olga)
	if !strings.Contains(page, `id="enroll-form"`) || strings.Contains(page, `id="rename-form"`) || strings.Contains(page, `id="delete-form"`) {
		t.Errorf("owner's course page:\n%s", page)
	}
	_, page = sc.get(t, "/manage/courses/"+cid+"/", root)
	if !strings.Contains(page, `id="rename-form"`) || !strings.Contains(page, `id="delete-form"`) {
		t.Errorf("admin's course page:\n%s", page)
	}
	// Only administrators see Manage in the navigation bar.
	if _, p := sc.get(t, "/chat/", root); !strings.Contains(p, `id="nav-manage"`) {
		t.Error("no Manage link for the admin")
	}
	if _, p := sc.get(t, "/chat/", olga); strings.Contains(p, `id="nav-manage"`) {
		t.Error("Manage link for a non-admin")
	}
	// The owner's course page links to its management.
	if _, p := sc.get(t, "/courses/"+cid+"/", olga); !strings.Contains(p, `href="/manage/courses/`+cid+`/"`) {
		t.Error("no Manage students link for the owner")
	}

	for _, tc := range []struct {
		name, path, cookie string
		form               url.Values
		status             int
	}{
		{"anonymous enroll", "/manage/courses/" + cid + "/enroll", "", url.Values{"username": {"bob"}}, http.StatusFound},
		{"non-owner enroll", "/manage/courses/" + cid + "/enroll", bob, url.Values{"username": {"bob"}}, http.StatusForbidden},
		{"non-owner unenroll", "/manage/courses/" + cid + "/unenroll", bob, url.Values{"username": {"alice"}}, http.StatusForbidden},
		{"owner renames", "/manage/courses/" + cid + "/rename", olga, url.Values{"title": {"Mine"}}, http.StatusForbidden},
		{"owner deletes", "/manage/courses/" + cid + "/delete", olga, url.Values{"confirm": {"yes"}}, http.StatusForbidden},
		{"owner creates", "/manage/courses/", olga, url.Values{"title": {"New"}, "owner": {"olga"}}, http.StatusForbidden},
		{"owner deactivates", "/manage/users/alice/deactivate", olga, nil, http.StatusForbidden},
		{"owner resets a password", "/manage/users/alice/password", olga, nil, http.StatusForbidden},
		{"owner makes a key", "/manage/keys/", olga, url.Values{"name": {"k"}, "rooms": {"*"}}, http.StatusForbidden},
		{"owner revokes a key", "/manage/keys/1/revoke", olga, nil, http.StatusForbidden},
	} {
		if resp, _ := sc.post(t, tc.path, tc.cookie, tc.form); resp.StatusCode != tc.status {
			t.Errorf("%s: POST %s = %d, want %d", tc.name, tc.path, resp.StatusCode, tc.status)
		}
	}
	// CSRF: the admin's own cookie, sent by another site's form, is refused.
	for _, hdr := range [][]string{{"Sec-Fetch-Site", "cross-site"}, {"Sec-Fetch-Site", "", "Origin", "https://evil.example"}} {
		resp, body := sc.post(t, "/manage/users/alice/deactivate", root, nil, hdr...)
		if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "Cross-site request refused") {
			t.Errorf("cross-site POST %v: %d", hdr, resp.StatusCode)
		}
	}
	if u, _ := sc.st.UserByID(t.Context(), sc.users["alice"].ID); u.Deactivated {
		t.Fatal("a refused request changed something")
	}
	// GET never changes anything.
	if resp, _ := sc.get(t, "/manage/users/alice/deactivate", root); resp.StatusCode == http.StatusSeeOther {
		t.Error("GET deactivated")
	}
}

func TestManageCourses(t *testing.T) {
	// A revocation poll too slow to matter: only the pages' immediate
	// close (on the channel layer) can close the sockets within the test.
	sc := newSchool(t, "sqlite", nil, "ACCESS_RECHECK_INTERVAL=1h")
	root := sc.withAdmin(t)
	ctx := t.Context()

	// Create, with errors first.
	for _, tc := range []struct {
		form   url.Values
		status int
		msg    string
	}{
		{url.Values{"title": {"Chemistry"}, "owner": {"ghost"}}, http.StatusNotFound, "There is no user &#34;ghost&#34; to own the course."},
		{url.Values{"title": {"  "}, "owner": {"olga"}}, http.StatusBadRequest, "Course title is required"},
	} {
		resp, body := sc.post(t, "/manage/courses/", root, tc.form)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.msg) {
			t.Errorf("create %v: %d, want %d with %q:\n%s", tc.form, resp.StatusCode, tc.status, tc.msg, body)
		}
	}
	resp, body := sc.post(t, "/manage/courses/", root, url.Values{"title": {"<b>Chemistry</b>"}, "owner": {"OLGA"}})
	courses, _ := sc.st.ListCourses(ctx)
	c := courses[len(courses)-1]
	if c.Title != "<b>Chemistry</b>" || c.OwnerID != sc.users["olga"].ID {
		t.Fatalf("created %+v", c)
	}
	cpath := "/manage/courses/" + strconv.FormatInt(c.ID, 10) + "/"
	page := sc.expectRedirect(t, resp, body, root, cpath, "Created the course")
	if strings.Contains(page, "<b>Chemistry</b>") || !strings.Contains(page, "&lt;b&gt;Chemistry&lt;/b&gt;") {
		t.Error("the title is not escaped on the page")
	}
	sc.logged(t, "manage: created course", "by=root", "owner=olga")

	// Enroll, with the refusals.
	for _, tc := range []struct {
		name   string
		status int
		msg    string
	}{
		{"olga", http.StatusConflict, "olga owns this course: an owner always may enter its room and is not enrolled as a student of their own course."},
		{"ghost", http.StatusNotFound, "There is no user &#34;ghost&#34;."},
	} {
		resp, body := sc.post(t, cpath+"enroll", root, url.Values{"username": {tc.name}})
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.msg) {
			t.Errorf("enroll %s: %d, want %d with %q", tc.name, resp.StatusCode, tc.status, tc.msg)
		}
	}
	sc.logged(t, "manage: refused enroll", "by=root", "user=olga")
	resp, body = sc.post(t, cpath+"enroll", root, url.Values{"username": {"bob"}})
	page = sc.expectRedirect(t, resp, body, root, cpath, "Enrolled bob.")
	if !strings.Contains(page, `data-user="bob"`) {
		t.Error("bob is not listed")
	}
	sc.logged(t, "manage: enrolled", "by=root", "user=bob")
	if resp, _ := sc.post(t, cpath+"enroll", root, url.Values{"username": {"bob"}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("enrolling twice: %d", resp.StatusCode)
	}
	// The owner manages enrollments too, and is logged as who did it.
	olga := sc.session(t, "olga")
	resp, body = sc.post(t, cpath+"enroll", olga, url.Values{"username": {"carol"}})
	sc.expectRedirect(t, resp, body, olga, cpath, "Enrolled carol.")
	sc.logged(t, "manage: enrolled", "by=olga", "user=carol")

	// Unenroll closes the student's socket in the room at once; the
	// others stay.
	room := "/ws/chat/room/" + strconv.FormatInt(c.ID, 10) + "/"
	bobWS := sc.dialAs(t, room, sc.session(t, "bob"))
	carolWS := sc.dialAs(t, room, sc.session(t, "carol"))
	resp, body = sc.post(t, cpath+"unenroll", root, url.Values{"username": {"bob"}})
	sc.expectRedirect(t, resp, body, root, cpath, "Unenrolled bob")
	if code, reason := bobWS.WaitClose(t); code != 1008 || reason != "no longer enrolled" {
		t.Errorf("bob's socket closed %d %q, want 1008 no longer enrolled", code, reason)
	}
	send(t, carolWS, "still here")
	expectMessage(t, carolWS, "still here")
	sc.logged(t, "manage: unenrolled", "by=root", "user=bob")
	if resp, _ := sc.post(t, cpath+"unenroll", root, url.Values{"username": {"bob"}}); resp.StatusCode != http.StatusNotFound {
		t.Errorf("unenrolling twice: %d", resp.StatusCode)
	}

	// Rename.
	if resp, _ := sc.post(t, cpath+"rename", root, url.Values{"title": {""}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("empty title: %d", resp.StatusCode)
	}
	resp, body = sc.post(t, cpath+"rename", root, url.Values{"title": {"Organic chemistry"}})
	sc.expectRedirect(t, resp, body, root, cpath, "Renamed the course")
	if got, _ := sc.st.CourseByID(ctx, c.ID); got.Title != "Organic chemistry" {
		t.Errorf("title %q", got.Title)
	}
	sc.logged(t, "manage: renamed course", "by=root", `to="Organic chemistry"`)

	// Delete needs the box ticked, then closes every socket in the room.
	if resp, _ := sc.post(t, cpath+"delete", root, nil); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("delete without confirming: %d", resp.StatusCode)
	}
	resp, body = sc.post(t, cpath+"delete", root, url.Values{"confirm": {"yes"}})
	sc.expectRedirect(t, resp, body, root, "/manage/courses/", "Deleted the course")
	if code, reason := carolWS.WaitClose(t); code != 1008 || reason != "course deleted" {
		t.Errorf("carol's socket closed %d %q, want 1008 course deleted", code, reason)
	}
	if _, err := sc.st.CourseByID(ctx, c.ID); chat.ErrorCode(err) != chat.ENOTFOUND {
		t.Errorf("course still there: %v", err)
	}
	sc.logged(t, "manage: deleted course", "by=root")
}

var secretRE = regexp.MustCompile(`<code id="secret">([^<]+)</code>`)

func TestManageUsers(t *testing.T) {
	sc := newSchool(t, "sqlite", nil, "ACCESS_RECHECK_INTERVAL=1h")
	root := sc.withAdmin(t)
	alice := sc.session(t, "alice")
	aliceWS := sc.dialAs(t, "/ws/chat/lobby/", alice)

	resp, body := sc.post(t, "/manage/users/alice/deactivate", root, nil)
	page := sc.expectRedirect(t, resp, body, root, "/manage/users/", "Deactivated alice")
	if !regexp.MustCompile(`data-user="alice">.*\n\s*<td class="status-cell">deactivated`).MatchString(page) {
		t.Errorf("the users page does not show alice deactivated:\n%s", page)
	}
	if code, reason := aliceWS.WaitClose(t); code != 1008 || reason != "account deactivated" {
		t.Errorf("alice's socket closed %d %q, want 1008 account deactivated", code, reason)
	}
	sc.logged(t, "manage: deactivated user", "by=root", "user=alice")
	if resp, _ := sc.get(t, "/courses/", alice); resp.StatusCode != http.StatusFound {
		t.Errorf("alice's session still works: %d", resp.StatusCode)
	}
	resp, body = sc.login(t, "alice", testPassword)
	if resp.StatusCode != http.StatusForbidden || !strings.Contains(body, "This account is deactivated") {
		t.Errorf("deactivated login: %d:\n%s", resp.StatusCode, body)
	}
	resp, body = sc.login(t, "alice", "wrong password")
	if resp.StatusCode != http.StatusBadRequest || strings.Contains(body, "deactivated") {
		t.Errorf("deactivated login with a wrong password: %d (it must not say the account exists)", resp.StatusCode)
	}
	resp, body = sc.post(t, "/manage/users/alice/reactivate", root, nil)
	sc.expectRedirect(t, resp, body, root, "/manage/users/", "Reactivated alice")
	if resp, _ := sc.login(t, "alice", testPassword); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("reactivated login: %d", resp.StatusCode)
	}
	sc.logged(t, "manage: reactivated user", "by=root", "user=alice")

	// Not one's own account; not a missing one.
	if resp, body := sc.post(t, "/manage/users/root/deactivate", root, nil); resp.StatusCode != http.StatusConflict ||
		!strings.Contains(body, "You cannot deactivate your own account") {
		t.Errorf("self-deactivation: %d", resp.StatusCode)
	}
	if resp, _ := sc.post(t, "/manage/users/ghost/deactivate", root, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("missing user: %d", resp.StatusCode)
	}

	// Reset password: shown once; the old sessions end, the new password works.
	bob := sc.session(t, "bob")
	bobWS := sc.dialAs(t, "/ws/chat/lobby/", bob)
	resp, body = sc.post(t, "/manage/users/bob/password", root, nil)
	m := secretRE.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusOK || m == nil || len(m[1]) < 16 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("reset password: %d (Cache-Control %q):\n%s", resp.StatusCode, resp.Header.Get("Cache-Control"), body)
	}
	if code, _ := bobWS.WaitClose(t); code != 1008 {
		t.Errorf("bob's socket closed %d, want 1008", code)
	}
	if resp, _ := sc.get(t, "/courses/", bob); resp.StatusCode != http.StatusFound {
		t.Error("bob's old session still works")
	}
	if resp, _ := sc.login(t, "bob", m[1]); resp.StatusCode != http.StatusSeeOther {
		t.Errorf("login with the new password: %d", resp.StatusCode)
	}
	if strings.Contains(sc.logs.String(), m[1]) {
		t.Error("the new password is in the log")
	}
	sc.logged(t, "manage: reset password", "by=root", "user=bob")
}

// TestDeactivateCommandClosesSockets: "chatd deactivate" run by an
// operator (in-process here, on the same database, another process in
// real life) closes the user's sockets through the store's revocation,
// which the server polls every ACCESS_RECHECK_INTERVAL (default 1 s).
func TestDeactivateCommandClosesSockets(t *testing.T) {
	sc := newSchool(t, "sqlite", nil)
	cid := strconv.FormatInt(sc.courseID, 10)
	c1 := sc.dialAs(t, "/ws/chat/room/"+cid+"/", sc.session(t, "alice"))
	c2 := sc.dialAs(t, "/ws/chat/lobby/", sc.session(t, "alice"))
	other := sc.dialAs(t, "/ws/chat/lobby/", sc.session(t, "bob"))
	env := map[string]string{}
	for _, kv := range sc.env {
		k, v, _ := strings.Cut(kv, "=")
		env[k] = v
	}
	var out strings.Builder
	if err := run(t.Context(), []string{"deactivate", "alice"}, func(k string) string { return env[k] },
		strings.NewReader(""), &out, io.Discard); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*wstest.Client{c1, c2} {
		if code, reason := c.WaitClose(t); code != 1008 || reason != "account deactivated" {
			t.Errorf("closed %d %q, want 1008 account deactivated", code, reason)
		}
	}
	send(t, other, "bob stays")
	expectMessage(t, other, "bob stays")
}

func TestManageKeys(t *testing.T) {
	sc := newSchool(t, "sqlite", nil)
	root := sc.withAdmin(t)
	for _, tc := range []struct {
		form   url.Values
		status int
		msg    string
	}{
		{url.Values{"name": {"news"}, "rooms": {"lobby"}}, http.StatusBadRequest, "must be * or start with chat:"},
		{url.Values{"name": {"a b"}, "rooms": {"chat:*"}}, http.StatusBadRequest, "Key name &#34;a b&#34; must be"},
	} {
		resp, body := sc.post(t, "/manage/keys/", root, tc.form)
		if resp.StatusCode != tc.status || !strings.Contains(body, tc.msg) {
			t.Errorf("create %v: %d, want %d with %q", tc.form, resp.StatusCode, tc.status, tc.msg)
		}
	}
	resp, body := sc.post(t, "/manage/keys/", root, url.Values{"name": {"news"}, "bot": {"newsroom"}, "rooms": {"chat:*, course:*"}})
	m := secretRE.FindStringSubmatch(body)
	if resp.StatusCode != http.StatusCreated || m == nil || !strings.HasPrefix(m[1], "chatd_") || !strings.Contains(body, "/api/chat/lobby/messages") {
		t.Fatalf("create key: %d:\n%s", resp.StatusCode, body)
	}
	secret := m[1]
	sc.logged(t, "manage: created API key", "by=root", "key=news", "rooms=chat:*,course:*")
	if strings.Contains(sc.logs.String(), secret) {
		t.Error("the secret is in the log")
	}
	if resp, _ := sc.post(t, "/manage/keys/", root, url.Values{"name": {"news"}, "rooms": {"chat:*"}}); resp.StatusCode != http.StatusConflict {
		t.Errorf("a taken name: %d", resp.StatusCode)
	}

	c := sc.dialAs(t, "/ws/chat/lobby/", "")
	r := publish(t, sc.base, "/api/chat/lobby/messages", secret, map[string]string{"message": "made on the page"})
	expectPosted(t, r, http.StatusCreated, "made on the page", "newsroom")
	expectFrame(t, c, "made on the page", "newsroom", 1)

	_, page := sc.get(t, "/manage/keys/", root)
	if !strings.Contains(page, `data-key="news"`) || !strings.Contains(page, secret[:14]+"…") || strings.Contains(page, secret) ||
		!strings.Contains(page, "by root") {
		t.Fatalf("keys page:\n%s", page)
	}
	keys, _ := sc.st.ListAPIKeys(t.Context())
	resp, body = sc.post(t, fmt.Sprintf("/manage/keys/%d/revoke", keys[0].ID), root, nil)
	sc.expectRedirect(t, resp, body, root, "/manage/keys/", `Revoked the API key &#34;news&#34;`)
	sc.logged(t, "manage: revoked API key", "by=root", "key=news")
	if r := publish(t, sc.base, "/api/chat/lobby/messages", secret, map[string]string{"message": "x"}); r.Status != http.StatusUnauthorized {
		t.Errorf("revoked key: %d", r.Status)
	}
	if resp, _ := sc.post(t, fmt.Sprintf("/manage/keys/%d/revoke", keys[0].ID), root, nil); resp.StatusCode != http.StatusNotFound {
		t.Errorf("revoking twice: %d", resp.StatusCode)
	}
}
