-- Encryption at rest of mail (issue 16). The text columns of messages and mail_purge_pending
-- (envelope, body, bodystructure, subject, from/to/cc/bcc text, message_id, parsed) hold the
-- base64 of a value sealed under the mailbox owner's data key; kv is that key's version (0: a
-- row written before this migration, still plaintext until the at-rest converter seals it).
ALTER TABLE messages ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mail_purge_pending ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;
CREATE INDEX messages_plain ON messages(mailbox_id) WHERE kv = 0;

-- Search text, header rows and SORT/THREAD keys of one content for one user. They replace the
-- shared per-blob rows of message_text, message_headers and message_sort_keys (one blob may be
-- delivered to several users, and each user's rows are sealed under that user's key): body,
-- headers (JSON [[name, value], ...]) and sort (JSON of the keys) are sealed; indexed = 0 when
-- the content had too many distinct words for the token index (then every search verifies it).
CREATE TABLE mail_content (
    id {id},
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    blob_key TEXT NOT NULL,
    kv INTEGER NOT NULL,
    indexed INTEGER NOT NULL,
    body {blob} NOT NULL,
    headers {blob} NOT NULL,
    sort {blob} NOT NULL,
    UNIQUE (user_id, blob_key)
);
CREATE INDEX mail_content_blob ON mail_content(blob_key);
CREATE INDEX mail_content_unindexed ON mail_content(user_id) WHERE indexed = 0;

-- The keyed token index: HMAC (the user's index key) of each normalised word and word prefix of
-- a content's headers and body; SEARCH finds candidates here and verifies them by decrypting.
CREATE TABLE mail_tokens (
    token {bigint} NOT NULL,
    content_id {bigint} NOT NULL REFERENCES mail_content(id) ON DELETE CASCADE,
    PRIMARY KEY (token, content_id)
);
CREATE INDEX mail_tokens_content ON mail_tokens(content_id);

-- Mailbox names (and subscriptions kept after their mailbox went): name holds the keyed lookup
-- hash of the name once kv > 0, sealed_name the base64 sealed name, parent the lookup hash of
-- the parent's name (tau.mail.store.boxnames).
ALTER TABLE mailboxes ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN sealed_name TEXT;
ALTER TABLE mailboxes ADD COLUMN parent TEXT;
CREATE INDEX mailboxes_parent ON mailboxes(user_id, parent);
ALTER TABLE mail_lost_subscriptions ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mail_lost_subscriptions ADD COLUMN sealed_name TEXT;

-- Sieve scripts: content holds the base64 of the script sealed under the owner's data key once
-- kv > 0; size is the script's length in characters (quota, HAVESPACE) without decrypting.
ALTER TABLE sieve_scripts ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;
ALTER TABLE sieve_scripts ADD COLUMN size {bigint} NOT NULL DEFAULT 0;

-- OpenPGP private keys (their user-id packets are not covered by the passphrase): private_key
-- holds the base64 of it sealed under the owner's data key once kv > 0. Public keys stay
-- readable: Web Key Directory publishes them.
ALTER TABLE pgp_keys ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;
