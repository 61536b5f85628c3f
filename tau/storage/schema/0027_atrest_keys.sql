-- Encryption at rest (issue 16): the key hierarchy below the installation secret.
-- A master key per epoch is derived from the secret with the epoch's random salt; `tau keys
-- rotate` starts a new epoch. Each user has data keys (a version per rotation; the active one has
-- no retired_at) and one index key (keyed hashes for lookups and search tokens), each wrapped
-- (AES-256-GCM) by an epoch's master key. Deleting a user drops their keys: crypto-shredding.
CREATE TABLE atrest_epochs (
    id {id},
    salt {blob} NOT NULL,
    created_at {bigint} NOT NULL
);

CREATE TABLE user_keys (
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    version INTEGER NOT NULL,
    epoch {bigint} NOT NULL REFERENCES atrest_epochs(id),
    wrapped {blob} NOT NULL,
    created_at {bigint} NOT NULL,
    retired_at {bigint},
    PRIMARY KEY (user_id, kind, version)
);
CREATE INDEX user_keys_epoch ON user_keys(epoch);
