-- WebDAV locks shared by every node (issue 9): a LOCK on one node is honoured by all of them.
-- tree is the DAV mount ('/dav/files', '/dav'); path the lock key as '/seg/seg' (tau.dav.lockdb),
-- indexed with tree for "on this key or an ancestor" (IN) and "within this key" (range) queries.
-- expires is the clock's seconds; expired rows are ignored and deleted lazily.
-- PostgreSQL: paths compare in byte order (COLLATE "C") so the "within" range is a prefix.
CREATE TABLE dav_locks (
    token TEXT PRIMARY KEY,
    tree TEXT NOT NULL,
    path TEXT COLLATE "C" NOT NULL,
    href TEXT NOT NULL,
    exclusive INTEGER NOT NULL,
    infinite INTEGER NOT NULL,
    owner_xml TEXT NOT NULL,
    principal TEXT NOT NULL,
    timeout {bigint} NOT NULL,
    expires DOUBLE PRECISION NOT NULL
);
CREATE INDEX dav_locks_path ON dav_locks(tree, path);
CREATE INDEX dav_locks_expires ON dav_locks(expires);
