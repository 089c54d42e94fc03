package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	chat "github.com/chatd/chat"
	"github.com/chatd/chat/password"
	"github.com/chatd/chat/sqlite"
)

// adminHarness runs admin commands against a real SQLite store in a
// temporary data directory.
type adminHarness struct {
	st      chat.Store
	dataDir string
	env     map[string]string
	hook    func(ctx context.Context, courseID, userID int64) error
}

func newAdminHarness(t *testing.T) *adminHarness {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "data")
	st, err := openStore(t.Context(), "", dir)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return &adminHarness{st: st, dataDir: dir, env: map[string]string{}}
}

// run runs one command with stdin and returns what it printed.
func (h *adminHarness) run(t *testing.T, stdin string, name string, args ...string) (string, error) {
	t.Helper()
	var out bytes.Buffer
	a := &adminEnv{
		store:      h.st,
		stdin:      strings.NewReader(stdin),
		stdout:     &out,
		getenv:     func(k string) string { return h.env[k] },
		unenrolled: h.hook,
	}
	err := a.run(t.Context(), name, args)
	return out.String(), err
}

// must runs a command that must succeed.
func (h *adminHarness) must(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	out, err := h.run(t, stdin, name, args...)
	if err != nil {
		t.Fatalf("chatd %s %s: %v", name, strings.Join(args, " "), err)
	}
	return out
}

// setup creates teacher, alice and bob and a course owned by teacher.
func (h *adminHarness) setup(t *testing.T) (courseID string) {
	t.Helper()
	h.must(t, "pw-teacher\n", "createuser", "--password-stdin", "--display-name", "Ms Teacher", "teacher")
	h.must(t, "pw-alice\n", "createuser", "--password-stdin", "alice")
	h.must(t, "pw-bob\n", "createuser", "--password-stdin", "bob")
	return strings.TrimSpace(h.must(t, "", "createcourse", "--owner", "teacher", "Django", "101"))
}

func TestCreateUser(t *testing.T) {
	h := newAdminHarness(t)
	ctx := t.Context()

	out := h.must(t, "s3cret pass\r\n", "createuser", "--password-stdin", "--admin", "--display-name", "Alice L.", "Alice")
	if !strings.Contains(out, `created admin user "Alice" (id 1)`) {
		t.Fatalf("output %q", out)
	}
	u, hash, err := h.st.UserPasswordHash(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	if !u.IsAdmin || u.DisplayName != "Alice L." || u.Username != "Alice" {
		t.Fatalf("stored user %+v", u)
	}
	if ok, err := password.Verify("s3cret pass", hash); !ok || err != nil {
		t.Fatalf("stored hash does not verify the password read from stdin (line ending stripped): %v, %v", ok, err)
	}
	if password.NeedsRehash(hash) {
		t.Fatal("stored hash is not a current argon2id hash")
	}

	// The password from CHATD_PASSWORD; flags after the username.
	h.env["CHATD_PASSWORD"] = "from env"
	out = h.must(t, "", "createuser", "bob", "--display-name", "Bob")
	if !strings.Contains(out, `created user "bob"`) {
		t.Fatalf("output %q", out)
	}
	_, hash, _ = h.st.UserPasswordHash(ctx, "bob")
	if ok, _ := password.Verify("from env", hash); !ok {
		t.Fatal("CHATD_PASSWORD was not used")
	}
	// --password-stdin wins over the environment, and reads one line only.
	h.must(t, "line one\nline two\n", "createuser", "--password-stdin", "carol")
	_, hash, _ = h.st.UserPasswordHash(ctx, "carol")
	if ok, _ := password.Verify("line one", hash); !ok {
		t.Fatal("--password-stdin did not read the first line")
	}
	// A last line without a newline is fine.
	h.must(t, "no newline", "createuser", "--password-stdin", "dave")
	_, hash, _ = h.st.UserPasswordHash(ctx, "dave")
	if ok, _ := password.Verify("no newline", hash); !ok {
		t.Fatal("password without a trailing newline")
	}
}

func TestRunAdminReadsProcessEnvironment(t *testing.T) {
	h := newAdminHarness(t)
	t.Setenv("CHATD_PASSWORD", "process env")
	var out bytes.Buffer
	if err := runAdmin(t.Context(), "createuser", []string{"erin"}, h.st, strings.NewReader(""), &out); err != nil {
		t.Fatal(err)
	}
	_, hash, _ := h.st.UserPasswordHash(t.Context(), "erin")
	if ok, _ := password.Verify("process env", hash); !ok {
		t.Fatal("runAdmin did not use CHATD_PASSWORD")
	}
}

// adminErrorCase is one failing command and what its error must say.
type adminErrorCase struct {
	name  string
	stdin string
	args  []string // command name first
	want  string   // substring of the error
	code  string   // chat error code, or "" for a usage error
}

func checkErrors(t *testing.T, h *adminHarness, cases []adminErrorCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			out, err := h.run(t, tt.stdin, tt.args[0], tt.args[1:]...)
			if err == nil {
				t.Fatalf("chatd %s succeeded, printing %q", strings.Join(tt.args, " "), out)
			}
			prefix := tt.args[0] + ": "
			if !strings.HasPrefix(err.Error(), prefix) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("error %q, want %q and the prefix %q", err, tt.want, prefix)
			}
			if tt.code != "" && chat.ErrorCode(err) != tt.code {
				t.Fatalf("error code %q, want %q", chat.ErrorCode(err), tt.code)
			}
			if strings.Contains(err.Error(), "code=") {
				t.Fatalf("error %q shows the internal error format to the operator", err)
			}
		})
	}
}

func TestCreateUserErrors(t *testing.T) {
	h := newAdminHarness(t)
	h.must(t, "pw\n", "createuser", "--password-stdin", "Alice")
	before, _ := h.st.ListUsers(t.Context())
	checkErrors(t, h, []adminErrorCase{
		{"no username", "pw\n", []string{"createuser", "--password-stdin"}, "missing arguments; usage: chatd createuser", ""},
		{"two usernames", "pw\n", []string{"createuser", "--password-stdin", "a", "b"}, `unexpected argument "b"`, ""},
		{"unknown flag", "pw\n", []string{"createuser", "--superuser", "x"}, "flag provided but not defined: -superuser", ""},
		{"bad username", "pw\n", []string{"createuser", "--password-stdin", "bad name"}, "may contain only letters, digits", chat.EINVALID},
		{"dots", "pw\n", []string{"createuser", "--password-stdin", ".."}, "only dots", chat.EINVALID},
		{"long username", "pw\n", []string{"createuser", "--password-stdin", strings.Repeat("a", 151)}, "longer than 150", chat.EINVALID},
		{"bad display name", "pw\n", []string{"createuser", "--password-stdin", "--display-name", "a\x01b", "x"}, "control characters", chat.EINVALID},
		{"no password", "", []string{"createuser", "x"}, "no password given: pipe it in with --password-stdin or set CHATD_PASSWORD", ""},
		{"empty stdin", "", []string{"createuser", "--password-stdin", "x"}, "empty password", ""},
		{"empty line", "\n", []string{"createuser", "--password-stdin", "x"}, "empty password", ""},
		{"huge password", strings.Repeat("p", 2000) + "\n", []string{"createuser", "--password-stdin", "x"}, "longer than 1024 bytes", ""},
		{"duplicate", "pw\n", []string{"createuser", "--password-stdin", "alice"}, `a user named "alice", or one too like it, already exists`, chat.ECONFLICT},
		{"duplicate exact", "pw\n", []string{"createuser", "--password-stdin", "Alice"}, "already exists", chat.ECONFLICT},
	})
	after, _ := h.st.ListUsers(t.Context())
	if len(after) != len(before) {
		t.Fatalf("failed createuser commands created users: %d -> %d", len(before), len(after))
	}
}

func TestSetPassword(t *testing.T) {
	h := newAdminHarness(t)
	ctx := t.Context()
	h.setup(t)
	alice, err := h.st.UserByUsername(ctx, "alice")
	if err != nil {
		t.Fatal(err)
	}
	sess, err := h.st.CreateSession(ctx, alice.ID, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	bob, _ := h.st.UserByUsername(ctx, "bob")
	bobSess, _ := h.st.CreateSession(ctx, bob.ID, time.Hour)

	out := h.must(t, "new secret\n", "setpassword", "ALICE", "--password-stdin")
	if out != "password of \"alice\" changed; their sessions are ended\n" {
		t.Fatalf("setpassword printed %q", out)
	}
	_, hash, _ := h.st.UserPasswordHash(ctx, "alice")
	if ok, _ := password.Verify("new secret", hash); !ok {
		t.Fatal("new password does not verify")
	}
	if ok, _ := password.Verify("pw-alice", hash); ok {
		t.Fatal("old password still verifies")
	}
	if _, _, err := h.st.SessionUser(ctx, sess.Token); chat.ErrorCode(err) != chat.ENOTFOUND {
		t.Fatalf("alice's session survived the password change: %v", err)
	}
	if _, _, err := h.st.SessionUser(ctx, bobSess.Token); err != nil {
		t.Fatalf("bob's session was ended: %v", err)
	}
	h.env["CHATD_PASSWORD"] = "env secret"
	h.must(t, "", "setpassword", "alice")
	_, hash, _ = h.st.UserPasswordHash(ctx, "alice")
	if ok, _ := password.Verify("env secret", hash); !ok {
		t.Fatal("CHATD_PASSWORD was not used")
	}
	delete(h.env, "CHATD_PASSWORD")
	checkErrors(t, h, []adminErrorCase{
		{"unknown user", "pw\n", []string{"setpassword", "--password-stdin", "ghost"}, `no user named "ghost"`, chat.ENOTFOUND},
		{"no user", "pw\n", []string{"setpassword", "--password-stdin"}, "missing arguments; usage: chatd setpassword", ""},
		{"empty password", "\n", []string{"setpassword", "--password-stdin", "alice"}, "empty password", ""},
		{"no password", "", []string{"setpassword", "alice"}, "no password given", ""},
	})
	if ok, _ := password.Verify("env secret", func() string { _, h, _ := h.st.UserPasswordHash(ctx, "alice"); return h }()); !ok {
		t.Fatal("a failed setpassword changed the password")
	}
}

func TestCreateCourse(t *testing.T) {
	h := newAdminHarness(t)
	id := h.setup(t)
	if id != "1" {
		t.Fatalf("createcourse printed %q, want the id alone", id)
	}
	c, err := h.st.CourseByID(t.Context(), 1)
	if err != nil || c.Title != "Django 101" || c.OwnerUsername != "teacher" {
		t.Fatalf("course %+v, %v", c, err)
	}
	// The title may come after "--", and the owner's name ignores case.
	out := h.must(t, "", "createcourse", "--owner", "TEACHER", "--", "-5", "tips")
	if strings.TrimSpace(out) != "2" {
		t.Fatalf("second course printed %q", out)
	}
	if c, _ := h.st.CourseByID(t.Context(), 2); c.Title != "-5 tips" {
		t.Fatalf("title %q, want %q", c.Title, "-5 tips")
	}
	// Flags after the title.
	h.must(t, "", "createcourse", "Art", "--owner", "alice")
	checkErrors(t, h, []adminErrorCase{
		{"no owner", "", []string{"createcourse", "Title"}, "--owner USERNAME is required", ""},
		{"no title", "", []string{"createcourse", "--owner", "teacher"}, "a course title is required", ""},
		{"blank title", "", []string{"createcourse", "--owner", "teacher", " "}, "a course title is required", ""},
		{"unknown owner", "", []string{"createcourse", "--owner", "ghost", "T"}, `no user named "ghost"`, chat.ENOTFOUND},
		{"long title", "", []string{"createcourse", "--owner", "teacher", strings.Repeat("t", 201)}, "longer than 200", chat.EINVALID},
		{"owner flag without value", "", []string{"createcourse", "--owner"}, "flag needs an argument", ""},
	})
	if cs, _ := h.st.ListCourses(t.Context()); len(cs) != 3 {
		t.Fatalf("%d courses, want 3", len(cs))
	}
}

func TestEnrollUnenroll(t *testing.T) {
	h := newAdminHarness(t)
	ctx := t.Context()
	id := h.setup(t)
	var hooked []string
	h.hook = func(ctx context.Context, courseID, userID int64) error {
		hooked = append(hooked, fmt.Sprintf("course %d user %d", courseID, userID))
		return nil
	}

	out := h.must(t, "", "enroll", id, "ALICE")
	if out != "enrolled \"alice\" in course 1 (Django 101)\n" {
		t.Fatalf("enroll printed %q", out)
	}
	if ok, _ := h.st.CanEnterCourse(ctx, 1, 2); !ok {
		t.Fatal("enrolled user cannot enter")
	}
	h.must(t, "", "enroll", id, "bob")
	checkErrors(t, h, []adminErrorCase{
		{"enroll twice", "", []string{"enroll", id, "alice"}, `"alice" is already enrolled in course 1 (Django 101)`, chat.ECONFLICT},
		{"enroll no args", "", []string{"enroll"}, "missing arguments; usage: chatd enroll COURSE_ID USERNAME", ""},
		{"enroll one arg", "", []string{"enroll", id}, "missing arguments", ""},
		{"enroll three args", "", []string{"enroll", id, "alice", "bob"}, `unexpected argument "bob"`, ""},
		{"enroll bad id", "", []string{"enroll", "abc", "alice"}, `bad course id "abc": want a positive whole number`, chat.EINVALID},
		{"enroll zero id", "", []string{"enroll", "0", "alice"}, `bad course id "0"`, chat.EINVALID},
		{"enroll fraction id", "", []string{"enroll", "1.5", "alice"}, `bad course id "1.5"`, chat.EINVALID},
		{"enroll huge id", "", []string{"enroll", "99999999999999999999", "alice"}, "bad course id", chat.EINVALID},
		{"enroll unknown course", "", []string{"enroll", "99", "alice"}, "no course with id 99 (see chatd listcourses)", chat.ENOTFOUND},
		{"enroll unknown user", "", []string{"enroll", id, "ghost"}, `no user named "ghost" (see chatd listusers)`, chat.ENOTFOUND},
		{"unenroll not enrolled", "", []string{"unenroll", id, "teacher"}, `"teacher" is not enrolled in course 1 (Django 101); they own it`, chat.ENOTFOUND},
		{"unenroll unknown course", "", []string{"unenroll", "42", "alice"}, "no course with id 42", chat.ENOTFOUND},
		{"unenroll unknown user", "", []string{"unenroll", id, "ghost"}, `no user named "ghost"`, chat.ENOTFOUND},
		{"unenroll bad id", "", []string{"unenroll", "x", "alice"}, `bad course id "x"`, chat.EINVALID},
		{"unenroll missing args", "", []string{"unenroll", id}, "missing arguments; usage: chatd unenroll", ""},
	})
	if len(hooked) != 0 {
		t.Fatalf("failed unenrolls called the hook: %v", hooked)
	}

	out = h.must(t, "", "unenroll", id, "alice")
	if out != "unenrolled \"alice\" from course 1 (Django 101)\n" {
		t.Fatalf("unenroll printed %q", out)
	}
	if ok, _ := h.st.CanEnterCourse(ctx, 1, 2); ok {
		t.Fatal("unenrolled user can still enter")
	}
	if len(hooked) != 1 || hooked[0] != "course 1 user 2" {
		t.Fatalf("hook calls %v, want one for course 1 user 2", hooked)
	}
	checkErrors(t, h, []adminErrorCase{
		{"unenroll twice", "", []string{"unenroll", id, "alice"}, `"alice" is not enrolled in course 1 (Django 101)`, chat.ENOTFOUND},
	})

	// A failing hook is reported, and the unenrollment stays.
	h.hook = func(context.Context, int64, int64) error { return errors.New("layer down") }
	_, err := h.run(t, "", "unenroll", id, "bob")
	if err == nil || !strings.Contains(err.Error(), "unenroll: unenrolled, but closing the user's open sockets failed: layer down") {
		t.Fatalf("hook failure: %v", err)
	}
	if ok, _ := h.st.CanEnterCourse(ctx, 1, 3); ok {
		t.Fatal("bob still enrolled after unenroll with a failing hook")
	}
	// Without a hook (runAdmin) unenroll works too.
	h.hook = nil
	h.must(t, "", "enroll", id, "alice")
	h.must(t, "", "unenroll", id, "alice")
}

func TestListCommands(t *testing.T) {
	h := newAdminHarness(t)
	if out := h.must(t, "", "listusers"); !strings.Contains(out, "no users yet") {
		t.Fatalf("listusers on an empty store printed %q", out)
	}
	if out := h.must(t, "", "listcourses"); !strings.Contains(out, "no courses yet") {
		t.Fatalf("listcourses on an empty store printed %q", out)
	}
	id := h.setup(t)
	h.must(t, "pw\n", "createuser", "--password-stdin", "--admin", "Zed")
	h.must(t, "", "enroll", id, "bob")
	h.must(t, "", "enroll", id, "alice")
	h.must(t, "", "createcourse", "--owner", "alice", "Empty", "course")
	h.must(t, "", "deactivate", "bob")

	want := `ID  USERNAME  ADMIN  ACTIVE  DISPLAY NAME
2   alice     -      yes     
3   bob       -      no      
1   teacher   -      yes     Ms Teacher
4   Zed       yes    yes     
`
	if out := h.must(t, "", "listusers"); out != want {
		t.Fatalf("listusers printed\n%s\nwant\n%s", out, want)
	}
	want = `ID  OWNER    STUDENTS  TITLE
1   teacher  2         Django 101
2   alice    0         Empty course
`
	if out := h.must(t, "", "listcourses"); out != want {
		t.Fatalf("listcourses printed\n%s\nwant\n%s", out, want)
	}
	want = `course 1: Django 101
ROLE     USERNAME  DISPLAY NAME
owner    teacher   Ms Teacher
student  alice     
student  bob       
`
	if out := h.must(t, "", "members", id); out != want {
		t.Fatalf("members printed\n%s\nwant\n%s", out, want)
	}
	want = "course 2: Empty course\nROLE   USERNAME  DISPLAY NAME\nowner  alice     \n"
	if out := h.must(t, "", "members", "2"); out != want {
		t.Fatalf("members of an empty course printed %q, want %q", out, want)
	}
	checkErrors(t, h, []adminErrorCase{
		{"listusers argument", "", []string{"listusers", "x"}, `unexpected argument "x"`, ""},
		{"listcourses flag", "", []string{"listcourses", "--all"}, "flag provided but not defined: -all", ""},
		{"members no id", "", []string{"members"}, "missing arguments; usage: chatd members COURSE_ID", ""},
		{"members bad id", "", []string{"members", "one"}, `bad course id "one"`, chat.EINVALID},
		{"members unknown course", "", []string{"members", "77"}, "no course with id 77", chat.ENOTFOUND},
	})
}

func TestAdminHelp(t *testing.T) {
	h := newAdminHarness(t)
	for _, name := range adminCommands {
		for _, flagName := range []string{"-h", "--help"} {
			out, err := h.run(t, "", name, flagName)
			if !errors.Is(err, flag.ErrHelp) {
				t.Fatalf("%s %s: error %v, want flag.ErrHelp", name, flagName, err)
			}
			if !strings.HasPrefix(out, "Usage: chatd "+name) {
				t.Fatalf("%s %s printed %q", name, flagName, out)
			}
		}
	}
	out, _ := h.run(t, "", "createuser", "-h")
	for _, want := range []string{"--password-stdin", "CHATD_PASSWORD", "-admin", "-display-name"} {
		if !strings.Contains(out, want) {
			t.Errorf("createuser -h does not mention %s:\n%s", want, out)
		}
	}
	var list bytes.Buffer
	adminUsage(&list)
	for _, name := range adminCommands {
		if !strings.Contains(list.String(), "chatd "+name) {
			t.Errorf("adminUsage does not list %s:\n%s", name, list.String())
		}
		if adminHelp[name].summary == "" {
			t.Errorf("%s has no summary", name)
		}
	}
	_, err := h.run(t, "", "dropdatabase")
	if err == nil || !strings.Contains(err.Error(), `unknown admin command "dropdatabase"`) {
		t.Fatalf("unknown command: %v", err)
	}
}

func TestOpenStore(t *testing.T) {
	ctx := t.Context()
	dir := filepath.Join(t.TempDir(), "a", "b")
	st, err := openStore(ctx, "", dir)
	if err != nil {
		t.Fatal(err)
	}
	st.Close()
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("data dir: %v, mode %v; want 0700", err, fi.Mode().Perm())
	}
	if _, err := os.Stat(filepath.Join(dir, "chatd.db")); err != nil {
		t.Fatalf("database file: %v", err)
	}

	for _, tt := range []struct{ url, dataDir, want string }{
		{"mysql://root:hunter2@db/chat", dir, "DATABASE_URL scheme mysql is not supported"},
		{"sqlite:///tmp/x.db", dir, "DATABASE_URL scheme sqlite is not supported"},
		{"host=db password=hunter2", dir, "DATABASE_URL scheme (no scheme) is not supported"},
		{"", "", "no database: set DATA_DIR"},
		{"postgres://nobody:hunter2@127.0.0.1:1/x?sslmode=disable&connect_timeout=5", dir, "postgres: connect to 127.0.0.1:1"},
	} {
		st, err := openStore(ctx, tt.url, tt.dataDir)
		if err == nil {
			st.Close()
			t.Fatalf("openStore(%q) succeeded", tt.url)
		}
		if !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), "hunter2") {
			t.Fatalf("openStore(%q): %q, want %q and no password", tt.url, err, tt.want)
		}
	}
	// A data directory that cannot be created.
	file := filepath.Join(t.TempDir(), "file")
	os.WriteFile(file, nil, 0o600)
	if st, err := openStore(ctx, "", filepath.Join(file, "sub")); err == nil {
		st.Close()
		t.Fatal("openStore under a regular file succeeded")
	}
}

func TestRunMigrate(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	for range 2 { // the second run finds nothing to do
		var out bytes.Buffer
		if err := runMigrate(ctx, "", dir, &out); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("SQLite %s: schema version %d (up to date)\n", filepath.Join(dir, "chatd.db"), sqlite.KnownSchemaVersion())
		if out.String() != want {
			t.Fatalf("migrate printed %q, want %q", out.String(), want)
		}
	}
	// A database from a newer chatd is refused with a clear message.
	db, err := sql.Open("sqlite", filepath.Join(dir, "chatd.db"))
	if err != nil {
		t.Fatal(err)
	}
	newer := sqlite.KnownSchemaVersion() + 5
	if _, err := db.Exec("INSERT INTO schema_version (version, applied_at) VALUES (?, 0)", newer); err != nil {
		t.Fatal(err)
	}
	db.Close()
	err = runMigrate(ctx, "", dir, &bytes.Buffer{})
	if want := fmt.Sprintf("migrate: sqlite: database schema version %d is newer than this chatd (knows %d); upgrade chatd", newer, sqlite.KnownSchemaVersion()); err == nil || err.Error() != want {
		t.Fatalf("migrate of a newer database: %v", err)
	}
	if err := runMigrate(ctx, "redis://x", dir, &bytes.Buffer{}); err == nil || !strings.HasPrefix(err.Error(), "migrate: DATABASE_URL scheme redis") {
		t.Fatalf("migrate with a bad URL: %v", err)
	}
}
