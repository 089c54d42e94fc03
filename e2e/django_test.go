package e2e_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chat/internal/djangoanchor"
	"github.com/chatd/chat/internal/testserver"
	"github.com/chatd/chat/internal/wstest"
)

// recorder reads one WebSocket client's frames and remembers every
// message text, to check at the end that nothing came twice.
type recorder struct {
	t      *testing.T
	name   string
	c      *wstest.Client
	frames []wstest.Frame
}

// expect reads frames until one carries message text and returns it.
func (r *recorder) expect(text string) wstest.Frame {
	r.t.Helper()
	deadline := time.Now().Add(patience)
	for {
		f, err := r.c.TryNext(time.Until(deadline))
		if err != nil {
			r.t.Fatalf("%s: waiting for %q: %v (got %v)", r.name, text, err, r.texts())
		}
		r.frames = append(r.frames, f)
		if f.Str("message") == text {
			return f
		}
	}
}

func (r *recorder) texts() []string {
	var out []string
	for _, f := range r.frames {
		out = append(out, f.Str("message"))
	}
	return out
}

// once checks that every text arrived exactly once.
func (r *recorder) once(texts ...string) {
	r.t.Helper()
	count := map[string]int{}
	for _, s := range r.texts() {
		count[s]++
	}
	for _, s := range texts {
		if count[s] != 1 {
			r.t.Errorf("%s got %q %d times, want once (all: %q)", r.name, s, count[s], r.texts())
		}
	}
}

// TestDjangoInterop runs chatd beside the real Django Channels tutorial
// server (Daphne, channels_redis) on one Redis, for both channels_redis
// layers: a Django group_send reaches chatd's sockets, stored and
// sequenced; a chatd socket's message reaches the Daphne clients of the
// room and the other way round; an event of an unknown type does not
// disturb chatd; nobody sees a message twice.
func TestDjangoInterop(t *testing.T) {
	for _, layer := range []string{"core", "pubsub"} {
		t.Run(layer, func(t *testing.T) {
			dj := djangoanchor.Start(t, djangoanchor.Options{Layer: layer})
			srv := testserver.Start(t, nil, "CHANNEL_LAYER=channels_redis", "CHANNELS_REDIS_LAYER="+layer,
				"REDIS_URL="+dj.Redis.URL(), "RATE_LIMIT=0")
			chatURL := wstest.WSURL(srv.URL, "/ws/chat/lobby/")
			a := &recorder{t: t, name: "chatd client", c: wstest.Dial(t, chatURL, wstest.Options{})}
			d := &recorder{t: t, name: "daphne client", c: wstest.Dial(t, dj.WSURL("/ws/chat/lobby/"), wstest.Options{})}
			other := &recorder{t: t, name: "chatd client in another room", c: wstest.Dial(t, wstest.WSURL(srv.URL, "/ws/chat/other/"), wstest.Options{})}

			// 1. A Django view's group_send, with extra keys.
			dj.GroupSend("chat_lobby", `{"type": "chat.message", "message": "from a django view", "user": "djview", "id": "view-1", "mood": "ok"}`)
			f := a.expect("from a django view")
			if f.Str("user") != "djview" || f.Int("seq") != 1 || f.Str("room") != "lobby" || f.Str("id") != "view-1" || f.Str("datetime") == "" {
				t.Errorf("chatd frame for a Django event: %v", f)
			}
			d.expect("from a django view")

			// 2. A chatd socket's message reaches the Daphne client.
			a.c.Send(t, map[string]string{"message": "from chatd"})
			if f := a.expect("from chatd"); f.Int("seq") != 2 {
				t.Errorf("chatd echo: %v", f)
			}
			if f := d.expect("from chatd"); len(f) != 1 {
				t.Errorf("daphne client got %v, want the tutorial's {message}", f)
			}

			// 3. A Daphne client's message reaches chatd (the tutorial
			// consumer's group_send), under the default name "django".
			d.c.Send(t, map[string]string{"message": "from daphne"})
			if f := a.expect("from daphne"); f.Str("user") != "django" || f.Int("seq") != 3 {
				t.Errorf("chatd frame for a Daphne message: %v", f)
			}
			d.expect("from daphne")

			// 4. Its history: the stored messages, Django's included.
			h := wstest.Dial(t, chatURL, wstest.Options{})
			hr := &recorder{t: t, name: "late chatd client", c: h}
			hr.expect("from a django view")
			hr.expect("from chatd")
			hr.expect("from daphne")

			// 5. An event of a type no consumer handles: Django's own
			// consumers die of it (channels closes them with 1011), chatd's
			// sockets carry on.
			dj.GroupSend("chat_lobby", `{"type": "no.such.handler", "message": "boom"}`)
			if code, _ := d.c.WaitClose(t); code != 1011 {
				t.Logf("daphne client closed with %d", code)
			}
			d2 := &recorder{t: t, name: "second daphne client", c: wstest.Dial(t, dj.WSURL("/ws/chat/lobby/"), wstest.Options{})}
			d2.c.Send(t, map[string]string{"message": "after the unknown type"})
			a.expect("after the unknown type")
			d2.expect("after the unknown type")
			a.c.Send(t, map[string]string{"message": "chatd still works"})
			a.expect("chatd still works")
			d2.expect("chatd still works")

			// Nothing twice, nothing else, on either side; no Django
			// traffic in the other room.
			a.once("from a django view", "from chatd", "from daphne", "after the unknown type", "chatd still works")
			d.once("from a django view", "from chatd", "from daphne")
			d2.once("after the unknown type", "chatd still works")
			for _, s := range a.texts() {
				if s == "boom" {
					t.Error("chatd delivered the unknown event")
				}
			}
			other.c.Send(t, map[string]string{"message": "other marker"})
			other.expect("other marker")
			if got := other.texts(); len(got) != 1 {
				t.Errorf("the other room got %q", got)
			}
			if !strings.Contains(srv.Stderr(), "channels") {
				t.Log(srv.Stderr())
			}
		})
	}
}

// TestDjangoRefusesRoomNames checks that a room Django could not name as a
// group is refused with a reason while channels_redis is on.
func TestDjangoRefusesRoomNames(t *testing.T) {
	dj := djangoanchor.Start(t, djangoanchor.Options{})
	srv := testserver.Start(t, nil, "CHANNEL_LAYER=channels_redis", "REDIS_URL="+dj.Redis.URL())
	status, body := wstest.DialStatus(t, wstest.WSURL(srv.URL, "/ws/chat/caf%C3%A9/"))
	if status != 404 || !strings.Contains(body, "Django") {
		t.Errorf("café: %d %q", status, body)
	}
	long := strings.Repeat("a", 95)
	if status, _ := wstest.DialStatus(t, wstest.WSURL(srv.URL, "/ws/chat/"+long+"/")); status != 404 {
		t.Errorf("95 characters: %d", status)
	}
	if status, _ := wstest.DialStatus(t, wstest.WSURL(srv.URL, fmt.Sprintf("/ws/chat/%s/", long[:94]))); status != 101 {
		t.Errorf("94 characters: %d", status)
	}
}

// TestDjangoLoginsInChatd signs in to the real Django site and opens
// chatd's rooms with its session cookie: the socket is that Django user
// (guests are refused here), and a password change on the Django side
// closes it.
func TestDjangoLoginsInChatd(t *testing.T) {
	dj := djangoanchor.Start(t, djangoanchor.Options{Files: djangoanchor.LoginFiles})
	dj.CreateUser("alice", "alice-pw-1")
	srv := testserver.Start(t, nil, "ALLOW_ANONYMOUS=false", "DJANGO_SECRET_KEY="+djangoanchor.SecretKey,
		"DJANGO_DATABASE_URL=sqlite://"+dj.DatabasePath(), "DJANGO_SESSION_RECHECK=200ms")
	url := wstest.WSURL(srv.URL, "/ws/chat/lobby/")
	if status, _ := wstest.DialStatus(t, url); status != 401 {
		t.Errorf("without a session: %d, want 401", status)
	}
	if status, _ := wstest.DialStatus(t, url, "Cookie", "sessionid=abcdefghijklmnopqrstuvwxyz012345"); status != 401 {
		t.Errorf("with a made-up session: %d, want 401", status)
	}
	sid := dj.Login("alice", "alice-pw-1")
	c := wstest.Dial(t, url, wstest.Options{Subprotocol: "chatd.v1", Header: map[string][]string{"Cookie": {"sessionid=" + sid}}})
	hello, err := c.TryNext(patience)
	if err != nil || hello.Str("type") != "hello" || hello.Str("user") != "alice" {
		t.Fatalf("hello %v %v", hello, err)
	}
	c.Send(t, map[string]string{"message": "hi as alice"})
	for {
		f, err := c.TryNext(patience)
		if err != nil {
			t.Fatal(err)
		}
		if f.Str("message") == "hi as alice" {
			if f.Str("user") != "alice" {
				t.Errorf("frame user %q", f.Str("user"))
			}
			break
		}
	}
	// The page knows her too.
	req, _ := http.NewRequest("GET", srv.URL+"/chat/lobby/", nil)
	req.Header.Set("Cookie", "sessionid="+sid)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Errorf("room page with the Django session: %d", resp.StatusCode)
	}
	// A password change on the Django side signs her out of chatd.
	dj.Shell("from django.contrib.auth.models import User\nu = User.objects.get(username='alice')\nu.set_password('alice-pw-2')\nu.save()\n")
	old := wstest.Timeout
	wstest.Timeout = patience
	defer func() { wstest.Timeout = old }()
	if code, reason := c.WaitClose(t); code != 1008 || !strings.Contains(reason, "Django") {
		t.Errorf("close %d %q, want 1008 signed out of the Django site", code, reason)
	}
	if status, _ := wstest.DialStatus(t, url, "Cookie", "sessionid="+sid); status != 401 {
		t.Errorf("after the password change: %d, want 401", status)
	}
}
