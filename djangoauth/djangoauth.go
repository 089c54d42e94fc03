// Package djangoauth accepts a Django site's logins: a request that
// carries the site's session cookie (sessionid) is that Django user. It
// implements what django.contrib.sessions and django.contrib.auth do to
// load request.user, reading the site's database and never writing it:
//
//   - database sessions (SESSION_ENGINE "django.contrib.sessions.backends.db",
//     also cached_db): the row of django_session must exist and not be
//     expired, and its session_data must be signed with SECRET_KEY (or one
//     of SECRET_KEY_FALLBACKS) under the db backend's salt;
//   - signed-cookie sessions ("...backends.signed_cookies"): the cookie
//     itself is the signed session, at most SESSION_COOKIE_AGE old;
//   - then, as django.contrib.auth.get_user: the session's backend must be
//     an allowed one, the user must exist and be active, and the session's
//     _auth_user_hash must equal the HMAC of the user's current password
//     hash, so a password change signs the user out here too.
//
// Sessions are JSON (Django's default serializer); pickled sessions and
// legacy SHA-1 signatures (Django 3.2's DEFAULT_HASHING_ALGORITHM="sha1")
// are refused.
package djangoauth

import (
	"context"
	"crypto/subtle"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	chat "github.com/chatd/chat"
	_ "github.com/jackc/pgx/v5/stdlib" // database/sql driver "pgx"
	_ "modernc.org/sqlite"             // database/sql driver "sqlite"
)

// Session engines.
const (
	EngineDB            = "db"
	EngineSignedCookies = "signed_cookies"
)

// Defaults of Config, which are Django's.
const (
	DefaultCookieName = "sessionid"
	DefaultCookieAge  = 1209600 * time.Second
	DefaultUserTable  = "auth_user"
	ModelBackend      = "django.contrib.auth.backends.ModelBackend"
)

// Config describes the Django site.
type Config struct {
	SecretKey string   // SECRET_KEY; required
	Fallbacks []string // SECRET_KEY_FALLBACKS
	// DatabaseURL is the site's database: postgres://... or
	// sqlite:///absolute/path (sqlite://relative/path).
	DatabaseURL string
	Engine      string        // EngineDB (default) or EngineSignedCookies
	CookieName  string        // SESSION_COOKIE_NAME; default "sessionid"
	CookieAge   time.Duration // SESSION_COOKIE_AGE (signed cookies); default 2 weeks
	UserTable   string        // the user model's table; default "auth_user"
	Backends    []string      // AUTHENTICATION_BACKENDS; default ModelBackend
	// CourseQuery, if set, answers whether a user may enter a course's
	// chat room: SQL with the parameters :course (the course's id) and
	// :user (the Django user's primary key) that returns at least one row
	// when they may (see courses.go and docs/django.md).
	CourseQuery string
	// CourseTitleQuery, if set, finds a course: SQL with the parameter
	// :course returning one row, the course's title and optionally its
	// owner's username; no row means there is no such course.
	CourseTitleQuery string
	Now              func() time.Time // default time.Now
}

// User is a signed-in Django user.
type User struct {
	ID       string // the primary key, as the session stores it
	Username string
	Expires  time.Time // when the session ends (zero: unknown)
}

// Verifier checks Django session cookies against the site's database.
// It is safe for concurrent use.
type Verifier struct {
	cfg     Config
	db      *sql.DB
	pg      bool
	secrets []string
	// courseQuery and titleQuery are the course queries with their
	// parameters in the driver's syntax ("" when not configured).
	courseQuery, titleQuery string
}

// Errors of Verify. ErrNoSession and ErrSignedOut are the user's state
// (chat.EUNAUTHORIZED); anything else is the database's failure.
var (
	ErrNoSession = &chat.Error{Code: chat.EUNAUTHORIZED, Message: "no valid Django session"}
	ErrSignedOut = &chat.Error{Code: chat.EUNAUTHORIZED, Message: "signed out of the Django site"}
	ErrInactive  = &chat.Error{Code: chat.EUNAUTHORIZED, Message: "the Django account is inactive"}
)

// Open connects to the site's database.
func Open(ctx context.Context, cfg Config) (*Verifier, error) {
	if cfg.SecretKey == "" {
		return nil, errors.New("djangoauth: no SECRET_KEY")
	}
	if cfg.Engine == "" {
		cfg.Engine = EngineDB
	}
	if cfg.Engine != EngineDB && cfg.Engine != EngineSignedCookies {
		return nil, fmt.Errorf("djangoauth: session engine must be db or signed_cookies, not %q", cfg.Engine)
	}
	if cfg.CookieName == "" {
		cfg.CookieName = DefaultCookieName
	}
	if cfg.CookieAge <= 0 {
		cfg.CookieAge = DefaultCookieAge
	}
	if cfg.UserTable == "" {
		cfg.UserTable = DefaultUserTable
	}
	if !validIdent(cfg.UserTable) {
		return nil, fmt.Errorf("djangoauth: user table %q is not a plain table name", cfg.UserTable)
	}
	if len(cfg.Backends) == 0 {
		cfg.Backends = []string{ModelBackend}
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	v := &Verifier{cfg: cfg, secrets: append([]string{cfg.SecretKey}, cfg.Fallbacks...)}
	u, err := url.Parse(cfg.DatabaseURL)
	if err != nil || cfg.DatabaseURL == "" {
		return nil, errors.New("djangoauth: the Django database URL must be postgres://... or sqlite:///path")
	}
	switch u.Scheme {
	case "postgres", "postgresql":
		v.db, err = sql.Open("pgx", cfg.DatabaseURL)
		v.pg = true
	case "sqlite", "sqlite3":
		path := u.Host + u.Path
		if path == "" {
			return nil, errors.New("djangoauth: sqlite URL without a path")
		}
		// Read-only: chatd never writes Django's database.
		v.db, err = sql.Open("sqlite", "file:"+path+"?mode=ro&_pragma=busy_timeout(5000)")
	default:
		return nil, fmt.Errorf("djangoauth: unsupported database scheme %q (postgres or sqlite)", u.Scheme)
	}
	if err != nil {
		return nil, err
	}
	pctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	if err := v.db.PingContext(pctx); err != nil {
		_ = v.db.Close()
		return nil, fmt.Errorf("djangoauth: cannot reach the Django database: %w", err)
	}
	if err := v.prepareCourses(pctx); err != nil {
		_ = v.db.Close()
		return nil, err
	}
	return v, nil
}

// Close closes the database connections.
func (v *Verifier) Close() error { return v.db.Close() }

// CookieName is the session cookie's name.
func (v *Verifier) CookieName() string { return v.cfg.CookieName }

// q rewrites ? placeholders for PostgreSQL.
func (v *Verifier) q(query string) string {
	if !v.pg {
		return query
	}
	var b strings.Builder
	n := 0
	for _, r := range query {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// Verify returns the user whose session cookie value is cookie, or an
// error: ErrNoSession (no such session, expired, forged), ErrSignedOut
// (the password changed: the session's hash no longer matches),
// ErrInactive, or the database's error.
func (v *Verifier) Verify(ctx context.Context, cookie string) (*User, error) {
	now := v.cfg.Now()
	var data string
	var expires time.Time
	salt := saltDBSession
	if v.cfg.Engine == EngineDB {
		if len(cookie) < 8 || len(cookie) > 40 {
			return nil, ErrNoSession
		}
		var exp any
		err := v.db.QueryRowContext(ctx, v.q("SELECT session_data, expire_date FROM django_session WHERE session_key = ?"), cookie).Scan(&data, &exp)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNoSession
		}
		if err != nil {
			return nil, fmt.Errorf("djangoauth: session lookup: %w", err)
		}
		expires, err = parseTime(exp)
		if err != nil {
			return nil, err
		}
		if !expires.After(now) {
			return nil, ErrNoSession
		}
	} else {
		data, salt = cookie, saltSignedCookies
	}
	payload, ts, err := unsign(data, salt, v.secrets)
	if err != nil {
		return nil, ErrNoSession
	}
	if v.cfg.Engine == EngineSignedCookies {
		expires = ts.Add(v.cfg.CookieAge)
		if now.After(expires) {
			return nil, ErrNoSession
		}
	}
	sess, err := decodeSession(payload)
	if err != nil {
		return nil, ErrNoSession
	}
	id, _ := sess["_auth_user_id"].(string)
	backend, _ := sess["_auth_user_backend"].(string)
	hash, _ := sess["_auth_user_hash"].(string)
	if id == "" || hash == "" || !slices.Contains(v.cfg.Backends, backend) {
		return nil, ErrNoSession
	}
	key := userKey(id)
	var username, password string
	var active bool
	err = v.db.QueryRowContext(ctx, v.q("SELECT username, password, is_active FROM "+v.cfg.UserTable+" WHERE id = ?"), key).Scan(&username, &password, &active)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("djangoauth: user lookup: %w", err)
	}
	if !active {
		return nil, ErrInactive
	}
	ok := false
	for _, s := range v.secrets {
		if subtle.ConstantTimeCompare([]byte(hash), []byte(sessionAuthHash(password, s))) == 1 {
			ok = true
		}
	}
	if !ok {
		return nil, ErrSignedOut
	}
	return &User{ID: id, Username: username, Expires: expires}, nil
}

// parseTime reads expire_date: a time from PostgreSQL (or SQLite through a
// driver that converts), or SQLite's text, which Django writes in UTC
// (USE_TZ=True, the default).
func parseTime(v any) (time.Time, error) {
	switch t := v.(type) {
	case time.Time:
		return t, nil
	case string:
		return parseSQLiteTime(t)
	case []byte:
		return parseSQLiteTime(string(t))
	}
	return time.Time{}, fmt.Errorf("djangoauth: expire_date of type %T", v)
}

func parseSQLiteTime(s string) (time.Time, error) {
	for _, layout := range []string{"2006-01-02 15:04:05.999999", "2006-01-02 15:04:05", time.RFC3339Nano, "2006-01-02 15:04:05.999999-07:00"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("djangoauth: cannot read expire_date %q", s)
}

func validIdent(s string) bool {
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r == '_' || r == '.' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9') {
			return false
		}
	}
	return true
}
