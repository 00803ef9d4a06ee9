-- The console's and the API's audit search (newest first, by time then ID,
-- filtered by type, user, source or app) and its counts per type and hour
-- read these instead of the whole trail; each ends with (time, id), the
-- order of a page.
CREATE INDEX audit_events_time_id ON audit_events (time, id);
CREATE INDEX audit_events_type_time ON audit_events (type, time, id);
CREATE INDEX audit_events_user_time ON audit_events (user_name, time, id);
CREATE INDEX audit_events_source_time ON audit_events (source, time, id);
CREATE INDEX audit_events_app_time ON audit_events (app, time, id);
-- A help desk's search by the error ID a user reads out: the gateway ends
-- the detail of a refusal with "error ID " and the page's ID (12 hex
-- digits), so the last 12 characters of such details are indexed.
CREATE INDEX audit_events_error_id ON audit_events (right(detail, 12)) WHERE strpos(detail, 'error ID ') > 0;
