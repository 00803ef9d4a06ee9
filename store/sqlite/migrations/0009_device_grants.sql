-- Logins of `sluis connect` (device flow): the client polls with a device
-- code (stored only as a hash) while its user approves the short user code
-- on the portal. On approval the client's new session token waits here,
-- sealed, until the client takes it once.
CREATE TABLE device_grants (
	device_hash  BLOB PRIMARY KEY,
	user_code    TEXT NOT NULL UNIQUE,
	source       TEXT NOT NULL DEFAULT '',
	created_at   INTEGER NOT NULL,
	expires_at   INTEGER NOT NULL,
	state        TEXT NOT NULL DEFAULT 'pending',
	user         TEXT NOT NULL DEFAULT '',
	session_id   TEXT NOT NULL DEFAULT '',
	sealed_token BLOB
) STRICT;
