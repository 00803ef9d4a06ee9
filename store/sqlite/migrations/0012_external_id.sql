-- The immutable id of a directory or identity-provider account behind a
-- user (entryUUID or objectGUID; issuer and subject), so a name taken by
-- another account later is refused instead of trusted.
ALTER TABLE users ADD COLUMN external_id TEXT NOT NULL DEFAULT '';
