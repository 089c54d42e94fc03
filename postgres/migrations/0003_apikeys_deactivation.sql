-- 0003: API keys for the HTTP publish API, and deactivated accounts.
--
-- Same tables as the SQLite schema. Times are timestamptz written by chatd
-- from its own clock (microseconds).

-- A deactivated account keeps its data but cannot sign in: SetUserActive
-- deletes its sessions (recording a revocation, so its sockets close), and
-- SessionUser and CreateSession treat it as having none.
ALTER TABLE users ADD COLUMN deactivated boolean NOT NULL DEFAULT false;

-- Keys of the publish API (POST /api/chat/<room>/messages). Only the
-- SHA-256 hash of a key's secret is kept; prefix is the secret's first
-- characters, shown in lists so that an operator can tell keys apart. A
-- key posts as the bot "bot:<bot>" into the rooms whose keys match one of
-- its comma-separated glob patterns (rooms). A revoked key keeps its row,
-- with revoked_at set, so lists still show who had which key; its name
-- may then be given to a new key.
CREATE TABLE api_keys (
	id          bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	name        text        NOT NULL,
	secret_hash bytea       NOT NULL UNIQUE,
	prefix      text        NOT NULL,
	bot         text        NOT NULL,
	rooms       text        NOT NULL,
	created_by  text        NOT NULL DEFAULT '',  -- username, '' for the command line
	created_at  timestamptz NOT NULL,
	revoked_at  timestamptz                       -- NULL while the key is valid
);
CREATE UNIQUE INDEX api_keys_name ON api_keys (name) WHERE revoked_at IS NULL;
