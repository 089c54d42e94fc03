package web_test

import (
	"context"
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/chromedp"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/testserver"
	"github.com/chatd/chat/sqlite"
)

// The pages as a person meets them: in English, Spanish and Portuguese, on a
// desktop and on a 375-pixel phone; names, guests and teachers; unread
// counts; lost access; a server that cannot store. Every test runs the
// real chatd binary, seeded through its own admin commands, and real
// headless Chromium. Screenshots go to $CHATD_SCREENSHOTS (a temporary
// directory otherwise); what they must show is asserted on the page itself
// (element boxes, texts, attributes), not by comparing pixels.

const uiPassword = "a long password"

// pageOnline is a language-neutral "connected": the status's class.
const pageOnline = `document.getElementById('status') !== null && document.getElementById('status').classList.contains('online')`

// uiSchool is a chatd with a course: olga ("Olga Petrova") teaches
// "Django 101", alice ("Alice Liddell") is enrolled, bob has no display name.
type uiSchool struct {
	srv    *testserver.Server
	course string // the course's id
}

// startSchoolChatd starts chatd (history on, quick unread polls and
// access re-checks; args are added) and creates the school with chatd's
// admin commands on its database.
func startSchoolChatd(t *testing.T, args ...string) *uiSchool {
	t.Helper()
	chromium(t) // skip before building chatd if there is no browser
	srv := testserver.Start(t, append([]string{"-history", "on", "-unread-poll-interval", "300ms", "-access-recheck", "200ms"}, args...))
	s := &uiSchool{srv: srv}
	s.admin(t, "createuser", "--display-name", "Olga Petrova", "olga")
	s.admin(t, "createuser", "--display-name", "Alice Liddell", "alice")
	s.admin(t, "createuser", "bob")
	out := s.admin(t, "createcourse", "--owner", "olga", "Django", "101")
	s.course = regexp.MustCompile(`\d+`).FindString(out)
	if s.course == "" {
		t.Fatalf("createcourse printed no id: %q", out)
	}
	s.admin(t, "enroll", s.course, "alice")
	return s
}

// admin runs a chatd admin command on the school's database.
func (s *uiSchool) admin(t *testing.T, args ...string) string {
	t.Helper()
	cmd := exec.Command(testserver.Binary(t), args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + os.Getenv("HOME"), "DATA_DIR=" + s.srv.DataDir, "CHATD_PASSWORD=" + uiPassword}
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("chatd %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// uiTab opens a tab in a browser context of its own (its own cookies) that
// asks for lang (Accept-Language and navigator.languages) in the time
// zone tz, width pixels wide (a phone, with mobile emulation, under 600).
func uiTab(t *testing.T, ctx context.Context, lang, tz string, width int64) context.Context {
	t.Helper()
	tctx := person(t, ctx)
	ua := eval[string](t, tctx, `navigator.userAgent`)
	height := int64(900)
	opts := []chromedp.EmulateViewportOption{}
	if width < 600 {
		height = 812
		opts = append(opts, chromedp.EmulateMobile, chromedp.EmulateTouch, chromedp.EmulatePortrait)
	}
	run(t, tctx,
		chromedp.EmulateViewport(width, height, opts...),
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
			if _, err := cdp.Call(ctx, tg, emulation.SetUserAgentOverride, emulation.SetUserAgentOverrideParams{UserAgent: ua, AcceptLanguage: lang}); err != nil {
				return err
			}
			if tz == "" {
				return nil
			}
			_, err := cdp.Call(ctx, tg, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: tz})
			return err
		}),
	)
	return tctx
}

// logIn signs name in through the login form and waits for next.
func logIn(t *testing.T, ctx context.Context, base, name, next string) {
	t.Helper()
	run(t, ctx,
		chromedp.Navigate(base+"/accounts/login/?next="+url.QueryEscape(next)),
		chromedp.WaitVisible(chromedp.ID("id_username")),
		chromedp.SendKeys(chromedp.ID("id_username"), name),
		chromedp.SendKeys(chromedp.ID("id_password"), uiPassword),
		chromedp.Click(chromedp.ID("login-submit")),
	)
	waitJS(t, ctx, `location.pathname === `+jsString(next))
}

// open navigates to path and waits until cond holds on the new page.
func open(t *testing.T, ctx context.Context, base, path, cond string) {
	t.Helper()
	run(t, ctx, chromedp.Navigate(base+path))
	waitJS(t, ctx, `location.pathname === `+jsString(strings.SplitN(path, "?", 2)[0])+` && document.readyState === 'complete' && (`+cond+`)`)
}

// shotDir is where screenshots go.
func shotDir(t *testing.T) string {
	if d := os.Getenv("CHATD_SCREENSHOTS"); d != "" {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		return d
	}
	return t.TempDir()
}

// screenshot saves the tab's viewport as name.png.
func screenshot(t *testing.T, ctx context.Context, dir, name string) {
	t.Helper()
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// layoutProblems is a JS expression: what is wrong with the page's layout
// at this width, "" if nothing. Every control of the header (and the
// composer's) must lie within the viewport, nothing may make the page
// scroll sideways, and the signed-in username must be shown whole.
const layoutProblems = `(() => {
	const vw = document.documentElement.clientWidth, bad = [];
	for (const e of document.querySelectorAll('header.top a, header.top button, header.top select, header.top .badge:not([hidden]), #send-form input, #send-form button, .foot select, .foot button')) {
		const r = e.getBoundingClientRect();
		if (r.width === 0 && r.height === 0) continue;
		if (r.left < -0.5 || r.right > vw + 0.5) bad.push('"' + e.textContent.trim() + '" at ' + Math.round(r.left) + '..' + Math.round(r.right) + ' of ' + vw);
	}
	if (document.documentElement.scrollWidth > vw + 1) bad.push('the page scrolls sideways (' + document.documentElement.scrollWidth + ' > ' + vw + ')');
	const who = document.getElementById('nav-user');
	if (who && who.scrollWidth > who.clientWidth + 1) bad.push('the username is cut: ' + who.textContent);
	return bad.join('; ');
})()`

// navTexts is a JS expression: the header's link and button texts.
const navTexts = `[...document.querySelectorAll('header.top nav a, header.top nav button')].map(e => e.childNodes[0].textContent.trim())`

// TestBrowserLanguagesAndWidths: alice reads the site in each language –
// Spanish chosen by her browser's Accept-Language, Portuguese by the
// language form (then remembered against her browser's wish) – on a
// desktop and on a 375-pixel phone. On every page the header's controls
// are all on screen, her username whole, the page in her language (lang
// attribute, labels, the room's status), and the course page names "My
// courses" once.
func TestBrowserLanguagesAndWidths(t *testing.T) {
	s := startSchoolChatd(t)
	base := s.srv.URL
	b := browser(t)
	dir := shotDir(t)
	course := "/courses/" + s.course + "/"
	room := "/chat/room/" + s.course + "/"
	type words struct {
		rooms, courses, logout, connected, send, profile string
	}
	want := map[string]words{
		"en": {"Rooms", "My courses", "Log out", "connected", "Send", "Your profile"},
		"es": {"Salas", "Mis cursos", "Cerrar sesión", "conectado", "Enviar", "Tu perfil"},
		"pt": {"Salas", "Meus cursos", "Sair", "conectado", "Enviar", "Seu perfil"},
	}
	for _, lang := range []string{"en", "es", "pt"} {
		for _, width := range []int64{1280, 375} {
			t.Run(fmt.Sprintf("%s/%d", lang, width), func(t *testing.T) {
				accept := map[string]string{"en": "en-GB,en", "es": "es-ES,es", "pt": "es-AR,es"}[lang]
				ctx := uiTab(t, b, accept, "", width)
				logIn(t, ctx, base, "alice", "/chat/")
				if lang == "pt" {
					// Her browser asks for Spanish; she picks Portuguese.
					// Through the page's own form, in one evaluation that is
					// retried until the form is there: a page still settling
					// after the login's redirect may replace its nodes under
					// a two-step SetValue and Click.
					waitJS(t, ctx, `(() => { const s = document.getElementById('language-select');
						if (!s || document.readyState !== 'complete') return false;
						s.value = 'pt'; document.getElementById('language-submit').click(); return true })()`)
					waitJS(t, ctx, `document.documentElement.lang === 'pt' && location.pathname === '/chat/'`)
				}
				w := want[lang]
				pages := []struct {
					name, path, ready, text string
				}{
					{"rooms", "/chat/", `true`, w.courses},
					{"course", course, `document.getElementById('course-chat-link') !== null`, w.courses},
					{"room", room, pageOnline, w.connected},
					{"profile", "/accounts/profile/", `document.getElementById('profile-form') !== null`, w.profile},
				}
				for _, p := range pages {
					open(t, ctx, base, p.path, p.ready)
					screenshot(t, ctx, dir, fmt.Sprintf("%s-%d-%s", lang, width, p.name))
					if got := eval[string](t, ctx, `document.documentElement.lang`); got != lang {
						t.Errorf("%s: lang=%q, want %q", p.name, got, lang)
					}
					if bad := eval[string](t, ctx, layoutProblems); bad != "" {
						t.Errorf("%s at %d px: %s", p.name, width, bad)
					}
					nav := eval[[]string](t, ctx, navTexts)
					for _, label := range []string{w.rooms, w.courses, w.logout, "alice"} {
						n := 0
						for _, l := range nav {
							if l == label {
								n++
							}
						}
						if n != 1 {
							t.Errorf("%s: the header shows %q %d times, want once: %q", p.name, label, n, nav)
						}
					}
					if body := eval[string](t, ctx, `document.body.innerText`); !strings.Contains(body, p.text) {
						t.Errorf("%s: the page does not say %q:\n%s", p.name, p.text, body)
					}
				}
				// In the room: the composer speaks her language too.
				open(t, ctx, base, room, pageOnline)
				if got := eval[string](t, ctx, `document.getElementById('chat-message-submit').textContent`); got != w.send {
					t.Errorf("send button %q, want %q", got, w.send)
				}
				if got := eval[string](t, ctx, `document.getElementById('status').textContent`); got != w.connected {
					t.Errorf("status %q, want %q", got, w.connected)
				}
			})
		}
	}
}

// TestBrowserDatesInLocale: messages from three days ago, yesterday and
// today (stored before chatd starts) are shown under day lines – a date,
// "Yesterday", "Today" in the reader's language – with times in the
// reader's time zone: today's by time alone, older ones with the date.
// The time zone is chosen so that it is mid-day there, so no midnight
// falls inside the test.
func TestBrowserDatesInLocale(t *testing.T) {
	chromium(t)
	dir := t.TempDir()
	// A fixed-offset zone where it is about noon now.
	now := time.Now().UTC()
	offset := 12 - now.Hour() // local = UTC + offset
	if offset > 12 {
		offset -= 24
	} else if offset < -12 {
		offset += 24
	}
	tzName := "Etc/GMT" // POSIX-style names: Etc/GMT-3 is UTC+3
	switch {
	case offset > 0:
		tzName += fmt.Sprintf("-%d", offset)
	case offset < 0:
		tzName += fmt.Sprintf("+%d", -offset)
	}
	zone := time.FixedZone("test", offset*3600)
	local := now.In(zone)
	day := func(daysAgo int, hour, minute int) time.Time {
		return time.Date(local.Year(), local.Month(), local.Day()-daysAgo, hour, minute, 0, 0, zone)
	}
	st, err := sqlite.Open(t.Context(), filepath.Join(dir, "chatd.db"))
	if err != nil {
		t.Fatal(err)
	}
	today := day(0, local.Hour(), 0)
	if today.After(now) {
		today = today.Add(-time.Hour)
	}
	msgs := []*chat.Message{
		{Room: "chat:lobby", User: "guest-0000000001", Name: "Ana", Text: "three days ago", Time: day(3, 9, 5)},
		{Room: "chat:lobby", User: "guest-0000000001", Name: "Ana", Text: "yesterday", Time: day(1, 10, 15)},
		{Room: "chat:lobby", User: "guest-0000000002", Text: "today", Time: today},
	}
	if err := st.AppendMessages(t.Context(), msgs); err != nil {
		t.Fatal(err)
	}
	st.Close()
	srv := testserver.Start(t, []string{"-history", "on"}, "DATA_DIR="+dir)
	b := browser(t)
	for _, tc := range []struct {
		accept          string
		today, yest     string
		weekdayOfThree  string
		yesterdayHasDay bool
	}{
		{"en-US", "Today", "Yesterday", msgs[0].Time.Weekday().String(), true},
		{"es-ES,es", "Hoy", "Ayer", []string{"Domingo", "Lunes", "Martes", "Miércoles", "Jueves", "Viernes", "Sábado"}[msgs[0].Time.Weekday()], true},
		{"pt-BR,pt", "Hoje", "Ontem", []string{"Domingo", "Segunda-feira", "Terça-feira", "Quarta-feira", "Quinta-feira", "Sexta-feira", "Sábado"}[msgs[0].Time.Weekday()], true},
	} {
		ctx := uiTab(t, b, tc.accept, tzName, 1280)
		open(t, ctx, srv.URL, "/chat/lobby/", pageOnline+` && `+hasMessage("today"))
		screenshot(t, ctx, shotDir(t), "dates-"+tc.accept[:2])
		lines := eval[[]string](t, ctx, `[...document.querySelectorAll('#chat-log > li:not(.older)')].map(e =>
			(e.classList.contains('day') ? 'DAY ' + e.textContent : e.querySelector('.text').textContent + ' @ ' + e.querySelector('.when').textContent).replace(/\s+/g, ' '))`)
		if len(lines) != 6 {
			t.Fatalf("%s: the log reads %q; want 3 day lines and 3 messages", tc.accept, lines)
		}
		if !strings.HasPrefix(lines[0], "DAY "+tc.weekdayOfThree) || lines[2] != "DAY "+tc.yest || lines[4] != "DAY "+tc.today {
			t.Errorf("%s: day lines %q, %q, %q; want %s…, %s, %s", tc.accept, lines[0], lines[2], lines[4], tc.weekdayOfThree, tc.yest, tc.today)
		}
		// Times in the zone: 09:05 three days ago, 10:15 yesterday (each
		// with its date), today's time alone.
		hhmm := func(tm time.Time) string { return tm.In(zone).Format("15:04") }
		todayAt := "today @ " + hhmm(today)
		if tc.accept == "en-US" {
			todayAt = "today @ " + today.In(zone).Format("03:04 PM")
		}
		if !strings.Contains(lines[1], "09:05") || !strings.Contains(lines[3], "10:15") || lines[5] != todayAt {
			t.Errorf("%s: times %q, %q, %q; want 09:05 and 10:15 with dates, and %q", tc.accept, lines[1], lines[3], lines[5], todayAt)
		}
		if lines[1] == "three days ago @ 09:05" || lines[3] == "yesterday @ 10:15" {
			t.Errorf("%s: an older message shows its time without the date: %q", tc.accept, lines)
		}
	}
}

// TestBrowserGuestName: a guest keeps one name across reloads and
// reconnects, is visibly a guest, and can choose a nickname – not a
// reserved one, not one that reads like an account's name – which others
// see beside the word "guest" and which survives a reload too.
func TestBrowserGuestName(t *testing.T) {
	s := startSchoolChatd(t)
	base := s.srv.URL
	b := browser(t)
	guest := uiTab(t, b, "en", "", 1280)
	other := uiTab(t, b, "en", "", 1280)
	open(t, guest, base, "/chat/lobby/", pageOnline)
	open(t, other, base, "/chat/lobby/", pageOnline)
	name := eval[string](t, guest, `document.getElementById('nav-guest').querySelector('bdi').textContent`)
	if !strings.HasPrefix(name, "guest-") || eval[string](t, guest, `document.querySelector('#nav-guest .badge').textContent`) != "guest" {
		t.Fatalf("the header shows the guest as %q", eval[string](t, guest, `document.getElementById('nav-guest').textContent`))
	}
	say(t, guest, "before the reload")
	run(t, other, poll(hasMessage("before the reload")))
	run(t, guest, chromedp.Reload())
	waitJS(t, guest, pageOnline+` && `+hasMessage("before the reload"))
	if got := eval[string](t, guest, `document.getElementById('nav-guest').querySelector('bdi').textContent`); got != name {
		t.Errorf("after a reload the guest is %q, was %q", got, name)
	}
	say(t, guest, "after the reload")
	run(t, other, poll(hasMessage("after the reload")))
	const authors = `[...document.querySelectorAll('#chat-log .msg')].map(e => e.querySelector('.author').textContent + (e.querySelector('.badge.guest') ? ' [guest]' : '') + ': ' + e.querySelector('.text').textContent).join('\n')`
	if got, want := eval[string](t, other, authors), name+" [guest]: before the reload\n"+name+" [guest]: after the reload"; got != want {
		t.Errorf("the other person sees:\n%s\nwant:\n%s", got, want)
	}
	if got, want := eval[string](t, guest, authors), "Me [guest]: before the reload\nMe [guest]: after the reload"; got != want {
		t.Errorf("the guest sees:\n%s\nwant:\n%s", got, want)
	}

	// The room list remembers the rooms this browser was in.
	open(t, guest, base, "/chat/", `document.getElementById('recent-list') !== null`)
	if got := eval[string](t, guest, `[...document.querySelectorAll('#recent-list a')].map(a => a.textContent + ' ' + a.getAttribute('href')).join(',')`); got != "#lobby /chat/lobby/" {
		t.Errorf("the guest's recent rooms: %q", got)
	}

	// A nickname: refused when reserved or like an account, then taken.
	for _, tc := range []struct{ nick, says string }{
		{"Admin", "reserved"},
		{"AIice", "reads like the account"},
		{"Pablo!", "only letters"},
	} {
		open(t, guest, base, "/accounts/profile/", `document.getElementById('id_nickname') !== null`)
		run(t, guest,
			chromedp.SetValue(chromedp.ID("id_nickname"), tc.nick),
			chromedp.Click(chromedp.ID("profile-submit")),
		)
		waitJS(t, guest, `document.getElementById('profile-error') !== null && document.getElementById('profile-error').textContent.includes(`+jsString(tc.says)+`)`)
	}
	run(t, guest,
		chromedp.SetValue(chromedp.ID("id_nickname"), "Pablo Ruiz"),
		chromedp.Click(chromedp.ID("profile-submit")),
	)
	waitJS(t, guest, `document.getElementById('profile-saved') !== null && document.getElementById('profile-saved').textContent !== ''`)
	open(t, guest, base, "/chat/lobby/", pageOnline)
	say(t, guest, "with a nickname")
	run(t, other, poll(hasMessage("with a nickname")))
	last := `(() => { const e = [...document.querySelectorAll('#chat-log .msg')].pop(); return e.querySelector('.author').textContent + '|' + (e.querySelector('.badge.guest') || {}).textContent; })()`
	if got := eval[string](t, other, last); got != "Pablo Ruiz|guest" {
		t.Errorf("the other person sees the nickname as %q, want Pablo Ruiz marked guest", got)
	}
	// The name the older messages were written under stays theirs.
	if got := eval[string](t, other, `document.querySelector('#chat-log .msg .author').textContent`); got != name {
		t.Errorf("the first message now shows %q, want %q", got, name)
	}
	run(t, other, chromedp.Reload())
	waitJS(t, other, pageOnline+` && `+hasMessage("with a nickname"))
	run(t, guest, chromedp.Reload())
	waitJS(t, guest, pageOnline)
	if got := eval[string](t, guest, `document.getElementById('nav-guest').textContent.trim().replace(/\s+/g, ' ')`); got != "Pablo Ruiz guest" {
		t.Errorf("after a reload the guest's header shows %q", got)
	}
	say(t, guest, "still Pablo")
	run(t, other, poll(hasMessage("still Pablo")))
	if got := eval[string](t, other, last); got != "Pablo Ruiz|guest" {
		t.Errorf("after a reload the nickname is %q", got)
	}
}

// TestBrowserNamesAndTeacher: in the course room each person sees the
// other's display name with the username beside it; the course's owner
// is marked as the teacher (on both pages), a student is not. A rename on
// the profile page shows on later messages; earlier ones keep the name
// they were written under.
func TestBrowserNamesAndTeacher(t *testing.T) {
	s := startSchoolChatd(t)
	base := s.srv.URL
	room := "/chat/room/" + s.course + "/"
	b := browser(t)
	olga, alice := uiTab(t, b, "en", "", 1280), uiTab(t, b, "es", "", 375)
	logIn(t, olga, base, "olga", room)
	logIn(t, alice, base, "alice", room)
	waitJS(t, olga, pageOnline)
	waitJS(t, alice, pageOnline)
	say(t, olga, "Welcome to Django 101")
	say(t, alice, "Thank you!")
	for _, ctx := range []context.Context{olga, alice} {
		run(t, ctx, poll(hasMessage("Welcome to Django 101")+` && `+hasMessage("Thank you!")))
	}
	const people = `[...document.querySelectorAll('#chat-log .msg')].map(e => [e.querySelector('.author'), e.querySelector('.handle'),
		e.querySelector('.badge.teacher'), e.querySelector('.text')].map(x => x ? x.textContent : '-').join('|')).join('\n')`
	if got, want := eval[string](t, alice, people), "Olga Petrova|@olga|docente|Welcome to Django 101\nYo|-|-|Thank you!"; got != want {
		t.Errorf("alice sees:\n%s\nwant:\n%s", got, want)
	}
	if got, want := eval[string](t, olga, people), "Me|-|teacher|Welcome to Django 101\nAlice Liddell|@alice|-|Thank you!"; got != want {
		t.Errorf("olga sees:\n%s\nwant:\n%s", got, want)
	}
	if sub := eval[string](t, alice, `document.querySelector('.chat-head .sub').textContent`); !strings.Contains(sub, "Olga Petrova (olga)") {
		t.Errorf("the room's subtitle does not name the teacher: %q", sub)
	}
	screenshot(t, alice, shotDir(t), "teacher-es-375")
	screenshot(t, olga, shotDir(t), "teacher-en-1280")

	open(t, alice, base, "/accounts/profile/", `document.getElementById('id_display_name') !== null`)
	run(t, alice,
		chromedp.SetValue(chromedp.ID("id_display_name"), "Alicia L."),
		chromedp.Click(chromedp.ID("profile-submit")),
	)
	waitJS(t, alice, `document.getElementById('profile-saved').textContent !== ''`)
	open(t, alice, base, room, pageOnline)
	say(t, alice, "renamed")
	run(t, olga, poll(hasMessage("renamed")))
	const authors = `[...document.querySelectorAll('#chat-log .msg')].map(e => e.querySelector('.author').textContent).join(',')`
	if got, want := eval[string](t, olga, authors), "Me,Alice Liddell,Alicia L."; got != want {
		t.Errorf("after the rename olga sees the authors %s, want %s", got, want)
	}
}

// TestBrowserUnreadCounts: bob is on his courses page when alice writes to
// him: a badge appears in his header, counts her second message too, and
// /chat/ lists the conversation with its count; reading it clears both.
// alice's own messages never count for her.
func TestBrowserUnreadCounts(t *testing.T) {
	s := startSchoolChatd(t)
	base := s.srv.URL
	b := browser(t)
	alice, bob := uiTab(t, b, "en", "", 1280), uiTab(t, b, "pt", "", 375)
	logIn(t, bob, base, "bob", "/courses/")
	logIn(t, alice, base, "alice", "/chat/dm/bob/")
	waitJS(t, alice, pageOnline)
	const badge = `(() => { const b = document.getElementById('nav-unread'); return b && !b.hidden ? b.dataset.count : '0'; })()`
	if got := eval[string](t, bob, badge); got != "0" {
		t.Fatalf("bob's badge shows %s before any message", got)
	}
	say(t, alice, "are you there?")
	waitJS(t, bob, badge+` === '1'`)
	if label := eval[string](t, bob, `document.getElementById('nav-unread').textContent`); !strings.Contains(label, "1 mensagem não lida") {
		t.Errorf("the badge says %q to screen readers, want 1 mensagem não lida", label)
	}
	say(t, alice, "bob?")
	waitJS(t, bob, badge+` === '2'`)
	screenshot(t, bob, shotDir(t), "unread-pt-375")
	if bad := eval[string](t, bob, layoutProblems); bad != "" {
		t.Errorf("with the badge: %s", bad)
	}
	open(t, bob, base, "/chat/", `document.getElementById('dm-rooms') !== null`)
	const dmRow = `(() => { const li = document.querySelector('#dm-rooms li'); if (!li) return ''; const b = li.querySelector('.badge.unread');
		return li.querySelector('a').textContent + '|' + (b.hidden ? '0' : b.dataset.count); })()`
	waitJS(t, bob, dmRow+` === 'Alice Liddell|2'`)
	screenshot(t, bob, shotDir(t), "rooms-pt-375")
	if got := eval[string](t, alice, badge); got != "0" {
		t.Errorf("alice's own messages count as unread for her: %s", got)
	}
	// bob reads them.
	run(t, bob, chromedp.Click(chromedp.CSS(`#dm-rooms li a`)))
	waitJS(t, bob, `location.pathname === '/chat/dm/alice/' && `+pageOnline+` && `+hasMessage("bob?"))
	waitJS(t, bob, badge+` === '0'`)
	open(t, bob, base, "/chat/", `document.getElementById('dm-rooms') !== null`)
	waitJS(t, bob, dmRow+` === 'Alice Liddell|0'`)
	// A message while he is in the room is being read: no badge, there
	// (two answers of the poll after the message came) or afterwards.
	open(t, bob, base, "/chat/dm/alice/", pageOnline)
	say(t, alice, "one more")
	run(t, bob, poll(hasMessage("one more")))
	polls := eval[string](t, bob, `document.body.dataset.unreadPolls || '0'`)
	waitJS(t, bob, `Number(document.body.dataset.unreadPolls || 0) >= `+polls+` + 2`)
	if got := eval[string](t, bob, badge); got != "0" {
		t.Errorf("in the room with alice, bob's header counts %s unread", got)
	}
	open(t, bob, base, "/chat/", `document.getElementById('dm-rooms') !== null`)
	waitJS(t, bob, dmRow+` === 'Alice Liddell|0' && `+badge+` === '0'`)
}

// TestBrowserUnenrollExplained: a student removed from a course while in
// its room is told what happened, with a way back, and a reload explains
// it again instead of a bare "Access denied".
func TestBrowserUnenrollExplained(t *testing.T) {
	s := startSchoolChatd(t)
	base := s.srv.URL
	room := "/chat/room/" + s.course + "/"
	b := browser(t)
	alice := uiTab(t, b, "en", "", 375)
	logIn(t, alice, base, "alice", room)
	waitJS(t, alice, pageOnline)
	s.admin(t, "unenroll", s.course, "alice")
	waitJS(t, alice, `document.querySelector('#chat-log .system.closed') !== null`)
	got := eval[string](t, alice, `document.querySelector('#chat-log .system.closed').textContent`)
	if !strings.Contains(got, "You were removed from this course") || strings.Contains(got, "Reload the page") {
		t.Errorf("after the unenroll the page says %q", got)
	}
	if href := eval[string](t, alice, `document.querySelector('#chat-log .system.closed a').getAttribute('href')`); href != "/courses/" {
		t.Errorf("the way back goes to %q", href)
	}
	if !eval[bool](t, alice, `document.getElementById('chat-message-input').disabled`) {
		t.Error("the message box still takes messages")
	}
	screenshot(t, alice, shotDir(t), "unenrolled-en-375")
	run(t, alice, chromedp.Reload())
	waitJS(t, alice, `document.querySelector('main h1') !== null`)
	title := eval[string](t, alice, `document.querySelector('main h1').textContent`)
	detail := eval[string](t, alice, `document.querySelector('main p').textContent`)
	if title != "You are not enrolled in this course" || !strings.Contains(detail, "“Django 101”") || !strings.Contains(detail, "Olga Petrova (olga)") {
		t.Errorf("the reloaded page says %q: %q", title, detail)
	}
	if bad := eval[string](t, alice, layoutProblems); bad != "" {
		t.Errorf("the error page: %s", bad)
	}
}

// TestBrowserDegradedStatus: while chatd cannot store messages (its SQLite
// database locked by another process) a message is refused as
// unavailable: the page keeps it pending with a reason a person can act
// on, the status stops saying "connected", and when the lock goes the
// message is sent again by itself and the status recovers.
func TestBrowserDegradedStatus(t *testing.T) {
	chromium(t)
	dir := t.TempDir()
	srv := testserver.Start(t, []string{"-history", "on"}, "DATA_DIR="+dir)
	ctx := browser(t)
	run(t, ctx, chromedp.Navigate(srv.URL+"/chat/lobby/"), poll(pageConnected))
	db, err := sql.Open("sqlite", filepath.Join(dir, "chatd.db")+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(context.Background(), "BEGIN IMMEDIATE"); err != nil {
		t.Fatal(err)
	}
	locked := true
	defer func() {
		if locked {
			_, _ = conn.ExecContext(context.Background(), "ROLLBACK")
		}
	}()
	say(t, ctx, "while the database is locked")
	waitJS(t, ctx, `document.getElementById('status').classList.contains('degraded')`)
	status := eval[string](t, ctx, `document.getElementById('status').textContent`)
	if status == "connected" || !strings.Contains(status, "cannot deliver") {
		t.Errorf("status %q while nothing can be stored", status)
	}
	note := eval[string](t, ctx, `(document.querySelector('#chat-log .msg.pending .note') || {}).textContent || ''`)
	if !strings.Contains(note, "The chat server is busy, your message was not sent — it will be retried.") {
		t.Errorf("the pending message says %q", note)
	}
	screenshot(t, ctx, shotDir(t), "degraded-en-1280")
	if _, err := conn.ExecContext(context.Background(), "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	locked = false
	waitJS(t, ctx, hasMessage("while the database is locked")+` && `+outboxEmpty+` && `+pageConnected)
}
