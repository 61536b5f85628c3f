-- TauID: domains, users, aliases, app passwords (issue 2).
CREATE TABLE domains (
    id {id},
    name TEXT NOT NULL UNIQUE,
    created_at {bigint} NOT NULL
);

CREATE TABLE users (
    id {id},
    address TEXT NOT NULL UNIQUE,
    domain_id {bigint} NOT NULL REFERENCES domains(id) ON DELETE RESTRICT,
    password_hash TEXT,
    display_name TEXT NOT NULL DEFAULT '',
    disabled INTEGER NOT NULL DEFAULT 0,
    is_admin INTEGER NOT NULL DEFAULT 0,
    quota_bytes {bigint},
    source TEXT NOT NULL DEFAULT 'local',
    created_at {bigint} NOT NULL,
    password_changed_at {bigint} NOT NULL
);
CREATE INDEX users_domain ON users(domain_id);

-- address is a full address, or '@domain' for a catch-all
CREATE TABLE aliases (
    id {id},
    address TEXT NOT NULL,
    domain_id {bigint} NOT NULL REFERENCES domains(id) ON DELETE CASCADE,
    destination TEXT NOT NULL,
    created_at {bigint} NOT NULL,
    UNIQUE (address, destination)
);
CREATE INDEX aliases_domain ON aliases(domain_id);

CREATE TABLE app_passwords (
    id {id},
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at {bigint} NOT NULL,
    last_used_at {bigint}
);
CREATE INDEX app_passwords_user ON app_passwords(user_id);
