-- S/MIME (issue 21, item 6): each user's own certificate and private key (sealed with AES-256-GCM
-- under a key derived from the installation secret, tau.mail.smime), and the certificates each
-- user knows for correspondents (uploaded, or collected from validly signed mail they received).
CREATE TABLE smime_keys (
    user_id {bigint} PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    fingerprint TEXT NOT NULL,
    certificate TEXT NOT NULL,
    private_key TEXT NOT NULL,
    not_after {bigint} NOT NULL,
    updated_at {bigint} NOT NULL
);
CREATE TABLE smime_certs (
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    address TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    certificate TEXT NOT NULL,
    source TEXT NOT NULL,
    not_after {bigint} NOT NULL,
    updated_at {bigint} NOT NULL,
    PRIMARY KEY (user_id, address)
);
