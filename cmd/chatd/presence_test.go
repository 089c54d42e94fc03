package main

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chat/internal/wstest"
	"github.com/chatd/chat/ws"
)

// presenceAPI reads a room's presence through the API and returns its
// status and users.
func presenceAPI(t *testing.T, s *server, path, cookie string) (int, []string, map[string]any) {
	t.Helper()
	resp, body := s.get(t, path, cookie)
	var v map[string]any
	if err := json.Unmarshal([]byte(body), &v); err != nil {
		t.Fatalf("%s: %d %q is not JSON", path, resp.StatusCode, body)
	}
	var users []string
	list, _ := v["users"].([]any)
	for _, u := range list {
		users = append(users, u.(map[string]any)["user"].(string))
	}
	return resp.StatusCode, users, v
}

// TestPresenceAPIAndUsersPage: the presence API of a course room follows
// the room's access rules and lists who is in it; /users/ marks who is
// online; the socket's frames and the API agree; PRESENCE=off answers 404
// and sends no presence frames.
func TestPresenceAPIAndUsersPage(t *testing.T) {
	sc := newSchool(t, "sqlite", []string{"-presence-batch", "10ms"}, "PRESENCE=on")
	olga, alice, bob := sc.session(t, "olga"), sc.session(t, "alice"), sc.session(t, "bob")
	id := strconv.FormatInt(sc.courseID, 10)
	course := "/ws/chat/room/" + id + "/"
	api := "/api/chat/room/" + id + "/presence"

	co := sc.dialAs(t, course, olga) // takes the hello
	ro := &wstest.Roster{}
	co.WaitRoster(t, ro, "olga")
	ca := wstest.Dial(t, sc.ws(course), wstest.Options{Subprotocol: ws.Subprotocol, Header: cookieHeader(alice)})
	ra := &wstest.Roster{}
	ca.WaitRoster(t, ra, "olga", "alice")
	co.WaitRoster(t, ro, "olga", "alice")

	for deadline := time.Now().Add(wstest.Timeout); ; time.Sleep(5 * time.Millisecond) {
		code, users, v := presenceAPI(t, sc.server, api, olga)
		if code == http.StatusOK && strings.Join(users, ",") == "olga,alice" && v["count"] == float64(2) && v["room"] == "course:"+id {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("presence API: %d %v %v", code, users, v)
		}
	}
	// Access rules: bob is not enrolled (403), nobody signed in (401), a
	// course that does not exist (404), a bad room name (404).
	for _, tc := range []struct {
		path, cookie string
		status       int
		code         string
	}{
		{api, bob, http.StatusForbidden, "forbidden"},
		{api, "", http.StatusUnauthorized, "unauthorized"},
		{"/api/chat/room/999/presence", olga, http.StatusNotFound, "not_found"},
		{"/api/chat/bad%20name/presence", "", http.StatusNotFound, "not_found"},
		{"/api/chat/dm/olga/presence", olga, http.StatusBadRequest, "bad_request"},
	} {
		status, _, v := presenceAPI(t, sc.server, tc.path, tc.cookie)
		if status != tc.status || v["error"] != tc.code || v["detail"] == "" {
			t.Errorf("GET %s: %d %v, want %d %s", tc.path, status, v, tc.status, tc.code)
		}
	}
	// A DM's presence, for its two people.
	if status, users, _ := presenceAPI(t, sc.server, "/api/chat/dm/bob/presence", olga); status != http.StatusOK || len(users) != 0 {
		t.Errorf("DM presence: %d %v", status, users)
	}

	// /users/ marks olga and alice online, not bob or carol.
	_, page := sc.get(t, "/users/", bob)
	for name, online := range map[string]bool{"olga": true, "alice": true, "bob": false, "carol": false} {
		if !strings.Contains(page, ">"+name+"<") {
			t.Fatalf("/users/ does not list %s", name)
		}
		if got := strings.Contains(page, `data-present="`+name+`"`); got != online {
			t.Errorf("/users/: %s online %v, want %v", name, got, online)
		}
	}

	// alice leaves: olga sees it, and so does the API.
	ca.Close()
	co.WaitRoster(t, ro, "olga")
	for deadline := time.Now().Add(wstest.Timeout); ; time.Sleep(5 * time.Millisecond) {
		if _, users, _ := presenceAPI(t, sc.server, api, olga); strings.Join(users, ",") == "olga" {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("API still lists %v", users)
		}
	}
}

// TestPresenceOff: PRESENCE=off (the test default) sends no presence
// frames and the API says it is off.
func TestPresenceOff(t *testing.T) {
	s := start(t, nil)
	c := wstest.Dial(t, s.ws("/ws/chat/r/"), wstest.Options{Subprotocol: ws.Subprotocol})
	if f := c.Next(t); f.Str("type") != "hello" || f["presence"] != false {
		t.Fatalf("hello %v", f)
	}
	c.Send(t, map[string]string{"type": "typing"})
	send(t, c, "only this")
	expectMessage(t, c, "only this")
	status, _, v := presenceAPI(t, s, "/api/chat/r/presence", "")
	if status != http.StatusNotFound || v["error"] != "presence_off" {
		t.Errorf("presence API with PRESENCE=off: %d %v", status, v)
	}
}

// TestPresenceSettingsValidated: bad presence settings stop the server
// with a message naming the setting.
func TestPresenceSettingsValidated(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-presence", "maybe"}, "PRESENCE must be on or off"},
		{[]string{"-presence-max-list", "0"}, "PRESENCE_MAX_LIST"},
		{[]string{"-presence-interval", "5s", "-presence-ttl", "6s"}, "PRESENCE_TTL"},
		{[]string{"-presence-batch", "1ms"}, "PRESENCE_BATCH"},
		{[]string{"-typing-timeout", "1ms"}, "TYPING_TIMEOUT"},
	} {
		_, err := parseConfig(tc.args, func(string) string { return "" }, &strings.Builder{})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error naming %s", tc.args, err, tc.want)
		}
	}
}
