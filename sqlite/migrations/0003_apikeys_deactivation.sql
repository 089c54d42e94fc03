-- 0003: API keys for the HTTP publish API, and deactivated accounts.
--
-- Times are INTEGER microseconds since the Unix epoch (UTC), as in 0001.

-- A deactivated account keeps its data but cannot sign in: SetUserActive
-- deletes its sessions (recording a revocation, so its sockets close), and
-- SessionUser and CreateSession treat it as having none.
ALTER TABLE users ADD COLUMN deactivated INTEGER NOT NULL DEFAULT 0 CHECK (deactivated IN (0, 1));

-- Keys of the publish API (POST /api/chat/<room>/messages). Only the
-- SHA-256 hash of a key's secret is kept; prefix is the secret's first
-- characters, shown in lists so that an operator can tell keys apart. A
-- key posts as the bot "bot:<bot>" into the rooms whose keys match one of
-- its comma-separated glob patterns (rooms). A revoked key keeps its row,
-- with revoked_at set, so lists still show who had which key; its name
-- may then be given to a new key.
CREATE TABLE api_keys (
	id          INTEGER PRIMARY KEY AUTOINCREMENT,
	name        TEXT    NOT NULL,
	secret_hash BLOB    NOT NULL UNIQUE,
	prefix      TEXT    NOT NULL,
	bot         TEXT    NOT NULL,
	rooms       TEXT    NOT NULL,
	created_by  TEXT    NOT NULL DEFAULT '',  -- username, '' for the command line
	created_at  INTEGER NOT NULL,
	revoked_at  INTEGER                       -- NULL while the key is valid
) STRICT;
CREATE UNIQUE INDEX api_keys_name ON api_keys (name) WHERE revoked_at IS NULL;
