-- A session made from another one (the `sluis connect` client's, approved
-- from a browser's login) ends when that one is revoked or logs out.
ALTER TABLE sessions ADD COLUMN parent_id TEXT NOT NULL DEFAULT '';
CREATE INDEX sessions_parent ON sessions(parent_id);
