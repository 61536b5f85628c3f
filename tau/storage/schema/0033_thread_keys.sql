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
