-- Outbound delivery (issue 4): leases for claimed rows, per-recipient progress, delay warnings,
-- the DKIM signature computed once per message, and a journal of (message, recipient) pairs
-- delivered, so a row retried after a crash does not send to a recipient twice.
ALTER TABLE outbound_queue ADD COLUMN lease_until {bigint} NOT NULL DEFAULT 0;
ALTER TABLE outbound_queue ADD COLUMN rcpt_state TEXT;
ALTER TABLE outbound_queue ADD COLUMN warned INTEGER NOT NULL DEFAULT 0;
ALTER TABLE outbound_queue ADD COLUMN signed_headers TEXT;
CREATE INDEX outbound_queue_lease ON outbound_queue(status, lease_until);

-- message_key is the Message-ID (or the blob key when there is none).
CREATE TABLE outbound_sent (
    message_key TEXT NOT NULL,
    rcpt TEXT NOT NULL,
    queue_id {bigint},
    sent_at {bigint} NOT NULL,
    PRIMARY KEY (message_key, rcpt)
);
CREATE INDEX outbound_sent_time ON outbound_sent(sent_at);
