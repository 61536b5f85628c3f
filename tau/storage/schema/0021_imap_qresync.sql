-- QRESYNC (RFC 7162 section 3.2): expunge tombstones (table ``expunged``) are pruned to the latest
-- ones per mailbox (tau.mail.store.tombstones); this row keeps the highest MODSEQ pruned so far.
-- A client resynchronising from a MODSEQ below it cannot be answered from the tombstones and is
-- told instead that every UID it may know of and that is not present any more has vanished.
CREATE TABLE expunged_floor (
    mailbox_id {bigint} PRIMARY KEY REFERENCES mailboxes(id) ON DELETE CASCADE,
    modseq {bigint} NOT NULL
);
