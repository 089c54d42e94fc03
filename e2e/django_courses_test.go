package e2e_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/chatd/chat/internal/djangoanchor"
	"github.com/chatd/chat/internal/testserver"
	"github.com/chatd/chat/internal/wstest"
)

// The educa tutorial's course membership and titles, as docs/django.md
// shows them.
const (
	educaCourseQuery = `SELECT 1 FROM courses_course WHERE id = :course AND owner_id = :user
UNION ALL
SELECT 1 FROM courses_course_students WHERE course_id = :course AND user_id = :user`
	educaTitleQuery = `SELECT c.title, u.username FROM courses_course c JOIN auth_user u ON u.id = c.owner_id WHERE c.id = :course`
)

// startCourseSite starts the real Django site with an educa-like courses
// app and Django's login form, and makes users teacher, alice and bob (the
// password of each is its name + "-pw") and a course of teacher's with
// alice enrolled. It returns the site and the course's id.
func startCourseSite(t *testing.T, layer string) (*djangoanchor.Anchor, int64) {
	t.Helper()
	dj := djangoanchor.Start(t, djangoanchor.Options{Layer: layer,
		Files: djangoanchor.Files(djangoanchor.LoginFiles, djangoanchor.CourseFiles), Apps: djangoanchor.CourseApps})
	for _, u := range []string{"teacher", "alice", "bob"} {
		dj.CreateUser(u, u+"-pw")
	}
	return dj, dj.CreateCourse("teacher", "Go ünd Django", "alice")
}

// courseEnv is chatd's environment for Django logins and Django's course
// enrolment.
func courseEnv(dj *djangoanchor.Anchor) []string {
	return []string{"DJANGO_SECRET_KEY=" + djangoanchor.SecretKey, "DJANGO_DATABASE_URL=sqlite://" + dj.DatabasePath(),
		"DJANGO_SESSION_RECHECK=200ms", "DJANGO_COURSE_QUERY=" + educaCourseQuery, "DJANGO_COURSE_TITLE_QUERY=" + educaTitleQuery}
}

// getAs returns the status and body of a GET with a Django session.
func getAs(t *testing.T, url, sid string) (int, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	if sid != "" {
		req.Header.Set("Cookie", "sessionid="+sid)
	}
	cl := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// dialAs opens a chatd.v1 socket with a Django session and returns it
// after its hello, which must name user.
func dialAs(t *testing.T, url, sid, user string) *recorder {
	t.Helper()
	c := wstest.Dial(t, url, wstest.Options{Subprotocol: "chatd.v1", Header: map[string][]string{"Cookie": {"sessionid=" + sid}}})
	hello, err := c.TryNext(patience)
	if err != nil || hello.Str("type") != "hello" || hello.Str("user") != user {
		t.Fatalf("hello as %s: %v %v", user, hello, err)
	}
	return &recorder{t: t, name: user, c: c}
}

// TestDjangoCourseRooms runs chatd with DJANGO_COURSE_QUERY beside the
// real Django site: users signed in through Django's login form enter a
// course's room (page, socket, history) exactly when the site's
// courses_course / courses_course_students say so, and a student removed
// on the Django side is disconnected from the room (1008 "no longer
// enrolled") while the course's owner stays.
func TestDjangoCourseRooms(t *testing.T) {
	dj, id := startCourseSite(t, "")
	srv := testserver.Start(t, nil, courseEnv(dj)...)
	alice, bob, teacher := dj.Login("alice", "alice-pw"), dj.Login("bob", "bob-pw"), dj.Login("teacher", "teacher-pw")
	page := fmt.Sprintf("%s/chat/room/%d/", srv.URL, id)
	socket := wstest.WSURL(srv.URL, fmt.Sprintf("/ws/chat/room/%d/", id))
	api := fmt.Sprintf("%s/api/chat/room/%d/messages", srv.URL, id)

	// The page: the Django course's title for its student, 403 for
	// someone else, 404 for a course the site does not have.
	if status, body := getAs(t, page, alice); status != 200 || !strings.Contains(body, "Go ünd Django") {
		t.Errorf("alice's room page: %d", status)
	}
	if status, body := getAs(t, fmt.Sprintf("%s/courses/%d/", srv.URL, id), alice); status != 200 || !strings.Contains(body, "teacher") {
		t.Errorf("alice's course page: %d %s", status, body)
	}
	if status, _ := getAs(t, page, bob); status != 403 {
		t.Errorf("bob's room page: %d, want 403", status)
	}
	if status, _ := getAs(t, fmt.Sprintf("%s/chat/room/%d/", srv.URL, id+100), alice); status != 404 {
		t.Errorf("a course Django does not have: %d, want 404", status)
	}
	// The socket: 403 before any 101 for bob, 401 without a session.
	if status, _ := wstest.DialStatus(t, socket, "Cookie", "sessionid="+bob); status != 403 {
		t.Errorf("bob's socket: %d, want 403", status)
	}
	if status, _ := wstest.DialStatus(t, socket); status != 401 {
		t.Errorf("a socket without a session: %d, want 401", status)
	}
	a := dialAs(t, socket, alice, "alice")
	tc := dialAs(t, socket, teacher, "teacher")
	a.c.Send(t, map[string]string{"message": "hello course"})
	if f := a.expect("hello course"); f.Str("user") != "alice" || f.Int("seq") != 1 || f.Str("room") != fmt.Sprintf("course:%d", id) {
		t.Errorf("alice's frame: %v", f)
	}
	tc.expect("hello course")
	// The history API follows the same rule.
	if status, body := getAs(t, api, alice); status != 200 || !strings.Contains(body, "hello course") {
		t.Errorf("alice's history: %d %s", status, body)
	}
	if status, _ := getAs(t, api, bob); status != 403 {
		t.Errorf("bob's history: %d, want 403", status)
	}

	// The site removes alice from the course: her socket closes, the
	// teacher's does not, and she cannot come back.
	dj.Unenroll(id, "alice")
	old := wstest.Timeout
	wstest.Timeout = patience
	defer func() { wstest.Timeout = old }()
	if code, reason := a.c.WaitClose(t); code != 1008 || reason != "no longer enrolled" {
		t.Errorf("alice's socket closed with %d %q, want 1008 no longer enrolled", code, reason)
	}
	tc.c.Send(t, map[string]string{"message": "the teacher stays"})
	tc.expect("the teacher stays")
	if status, _ := wstest.DialStatus(t, socket, "Cookie", "sessionid="+alice); status != 403 {
		t.Errorf("alice's socket after the removal: %d, want 403", status)
	}
	if status, _ := getAs(t, page, alice); status != 403 {
		t.Errorf("alice's page after the removal: %d, want 403", status)
	}
	tc.once("hello course", "the teacher stays")
	if !strings.Contains(srv.Stderr(), "no longer enrolled") {
		t.Logf("chatd's log:\n%s", srv.Stderr())
	}
}

// TestDjangoCourseGroupBridge runs chatd with CHANNELS_REDIS_COURSE_GROUP
// beside the real Django site and its educa-like course consumer, for both
// channels_redis layers: a Django view's group_send to chat_<course id>
// reaches chatd's course room (stored, sequenced), a chatd student's
// message reaches the Daphne client in the course's group, a Daphne
// client's message reaches chatd, nothing arrives twice, and the public
// room named like the course's id is refused.
func TestDjangoCourseGroupBridge(t *testing.T) {
	for _, layer := range []string{"core", "pubsub"} {
		t.Run(layer, func(t *testing.T) {
			dj, id := startCourseSite(t, layer)
			env := append(courseEnv(dj), "CHANNEL_LAYER=channels_redis", "CHANNELS_REDIS_LAYER="+layer, "REDIS_URL="+dj.Redis.URL(),
				"CHANNELS_REDIS_COURSE_GROUP=chat_{course}", "RATE_LIMIT=0")
			srv := testserver.Start(t, nil, env...)
			alice, teacher := dj.Login("alice", "alice-pw"), dj.Login("teacher", "teacher-pw")
			a := dialAs(t, wstest.WSURL(srv.URL, fmt.Sprintf("/ws/chat/room/%d/", id)), alice, "alice")
			d := &recorder{t: t, name: "daphne client (teacher)", c: wstest.Dial(t, dj.WSURL(fmt.Sprintf("/ws/chat/room/%d/", id)),
				wstest.Options{Header: map[string][]string{"Cookie": {"sessionid=" + teacher}}})}
			room := fmt.Sprintf("course:%d", id)

			// 1. A Django view's group_send to the course's group.
			dj.GroupSend(fmt.Sprintf("chat_%d", id), `{"type": "chat_message", "message": "from a django view", "user": "teacher"}`)
			if f := a.expect("from a django view"); f.Str("user") != "teacher" || f.Int("seq") != 1 || f.Str("room") != room {
				t.Errorf("chatd frame of the Django event: %v", f)
			}
			d.expect("from a django view")

			// 2. A chatd student's message reaches the Django consumer,
			// which passes the whole event to its browser.
			a.c.Send(t, map[string]string{"message": "from chatd"})
			if f := a.expect("from chatd"); f.Int("seq") != 2 {
				t.Errorf("chatd echo: %v", f)
			}
			if f := d.expect("from chatd"); f.Str("user") != "alice" || f.Str("room") != room || f.Int("seq") != 2 {
				t.Errorf("the Daphne client got %v", f)
			}

			// 3. The Daphne client's message (the consumer's group_send,
			// with its user) reaches chatd.
			d.c.Send(t, map[string]string{"message": "from daphne"})
			if f := a.expect("from daphne"); f.Str("user") != "teacher" || f.Int("seq") != 3 {
				t.Errorf("chatd frame of the Daphne message: %v", f)
			}
			d.expect("from daphne")

			// All three are in the course room's history, each once.
			status, body := getAs(t, fmt.Sprintf("%s/api/chat/room/%d/messages", srv.URL, id), alice)
			if status != 200 || strings.Count(body, `"seq"`) != 3 {
				t.Errorf("history: %d %s", status, body)
			}
			a.c.Send(t, map[string]string{"message": "marker"})
			a.expect("marker")
			d.expect("marker")
			a.once("from a django view", "from chatd", "from daphne", "marker")
			d.once("from a django view", "from chatd", "from daphne", "marker")

			// The bridge's counters are in /readyz's details (asked from
			// the loopback interface): both Django events were taken here,
			// and "from chatd" was sent before the marker reached Daphne.
			var ready struct {
				Status string `json:"status"`
				Bridge struct {
					Sent, Received, Unsent uint64
				} `json:"channels_redis"`
			}
			if status, body := getAs(t, srv.URL+"/readyz", ""); status != 200 || json.Unmarshal([]byte(body), &ready) != nil ||
				ready.Bridge.Sent < 1 || ready.Bridge.Received < 2 || ready.Bridge.Unsent != 0 {
				t.Errorf("/readyz: %d %s", status, body)
			}

			// The public room named like the course would share its group.
			if status, body := wstest.DialStatus(t, wstest.WSURL(srv.URL, fmt.Sprintf("/ws/chat/%d/", id))); status != 404 || !strings.Contains(body, "course") {
				t.Errorf("public room %d: %d %q", id, status, body)
			}
		})
	}
}
