-- Subscriptions that outlived their mailbox (RFC 3501 §6.3.9: a deleted mailbox's name stays
-- subscribed until UNSUBSCRIBE; RFC 5258 §3: LIST (SUBSCRIBED) shows it as \NonExistent).
-- A row appears when a subscribed mailbox is deleted, goes with UNSUBSCRIBE of the name, and
-- turns back into the mailbox's subscribed flag when a mailbox of that name is created again.
CREATE TABLE mail_lost_subscriptions (
    id {id},
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    UNIQUE (user_id, name)
);
