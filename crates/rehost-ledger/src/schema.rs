//! The ledger's tables. The schema's version is SQLite's `user_version`; a ledger of a
//! newer version than this rehost knows is refused, an empty file is given this one.

/// The schema version this rehost writes.
pub const VERSION: i64 = 1;

/// Creates every table of version 1.
pub const CREATE: &str = "
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    command TEXT NOT NULL,          -- inspect, check, fix
    argv TEXT NOT NULL,             -- JSON array of the arguments, for people
    version TEXT NOT NULL,          -- rehost's version
    pid INTEGER NOT NULL,
    started_ms INTEGER NOT NULL,    -- Unix time
    finished_ms INTEGER             -- NULL: still running, or killed
);
CREATE TABLE outcomes (
    id INTEGER PRIMARY KEY,
    run INTEGER NOT NULL REFERENCES runs(id),
    row INTEGER NOT NULL,           -- the image's position in the run's input, from 0
    source TEXT NOT NULL,           -- where the input named it (argument, manifest line, ...)
    image TEXT NOT NULL,            -- the path as given
    command TEXT NOT NULL,
    options TEXT NOT NULL,          -- canonical JSON of what decides the outcome
    options_key TEXT NOT NULL,      -- SHA-256 of command and options
    status TEXT NOT NULL,           -- ok, failed, busy, input (see Status)
    path TEXT, size INTEGER, mtime_ns INTEGER, dev INTEGER, inode INTEGER,
    hash TEXT, hash_scheme TEXT,    -- the identity before the work (NULL: unreadable)
    after_size INTEGER, after_mtime_ns INTEGER, after_hash TEXT,  -- after a write in place
    committed INTEGER NOT NULL DEFAULT 0,
    journal TEXT,                   -- the undo journal of a write in place
    bytes_read INTEGER, bytes_written INTEGER,
    elapsed_ms REAL,
    version TEXT NOT NULL,
    errors TEXT NOT NULL,           -- JSON array
    report TEXT NOT NULL,           -- the image's JSON line, as --jsonl writes it
    finished_ms INTEGER NOT NULL
);
CREATE INDEX outcomes_before ON outcomes(options_key, path, size, mtime_ns, hash);
CREATE INDEX outcomes_after ON outcomes(options_key, path, after_size, after_mtime_ns, after_hash);
CREATE TABLE verdicts (
    outcome INTEGER NOT NULL REFERENCES outcomes(id),
    install TEXT NOT NULL,          -- volume and system root
    target TEXT NOT NULL,
    verdict TEXT NOT NULL,          -- check's verdict; fix's verdict after the fix
    stop TEXT,
    before TEXT                     -- fix: the verdict before
);
CREATE TABLE findings (
    outcome INTEGER NOT NULL REFERENCES outcomes(id),
    install TEXT NOT NULL,
    target TEXT NOT NULL,
    rule TEXT NOT NULL,
    \"case\" TEXT NOT NULL,
    severity TEXT NOT NULL,
    fixable INTEGER NOT NULL,
    message TEXT NOT NULL
);
CREATE TABLE changes (
    outcome INTEGER NOT NULL REFERENCES outcomes(id),
    install TEXT NOT NULL,
    rule TEXT NOT NULL,
    kind TEXT NOT NULL,
    file TEXT,
    why TEXT NOT NULL
);
";
