-- Files in the web app (issue 19, item 5): trash, versions and resumable chunked uploads.

-- The trash: a second parentless folder per user (file_usage.trash_id), out of reach of every path,
-- so WebDAV and REST never list it. A trashed node keeps its row (and its bytes count against the
-- quota) until purged; file_trash remembers where it was, the original path sealed at rest.
ALTER TABLE file_usage ADD COLUMN trash_id {bigint};

CREATE TABLE file_trash (
    id {id},
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    node_id {bigint} NOT NULL UNIQUE REFERENCES file_nodes(id) ON DELETE CASCADE,
    path_s {blob} NOT NULL,
    kv INTEGER NOT NULL DEFAULT 0,
    deleted_at {bigint} NOT NULL
);
CREATE INDEX file_trash_user ON file_trash(user_id, deleted_at);
CREATE INDEX file_trash_deleted ON file_trash(deleted_at);

-- Earlier contents of a file, newest last; each row holds a reference to its blob (file_blobs).
CREATE TABLE file_versions (
    id {id},
    node_id {bigint} NOT NULL REFERENCES file_nodes(id) ON DELETE CASCADE,
    blob_key TEXT NOT NULL,
    size {bigint} NOT NULL,
    content_type TEXT NOT NULL DEFAULT '',
    modified_at {bigint} NOT NULL,
    created_at {bigint} NOT NULL
);
CREATE INDEX file_versions_node ON file_versions(node_id, id);
CREATE INDEX file_versions_blob ON file_versions(blob_key);

-- Resumable uploads: the target path (sealed), the declared size and the bytes committed so far,
-- held as one blob per chunk (each part row references its blob) until the upload completes.
CREATE TABLE file_uploads (
    id TEXT PRIMARY KEY,
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    path_s {blob} NOT NULL,
    kv INTEGER NOT NULL DEFAULT 0,
    size {bigint} NOT NULL,
    committed {bigint} NOT NULL DEFAULT 0,
    content_type TEXT NOT NULL DEFAULT '',
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL
);
CREATE INDEX file_uploads_user ON file_uploads(user_id);
CREATE INDEX file_uploads_updated ON file_uploads(updated_at);

CREATE TABLE file_upload_parts (
    upload_id TEXT NOT NULL REFERENCES file_uploads(id) ON DELETE CASCADE,
    start_at {bigint} NOT NULL,
    size {bigint} NOT NULL,
    blob_key TEXT NOT NULL,
    PRIMARY KEY (upload_id, start_at)
);
CREATE INDEX file_upload_parts_blob ON file_upload_parts(blob_key);
