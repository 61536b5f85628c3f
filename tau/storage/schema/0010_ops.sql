-- Operations (issue 10): TOTP two-factor secrets and one-time recovery codes.
-- The secret is encrypted with a key derived from the installation secret (AES-256-GCM), so a
-- database dump alone does not reveal it; recovery codes are stored as keyed HMACs only.
CREATE TABLE totp_secrets (
    user_id {bigint} PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    secret TEXT NOT NULL,
    enabled INTEGER NOT NULL DEFAULT 0,
    last_step {bigint} NOT NULL DEFAULT 0,
    created_at {bigint} NOT NULL
);

CREATE TABLE totp_recovery (
    id {id},
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    code_hash TEXT NOT NULL UNIQUE,
    used_at {bigint}
);
CREATE INDEX totp_recovery_user ON totp_recovery(user_id);
