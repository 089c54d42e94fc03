package web_test

import (
	"context"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"testing"

	"github.com/chromedp/chromedp"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/memory"
	"github.com/chatd/chat/password"
	"github.com/chatd/chat/sqlite"
	"github.com/chatd/chat/web"
	"github.com/chatd/chat/ws"
)

// startSchool serves chatd on a SQLite store holding a course owned by olga
// with alice enrolled; every account's password is pw.
func startSchool(t *testing.T, pw string) (base string, courseID int64) {
	t.Helper()
	return startSchoolWith(t, pw, ws.Config{Echo: true})
}

// startSchoolWith is startSchool with a hub configured by cfg.
func startSchoolWith(t *testing.T, pw string, cfg ws.Config) (base string, courseID int64) {
	t.Helper()
	st, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "chatd.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	hash, err := password.Hash(pw)
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]*chat.User{}
	for _, name := range []string{"olga", "alice"} {
		u := &chat.User{Username: name}
		if err := st.CreateUser(t.Context(), u, hash); err != nil {
			t.Fatal(err)
		}
		users[name] = u
	}
	c := &chat.Course{Title: "Django 101", OwnerID: users["olga"].ID}
	if err := st.CreateCourse(t.Context(), c); err != nil {
		t.Fatal(err)
	}
	if err := st.Enroll(t.Context(), c.ID, users["alice"].ID); err != nil {
		t.Fatal(err)
	}
	hub := ws.NewHub(cfg)
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
	return ts.URL, c.ID
}

// TestBrowserCourseRoomChat: two people sign in through the real login form
// (each in a browser of their own, so each has their own cookie), follow
// "Course chat room" from the course page, and chat; each sees "Me" on their
// own messages and the other's username on the other's.
func TestBrowserCourseRoomChat(t *testing.T) {
	const pw = "correct horse battery"
	base, courseID := startSchool(t, pw)
	course := "/courses/" + strconv.FormatInt(courseID, 10) + "/"
	tabs := map[string]context.Context{"alice": browser(t), "olga": browser(t)}
	for _, name := range []string{"alice", "olga"} {
		ctx := tabs[name]
		run(t, ctx,
			chromedp.Navigate(base+course),
			chromedp.WaitVisible(chromedp.ID("id_username")),
			chromedp.SendKeys(chromedp.ID("id_username"), name),
			chromedp.SendKeys(chromedp.ID("id_password"), pw),
			chromedp.Click(chromedp.ID("login-submit")),
		)
		// The login page sends the user back to the course page (?next=).
		waitJS(t, ctx, `location.pathname === '`+course+`' && document.getElementById('course-chat-link') !== null`)
		if who := eval[string](t, ctx, `document.getElementById('nav-user').textContent`); who != name {
			t.Errorf("nav shows %q, want %q", who, name)
		}
		run(t, ctx, chromedp.Click(chromedp.ID("course-chat-link")))
		waitJS(t, ctx, `document.getElementById('status') !== null && document.getElementById('status').textContent === 'connected'`)
		if title := eval[string](t, ctx, `document.getElementById('room-title').textContent`); title != "Django 101" {
			t.Errorf("room title %q", title)
		}
	}
	run(t, tabs["alice"], chromedp.SendKeys(chromedp.ID("chat-message-input"), "hello from alice\r"))
	run(t, tabs["olga"], poll(hasMessage("hello from alice")))
	run(t, tabs["olga"], chromedp.SendKeys(chromedp.ID("chat-message-input"), "hello from olga\r"))
	run(t, tabs["alice"], poll(hasMessage("hello from olga")))
	run(t, tabs["olga"], poll(hasMessage("hello from olga")))
	run(t, tabs["alice"], poll(hasMessage("hello from alice")))

	// authors returns "author|mine" for each message, in order.
	const authors = `[...document.querySelectorAll('#chat-log .msg')].map(e =>
		e.querySelector('.author').textContent + '|' + e.classList.contains('mine') + '|' + e.querySelector('.text').textContent).join('\n')`
	want := map[string]string{
		"alice": "Me|true|hello from alice\nolga|false|hello from olga",
		"olga":  "alice|false|hello from alice\nMe|true|hello from olga",
	}
	for name, ctx := range tabs {
		if got := eval[string](t, ctx, authors); got != want[name] {
			t.Errorf("%s sees:\n%s\nwant:\n%s", name, got, want[name])
		}
		if n := eval[int](t, ctx, `[...document.querySelectorAll('#chat-log .msg .when')].filter(e => /\d/.test(e.textContent)).length`); n != 2 {
			t.Errorf("%s: %d messages show a time, want 2", name, n)
		}
	}
}
