-- Browsers that completed a login for a user: their cookie exempts them
-- from the per-user lock that failed attempts from anywhere set. Deleted
-- with the user's sessions (revoke by user, group or all).
CREATE TABLE known_browsers (
	token_hash BLOB PRIMARY KEY,
	id TEXT NOT NULL,
	user TEXT NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX known_browsers_user ON known_browsers(user, created_at);
