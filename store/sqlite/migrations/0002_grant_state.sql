-- A hand-over code is bound to the browser that started the login: the
-- SHA-256 of the state cookie the app host set on it.
ALTER TABLE grants ADD COLUMN state BLOB NOT NULL DEFAULT x'';
