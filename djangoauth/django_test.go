package djangoauth_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/chatd/chat/djangoauth"
	"github.com/chatd/chat/internal/djangoanchor"
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
			for _, bad := range []string{"", "short", alice[:len(alice)-1] + "x", "abcdefghijklmnopqrstuvwxyz012345"} {
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
