-- 0001: accounts, server-side sessions, courses and enrollments.
--
-- Times are INTEGER microseconds since the Unix epoch (UTC), written by chatd
-- from its own clock. Ids use AUTOINCREMENT so that an id is never reused
-- after a delete: a stale link to a deleted course must not open a new one.
-- Chat messages will come in a later migration as rooms(id, kind, ...,
-- last_seq) and messages(room_id, seq, sender_id, client_id, body,
-- created_at, PRIMARY KEY (room_id, seq), UNIQUE (room_id, sender_id,
-- client_id)), with course rooms deleted along with their course.

CREATE TABLE users (
	id            INTEGER PRIMARY KEY AUTOINCREMENT,
	username      TEXT    NOT NULL,          -- as the user typed it
	username_key  TEXT    NOT NULL UNIQUE,   -- chat.UsernameKey(username)
	display_name  TEXT    NOT NULL DEFAULT '',
	password_hash TEXT    NOT NULL,          -- PHC-encoded argon2id
	is_admin      INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),
	created_at    INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	token_hash BLOB    NOT NULL UNIQUE,      -- SHA-256 of the cookie token
	user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at INTEGER NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE courses (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	title      TEXT    NOT NULL,
	owner_id   INTEGER NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
	created_at INTEGER NOT NULL
) STRICT;
CREATE INDEX courses_owner_id ON courses (owner_id);

CREATE TABLE enrollments (
	course_id  INTEGER NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
	user_id    INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (course_id, user_id)
) STRICT, WITHOUT ROWID;
CREATE INDEX enrollments_user_id ON enrollments (user_id);
