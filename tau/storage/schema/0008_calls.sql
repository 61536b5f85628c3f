-- TauConnect (issue 8): call rooms, who is invited, who is in the room right now.
-- A call id is random and unguessable (it appears in join links); knowing it grants nothing:
-- every join is checked against call_participants.

-- status: ringing | active | ended (ended is final). mode: p2p | sfu. Times in ms since the epoch.
CREATE TABLE calls (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL DEFAULT '',
    host_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    mode TEXT NOT NULL,
    status TEXT NOT NULL,
    scheduled_for {bigint},
    created_at {bigint} NOT NULL,
    started_at {bigint},
    ended_at {bigint},
    updated_at {bigint} NOT NULL
);
CREATE INDEX calls_created ON calls(created_at);

-- One row per invitee: a local user (user_id) or a guest (guest_token_hash, the SHA-256 of the
-- token in the guest's join link). participant_id is stable for the call's lifetime, so a client
-- that reconnects keeps its identity in the room. conn names the live signaling session while
-- state = 'joined' (a late close of a replaced socket must not remove its successor).
-- state: invited | joined | left | declined.
CREATE TABLE call_participants (
    id {id},
    call_id TEXT NOT NULL REFERENCES calls(id) ON DELETE CASCADE,
    participant_id TEXT NOT NULL UNIQUE,
    user_id {bigint} REFERENCES users(id) ON DELETE CASCADE,
    guest_name TEXT,
    guest_token_hash TEXT UNIQUE,
    role TEXT NOT NULL,
    state TEXT NOT NULL,
    conn TEXT,
    audio_muted INTEGER NOT NULL DEFAULT 0,
    video_muted INTEGER NOT NULL DEFAULT 0,
    hand_raised INTEGER NOT NULL DEFAULT 0,
    joined_at {bigint},
    left_at {bigint},
    UNIQUE (call_id, user_id)
);
CREATE INDEX call_participants_user ON call_participants(user_id);
