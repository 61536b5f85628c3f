-- TauCloud (issue 5): the file tree. Content lives in the blob store (content-addressed,
-- encrypted); everything a listing or PROPFIND needs is here, so a folder is one query.
-- Written once for SQLite and PostgreSQL.

-- Per-user accounting: bytes used (quota), the root folder and the sync sequence. Every write
-- transaction bumps sync_seq first, which also serialises one user's writes (quota checks).
CREATE TABLE file_usage (
    user_id {bigint} PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    root_id {bigint},
    bytes {bigint} NOT NULL DEFAULT 0,
    sync_seq {bigint} NOT NULL DEFAULT 0,
    pruned_seq {bigint} NOT NULL DEFAULT 0
);

-- Files and folders. A user's root has parent_id NULL and name ''. Deleting a folder cascades.
CREATE TABLE file_nodes (
    id {id},
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    parent_id {bigint} REFERENCES file_nodes(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL,
    size {bigint} NOT NULL DEFAULT 0,
    etag TEXT NOT NULL,
    blob_key TEXT,
    content_type TEXT NOT NULL DEFAULT '',
    created_at {bigint} NOT NULL,
    modified_at {bigint} NOT NULL,
    UNIQUE (parent_id, name)
);
CREATE INDEX file_nodes_user ON file_nodes(user_id);
CREATE INDEX file_nodes_blob ON file_nodes(blob_key);

-- Dead properties (RFC 4918 §4): the whole property element as XML, keyed by Clark name.
CREATE TABLE file_props (
    node_id {bigint} NOT NULL REFERENCES file_nodes(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (node_id, name)
);

-- Reference counts of the blobs file rows use. A blob is deleted only by the transaction that
-- deletes its row here; a transaction that creates the row checks that the blob still exists.
CREATE TABLE file_blobs (
    blob_key TEXT PRIMARY KEY,
    refs {bigint} NOT NULL
);

-- The change log behind sync-collection (RFC 6578): one row per member added, changed or
-- removed, keyed by the folder it is (or was) in. parent_id has no foreign key: the log
-- outlives deleted folders. Only the newest changes per user are kept (file_usage.pruned_seq
-- marks the cut); a sync token older than that gets valid-sync-token and the client resyncs.
CREATE TABLE file_changes (
    id {id},
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    seq {bigint} NOT NULL,
    parent_id {bigint} NOT NULL,
    name TEXT NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX file_changes_parent ON file_changes(parent_id, seq);
CREATE INDEX file_changes_user ON file_changes(user_id, seq);

-- Shares: a public link (token set, grantee NULL) or a share with another user (grantee set).
-- Public links keep only a hash of their token.
CREATE TABLE file_shares (
    id {id},
    owner_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    node_id {bigint} NOT NULL REFERENCES file_nodes(id) ON DELETE CASCADE,
    token_hash TEXT UNIQUE,
    grantee_id {bigint} REFERENCES users(id) ON DELETE CASCADE,
    permission TEXT NOT NULL DEFAULT 'read',
    password_hash TEXT,
    can_upload INTEGER NOT NULL DEFAULT 0,
    expires_at {bigint},
    created_at {bigint} NOT NULL,
    UNIQUE (node_id, grantee_id)
);
CREATE INDEX file_shares_grantee ON file_shares(grantee_id);
CREATE INDEX file_shares_owner ON file_shares(owner_id);
