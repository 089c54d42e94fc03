-- 0002: chat messages with per-room sequence numbers, access revocations and
-- the deployment id.
--
-- Same tables as the SQLite schema. Times are timestamptz written by chatd
-- from its own clock (microseconds); a message's created_at is the time
-- chatd gave it (chat.Message.Time).

-- One row per room that ever had a message. key is chat.Room.Key():
-- "chat:<name>", "course:<id>", "dm:<id>:<id>". last_seq is the last
-- sequence number assigned in the room; it only grows, also when retention
-- deletes every message, so a room's numbers are never reused. The row is
-- also the room's lock: AppendMessages holds it (FOR UPDATE) from reading
-- last_seq to its commit, so concurrent appends to a room, from any number
-- of chatd processes, number their messages one after the other.
CREATE TABLE rooms (
	key      text   PRIMARY KEY,
	last_seq bigint NOT NULL DEFAULT 0 CHECK (last_seq >= 0)
);

-- Stored messages, numbered 1, 2, 3, ... in each room without a gap.
-- Retention deletes from the old end only, so a room's rows are always
-- seq first..last. user_id is not a foreign key: history outlives the
-- account that wrote it. Nor is room: AppendMessages writes the rooms row
-- in the same transaction and DeleteCourse deletes both, and the per-row
-- check of a foreign key (a trigger running a query) cost more than the
-- insert itself. sender_key is chat.Message.SenderKey() ("u:<user
-- id>" or "n:<name>"): a client id is unique per room and sender, which the
-- partial unique index enforces as a safety net (AppendMessages finds
-- repeats, with the room locked, before inserting).
CREATE TABLE messages (
	room       text        NOT NULL,            -- rooms.key
	seq        bigint      NOT NULL CHECK (seq > 0),
	sender_key text        NOT NULL,
	user_id    bigint      NOT NULL DEFAULT 0,  -- 0 for guests and bots
	username   text        NOT NULL,            -- the sender's name as shown
	client_id  text        NOT NULL DEFAULT '', -- '' when the client gave none
	body       text        NOT NULL,
	created_at timestamptz NOT NULL,
	PRIMARY KEY (room, seq)
);
CREATE UNIQUE INDEX messages_client_id ON messages (room, sender_key, client_id) WHERE client_id <> '';

-- Losses of access (logout, unenrollment, deleted account or course),
-- recorded in the transaction that takes the access away. Every chatd
-- process polls for versions above the last it saw and closes the matching
-- sockets. A zero selector matches anything, so at least one must be set:
-- a row of zeros would close every socket. Writers lock the table (SHARE
-- ROW EXCLUSIVE, which readers do not wait for) before inserting, so that
-- versions are drawn in commit order and a poller never skips one that
-- commits late.
CREATE TABLE revocations (
	version    bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	user_id    bigint      NOT NULL DEFAULT 0,
	session_id bigint      NOT NULL DEFAULT 0,
	course_id  bigint      NOT NULL DEFAULT 0,
	reason     text        NOT NULL,            -- the close reason shown to the user
	created_at timestamptz NOT NULL,
	CHECK (user_id <> 0 OR session_id <> 0 OR course_id <> 0)
);

-- The random id of this database (32 hex characters), made by the first
-- DeploymentID call and never changed: every chatd process of a deployment
-- reads the same one.
CREATE TABLE deployment (
	id            integer PRIMARY KEY CHECK (id = 1),
	deployment_id text    NOT NULL
);
