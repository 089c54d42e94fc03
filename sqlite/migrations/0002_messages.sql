-- 0002: chat messages with per-room sequence numbers, access revocations and
-- the deployment id.
--
-- Times are INTEGER microseconds since the Unix epoch (UTC), as in 0001; a
-- message's created_at is the time chatd gave it (chat.Message.Time).

-- One row per room that ever had a message. key is chat.Room.Key():
-- "chat:<name>", "course:<id>", "dm:<id>:<id>". last_seq is the last
-- sequence number assigned in the room; it only grows, also when retention
-- deletes every message, so a room's numbers are never reused.
CREATE TABLE rooms (
	key      TEXT    PRIMARY KEY,
	last_seq INTEGER NOT NULL DEFAULT 0 CHECK (last_seq >= 0)
) STRICT, WITHOUT ROWID;

-- Stored messages, numbered 1, 2, 3, ... in each room by AppendMessages
-- (which holds the write lock, so numbers have no gap). Retention deletes
-- from the old end only, so a room's rows are always seq first..last.
-- user_id is not a foreign key: history outlives the account that wrote it.
-- Nor is room: AppendMessages writes the rooms row in the same transaction
-- and DeleteCourse deletes both, and on PostgreSQL the per-row check of a
-- foreign key cost more than the insert itself (the schemas stay alike).
-- sender_key is chat.Message.SenderKey() ("u:<user id>" or "n:<name>"):
-- a client id is unique per room and sender, which the partial unique index
-- enforces as a safety net (AppendMessages finds repeats before inserting).
CREATE TABLE messages (
	room       TEXT    NOT NULL,             -- rooms.key
	seq        INTEGER NOT NULL CHECK (seq > 0),
	sender_key TEXT    NOT NULL,
	user_id    INTEGER NOT NULL DEFAULT 0,   -- 0 for guests and bots
	username   TEXT    NOT NULL,             -- the sender's name as shown
	client_id  TEXT    NOT NULL DEFAULT '',  -- '' when the client gave none
	body       TEXT    NOT NULL,
	created_at INTEGER NOT NULL,
	PRIMARY KEY (room, seq)
) STRICT;
CREATE UNIQUE INDEX messages_client_id ON messages (room, sender_key, client_id) WHERE client_id <> '';

-- Losses of access (logout, unenrollment, deleted account or course),
-- recorded in the transaction that takes the access away. Every chatd
-- process polls for versions above the last it saw and closes the matching
-- sockets. A zero selector matches anything, so at least one must be set:
-- a row of zeros would close every socket. AUTOINCREMENT never reuses a
-- version, and SQLite's single writer makes versions follow commit order.
CREATE TABLE revocations (
	version    INTEGER PRIMARY KEY AUTOINCREMENT,
	user_id    INTEGER NOT NULL DEFAULT 0,
	session_id INTEGER NOT NULL DEFAULT 0,
	course_id  INTEGER NOT NULL DEFAULT 0,
	reason     TEXT    NOT NULL,            -- the close reason shown to the user
	created_at INTEGER NOT NULL,
	CHECK (user_id <> 0 OR session_id <> 0 OR course_id <> 0)
) STRICT;

-- The random id of this database (32 hex characters), made by the first
-- DeploymentID call and never changed: every chatd process of a deployment
-- reads the same one.
CREATE TABLE deployment (
	id            INTEGER PRIMARY KEY CHECK (id = 1),
	deployment_id TEXT    NOT NULL
) STRICT;
