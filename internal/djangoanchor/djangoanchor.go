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
	if o.Settings != "" {
		f, err := os.OpenFile(filepath.Join(dir, "djchat", "settings.py"), os.O_APPEND|os.O_WRONLY, 0)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = f.WriteString("\n" + o.Settings + "\n")
		_ = f.Close()
	}
	a := &Anchor{t: t, Dir: dir, Redis: o.Redis, done: make(chan struct{})}
	a.env = append(os.Environ(), "LAYER="+o.Layer, "REDIS_URL=redis://"+o.Redis.Addr(),
		"DJCHAT_RUN_DIR="+filepath.Join(dir, "run"), "DJANGO_SETTINGS_MODULE=djchat.settings", "PYTHONDONTWRITEBYTECODE=1")
	if err := os.MkdirAll(filepath.Join(dir, "run"), 0o755); err != nil {
		t.Fatal(err)
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
