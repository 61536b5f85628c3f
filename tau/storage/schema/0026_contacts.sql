-- TauContacts (issue 17): address books, vCards, the search index, the change log behind
-- sync-collection, shares and per-user settings. Written once for SQLite and PostgreSQL.

-- A user's address books: the default "contacts", the "collected" book (people the user mailed)
-- and any created with extended MKCOL. sync_seq is bumped by every change to a member (ctag and
-- sync-token, RFC 6578); pruned_seq is the newest change whose tombstone was forgotten.
CREATE TABLE ab_books (
    id {id},
    user_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    kind TEXT NOT NULL DEFAULT 'book',
    display_name TEXT NOT NULL DEFAULT '',
    description TEXT NOT NULL DEFAULT '',
    sync_seq {bigint} NOT NULL DEFAULT 0,
    pruned_seq {bigint} NOT NULL DEFAULT 0,
    created_at {bigint} NOT NULL,
    modified_at {bigint} NOT NULL,
    UNIQUE (user_id, name)
);

CREATE TABLE ab_props (
    book_id {bigint} NOT NULL REFERENCES ab_books(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (book_id, name)
);

-- Address object resources (RFC 6352 §5.1): data is the vCard exactly as the client sent it;
-- fn is its formatted name (sorting, REST).
CREATE TABLE ab_cards (
    id {id},
    book_id {bigint} NOT NULL REFERENCES ab_books(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    uid TEXT NOT NULL,
    etag TEXT NOT NULL,
    fn TEXT NOT NULL DEFAULT '',
    data TEXT NOT NULL,
    size {bigint} NOT NULL,
    created_at {bigint} NOT NULL,
    modified_at {bigint} NOT NULL,
    UNIQUE (book_id, name),
    UNIQUE (book_id, uid)
);

-- What addressbook-query and ?q= search: one row per FN, EMAIL, TEL, NICKNAME, UID value,
-- normalised (case-folded; TEL without punctuation in value_digits).
CREATE TABLE ab_index (
    card_id {bigint} NOT NULL REFERENCES ab_cards(id) ON DELETE CASCADE,
    book_id {bigint} NOT NULL,
    prop TEXT NOT NULL,
    value TEXT NOT NULL
);
CREATE INDEX ab_index_book ON ab_index(book_id, prop, value);
CREATE INDEX ab_index_card ON ab_index(card_id);

CREATE TABLE ab_changes (
    book_id {bigint} NOT NULL REFERENCES ab_books(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    seq {bigint} NOT NULL,
    deleted INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (book_id, name)
);
CREATE INDEX ab_changes_seq ON ab_changes(book_id, seq);

-- An address book shared with another local user, read or write, under ``name`` in their home.
CREATE TABLE ab_shares (
    id {id},
    book_id {bigint} NOT NULL REFERENCES ab_books(id) ON DELETE CASCADE,
    grantee_id {bigint} NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    permission TEXT NOT NULL,
    created_at {bigint} NOT NULL,
    UNIQUE (book_id, grantee_id),
    UNIQUE (grantee_id, name)
);

-- collect = 0: the user opted out of collected addresses.
CREATE TABLE ab_settings (
    user_id {bigint} PRIMARY KEY REFERENCES users(id) ON DELETE CASCADE,
    collect INTEGER NOT NULL DEFAULT 1
);
