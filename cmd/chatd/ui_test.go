package main

import (
	"encoding/base64"
	"encoding/json"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/wstest"
	"github.com/chatd/chat/ws"
)

// The HTTP side of issue 13 on the real server, in-process with real
// WebSocket clients: read positions and unread counts, display names in
// frames, pages in the visitor's language, the profile page.

// postJSON posts body as a same-origin page's fetch would.
func (s *server) postJSON(t *testing.T, path, cookie, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest("POST", s.base+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	return do(t, req)
}

// unread returns cookie's /api/unread answer.
func (s *server) unread(t *testing.T, cookie string) (total int, rooms map[string]int) {
	t.Helper()
	resp, body := s.get(t, "/api/unread", cookie)
	var v struct {
		Total int            `json:"total"`
		Rooms map[string]int `json:"rooms"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &v) != nil {
		t.Fatalf("/api/unread: %d %s", resp.StatusCode, body)
	}
	return v.Total, v.Rooms
}

// sendAll sends texts on c and waits for each one's ack.
func sendAll(t *testing.T, c *wstest.Client, texts ...string) {
	t.Helper()
	for i, text := range texts {
		c.Send(t, map[string]string{"message": text, "id": "m-" + strconv.Itoa(i) + "-" + text})
	}
	for acked := 0; acked < len(texts); {
		switch f := c.Next(t); f.Str("type") {
		case "ack":
			acked++
		case "error":
			t.Fatalf("refused: %v", f)
		}
	}
}

// TestReadPositionsAndUnread: what others write in my private rooms and
// course rooms counts as unread until my page reports it read; my own
// messages never count; the read API keeps each room's access rules.
func TestReadPositionsAndUnread(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) {
			sc := newSchool(t, kind, nil)
			alice, bob, olga, carol := sc.session(t, "alice"), sc.session(t, "bob"), sc.session(t, "olga"), sc.session(t, "carol")
			dm := chat.DMRoom(sc.users["alice"].ID, sc.users["bob"].ID).Key()
			course := chat.CourseRoomKey(sc.courseID)
			id := strconv.FormatInt(sc.courseID, 10)

			a := sc.dialAs(t, "/ws/chat/dm/bob/", alice)
			sendAll(t, a, "are you there?", "bob?")
			a.Close()
			o := sc.dialAs(t, "/ws/chat/room/"+id+"/", olga)
			sendAll(t, o, "homework for Monday")
			o.Close()

			if total, rooms := sc.unread(t, bob); total != 2 || rooms[dm] != 2 {
				t.Errorf("bob: total %d, rooms %v; want 2 in %s", total, rooms, dm)
			}
			if total, rooms := sc.unread(t, alice); total != 1 || rooms[course] != 1 || rooms[dm] != 0 {
				t.Errorf("alice: total %d, rooms %v; want only olga's course message", total, rooms)
			}
			// A seq past the room's end is taken as its end.
			if resp, body := sc.postJSON(t, "/api/chat/dm/alice/read", bob, `{"seq": 99}`); resp.StatusCode != http.StatusNoContent {
				t.Fatalf("mark read: %d %s", resp.StatusCode, body)
			}
			if total, _ := sc.unread(t, bob); total != 0 {
				t.Errorf("bob after reading: %d unread", total)
			}
			reads, err := sc.st.RoomReads(t.Context(), sc.users["bob"].ID, nil)
			if err != nil || len(reads) != 1 || reads[0].LastRead != 2 {
				t.Errorf("bob's read position: %+v, %v; want 2 (the room's last seq)", reads, err)
			}
			if resp, _ := sc.postJSON(t, "/api/chat/room/"+id+"/read", alice, `{"seq": 1}`); resp.StatusCode != http.StatusNoContent {
				t.Errorf("alice marks the course room: %d", resp.StatusCode)
			}
			if total, _ := sc.unread(t, alice); total != 0 {
				t.Errorf("alice after reading: %d unread", total)
			}
			// A public room's visit is recorded (recent rooms) but is not
			// in the header's total.
			if resp, _ := sc.postJSON(t, "/api/chat/lobby/read", carol, `{"seq": 0}`); resp.StatusCode != http.StatusNoContent {
				t.Errorf("carol visits the lobby: %d", resp.StatusCode)
			}
			if resp, body := sc.get(t, "/chat/", carol); resp.StatusCode != http.StatusOK || !strings.Contains(body, `href="/chat/lobby/"`) {
				t.Errorf("carol's room list does not show the lobby: %d\n%s", resp.StatusCode, body)
			}

			for _, tc := range []struct {
				path, cookie, body string
				status             int
			}{
				{"/api/chat/dm/alice/read", "", `{"seq": 1}`, http.StatusUnauthorized},
				{"/api/chat/room/" + id + "/read", carol, `{"seq": 1}`, http.StatusForbidden},
				{"/api/chat/dm/nobody/read", bob, `{"seq": 1}`, http.StatusNotFound},
				{"/api/chat/dm/alice/read", bob, `{"seq": -1}`, http.StatusBadRequest},
				{"/api/chat/dm/alice/read", bob, `seq=1`, http.StatusBadRequest},
			} {
				if resp, body := sc.postJSON(t, tc.path, tc.cookie, tc.body); resp.StatusCode != tc.status {
					t.Errorf("POST %s %s: %d %s, want %d", tc.path, tc.body, resp.StatusCode, body, tc.status)
				}
			}
			if resp, _ := sc.postJSON(t, "/api/chat/dm/alice/read", bob, `{"seq": 1}`, "Sec-Fetch-Site", "cross-site"); resp.StatusCode != http.StatusForbidden {
				t.Errorf("a cross-site read report: %d, want 403", resp.StatusCode)
			}
			if resp, _ := sc.get(t, "/api/unread", ""); resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("anonymous /api/unread: %d", resp.StatusCode)
			}
		})
	}
}

// TestFramesCarryNames: frames keep "user" (the identity) and add the
// sender's display name as "name" – live, in history and in the history
// API; a guest's nickname is its name when it passes the nickname rules
// (checked on every connection), and is left out when it does not.
func TestFramesCarryNames(t *testing.T) {
	sc := newSchool(t, "sqlite", nil)
	bob := sc.dialAs(t, "/ws/chat/lobby/", sc.session(t, "bob"))
	alice := wstest.Dial(t, sc.ws("/ws/chat/lobby/"), wstest.Options{Header: cookieHeader(sc.session(t, "alice")), Subprotocol: ws.Subprotocol})
	if h := alice.Next(t); h.Str("type") != "hello" || h.Str("user") != "alice" || h.Str("name") != "Alice" {
		t.Fatalf("hello %v, want user alice, name Alice", h)
	}
	alice.Send(t, map[string]string{"message": "hi"})
	if f := bob.NextOfType(t, "chat_message"); f.Str("user") != "alice" || f.Str("name") != "Alice" {
		t.Errorf("frame %v, want user alice, name Alice", f)
	}
	token := base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef01234567"))
	for _, tc := range []struct{ nick, want string }{
		{"Pablo Ruiz", "Pablo Ruiz"},
		{"Alice", ""}, // reads like the account alice
		{"admin", ""}, // staff
	} {
		cookie := "chatd_guest=" + token + "; chatd_nick=" + base64.RawURLEncoding.EncodeToString([]byte(tc.nick))
		g := wstest.Dial(t, sc.ws("/ws/chat/lobby/"), wstest.Options{Header: cookieHeader(cookie), Subprotocol: ws.Subprotocol})
		h := g.Next(t)
		g.Send(t, map[string]string{"message": "from " + tc.nick})
		f := bob.NextOfType(t, "chat_message")
		if !strings.HasPrefix(f.Str("user"), "guest-") || f.Str("user") != h.Str("user") || f.Str("name") != tc.want {
			t.Errorf("nickname %q: frame user %q name %q, want a guest named %q", tc.nick, f.Str("user"), f.Str("name"), tc.want)
		}
		g.Close()
	}
	// History keeps the names the messages were written under.
	if err := sc.st.SetDisplayName(t.Context(), sc.users["alice"].ID, "Alice L."); err != nil {
		t.Fatal(err)
	}
	resp, body := sc.get(t, "/api/chat/lobby/messages", "")
	var hist struct {
		Messages []struct{ User, Name, Message string } `json:"messages"`
	}
	if resp.StatusCode != http.StatusOK || json.Unmarshal([]byte(body), &hist) != nil || len(hist.Messages) != 4 {
		t.Fatalf("history: %d %s", resp.StatusCode, body)
	}
	if m := hist.Messages[0]; m.User != "alice" || m.Name != "Alice" {
		t.Errorf("history keeps %+v, want alice's name at the time, Alice", m)
	}
	if m := hist.Messages[1]; m.Name != "Pablo Ruiz" {
		t.Errorf("history: %+v, want the nickname", m)
	}
}

// TestPagesInLanguages: the pages follow Accept-Language, the language
// form's cookie wins over it, and errors are translated too.
func TestPagesInLanguages(t *testing.T) {
	sc := newSchool(t, "sqlite", []string{"-language", "pt"})
	get := func(path, cookie, accept string) (int, string) {
		t.Helper()
		req, _ := http.NewRequest("GET", sc.base+path, nil)
		if cookie != "" {
			req.Header.Set("Cookie", cookie)
		}
		if accept != "" {
			req.Header.Set("Accept-Language", accept)
		}
		resp, body := do(t, req)
		return resp.StatusCode, body
	}
	for _, tc := range []struct {
		path, cookie, accept string
		status               int
		want                 []string
	}{
		{"/chat/", "", "es-MX,es;q=0.9", 200, []string{`<html lang="es">`, "Entrar en una sala de chat"}},
		{"/chat/", "", "de-DE", 200, []string{`<html lang="pt">`, "Entrar em uma sala de chat"}}, // LANGUAGE=pt
		{"/chat/", "", "en-US,en", 200, []string{`<html lang="en">`, "Join a chat room"}},
		{"/chat/", "chatd_lang=es", "en-US", 200, []string{`<html lang="es">`}},
		{"/no/such/page/", "", "es", 404, []string{"Página no encontrada", "No hay nada en /no/such/page/."}},
		{"/chat/room/" + strconv.FormatInt(sc.courseID, 10) + "/", sc.session(t, "carol"), "es", 403,
			[]string{"No estás inscrito en este curso", "«Django 101»", "Olga (olga)"}},
		{"/courses/" + strconv.FormatInt(sc.courseID, 10) + "/", sc.session(t, "alice"), "pt-BR", 200,
			[]string{"Meus cursos", "Professor(a):"}},
	} {
		status, body := get(tc.path, tc.cookie, tc.accept)
		if status != tc.status {
			t.Errorf("%s (%s %s): %d, want %d", tc.path, tc.cookie, tc.accept, status, tc.status)
		}
		for _, w := range tc.want {
			if !strings.Contains(body, w) {
				t.Errorf("%s (%s %s): no %q in\n%s", tc.path, tc.cookie, tc.accept, w, body)
			}
		}
	}
	// The course page names "My courses" once (in the header).
	if _, body := get("/courses/"+strconv.FormatInt(sc.courseID, 10)+"/", sc.session(t, "alice"), "en"); strings.Count(body, ">My courses<") != 1 {
		t.Errorf("the course page shows My courses %d times", strings.Count(body, ">My courses<"))
	}

	// The language form.
	resp, _ := sc.post(t, "/i18n/setlang/", "", url.Values{"language": {"es"}, "next": {"/courses/"}})
	if resp.StatusCode != http.StatusSeeOther || resp.Header.Get("Location") != "/courses/" ||
		!strings.Contains(resp.Header.Get("Set-Cookie"), "chatd_lang=es") || !strings.Contains(resp.Header.Get("Set-Cookie"), "HttpOnly") {
		t.Errorf("set language: %d to %q, cookie %q", resp.StatusCode, resp.Header.Get("Location"), resp.Header.Get("Set-Cookie"))
	}
	if resp, _ := sc.post(t, "/i18n/setlang/", "", url.Values{"language": {"es"}, "next": {"//evil.example/"}}); resp.Header.Get("Location") != "/chat/" {
		t.Errorf("set language sent to %q", resp.Header.Get("Location"))
	}
	if resp, _ := sc.post(t, "/i18n/setlang/", "", url.Values{"language": {"de"}}); resp.StatusCode != http.StatusBadRequest {
		t.Errorf("an unknown language: %d", resp.StatusCode)
	}
	// Form errors, from the chat package's validation, in Spanish.
	resp, body := sc.post(t, "/accounts/signup/", "chatd_lang=es", url.Values{"username": {"admin"}, "password": {"a long password"}, "password2": {"a long password"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "El nombre de usuario &#34;admin&#34; está reservado para el personal del sitio") {
		t.Errorf("sign-up as admin in Spanish: %d\n%s", resp.StatusCode, body)
	}
	resp, body = sc.post(t, "/accounts/login/", "chatd_lang=pt", url.Values{"username": {"alice"}, "password": {"wrong"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "Nome de usuário ou senha incorretos.") {
		t.Errorf("a failed login in Portuguese: %d\n%s", resp.StatusCode, body)
	}
}

// TestProfilePage: a signed-in user changes their display name; a guest
// chooses a nickname (refused when reserved or like an account's name)
// or removes it.
func TestProfilePage(t *testing.T) {
	sc := newSchool(t, "sqlite", nil)
	bob := sc.session(t, "bob")
	resp, body := sc.post(t, "/accounts/profile/", bob, url.Values{"display_name": {"  Bob Builder "}})
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, `value="Bob Builder"`) {
		t.Errorf("save display name: %d\n%s", resp.StatusCode, body)
	}
	if u, err := sc.st.UserByID(t.Context(), sc.users["bob"].ID); err != nil || u.DisplayName != "Bob Builder" {
		t.Errorf("stored display name %+v, %v", u, err)
	}
	resp, body = sc.post(t, "/accounts/profile/", bob+"; chatd_lang=es", url.Values{"display_name": {"evil\u202eeman"}})
	if resp.StatusCode != http.StatusBadRequest || !strings.Contains(body, "El nombre visible contiene un control de dirección") {
		t.Errorf("a display name with an override: %d\n%s", resp.StatusCode, body)
	}

	guest := "chatd_guest=" + base64.RawURLEncoding.EncodeToString([]byte("0123456789abcdef01234567"))
	for _, tc := range []struct {
		nick   string
		status int
		cookie string
	}{
		{"Alice", http.StatusConflict, ""},
		{"Me", http.StatusBadRequest, ""},
		{"  Pablo   Ruiz ", http.StatusOK, "chatd_nick=" + base64.RawURLEncoding.EncodeToString([]byte("Pablo Ruiz"))},
		{"", http.StatusOK, "chatd_nick=;"},
	} {
		resp, body := sc.post(t, "/accounts/profile/", guest, url.Values{"nickname": {tc.nick}})
		if resp.StatusCode != tc.status || (tc.cookie != "") != strings.Contains(resp.Header.Get("Set-Cookie"), "chatd_nick=") ||
			(tc.cookie != "" && !strings.HasPrefix(resp.Header.Get("Set-Cookie"), tc.cookie)) {
			t.Errorf("nickname %q: %d, Set-Cookie %q\n%s", tc.nick, resp.StatusCode, resp.Header.Get("Set-Cookie"), body)
		}
	}
	// A guest's page shows its name and the word guest.
	if _, body := sc.get(t, "/chat/", guest+"; chatd_nick="+base64.RawURLEncoding.EncodeToString([]byte("Pablo"))); !strings.Contains(body, `<bdi>Pablo</bdi> <span class="badge guest">guest</span>`) {
		t.Errorf("the guest's header:\n%s", body)
	}
}
