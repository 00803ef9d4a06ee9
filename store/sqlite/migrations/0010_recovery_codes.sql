-- Single-use recovery codes, stored only as hashes.
CREATE TABLE recovery_codes (
	user    TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
	hash    BLOB NOT NULL,
	used_at INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (user, hash)
) STRICT;
