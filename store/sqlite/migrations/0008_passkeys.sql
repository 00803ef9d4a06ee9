-- Passkeys (WebAuthn credentials). Nothing here is secret: the private
-- keys stay on the users' authenticators.
CREATE TABLE passkeys (
	id           BLOB PRIMARY KEY,
	user         TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
	name         TEXT NOT NULL,
	data         BLOB NOT NULL,
	created_at   INTEGER NOT NULL,
	last_used_at INTEGER NOT NULL DEFAULT 0,
	UNIQUE (user, name)
) STRICT;
CREATE INDEX passkeys_user ON passkeys(user);

-- The WebAuthn user handle: random, so an authenticator's record of it
-- names nobody.
ALTER TABLE users ADD COLUMN passkey_handle BLOB;
CREATE UNIQUE INDEX users_passkey_handle ON users(passkey_handle) WHERE passkey_handle IS NOT NULL;

-- The second factor a session passed last: 'totp' or 'passkey'.
ALTER TABLE sessions ADD COLUMN mfa_method TEXT NOT NULL DEFAULT '';

-- Spent WebAuthn challenges, so no ceremony is replayed.
CREATE TABLE spent_challenges (
	hash       BLOB PRIMARY KEY,
	expires_at INTEGER NOT NULL
) STRICT;
