-- Where a user comes from: '' for local users (password here), 'ldap' for
-- directory users (password in the directory, second factor here).
ALTER TABLE users ADD COLUMN source TEXT NOT NULL DEFAULT '';
