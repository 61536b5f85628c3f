-- OAuth2: refresh-token families (rotation, reuse detection), authorization codes (PKCE), clients.
CREATE TABLE refresh_tokens (
    id {id},
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    family TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    client_id TEXT NOT NULL DEFAULT '',
    scope TEXT NOT NULL DEFAULT '',
    created_at {bigint} NOT NULL,
    expires_at {bigint} NOT NULL,
    used_at {bigint},
    revoked INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX refresh_tokens_family ON refresh_tokens(family);
CREATE INDEX refresh_tokens_user ON refresh_tokens(user_id);

CREATE TABLE auth_codes (
    code_hash TEXT PRIMARY KEY,
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    client_id TEXT NOT NULL,
    redirect_uri TEXT NOT NULL,
    code_challenge TEXT NOT NULL,
    scope TEXT NOT NULL DEFAULT '',
    expires_at {bigint} NOT NULL,
    used INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE oauth_clients (
    client_id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    redirect_uris TEXT NOT NULL,
    created_at {bigint} NOT NULL
);
