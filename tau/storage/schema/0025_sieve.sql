-- Sieve (RFC 5228) scripts per user, managed over ManageSieve (RFC 5804) and the REST API; at most
-- one is active (the one run at local delivery). Vacation (RFC 5230) remembers whom it answered:
-- one row per (user, sender, handle) until the period ends, so a sender gets one reply per period.
CREATE TABLE sieve_scripts (
    id {id},
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    content TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 0,
    updated_at {bigint} NOT NULL,
    UNIQUE (user_id, name)
);
CREATE TABLE sieve_vacation_seen (
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    sender TEXT NOT NULL,
    handle TEXT NOT NULL,
    until {bigint} NOT NULL,
    PRIMARY KEY (user_id, sender, handle)
);
