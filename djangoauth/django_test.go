package djangoauth_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/chatd/chat/djangoauth"
	"github.com/chatd/chat/internal/djangoanchor"
	"github.com/chatd/chat/internal/pgtest"
	"github.com/jackc/pgx/v5"
)

// TestRealDjangoLogins signs in to the real Django site (the anchor with
// Django's login view) and checks its sessions as Django would: valid,
// then refused after a password change, for an inactive user, after
// logout, with a wrong key; and accepted through SECRET_KEY_FALLBACKS.
func TestRealDjangoLogins(t *testing.T) {
	for _, engine := range []string{djangoauth.EngineDB, djangoauth.EngineSignedCookies} {
		t.Run(engine, func(t *testing.T) {
			ctx := context.Background()
			settings := ""
			if engine == djangoauth.EngineSignedCookies {
				settings = `SESSION_ENGINE = "django.contrib.sessions.backends.signed_cookies"`
			}
			dj := djangoanchor.Start(t, djangoanchor.Options{Files: djangoanchor.LoginFiles, Settings: settings})
			dj.CreateUser("alice", "alice-pw-1")
			dj.CreateUser("bob", "bob-pw-1")
			open := func(secret string, fallbacks ...string) *djangoauth.Verifier {
				v, err := djangoauth.Open(ctx, djangoauth.Config{SecretKey: secret, Fallbacks: fallbacks,
					DatabaseURL: "sqlite://" + dj.DatabasePath(), Engine: engine})
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { _ = v.Close() })
				return v
			}
			v := open(djangoanchor.SecretKey)
			alice := dj.Login("alice", "alice-pw-1")
			u, err := v.Verify(ctx, alice)
			if err != nil || u.Username != "alice" || u.ID == "" {
				t.Fatalf("Verify(alice) = %+v, %v", u, err)
			}
			if !u.Expires.After(time.Now().Add(13 * 24 * time.Hour)) {
				t.Errorf("expires %v, want in two weeks", u.Expires)
			}
			// Two weeks and a day later the session has expired (db:
			// expire_date; signed cookies: SESSION_COOKIE_AGE).
			later, err := djangoauth.Open(ctx, djangoauth.Config{SecretKey: djangoanchor.SecretKey, DatabaseURL: "sqlite://" + dj.DatabasePath(),
				Engine: engine, Now: func() time.Time { return time.Now().Add(15 * 24 * time.Hour) }})
			if err != nil {
				t.Fatal(err)
			}
			defer later.Close()
			if _, err := later.Verify(ctx, alice); !errors.Is(err, djangoauth.ErrNoSession) {
				t.Errorf("15 days later: %v", err)
			}
			// The same session under a rotated key: accepted through the
			// fallbacks, refused without them.
			if u, err := open("new-key", djangoanchor.SecretKey).Verify(ctx, alice); err != nil || u.Username != "alice" {
				t.Errorf("with the old key as a fallback: %+v %v", u, err)
			}
			if _, err := open("new-key").Verify(ctx, alice); !errors.Is(err, djangoauth.ErrNoSession) && !errors.Is(err, djangoauth.ErrSignedOut) {
				t.Errorf("wrong key: %v", err)
			}
			// Tampering and made-up cookies.
			last := "x" // a changed last character, whatever it was
			if strings.HasSuffix(alice, last) {
				last = "y"
			}
			for _, bad := range []string{"", "short", alice[:len(alice)-1] + last, "abcdefghijklmnopqrstuvwxyz012345"} {
				if _, err := v.Verify(ctx, bad); !errors.Is(err, djangoauth.ErrNoSession) {
					t.Errorf("cookie %q: %v", bad, err)
				}
			}
			// A password change signs alice out.
			dj.Shell("from django.contrib.auth.models import User\nu = User.objects.get(username='alice')\nu.set_password('alice-pw-2')\nu.save()\n")
			if _, err := v.Verify(ctx, alice); !errors.Is(err, djangoauth.ErrSignedOut) {
				t.Errorf("after a password change: %v", err)
			}
			// An inactive account is refused.
			bob := dj.Login("bob", "bob-pw-1")
			if _, err := v.Verify(ctx, bob); err != nil {
				t.Fatal(err)
			}
			dj.Shell("from django.contrib.auth.models import User\nUser.objects.filter(username='bob').update(is_active=False)\n")
			if _, err := v.Verify(ctx, bob); !errors.Is(err, djangoauth.ErrInactive) {
				t.Errorf("inactive: %v", err)
			}
			if engine == djangoauth.EngineDB {
				// Logout (here: Django deleting the row) ends it too.
				alice2 := dj.Login("alice", "alice-pw-2")
				if _, err := v.Verify(ctx, alice2); err != nil {
					t.Fatal(err)
				}
				dj.Shell("from django.contrib.sessions.models import Session\nSession.objects.all().delete()\n")
				if _, err := v.Verify(ctx, alice2); !errors.Is(err, djangoauth.ErrNoSession) {
					t.Errorf("after logout: %v", err)
				}
			}
		})
	}
}

// The educa tutorial's course membership, as docs/django.md shows it.
const (
	educaCourseQuery = `SELECT 1 FROM courses_course WHERE id = :course AND owner_id = :user
UNION ALL
SELECT 1 FROM courses_course_students WHERE course_id = :course AND user_id = :user`
	educaTitleQuery = `SELECT c.title, u.username FROM courses_course c JOIN auth_user u ON u.id = c.owner_id WHERE c.id = :course`
)

// TestRealDjangoCourses runs the documented course queries against a real
// Django site's tables (an educa-like courses app, migrated by Django):
// the owner and enrolled students may enter, others may not, a removal in
// Django takes effect at once; the title query finds courses and their
// owners; a query that does not run stops Open.
func TestRealDjangoCourses(t *testing.T) {
	ctx := context.Background()
	dj := djangoanchor.Start(t, djangoanchor.Options{Files: djangoanchor.Files(djangoanchor.LoginFiles, djangoanchor.CourseFiles), Apps: djangoanchor.CourseApps})
	for _, u := range []string{"teacher", "alice", "bob"} {
		dj.CreateUser(u, u+"-pw")
	}
	id := dj.CreateCourse("teacher", "Go ünd Django", "alice")
	other := dj.CreateCourse("bob", "Another course")
	v, err := djangoauth.Open(ctx, djangoauth.Config{SecretKey: djangoanchor.SecretKey, DatabaseURL: "sqlite://" + dj.DatabasePath(),
		CourseQuery: educaCourseQuery, CourseTitleQuery: educaTitleQuery})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	userID := func(name string) string {
		sid := dj.Login(name, name+"-pw")
		u, err := v.Verify(ctx, sid)
		if err != nil {
			t.Fatal(err)
		}
		return u.ID
	}
	teacher, alice, bob := userID("teacher"), userID("alice"), userID("bob")
	for _, c := range []struct {
		course int64
		user   string
		want   bool
	}{{id, teacher, true}, {id, alice, true}, {id, bob, false}, {other, bob, true}, {other, alice, false}, {other + 100, alice, false}} {
		if got, err := v.CanEnterCourse(ctx, c.course, c.user); err != nil || got != c.want {
			t.Errorf("CanEnterCourse(%d, %s) = %v, %v; want %v", c.course, c.user, got, err, c.want)
		}
	}
	c, err := v.Course(ctx, id)
	if err != nil || c.Title != "Go ünd Django" || c.Owner != "teacher" || c.ID != id {
		t.Errorf("Course(%d) = %+v, %v", id, c, err)
	}
	if _, err := v.Course(ctx, other+100); !errors.Is(err, djangoauth.ErrNoCourse) {
		t.Errorf("Course of a missing id: %v", err)
	}
	dj.Unenroll(id, "alice")
	if got, err := v.CanEnterCourse(ctx, id, alice); err != nil || got {
		t.Errorf("after the removal: %v, %v", got, err)
	}
	// Without a title query every course exists, with a generic title.
	plain, err := djangoauth.Open(ctx, djangoauth.Config{SecretKey: djangoanchor.SecretKey, DatabaseURL: "sqlite://" + dj.DatabasePath(), CourseQuery: educaCourseQuery})
	if err != nil {
		t.Fatal(err)
	}
	defer plain.Close()
	if c, err := plain.Course(ctx, 77); err != nil || c.Title != "Course 77" {
		t.Errorf("Course without a title query: %+v, %v", c, err)
	}
	// Mistakes stop Open with the reason.
	for _, bad := range []djangoauth.Config{
		{CourseQuery: "SELECT 1 FROM courses_nope WHERE id = :course AND owner_id = :user"},
		{CourseQuery: "SELECT 1 FROM courses_course WHERE id = ? AND owner_id = ?"},
		{CourseQuery: educaCourseQuery, CourseTitleQuery: "SELECT title, owner_id, id FROM courses_course WHERE id = :course"},
		{CourseTitleQuery: educaTitleQuery},
	} {
		bad.SecretKey, bad.DatabaseURL = djangoanchor.SecretKey, "sqlite://"+dj.DatabasePath()
		if v, err := djangoauth.Open(ctx, bad); err == nil {
			v.Close()
			t.Errorf("Open accepted %q / %q", bad.CourseQuery, bad.CourseTitleQuery)
		} else {
			t.Logf("refused: %v", err)
		}
	}
}

// TestCoursesPostgres runs the documented queries on PostgreSQL, against
// the tables Django makes there for the same models (integer user ids,
// bigint course ids), in a schema of the test's own.
func TestCoursesPostgres(t *testing.T) {
	ctx := context.Background()
	_, url := pgtest.Schema(t, "djangoauth")
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	for _, ddl := range []string{
		`CREATE TABLE auth_user (id integer GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, username varchar(150) NOT NULL UNIQUE, password varchar(128) NOT NULL, is_active boolean NOT NULL)`,
		`CREATE TABLE django_session (session_key varchar(40) PRIMARY KEY, session_data text NOT NULL, expire_date timestamptz NOT NULL)`,
		`CREATE TABLE courses_course (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, title varchar(200) NOT NULL, owner_id integer NOT NULL REFERENCES auth_user(id))`,
		`CREATE TABLE courses_course_students (id bigint GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, course_id bigint NOT NULL REFERENCES courses_course(id), user_id integer NOT NULL REFERENCES auth_user(id))`,
		`INSERT INTO auth_user (id, username, password, is_active) VALUES (1, 'teacher', '', true), (2, 'alice', '', true), (3, 'bob', '', true)`,
		`INSERT INTO courses_course (id, title, owner_id) VALUES (7, 'Databases', 1)`,
		`INSERT INTO courses_course_students (course_id, user_id) VALUES (7, 2)`,
	} {
		if _, err := conn.Exec(ctx, ddl); err != nil {
			t.Fatalf("%s: %v", ddl, err)
		}
	}
	v, err := djangoauth.Open(ctx, djangoauth.Config{SecretKey: "k", DatabaseURL: url, CourseQuery: educaCourseQuery, CourseTitleQuery: educaTitleQuery})
	if err != nil {
		t.Fatal(err)
	}
	defer v.Close()
	for user, want := range map[string]bool{"1": true, "2": true, "3": false} {
		if got, err := v.CanEnterCourse(ctx, 7, user); err != nil || got != want {
			t.Errorf("user %s: %v, %v; want %v", user, got, err, want)
		}
	}
	if c, err := v.Course(ctx, 7); err != nil || c.Title != "Databases" || c.Owner != "teacher" {
		t.Errorf("Course(7) = %+v, %v", c, err)
	}
	if _, err := v.Course(ctx, 8); !errors.Is(err, djangoauth.ErrNoCourse) {
		t.Errorf("Course(8): %v", err)
	}
}
