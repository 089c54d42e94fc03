package web_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"testing"

	"github.com/chromedp/chromedp"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/memory"
	"github.com/chatd/chat/password"
	"github.com/chatd/chat/sqlite"
	"github.com/chatd/chat/web"
	"github.com/chatd/chat/ws"
)

// TestBrowserManageCourse: an administrator signs in, creates a course and
// enrolls a student on the /manage/ pages; the student signs in in another
// browser context, enters the course's chat room from /courses/ and chats;
// the administrator unenrolls them, and the student's page shows that it
// was disconnected, "no longer enrolled". The server's revocation poll
// (Server.Run) is not running here, so only the immediate close on the
// channel layer can do that.
func TestBrowserManageCourse(t *testing.T) {
	const pw = "correct horse battery"
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "chatd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hash, err := password.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	for _, u := range []*chat.User{{Username: "root", IsAdmin: true}, {Username: "teacher"}, {Username: "sam"}} {
		if err := st.CreateUser(t.Context(), u, hash); err != nil {
			t.Fatal(err)
		}
	}
	hub := ws.NewHub(ws.Config{Echo: true})
	if err := hub.Start(context.Background(), memory.New(hub.Receive)); err != nil {
		t.Fatal(err)
	}
	srv, err := web.NewServer(web.Config{Store: st}, hub)
	if err != nil {
		t.Fatal(err)
	}
	ts := httptest.NewServer(srv)
	t.Cleanup(func() {
		_ = hub.Shutdown(context.Background())
		ts.Close()
	})
	base := ts.URL

	login := func(ctx context.Context, name string) {
		t.Helper()
		run(t, ctx,
			chromedp.WaitVisible(chromedp.ID("id_username")),
			chromedp.SendKeys(chromedp.ID("id_username"), name),
			chromedp.SendKeys(chromedp.ID("id_password"), pw),
			chromedp.Click(chromedp.ID("login-submit")),
		)
	}

	// The administrator creates the course for the teacher...
	admin := browser(t)
	run(t, admin, chromedp.Navigate(base+"/manage/"))
	login(admin, "root")
	waitJS(t, admin, `location.pathname === '/manage/' && document.getElementById('manage-courses') !== null`)
	run(t, admin, chromedp.Click(chromedp.ID("manage-courses")))
	waitJS(t, admin, `location.pathname === '/manage/courses/' && document.getElementById('create-course-form') !== null`)
	run(t, admin,
		chromedp.SendKeys(chromedp.ID("id_title"), "Chemistry <101>"),
		chromedp.SetValue(chromedp.ID("id_owner"), "teacher"),
		chromedp.Click(chromedp.ID("create-course-submit")),
	)
	waitJS(t, admin, `/^\/manage\/courses\/\d+\/$/.test(location.pathname) && document.getElementById('notice') !== null`)
	if got := eval[string](t, admin, `document.getElementById('course-title').textContent + '|' + document.getElementById('course-owner').textContent`); got != "Chemistry <101>|teacher" {
		t.Fatalf("course page shows %q", got)
	}
	// ...and enrolls sam.
	run(t, admin,
		chromedp.SendKeys(chromedp.ID("id_username"), "sam"),
		chromedp.Click(chromedp.ID("enroll-submit")),
	)
	waitJS(t, admin, `document.querySelector('tr[data-user="sam"]') !== null &&
		document.getElementById('notice') !== null && document.getElementById('notice').textContent === 'Enrolled sam.'`)

	// Sam finds the course and enters its room.
	student := person(t, admin)
	run(t, student, chromedp.Navigate(base+"/courses/"))
	login(student, "sam")
	waitJS(t, student, `location.pathname === '/courses/' && document.querySelector('#course-list a') !== null`)
	if got := eval[string](t, student, `document.querySelector('#course-list a').textContent`); got != "Chemistry <101>" {
		t.Fatalf("sam's courses show %q", got)
	}
	run(t, student, chromedp.Click(chromedp.CSS(`#course-list a`)))
	waitJS(t, student, `document.getElementById('course-chat-link') !== null`)
	run(t, student, chromedp.Click(chromedp.ID("course-chat-link")))
	waitJS(t, student, `document.getElementById('status') !== null && document.getElementById('status').textContent === 'connected'`)
	run(t, student,
		chromedp.SendKeys(chromedp.ID("chat-message-input"), "hello, I am in\r"),
		poll(hasMessage("hello, I am in")),
	)

	// The administrator unenrolls sam; sam's page says so.
	run(t, admin, chromedp.Click(chromedp.ID("unenroll-sam")))
	waitJS(t, admin, `document.getElementById('notice') !== null && document.getElementById('notice').textContent.startsWith('Unenrolled sam') &&
		document.querySelector('tr[data-user="sam"]') === null`)
	waitJS(t, student, `document.getElementById('status').textContent === 'disconnected' &&
		[...document.querySelectorAll('#chat-log .system')].some(e => e.textContent.includes('You were removed from this course'))`)
}
