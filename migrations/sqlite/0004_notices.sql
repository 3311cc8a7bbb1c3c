-- Approval notices: what floodgate has told each channel (Slack, Teams, PagerDuty) about an
-- approval. The notifier compares this with the approval's state and catches up: a request is
-- posted once, each escalation once, and the decision once. `run_after` doubles as the lease
-- of the delivery in progress and as the time of the next retry.
CREATE TABLE approval_notices (
    approval_id  TEXT NOT NULL REFERENCES approvals (id),
    channel      TEXT NOT NULL,
    -- Highest escalation level announced (-1: nothing posted yet).
    level_sent   BIGINT NOT NULL DEFAULT -1,
    -- 1 once the decision was shown (or nothing is left to show).
    decided_sent BIGINT NOT NULL DEFAULT 0,
    -- Where the posts are, as JSON (Slack: a list of {channel, ts}); never a secret.
    refs         TEXT NOT NULL DEFAULT '[]',
    attempt      BIGINT NOT NULL DEFAULT 0,
    failures     BIGINT NOT NULL DEFAULT 0,
    run_after    BIGINT NOT NULL DEFAULT 0,
    last_error   TEXT,
    updated_at   BIGINT NOT NULL,
    PRIMARY KEY (approval_id, channel)
);
CREATE INDEX approval_notices_undecided ON approval_notices (channel, decided_sent);
