-- A user's email address and display name, for apps that take them from
-- the gateway (an app's identity_headers). '' when unknown.
ALTER TABLE users ADD COLUMN email TEXT NOT NULL DEFAULT '';
ALTER TABLE users ADD COLUMN display_name TEXT NOT NULL DEFAULT '';
