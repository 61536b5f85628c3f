-- TauMail (issue 3): the message store. Raw RFC 5322 bytes live in the blob store; everything
-- IMAP needs per message is parsed once at delivery and kept here (see tau/mail/store).
-- Written once for SQLite and PostgreSQL: no dialect-specific syntax below.

-- Per-user mail accounting: quota usage (bytes, messages) and the UIDVALIDITY allocator.
-- last_uidvalidity only grows, so a deleted and re-created mailbox never reuses a value
-- (RFC 3501 section 2.3.1.1). The row is also the lock that serialises quota checks.
CREATE TABLE mail_usage (
    user_id {bigint} PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    bytes {bigint} NOT NULL DEFAULT 0,
    messages {bigint} NOT NULL DEFAULT 0,
    last_uidvalidity {bigint} NOT NULL DEFAULT 0
);

-- One row per mailbox; name is the full path with "/" as delimiter, "INBOX" canonical.
-- messages/unseen/size are maintained in the same transactions as the message rows, so
-- STATUS and SELECT never count rows.
CREATE TABLE mailboxes (
    id {id},
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    special_use TEXT,
    uidvalidity {bigint} NOT NULL,
    uidnext {bigint} NOT NULL DEFAULT 1,
    highestmodseq {bigint} NOT NULL DEFAULT 1,
    subscribed INTEGER NOT NULL DEFAULT 0,
    messages {bigint} NOT NULL DEFAULT 0,
    unseen {bigint} NOT NULL DEFAULT 0,
    size {bigint} NOT NULL DEFAULT 0,
    created_at {bigint} NOT NULL,
    UNIQUE (user_id, name)
);

-- One row per message in a mailbox. flags is the canonical space-separated flag list; seen and
-- deleted mirror \Seen and \Deleted for the unseen counter and EXPUNGE. Search columns
-- (subject, *_text) are str.casefold()ed at delivery so matching is case-insensitive for all of
-- Unicode on both engines. sent_date is the Date: header (internal date when missing), sent_day
-- the UTC midnight of the header's own calendar date (SENTBEFORE/SENTON/SENTSINCE).
CREATE TABLE messages (
    id {id},
    mailbox_id {bigint} NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid {bigint} NOT NULL,
    modseq {bigint} NOT NULL,
    flags TEXT NOT NULL DEFAULT '',
    seen INTEGER NOT NULL DEFAULT 0,
    deleted INTEGER NOT NULL DEFAULT 0,
    internal_date {bigint} NOT NULL,
    size {bigint} NOT NULL,
    blob_key TEXT NOT NULL,
    envelope TEXT NOT NULL,
    body TEXT NOT NULL,
    bodystructure TEXT NOT NULL,
    subject TEXT NOT NULL DEFAULT '',
    from_text TEXT NOT NULL DEFAULT '',
    to_text TEXT NOT NULL DEFAULT '',
    cc_text TEXT NOT NULL DEFAULT '',
    bcc_text TEXT NOT NULL DEFAULT '',
    message_id TEXT,
    sent_date {bigint} NOT NULL,
    sent_day {bigint} NOT NULL,
    parsed TEXT NOT NULL,
    UNIQUE (mailbox_id, uid)
);
CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
CREATE INDEX messages_blob ON messages(blob_key);
CREATE INDEX messages_deleted ON messages(mailbox_id, uid) WHERE deleted = 1;

-- Reference counts of the blobs used by messages and outbound_queue rows (content addressing
-- means one blob may back many rows). A blob is deleted only by a transaction that deletes its
-- row here while refs = 0, which serialises with any delivery re-using the same content.
CREATE TABLE mail_blobs (
    blob_key TEXT PRIMARY KEY,
    refs {bigint} NOT NULL
);

-- Body text for SEARCH BODY/TEXT (casefolded), one row per distinct content, kept out of the
-- messages rows so that FETCH and SELECT scan small rows.
CREATE TABLE message_text (
    blob_key TEXT PRIMARY KEY,
    body TEXT NOT NULL
);

-- Every header field (lower-case name, decoded and casefolded value) for SEARCH HEADER/TEXT.
CREATE TABLE message_headers (
    blob_key TEXT NOT NULL,
    position INTEGER NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (blob_key, position)
);

-- Expunged UIDs with the MODSEQ of their removal, for QRESYNC VANISHED (RFC 7162 section 3.2).
CREATE TABLE expunged (
    mailbox_id {bigint} NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    uid {bigint} NOT NULL,
    modseq {bigint} NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX expunged_modseq ON expunged(mailbox_id, modseq);

-- Mail waiting to go to remote domains (SMTP submission, POST /api/emails). rcpt_to is a JSON
-- array of addresses. Each row holds a reference on its blob (mail_blobs).
CREATE TABLE outbound_queue (
    id {id},
    user_id {bigint} REFERENCES users(id) ON DELETE SET NULL,
    mail_from TEXT NOT NULL,
    rcpt_to TEXT NOT NULL,
    blob_key TEXT NOT NULL,
    size {bigint} NOT NULL,
    message_id TEXT,
    created_at {bigint} NOT NULL,
    next_attempt_at {bigint} NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL DEFAULT 'queued',
    last_error TEXT,
    CHECK (status IN ('queued', 'sending', 'sent', 'failed'))
);
CREATE INDEX outbound_queue_due ON outbound_queue(status, next_attempt_at);
CREATE INDEX outbound_queue_blob ON outbound_queue(blob_key);
