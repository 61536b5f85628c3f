-- Encryption at rest of calendars, contacts, files and the messenger (issue 16). Each table that
-- holds what a user wrote gets its sealed form next to the old column and `kv`, the data-key
-- version it is sealed under (0: a row from before, still in plaintext; the converter seals it).
-- Once sealed, a name column holds the keyed lookup hash of the name (paths and uniqueness keep
-- their indexes) and a text column holds ''.
ALTER TABLE file_nodes ADD COLUMN name_s {blob};
ALTER TABLE file_nodes ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;
ALTER TABLE file_changes ADD COLUMN name_s {blob};
ALTER TABLE file_changes ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;

ALTER TABLE cal_calendars ADD COLUMN sealed {blob};
ALTER TABLE cal_calendars ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cal_objects ADD COLUMN meta_s {blob};
ALTER TABLE cal_objects ADD COLUMN data_s {blob};
ALTER TABLE cal_objects ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;
ALTER TABLE cal_changes ADD COLUMN name_s {blob};
ALTER TABLE cal_changes ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;

ALTER TABLE ab_books ADD COLUMN sealed {blob};
ALTER TABLE ab_books ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ab_cards ADD COLUMN meta_s {blob};
ALTER TABLE ab_cards ADD COLUMN data_s {blob};
ALTER TABLE ab_cards ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ab_index ADD COLUMN value_s {blob};
ALTER TABLE ab_index ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;
ALTER TABLE ab_changes ADD COLUMN name_s {blob};
ALTER TABLE ab_changes ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;

-- A conversation's title is sealed under its creator's key, a message's body (plaintext
-- conversations only) and attachment list under its sender's: key_user keeps who, even once
-- created_by / sender_id were set NULL (that user's keys, and so the value, are then shredded).
ALTER TABLE msg_conversations ADD COLUMN title_s {blob};
ALTER TABLE msg_conversations ADD COLUMN key_user {bigint};
ALTER TABLE msg_conversations ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;
ALTER TABLE msg_messages ADD COLUMN body_s {blob};
ALTER TABLE msg_messages ADD COLUMN attachments_s {blob};
ALTER TABLE msg_messages ADD COLUMN key_user {bigint};
ALTER TABLE msg_messages ADD COLUMN kv INTEGER NOT NULL DEFAULT 0;
UPDATE msg_conversations SET key_user = created_by;
UPDATE msg_messages SET key_user = sender_id;
