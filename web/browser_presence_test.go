package web_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatd/chat/ws"
)

// TestBrowserPresence: two people sign in (each in a browser of their
// own) and open their course's chat room: each sees the other in the
// room's list; when alice types, olga sees "alice is typing…", and it goes
// when alice sends; when alice's tab closes, olga sees her leave.
func TestBrowserPresence(t *testing.T) {
	const pw = "correct horse battery"
	base, courseID := startSchoolWith(t, pw, ws.Config{Echo: true, Presence: true, PresenceBatch: 20 * time.Millisecond})
	room := "/chat/room/" + strconv.FormatInt(courseID, 10) + "/"
	browsers := map[string]context.Context{"alice": browser(t), "olga": browser(t)}
	tabs := map[string]context.Context{}
	closeAlice := func() {}
	for _, name := range []string{"olga", "alice"} {
		ctx := browsers[name]
		run(t, ctx,
			chromedp.Navigate(base+"/accounts/login/?next="+room),
			chromedp.WaitVisible(chromedp.ID("id_username")),
			chromedp.SendKeys(chromedp.ID("id_username"), name),
			chromedp.SendKeys(chromedp.ID("id_password"), pw),
			chromedp.Click(chromedp.ID("login-submit")),
		)
		waitJS(t, ctx, `location.pathname === '`+room+`'`)
		tabs[name] = ctx
		if name == "alice" {
			// alice's room in a tab of its own, so that closing it is
			// closing a tab.
			tctx, cancel := chromedp.NewContext(ctx)
			t.Cleanup(cancel)
			failOnDialog(t, tctx)
			run(t, ctx, chromedp.Navigate("about:blank"))
			run(t, tctx, chromedp.Navigate(base+room))
			tabs[name], closeAlice = tctx, cancel
		}
	}
	for name, ctx := range tabs {
		waitJS(t, ctx, `document.getElementById('status').textContent === 'connected'`)
		// Each sees both, the other by name and themself marked "(me)".
		waitJS(t, ctx, `[...document.querySelectorAll('#presence li')].map(e => e.textContent).sort().join(',') === `+
			jsString(map[string]string{"alice": "alice (me),olga", "olga": "alice,olga (me)"}[name]))
		waitJS(t, ctx, `document.getElementById('presence-count').textContent === '2 people here'`)
	}
	run(t, tabs["alice"], chromedp.SendKeys(chromedp.ID("chat-message-input"), "hel"))
	waitJS(t, tabs["olga"], `document.getElementById('typing').textContent === 'alice is typing…'`)
	if got := eval[string](t, tabs["alice"], `document.getElementById('typing').textContent`); got != "" {
		t.Errorf("alice sees her own typing: %q", got)
	}
	run(t, tabs["alice"], chromedp.SendKeys(chromedp.ID("chat-message-input"), "lo\r"))
	waitJS(t, tabs["olga"], hasMessage("hello"))
	waitJS(t, tabs["olga"], `document.getElementById('typing').textContent === ''`)

	closeAlice()
	waitJS(t, tabs["olga"], `[...document.querySelectorAll('#presence li')].map(e => e.textContent).join(',') === 'olga (me)'`)
	waitJS(t, tabs["olga"], `[...document.querySelectorAll('#chat-log .presence-line')].some(e => e.textContent === 'alice left')`)
}
