-- Sessions (refresh-token families) whose access tokens must stop working before they expire
-- (issue 13): refresh-token reuse, RFC 7009 revocation, password or two-factor change, a disabled
-- or deleted account. Every node keeps the recent rows in memory and asks for new ones every few
-- seconds with one indexed query on revoked_at; rows older than the longest access-token
-- lifetime protect nothing and are purged. No foreign key: a deleted user's rows must stay.
CREATE TABLE revoked_families (
    family TEXT PRIMARY KEY,
    user_id {bigint},
    revoked_at {bigint} NOT NULL
);
CREATE INDEX revoked_families_at ON revoked_families(revoked_at);
