-- Apps an operator switched off (sluis app disable), with the reason shown
-- to users.
CREATE TABLE disabled_apps (
	name       TEXT PRIMARY KEY,
	reason     TEXT NOT NULL,
	changed_at INTEGER NOT NULL
) STRICT;
