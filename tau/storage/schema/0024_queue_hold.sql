-- `tau queue hold ID`: a held row stays in the queue (status 'queued') but the delivery worker
-- does not claim it until `tau queue release ID`. A column rather than a new status, so the
-- status CHECK constraint (and SQLite's table) stay as they are.
ALTER TABLE outbound_queue ADD COLUMN held INTEGER NOT NULL DEFAULT 0;
