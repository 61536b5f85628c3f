-- TauCalendar (issue 6): calendars, calendar object resources, the instance index, the change
-- log behind sync-collection, shares and the iMIP log. Written once for SQLite and PostgreSQL.

-- A user's collections: calendars (kind 'calendar') and the scheduling inbox (kind 'inbox').
-- sync_seq is bumped by every change to a member (ctag and sync-token, RFC 6578); pruned_seq
-- is the newest change whose tombstone was forgotten (older sync tokens must resync).
-- max_span bounds how long any instance in the calendar lasts, so a time-range query is one
-- range scan of the index on start_utc.
CREATE TABLE cal_calendars (
    id {id},
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'calendar',
    display_name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    color TEXT NOT NULL DEFAULT '',
    sort_order {bigint},
    timezone TEXT NOT NULL DEFAULT '',
    components TEXT NOT NULL DEFAULT 'VEVENT,VTODO,VJOURNAL',
    sync_seq {bigint} NOT NULL DEFAULT 0,
    pruned_seq {bigint} NOT NULL DEFAULT 0,
    created_at {bigint} NOT NULL,
    modified_at {bigint} NOT NULL,
    UNIQUE (user_id, name)
);

-- Dead properties of calendars (RFC 4918 §4): the whole property element, keyed by Clark name.
CREATE TABLE cal_props (
    calendar_id {bigint} NOT NULL REFERENCES cal_calendars(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (calendar_id, name)
);

-- Calendar object resources (RFC 4791 §4.1): one UID per resource, one resource per UID in a
-- calendar (no-uid-conflict). data is the iCalendar text as stored. indexed_until is NULL when
-- every instance is in cal_instances, else the start from which instances were not indexed
-- (a rule without end, or one with very many instances): queries past it expand on demand.
CREATE TABLE cal_objects (
    id {id},
    calendar_id {bigint} NOT NULL REFERENCES cal_calendars(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    uid TEXT NOT NULL,
    component TEXT NOT NULL,
    etag TEXT NOT NULL,
    data TEXT NOT NULL,
    size {bigint} NOT NULL,
    indexed_until {bigint},
    created_at {bigint} NOT NULL,
    modified_at {bigint} NOT NULL,
    UNIQUE (calendar_id, name),
    UNIQUE (calendar_id, uid)
);
CREATE INDEX cal_objects_unbounded ON cal_objects(calendar_id, indexed_until);

-- The instance index (RFC 4791 §9.9 ranges, computed at write time): [start_utc, end_utc) per
-- instance. Floating times are stored as wall-clock time read as UTC (floating = 1) and
-- resolved in the query's time zone. long_span marks instances longer than 31 days, which a
-- query finds apart from the others.
CREATE TABLE cal_instances (
    object_id {bigint} NOT NULL REFERENCES cal_objects(id) ON DELETE CASCADE,
    calendar_id {bigint} NOT NULL,
    start_utc {bigint} NOT NULL,
    end_utc {bigint} NOT NULL,
    floating INTEGER NOT NULL DEFAULT 0,
    long_span INTEGER NOT NULL DEFAULT 0,
    busy TEXT NOT NULL DEFAULT '',
    recurrence_id TEXT NOT NULL DEFAULT ''
);
CREATE INDEX cal_instances_range ON cal_instances(calendar_id, long_span, start_utc);
CREATE INDEX cal_instances_object ON cal_instances(object_id);

-- The change log behind sync-collection (RFC 6578): the newest change of each member name.
CREATE TABLE cal_changes (
    calendar_id {bigint} NOT NULL REFERENCES cal_calendars(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    seq {bigint} NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (calendar_id, name)
);
CREATE INDEX cal_changes_seq ON cal_changes(calendar_id, seq);

-- A calendar shared with another local user, read-only ('read') or read-write ('write'); name
-- is the calendar's segment in the grantee's calendar home.
CREATE TABLE cal_shares (
    id {id},
    calendar_id {bigint} NOT NULL REFERENCES cal_calendars(id) ON DELETE CASCADE,
    grantee_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    permission TEXT NOT NULL DEFAULT 'read',
    created_at {bigint} NOT NULL,
    UNIQUE (calendar_id, grantee_id),
    UNIQUE (grantee_id, name)
);

-- iMIP messages already applied to a user's calendars (RFC 6047), so the same message seen
-- twice (delivered, then copied back into INBOX) is applied once.
CREATE TABLE cal_imip_seen (
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    message_key TEXT NOT NULL,
    seen_at {bigint} NOT NULL,
    PRIMARY KEY (user_id, message_key)
);
