-- THREAD keys of a user's content (issue 21): the keyed hashes (the user's index key, purpose
-- "thread") of its base subject, Message-ID and parent msg-ids, and whether the subject was a
-- reply, packed as big-endian 64-bit integers (tau.mail.store.threadkeys). A narrow row of its
-- own: a cold THREAD reads these and the messages' dates only, without decrypting anything and
-- without walking past the sealed body and headers of mail_content. No plaintext: equal hashes
-- only tell that two of one user's messages share an id or a subject, as the token index does.
-- Rows of contents stored before this table are filled by the at-rest converter (and computed
-- on the fly by THREAD meanwhile).
CREATE TABLE mail_thread_keys (
    content_id {bigint} PRIMARY KEY REFERENCES mail_content(id) ON DELETE CASCADE,
    keys {blob} NOT NULL
);

-- The last THREAD result of each mailbox and algorithm over a large set of messages: the
-- flattened thread list (UIDs and parenthesis markers, tau.mail.store.threading.flatten) packed
-- as 64-bit integers, and the SHA-256 of the algorithm, UIDVALIDITY and the exact UIDs it
-- threads. A THREAD after a restart whose matching UIDs hash the same reads it instead of
-- threading again (Dovecot keeps a thread index for the same reason). UIDs and structure only.
CREATE TABLE mail_thread_results (
    mailbox_id {bigint} NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    algorithm TEXT NOT NULL,
    digest {blob} NOT NULL,
    flat {blob} NOT NULL,
    PRIMARY KEY (mailbox_id, algorithm)
);
