-- PostgreSQL variant of 0017_imap_keywords_recent.sql (only the backfill differs).
-- IMAP session flags (issue #21): the keywords defined in each mailbox, announced by SELECT's
-- FLAGS and PERMANENTFLAGS (RFC 3501 section 7.2.6), and the \Recent high-water mark (section 2.3.2).

-- One row per keyword ever set in a mailbox (kept when no message carries it any more, like
-- Dovecot). folded is the lower-cased keyword (keywords compare case-insensitively); keyword is
-- the first spelling used, which every message of the mailbox then carries.
CREATE TABLE mailbox_keywords (
    mailbox_id {bigint} NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
    folded TEXT NOT NULL,
    keyword TEXT NOT NULL,
    PRIMARY KEY (mailbox_id, folded)
);

-- Messages with uid >= recent_uid are \Recent and not yet claimed by any session: the next
-- session to SELECT the mailbox (or to see them arrive while it has the mailbox selected)
-- moves the mark past them in one atomic update, so exactly one session sees each as recent.
ALTER TABLE mailboxes ADD COLUMN recent_uid {bigint} NOT NULL DEFAULT 1;
UPDATE mailboxes SET recent_uid = uidnext;

-- Keywords already on messages.
INSERT INTO mailbox_keywords (mailbox_id, folded, keyword)
SELECT mailbox_id, lower(word), MIN(word)
FROM (SELECT mailbox_id, regexp_split_to_table(flags, ' ') AS word FROM messages WHERE flags <> '') w
WHERE word <> '' AND left(word, 1) <> '\'
GROUP BY mailbox_id, lower(word);
