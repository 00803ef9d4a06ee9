-- The audit trail is a hash chain: each event's hash covers its fields and
-- the hash of the event before it.
ALTER TABLE audit_events ADD COLUMN prev_hash BLOB NOT NULL DEFAULT x'';
ALTER TABLE audit_events ADD COLUMN hash BLOB NOT NULL DEFAULT x'';
