-- Chat attachments (issue 19): opaque blobs a client encrypted before uploading (Signal's way: a
-- random key per file, sent to the recipients inside the end-to-end encrypted message). The server
-- holds only ciphertext, no name or type; it knows who uploaded it, its size (quota) and the one
-- conversation whose members may download it. The blob itself lives in the blob store
-- (tau.blobs.orphans keeps a referenced one; a deleted row's blob is swept as an orphan).
CREATE TABLE msg_attachments (
    id TEXT PRIMARY KEY,
    owner_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    conversation_id {bigint} NOT NULL REFERENCES msg_conversations(id) ON DELETE CASCADE,
    blob_key TEXT NOT NULL,
    size {bigint} NOT NULL,
    created_at {bigint} NOT NULL
);
CREATE INDEX msg_attachments_owner ON msg_attachments (owner_id);
CREATE INDEX msg_attachments_blob ON msg_attachments (blob_key);
