-- TauMessenger (issue 7): a Signal-style relay. Public key bundles, conversations, message
-- metadata, and per-device delivery queues of ciphertext deleted once the device acknowledges.
-- No private key, message key or E2E plaintext is ever stored here; msg_messages.body holds text
-- only for conversations created with encrypted = 0 (bots and integrations).

-- One row per (user, device): the X3DH identity key (Ed25519, also used for DH through the
-- birational map to X25519) and the current signed prekey with its signature.
-- registration_id changes whenever the identity key does, so a sender can be told its
-- sessions with that device are stale (Signal-Server's 410 staleDevices).
CREATE TABLE msg_devices (
    id {id},
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id {bigint} NOT NULL,
    registration_id {bigint} NOT NULL,
    identity_key TEXT NOT NULL,
    signed_prekey_id {bigint} NOT NULL,
    signed_prekey TEXT NOT NULL,
    signed_prekey_signature TEXT NOT NULL,
    created_at {bigint} NOT NULL,
    updated_at {bigint} NOT NULL,
    UNIQUE (user_id, device_id)
);

-- One-time prekeys: each row is handed out once and deleted in the same transaction.
CREATE TABLE msg_prekeys (
    id {id},
    device_ref {bigint} NOT NULL REFERENCES msg_devices(id) ON DELETE CASCADE,
    key_id {bigint} NOT NULL,
    public_key TEXT NOT NULL,
    UNIQUE (device_ref, key_id)
);

-- kind: direct | group. direct_key ("a|b|e" / "a|b|p", user ids sorted) makes direct
-- conversations unique per pair and encryption mode.
CREATE TABLE msg_conversations (
    id {id},
    kind TEXT NOT NULL,
    encrypted INTEGER NOT NULL,
    title TEXT NOT NULL DEFAULT '',
    direct_key TEXT UNIQUE,
    created_by {bigint} REFERENCES users(id) ON DELETE SET NULL,
    created_at {bigint} NOT NULL
);

CREATE TABLE msg_members (
    conversation_id {bigint} NOT NULL REFERENCES msg_conversations(id) ON DELETE CASCADE,
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    role TEXT NOT NULL DEFAULT 'member',
    joined_at {bigint} NOT NULL,
    PRIMARY KEY (conversation_id, user_id)
);
CREATE INDEX msg_members_user ON msg_members(user_id);

-- created_at in milliseconds (server time). body: plaintext conversations only.
-- attachments: JSON list of TauCloud file references ({"file_id", ...}), never keys.
CREATE TABLE msg_messages (
    id {id},
    conversation_id {bigint} NOT NULL REFERENCES msg_conversations(id) ON DELETE CASCADE,
    sender_id {bigint} REFERENCES users(id) ON DELETE SET NULL,
    sender_device {bigint} NOT NULL DEFAULT 0,
    created_at {bigint} NOT NULL,
    body TEXT,
    attachments TEXT
);
CREATE INDEX msg_messages_conversation ON msg_messages(conversation_id, id);

-- Per-device delivery queue; envelope is the opaque ciphertext for that one device (NULL for
-- plaintext conversations). Rows are deleted when the device acknowledges them.
CREATE TABLE msg_queue (
    id {id},
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    device_id {bigint} NOT NULL,
    message_id {bigint} NOT NULL REFERENCES msg_messages(id) ON DELETE CASCADE,
    envelope TEXT,
    UNIQUE (user_id, device_id, message_id)
);
CREATE INDEX msg_queue_message ON msg_queue(message_id);

-- kind: delivered | read; one row per message, user and kind.
CREATE TABLE msg_receipts (
    message_id {bigint} NOT NULL REFERENCES msg_messages(id) ON DELETE CASCADE,
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    created_at {bigint} NOT NULL,
    PRIMARY KEY (message_id, user_id, kind)
);
