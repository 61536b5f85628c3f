-- Cross-service flows (issue 9): the chat digest (unread messages summarised by email).
-- One row per user: every chat message with an id up to last_message_id has been summarised or
-- was already read, so each message is mailed at most once. A node sends a digest only after
-- moving the watermark with UPDATE ... WHERE last_message_id = <what it read>, in the same
-- transaction as the INBOX delivery: in a cluster exactly one node wins each digest.
-- sent_at (milliseconds) spaces digests to one per [flows] chat_digest_after.
CREATE TABLE flow_chat_digest (
    user_id {bigint} PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    last_message_id {bigint} NOT NULL DEFAULT 0,
    sent_at {bigint} NOT NULL DEFAULT 0
);

-- What the digest job asks of the messenger's tables: messages in a time window, a user's
-- read receipts and a user's own messages (both mean "read up to here" in that conversation).
CREATE INDEX msg_messages_created ON msg_messages(created_at);
CREATE INDEX msg_messages_sender ON msg_messages(sender_id, conversation_id, id);
CREATE INDEX msg_receipts_user ON msg_receipts(user_id, kind, message_id);
