//! Temporary containment: scheduled reverts, claimed with a lease like runs and fenced by
//! their claim epoch, so a revert happens once even with several workers or a crash.

use super::{Dialect, Result, Row, Store, StoreError, Tx};
use crate::args;
use serde::Serialize;
use serde_json::Value;

/// `scheduled → started(attempt n) → reverted | failed`, or `permanent` when people decide the
/// containment stays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RevertState {
    Scheduled,
    Started,
    Reverted,
    Failed,
    Permanent,
}

impl RevertState {
    pub fn as_str(self) -> &'static str {
        match self {
            RevertState::Scheduled => "scheduled",
            RevertState::Started => "started",
            RevertState::Reverted => "reverted",
            RevertState::Failed => "failed",
            RevertState::Permanent => "permanent",
        }
    }
    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "scheduled" => RevertState::Scheduled,
            "started" => RevertState::Started,
            "reverted" => RevertState::Reverted,
            "failed" => RevertState::Failed,
            "permanent" => RevertState::Permanent,
            other => return Err(StoreError::Invalid(format!("unknown revert state {other:?}"))),
        })
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct RevertRow {
    pub id: String,
    pub run_id: String,
    pub incident_id: String,
    pub step_exec_id: String,
    pub step_id: String,
    pub action: String,
    pub state: RevertState,
    pub due_at: i64,
    pub attempt: i64,
    pub run_after: i64,
    pub epoch: i64,
    pub output: Option<Value>,
    pub error: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
}

impl RevertRow {
    fn from_row(r: &Row) -> Result<Self> {
        Ok(RevertRow {
            id: r.text("id")?,
            run_id: r.text("run_id")?,
            incident_id: r.text("incident_id")?,
            step_exec_id: r.text("step_exec_id")?,
            step_id: r.text("step_id")?,
            action: r.text("action")?,
            state: RevertState::parse(&r.text("state")?)?,
            due_at: r.int("due_at")?,
            attempt: r.int("attempt")?,
            run_after: r.int("run_after")?,
            epoch: r.int("epoch")?,
            output: r.opt_json("output")?,
            error: r.opt_text("error")?,
            created_at: r.int("created_at")?,
            updated_at: r.int("updated_at")?,
            finished_at: r.opt_int("finished_at")?,
        })
    }
}

/// A worker's hold on a revert.
#[derive(Debug, Clone)]
pub struct RevertClaim {
    pub id: String,
    pub epoch: i64,
}

const CLAIM_SQLITE: &str = "UPDATE reverts SET state = 'started', lease_owner = $1, lease_until = $2, epoch = epoch + 1, updated_at = $3 \
     WHERE id IN (SELECT id FROM reverts WHERE (state = 'scheduled' AND run_after <= $3) OR (state = 'started' AND lease_until < $3) ORDER BY run_after LIMIT $4) \
     RETURNING id, epoch";
const CLAIM_POSTGRES: &str = "UPDATE reverts SET state = 'started', lease_owner = $1, lease_until = $2, epoch = epoch + 1, updated_at = $3 \
     WHERE id IN (SELECT id FROM reverts WHERE (state = 'scheduled' AND run_after <= $3) OR (state = 'started' AND lease_until < $3) ORDER BY run_after LIMIT $4 FOR UPDATE SKIP LOCKED) \
     RETURNING id, epoch";

impl Tx {
    #[allow(clippy::too_many_arguments)]
    pub async fn schedule_revert(
        &mut self,
        id: &str,
        run_id: &str,
        incident_id: &str,
        step_exec_id: &str,
        step_id: &str,
        action: &str,
        due_at: i64,
        now: i64,
    ) -> Result<()> {
        self.exec(
            "INSERT INTO reverts (id, run_id, incident_id, step_exec_id, step_id, action, state, due_at, attempt, run_after, epoch, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'scheduled', $7, 0, $7, 0, $8, $8)",
            args![id, run_id, incident_id, step_exec_id, step_id, action, due_at, now],
        )
        .await?;
        Ok(())
    }

    /// Records the revert's attempt before the connector is called; false when the claim was lost.
    pub async fn start_revert(&mut self, c: &RevertClaim, attempt: i64, now: i64) -> Result<bool> {
        let n = self
            .exec(
                "UPDATE reverts SET attempt = $1, updated_at = $2 WHERE id = $3 AND epoch = $4 AND state = 'started'",
                args![attempt, now, &c.id, c.epoch],
            )
            .await?;
        Ok(n == 1)
    }

    /// Ends a revert (`reverted`, `failed`) or puts it back (`scheduled` at `run_after`), fenced by
    /// the claim.
    pub async fn finish_revert(
        &mut self,
        c: &RevertClaim,
        state: RevertState,
        run_after: i64,
        output: Option<&Value>,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let finished = if matches!(state, RevertState::Reverted | RevertState::Failed) { Some(now) } else { None };
        let n = self
            .exec(
                "UPDATE reverts SET state = $1, run_after = $2, output = $3, error = $4, updated_at = $5, finished_at = $6, lease_owner = NULL, lease_until = NULL \
                 WHERE id = $7 AND epoch = $8 AND state = 'started'",
                args![state.as_str(), run_after, output.map(|v| v.to_string()), error, now, finished, &c.id, c.epoch],
            )
            .await?;
        Ok(n == 1)
    }

    /// Moves a scheduled revert's due time; false when it is no longer scheduled.
    pub async fn reschedule_revert(&mut self, id: &str, due_at: i64, now: i64) -> Result<bool> {
        let n = self
            .exec(
                "UPDATE reverts SET due_at = $1, run_after = $1, updated_at = $2 WHERE id = $3 AND state = 'scheduled'",
                args![due_at, now, id],
            )
            .await?;
        Ok(n == 1)
    }

    /// Makes a scheduled containment permanent; false when it is no longer scheduled.
    pub async fn make_revert_permanent(&mut self, id: &str, now: i64) -> Result<bool> {
        let n = self
            .exec(
                "UPDATE reverts SET state = 'permanent', updated_at = $1, finished_at = $1 WHERE id = $2 AND state = 'scheduled'",
                args![now, id],
            )
            .await?;
        Ok(n == 1)
    }

    pub async fn lock_revert(&mut self, id: &str) -> Result<Option<RevertRow>> {
        let sql = match self.dialect() {
            Dialect::Sqlite => {
                "SELECT id, run_id, incident_id, step_exec_id, step_id, action, state, due_at, attempt, run_after, epoch, output, error, created_at, updated_at, finished_at FROM reverts WHERE id = $1"
            }
            Dialect::Postgres => {
                "SELECT id, run_id, incident_id, step_exec_id, step_id, action, state, due_at, attempt, run_after, epoch, output, error, created_at, updated_at, finished_at FROM reverts WHERE id = $1 FOR UPDATE"
            }
        };
        self.opt(sql, args![id]).await?.map(|r| RevertRow::from_row(&r)).transpose()
    }
}

impl Store {
    pub async fn revert(&self, id: &str) -> Result<Option<RevertRow>> {
        self.opt(
            "SELECT id, run_id, incident_id, step_exec_id, step_id, action, state, due_at, attempt, run_after, epoch, output, error, created_at, updated_at, finished_at FROM reverts WHERE id = $1",
            args![id],
        )
        .await?
        .map(|r| RevertRow::from_row(&r))
        .transpose()
    }

    pub async fn reverts_for_run(&self, run_id: &str) -> Result<Vec<RevertRow>> {
        self.all(
            "SELECT id, run_id, incident_id, step_exec_id, step_id, action, state, due_at, attempt, run_after, epoch, output, error, created_at, updated_at, finished_at FROM reverts WHERE run_id = $1 ORDER BY created_at",
            args![run_id],
        )
        .await?
        .iter()
        .map(RevertRow::from_row)
        .collect()
    }

    /// Reverts in `state` (all when `None`), soonest due first.
    pub async fn list_reverts(&self, state: Option<&str>, limit: i64) -> Result<Vec<RevertRow>> {
        let rows = match state {
            Some(s) => self.all(
                "SELECT id, run_id, incident_id, step_exec_id, step_id, action, state, due_at, attempt, run_after, epoch, output, error, created_at, updated_at, finished_at FROM reverts WHERE state = $1 ORDER BY due_at LIMIT $2",
                args![s, limit],
            ).await?,
            None => self.all(
                "SELECT id, run_id, incident_id, step_exec_id, step_id, action, state, due_at, attempt, run_after, epoch, output, error, created_at, updated_at, finished_at FROM reverts ORDER BY due_at LIMIT $1",
                args![limit],
            ).await?,
        };
        rows.iter().map(RevertRow::from_row).collect()
    }

    /// Claims due reverts (and ones whose worker's lease expired).
    pub async fn claim_reverts(&self, owner: &str, now: i64, lease_ms: i64, limit: i64) -> Result<Vec<RevertClaim>> {
        let mut tx = self.begin().await?;
        let sql = match tx.dialect() {
            Dialect::Sqlite => CLAIM_SQLITE,
            Dialect::Postgres => CLAIM_POSTGRES,
        };
        let rows = tx.all(sql, args![owner, now + lease_ms, now, limit]).await?;
        tx.commit().await?;
        rows.iter().map(|r| Ok(RevertClaim { id: r.text("id")?, epoch: r.int("epoch")? })).collect()
    }
}
