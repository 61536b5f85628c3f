-- OpenPGP keys of local users (issue 4): the public key (WKD, encryption to local users) and,
-- optionally, the private key as uploaded, protected by the user's own passphrase (never stored).
CREATE TABLE pgp_keys (
    user_id {bigint} PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    public_key TEXT NOT NULL,
    private_key TEXT,
    wkd_hash TEXT NOT NULL,
    updated_at {bigint} NOT NULL
);
CREATE INDEX pgp_keys_wkd ON pgp_keys(wkd_hash);
