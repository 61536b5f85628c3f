-- SORT (RFC 5256, RFC 5957) and THREAD (RFC 5256 §2.2) keys, one row per distinct content like
-- message_text: base subject (casefolded) and whether a Re:/Fwd: marker was removed, the first
-- From/To/Cc local parts and display names (casefolded), the Message-ID and the parent msg-ids
-- (References, else the first In-Reply-To; space-separated, oldest first). Written at delivery;
-- messages stored before this table get their row from messages.parsed on their mailbox's first
-- SORT or THREAD (tau.mail.store.sortkeys.backfill: base-subject extraction needs Python).
CREATE TABLE message_sort_keys (
    blob_key TEXT PRIMARY KEY,
    subject TEXT NOT NULL,
    reply INTEGER NOT NULL,
    from_mbox TEXT NOT NULL,
    to_mbox TEXT NOT NULL,
    cc_mbox TEXT NOT NULL,
    display_from TEXT NOT NULL,
    display_to TEXT NOT NULL,
    message_id TEXT NOT NULL,
    refs TEXT NOT NULL
);
-- SORT DATE / ARRIVAL over a whole mailbox reads the index in order
CREATE INDEX messages_sent_date ON messages(mailbox_id, sent_date, uid);
-- SORT on the keys table and THREAD read uid, sent_date and blob_key of every message: from this
-- index alone instead of the wide message rows (about half the time of a 10,000-message THREAD)
CREATE INDEX messages_sort_join ON messages(mailbox_id, uid, sent_date, blob_key);
