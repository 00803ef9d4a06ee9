-- Source addresses refused at the front door: by the operator (sluis block
-- add) or automatically after repeated probes.
CREATE TABLE blocks (
	cidr       TEXT PRIMARY KEY,
	reason     TEXT NOT NULL,
	until      INTEGER NOT NULL DEFAULT 0, -- 0: until removed
	auto       INTEGER NOT NULL DEFAULT 0,
	created_at INTEGER NOT NULL
) STRICT;
