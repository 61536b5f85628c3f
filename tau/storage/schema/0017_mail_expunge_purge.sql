-- Messages expunged from a mailbox while an IMAP session may still show them (issue 21: a
-- message expunged by one session stays readable by sessions whose view still holds it, as in
-- Dovecot). EXPUNGE, MOVE and REST deletes move the row here from messages, with every column
-- FETCH and COPY need; the row keeps its mail_blobs reference until the purge job deletes it
-- after the grace period (tau.mail.store.purge). Quota and the mailbox counters drop at expunge.
CREATE TABLE mail_purge_pending (
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
    expunged_at {bigint} NOT NULL,
    PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX mail_purge_pending_due ON mail_purge_pending(expunged_at);
CREATE INDEX mail_purge_pending_blob ON mail_purge_pending(blob_key);
