-- The console's and the API's audit search (newest first, by time then ID,
-- filtered by type, user, source or app) and its counts per type and hour
-- read these instead of the whole trail. SQLite ends every index with the
-- row's ID, so each also gives the order of a page.
CREATE INDEX audit_events_type_time ON audit_events(type, time);
CREATE INDEX audit_events_user_time ON audit_events(user, time);
CREATE INDEX audit_events_source_time ON audit_events(source, time);
CREATE INDEX audit_events_app_time ON audit_events(app, time);
-- A help desk's search by the error ID a user reads out: the gateway ends
-- the detail of a refusal with "error ID " and the page's ID (12 hex
-- digits), so the last 12 characters of such details are indexed.
CREATE INDEX audit_events_error_id ON audit_events(substr(detail, -12)) WHERE instr(detail, 'error ID ') > 0;
