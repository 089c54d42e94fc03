-- 0004: the sender's display name in each message, and how far each user has
-- read each room (unread counts, recent rooms).
--
-- Numbered 4: number 3 belongs to a migration written on another branch
-- (migrations.Load allows the gap and applies 3 whenever it arrives; the two
-- do not depend on each other).

-- The display name the sender had when the message was written ('' for
-- none: an account without one, a guest without a nickname). A message
-- keeps it after a rename, as a letter keeps its signature; the username
-- (username, user_id) stays the sender's identity. A constant default adds
-- the column without rewriting the table.
ALTER TABLE messages ADD COLUMN display_name text NOT NULL DEFAULT '';

-- How far each user has read each room: last_seq is the highest seq the
-- user's room page has shown (it only grows); read_at is the last visit,
-- which orders the "recent rooms" list. room is chat.Room.Key(), like
-- messages.room, and not a foreign key either: a room may be read before
-- its first message. Rows go with the user, and with a deleted course.
CREATE TABLE room_reads (
	user_id  bigint      NOT NULL REFERENCES users (id) ON DELETE CASCADE,
	room     text        NOT NULL,
	last_seq bigint      NOT NULL DEFAULT 0 CHECK (last_seq >= 0),
	read_at  timestamptz NOT NULL,
	PRIMARY KEY (user_id, room)
);
CREATE INDEX room_reads_recent ON room_reads (user_id, read_at);
CREATE INDEX room_reads_room ON room_reads (room);
