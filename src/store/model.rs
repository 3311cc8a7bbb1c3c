//! Rows as typed values. A run's state is an enum that says what it waits for, never a string
//! plus nullable columns interpreted in several places.

use super::{Result, Row, StoreError};
use crate::playbook::OnTimeout;
use serde::Serialize;
use serde_json::Value;

/// What a waiting run waits for.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", content = "ref", rename_all = "snake_case")]
pub enum Wait {
    /// A decision on this approval.
    Approval(String),
    /// A timer (`run_after`).
    Timer,
    /// A durable retry (`run_after`).
    Retry,
}

/// The run state machine: `queued → running → waiting(...) → running → … → terminal`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RunState {
    Queued,
    Running,
    Waiting(Wait),
    Succeeded,
    Failed,
    ClosedBenign,
    Cancelled,
}

impl RunState {
    pub fn as_str(&self) -> &'static str {
        match self {
            RunState::Queued => "queued",
            RunState::Running => "running",
            RunState::Waiting(_) => "waiting",
            RunState::Succeeded => "succeeded",
            RunState::Failed => "failed",
            RunState::ClosedBenign => "closed_benign",
            RunState::Cancelled => "cancelled",
        }
    }

    pub fn is_terminal(&self) -> bool {
        matches!(self, RunState::Succeeded | RunState::Failed | RunState::ClosedBenign | RunState::Cancelled)
    }

    /// Reads the three columns that together hold the state.
    pub fn from_columns(state: &str, wait_kind: Option<&str>, wait_ref: Option<&str>) -> Result<RunState> {
        Ok(match (state, wait_kind) {
            ("queued", _) => RunState::Queued,
            ("running", _) => RunState::Running,
            ("waiting", Some("approval")) => {
                RunState::Waiting(Wait::Approval(wait_ref.unwrap_or_default().to_string()))
            }
            ("waiting", Some("timer")) => RunState::Waiting(Wait::Timer),
            ("waiting", Some("retry")) => RunState::Waiting(Wait::Retry),
            ("succeeded", _) => RunState::Succeeded,
            ("failed", _) => RunState::Failed,
            ("closed_benign", _) => RunState::ClosedBenign,
            ("cancelled", _) => RunState::Cancelled,
            (s, w) => {
                return Err(StoreError::Invalid(format!("unknown run state {s:?}/{w:?}")));
            }
        })
    }

    /// `(state, wait_kind, wait_ref)` columns.
    pub fn columns(&self) -> (&'static str, Option<&'static str>, Option<String>) {
        match self {
            RunState::Waiting(Wait::Approval(id)) => ("waiting", Some("approval"), Some(id.clone())),
            RunState::Waiting(Wait::Timer) => ("waiting", Some("timer"), None),
            RunState::Waiting(Wait::Retry) => ("waiting", Some("retry"), None),
            other => (other.as_str(), None, None),
        }
    }

    /// "waiting (approval apr_…)" for people.
    pub fn label(&self) -> String {
        match self {
            RunState::Waiting(Wait::Approval(id)) => format!("waiting (approval {id})"),
            RunState::Waiting(Wait::Timer) => "waiting (timer)".into(),
            RunState::Waiting(Wait::Retry) => "waiting (retry)".into(),
            other => other.as_str().into(),
        }
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RunRow {
    pub id: String,
    pub incident_id: String,
    pub alert_id: String,
    pub playbook_id: String,
    pub playbook_hash: String,
    pub state: RunState,
    pub run_after: i64,
    pub cursor: i64,
    pub vars: Value,
    pub lease_owner: Option<String>,
    pub lease_until: Option<i64>,
    pub epoch: i64,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

impl RunRow {
    pub const COLUMNS: &'static str = "id, incident_id, alert_id, playbook_id, playbook_hash, state, wait_kind, wait_ref, run_after, cursor, vars, lease_owner, lease_until, epoch, error, created_at, updated_at, finished_at";

    pub fn from_row(r: &Row) -> Result<Self> {
        Ok(RunRow {
            id: r.text("id")?,
            incident_id: r.text("incident_id")?,
            alert_id: r.text("alert_id")?,
            playbook_id: r.text("playbook_id")?,
            playbook_hash: r.text("playbook_hash")?,
            state: RunState::from_columns(
                &r.text("state")?,
                r.opt_text("wait_kind")?.as_deref(),
                r.opt_text("wait_ref")?.as_deref(),
            )?,
            run_after: r.int("run_after")?,
            cursor: r.int("cursor")?,
            vars: r.json("vars")?,
            lease_owner: r.opt_text("lease_owner")?,
            lease_until: r.opt_int("lease_until")?,
            epoch: r.int("epoch")?,
            error: r.opt_text("error")?,
            created_at: r.int("created_at")?,
            updated_at: r.int("updated_at")?,
            finished_at: r.opt_int("finished_at")?,
        })
    }
}

/// A step execution: `planned → started(attempt n) → succeeded | failed | skipped`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum StepState {
    /// Input rendered; waiting for an approval or a retry time.
    Planned,
    /// Intent committed; the connector has been (or is being) called.
    Started,
    Succeeded,
    Failed,
    Skipped,
}

impl StepState {
    pub fn as_str(self) -> &'static str {
        match self {
            StepState::Planned => "planned",
            StepState::Started => "started",
            StepState::Succeeded => "succeeded",
            StepState::Failed => "failed",
            StepState::Skipped => "skipped",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "planned" => StepState::Planned,
            "started" => StepState::Started,
            "succeeded" => StepState::Succeeded,
            "failed" => StepState::Failed,
            "skipped" => StepState::Skipped,
            other => return Err(StoreError::Invalid(format!("unknown step state {other:?}"))),
        })
    }
    pub fn is_terminal(self) -> bool {
        matches!(self, StepState::Succeeded | StepState::Failed | StepState::Skipped)
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct StepExecRow {
    pub id: String,
    pub run_id: String,
    pub step_id: String,
    pub iteration: i64,
    pub seq: i64,
    pub phase: String,
    pub action: String,
    pub state: StepState,
    pub attempt: i64,
    pub idempotency_key: String,
    pub input: Option<Value>,
    pub plan: Option<Value>,
    pub output: Option<Value>,
    pub revert_state: Option<Value>,
    pub error: Option<String>,
    pub error_code: Option<String>,
    pub reason: Option<String>,
    pub run_after: Option<i64>,
    pub started_at: Option<i64>,
    pub finished_at: Option<i64>,
}

impl StepExecRow {
    pub const COLUMNS: &'static str = "id, run_id, step_id, iteration, seq, phase, action, state, attempt, idempotency_key, input, plan, output, revert_state, error, error_code, reason, run_after, started_at, finished_at";

    pub fn from_row(r: &Row) -> Result<Self> {
        Ok(StepExecRow {
            id: r.text("id")?,
            run_id: r.text("run_id")?,
            step_id: r.text("step_id")?,
            iteration: r.int("iteration")?,
            seq: r.int("seq")?,
            phase: r.text("phase")?,
            action: r.text("action")?,
            state: StepState::parse(&r.text("state")?)?,
            attempt: r.int("attempt")?,
            idempotency_key: r.text("idempotency_key")?,
            input: r.opt_json("input")?,
            plan: r.opt_json("plan")?,
            output: r.opt_json("output")?,
            revert_state: r.opt_json("revert_state")?,
            error: r.opt_text("error")?,
            error_code: r.opt_text("error_code")?,
            reason: r.opt_text("reason")?,
            run_after: r.opt_int("run_after")?,
            started_at: r.opt_int("started_at")?,
            finished_at: r.opt_int("finished_at")?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct IncidentRow {
    pub id: String,
    pub playbook_id: Option<String>,
    pub group_key: Option<String>,
    pub title: String,
    pub severity: String,
    pub state: String,
    pub resolution: Option<String>,
    pub alert_count: i64,
    pub opened_at: i64,
    pub last_alert_at: i64,
    pub closed_at: Option<i64>,
}

impl IncidentRow {
    pub const COLUMNS: &'static str = "id, playbook_id, group_key, title, severity, state, resolution, alert_count, opened_at, last_alert_at, closed_at";

    pub fn from_row(r: &Row) -> Result<Self> {
        Ok(IncidentRow {
            id: r.text("id")?,
            playbook_id: r.opt_text("playbook_id")?,
            group_key: r.opt_text("group_key")?,
            title: r.text("title")?,
            severity: r.text("severity")?,
            state: r.text("state")?,
            resolution: r.opt_text("resolution")?,
            alert_count: r.int("alert_count")?,
            opened_at: r.int("opened_at")?,
            last_alert_at: r.int("last_alert_at")?,
            closed_at: r.opt_int("closed_at")?,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalState {
    Pending,
    Approved,
    Denied,
    Expired,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::Pending => "pending",
            ApprovalState::Approved => "approved",
            ApprovalState::Denied => "denied",
            ApprovalState::Expired => "expired",
        }
    }
    pub fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => ApprovalState::Pending,
            "approved" => ApprovalState::Approved,
            "denied" => ApprovalState::Denied,
            "expired" => ApprovalState::Expired,
            other => {
                return Err(StoreError::Invalid(format!("unknown approval state {other:?}")));
            }
        })
    }
}

pub fn on_timeout_str(o: OnTimeout) -> &'static str {
    match o {
        OnTimeout::Deny => "deny",
        OnTimeout::Approve => "approve",
        OnTimeout::Escalate => "escalate",
    }
}

fn parse_on_timeout(s: &str) -> OnTimeout {
    match s {
        "approve" => OnTimeout::Approve,
        "escalate" => OnTimeout::Escalate,
        _ => OnTimeout::Deny,
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct ApprovalRow {
    pub id: String,
    pub run_id: String,
    pub step_exec_id: String,
    pub step_id: String,
    pub incident_id: String,
    pub state: ApprovalState,
    /// Groups whose members may vote now (grows with escalation).
    pub groups: Vec<String>,
    pub quorum: i64,
    pub timeout_ms: i64,
    pub deadline: i64,
    pub on_timeout: OnTimeout,
    /// Escalation groups not yet asked.
    pub escalation: Vec<String>,
    pub escalation_level: i64,
    /// The alert's user: that person may not approve actions aimed at themselves.
    pub target_user: Option<String>,
    pub summary: String,
    pub plan: Value,
    pub auto_rule: Option<String>,
    pub decided_at: Option<i64>,
    pub decided_reason: Option<String>,
    pub created_at: i64,
}

impl ApprovalRow {
    pub const COLUMNS: &'static str = "id, run_id, step_exec_id, step_id, incident_id, state, groups_json, quorum, timeout_ms, deadline, on_timeout, escalation_json, escalation_level, target_user, summary, plan, auto_rule, decided_at, decided_reason, created_at";

    pub fn from_row(r: &Row) -> Result<Self> {
        let list = |col: &str| -> Result<Vec<String>> {
            Ok(r.json(col)?
                .as_array()
                .map(|a| a.iter().filter_map(|v| v.as_str().map(str::to_string)).collect())
                .unwrap_or_default())
        };
        Ok(ApprovalRow {
            id: r.text("id")?,
            run_id: r.text("run_id")?,
            step_exec_id: r.text("step_exec_id")?,
            step_id: r.text("step_id")?,
            incident_id: r.text("incident_id")?,
            state: ApprovalState::parse(&r.text("state")?)?,
            groups: list("groups_json")?,
            quorum: r.int("quorum")?,
            timeout_ms: r.int("timeout_ms")?,
            deadline: r.int("deadline")?,
            on_timeout: parse_on_timeout(&r.text("on_timeout")?),
            escalation: list("escalation_json")?,
            escalation_level: r.int("escalation_level")?,
            target_user: r.opt_text("target_user")?,
            summary: r.text("summary")?,
            plan: r.json("plan")?,
            auto_rule: r.opt_text("auto_rule")?,
            decided_at: r.opt_int("decided_at")?,
            decided_reason: r.opt_text("decided_reason")?,
            created_at: r.int("created_at")?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct VoteRow {
    pub identity: String,
    pub decision: String,
    pub reason: Option<String>,
    pub channel: String,
    pub at: i64,
}

impl VoteRow {
    pub fn from_row(r: &Row) -> Result<Self> {
        Ok(VoteRow {
            identity: r.text("identity")?,
            decision: r.text("decision")?,
            reason: r.opt_text("reason")?,
            channel: r.text("channel")?,
            at: r.int("at")?,
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub id: i64,
    pub at: i64,
    pub incident_id: Option<String>,
    pub run_id: Option<String>,
    pub step_id: Option<String>,
    pub kind: String,
    pub data: Value,
}

impl EventRow {
    pub fn from_row(r: &Row) -> Result<Self> {
        Ok(EventRow {
            id: r.int("id")?,
            at: r.int("at")?,
            incident_id: r.opt_text("incident_id")?,
            run_id: r.opt_text("run_id")?,
            step_id: r.opt_text("step_id")?,
            kind: r.text("kind")?,
            data: r.json("data")?,
        })
    }
}
