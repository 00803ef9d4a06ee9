-- The emergency level in force (one row), and the level to return to when
-- a timed level runs out.
CREATE TABLE emergency (
	id       INTEGER PRIMARY KEY CHECK (id = 1),
	level    TEXT NOT NULL,
	reason   TEXT NOT NULL,
	previous TEXT NOT NULL,
	until    INTEGER NOT NULL DEFAULT 0,
	set_by   TEXT NOT NULL,
	set_at   INTEGER NOT NULL
) STRICT;
