package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/internal/wstest"
	"github.com/chatd/chat/web"
)

// Tests of the publish API (docs/api.md): a real HTTP client posts with an
// API key into a real chatd while real sockets receive.

// apiKey makes an API key in the school's store and returns its secret.
func (sc *school) apiKey(t *testing.T, name, bot, rooms string) *chat.APIKey {
	t.Helper()
	k := &chat.APIKey{Name: name, Bot: bot, Rooms: rooms}
	if err := sc.st.CreateAPIKey(t.Context(), k); err != nil {
		t.Fatal(err)
	}
	return k
}

// apiResult is the answer to a publish request.
type apiResult struct {
	Status int
	Header http.Header
	Body   map[string]any
	Raw    string
}

func (r apiResult) str(k string) string { s, _ := r.Body[k].(string); return s }
func (r apiResult) num(k string) int64  { n, _ := r.Body[k].(float64); return int64(n) }

// publish POSTs body (a string is sent as it is, anything else as JSON)
// to base+path with the bearer secret (none if empty) and headers as
// name, value pairs.
func publish(t *testing.T, base, path, secret string, body any, hdr ...string) apiResult {
	t.Helper()
	var b []byte
	switch v := body.(type) {
	case string:
		b = []byte(v)
	case []byte:
		b = v
	default:
		var err error
		if b, err = json.Marshal(v); err != nil {
			t.Fatal(err)
		}
	}
	req, err := http.NewRequest(http.MethodPost, base+path, bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		req.Header.Set("Authorization", "Bearer "+secret)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := noRedirects.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	res := apiResult{Status: resp.StatusCode, Header: resp.Header, Raw: string(raw)}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Fatalf("POST %s: %d with Content-Type %q, want JSON: %s", path, resp.StatusCode, ct, raw)
	}
	if err := json.Unmarshal(raw, &res.Body); err != nil {
		t.Fatalf("POST %s: %d, body is not a JSON object: %s", path, resp.StatusCode, raw)
	}
	return res
}

// expectPosted checks that a publish request answered status with the
// message text as stored by bot, and returns its seq.
func expectPosted(t *testing.T, r apiResult, status int, text, bot string) int64 {
	t.Helper()
	if r.Status != status || r.str("type") != "chat_message" || r.str("message") != text || r.str("user") != chat.BotUser(bot) {
		t.Fatalf("answer %d %s, want %d with the chat_message %q by %s", r.Status, r.Raw, status, text, chat.BotUser(bot))
	}
	if _, err := time.Parse(time.RFC3339Nano, r.str("datetime")); err != nil {
		t.Fatalf("datetime %q: %v", r.str("datetime"), err)
	}
	return r.num("seq")
}

// expectFrame takes c's next frame and checks it is the bot's message.
func expectFrame(t *testing.T, c *wstest.Client, text, bot string, seq int64) {
	t.Helper()
	f := expectMessage(t, c, text)
	if f.Str("user") != chat.BotUser(bot) || f.Int("seq") != seq {
		t.Fatalf("frame %v, want user %s seq %d", f, chat.BotUser(bot), seq)
	}
}

// TestPublishAPI: a key posts into a public room, a course room and a
// private room; the sockets in each receive the bot's message with the seq
// the answer carried, after the commit; a retry of an id answers 200 with
// the original and is not delivered again; socket messages and API
// messages share the room's sequence.
func TestPublishAPI(t *testing.T) {
	for _, kind := range []string{"sqlite", "postgres"} {
		t.Run(kind, func(t *testing.T) { testPublishAPI(t, kind) })
	}
}

func testPublishAPI(t *testing.T, kind string) {
	sc := newSchool(t, kind, nil)
	news := sc.apiKey(t, "news", "newsbot", "chat:*")
	lobby := sc.dialAs(t, "/ws/chat/lobby/", "")
	other := sc.dialAs(t, "/ws/chat/lobby/", sc.session(t, "bob"))

	send(t, other, "from a socket")
	expectMessage(t, lobby, "from a socket")
	expectMessage(t, other, "from a socket")

	r := publish(t, sc.base, "/api/chat/lobby/messages", news.Secret, map[string]string{"message": "Hello from the API", "id": "ann-1"})
	if seq := expectPosted(t, r, http.StatusCreated, "Hello from the API", "newsbot"); seq != 2 || r.str("id") != "ann-1" || r.str("room") != "lobby" {
		t.Fatalf("answer %s, want seq 2 (after the socket's message), id ann-1, room lobby", r.Raw)
	}
	expectFrame(t, lobby, "Hello from the API", "newsbot", 2)
	expectFrame(t, other, "Hello from the API", "newsbot", 2)

	// A retry of the id (say the answer was lost) is the same message.
	r = publish(t, sc.base, "/api/chat/lobby/messages", news.Secret, map[string]string{"message": "Hello again?", "id": "ann-1"})
	if seq := expectPosted(t, r, http.StatusOK, "Hello from the API", "newsbot"); seq != 2 {
		t.Fatalf("retry answered seq %d, want the original 2", seq)
	}
	r = publish(t, sc.base, "/api/chat/lobby/messages", news.Secret, `{"message": "no id"}`)
	expectPosted(t, r, http.StatusCreated, "no id", "newsbot")
	// The retry was not delivered again: the next frame is the next message.
	expectFrame(t, lobby, "no id", "newsbot", 3)
	send(t, other, "and a socket again")
	if f := expectMessage(t, lobby, "and a socket again"); f.Int("seq") != 4 || f.Str("user") != "bob" {
		t.Fatalf("frame %v, want bob's seq 4", f)
	}
	code, hist := apiGet(t, sc.server, "/api/chat/lobby/messages", "")
	if code != 200 || fmt.Sprint(seqs(hist)) != "[1 2 3 4]" {
		t.Fatalf("history %d %v", code, hist)
	}

	// A course room, for a key allowed there; the owner and a student get it.
	courses := sc.apiKey(t, "courses", "teacher-assistant", "course:*")
	cpath := "/ws/chat/room/" + strconv.FormatInt(sc.courseID, 10) + "/"
	olga := sc.dialAs(t, cpath, sc.session(t, "olga"))
	alice := sc.dialAs(t, cpath, sc.session(t, "alice"))
	r = publish(t, sc.base, "/api/chat/room/"+strconv.FormatInt(sc.courseID, 10)+"/messages", courses.Secret,
		map[string]string{"message": "Homework is due Friday"})
	expectPosted(t, r, http.StatusCreated, "Homework is due Friday", "teacher-assistant")
	if r.str("room") != chat.CourseRoomKey(sc.courseID) || r.num("seq") != 1 {
		t.Fatalf("course answer %s", r.Raw)
	}
	expectFrame(t, olga, "Homework is due Friday", "teacher-assistant", 1)
	expectFrame(t, alice, "Homework is due Friday", "teacher-assistant", 1)

	// A private room of two accounts, named in either order and any case.
	dms := sc.apiKey(t, "dms", "notifier", "dm:*")
	aliceDM := sc.dialAs(t, "/ws/chat/dm/bob/", sc.session(t, "alice"))
	bobDM := sc.dialAs(t, "/ws/chat/dm/alice/", sc.session(t, "bob"))
	r = publish(t, sc.base, "/api/chat/dm/alice/bob/messages", dms.Secret, map[string]string{"message": "You two have a meeting"})
	expectPosted(t, r, http.StatusCreated, "You two have a meeting", "notifier")
	r = publish(t, sc.base, "/api/chat/dm/BOB/Alice/messages", dms.Secret, map[string]string{"message": "at noon"})
	if seq := expectPosted(t, r, http.StatusCreated, "at noon", "notifier"); seq != 2 {
		t.Fatalf("second DM message seq %d, want 2 (the same room)", seq)
	}
	for _, c := range []*wstest.Client{aliceDM, bobDM} {
		expectFrame(t, c, "You two have a meeting", "notifier", 1)
		expectFrame(t, c, "at noon", "notifier", 2)
	}
	// Nobody else heard any of it.
	send(t, other, "end")
	expectMessage(t, lobby, "end")
}

// TestPublishAPIErrors checks every error answer: JSON with a code and a
// detail, the status the docs name, and nothing stored.
func TestPublishAPIErrors(t *testing.T) {
	sc := newSchool(t, "sqlite", nil)
	all := sc.apiKey(t, "all", "ops", "*")
	ann := sc.apiKey(t, "announcer", "announcer", "chat:announce-*")
	gone := sc.apiKey(t, "gone", "gone", "*")
	if err := sc.st.RevokeAPIKey(t.Context(), gone.ID); err != nil {
		t.Fatal(err)
	}
	lobby := "/api/chat/lobby/messages"
	course := "/api/chat/room/" + strconv.FormatInt(sc.courseID, 10) + "/messages"
	ok := `{"message": "hi"}`
	names := make([]string, web.MaxBatchRooms+1)
	for i := range names {
		names[i] = fmt.Sprint("room", i)
	}
	tooMany, _ := json.Marshal(map[string]any{"message": "hi", "rooms": names})
	tooManyRooms := string(tooMany)
	for _, tc := range []struct {
		name, path, secret, body string
		hdr                      []string
		status                   int
		code                     string
	}{
		{"no key", lobby, "", ok, nil, 401, "unauthorized"},
		{"a session is not a key", lobby, "", ok, []string{"Cookie", sc.session(t, "olga")}, 401, "unauthorized"},
		{"basic auth", lobby, "", ok, []string{"Authorization", "Basic b3BzOnB3"}, 401, "unauthorized"},
		{"unknown key", lobby, "chatd_nosuchkey", ok, nil, 401, "invalid_key"},
		{"revoked key", lobby, gone.Secret, ok, nil, 401, "invalid_key"},
		{"unknown key, unknown room", "/api/chat/room/999/messages", "chatd_x", ok, nil, 401, "invalid_key"},

		{"not JSON", lobby, all.Secret, `message=hi`, nil, 400, "invalid_json"},
		{"empty body", lobby, all.Secret, ``, nil, 400, "invalid_json"},
		{"array", lobby, all.Secret, `["hi"]`, nil, 400, "not_object"},
		{"unknown field", lobby, all.Secret, `{"message": "hi", "user": "admin"}`, nil, 400, "unknown_field"},
		{"rooms in the single form", lobby, all.Secret, `{"message": "hi", "rooms": ["x"]}`, nil, 400, "unknown_field"},
		{"no message", lobby, all.Secret, `{"id": "x"}`, nil, 400, "invalid_message"},
		{"message not a string", lobby, all.Secret, `{"message": 5}`, nil, 400, "invalid_message"},
		{"empty message", lobby, all.Secret, `{"message": "  \n "}`, nil, 400, "empty_message"},
		{"NUL", lobby, all.Secret, `{"message": "a\u0000b"}`, nil, 400, "invalid_message"},
		{"id not a string", lobby, all.Secret, `{"message": "hi", "id": 7}`, nil, 400, "invalid_id"},
		{"id too long", lobby, all.Secret, `{"message": "hi", "id": "` + strings.Repeat("x", 65) + `"}`, nil, 400, "invalid_id"},
		{"id with a control character", lobby, all.Secret, `{"message": "hi", "id": "a\nb"}`, nil, 400, "invalid_id"},
		{"DM with oneself", "/api/chat/dm/alice/ALICE/messages", all.Secret, ok, nil, 400, "bad_request"},

		{"room not allowed", lobby, ann.Secret, ok, nil, 403, "forbidden"},
		{"course not allowed (before it is looked up)", "/api/chat/room/999/messages", ann.Secret, ok, nil, 403, "forbidden"},
		{"DM not allowed", "/api/chat/dm/alice/bob/messages", ann.Secret, ok, nil, 403, "forbidden"},
		{"from another site's page", lobby, all.Secret, ok, []string{"Sec-Fetch-Site", "cross-site"}, 403, "cross_origin"},

		{"invalid room name", "/api/chat/no%20spaces/messages", all.Secret, ok, nil, 404, "not_found"},
		{"dots", "/api/chat/..../messages", all.Secret, ok, nil, 404, "not_found"},
		{"course id not a number", "/api/chat/room/abc/messages", all.Secret, ok, nil, 404, "not_found"},
		{"no such course", "/api/chat/room/999/messages", all.Secret, ok, nil, 404, "not_found"},
		{"no such user", "/api/chat/dm/alice/ghost/messages", all.Secret, ok, nil, 404, "not_found"},

		{"message too long", lobby, all.Secret, `{"message": "` + strings.Repeat("é", 4001) + `"}`, nil, 413, "message_too_long"},
		{"body too large", lobby, all.Secret, `{"message": "` + strings.Repeat("x", 70<<10) + `"}`, nil, 413, "body_too_large"},
		{"batch of too many rooms", "/api/chat/messages", all.Secret, tooManyRooms, nil, 413, "too_many_rooms"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := publish(t, sc.base, tc.path, tc.secret, tc.body, tc.hdr...)
			if r.Status != tc.status || r.str("error") != tc.code || r.str("detail") == "" {
				t.Fatalf("answer %d %s, want %d with error %q and a detail", r.Status, r.Raw, tc.status, tc.code)
			}
			if tc.status == 401 && !strings.HasPrefix(r.Header.Get("WWW-Authenticate"), `Bearer realm="chatd"`) {
				t.Errorf("401 without a Bearer challenge: %q", r.Header.Get("WWW-Authenticate"))
			}
		})
	}
	// The announcer may post where its pattern allows.
	r := publish(t, sc.base, "/api/chat/announce-today/messages", ann.Secret, ok)
	expectPosted(t, r, http.StatusCreated, "hi", "announcer")
	// Nothing else was stored anywhere.
	for _, p := range []string{"/api/chat/lobby/messages", "/api/chat/r/messages"} {
		if code, hist := apiGet(t, sc.server, p, ""); code != 200 || len(seqs(hist)) != 0 {
			t.Errorf("%s: %d %v; want nothing stored", p, code, hist)
		}
	}
	if code, hist := apiGet(t, sc.server, course, sc.session(t, "olga")); code != 200 || len(seqs(hist)) != 0 {
		t.Errorf("course history %d %v; want nothing stored", code, hist)
	}
}

// TestPublishRateLimit: each key has its own budget of messages (a batch
// costs one per room) on the server's clock, which the test advances.
func TestPublishRateLimit(t *testing.T) {
	clk := newFakeClock()
	sc := newSchoolCtx(t, withClock(t.Context(), clk.Now), "sqlite", nil, "API_RATE_LIMIT=1", "API_RATE_BURST=3")
	a := sc.apiKey(t, "a", "a", "chat:*")
	b := sc.apiKey(t, "b", "b", "chat:*")
	for i := range 3 {
		r := publish(t, sc.base, "/api/chat/lobby/messages", a.Secret, map[string]string{"message": fmt.Sprint("a", i)})
		expectPosted(t, r, http.StatusCreated, fmt.Sprint("a", i), "a")
	}
	r := publish(t, sc.base, "/api/chat/lobby/messages", a.Secret, map[string]string{"message": "one too many"})
	if r.Status != http.StatusTooManyRequests || r.str("error") != "rate_limited" || r.Header.Get("Retry-After") != "1" {
		t.Fatalf("4th message in a burst of 3: %d %s (Retry-After %q); want 429 rate_limited, Retry-After 1",
			r.Status, r.Raw, r.Header.Get("Retry-After"))
	}
	// Another key has its own budget; a batch costs one per room.
	r = publish(t, sc.base, "/api/chat/lobby/messages", b.Secret, map[string]string{"message": "b0"})
	expectPosted(t, r, http.StatusCreated, "b0", "b")
	r = publish(t, sc.base, "/api/chat/messages", b.Secret, map[string]any{"message": "to three", "rooms": []string{"x", "y", "z"}})
	if r.Status != http.StatusTooManyRequests || r.Header.Get("Retry-After") != "1" {
		t.Fatalf("batch of 3 with 2 left: %d %s, want 429", r.Status, r.Raw)
	}
	r = publish(t, sc.base, "/api/chat/messages", b.Secret, map[string]any{"message": "to four", "rooms": []string{"w", "x", "y", "z"}})
	if r.Status != http.StatusRequestEntityTooLarge || r.str("error") != "too_many_rooms" {
		t.Fatalf("batch of 4 with a burst of 3: %d %s, want 413 too_many_rooms (it could never pass)", r.Status, r.Raw)
	}
	clk.Advance(time.Second)
	r = publish(t, sc.base, "/api/chat/lobby/messages", a.Secret, map[string]string{"message": "a3"})
	expectPosted(t, r, http.StatusCreated, "a3", "a")
	code, hist := apiGet(t, sc.server, "/api/chat/lobby/messages", "")
	if code != 200 || len(seqs(hist)) != 5 {
		t.Fatalf("history %d %v; want the 5 messages that were allowed", code, hist)
	}
}

// TestPublishBatch: one message to many rooms; each room's outcome in
// order; the sockets of every stored room get it; a retry with the same id
// stores nothing new.
func TestPublishBatch(t *testing.T) {
	sc := newSchool(t, "sqlite", nil)
	k := sc.apiKey(t, "ann", "announcer", "chat:*,course:*")
	cid := strconv.FormatInt(sc.courseID, 10)
	lobby := sc.dialAs(t, "/ws/chat/lobby/", "")
	news := sc.dialAs(t, "/ws/chat/news/", "")
	course := sc.dialAs(t, "/ws/chat/room/"+cid+"/", sc.session(t, "alice"))
	send(t, news, "earlier")
	expectMessage(t, news, "earlier")

	dm := fmt.Sprintf("dm:%d:%d", sc.users["bob"].ID, sc.users["alice"].ID)
	rooms := []string{"lobby", "chat:news", "course:" + cid, "course:9999", dm, "chat:bad name", "lobby2"}
	body := map[string]any{"message": "School closes at 3", "id": "closing", "rooms": rooms}
	want := []struct {
		status int
		seq    int64
		code   string
	}{{201, 1, ""}, {201, 2, ""}, {201, 1, ""}, {404, 0, "not_found"}, {403, 0, "forbidden"}, {404, 0, "not_found"}, {201, 1, ""}}
	check := func(r apiResult, retry bool) {
		t.Helper()
		results, _ := r.Body["results"].([]any)
		if r.Status != http.StatusOK || len(results) != len(rooms) {
			t.Fatalf("batch answer %d %s", r.Status, r.Raw)
		}
		for i, w := range want {
			res := results[i].(map[string]any)
			status := w.status
			if retry && status == 201 {
				status = 200
			}
			got := fmt.Sprintf("%v %v %v", res["room"], res["status"], res["error"])
			if res["room"] != rooms[i] || int(res["status"].(float64)) != status || (w.code != "" && res["error"] != w.code) {
				t.Errorf("result %d: %s (%v), want %s %d %s", i, got, res, rooms[i], status, w.code)
			}
			if seq, _ := res["seq"].(float64); int64(seq) != w.seq {
				t.Errorf("result %d: seq %v, want %d", i, res["seq"], w.seq)
			}
			if w.code != "" && res["detail"] == "" {
				t.Errorf("result %d has no detail", i)
			}
		}
	}
	check(publish(t, sc.base, "/api/chat/messages", k.Secret, body), false)
	expectFrame(t, lobby, "School closes at 3", "announcer", 1)
	expectFrame(t, news, "School closes at 3", "announcer", 2)
	expectFrame(t, course, "School closes at 3", "announcer", 1)
	check(publish(t, sc.base, "/api/chat/messages", k.Secret, body), true)
	// Nothing new was delivered: the next frames are the next messages.
	for _, c := range []*wstest.Client{lobby, news} {
		send(t, c, "next")
		expectMessage(t, c, "next")
	}

	for _, tc := range []struct{ name, body, code string }{
		{"no rooms", `{"message": "x"}`, "invalid_rooms"},
		{"empty rooms", `{"message": "x", "rooms": []}`, "invalid_rooms"},
		{"rooms not strings", `{"message": "x", "rooms": [1]}`, "invalid_rooms"},
		{"rooms null", `{"message": "x", "rooms": null}`, "invalid_rooms"},
		{"a room twice", `{"message": "x", "rooms": ["a", "b", "a"]}`, "invalid_rooms"},
		{"no message", `{"rooms": ["a"]}`, "invalid_message"},
	} {
		r := publish(t, sc.base, "/api/chat/messages", k.Secret, tc.body)
		if r.Status != http.StatusBadRequest || r.str("error") != tc.code {
			t.Errorf("%s: %d %s, want 400 %s", tc.name, r.Status, r.Raw, tc.code)
		}
	}
	// The same room named twice in two spellings is refused for the second.
	r := publish(t, sc.base, "/api/chat/messages", k.Secret, `{"message": "twice", "rooms": ["twice", "chat:twice"]}`)
	results, _ := r.Body["results"].([]any)
	if r.Status != 200 || len(results) != 2 || results[0].(map[string]any)["status"] != 201.0 || results[1].(map[string]any)["status"] != 400.0 {
		t.Fatalf("one room in two spellings: %d %s", r.Status, r.Raw)
	}
}

// TestPublishHistoryOff: without history a message is delivered to the
// sockets open now and answered 202 without a seq.
func TestPublishHistoryOff(t *testing.T) {
	sc := newSchool(t, "sqlite", []string{"-history=off"})
	k := sc.apiKey(t, "news", "news", "chat:*")
	c := sc.dialAs(t, "/ws/chat/lobby/", "")
	for range 2 { // an id is not checked for repeats: nothing remembers it
		r := publish(t, sc.base, "/api/chat/lobby/messages", k.Secret, map[string]string{"message": "ephemeral", "id": "e1"})
		expectPosted(t, r, http.StatusAccepted, "ephemeral", "news")
		if _, has := r.Body["seq"]; has {
			t.Fatalf("answer with history off has a seq: %s", r.Raw)
		}
		if f := expectMessage(t, c, "ephemeral"); f.Str("user") != "bot:news" || f.Int("seq") != 0 {
			t.Fatalf("frame %v", f)
		}
	}
}
