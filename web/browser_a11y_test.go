package web_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"
)

// Accessibility: every page is audited with axe-core (Deque's rules for
// WCAG 2.1 A and AA, colour contrast included, and its best practices) in
// real Chromium, and the room page is used from the keyboard alone.
//
// axe-core is not vendored. The test takes $CHATD_AXE_CORE (a path to
// axe.min.js; .ci/run installs it with npm), or installs axe-core@4 with
// npm into the user's cache directory. Where neither works it skips,
// saying so – unless CI=true or CHATD_REQUIRE_BROWSER=1, where it fails.

// axeScript returns the source of axe.min.js.
func axeScript(t *testing.T) string {
	t.Helper()
	path := os.Getenv("CHATD_AXE_CORE")
	if path == "" {
		cache, err := os.UserCacheDir()
		if err != nil {
			cache = os.TempDir()
		}
		dir := filepath.Join(cache, "chatd-test", "axe")
		path = filepath.Join(dir, "node_modules", "axe-core", "axe.min.js")
		if _, err := os.Stat(path); err != nil {
			npm, err := exec.LookPath("npm")
			if err == nil {
				ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
				out, ierr := exec.CommandContext(ctx, npm, "install", "--prefix", dir, "--no-audit", "--no-fund", "--loglevel", "error", "axe-core@4").CombinedOutput()
				cancel()
				if ierr != nil {
					err = ierr
					t.Logf("npm install axe-core: %v\n%s", ierr, out)
				}
			}
			if err != nil {
				if requireBrowser() {
					t.Fatalf("axe-core is not installed and could not be (%v), and CI=true or CHATD_REQUIRE_BROWSER=1 is set: "+
						"install it (npm install --prefix DIR axe-core@4) and set CHATD_AXE_CORE=DIR/node_modules/axe-core/axe.min.js", err)
				}
				t.Skipf("axe-core could not be installed (%v): accessibility audit skipped; "+
					"set CHATD_AXE_CORE=/path/to/axe.min.js to run it", err)
			}
		}
	}
	src, err := os.ReadFile(path)
	if err != nil {
		if requireBrowser() {
			t.Fatalf("axe-core: %v (CHATD_AXE_CORE names axe.min.js; CI=true or CHATD_REQUIRE_BROWSER=1 requires it)", err)
		}
		t.Skipf("axe-core: %v: accessibility audit skipped; set CHATD_AXE_CORE=/path/to/axe.min.js to run it", err)
	}
	return string(src)
}

// audit runs axe-core on the tab's page and reports every violation.
func audit(t *testing.T, ctx context.Context, axe, what string) {
	t.Helper()
	if !eval[bool](t, ctx, `typeof axe !== 'undefined'`) {
		// Runtime.evaluate is not subject to the page's Content-Security-Policy.
		if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](axe+";true")); err != nil {
			t.Fatalf("load axe-core: %v", err)
		}
	}
	violations, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`axe.run(document, {
			runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice']},
			resultTypes: ['violations'],
		}).then(r => r.violations.map(v => v.id + ' (' + v.impact + '): ' + v.help + '\n    ' +
			v.nodes.map(n => n.target.join(' ') + ' – ' + (n.failureSummary || '').replace(/\s+/g, ' ')).join('\n    ')))`,
		chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("%s: axe.run: %v", what, err)
	}
	t.Logf("%s: audited", what)
	for _, v := range violations {
		t.Errorf("%s: %s", what, v)
	}
}

// probeAudit checks that the audit can fail: a grey-on-white line added
// to the page must be reported (color-contrast), and the page is clean
// again once it is removed.
func probeAudit(t *testing.T, ctx context.Context, axe string) {
	t.Helper()
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](axe+";true")); err != nil {
		t.Fatalf("load axe-core: %v", err)
	}
	eval[bool](t, ctx, `(() => { const p = document.createElement('p'); p.id = 'axe-probe'; p.textContent = 'hard to read';
		p.style.color = '#bbbbbb'; p.style.background = '#ffffff'; document.querySelector('main').appendChild(p); return true; })()`)
	ids, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`axe.run(document, {runOnly: {type: 'rule', values: ['color-contrast']}})
		.then(r => r.violations.flatMap(v => v.nodes.map(n => n.target.join(' '))))`, chromedp.EvalAwaitPromise))
	if err != nil || len(ids) != 1 || ids[0] != "#axe-probe" {
		t.Fatalf("the audit did not catch a grey-on-white line: %v %v", ids, err)
	}
	eval[bool](t, ctx, `document.getElementById('axe-probe').remove(); true`)
}

// TestBrowserAccessibility audits every kind of page, signed in and as a
// guest, in English on a desktop and in Spanish on a phone: forms, the
// room list with unread badges, a course room with the teacher mark, day
// lines, a pending and a failed message, an error page.
func TestBrowserAccessibility(t *testing.T) {
	axe := axeScript(t)
	s := startSchoolChatd(t)
	base := s.srv.URL
	room := "/chat/room/" + s.course + "/"
	for _, tc := range []struct {
		lang  string
		width int64
	}{{"en", 1280}, {"es", 375}} {
		t.Run(tc.lang, func(t *testing.T) {
			b := browser(t)
			guest := uiTab(t, b, tc.lang, "", tc.width)
			for _, p := range []struct{ path, ready string }{
				{"/chat/", `true`},
				{"/accounts/login/", `true`},
				{"/accounts/signup/", `true`},
				{"/accounts/profile/", `document.getElementById('id_nickname') !== null`},
				{"/no/such/page/", `true`},
				{"/chat/lobby/", pageOnline},
			} {
				open(t, guest, base, p.path, p.ready)
				if p.path == "/chat/" {
					probeAudit(t, guest, axe)
				}
				audit(t, guest, axe, tc.lang+" guest "+p.path)
			}
			// A failed message with its Retry / Edit / Discard buttons.
			run(t, guest,
				chromedp.SetValue(chromedp.ID("chat-message-input"), "\u0085"),
				chromedp.SendKeys(chromedp.ID("chat-message-input"), "\r"),
			)
			open(t, guest, base, "/chat/lobby/", pageOnline+` && document.querySelector('#chat-log .msg.failed') !== null`)
			audit(t, guest, axe, tc.lang+" guest, a failed message")

			olga, alice := uiTab(t, b, tc.lang, "", tc.width), uiTab(t, b, tc.lang, "", tc.width)
			logIn(t, olga, base, "olga", room)
			waitJS(t, olga, pageOnline)
			say(t, olga, "Welcome, "+tc.lang)
			logIn(t, alice, base, "alice", "/chat/dm/bob/")
			waitJS(t, alice, pageOnline)
			say(t, alice, "hello bob")
			waitJS(t, alice, hasMessage("hello bob"))
			for _, p := range []struct{ path, ready string }{
				{room, pageOnline + ` && ` + hasMessage("Welcome, "+tc.lang)},
				{"/chat/", `true`},
				{"/courses/", `true`},
				{"/courses/" + s.course + "/", `true`},
				{"/users/", `true`},
				{"/accounts/profile/", `true`},
				{"/chat/room/999/", `true`},
			} {
				open(t, alice, base, p.path, p.ready)
				audit(t, alice, axe, tc.lang+" alice "+p.path)
			}
			bob := uiTab(t, b, tc.lang, "", tc.width)
			logIn(t, bob, base, "bob", "/chat/")
			waitJS(t, bob, `document.querySelector('#dm-rooms .badge.unread:not([hidden])') !== null && document.querySelector('#nav-unread:not([hidden])') !== null`)
			audit(t, bob, axe, tc.lang+" bob's room list with unread counts")
		})
	}
}

// TestBrowserKeyboard: the room page from the keyboard alone. The first
// Tab reaches the skip link, which jumps past the header; Tab reaches the
// message box, typing and Enter send; Tab reaches a failed message's
// Retry, Edit and Discard, and Enter on Discard drops it; the language
// form is reached with Tab, its language chosen by typing, and Enter
// changes the page's language.
func TestBrowserKeyboard(t *testing.T) {
	srv := startHistoryChatd(t)
	b := browser(t)
	ctx := uiTab(t, b, "en", "", 1280)
	open(t, ctx, srv.URL, "/chat/lobby/", pageOnline)
	const active = `(document.activeElement.id || document.activeElement.className || document.activeElement.tagName)`
	// The message box has the focus on arrival; type and send.
	if got := eval[string](t, ctx, active); got != "chat-message-input" {
		t.Fatalf("focus on arrival: %s", got)
	}
	run(t, ctx, chromedp.KeyEvent("typed, not clicked"), chromedp.KeyEvent(kb.Enter))
	waitJS(t, ctx, hasMessage("typed, not clicked"))

	// tabTo presses Tab until cond holds of the focused element (at most
	// 40 times) and returns how many it took.
	tabTo := func(cond string, shift bool) int {
		t.Helper()
		for i := 1; i <= 40; i++ {
			var opts []chromedp.KeyOption
			if shift {
				opts = append(opts, chromedp.KeyModifiers(chromedp.ModifierShift))
			}
			run(t, ctx, chromedp.KeyEvent(kb.Tab, opts...))
			if eval[bool](t, ctx, cond) {
				return i
			}
		}
		t.Fatalf("Tab never reached %s (focus on %s)", cond, eval[string](t, ctx, active))
		return 0
	}

	// From the top: the skip link first, and it skips the header.
	run(t, ctx, chromedp.Navigate(srv.URL+"/chat/lobby/"))
	waitJS(t, ctx, pageOnline)
	eval[bool](t, ctx, `document.activeElement.blur(); true`)
	tabTo(`document.activeElement.classList.contains('skip')`, false)
	run(t, ctx, chromedp.KeyEvent(kb.Enter))
	waitJS(t, ctx, `location.hash === '#main' && document.activeElement.id === 'main'`)
	tabTo(`document.activeElement.id === 'chat-log' || document.activeElement.id === 'chat-message-input'`, false)

	// A refused message: its buttons are reached and used with the keys.
	run(t, ctx, chromedp.Focus(chromedp.ID("chat-message-input")))
	run(t, ctx, chromedp.SetValue(chromedp.ID("chat-message-input"), "\u0085"), chromedp.KeyEvent(kb.Enter))
	waitJS(t, ctx, `document.querySelector('#chat-log .msg.failed button.discard') !== null`)
	run(t, ctx, chromedp.Focus(chromedp.ID("chat-message-input")))
	tabTo(`document.activeElement.classList.contains('discard')`, true)
	run(t, ctx, chromedp.KeyEvent(kb.Enter))
	waitJS(t, ctx, `document.querySelector('#chat-log .msg.failed') === null`)

	// The language form.
	run(t, ctx, chromedp.Focus(chromedp.ID("chat-message-input")))
	tabTo(`document.activeElement.id === 'language-select'`, false)
	run(t, ctx, chromedp.KeyEvent("Esp"))
	if got := eval[string](t, ctx, `document.getElementById('language-select').value`); got != "es" {
		t.Fatalf("typing Esp on the language list chose %q", got)
	}
	tabTo(`document.activeElement.id === 'language-submit'`, false)
	run(t, ctx, chromedp.KeyEvent(kb.Enter))
	waitJS(t, ctx, `document.documentElement.lang === 'es' && location.pathname === '/chat/lobby/' && document.getElementById('status').textContent === 'conectado'`)
	if !strings.Contains(eval[string](t, ctx, `document.body.innerText`), "Escribe un mensaje") &&
		eval[string](t, ctx, `document.getElementById('chat-message-input').placeholder`) != "Escribe un mensaje…" {
		t.Error("the room page did not change language")
	}
}

// TestAccessibilityAuditRequiredInCI runs TestBrowserAccessibility in a
// child process with axe-core missing: where CI=true or
// CHATD_REQUIRE_BROWSER=1 it must fail (CI must not go green without the
// audit), elsewhere it skips with a message saying how to run it.
func TestAccessibilityAuditRequiredInCI(t *testing.T) {
	if os.Getenv("CHATD_TEST_CHILD") != "" {
		t.Skip("already a child")
	}
	missing := filepath.Join(t.TempDir(), "axe.min.js")
	for _, tc := range []struct {
		env  []string
		fail bool
	}{
		{[]string{"CI=true"}, true},
		{nil, false},
	} {
		cmd := exec.Command(os.Args[0], "-test.run", "^TestBrowserAccessibility$", "-test.count", "1", "-test.v")
		cmd.Env = append(withoutEnv("CI", "CHATD_REQUIRE_BROWSER", "CHATD_AXE_CORE"),
			append([]string{"CHATD_AXE_CORE=" + missing, "CHATD_TEST_CHILD=1"}, tc.env...)...)
		out, err := cmd.CombinedOutput()
		switch {
		case tc.fail && (err == nil || !strings.Contains(string(out), "axe-core")):
			t.Errorf("with %v and no axe-core: %v\n%s", tc.env, err, out)
		case !tc.fail && (err != nil || !strings.Contains(string(out), "--- SKIP") || !strings.Contains(string(out), "CHATD_AXE_CORE")):
			t.Errorf("without CI it should skip and say how to run it: %v\n%s", err, out)
		}
	}
}
