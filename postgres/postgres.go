// Package postgres implements chat.Store on PostgreSQL, for deployments that
// run several chatd processes or want a managed database.
//
// It uses pgx's own pool (pgxpool) rather than database/sql: one pool instead
// of two stacked ones, PostgreSQL error codes and types (bytea, timestamptz)
// without conversion layers, and pool settings such as pool_max_conns taken
// straight from DATABASE_URL.
//
// The tables live in the first schema of the connection's search_path
// (normally "public"); set search_path in DATABASE_URL to keep chatd in a
// schema of its own.
package postgres

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"github.com/chatd/chat/internal/migrations"
	"strings"
	"time"

	chat "github.com/chatd/chat"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

var _ chat.Store = (*Store)(nil)

// Store is a chat.Store on a PostgreSQL database.
type Store struct {
	pool *pgxpool.Pool
}

// Open connects to the PostgreSQL database at url (a postgres:// URL or a
// keyword/value connection string, as libpq takes), applies the pending
// migrations and returns the Store. It fails if the database was written by a
// newer chatd than this one.
func Open(ctx context.Context, url string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(url)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: connect to %s:%d: %w", cfg.ConnConfig.Host, cfg.ConnConfig.Port, err)
	}
	s := &Store{pool: pool}
	if err := s.Migrate(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	if err := s.rekeyUsernames(ctx); err != nil {
		pool.Close()
		return nil, err
	}
	return s, nil
}

// Close closes every connection of the pool.
func (s *Store) Close() error {
	s.pool.Close()
	return nil
}

// Migrations.

//go:embed migrations/*.sql
var migrationFiles embed.FS

// loadMigrations returns the embedded migrations in order.
func loadMigrations() []migrations.Migration {
	return migrations.Load(migrationFiles, "migrations", "postgres")
}

// KnownSchemaVersion returns the newest schema version this binary knows:
// the number of its last embedded migration.
func KnownSchemaVersion() int {
	ms := loadMigrations()
	return ms[len(ms)-1].Version
}

// migrationLock is the first key of the advisory lock that serialises
// migrations; the second is a hash of the schema, so chatd deployments in
// different schemas of one database do not wait for each other.
const migrationLock = 0x63686174 // "chat"

// Migrate brings the database schema up to KnownSchemaVersion, applying every
// embedded migration not yet recorded in schema_version (see
// migrations.Load on gaps in the numbering) in one transaction, so that a failure leaves the schema
// as it was. Running it on an up-to-date database does nothing. A
// transaction-scoped advisory lock makes chatd processes that start together
// take turns: the first migrates, the others then find nothing to do. It
// refuses a database whose schema is newer than this binary knows: an older
// chatd must not write to a database whose meaning it does not understand.
func (s *Store) Migrate(ctx context.Context) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	defer tx.Rollback(ctx)
	var schema *string
	if err := tx.QueryRow(ctx, `SELECT current_schema()`).Scan(&schema); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	if schema == nil {
		var path string
		_ = tx.QueryRow(ctx, `SHOW search_path`).Scan(&path)
		return fmt.Errorf("postgres: no schema of search_path %q exists; create it first", path)
	}
	if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(current_schema()))`, migrationLock); err != nil {
		return fmt.Errorf("postgres: migrate: lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS schema_version (
		version    integer PRIMARY KEY,
		applied_at timestamptz NOT NULL
	)`); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	rows, err := tx.Query(ctx, `SELECT version FROM schema_version`)
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	applied, err := pgx.CollectRows(rows, pgx.RowTo[int])
	if err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	ms := loadMigrations()
	pending, unknown := migrations.Pending(ms, applied)
	if unknown != 0 {
		return fmt.Errorf("postgres: database schema version %d is newer than this chatd (knows %d); upgrade chatd", unknown, ms[len(ms)-1].Version)
	}
	for _, m := range pending {
		// Without arguments Exec uses the simple protocol, which runs a
		// script of several statements.
		if _, err := tx.Exec(ctx, m.SQL); err != nil {
			return fmt.Errorf("postgres: migration %s: %w", m.Name, err)
		}
		if _, err := tx.Exec(ctx, `INSERT INTO schema_version (version, applied_at) VALUES ($1, $2)`, m.Version, now()); err != nil {
			return fmt.Errorf("postgres: migration %s: %w", m.Name, err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: migrate: %w", err)
	}
	return nil
}

// SchemaVersion returns the version of the database's schema: the number of
// the last migration applied to it.
func (s *Store) SchemaVersion(ctx context.Context) (int, error) {
	var v int
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(max(version), 0) FROM schema_version`).Scan(&v); err != nil {
		return 0, fmt.Errorf("postgres: schema version: %w", err)
	}
	return v, nil
}

// Helpers.

// now returns the current time as stored: UTC, whole microseconds.
func now() time.Time { return time.Now().UTC().Truncate(time.Microsecond) }

func pgCode(err error) string {
	var e *pgconn.PgError
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

func isUnique(err error) bool     { return pgCode(err) == "23505" } // unique_violation
func isForeignKey(err error) bool { return pgCode(err) == "23503" } // foreign_key_violation

const userColumns = `u.id, u.username, u.display_name, u.is_admin, u.deactivated`

func scanUser(row pgx.Row) (*chat.User, error) {
	u := new(chat.User)
	err := row.Scan(&u.ID, &u.Username, &u.DisplayName, &u.IsAdmin, &u.Deactivated)
	return u, err
}

const courseColumns = `c.id, c.title, c.owner_id, o.username, c.created_at`

func scanCourse(row pgx.Row) (*chat.Course, error) {
	c := new(chat.Course)
	if err := row.Scan(&c.ID, &c.Title, &c.OwnerID, &c.OwnerUsername, &c.CreatedAt); err != nil {
		return nil, err
	}
	c.CreatedAt = c.CreatedAt.UTC()
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
	err := s.pool.QueryRow(ctx, `INSERT INTO users
		(username, username_key, display_name, password_hash, is_admin, created_at)
		VALUES ($1, $2, $3, $4, $5, $6) RETURNING id`,
		u.Username, chat.UsernameKey(u.Username), u.DisplayName, passwordHash, u.IsAdmin, now(),
	).Scan(&id)
	if isUnique(err) {
		return chat.Errorf(chat.ECONFLICT, "username %q is already taken", u.Username)
	} else if err != nil {
		return fmt.Errorf("postgres: create user: %w", err)
	}
	u.ID = id
	return nil
}

// UserByID implements chat.Store.
func (s *Store) UserByID(ctx context.Context, id int64) (*chat.User, error) {
	u, err := scanUser(s.pool.QueryRow(ctx, `SELECT `+userColumns+` FROM users u WHERE u.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, userNotFound(id)
	} else if err != nil {
		return nil, fmt.Errorf("postgres: user by id: %w", err)
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
	err := s.pool.QueryRow(ctx, `SELECT `+userColumns+`, u.password_hash FROM users u WHERE u.username_key = $1`,
		chat.UsernameKey(username)).Scan(&u.ID, &u.Username, &u.DisplayName, &u.IsAdmin, &u.Deactivated, &hash)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, "", chat.Errorf(chat.ENOTFOUND, "user %q not found", username)
	} else if err != nil {
		return nil, "", fmt.Errorf("postgres: user by username: %w", err)
	}
	if !withHash {
		hash = ""
	}
	return u, hash, nil
}

// ListUsers implements chat.Store. COLLATE "C" orders by bytes, as SQLite
// does, whatever the database's collation.
func (s *Store) ListUsers(ctx context.Context) ([]*chat.User, error) {
	return queryUsers(ctx, s.pool, `SELECT `+userColumns+` FROM users u ORDER BY u.username_key COLLATE "C", u.id`)
}

// ListUsersPage implements chat.Store. username_key is unique, so it alone
// orders and resumes the list (byte order, as in ListUsers).
func (s *Store) ListUsersPage(ctx context.Context, after string, limit int) ([]*chat.User, error) {
	if limit <= 0 {
		return []*chat.User{}, nil
	}
	return queryUsers(ctx, s.pool, `SELECT `+userColumns+` FROM users u WHERE u.username_key COLLATE "C" > $1
		ORDER BY u.username_key COLLATE "C" LIMIT $2`, chat.UsernameKey(after), limit)
}

type querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

func queryUsers(ctx context.Context, q querier, query string, args ...any) ([]*chat.User, error) {
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list users: %w", err)
	}
	users, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*chat.User, error) { return scanUser(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list users: %w", err)
	}
	if users == nil {
		users = []*chat.User{}
	}
	return users, nil
}

// SetPassword implements chat.Store.
func (s *Store) SetPassword(ctx context.Context, userID int64, passwordHash string) error {
	if passwordHash == "" {
		return chat.Errorf(chat.EINVALID, "password hash is required")
	}
	tag, err := s.pool.Exec(ctx, `UPDATE users SET password_hash = $1 WHERE id = $2`, passwordHash, userID)
	if err != nil {
		return fmt.Errorf("postgres: set password: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return userNotFound(userID)
	}
	return nil
}

// SetUserActive implements chat.Store. Deactivating updates the flag,
// ends the sessions and records the revocation in one transaction, with
// the user's row locked throughout.
func (s *Store) SetUserActive(ctx context.Context, userID int64, active bool) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: set user active: %w", err)
	}
	defer tx.Rollback(ctx)
	var deactivated bool
	err = tx.QueryRow(ctx, `SELECT deactivated FROM users WHERE id = $1 FOR UPDATE`, userID).Scan(&deactivated)
	if errors.Is(err, pgx.ErrNoRows) {
		return userNotFound(userID)
	} else if err != nil {
		return fmt.Errorf("postgres: set user active: %w", err)
	}
	if deactivated == !active {
		return nil // already so: nothing to change or revoke
	}
	if _, err := tx.Exec(ctx, `UPDATE users SET deactivated = $1 WHERE id = $2`, !active, userID); err != nil {
		return fmt.Errorf("postgres: set user active: %w", err)
	}
	if !active {
		if _, err := tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, userID); err != nil {
			return fmt.Errorf("postgres: set user active: %w", err)
		}
		if err := revoke(ctx, tx, chat.Revocation{UserID: userID, Reason: reasonDeactivated}); err != nil {
			return fmt.Errorf("postgres: set user active: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: set user active: %w", err)
	}
	return nil
}

// SetUserAdmin implements chat.Store.
func (s *Store) SetUserAdmin(ctx context.Context, userID int64, admin bool) error {
	tag, err := s.pool.Exec(ctx, `UPDATE users SET is_admin = $1 WHERE id = $2`, admin, userID)
	if err != nil {
		return fmt.Errorf("postgres: set user admin: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return userNotFound(userID)
	}
	return nil
}

// DeleteUser implements chat.Store.
func (s *Store) DeleteUser(ctx context.Context, id int64) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: delete user: %w", err)
	}
	defer tx.Rollback(ctx)
	// FOR UPDATE makes a concurrent CreateCourse for this owner wait (its
	// foreign key check needs a share lock on the row) or fail after us.
	var username string
	err = tx.QueryRow(ctx, `SELECT username FROM users WHERE id = $1 FOR UPDATE`, id).Scan(&username)
	if errors.Is(err, pgx.ErrNoRows) {
		return userNotFound(id)
	} else if err != nil {
		return fmt.Errorf("postgres: delete user: %w", err)
	}
	var owned int
	if err := tx.QueryRow(ctx, `SELECT count(*) FROM courses WHERE owner_id = $1`, id).Scan(&owned); err != nil {
		return fmt.Errorf("postgres: delete user: %w", err)
	}
	if owned > 0 {
		return chat.Errorf(chat.ECONFLICT, "user %q owns %d course(s); delete them first", username, owned)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM users WHERE id = $1`, id); isForeignKey(err) {
		return chat.Errorf(chat.ECONFLICT, "user %q owns courses; delete them first", username)
	} else if err != nil {
		return fmt.Errorf("postgres: delete user: %w", err)
	}
	if err := revoke(ctx, tx, chat.Revocation{UserID: id, Reason: reasonAccountDeleted}); err != nil {
		return fmt.Errorf("postgres: delete user: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: delete user: %w", err)
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
		return nil, fmt.Errorf("postgres: create session: %w", err)
	}
	created := now()
	sess := &chat.Session{Token: token, UserID: userID, CreatedAt: created, ExpiresAt: created.Add(ttl).Truncate(time.Microsecond)}
	// No row comes back for a deactivated (or missing) user. FOR SHARE
	// waits for a deactivation in progress (which holds the row) and then
	// sees its outcome, so no session outlives a deactivation.
	err = s.pool.QueryRow(ctx, `WITH u AS (SELECT id FROM users WHERE id = $2 AND NOT deactivated FOR SHARE)
		INSERT INTO sessions (token_hash, user_id, created_at, expires_at)
		SELECT $1, u.id, $3, $4 FROM u RETURNING id`,
		hash, userID, sess.CreatedAt, sess.ExpiresAt).Scan(&sess.ID)
	if errors.Is(err, pgx.ErrNoRows) || isForeignKey(err) {
		if _, err := s.UserByID(ctx, userID); err != nil {
			return nil, err
		}
		return nil, accountDeactivated(userID)
	} else if err != nil {
		return nil, fmt.Errorf("postgres: create session: %w", err)
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
	err := s.pool.QueryRow(ctx, `SELECT s.id, s.created_at, s.expires_at, `+userColumns+`
		FROM sessions s JOIN users u ON u.id = s.user_id
		WHERE s.token_hash = $1 AND s.expires_at > $2 AND NOT u.deactivated`,
		chat.HashSessionToken(token), now(),
	).Scan(&sess.ID, &sess.CreatedAt, &sess.ExpiresAt, &u.ID, &u.Username, &u.DisplayName, &u.IsAdmin, &u.Deactivated)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, nil, chat.Errorf(chat.ENOTFOUND, "session not found or expired")
	} else if err != nil {
		return nil, nil, fmt.Errorf("postgres: session user: %w", err)
	}
	sess.UserID = u.ID
	sess.CreatedAt, sess.ExpiresAt = sess.CreatedAt.UTC(), sess.ExpiresAt.UTC()
	return u, sess, nil
}

// DeleteSession implements chat.Store.
func (s *Store) DeleteSession(ctx context.Context, token string) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: delete session: %w", err)
	}
	defer tx.Rollback(ctx)
	r := chat.Revocation{Reason: reasonLoggedOut}
	err = tx.QueryRow(ctx, `DELETE FROM sessions WHERE token_hash = $1 RETURNING id, user_id`,
		chat.HashSessionToken(token)).Scan(&r.SessionID, &r.UserID)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil // already ended: nothing to revoke
	} else if err != nil {
		return fmt.Errorf("postgres: delete session: %w", err)
	}
	if err := revoke(ctx, tx, r); err != nil {
		return fmt.Errorf("postgres: delete session: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: delete session: %w", err)
	}
	return nil
}

// DeleteUserSessions implements chat.Store.
func (s *Store) DeleteUserSessions(ctx context.Context, userID int64) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: delete user sessions: %w", err)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `DELETE FROM sessions WHERE user_id = $1`, userID)
	if err != nil {
		return fmt.Errorf("postgres: delete user sessions: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return nil // no session ended: nothing to revoke
	}
	if err := revoke(ctx, tx, chat.Revocation{UserID: userID, Reason: reasonSignedOutAll}); err != nil {
		return fmt.Errorf("postgres: delete user sessions: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: delete user sessions: %w", err)
	}
	return nil
}

// DeleteExpiredSessions implements chat.Store.
func (s *Store) DeleteExpiredSessions(ctx context.Context) (int, error) {
	tag, err := s.pool.Exec(ctx, `DELETE FROM sessions WHERE expires_at <= $1`, now())
	if err != nil {
		return 0, fmt.Errorf("postgres: delete expired sessions: %w", err)
	}
	return int(tag.RowsAffected()), nil
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
	// One statement: the owner is read and the course inserted atomically;
	// no row comes back when the owner does not exist.
	created := now()
	var id int64
	var owner string
	err := s.pool.QueryRow(ctx, `WITH o AS (SELECT id, username FROM users WHERE id = $2 FOR KEY SHARE),
		c AS (INSERT INTO courses (title, owner_id, created_at) SELECT $1, o.id, $3 FROM o RETURNING id)
		SELECT c.id, o.username FROM c, o`, title, c.OwnerID, created).Scan(&id, &owner)
	if errors.Is(err, pgx.ErrNoRows) || isForeignKey(err) {
		return userNotFound(c.OwnerID)
	} else if err != nil {
		return fmt.Errorf("postgres: create course: %w", err)
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
	tag, err := s.pool.Exec(ctx, `UPDATE courses SET title = $1 WHERE id = $2`, title, id)
	if err != nil {
		return fmt.Errorf("postgres: rename course: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return courseNotFound(id)
	}
	return nil
}

// CourseByID implements chat.Store.
func (s *Store) CourseByID(ctx context.Context, id int64) (*chat.Course, error) {
	c, err := scanCourse(s.pool.QueryRow(ctx, `SELECT `+courseColumns+`
		FROM courses c JOIN users o ON o.id = c.owner_id WHERE c.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, courseNotFound(id)
	} else if err != nil {
		return nil, fmt.Errorf("postgres: course by id: %w", err)
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
		WHERE c.owner_id = $1
		   OR EXISTS (SELECT 1 FROM enrollments e WHERE e.course_id = c.id AND e.user_id = $1)
		ORDER BY c.id`, userID)
}

func (s *Store) queryCourses(ctx context.Context, query string, args ...any) ([]*chat.Course, error) {
	rows, err := s.pool.Query(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("postgres: list courses: %w", err)
	}
	courses, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (*chat.Course, error) { return scanCourse(row) })
	if err != nil {
		return nil, fmt.Errorf("postgres: list courses: %w", err)
	}
	if courses == nil {
		courses = []*chat.Course{}
	}
	return courses, nil
}

// DeleteCourse implements chat.Store. The course's room goes in the same
// transaction. Its rooms row is deleted first: that waits for an append to
// the room that holds the row, and the DELETE of the messages, a later
// statement, then sees and deletes what that append committed too.
func (s *Store) DeleteCourse(ctx context.Context, id int64) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: delete course: %w", err)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `DELETE FROM courses WHERE id = $1`, id)
	if err != nil {
		return fmt.Errorf("postgres: delete course: %w", err)
	}
	if tag.RowsAffected() == 0 {
		return courseNotFound(id)
	}
	room := chat.CourseRoomKey(id)
	if _, err := tx.Exec(ctx, `DELETE FROM rooms WHERE key = $1`, room); err != nil {
		return fmt.Errorf("postgres: delete course: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM messages WHERE room = $1`, room); err != nil {
		return fmt.Errorf("postgres: delete course: %w", err)
	}
	if _, err := tx.Exec(ctx, `DELETE FROM room_reads WHERE room = $1`, room); err != nil {
		return fmt.Errorf("postgres: delete course: %w", err)
	}
	if err := revoke(ctx, tx, chat.Revocation{CourseID: id, Reason: reasonCourseDeleted}); err != nil {
		return fmt.Errorf("postgres: delete course: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: delete course: %w", err)
	}
	return nil
}

// Enroll implements chat.Store.
func (s *Store) Enroll(ctx context.Context, courseID, userID int64) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: enroll: %w", err)
	}
	defer tx.Rollback(ctx)
	// The key-share locks keep the course and the user from being deleted
	// until the enrollment commits.
	var ownerID int64
	err = tx.QueryRow(ctx, `SELECT owner_id FROM courses WHERE id = $1 FOR KEY SHARE`, courseID).Scan(&ownerID)
	if errors.Is(err, pgx.ErrNoRows) {
		return courseNotFound(courseID)
	} else if err != nil {
		return fmt.Errorf("postgres: enroll: %w", err)
	}
	var username string
	err = tx.QueryRow(ctx, `SELECT username FROM users WHERE id = $1 FOR KEY SHARE`, userID).Scan(&username)
	if errors.Is(err, pgx.ErrNoRows) {
		return userNotFound(userID)
	} else if err != nil {
		return fmt.Errorf("postgres: enroll: %w", err)
	}
	if ownerID == userID {
		return ownerNotStudent(username, courseID)
	}
	_, err = tx.Exec(ctx, `INSERT INTO enrollments (course_id, user_id, created_at) VALUES ($1, $2, $3)`,
		courseID, userID, now())
	if isUnique(err) {
		return chat.Errorf(chat.ECONFLICT, "user %q is already enrolled in course %d", username, courseID)
	} else if err != nil {
		return fmt.Errorf("postgres: enroll: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("postgres: enroll: %w", err)
	}
	return nil
}

// Unenroll implements chat.Store.
func (s *Store) Unenroll(ctx context.Context, courseID, userID int64) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("postgres: unenroll: %w", err)
	}
	defer tx.Rollback(ctx)
	tag, err := tx.Exec(ctx, `DELETE FROM enrollments WHERE course_id = $1 AND user_id = $2`, courseID, userID)
	if err != nil {
		return fmt.Errorf("postgres: unenroll: %w", err)
	}
	if tag.RowsAffected() > 0 {
		if err := revoke(ctx, tx, chat.Revocation{UserID: userID, CourseID: courseID, Reason: reasonNotEnrolled}); err != nil {
			return fmt.Errorf("postgres: unenroll: %w", err)
		}
		if err := tx.Commit(ctx); err != nil {
			return fmt.Errorf("postgres: unenroll: %w", err)
		}
		return nil
	}
	tx.Rollback(ctx)
	if _, err := s.CourseByID(ctx, courseID); err != nil {
		return err
	}
	return chat.Errorf(chat.ENOTFOUND, "user %d is not enrolled in course %d", userID, courseID)
}

// CourseMembers implements chat.Store.
func (s *Store) CourseMembers(ctx context.Context, courseID int64) ([]*chat.User, error) {
	// One repeatable-read transaction, so that the check and the list see the
	// same snapshot.
	tx, err := s.pool.BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		return nil, fmt.Errorf("postgres: course members: %w", err)
	}
	defer tx.Rollback(ctx)
	var one int
	err = tx.QueryRow(ctx, `SELECT 1 FROM courses WHERE id = $1`, courseID).Scan(&one)
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, courseNotFound(courseID)
	} else if err != nil {
		return nil, fmt.Errorf("postgres: course members: %w", err)
	}
	return queryUsers(ctx, tx, `SELECT `+userColumns+`
		FROM enrollments e JOIN users u ON u.id = e.user_id
		WHERE e.course_id = $1 ORDER BY u.username_key COLLATE "C", u.id`, courseID)
}

// CanEnterCourse implements chat.Store.
func (s *Store) CanEnterCourse(ctx context.Context, courseID, userID int64) (bool, error) {
	var ok bool
	err := s.pool.QueryRow(ctx, `SELECT c.owner_id = $1
		OR EXISTS (SELECT 1 FROM enrollments e WHERE e.course_id = c.id AND e.user_id = $1)
		FROM courses c WHERE c.id = $2`, userID, courseID).Scan(&ok)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, courseNotFound(courseID)
	} else if err != nil {
		return false, fmt.Errorf("postgres: can enter course: %w", err)
	}
	return ok, nil
}
