-- Encryption at rest, what was left readable (issue 16): Sieve script names, the outbound queue's
-- error texts, and WebDAV dead properties of files and folders.
--
-- sieve_scripts.name_s: the name sealed under the owner's data key; once set, `name` holds the
-- keyed lookup hash of the name (UNIQUE (user_id, name) and lookups by name keep working).
ALTER TABLE sieve_scripts ADD COLUMN name_s {blob};

-- outbound_queue: last_error and the per-recipient replies (rcpt_state) are what remote servers
-- answered. error_s / state_s hold them sealed, under key_user's data key (the submitting user,
-- kept when user_id is set NULL) or, for mail the server itself sends (no user), under the system
-- key (key_user NULL); kv the data-key version (0: a row from before, still in plaintext).
ALTER TABLE outbound_queue ADD COLUMN error_s {blob};
ALTER TABLE outbound_queue ADD COLUMN state_s {blob};
ALTER TABLE outbound_queue ADD COLUMN key_user {bigint};
ALTER TABLE outbound_queue ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;
UPDATE outbound_queue SET key_user = user_id;

-- file_props: the property element sealed under the node owner's data key; `value` is then ''.
-- Property names (namespaced XML names a client chose) stay readable: PROPFIND asks for them.
ALTER TABLE file_props ADD COLUMN value_s {blob};
ALTER TABLE file_props ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;
