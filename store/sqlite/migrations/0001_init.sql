CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value INTEGER NOT NULL
) STRICT;
INSERT INTO meta (key, value) VALUES ('revision', 1);

CREATE TABLE users (
	name           TEXT PRIMARY KEY,
	groups         TEXT NOT NULL DEFAULT '',
	password_hash  TEXT NOT NULL DEFAULT '',
	disabled       INTEGER NOT NULL DEFAULT 0,
	totp_secret    BLOB,
	totp_last_step INTEGER NOT NULL DEFAULT 0,
	created_at     INTEGER NOT NULL
) STRICT;

CREATE TABLE sessions (
	id            TEXT PRIMARY KEY,
	user          TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
	stage         TEXT NOT NULL,
	created_at    INTEGER NOT NULL,
	last_seen     INTEGER NOT NULL,
	expires_at    INTEGER NOT NULL,
	mfa_at        INTEGER NOT NULL DEFAULT 0,
	source        TEXT NOT NULL DEFAULT '',
	user_agent    TEXT NOT NULL DEFAULT '',
	enroll_secret BLOB,
	revoked_at    INTEGER NOT NULL DEFAULT 0
) STRICT;
CREATE INDEX sessions_user ON sessions(user);

-- Tokens are stored only as SHA-256 hashes, each bound to the one host its
-- cookie is set for.
CREATE TABLE session_tokens (
	hash       BLOB PRIMARY KEY,
	session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
	host       TEXT NOT NULL
) STRICT;
CREATE INDEX session_tokens_session ON session_tokens(session_id);

-- Single-use codes that carry a portal session to an app host.
CREATE TABLE grants (
	hash       BLOB PRIMARY KEY,
	session_id TEXT NOT NULL REFERENCES sessions(id) ON DELETE CASCADE,
	host       TEXT NOT NULL,
	path       TEXT NOT NULL,
	expires_at INTEGER NOT NULL
) STRICT;

CREATE TABLE audit_events (
	id      INTEGER PRIMARY KEY AUTOINCREMENT,
	time    INTEGER NOT NULL,
	type    TEXT NOT NULL,
	user    TEXT NOT NULL DEFAULT '',
	source  TEXT NOT NULL DEFAULT '',
	app     TEXT NOT NULL DEFAULT '',
	outcome TEXT NOT NULL DEFAULT '',
	detail  TEXT NOT NULL DEFAULT ''
) STRICT;
CREATE INDEX audit_events_time ON audit_events(time);
