-- 0001: accounts, server-side sessions, courses and enrollments.
--
-- Same tables as the SQLite schema. Times are timestamptz written by chatd
-- from its own clock (microseconds). Identity columns never reuse an id after
-- a delete: a stale link to a deleted course must not open a new one. Chat
-- messages will come in a later migration as rooms(id, kind, ..., last_seq)
-- and messages(room_id, seq, sender_id, client_id, body, created_at,
-- PRIMARY KEY (room_id, seq), UNIQUE (room_id, sender_id, client_id)), with
-- course rooms deleted along with their course.

CREATE TABLE users (
	id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	username      text        NOT NULL,        -- as the user typed it
	username_key  text        NOT NULL UNIQUE, -- chat.UsernameKey(username)
	display_name  text        NOT NULL DEFAULT '',
	password_hash text        NOT NULL,        -- PHC-encoded argon2id
	is_admin      boolean     NOT NULL DEFAULT false,
	created_at    timestamptz NOT NULL
);

CREATE TABLE sessions (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	token_hash bytea       NOT NULL UNIQUE,    -- SHA-256 of the cookie token
	user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at timestamptz NOT NULL,
	expires_at timestamptz NOT NULL
);
CREATE INDEX sessions_user_id ON sessions (user_id);
CREATE INDEX sessions_expires_at ON sessions (expires_at);

CREATE TABLE courses (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	title      text        NOT NULL,
	owner_id   bigint      NOT NULL REFERENCES users (id) ON DELETE RESTRICT,
	created_at timestamptz NOT NULL
);
CREATE INDEX courses_owner_id ON courses (owner_id);

CREATE TABLE enrollments (
	course_id  bigint      NOT NULL REFERENCES courses (id) ON DELETE CASCADE,
	user_id    bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (course_id, user_id)
);
CREATE INDEX enrollments_user_id ON enrollments (user_id);
