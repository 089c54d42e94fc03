// Package sqlite implements chat.Store on SQLite, chatd's default database: a
// single file in the data directory, opened with the pure-Go
// modernc.org/sqlite driver (no cgo).
//
// SQLite allows one writer at a time. The Store therefore keeps two pools: a
// single connection for every write, so writes queue in Go instead of failing
// with SQLITE_BUSY, and several read-only connections, which WAL mode lets
// read while the writer writes. Write transactions begin IMMEDIATE, taking
// the write lock up front, and every connection waits up to busyTimeout for
// a lock another process (a second chatd, the sqlite3 shell) holds.
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"github.com/chatd/chat/internal/migrations"
	"runtime"
	"strings"
	"time"

	chat "github.com/chatd/chat"
	"modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"
)

var _ chat.Store = (*Store)(nil)

// busyTimeout is how long a statement waits for a lock held by another
// connection or process before it fails with SQLITE_BUSY.
const busyTimeout = 10 * time.Second

// Store is a chat.Store on an SQLite database file.
type Store struct {
	path string
	db   *sql.DB // one read-write connection: every write and write transaction
	rdb  *sql.DB // read-only connections for reads outside write transactions
}

// Open opens (creating it if needed) the SQLite database at path, applies the
// pending migrations and returns the Store. It fails if the database was
// written by a newer chatd than this one.
func Open(ctx context.Context, path string) (*Store, error) {
	if path == "" {
		return nil, errors.New("sqlite: empty database path")
	}
	if strings.ContainsAny(path, "?#") || strings.HasPrefix(path, "file:") {
		return nil, fmt.Errorf("sqlite: database path %q must be a plain file name (no '?', '#' or file: prefix)", path)
	}
	if err := createPrivate(path); err != nil {
		return nil, err
	}
	ms := fmt.Sprint(busyTimeout.Milliseconds())
	db, err := sql.Open("sqlite", path+"?_txlock=immediate"+
		"&_pragma=busy_timeout("+ms+")&_pragma=foreign_keys(1)"+
		"&_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)")
	if err != nil {
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	db.SetMaxOpenConns(1)
	db.SetMaxIdleConns(1)
	db.SetConnMaxLifetime(0)
	db.SetConnMaxIdleTime(0)
	s := &Store{path: path, db: db}
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	if err := s.Migrate(ctx); err != nil {
		db.Close()
		return nil, err
	}
	if err := s.rekeyUsernames(ctx); err != nil {
		db.Close()
		return nil, err
	}
	// The readers are opened after the migrations so that the file is already
	// in WAL mode; query_only makes a stray write through them fail loudly.
	rdb, err := sql.Open("sqlite", path+"?_pragma=busy_timeout("+ms+")&_pragma=foreign_keys(1)&_pragma=query_only(1)")
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("sqlite: open %s: %w", path, err)
	}
	n := max(4, runtime.GOMAXPROCS(0))
	rdb.SetMaxOpenConns(n)
	rdb.SetMaxIdleConns(n)
	s.rdb = rdb
	return s, nil
}

// Path returns the database file's name as given to Open.
func (s *Store) Path() string { return s.path }

// Close closes the database.
func (s *Store) Close() error {
	var err error
	if s.rdb != nil {
		err = s.rdb.Close()
	}
	return errors.Join(err, s.db.Close())
}

// Migrations.

//go:embed migrations/*.sql
var migrationFiles embed.FS

// loadMigrations returns the embedded migrations in order.
func loadMigrations() []migrations.Migration {
	return migrations.Load(migrationFiles, "migrations", "sqlite")
}

// KnownSchemaVersion returns the newest schema version this binary knows:
// the number of its last embedded migration.
func KnownSchemaVersion() int {
	ms := loadMigrations()
	return ms[len(ms)-1].Version
}

// Migrate brings the database schema up to KnownSchemaVersion, applying every
// embedded migration not yet recorded in schema_version (see
// migrations.Load on gaps in the numbering) in one transaction, so that a failure leaves the schema
// as it was. Running it on an up-to-date database does nothing. It refuses a
// database whose schema is newer than this binary knows: an older chatd must
// not write to a database whose meaning it does not understand.
func (s *Store) Migrate(ctx context.Context) error {
	tx, err := s.db.BeginTx(ctx, nil) // IMMEDIATE: holds the write lock throughout
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    INTEGER PRIMARY KEY,
		applied_at INTEGER NOT NULL
	) STRICT`); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	var applied []int
	rows, err := tx.QueryContext(ctx, `SELECT version FROM schema_version`)
	if err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return fmt.Errorf("sqlite: migrate: %w", err)
		}
		applied = append(applied, v)
	}
	if err := rows.Close(); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	ms := loadMigrations()
	pending, unknown := migrations.Pending(ms, applied)
	if unknown != 0 {
		return fmt.Errorf("sqlite: database schema version %d is newer than this chatd (knows %d); upgrade chatd", unknown, ms[len(ms)-1].Version)
	}
	for _, m := range pending {
		if _, err := tx.ExecContext(ctx, m.SQL); err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", m.Name, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_version (version, applied_at) VALUES (?, ?)`,
			m.Version, now().UnixMicro()); err != nil {
			return fmt.Errorf("sqlite: migration %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: migrate: %w", err)
	}
	return nil
}

// SchemaVersion returns the version of the database's schema: the number of
// the last migration applied to it.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.db.QueryRowContext(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("sqlite: schema version: %w", err)
	}
	return v, nil
}

// Helpers.

// now returns the current time as stored: UTC, whole microseconds.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func fromMicros(us int64) time.Time { return time.UnixMicro(us).UTC() }

func sqliteCode(err error) int {
	var e *sqlite.Error
	if errors.As(err, &e) {
		return e.Code()
	}
	return 0
}

func isUnique(err error) bool {
	c := sqliteCode(err)
	return c == sqlite3.SQLITE_CONSTRAINT_UNIQUE || c == sqlite3.SQLITE_CONSTRAINT_PRIMARYKEY
}

func isForeignKey(err error) bool { return sqliteCode(err) == sqlite3.SQLITE_CONSTRAINT_FOREIGNKEY }

type scanner interface{ Scan(dest ...any) error }

const userColumns = `u.id, u.username, u.display_name, u.is_admin, u.deactivated`

func scanUser(row scanner) (*chat.User, error) {
	u := new(chat.User)
	err := row.Scan(&u.ID, &u.Username, &u.DisplayName, &u.IsAdmin, &u.Deactivated)
	return u, err
}

const courseColumns = `c.id, c.title, c.owner_id, o.username, c.created_at`

func scanCourse(row scanner) (*chat.Course, error) {
	c := new(chat.Course)
	var created int64
	if err := row.Scan(&c.ID, &c.Title, &c.OwnerID, &c.OwnerUsername, &created); err != nil {
		return nil, err
	}
	c.CreatedAt = fromMicros(created)
	return c, nil
}

func userNotFound(id int64) error { return chat.Errorf(chat.ENOTFOUND, "user %d not found", id) }

func accountDeactivated(id int64) error {
	return chat.Errorf(chat.EFORBIDDEN, "the account of user %d is deactivated", id)
}

func courseNotFound(id int64) error { return chat.Errorf(chat.ENOTFOUND, "course %d not found", id) }

func ownerNotStudent(username string, courseID int64) error {
	return chat.Errorf(chat.ECONFLICT, "%q owns course %d, so they may always enter its room; an owner is not enrolled as a student of their own course", username, courseID)
}

// Users.

// CreateUser implements chat.Store.
func (s *Store) CreateUser(ctx context.Context, u *chat.User, passwordHash string) error {
	if u == nil {
		return chat.Errorf(chat.EINVALID, "user is required")
	}
	if err := chat.ValidateUsername(u.Username); err != nil {
		return err
	}
	if err := chat.ValidateDisplayName(u.DisplayName); err != nil {
		return err
	}
	if passwordHash == "" {
		return chat.Errorf(chat.EINVALID, "password hash is required")
	}
	var id int64
	err := s.db.QueryRowContext(ctx, `INSERT INTO users
		(username, username_key, display_name, password_hash, is_admin, created_at)
		VALUES (?, ?, ?, ?, ?, ?) RETURNING id`,
		u.Username, chat.UsernameKey(u.Username), u.DisplayName, passwordHash, u.IsAdmin, now().UnixMicro(),
	).Scan(&id)
	if isUnique(err) {
		return chat.Errorf(chat.ECONFLICT, "username %q is already taken", u.Username)
	} else if err != nil {
		return fmt.Errorf("sqlite: create user: %w", err)
	}
	u.ID = id
	return nil
}

// UserByID implements chat.Store.
func (s *Store) UserByID(ctx context.Context, id int64) (*chat.User, error) {
	u, err := scanUser(s.rdb.QueryRowContext(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, userNotFound(id)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: user by id: %w", err)
	}
	return u, nil
}

// UserByUsername implements chat.Store.
func (s *Store) UserByUsername(ctx context.Context, username string) (*chat.User, error) {
	u, _, err := s.userByUsername(ctx, username, false)
	return u, err
}

// UserPasswordHash implements chat.Store.
func (s *Store) UserPasswordHash(ctx context.Context, username string) (*chat.User, string, error) {
	return s.userByUsername(ctx, username, true)
}

func (s *Store) userByUsername(ctx context.Context, username string, withHash bool) (*chat.User, string, error) {
	u := new(chat.User)
	var hash string
	err := s.rdb.QueryRowContext(ctx, `SELECT `+userColumns+`, u.password_hash FROM users u WHERE u.username_key = ?`,
		chat.UsernameKey(username)).Scan(&u.ID, &u.Username, &u.DisplayName, &u.IsAdmin, &u.Deactivated, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, "", chat.Errorf(chat.ENOTFOUND, "user %q not found", username)
	} else if err != nil {
		return nil, "", fmt.Errorf("sqlite: user by username: %w", err)
	}
	if !withHash {
		hash = ""
	}
	return u, hash, nil
}

// ListUsers implements chat.Store.
func (s *Store) ListUsers(ctx context.Context) ([]*chat.User, error) {
	return s.queryUsers(ctx, s.rdb, `SELECT `+userColumns+` FROM users u ORDER BY u.username_key, u.id`)
}

// ListUsersPage implements chat.Store. username_key is unique, so it alone
// orders and resumes the list.
func (s *Store) ListUsersPage(ctx context.Context, after string, limit int) ([]*chat.User, error) {
	if limit <= 0 {
		return []*chat.User{}, nil
	}
	return s.queryUsers(ctx, s.rdb, `SELECT `+userColumns+` FROM users u WHERE u.username_key > ?
		ORDER BY u.username_key LIMIT ?`, chat.UsernameKey(after), limit)
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

func (s *Store) queryUsers(ctx context.Context, q querier, query string, args ...any) ([]*chat.User, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	defer rows.Close()
	users := []*chat.User{}
	for rows.Next() {
		u, err := scanUser(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list users: %w", err)
		}
		users = append(users, u)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list users: %w", err)
	}
	return users, nil
}

// SetPassword implements chat.Store.
func (s *Store) SetPassword(ctx context.Context, userID int64, passwordHash string) error {
	if passwordHash == "" {
		return chat.Errorf(chat.EINVALID, "password hash is required")
	}
	res, err := s.db.ExecContext(ctx, `UPDATE users SET password_hash = ? WHERE id = ?`, passwordHash, userID)
	if err != nil {
		return fmt.Errorf("sqlite: set password: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: set password: %w", err)
	} else if n == 0 {
		return userNotFound(userID)
	}
	return nil
}

// SetUserActive implements chat.Store. Deactivating updates the flag,
// ends the sessions and records the revocation in one transaction.
func (s *Store) SetUserActive(ctx context.Context, userID int64, active bool) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: set user active: %w", err)
	}
	defer tx.Rollback()
	var deactivated bool
	err = tx.QueryRowContext(ctx, `SELECT deactivated FROM users WHERE id = ?`, userID).Scan(&deactivated)
	if errors.Is(err, sql.ErrNoRows) {
		return userNotFound(userID)
	} else if err != nil {
		return fmt.Errorf("sqlite: set user active: %w", err)
	}
	if deactivated == !active {
		return nil // already so: nothing to change or revoke
	}
	if _, err := tx.ExecContext(ctx, `UPDATE users SET deactivated = ? WHERE id = ?`, !active, userID); err != nil {
		return fmt.Errorf("sqlite: set user active: %w", err)
	}
	if !active {
		if _, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID); err != nil {
			return fmt.Errorf("sqlite: set user active: %w", err)
		}
		if err := revoke(ctx, tx, chat.Revocation{UserID: userID, Reason: reasonDeactivated}); err != nil {
			return fmt.Errorf("sqlite: set user active: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: set user active: %w", err)
	}
	return nil
}

// SetUserAdmin implements chat.Store.
func (s *Store) SetUserAdmin(ctx context.Context, userID int64, admin bool) error {
	res, err := s.db.ExecContext(ctx, `UPDATE users SET is_admin = ? WHERE id = ?`, admin, userID)
	if err != nil {
		return fmt.Errorf("sqlite: set user admin: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: set user admin: %w", err)
	} else if n == 0 {
		return userNotFound(userID)
	}
	return nil
}

// DeleteUser implements chat.Store.
func (s *Store) DeleteUser(ctx context.Context, id int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: delete user: %w", err)
	}
	defer tx.Rollback()
	var username string
	var owned int
	err = tx.QueryRowContext(ctx, `SELECT username, (SELECT count(*) FROM courses WHERE owner_id = users.id)
		FROM users WHERE id = ?`, id).Scan(&username, &owned)
	if errors.Is(err, sql.ErrNoRows) {
		return userNotFound(id)
	} else if err != nil {
		return fmt.Errorf("sqlite: delete user: %w", err)
	}
	if owned > 0 {
		return chat.Errorf(chat.ECONFLICT, "user %q owns %d course(s); delete them first", username, owned)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM users WHERE id = ?`, id); err != nil {
		return fmt.Errorf("sqlite: delete user: %w", err)
	}
	if err := revoke(ctx, tx, chat.Revocation{UserID: id, Reason: reasonAccountDeleted}); err != nil {
		return fmt.Errorf("sqlite: delete user: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: delete user: %w", err)
	}
	return nil
}

// Sessions.

// CreateSession implements chat.Store.
func (s *Store) CreateSession(ctx context.Context, userID int64, ttl time.Duration) (*chat.Session, error) {
	if ttl <= 0 {
		return nil, chat.Errorf(chat.EINVALID, "session lifetime must be positive")
	}
	token, hash, err := chat.NewSessionToken()
	if err != nil {
		return nil, fmt.Errorf("sqlite: create session: %w", err)
	}
	created := now()
	sess := &chat.Session{Token: token, UserID: userID, CreatedAt: created, ExpiresAt: created.Add(ttl).Truncate(time.Microsecond)}
	// No row comes back for a deactivated (or missing) user; the single
	// writer connection makes the check and the insert one step.
	err = s.db.QueryRowContext(ctx, `INSERT INTO sessions (token_hash, user_id, created_at, expires_at)
		SELECT ?, id, ?, ? FROM users WHERE id = ? AND deactivated = 0 RETURNING id`,
		hash, sess.CreatedAt.UnixMicro(), sess.ExpiresAt.UnixMicro(), userID).Scan(&sess.ID)
	if errors.Is(err, sql.ErrNoRows) {
		if _, err := s.UserByID(ctx, userID); err != nil {
			return nil, err
		}
		return nil, accountDeactivated(userID)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: create session: %w", err)
	}
	return sess, nil
}

// SessionUser implements chat.Store.
func (s *Store) SessionUser(ctx context.Context, token string) (*chat.User, *chat.Session, error) {
	if token == "" {
		return nil, nil, chat.Errorf(chat.ENOTFOUND, "session not found")
	}
	u := new(chat.User)
	sess := new(chat.Session)
	var created, expires int64
	err := s.rdb.QueryRowContext(ctx, `SELECT s.id, s.created_at, s.expires_at, `+userColumns+`
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = ? AND s.expires_at > ? AND u.deactivated = 0`,
		chat.HashSessionToken(token), now().UnixMicro(),
	).Scan(&sess.ID, &created, &expires, &u.ID, &u.Username, &u.DisplayName, &u.IsAdmin, &u.Deactivated)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil, chat.Errorf(chat.ENOTFOUND, "session not found or expired")
	} else if err != nil {
		return nil, nil, fmt.Errorf("sqlite: session user: %w", err)
	}
	sess.UserID = u.ID
	sess.CreatedAt, sess.ExpiresAt = fromMicros(created), fromMicros(expires)
	return u, sess, nil
}

// DeleteSession implements chat.Store.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: delete session: %w", err)
	}
	defer tx.Rollback()
	r := chat.Revocation{Reason: reasonLoggedOut}
	err = tx.QueryRowContext(ctx, `DELETE FROM sessions WHERE token_hash = ? RETURNING id, user_id`,
		chat.HashSessionToken(token)).Scan(&r.SessionID, &r.UserID)
	if errors.Is(err, sql.ErrNoRows) {
		return nil // already ended: nothing to revoke
	} else if err != nil {
		return fmt.Errorf("sqlite: delete session: %w", err)
	}
	if err := revoke(ctx, tx, r); err != nil {
		return fmt.Errorf("sqlite: delete session: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: delete session: %w", err)
	}
	return nil
}

// DeleteUserSessions implements chat.Store.
func (s *Store) DeleteUserSessions(ctx context.Context, userID int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: delete user sessions: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM sessions WHERE user_id = ?`, userID)
	if err != nil {
		return fmt.Errorf("sqlite: delete user sessions: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: delete user sessions: %w", err)
	} else if n == 0 {
		return nil // no session ended: nothing to revoke
	}
	if err := revoke(ctx, tx, chat.Revocation{UserID: userID, Reason: reasonSignedOutAll}); err != nil {
		return fmt.Errorf("sqlite: delete user sessions: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: delete user sessions: %w", err)
	}
	return nil
}

// DeleteExpiredSessions implements chat.Store.
func (s *Store) DeleteExpiredSessions(ctx context.Context) (int, error) {
	res, err := s.db.ExecContext(ctx, `DELETE FROM sessions WHERE expires_at <= ?`, now().UnixMicro())
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete expired sessions: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("sqlite: delete expired sessions: %w", err)
	}
	return int(n), nil
}

// Courses.

// CreateCourse implements chat.Store.
func (s *Store) CreateCourse(ctx context.Context, c *chat.Course) error {
	if c == nil {
		return chat.Errorf(chat.EINVALID, "course is required")
	}
	title := strings.TrimSpace(c.Title)
	if err := chat.ValidateCourseTitle(title); err != nil {
		return err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: create course: %w", err)
	}
	defer tx.Rollback()
	var owner string
	err = tx.QueryRowContext(ctx, `SELECT username FROM users WHERE id = ?`, c.OwnerID).Scan(&owner)
	if errors.Is(err, sql.ErrNoRows) {
		return userNotFound(c.OwnerID)
	} else if err != nil {
		return fmt.Errorf("sqlite: create course: %w", err)
	}
	created := now()
	var id int64
	if err := tx.QueryRowContext(ctx, `INSERT INTO courses (title, owner_id, created_at) VALUES (?, ?, ?) RETURNING id`,
		title, c.OwnerID, created.UnixMicro()).Scan(&id); err != nil {
		return fmt.Errorf("sqlite: create course: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: create course: %w", err)
	}
	c.ID, c.Title, c.OwnerUsername, c.CreatedAt = id, title, owner, created
	return nil
}

// RenameCourse implements chat.Store.
func (s *Store) RenameCourse(ctx context.Context, id int64, title string) error {
	title = strings.TrimSpace(title)
	if err := chat.ValidateCourseTitle(title); err != nil {
		return err
	}
	res, err := s.db.ExecContext(ctx, `UPDATE courses SET title = ? WHERE id = ?`, title, id)
	if err != nil {
		return fmt.Errorf("sqlite: rename course: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: rename course: %w", err)
	} else if n == 0 {
		return courseNotFound(id)
	}
	return nil
}

// CourseByID implements chat.Store.
func (s *Store) CourseByID(ctx context.Context, id int64) (*chat.Course, error) {
	c, err := scanCourse(s.rdb.QueryRowContext(ctx, `SELECT `+courseColumns+`
		FROM courses c JOIN users o ON o.id = c.owner_id WHERE c.id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, courseNotFound(id)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: course by id: %w", err)
	}
	return c, nil
}

// ListCourses implements chat.Store.
func (s *Store) ListCourses(ctx context.Context) ([]*chat.Course, error) {
	return s.queryCourses(ctx, `SELECT `+courseColumns+`
		FROM courses c JOIN users o ON o.id = c.owner_id ORDER BY c.id`)
}

// CoursesForUser implements chat.Store.
func (s *Store) CoursesForUser(ctx context.Context, userID int64) ([]*chat.Course, error) {
	return s.queryCourses(ctx, `SELECT `+courseColumns+`
		FROM courses c JOIN users o ON o.id = c.owner_id
		WHERE c.owner_id = ?1
		   OR EXISTS (SELECT 1 FROM enrollments e WHERE e.course_id = c.id AND e.user_id = ?1)
		ORDER BY c.id`, userID)
}

func (s *Store) queryCourses(ctx context.Context, query string, args ...any) ([]*chat.Course, error) {
	rows, err := s.rdb.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite: list courses: %w", err)
	}
	defer rows.Close()
	courses := []*chat.Course{}
	for rows.Next() {
		c, err := scanCourse(rows)
		if err != nil {
			return nil, fmt.Errorf("sqlite: list courses: %w", err)
		}
		courses = append(courses, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite: list courses: %w", err)
	}
	return courses, nil
}

// DeleteCourse implements chat.Store. The course's room goes in the same
// transaction: its messages and its counter.
func (s *Store) DeleteCourse(ctx context.Context, id int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: delete course: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM courses WHERE id = ?`, id)
	if err != nil {
		return fmt.Errorf("sqlite: delete course: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("sqlite: delete course: %w", err)
	} else if n == 0 {
		return courseNotFound(id)
	}
	room := chat.CourseRoomKey(id)
	if _, err := tx.ExecContext(ctx, `DELETE FROM messages WHERE room = ?`, room); err != nil {
		return fmt.Errorf("sqlite: delete course: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM rooms WHERE key = ?`, room); err != nil {
		return fmt.Errorf("sqlite: delete course: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM room_reads WHERE room = ?`, room); err != nil {
		return fmt.Errorf("sqlite: delete course: %w", err)
	}
	if err := revoke(ctx, tx, chat.Revocation{CourseID: id, Reason: reasonCourseDeleted}); err != nil {
		return fmt.Errorf("sqlite: delete course: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: delete course: %w", err)
	}
	return nil
}

// Enroll implements chat.Store.
func (s *Store) Enroll(ctx context.Context, courseID, userID int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: enroll: %w", err)
	}
	defer tx.Rollback()
	var ownerID int64
	err = tx.QueryRowContext(ctx, `SELECT owner_id FROM courses WHERE id = ?`, courseID).Scan(&ownerID)
	if errors.Is(err, sql.ErrNoRows) {
		return courseNotFound(courseID)
	} else if err != nil {
		return fmt.Errorf("sqlite: enroll: %w", err)
	}
	var username string
	err = tx.QueryRowContext(ctx, `SELECT username FROM users WHERE id = ?`, userID).Scan(&username)
	if errors.Is(err, sql.ErrNoRows) {
		return userNotFound(userID)
	} else if err != nil {
		return fmt.Errorf("sqlite: enroll: %w", err)
	}
	if ownerID == userID {
		return ownerNotStudent(username, courseID)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO enrollments (course_id, user_id, created_at) VALUES (?, ?, ?)`,
		courseID, userID, now().UnixMicro())
	if isUnique(err) {
		return chat.Errorf(chat.ECONFLICT, "user %q is already enrolled in course %d", username, courseID)
	} else if err != nil {
		return fmt.Errorf("sqlite: enroll: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("sqlite: enroll: %w", err)
	}
	return nil
}

// Unenroll implements chat.Store.
func (s *Store) Unenroll(ctx context.Context, courseID, userID int64) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite: unenroll: %w", err)
	}
	defer tx.Rollback()
	res, err := tx.ExecContext(ctx, `DELETE FROM enrollments WHERE course_id = ? AND user_id = ?`, courseID, userID)
	if err != nil {
		return fmt.Errorf("sqlite: unenroll: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("sqlite: unenroll: %w", err)
	}
	if n > 0 {
		if err := revoke(ctx, tx, chat.Revocation{UserID: userID, CourseID: courseID, Reason: reasonNotEnrolled}); err != nil {
			return fmt.Errorf("sqlite: unenroll: %w", err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("sqlite: unenroll: %w", err)
		}
		return nil
	}
	tx.Rollback()
	if _, err := s.CourseByID(ctx, courseID); err != nil {
		return err
	}
	return chat.Errorf(chat.ENOTFOUND, "user %d is not enrolled in course %d", userID, courseID)
}

// CourseMembers implements chat.Store.
func (s *Store) CourseMembers(ctx context.Context, courseID int64) ([]*chat.User, error) {
	// One read transaction, so that the course cannot vanish between the check
	// and the list.
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return nil, fmt.Errorf("sqlite: course members: %w", err)
	}
	defer tx.Rollback()
	var one int
	err = tx.QueryRowContext(ctx, `SELECT 1 FROM courses WHERE id = ?`, courseID).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, courseNotFound(courseID)
	} else if err != nil {
		return nil, fmt.Errorf("sqlite: course members: %w", err)
	}
	return s.queryUsers(ctx, tx, `SELECT `+userColumns+`
		FROM enrollments e JOIN users u ON u.id = e.user_id
		WHERE e.course_id = ? ORDER BY u.username_key, u.id`, courseID)
}

// CanEnterCourse implements chat.Store.
func (s *Store) CanEnterCourse(ctx context.Context, courseID, userID int64) (bool, error) {
	var ok bool
	err := s.rdb.QueryRowContext(ctx, `SELECT c.owner_id = ?1
		OR EXISTS (SELECT 1 FROM enrollments e WHERE e.course_id = c.id AND e.user_id = ?1)
		FROM courses c WHERE c.id = ?2`, userID, courseID).Scan(&ok)
	if errors.Is(err, sql.ErrNoRows) {
		return false, courseNotFound(courseID)
	} else if err != nil {
		return false, fmt.Errorf("sqlite: can enter course: %w", err)
	}
	return ok, nil
}
