-- Signed checkpoints of the audit chain.
CREATE TABLE audit_checkpoints (
	id        INTEGER PRIMARY KEY AUTOINCREMENT,
	event_id  INTEGER NOT NULL,
	hash      BLOB NOT NULL,
	time      INTEGER NOT NULL,
	signature BLOB NOT NULL
) STRICT;
