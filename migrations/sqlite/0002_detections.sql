-- Detection watermarks and audit-file progress (issue 3). Times are Unix milliseconds.

-- One row per (detection, workspace): how far its windows have been committed, and who may run
-- the next one. `watermark` only moves in the transaction that stores the alerts of the window
-- ending there, and only while the mover holds the lease (lease_owner), so a window is never
-- skipped and never committed twice.
CREATE TABLE detection_watermarks (
    detection_id TEXT NOT NULL,
    workspace    TEXT NOT NULL,
    watermark    INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_until  INTEGER,
    windows      INTEGER NOT NULL DEFAULT 0,
    alerts       INTEGER NOT NULL DEFAULT 0,
    -- Consecutive failed windows since the last commit, and the last error text.
    failures     INTEGER NOT NULL DEFAULT 0,
    last_error   TEXT,
    last_run_at  INTEGER,
    updated_at   INTEGER NOT NULL,
    PRIMARY KEY (detection_id, workspace)
);

-- How far each delivered audit-log file has been read, per [[audit_files]] source. The SHA-256
-- of the bytes before byte_offset tells an appended file (read on from the offset) from an
-- overwritten one (read again from the start; stable alert ids make the repeat harmless).
CREATE TABLE audit_file_progress (
    source        TEXT NOT NULL,
    path          TEXT NOT NULL,
    byte_offset   INTEGER NOT NULL,
    line_count    INTEGER NOT NULL,
    prefix_sha256 TEXT NOT NULL,
    file_size     INTEGER NOT NULL,
    modified_ms   INTEGER NOT NULL,
    -- Since the file was first (or last re-)read: records, records a rule turned into an
    -- alert (re-deliveries included), and lines that were not records.
    records       INTEGER NOT NULL DEFAULT 0,
    alerts        INTEGER NOT NULL DEFAULT 0,
    malformed     INTEGER NOT NULL DEFAULT 0,
    updated_at    INTEGER NOT NULL,
    PRIMARY KEY (source, path)
);
