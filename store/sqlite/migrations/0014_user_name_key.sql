-- One name, one person: names are looked up and compared without regard
-- to case. Stored names are ASCII (canonical names, and older names that
-- ValidName allowed), for which SQLite's lower() is the whole folding.
-- Not UNIQUE: a store that already holds twins (Alice and alice) must
-- still open; CreateUser refuses new twins.
CREATE INDEX users_name_key ON users(lower(name));
