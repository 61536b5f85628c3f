-- Registered OAuth clients (issue 13): confidential clients keep a secret (stored as a keyed hash,
-- NULL for public clients); native public clients may use loopback redirects with any port.
ALTER TABLE oauth_clients ADD COLUMN secret_hash TEXT;
ALTER TABLE oauth_clients ADD COLUMN native INTEGER NOT NULL DEFAULT 0
