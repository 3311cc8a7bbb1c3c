-- The responder console (src/web): sessions, login throttling and used approval links.
-- Times are Unix milliseconds.

-- A console session. Only the SHA-256 of the random session id is stored: a copy of this table
-- does not let anyone sign in.
CREATE TABLE web_sessions (
    id_hash      TEXT PRIMARY KEY,
    identity     TEXT NOT NULL,
    -- The per-session token every console form must send back.
    csrf         TEXT NOT NULL,
    -- password | token
    method       TEXT NOT NULL,
    created_at   INTEGER NOT NULL,
    last_seen_at INTEGER NOT NULL,
    expires_at   INTEGER NOT NULL
);
CREATE INDEX web_sessions_identity ON web_sessions (identity);
CREATE INDEX web_sessions_expiry ON web_sessions (expires_at);

-- Failed sign-ins by key (a login name, or all token attempts), for throttling.
CREATE TABLE web_login_failures (
    id  INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    at  INTEGER NOT NULL
);
CREATE INDEX web_login_failures_key ON web_login_failures (key, at);

-- Approval links that were used: a link's nonce is recorded before its decision is cast, so a
-- link decides at most once even when two requests race.
CREATE TABLE web_link_uses (
    nonce       TEXT PRIMARY KEY,
    approval_id TEXT NOT NULL,
    identity    TEXT NOT NULL,
    decision    TEXT NOT NULL,
    used_at     INTEGER NOT NULL
);
