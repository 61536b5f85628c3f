-- Leases of periodic jobs that one node at a time should run (issue 13: the sweeper of blobs no
-- row references). A node runs the job while it holds the row: it takes it when ``until`` has
-- passed (or it is already the holder) with one INSERT ... ON CONFLICT DO UPDATE ... WHERE.
CREATE TABLE job_leases (
    name TEXT PRIMARY KEY,
    holder TEXT NOT NULL,
    until {bigint} NOT NULL
);
