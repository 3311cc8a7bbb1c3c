//! Read-only views for people: lists and details for the CLI and the API.

use super::{Arg, EventRow, IncidentRow, Result, Store};
use crate::args;
use serde::Serialize;

/// Filters of `runs list`.
#[derive(Debug, Clone, Default)]
pub struct RunFilter {
    pub state: Option<String>,
    pub playbook: Option<String>,
    pub incident: Option<String>,
    pub limit: i64,
}

/// One line of `runs list`.
#[derive(Debug, Clone, Serialize)]
pub struct RunSummary {
    pub id: String,
    pub incident_id: String,
    pub playbook_id: String,
    pub state: String,
    pub waiting_for: Option<String>,
    pub cursor: i64,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    pub title: String,
    pub severity: String,
}

impl Store {
    pub async fn list_runs(&self, f: &RunFilter) -> Result<Vec<RunSummary>> {
        // Fixed fragments only; every value is a bound argument.
        let mut sql = String::from(
            "SELECT r.id, r.incident_id, r.playbook_id, r.state, r.wait_kind, r.wait_ref, r.cursor, r.error, r.created_at, r.updated_at, r.finished_at, i.title, i.severity \
             FROM runs r JOIN incidents i ON i.id = r.incident_id WHERE 1 = 1",
        );
        let mut args: Vec<Arg> = Vec::new();
        for (col, val) in [("r.state", &f.state), ("r.playbook_id", &f.playbook), ("r.incident_id", &f.incident)] {
            if let Some(v) = val {
                args.push(Arg::from(v.as_str()));
                sql.push_str(&format!(" AND {col} = ${}", args.len()));
            }
        }
        args.push(Arg::from(if f.limit > 0 { f.limit } else { 50 }));
        sql.push_str(&format!(" ORDER BY r.created_at DESC, r.id DESC LIMIT ${}", args.len()));
        self.all_dynamic(sql, args)
            .await?
            .iter()
            .map(|r| {
                let waiting_for = match (r.opt_text("wait_kind")?, r.opt_text("wait_ref")?) {
                    (Some(k), Some(id)) => Some(format!("{k} {id}")),
                    (Some(k), None) => Some(k),
                    _ => None,
                };
                Ok(RunSummary {
                    id: r.text("id")?,
                    incident_id: r.text("incident_id")?,
                    playbook_id: r.text("playbook_id")?,
                    state: r.text("state")?,
                    waiting_for,
                    cursor: r.int("cursor")?,
                    error: r.opt_text("error")?,
                    created_at: r.int("created_at")?,
                    updated_at: r.int("updated_at")?,
                    finished_at: r.opt_int("finished_at")?,
                    title: r.text("title")?,
                    severity: r.text("severity")?,
                })
            })
            .collect()
    }

    pub async fn incident(&self, id: &str) -> Result<Option<IncidentRow>> {
        self.opt(
            "SELECT id, playbook_id, group_key, title, severity, state, resolution, alert_count, opened_at, last_alert_at, closed_at FROM incidents WHERE id = $1",
            args![id],
        )
        .await?
        .map(|r| IncidentRow::from_row(&r))
        .transpose()
    }

    /// The run's timeline (its events and its incident's), oldest first.
    pub async fn run_events(&self, run_id: &str, incident_id: &str) -> Result<Vec<EventRow>> {
        self.all(
            "SELECT id, at, incident_id, run_id, step_id, kind, data FROM events WHERE run_id = $1 OR (run_id IS NULL AND incident_id = $2) ORDER BY seq",
            args![run_id, incident_id],
        )
        .await?
        .iter()
        .map(EventRow::from_row)
        .collect()
    }

    /// Counts by state, for `/metrics`.
    pub async fn run_state_counts(&self) -> Result<Vec<(String, i64)>> {
        self.all("SELECT state, COUNT(*) AS n FROM runs GROUP BY state ORDER BY state", vec![])
            .await?
            .iter()
            .map(|r| Ok((r.text("state")?, r.int("n")?)))
            .collect()
    }

    pub async fn count_alerts(&self) -> Result<i64> {
        self.opt("SELECT COUNT(*) AS n FROM alerts", vec![]).await?.map_or(Ok(0), |r| r.int("n"))
    }
}

/// An approval with its votes.
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalDetail {
    #[serde(flatten)]
    pub approval: super::ApprovalRow,
    pub votes: Vec<super::VoteRow>,
}

/// Everything about one run: for `runs show` and `GET /v1/runs/{id}`.
#[derive(Debug, Clone, Serialize)]
pub struct RunDetail {
    pub run: super::RunRow,
    pub incident: Option<IncidentRow>,
    pub steps: Vec<super::StepExecRow>,
    pub approvals: Vec<ApprovalDetail>,
    pub events: Vec<EventRow>,
}

impl Store {
    pub async fn run_detail(&self, id: &str) -> Result<RunDetail> {
        let run = self.run(id).await?.ok_or_else(|| super::StoreError::NotFound(format!("run {id}")))?;
        let incident = self.incident(&run.incident_id).await?;
        // Defence in depth: connectors never return secrets, and what is shown is redacted anyway.
        let redact = |v: &mut Option<serde_json::Value>| {
            if let Some(x) = v.as_mut() {
                *x = floodgate_sdk::text::redact_json(x);
            }
        };
        let mut steps = self.step_executions(id).await?;
        for s in &mut steps {
            redact(&mut s.input);
            redact(&mut s.output);
            redact(&mut s.plan);
            redact(&mut s.revert_state);
        }
        let mut approvals = Vec::new();
        let rows = self
            .all(
                "SELECT id, run_id, step_exec_id, step_id, incident_id, state, groups_json, quorum, timeout_ms, deadline, on_timeout, escalation_json, escalation_level, target_user, summary, plan, auto_rule, decided_at, decided_reason, created_at FROM approvals WHERE run_id = $1 ORDER BY created_at",
                args![id],
            )
            .await?;
        for r in rows {
            let mut a = super::ApprovalRow::from_row(&r)?;
            a.plan = floodgate_sdk::text::redact_json(&a.plan);
            let votes = self.approval_votes(&a.id).await?;
            approvals.push(ApprovalDetail { approval: a, votes });
        }
        let events = self.run_events(id, &run.incident_id).await?;
        Ok(RunDetail { run, incident, steps, approvals, events })
    }
}
