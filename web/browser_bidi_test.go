package web_test

import (
	"testing"

	"github.com/chromedp/chromedp"

	"github.com/chatd/chat/internal/wstest"
)

// TestBrowserBidiOverridesCannotReorder: a message carrying right-to-left
// overrides and isolates, sent over a real socket by a client that is not a
// browser, is shown in the room page without them, and every name and
// message text sits in its own isolated element (dir=auto, unicode-bidi:
// isolate), so nothing in it can reorder the rest of its line.
func TestBrowserBidiOverridesCannotReorder(t *testing.T) {
	base := startChatd(t, nil)
	ctx := browser(t)
	run(t, ctx, chromedp.Navigate(base+"/chat/bidi/"), poll(`document.getElementById('status').textContent === 'connected'`))

	c := wstest.Dial(t, wstest.WSURL(base, "/ws/chat/bidi/"), wstest.Options{})
	c.Send(t, map[string]string{"message": "pay \u202Eredro\u202C now \u2067x\u2069 \u202Aok\u202B!\u202D"})
	run(t, ctx, poll(hasMessage("pay redro now x ok!")))

	for _, sel := range []string{".msg .author", ".msg .text"} {
		q := `[...document.querySelectorAll('#chat-log ` + sel + `')].pop()`
		if dir := eval[string](t, ctx, q+`.dir`); dir != "auto" {
			t.Errorf("%s has dir %q, want auto", sel, dir)
		}
		if ub := eval[string](t, ctx, `getComputedStyle(`+q+`).unicodeBidi`); ub != "isolate" {
			t.Errorf("%s has unicode-bidi %q, want isolate", sel, ub)
		}
	}
	if n := eval[int](t, ctx, `[...document.getElementById('chat-log').textContent].filter(ch => /[\u202A-\u202E\u2066-\u2069]/.test(ch)).length`); n != 0 {
		t.Errorf("the log shows %d direction controls", n)
	}
}
