// Package djangoanchor runs the real Django Channels tutorial server (the
// anchor in ../shared/anchors/django_chat: Django, channels,
// channels_redis and Daphne from Debian's packages) for end-to-end tests of
// chatd beside Django. Each test gets a copy of the anchor in a temporary
// directory, its own redis-server and its own Daphne on a spare port; the
// shared anchor and the machine's Redis are never touched.
//
// Tests skip when the Debian packages are missing, unless
// CHATD_REQUIRE_DJANGO=1 (set by .ci/run), which makes that a failure.
package djangoanchor

import (
	"bytes"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chatd/chat/internal/redistest"
)

// Python is Debian's interpreter, which sees the Debian packages (a pyenv
// python3 on PATH may not).
const Python = "/usr/bin/python3"

// SecretKey is the anchor's SECRET_KEY.
const SecretKey = "anchor-benchmark-not-secret"

// Require skips (or, with CHATD_REQUIRE_DJANGO=1, fails) the test unless
// the anchor's Python packages and daphne are installed.
func Require(t testing.TB) {
	t.Helper()
	err := exec.Command(Python, "-c", "import django, channels, channels_redis, daphne").Run()
	if err == nil {
		_, err = os.Stat("/usr/bin/daphne")
	}
	if err != nil {
		msg := "the Django anchor needs Debian's python3-django python3-django-channels python3-channels-redis python3-daphne daphne (see .ci/run)"
		if os.Getenv("CHATD_REQUIRE_DJANGO") == "1" {
			t.Fatal(msg + ": " + err.Error())
		}
		t.Skip(msg)
	}
}

// Dir returns the shared anchor's directory: CHATD_DJANGO_ANCHOR, or
// shared/anchors/django_chat beside the repository (or one level up, for
// a git worktree).
func Dir(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("CHATD_DJANGO_ANCHOR"); d != "" {
		return d
	}
	_, file, _, _ := runtime.Caller(0)
	root := filepath.Join(filepath.Dir(file), "..", "..")
	for _, up := range []string{"..", filepath.Join("..", "..")} {
		d := filepath.Join(root, up, "shared", "anchors", "django_chat")
		if _, err := os.Stat(filepath.Join(d, "manage.py")); err == nil {
			return d
		}
	}
	msg := "the Django anchor (shared/anchors/django_chat beside the repository) is missing; set CHATD_DJANGO_ANCHOR"
	if os.Getenv("CHATD_REQUIRE_DJANGO") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// Options change the copy of the anchor.
type Options struct {
	Layer string // "core" (default) or "pubsub"
	// Redis is the redis-server to use; default a new private one.
	Redis *redistest.Server
	// Files are added to (or replace files in) the copy, by relative path.
	Files map[string]string
	// Settings is Python appended to djchat/settings.py.
	Settings string
	// Apps are Django apps added to INSTALLED_APPS (their files come in
	// Files); their migrations are made (makemigrations) before migrate.
	Apps []string
}

// Anchor is a running copy of the Django tutorial server.
type Anchor struct {
	t     testing.TB
	Dir   string // the copy
	URL   string // http://127.0.0.1:PORT
	Redis *redistest.Server
	env   []string
	cmd   *exec.Cmd
	mu    sync.Mutex
	log   bytes.Buffer
	done  chan struct{}
}

// Start copies the anchor, migrates its database and starts Daphne.
func Start(t testing.TB, o Options) *Anchor {
	t.Helper()
	Require(t)
	src := Dir(t)
	if o.Layer == "" {
		o.Layer = "core"
	}
	if o.Redis == nil {
		o.Redis = redistest.Start(t)
	}
	dir := filepath.Join(t.TempDir(), "django_chat")
	if out, err := exec.Command("cp", "-r", src, dir).CombinedOutput(); err != nil {
		t.Fatalf("copy the anchor: %v %s", err, out)
	}
	_ = os.RemoveAll(filepath.Join(dir, "run"))
	for name, body := range o.Files {
		p := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	settings := o.Settings
	if len(o.Apps) > 0 {
		settings += fmt.Sprintf("\nINSTALLED_APPS += [%s]\n", pyStrings(o.Apps))
	}
	if settings != "" {
		f, err := os.OpenFile(filepath.Join(dir, "djchat", "settings.py"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.WriteString("\n" + settings + "\n")
		_ = f.Close()
	}
	a := &Anchor{t: t, Dir: dir, Redis: o.Redis, done: make(chan struct{})}
	a.env = append(os.Environ(), "LAYER="+o.Layer, "REDIS_URL=redis://"+o.Redis.Addr(),
		"DJCHAT_RUN_DIR="+filepath.Join(dir, "run"), "DJANGO_SETTINGS_MODULE=djchat.settings", "PYTHONDONTWRITEBYTECODE=1")
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
		t.Fatal(err)
	}
	if len(o.Apps) > 0 {
		a.Manage(append([]string{"makemigrations", "-v", "0"}, o.Apps...)...)
	}
	a.Manage("migrate", "--noinput", "-v", "0")
	port := redistest.FreePort(t)
	a.URL = "http://127.0.0.1:" + port
	a.cmd = exec.Command(Python, "/usr/bin/daphne", "-v", "1", "-b", "127.0.0.1", "-p", port, "djchat.asgi:application")
	a.cmd.Dir = dir
	a.cmd.Env = a.env
	a.cmd.Stdout, a.cmd.Stderr = lockedWriter{a}, lockedWriter{a}
	if err := a.cmd.Start(); err != nil {
		t.Fatalf("start daphne: %v", err)
	}
	go func() { _ = a.cmd.Wait(); close(a.done) }()
	t.Cleanup(a.stop)
	deadline := time.Now().Add(60 * time.Second) // a failure bound
	for {
		resp, err := http.Get(a.URL + "/chat/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				break
			}
		}
		select {
		case <-a.done:
			t.Fatalf("daphne exited:\n%s", a.Log())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("daphne did not answer within 60s:\n%s", a.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	return a
}

type lockedWriter struct{ a *Anchor }

func (w lockedWriter) Write(p []byte) (int, error) {
	w.a.mu.Lock()
	defer w.a.mu.Unlock()
	return w.a.log.Write(p)
}

// Log returns Daphne's output so far.
func (a *Anchor) Log() string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.log.String()
}

// WSURL returns the Daphne WebSocket URL of path.
func (a *Anchor) WSURL(path string) string { return "ws" + strings.TrimPrefix(a.URL, "http") + path }

// Manage runs manage.py with args in the copy and returns its output.
func (a *Anchor) Manage(args ...string) string {
	a.t.Helper()
	cmd := exec.Command(Python, append([]string{"manage.py"}, args...)...)
	cmd.Dir = a.Dir
	cmd.Env = a.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		a.t.Fatalf("manage.py %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Shell runs Python code in Django's shell (manage.py shell -c).
func (a *Anchor) Shell(code string) string {
	a.t.Helper()
	return a.Manage("shell", "-c", code)
}

// GroupSend calls async_to_sync(channel_layer.group_send)(group, event)
// from a Django process, as a view would; event is a Python dict literal.
func (a *Anchor) GroupSend(group, event string) {
	a.t.Helper()
	a.Shell(fmt.Sprintf("from asgiref.sync import async_to_sync\nfrom channels.layers import get_channel_layer\nasync_to_sync(get_channel_layer().group_send)(%q, %s)\n", group, event))
}

// DatabasePath is the copy's SQLite database.
func (a *Anchor) DatabasePath() string { return filepath.Join(a.Dir, "run", "db.sqlite3") }

func (a *Anchor) stop() {
	if a.cmd.Process != nil {
		_ = a.cmd.Process.Kill()
		<-a.done
	}
	if a.t.Failed() {
		a.t.Logf("daphne log:\n%s", a.Log())
	}
}

// LoginFiles add Django's own login view (django.contrib.auth.urls at
// /accounts/) to a copy of the anchor, for tests that sign in to the real
// site; pass them as Options.Files.
var LoginFiles = map[string]string{
	"djchat/urls.py": `from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("chat/", include("chat.urls")),
    path("accounts/", include("django.contrib.auth.urls")),
    path("admin/", admin.site.urls),
]
`,
	"chat/templates/registration/login.html": `<form method="post">{% csrf_token %}{{ form }}<button type="submit">Sign in</button></form>
`,
}

// CreateUser makes a Django user with a password (manage.py shell).
func (a *Anchor) CreateUser(username, password string) {
	a.t.Helper()
	a.Shell(fmt.Sprintf("from django.contrib.auth.models import User\nUser.objects.create_user(%q, password=%q)\n", username, password))
}

var csrfField = regexp.MustCompile(`name="csrfmiddlewaretoken" value="([^"]+)"`)

// Login signs in to the Django site through its login form, as a browser
// does, and returns the session cookie's value (LoginFiles must be in
// place).
func (a *Anchor) Login(username, password string) string {
	a.t.Helper()
	jar, _ := cookiejar.New(nil)
	cl := &http.Client{Jar: jar, Timeout: 30 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := cl.Get(a.URL + "/accounts/login/")
	if err != nil {
		a.t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	m := csrfField.FindSubmatch(body)
	if m == nil {
		a.t.Fatalf("no CSRF token in the login form (%d): %s", resp.StatusCode, body)
	}
	form := url.Values{"username": {username}, "password": {password}, "csrfmiddlewaretoken": {string(m[1])}}
	resp, err = cl.PostForm(a.URL+"/accounts/login/", form)
	if err != nil {
		a.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		a.t.Fatalf("login as %s: status %d, want 302", username, resp.StatusCode)
	}
	for _, c := range resp.Cookies() {
		if c.Name == "sessionid" {
			return c.Value
		}
	}
	a.t.Fatalf("login as %s: no sessionid cookie", username)
	return ""
}

// pyStrings returns Python string literals of ss, comma-separated.
func pyStrings(ss []string) string {
	q := make([]string, len(ss))
	for i, s := range ss {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, ", ")
}

// CourseApps is the app CourseFiles add; pass it as Options.Apps.
var CourseApps = []string{"courses"}

// CourseFiles add a minimal app shaped like the educa tutorial's courses
// app to a copy of the anchor: a Course with an owner, a title and
// students (a many-to-many field, so the tables are courses_course and
// courses_course_students), and a course chat consumer at
// ws/chat/room/<course id>/ that, like educa's, joins the group
// chat_<course id>, sends {"type": "chat_message", "message", "user",
// "datetime"} to it and passes every event to its browser as JSON. Pass
// them (with LoginFiles) as Options.Files and CourseApps as Options.Apps.
var CourseFiles = map[string]string{
	"courses/__init__.py": "",
	"courses/models.py": `from django.conf import settings
from django.db import models


class Course(models.Model):
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, related_name="courses_created", on_delete=models.CASCADE)
    title = models.CharField(max_length=200)
    students = models.ManyToManyField(settings.AUTH_USER_MODEL, related_name="courses_joined", blank=True)
`,
	"courses/consumers.py": `import json

from channels.generic.websocket import AsyncWebsocketConsumer
from django.utils import timezone


class CourseChatConsumer(AsyncWebsocketConsumer):
    async def connect(self):
        self.user = self.scope["user"]
        self.group = "chat_%s" % self.scope["url_route"]["kwargs"]["course_id"]
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()

    async def disconnect(self, close_code):
        await self.channel_layer.group_discard(self.group, self.channel_name)

    async def receive(self, text_data):
        message = json.loads(text_data)["message"]
        await self.channel_layer.group_send(self.group, {
            "type": "chat_message",
            "message": message,
            "user": self.user.username,
            "datetime": timezone.now().isoformat(),
        })

    async def chat_message(self, event):
        await self.send(text_data=json.dumps(event))
`,
	"chat/routing.py": `from django.urls import re_path

from chat import consumers
from courses.consumers import CourseChatConsumer

websocket_urlpatterns = [
    re_path(r"ws/chat/room/(?P<course_id>\d+)/$", CourseChatConsumer.as_asgi()),
    re_path(r"ws/chat/(?P<room_name>\w+)/$", consumers.ChatConsumer.as_asgi()),
]
`,
}

// Files merges sets of files for Options.Files.
func Files(sets ...map[string]string) map[string]string {
	out := make(map[string]string)
	for _, s := range sets {
		for k, v := range s {
			out[k] = v
		}
	}
	return out
}

// CreateCourse makes a course of CourseFiles owned by owner with students
// enrolled, and returns its id.
func (a *Anchor) CreateCourse(owner, title string, students ...string) int64 {
	a.t.Helper()
	out := a.Shell(fmt.Sprintf("from django.contrib.auth.models import User\nfrom courses.models import Course\n"+
		"c = Course.objects.create(owner=User.objects.get(username=%q), title=%q)\n"+
		"c.students.set(User.objects.filter(username__in=[%s]))\nprint('course-id', c.id)\n", owner, title, pyStrings(students)))
	var id int64
	for _, line := range strings.Split(out, "\n") {
		if _, err := fmt.Sscanf(line, "course-id %d", &id); err == nil {
			return id
		}
	}
	a.t.Fatalf("CreateCourse: no id in %q", out)
	return 0
}

// Unenroll removes student from course id (a many-to-many remove, as the
// Django admin or a view does).
func (a *Anchor) Unenroll(id int64, student string) {
	a.t.Helper()
	a.Shell(fmt.Sprintf("from django.contrib.auth.models import User\nfrom courses.models import Course\n"+
		"Course.objects.get(id=%d).students.remove(User.objects.get(username=%q))\n", id, student))
}
