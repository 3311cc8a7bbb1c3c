-- floodgate engine state (SQLite). Times are Unix milliseconds; JSON is stored as TEXT.

CREATE TABLE playbook_versions (
    hash        TEXT PRIMARY KEY,
    playbook_id TEXT NOT NULL,
    path        TEXT NOT NULL,
    source      TEXT NOT NULL,
    created_at  INTEGER NOT NULL
);

CREATE TABLE incidents (
    id            TEXT PRIMARY KEY,
    playbook_id   TEXT,
    group_key     TEXT,
    title         TEXT NOT NULL,
    severity      TEXT NOT NULL,
    state         TEXT NOT NULL,
    resolution    TEXT,
    alert_count   INTEGER NOT NULL,
    opened_at     INTEGER NOT NULL,
    last_alert_at INTEGER NOT NULL,
    closed_at     INTEGER
);
CREATE INDEX incidents_grouping ON incidents (playbook_id, group_key, state, opened_at);
CREATE INDEX incidents_opened ON incidents (opened_at);

CREATE TABLE alerts (
    id          TEXT PRIMARY KEY,
    source      TEXT NOT NULL,
    external_id TEXT NOT NULL,
    incident_id TEXT NOT NULL REFERENCES incidents (id),
    run_id      TEXT,
    received_at INTEGER NOT NULL,
    rule        TEXT,
    title       TEXT NOT NULL,
    severity    TEXT NOT NULL,
    confidence  REAL NOT NULL,
    body        TEXT NOT NULL,
    UNIQUE (source, external_id)
);
CREATE INDEX alerts_incident ON alerts (incident_id);

CREATE TABLE runs (
    id            TEXT PRIMARY KEY,
    incident_id   TEXT NOT NULL REFERENCES incidents (id),
    alert_id      TEXT NOT NULL,
    playbook_id   TEXT NOT NULL,
    playbook_hash TEXT NOT NULL REFERENCES playbook_versions (hash),
    state         TEXT NOT NULL,
    wait_kind     TEXT,
    wait_ref      TEXT,
    run_after     INTEGER NOT NULL,
    cursor        INTEGER NOT NULL DEFAULT 0,
    vars          TEXT NOT NULL,
    lease_owner   TEXT,
    lease_until   INTEGER,
    epoch         INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    created_at    INTEGER NOT NULL,
    updated_at    INTEGER NOT NULL,
    finished_at   INTEGER
);
CREATE INDEX runs_claim ON runs (state, run_after);
CREATE INDEX runs_incident ON runs (incident_id);

CREATE TABLE step_executions (
    id              TEXT PRIMARY KEY,
    run_id          TEXT NOT NULL REFERENCES runs (id),
    step_id         TEXT NOT NULL,
    iteration       INTEGER NOT NULL,
    seq             INTEGER NOT NULL,
    phase           TEXT NOT NULL,
    action          TEXT NOT NULL,
    state           TEXT NOT NULL,
    attempt         INTEGER NOT NULL DEFAULT 0,
    idempotency_key TEXT NOT NULL,
    input           TEXT,
    plan            TEXT,
    output          TEXT,
    revert_state    TEXT,
    error           TEXT,
    error_code      TEXT,
    reason          TEXT,
    run_after       INTEGER,
    started_at      INTEGER,
    finished_at     INTEGER,
    UNIQUE (run_id, step_id, iteration)
);

CREATE TABLE approvals (
    id               TEXT PRIMARY KEY,
    run_id           TEXT NOT NULL REFERENCES runs (id),
    step_exec_id     TEXT NOT NULL REFERENCES step_executions (id),
    step_id          TEXT NOT NULL,
    incident_id      TEXT NOT NULL,
    state            TEXT NOT NULL,
    groups_json      TEXT NOT NULL,
    quorum           INTEGER NOT NULL,
    timeout_ms       INTEGER NOT NULL,
    deadline         INTEGER NOT NULL,
    on_timeout       TEXT NOT NULL,
    escalation_json  TEXT NOT NULL,
    escalation_level INTEGER NOT NULL DEFAULT 0,
    target_user      TEXT,
    summary          TEXT NOT NULL,
    plan             TEXT NOT NULL,
    auto_rule        TEXT,
    decided_at       INTEGER,
    decided_reason   TEXT,
    created_at       INTEGER NOT NULL
);
CREATE INDEX approvals_pending ON approvals (state, deadline);
CREATE INDEX approvals_run ON approvals (run_id);

CREATE TABLE approval_votes (
    approval_id TEXT NOT NULL REFERENCES approvals (id),
    identity    TEXT NOT NULL,
    decision    TEXT NOT NULL,
    reason      TEXT,
    channel     TEXT NOT NULL,
    at          INTEGER NOT NULL,
    PRIMARY KEY (approval_id, identity)
);

-- The timeline and audit trail: append-only and hash-chained (see src/store/audit.rs).
CREATE TABLE events (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    seq         INTEGER NOT NULL UNIQUE,
    at          INTEGER NOT NULL,
    incident_id TEXT,
    run_id      TEXT,
    step_id     TEXT,
    kind        TEXT NOT NULL,
    data        TEXT NOT NULL,
    prev_hash   TEXT NOT NULL,
    hash        TEXT NOT NULL
);
CREATE INDEX events_incident ON events (incident_id, seq);
CREATE INDEX events_run ON events (run_id, seq);

CREATE TABLE external_refs (
    namespace  TEXT NOT NULL,
    key        TEXT NOT NULL,
    value      TEXT NOT NULL,
    updated_at INTEGER NOT NULL,
    PRIMARY KEY (namespace, key)
);

-- Temporary containment: the revert of a step with `revert_after`, run when due.
CREATE TABLE reverts (
    id           TEXT PRIMARY KEY,
    run_id       TEXT NOT NULL REFERENCES runs (id),
    incident_id  TEXT NOT NULL,
    step_exec_id TEXT NOT NULL UNIQUE REFERENCES step_executions (id),
    step_id      TEXT NOT NULL,
    action       TEXT NOT NULL,
    state        TEXT NOT NULL,
    due_at       INTEGER NOT NULL,
    attempt      INTEGER NOT NULL DEFAULT 0,
    run_after    INTEGER NOT NULL,
    lease_owner  TEXT,
    lease_until  INTEGER,
    epoch        INTEGER NOT NULL DEFAULT 0,
    output       TEXT,
    error        TEXT,
    created_at   INTEGER NOT NULL,
    updated_at   INTEGER NOT NULL,
    finished_at  INTEGER
);
CREATE INDEX reverts_due ON reverts (state, run_after);
CREATE INDEX reverts_run ON reverts (run_id);
