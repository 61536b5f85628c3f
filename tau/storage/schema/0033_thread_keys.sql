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

-- The last THREAD result of each mailbox and algorithm, and its last SORT on sealed keys, over a
-- large set of messages (tau.mail.store.results): kind ("thread:references",
-- "thread:orderedsubject", "sort:<criteria>", a few of those), the SHA-256 of the kind,
-- UIDVALIDITY and the exact UIDs, and the result (UIDs, and parenthesis markers for THREAD, as 64-bit integers)
-- sealed under the owner's data key (a SORT order would tell how subjects or senders compare).
-- The first THREAD or SORT after a restart over the same messages reads it instead of working
-- again (Dovecot keeps sort and thread indexes for the same reason).
CREATE TABLE mail_results (
    mailbox_id {bigint} NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    digest {blob} NOT NULL,
    result {blob} NOT NULL,
    PRIMARY KEY (mailbox_id, kind)
);
