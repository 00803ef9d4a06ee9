-- Counters that every node would share (throttles' failures and locks, probes
-- within a window): see sluis.CounterStore. Times in Unix nanoseconds; a
-- row whose expires has passed means nothing and is deleted by
-- PurgeCounters.
CREATE TABLE counters (
	key      TEXT PRIMARY KEY,
	n        INTEGER NOT NULL,
	until_at INTEGER NOT NULL,
	last_at  INTEGER NOT NULL,
	expires  INTEGER NOT NULL
) STRICT;
CREATE INDEX counters_expires ON counters (expires);

-- Each holder's share of a count that several nodes would add up (a
-- user's open tunnels): see sluis.CounterStore.AddShare.
CREATE TABLE counter_shares (
	key     TEXT NOT NULL,
	holder  TEXT NOT NULL,
	n       INTEGER NOT NULL,
	expires INTEGER NOT NULL,
	PRIMARY KEY (key, holder)
) STRICT;

-- Leases on work that one node does at a time (sluis.LeaseStore).
CREATE TABLE leases (
	name    TEXT PRIMARY KEY,
	holder  TEXT NOT NULL,
	expires INTEGER NOT NULL
) STRICT;
