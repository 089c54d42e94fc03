package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/chatd/chat/internal/testserver"
	"github.com/chatd/chat/internal/wstest"
)

// The room page against the real chatd binary with history on (SQLite in
// the server's DATA_DIR): history after a reload, the outbox across a
// server restart, resume after dropped connections, older history on
// scroll. Every wait is for an event in the page or the server, bounded
// by waitJS's or waitFor's failure bound.

// JS conditions and values read from the room page.
const (
	pageConnected = `document.getElementById('status') !== null && document.getElementById('status').textContent === 'connected'`
	pageOffline   = `document.getElementById('status') !== null && document.getElementById('status').classList.contains('offline')`
	outboxEmpty   = `document.querySelectorAll('#chat-log .outbox').length === 0`
	// shownTexts is the text of every delivered message, in log order.
	shownTexts = `[...document.querySelectorAll('#chat-log .msg:not(.outbox) .text')].map(e => e.textContent).join('\n')`
	// shownSeqs is the seq of every delivered message, in log order.
	shownSeqs = `[...document.querySelectorAll('#chat-log .msg[data-pos]')].map(e => e.dataset.pos).join(',')`
)

// isPending is a JS condition: text waits in the page's outbox, shown
// greyed as "sending…".
func isPending(text string) string {
	return `[...document.querySelectorAll('#chat-log .msg.pending')].some(e =>
		e.querySelector('.text').textContent === ` + jsString(text) + ` && e.querySelector('.when').textContent === 'sending…' &&
		getComputedStyle(e).opacity < 1)`
}

// startHistoryChatd runs the chatd binary with history on; args are added
// to its flags.
func startHistoryChatd(t *testing.T, args ...string) *testserver.Server {
	t.Helper()
	chromium(t) // skip before building chatd if there is no browser
	return testserver.Start(t, append([]string{"-history", "on"}, args...))
}

// storedTexts returns the texts of room's stored messages, oldest first,
// read from the history API without the browser.
func storedTexts(t *testing.T, base, room string) []string {
	t.Helper()
	cl := &http.Client{Timeout: 10 * time.Second}
	resp, err := cl.Get(base + "/api/chat/" + room + "/messages?limit=500")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Messages []struct {
			Message string `json:"message"`
			Seq     int64  `json:"seq"`
		} `json:"messages"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("history API: HTTP %d, %v", resp.StatusCode, err)
	}
	texts := make([]string, len(body.Messages))
	for i, m := range body.Messages {
		texts[i] = m.Message
	}
	return texts
}

// waitFor polls cond until it is true; the bound is a failure bound.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: still not so after 20s", what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// post sends texts into room from a client of its own and waits until
// every one is acknowledged (stored).
func post(t *testing.T, base, room string, texts ...string) {
	t.Helper()
	c := wstest.Dial(t, wstest.WSURL(base, "/ws/chat/"+room+"/?echo=0"), wstest.Options{Subprotocol: "chatd.v1"})
	defer c.Close()
	for i, text := range texts {
		c.Send(t, map[string]string{"message": text, "id": "post-" + strconv.Itoa(i)})
	}
	for acked := 0; acked < len(texts); {
		switch f := c.Next(t); f.Str("type") {
		case "ack":
			acked++
		case "error":
			t.Fatalf("posting: %v", f)
		}
	}
}

// signUp creates the account name through the sign-up form and waits
// until the page it goes to next (a room) is connected.
func signUp(t *testing.T, ctx context.Context, base, name, next string) {
	t.Helper()
	run(t, ctx,
		chromedp.Navigate(base+"/accounts/signup/?next="+next),
		chromedp.WaitVisible(chromedp.ID("id_username")),
		chromedp.SendKeys(chromedp.ID("id_username"), name),
		chromedp.SendKeys(chromedp.ID("id_password"), "a long password"),
		chromedp.SendKeys(chromedp.ID("id_password2"), "a long password"),
		chromedp.Click(chromedp.ID("signup-submit")),
	)
	waitJS(t, ctx, `location.pathname === '`+next+`' && `+pageConnected)
}

// say types text into the room page and presses Enter.
func say(t *testing.T, ctx context.Context, text string) {
	t.Helper()
	run(t, ctx, chromedp.SendKeys(chromedp.ID("chat-message-input"), text+"\r"))
}

// checkLog checks that the page shows exactly want, in order, each once,
// with increasing seqs, and nothing pending.
func checkLog(t *testing.T, ctx context.Context, want []string) {
	t.Helper()
	got := eval[string](t, ctx, shownTexts)
	if got != strings.Join(want, "\n") {
		t.Errorf("the page shows:\n%s\nwant:\n%s", got, strings.Join(want, "\n"))
	}
	seqs := strings.Split(eval[string](t, ctx, shownSeqs), ",")
	prev := 0
	for _, s := range seqs {
		n, err := strconv.Atoi(s)
		if err != nil || n <= prev {
			t.Errorf("message seqs in the log are not increasing: %v", seqs)
			break
		}
		prev = n
	}
	if n := eval[int](t, ctx, `document.querySelectorAll('#chat-log .outbox').length`); n != 0 {
		t.Errorf("%d messages still in the outbox", n)
	}
}

// TestBrowserHistoryAfterReload: what was said before a reload – by the
// page and by someone else – is there after it, once and in order, and my
// own messages are still "Me".
func TestBrowserHistoryAfterReload(t *testing.T) {
	srv := startHistoryChatd(t)
	post(t, srv.URL, "lobby", "before the page opened")
	ctx := browser(t)
	run(t, ctx, chromedp.Navigate(srv.URL+"/chat/lobby/"), poll(pageConnected), poll(hasMessage("before the page opened")))
	say(t, ctx, "mine 1")
	run(t, ctx, poll(hasMessage("mine 1")))
	post(t, srv.URL, "lobby", "from someone else")
	run(t, ctx, poll(hasMessage("from someone else")))
	say(t, ctx, "mine 2")
	run(t, ctx, poll(hasMessage("mine 2")), poll(outboxEmpty))
	want := []string{"before the page opened", "mine 1", "from someone else", "mine 2"}
	checkLog(t, ctx, want)

	run(t, ctx, chromedp.Reload())
	waitJS(t, ctx, pageConnected+` && `+hasMessage("mine 2"))
	checkLog(t, ctx, want)
	const authors = `[...document.querySelectorAll('#chat-log .msg .author')].map(e => e.textContent).join(',')`
	got := strings.Split(eval[string](t, ctx, authors), ",")
	if len(got) != 4 || !strings.HasPrefix(got[0], "guest-") || got[1] != "Me" || !strings.HasPrefix(got[2], "guest-") || got[3] != "Me" {
		t.Errorf("authors after the reload: %q; want a guest, Me, a guest, Me", got)
	}
	// Another person (a new browser context: no cookies, nothing in its
	// session) sees the same history, with none of it marked "Me".
	other := person(t, ctx)
	run(t, other, chromedp.Navigate(srv.URL+"/chat/lobby/"), poll(pageConnected), poll(hasMessage("mine 2")))
	checkLog(t, other, want)
	if got := eval[string](t, other, authors); strings.Contains(got, "Me") {
		t.Errorf("another tab marks %s", got)
	}
}

// TestBrowserPendingWhileServerDown: a message typed while the server is
// down is shown as pending and delivered exactly once when the server is
// back on the same address and database – also when the page was reloaded
// meanwhile (the outbox is in sessionStorage).
func TestBrowserPendingWhileServerDown(t *testing.T) {
	srv := startHistoryChatd(t)
	room := srv.URL + "/chat/lobby/"
	ctx := browser(t)
	run(t, ctx, chromedp.Navigate(room), poll(pageConnected))
	say(t, ctx, "before the restart")
	run(t, ctx, poll(hasMessage("before the restart")))

	srv.Stop(t)
	waitJS(t, ctx, pageOffline)
	say(t, ctx, "typed while down")
	waitJS(t, ctx, isPending("typed while down"))
	if v := value(t, ctx, "chat-message-input"); v != "" {
		t.Errorf("input holds %q after sending; the text belongs in the outbox", v)
	}
	srv = srv.StartAgain(t)
	waitJS(t, ctx, hasMessage("typed while down")+` && `+outboxEmpty)
	want := []string{"before the restart", "typed while down"}
	checkLog(t, ctx, want)
	if got := storedTexts(t, srv.URL, "lobby"); !slices.Equal(got, want) {
		t.Errorf("stored %q, want %q", got, want)
	}

	// Down again; the page is reloaded (its load fails) before the server
	// is back. The reloaded page finds the message in its outbox.
	srv.Stop(t)
	waitJS(t, ctx, pageOffline)
	say(t, ctx, "typed, then reloaded")
	waitJS(t, ctx, isPending("typed, then reloaded"))
	_, _ = chromedp.Run(ctx, chromedp.Navigate(room)) // fails: nobody listens
	srv = srv.StartAgain(t)
	run(t, ctx, chromedp.Navigate(room))
	waitJS(t, ctx, pageConnected+` && `+hasMessage("typed, then reloaded")+` && `+outboxEmpty)
	want = append(want, "typed, then reloaded")
	checkLog(t, ctx, want)
	if got := storedTexts(t, srv.URL, "lobby"); !slices.Equal(got, want) {
		t.Errorf("stored %q, want %q", got, want)
	}
}

// TestBrowserReconnectsShowNothingTwice: the page reaches chatd through a
// proxy that the test cuts. Each round, the page sends a message whose ack
// (and echo) the proxy holds back until it is stored, then the connection
// is cut, and the page stays away while someone else talks. After every
// reconnect the page resumes (?after=), resends the unacknowledged message
// with its id, and shows every message once, in order. The person is
// signed in, so the retry is the same sender's and is stored once.
func TestBrowserReconnectsShowNothingTwice(t *testing.T) {
	srv := startHistoryChatd(t)
	px := newCutProxy(t, srv.Addr)
	ctx := browser(t)
	signUp(t, ctx, px.URL, "rita", "/chat/lobby/")
	post(t, srv.URL, "lobby", "hello rita")
	run(t, ctx, poll(hasMessage("hello rita")))
	want := []string{"hello rita"}

	for round := range 3 {
		mine := fmt.Sprintf("rita %d", round)
		px.hold()
		say(t, ctx, mine)
		waitFor(t, mine+" stored", func() bool { return slices.Contains(storedTexts(t, srv.URL, "lobby"), mine) })
		if !eval[bool](t, ctx, isPending(mine)) {
			t.Fatalf("round %d: %q is not pending while its ack is held back", round, mine)
		}
		px.refuse(true)
		px.cut()
		waitJS(t, ctx, pageOffline)
		away := []string{fmt.Sprintf("while away %d a", round), fmt.Sprintf("while away %d b", round)}
		post(t, srv.URL, "lobby", away...)
		typed := fmt.Sprintf("rita offline %d", round)
		say(t, ctx, typed)
		waitJS(t, ctx, isPending(typed))
		px.refuse(false)
		waitJS(t, ctx, pageConnected+` && `+hasMessage(typed)+` && `+hasMessage(away[1])+` && `+outboxEmpty)
		want = append(want, mine)
		want = append(want, away...)
		want = append(want, typed)
		checkLog(t, ctx, want)
	}
	if got := storedTexts(t, srv.URL, "lobby"); !slices.Equal(got, want) {
		t.Errorf("stored:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	targets := px.wsTargets()
	resumed := 0
	for _, tg := range targets {
		if strings.Contains(tg, "after=") {
			resumed++
		}
	}
	if len(targets) < 4 || strings.Contains(targets[0], "after=") || resumed < 3 {
		t.Errorf("socket requests %q: want the first without ?after= and every reconnect with it", targets)
	}
}

// TestBrowserReloadWithStoredPending: a message was stored but its ack
// never reached the page, which is then reloaded while others talk. The
// reloaded page gets only the latest message on join; the message from its
// outbox is sent again (stored once: same signed-in sender, same id) and
// shown once, in its place.
func TestBrowserReloadWithStoredPending(t *testing.T) {
	srv := startHistoryChatd(t, "-history-on-join", "1")
	px := newCutProxy(t, srv.Addr)
	ctx := browser(t)
	signUp(t, ctx, px.URL, "rita", "/chat/lobby/")
	px.hold()
	say(t, ctx, "stored, never acked")
	waitFor(t, "message stored", func() bool { return slices.Contains(storedTexts(t, srv.URL, "lobby"), "stored, never acked") })
	post(t, srv.URL, "lobby", "after 1", "after 2", "after 3")
	// Its ack is held back, so it is pending – unless the page has meanwhile
	// found it stored through the history API (a short log loads older
	// messages over plain HTTP, which the proxy does not hold), which is
	// right too. Either way it is in the log once.
	waitJS(t, ctx, isPending("stored, never acked")+` || `+hasMessage("stored, never acked"))
	run(t, ctx, chromedp.Navigate(px.URL+"/chat/lobby/"))
	waitJS(t, ctx, pageConnected+` && `+hasMessage("stored, never acked")+` && `+hasMessage("after 3")+` && `+outboxEmpty)
	want := []string{"stored, never acked", "after 1", "after 2", "after 3"}
	waitJS(t, ctx, hasMessage("after 1")+` && `+hasMessage("after 2"))
	checkLog(t, ctx, want)
	if got := storedTexts(t, srv.URL, "lobby"); !slices.Equal(got, want) {
		t.Errorf("stored %q, want %q", got, want)
	}
}

// TestBrowserScrollLoadsOlder: a room with more messages than
// HISTORY_ON_JOIN shows its latest ones; scrolling to the top loads older
// pages from the history API, keeping the reader's place, until the first
// message, each once and in order.
func TestBrowserScrollLoadsOlder(t *testing.T) {
	srv := startHistoryChatd(t, "-history-on-join", "20", "-rate-limit", "0")
	var all []string
	for i := 1; i <= 130; i++ {
		all = append(all, "m"+strconv.Itoa(i))
	}
	post(t, srv.URL, "lobby", all...)
	ctx := browser(t)
	run(t, ctx, chromedp.Navigate(srv.URL+"/chat/lobby/"), poll(pageConnected), poll(hasMessage("m130")))
	const scrollable = `(() => { const l = document.getElementById('chat-log'); return l.scrollHeight > l.clientHeight + 200 })()`
	if !eval[bool](t, ctx, scrollable) {
		t.Fatal("the log does not scroll with the history on join; the window is too large for this test")
	}
	shown := strings.Split(eval[string](t, ctx, shownTexts), "\n")
	if len(shown) < 20 || len(shown) >= len(all) || !slices.Equal(shown, all[len(all)-len(shown):]) {
		t.Fatalf("on load the page shows %d messages %q…; want the latest 20 or more, not all", len(shown), shown[0])
	}

	const first = `document.querySelector('#chat-log .msg .text').textContent`
	for range 10 {
		top := eval[string](t, ctx, first)
		if top == "m1" {
			break
		}
		// Scroll to the top; the message that was first must stay where it
		// is on screen while older ones load above it.
		eval[bool](t, ctx, `(() => { const l = document.getElementById('chat-log'); l.scrollTop = 0; return true })()`)
		waitJS(t, ctx, first+` !== `+jsString(top))
		where := eval[float64](t, ctx, `(() => {
			const l = document.getElementById('chat-log');
			const e = [...l.querySelectorAll('.msg .text')].find(e => e.textContent === `+jsString(top)+`);
			return e.getBoundingClientRect().top - l.getBoundingClientRect().top })()`)
		if where < 0 || where > 120 {
			t.Errorf("after loading older messages, %s is %.0f px from the top of the log; the reader lost their place", top, where)
		}
	}
	checkLog(t, ctx, all)
	if note := eval[string](t, ctx, `document.querySelector('#chat-log .older').textContent`); note != "" {
		t.Errorf("older-history note %q", note)
	}
}

// cutProxy forwards TCP connections from the browser to chatd. The test
// can cut every connection (the page's socket drops), refuse new ones (the
// page stays offline) and hold back what the server sends on the open
// WebSockets (a message is stored but its ack never reaches the page).
type cutProxy struct {
	URL      string
	ln       net.Listener
	upstream string

	mu      sync.Mutex
	cond    *sync.Cond            // signalled when held or conns change
	conns   map[net.Conn]struct{} // both ends of open connections; guarded by mu
	sockets map[net.Conn]struct{} // browser ends of open connections that carry a WebSocket; guarded by mu
	held    map[net.Conn]bool     // browser ends that get nothing for now; guarded by mu
	refused bool                  // guarded by mu
	targets []string              // request targets of WebSocket handshakes; guarded by mu
}

func newCutProxy(t *testing.T, upstream string) *cutProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{URL: "http://" + ln.Addr().String(), ln: ln, upstream: upstream,
		conns: map[net.Conn]struct{}{}, sockets: map[net.Conn]struct{}{}, held: map[net.Conn]bool{}}
	p.cond = sync.NewCond(&p.mu)
	go p.serve()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
	})
	return p
}

func (p *cutProxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		refused := p.refused
		p.mu.Unlock()
		if refused {
			c.Close()
			continue
		}
		go p.pipe(c)
	}
}

func (p *cutProxy) pipe(c net.Conn) {
	s, err := net.Dial("tcp", p.upstream)
	if err != nil {
		c.Close()
		return
	}
	p.mu.Lock()
	p.conns[c], p.conns[s] = struct{}{}, struct{}{}
	p.mu.Unlock()
	defer p.drop(c, s)
	go func() {
		defer p.drop(c, s)
		buf := make([]byte, 32<<10)
		for {
			n, err := c.Read(buf)
			if n > 0 {
				p.note(c, buf[:n])
				if _, err := s.Write(buf[:n]); err != nil {
					return
				}
			}
			if err != nil {
				return
			}
		}
	}()
	buf := make([]byte, 32<<10)
	for {
		n, err := s.Read(buf)
		if n > 0 {
			if !p.pass(c) {
				return
			}
			if _, err := c.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

// pass waits while the proxy holds back the server's bytes for c; it
// reports false if c was cut or closed meanwhile.
func (p *cutProxy) pass(c net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	for {
		if _, open := p.conns[c]; !open {
			return false
		}
		if !p.held[c] {
			return true
		}
		p.cond.Wait()
	}
}

// note records the targets of WebSocket handshakes the browser sends on c.
func (p *cutProxy) note(c net.Conn, b []byte) {
	for {
		i := bytes.Index(b, []byte("GET /ws/"))
		if i < 0 {
			return
		}
		b = b[i+len("GET "):]
		end := bytes.IndexAny(b, " \r\n")
		if end < 0 {
			end = len(b)
		}
		p.mu.Lock()
		p.targets = append(p.targets, string(b[:end]))
		p.sockets[c] = struct{}{}
		p.mu.Unlock()
	}
}

func (p *cutProxy) drop(c, s net.Conn) {
	p.mu.Lock()
	delete(p.conns, c)
	delete(p.conns, s)
	delete(p.sockets, c)
	delete(p.held, c)
	p.cond.Broadcast()
	p.mu.Unlock()
	c.Close()
	s.Close()
}

// cut closes every open connection.
func (p *cutProxy) cut() {
	p.mu.Lock()
	for c := range p.conns {
		c.Close()
	}
	clear(p.conns)
	clear(p.sockets)
	clear(p.held)
	p.cond.Broadcast()
	p.mu.Unlock()
}

// hold holds back everything the server sends on the WebSockets open now,
// until they are cut or closed; later connections are not held.
func (p *cutProxy) hold() {
	p.mu.Lock()
	for c := range p.sockets {
		p.held[c] = true
	}
	p.mu.Unlock()
}

// refuse makes the proxy close new connections at once (or not).
func (p *cutProxy) refuse(on bool) {
	p.mu.Lock()
	p.refused = on
	p.mu.Unlock()
}

func (p *cutProxy) wsTargets() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.targets)
}

// TestBrowserRefusedMessageKeepsText: a message the server refuses for
// good stays in the log, failed, with the server's reason – also after a
// reload, and without being sent again; Edit puts its text back in the
// input, Discard drops it.
func TestBrowserRefusedMessageKeepsText(t *testing.T) {
	srv := startHistoryChatd(t)
	ctx := browser(t)
	run(t, ctx, chromedp.Navigate(srv.URL+"/chat/lobby/"), poll(pageConnected))
	// U+0085 (next line) is white space to Go's strings.TrimSpace but not
	// to JavaScript's trim: the page sends it and the server refuses it as
	// an empty message, naming its id.
	const blank = "\u0085"
	const failed = `document.querySelector('#chat-log .msg.failed')`
	const failedEmpty = failed + ` !== null && ` + failed + `.querySelector('.note').textContent.includes('empty')`
	run(t, ctx,
		chromedp.SetValue(chromedp.ID("chat-message-input"), blank),
		chromedp.SendKeys(chromedp.ID("chat-message-input"), "\r"),
	)
	waitJS(t, ctx, failedEmpty)
	run(t, ctx, chromedp.Reload())
	waitJS(t, ctx, pageConnected+` && `+failedEmpty)
	run(t, ctx, chromedp.Click(chromedp.CSS(`#chat-log .msg.failed button.edit`)))
	waitJS(t, ctx, failed+` === null`)
	if v := value(t, ctx, "chat-message-input"); v != blank {
		t.Errorf("after Edit the input holds %q, want the refused text", v)
	}
	run(t, ctx, chromedp.SendKeys(chromedp.ID("chat-message-input"), "\r"))
	waitJS(t, ctx, failedEmpty)
	run(t, ctx, chromedp.Click(chromedp.CSS(`#chat-log .msg.failed button.discard`)))
	waitJS(t, ctx, `document.querySelectorAll('#chat-log .msg').length === 0`)
	const stored = `Object.keys(sessionStorage).filter(k => k.startsWith('chatd:outbox:')).map(k => sessionStorage.getItem(k)).join()`
	if got := eval[string](t, ctx, stored); got != "[]" {
		t.Errorf("outbox in sessionStorage after Discard: %s", got)
	}
	if got := storedTexts(t, srv.URL, "lobby"); len(got) != 0 {
		t.Errorf("stored %q", got)
	}
}

// TestBrowserRateLimitedMessageIsRetried: a message refused as rate
// limited (a transient refusal) stays pending, says why in words a person
// can act on, is sent again by the page itself and is stored once.
func TestBrowserRateLimitedMessageIsRetried(t *testing.T) {
	srv := startHistoryChatd(t, "-rate-limit", "0.25") // one message, then one per 4 s
	ctx := browser(t)
	run(t, ctx, chromedp.Navigate(srv.URL+"/chat/lobby/"), poll(pageConnected))
	// Record every note the log shows, however briefly.
	eval[bool](t, ctx, `window.notes = [];
		new MutationObserver(() => document.querySelectorAll('#chat-log .note').forEach(n => notes.push(n.textContent)))
			.observe(document.getElementById('chat-log'), {subtree: true, childList: true, characterData: true});
		true`)
	say(t, ctx, "first")
	say(t, ctx, "second")
	waitJS(t, ctx, hasMessage("second")+` && `+outboxEmpty)
	if !eval[bool](t, ctx, `notes.some(n => n.startsWith('You are sending messages too fast'))`) {
		t.Errorf("the refused message never said why it waited; notes: %v", eval[[]string](t, ctx, `notes`))
	}
	want := []string{"first", "second"}
	checkLog(t, ctx, want)
	if got := storedTexts(t, srv.URL, "lobby"); !slices.Equal(got, want) {
		t.Errorf("stored %q, want %q", got, want)
	}
}

// TestBrowserServerRestartsWithoutHistory: a page that would resume
// (?after=) reconnects to its server restarted with HISTORY=off, which
// refuses ?after= before the upgrade, and chat goes on.
func TestBrowserServerRestartsWithoutHistory(t *testing.T) {
	srv := startHistoryChatd(t)
	ctx := browser(t)
	run(t, ctx, chromedp.Navigate(srv.URL+"/chat/lobby/"), poll(pageConnected))
	say(t, ctx, "with history")
	run(t, ctx, poll(hasMessage("with history")))
	srv.Stop(t)
	waitJS(t, ctx, pageOffline)
	srv = srv.StartAgain(t, "-history", "off")
	waitJS(t, ctx, pageConnected)
	say(t, ctx, "without history")
	waitJS(t, ctx, hasMessage("without history")+` && `+outboxEmpty)
	if got := eval[string](t, ctx, shownTexts); got != "with history\nwithout history" {
		t.Errorf("the page shows %q", got)
	}
}

// TestBrowserResumeAfterRetention: messages the page missed while away
// were partly removed by retention before it came back; it shows a quiet
// line where they were and the ones still kept, once and in order.
func TestBrowserResumeAfterRetention(t *testing.T) {
	srv := startHistoryChatd(t)
	px := newCutProxy(t, srv.Addr)
	ctx := browser(t)
	run(t, ctx, chromedp.Navigate(px.URL+"/chat/lobby/"), poll(pageConnected))
	post(t, srv.URL, "lobby", "seen")
	run(t, ctx, poll(hasMessage("seen")))
	px.refuse(true)
	px.cut()
	waitJS(t, ctx, pageOffline)
	var missed []string
	for i := 1; i <= 10; i++ {
		missed = append(missed, "m"+strconv.Itoa(i))
	}
	post(t, srv.URL, "lobby", missed...)
	srv = srv.StartAgain(t, "-history-max-per-room", "3")
	waitFor(t, "retention ran", func() bool { return strings.Contains(srv.Stderr(), "history retention removed old messages") })
	px.refuse(false)
	waitJS(t, ctx, pageConnected+` && `+hasMessage("m10"))
	const lines = `[...document.querySelectorAll('#chat-log li:not(.older):not(.day):not(.presence-line)')].map(e => e.querySelector('.text').textContent).join('\n')`
	if got, want := eval[string](t, ctx, lines), "seen\nolder messages were removed\nm8\nm9\nm10"; got != want {
		t.Errorf("the log reads:\n%s\nwant:\n%s", got, want)
	}
}

// TestBrowserPrivateRoomHistory: a private room's page loads its older
// history from the private room's own history API.
func TestBrowserPrivateRoomHistory(t *testing.T) {
	srv := startHistoryChatd(t, "-history-on-join", "1")
	bob := browser(t)
	signUp(t, bob, srv.URL, "bob", "/chat/lobby/")
	rita := browser(t)
	signUp(t, rita, srv.URL, "rita", "/chat/dm/bob/")
	want := []string{"one", "two", "three"}
	for _, text := range want {
		say(t, rita, text)
		run(t, rita, poll(hasMessage(text)))
	}
	// bob gets the latest message on join; the log is too short to scroll,
	// so the page loads the rest at once.
	run(t, bob, chromedp.Navigate(srv.URL+"/chat/dm/rita/"), poll(pageConnected), poll(hasMessage("one")))
	checkLog(t, bob, want)
	const authors = `[...document.querySelectorAll('#chat-log .msg .author')].map(e => e.textContent).join(',')`
	if got := eval[string](t, bob, authors); got != "rita,rita,rita" {
		t.Errorf("bob sees authors %s", got)
	}
}

// TestBrowserEchoOff: with ECHO off my messages never come back as chat
// messages; their acks turn the pending entries into messages, in seq
// order among the others', once – also after a reload.
func TestBrowserEchoOff(t *testing.T) {
	srv := startHistoryChatd(t, "-echo=false")
	ctx := browser(t)
	run(t, ctx, chromedp.Navigate(srv.URL+"/chat/lobby/"), poll(pageConnected))
	say(t, ctx, "quiet 1")
	run(t, ctx, poll(hasMessage("quiet 1")))
	post(t, srv.URL, "lobby", "someone else")
	run(t, ctx, poll(hasMessage("someone else")))
	say(t, ctx, "quiet 2")
	run(t, ctx, poll(hasMessage("quiet 2")))
	want := []string{"quiet 1", "someone else", "quiet 2"}
	checkLog(t, ctx, want)
	run(t, ctx, chromedp.Reload())
	waitJS(t, ctx, pageConnected+` && `+hasMessage("quiet 2"))
	checkLog(t, ctx, want)
	const authors = `[...document.querySelectorAll('#chat-log .msg .author')].map(e => e.textContent).join(',')`
	if got := eval[string](t, ctx, authors); !strings.HasPrefix(got, "Me,guest-") || !strings.HasSuffix(got, ",Me") {
		t.Errorf("authors %s, want Me, a guest, Me", got)
	}
}
