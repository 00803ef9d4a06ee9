-- Counters that every node shares (throttles' failures and locks, probes
-- within a window): see sluis.CounterStore. Times in Unix nanoseconds; a
-- row whose expires has passed means nothing and is deleted by
-- PurgeCounters.
CREATE TABLE counters (
	key      text PRIMARY KEY,
	n        integer NOT NULL,
	until_at bigint NOT NULL,
	last_at  bigint NOT NULL,
	expires  bigint NOT NULL
);
CREATE INDEX counters_expires ON counters (expires);

-- Each holder's (node's) share of a count that several nodes add up
-- (a user's open tunnels): see sluis.CounterStore.AddShare.
CREATE TABLE counter_shares (
	key     text NOT NULL,
	holder  text NOT NULL,
	n       integer NOT NULL,
	expires bigint NOT NULL,
	PRIMARY KEY (key, holder)
);

-- Leases on work that one node does at a time (sluis.LeaseStore), by the
-- database server's clock.
CREATE TABLE leases (
	name    text PRIMARY KEY,
	holder  text NOT NULL,
	expires bigint NOT NULL
);
