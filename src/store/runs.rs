//! Runs and step executions: claiming work with leases, fencing every write, recording steps.
//!
//! A claim bumps the run's `epoch`; every later write by that worker happens in a transaction
//! that first re-checks `(id, epoch, lease_owner, state='running')`. A worker whose lease
//! expired and was reclaimed sees zero rows there and stops: it can never overwrite the new
//! owner's work. Step outcomes are further fenced by the step's attempt number, and no write
//! touches a run in a terminal state.

use super::{Dialect, Result, RunRow, RunState, StepExecRow, StepState, Store, Tx};
use crate::args;

/// A worker's hold on a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    pub run_id: String,
    pub epoch: i64,
    pub owner: String,
}

/// Proof that a transaction still belongs to the claim's owner.
pub struct Fence<'a> {
    pub claim: &'a Claim,
}

const CLAIM_SQLITE: &str = "UPDATE runs SET state = 'running', wait_kind = NULL, wait_ref = NULL, lease_owner = $1, lease_until = $2, epoch = epoch + 1, updated_at = $3 \
     WHERE id IN (SELECT id FROM runs WHERE (state = 'queued' AND run_after <= $3) OR (state = 'waiting' AND wait_kind IN ('retry', 'timer') AND run_after <= $3) OR (state = 'running' AND lease_until < $3) ORDER BY run_after LIMIT $4) \
     RETURNING id, epoch";

const CLAIM_POSTGRES: &str = "UPDATE runs SET state = 'running', wait_kind = NULL, wait_ref = NULL, lease_owner = $1, lease_until = $2, epoch = epoch + 1, updated_at = $3 \
     WHERE id IN (SELECT id FROM runs WHERE (state = 'queued' AND run_after <= $3) OR (state = 'waiting' AND wait_kind IN ('retry', 'timer') AND run_after <= $3) OR (state = 'running' AND lease_until < $3) ORDER BY run_after LIMIT $4 FOR UPDATE SKIP LOCKED) \
     RETURNING id, epoch";

impl Store {
    /// Claims up to `limit` runnable runs: queued ones, waits that are due, and runs whose
    /// owner's lease expired (a crashed or stalled worker).
    pub async fn claim_runs(&self, owner: &str, now: i64, lease_ms: i64, limit: i64) -> Result<Vec<Claim>> {
        let mut tx = self.begin().await?;
        let sql = match tx.dialect() {
            Dialect::Sqlite => CLAIM_SQLITE,
            Dialect::Postgres => CLAIM_POSTGRES,
        };
        let rows = tx.all(sql, args![owner, now + lease_ms, now, limit]).await?;
        tx.commit().await?;
        rows.iter()
            .map(|r| Ok(Claim { run_id: r.text("id")?, epoch: r.int("epoch")?, owner: owner.to_string() }))
            .collect()
    }

    /// Extends the lease; false when the claim was lost.
    pub async fn renew_lease(&self, claim: &Claim, until: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        let n = tx
            .exec(
                "UPDATE runs SET lease_until = $1 WHERE id = $2 AND epoch = $3 AND lease_owner = $4 AND state = 'running'",
                args![until, &claim.run_id, claim.epoch, &claim.owner],
            )
            .await?;
        tx.commit().await?;
        Ok(n == 1)
    }

    /// Gives back every run this owner still holds (graceful shutdown): they become queued for
    /// the next worker, which resumes from the last committed state.
    pub async fn release_leases(&self, owner: &str, now: i64) -> Result<u64> {
        let mut tx = self.begin().await?;
        let n = tx
            .exec(
                "UPDATE runs SET state = 'queued', lease_owner = NULL, lease_until = NULL, run_after = $1, updated_at = $1 WHERE lease_owner = $2 AND state = 'running'",
                args![now, owner],
            )
            .await?;
        tx.commit().await?;
        Ok(n)
    }

    /// Begins a transaction that only proceeds if the claim still holds.
    pub async fn begin_fenced(&self, claim: &Claim, now: i64) -> Result<Option<Tx>> {
        let mut tx = self.begin().await?;
        let n = tx
            .exec(
                "UPDATE runs SET updated_at = $1 WHERE id = $2 AND epoch = $3 AND lease_owner = $4 AND state = 'running'",
                args![now, &claim.run_id, claim.epoch, &claim.owner],
            )
            .await?;
        Ok((n == 1).then_some(tx))
    }

    pub async fn run(&self, id: &str) -> Result<Option<RunRow>> {
        let sql = "SELECT id, incident_id, alert_id, playbook_id, playbook_hash, state, wait_kind, wait_ref, run_after, cursor, vars, lease_owner, lease_until, epoch, error, created_at, updated_at, finished_at FROM runs WHERE id = $1";
        self.opt(sql, args![id]).await?.map(|r| RunRow::from_row(&r)).transpose()
    }

    pub async fn step_executions(&self, run_id: &str) -> Result<Vec<StepExecRow>> {
        let sql = "SELECT id, run_id, step_id, iteration, seq, phase, action, state, attempt, idempotency_key, input, plan, output, revert_state, error, error_code, reason, run_after, started_at, finished_at FROM step_executions WHERE run_id = $1 ORDER BY seq, iteration";
        self.all(sql, args![run_id]).await?.iter().map(StepExecRow::from_row).collect()
    }

    pub async fn step_execution(&self, id: &str) -> Result<Option<StepExecRow>> {
        let sql = "SELECT id, run_id, step_id, iteration, seq, phase, action, state, attempt, idempotency_key, input, plan, output, revert_state, error, error_code, reason, run_after, started_at, finished_at FROM step_executions WHERE id = $1";
        self.opt(sql, args![id]).await?.map(|r| StepExecRow::from_row(&r)).transpose()
    }

    pub async fn playbook_source(&self, hash: &str) -> Result<Option<(String, String)>> {
        Ok(match self.opt("SELECT path, source FROM playbook_versions WHERE hash = $1", args![hash]).await? {
            Some(r) => Some((r.text("path")?, r.text("source")?)),
            None => None,
        })
    }

    pub async fn alert_body(&self, alert_id: &str) -> Result<Option<serde_json::Value>> {
        self.opt("SELECT body FROM alerts WHERE id = $1", args![alert_id]).await?.map(|r| r.json("body")).transpose()
    }
}

/// Writes inside a fenced transaction.
impl Tx {
    pub async fn insert_step(&mut self, s: &StepExecRow) -> Result<()> {
        let json = |v: &Option<serde_json::Value>| v.as_ref().map(|v| v.to_string());
        self.exec(
            "INSERT INTO step_executions (id, run_id, step_id, iteration, seq, phase, action, state, attempt, idempotency_key, input, plan, output, revert_state, error, error_code, reason, run_after, started_at, finished_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
            args![
                &s.id,
                &s.run_id,
                &s.step_id,
                s.iteration,
                s.seq,
                &s.phase,
                &s.action,
                s.state.as_str(),
                s.attempt,
                &s.idempotency_key,
                json(&s.input),
                json(&s.plan),
                json(&s.output),
                json(&s.revert_state),
                s.error.clone(),
                s.error_code.clone(),
                s.reason.clone(),
                s.run_after,
                s.started_at,
                s.finished_at
            ],
        )
        .await?;
        Ok(())
    }

    /// Records the intent to call the connector: attempt `attempt`, committed before the call.
    /// Fenced by the previous attempt number.
    pub async fn start_step(&mut self, id: &str, prev_attempt: i64, attempt: i64, now: i64) -> Result<bool> {
        let n = self
            .exec(
                "UPDATE step_executions SET state = 'started', attempt = $1, started_at = $2, run_after = NULL WHERE id = $3 AND attempt = $4 AND state IN ('planned', 'started')",
                args![attempt, now, id, prev_attempt],
            )
            .await?;
        Ok(n == 1)
    }

    /// Records a final outcome, fenced by the attempt that produced it.
    #[allow(clippy::too_many_arguments)]
    pub async fn finish_step(
        &mut self,
        id: &str,
        attempt: i64,
        state: StepState,
        output: Option<&serde_json::Value>,
        revert_state: Option<&serde_json::Value>,
        error: Option<(&str, &str)>,
        reason: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let n = self
            .exec(
                "UPDATE step_executions SET state = $1, output = $2, revert_state = $3, error = $4, error_code = $5, reason = $6, finished_at = $7, run_after = NULL \
                 WHERE id = $8 AND attempt = $9 AND state NOT IN ('succeeded', 'failed', 'skipped')",
                args![
                    state.as_str(),
                    output.map(|v| v.to_string()),
                    revert_state.map(|v| v.to_string()),
                    error.map(|e| e.1),
                    error.map(|e| e.0),
                    reason,
                    now,
                    id,
                    attempt
                ],
            )
            .await?;
        Ok(n == 1)
    }

    /// Puts a step back to `planned` until `run_after` (a durable retry).
    pub async fn schedule_retry(
        &mut self,
        id: &str,
        attempt: i64,
        run_after: i64,
        error: (&str, &str),
    ) -> Result<bool> {
        let n = self
            .exec(
                "UPDATE step_executions SET state = 'planned', run_after = $1, error = $2, error_code = $3 WHERE id = $4 AND attempt = $5 AND state = 'started'",
                args![run_after, error.1, error.0, id, attempt],
            )
            .await?;
        Ok(n == 1)
    }

    pub async fn set_cursor(&mut self, run_id: &str, cursor: i64) -> Result<()> {
        self.exec("UPDATE runs SET cursor = $1 WHERE id = $2", args![cursor, run_id]).await?;
        Ok(())
    }

    pub async fn set_vars(&mut self, run_id: &str, vars: &serde_json::Value) -> Result<()> {
        self.exec("UPDATE runs SET vars = $1 WHERE id = $2", args![vars.to_string(), run_id]).await?;
        Ok(())
    }

    /// Moves a run to `state` (never out of a terminal state). Terminal states release the
    /// lease and record `finished_at`; waits record `run_after`.
    pub async fn set_run_state(
        &mut self,
        run_id: &str,
        state: &RunState,
        run_after: i64,
        error: Option<&str>,
        now: i64,
    ) -> Result<bool> {
        let (s, kind, wait_ref) = state.columns();
        let terminal = state.is_terminal();
        let n = self
            .exec(
                "UPDATE runs SET state = $1, wait_kind = $2, wait_ref = $3, run_after = $4, error = COALESCE($5, error), updated_at = $6, \
                 finished_at = CASE WHEN $7 = 1 THEN $6 ELSE finished_at END, \
                 lease_owner = CASE WHEN $1 = 'running' THEN lease_owner ELSE NULL END, \
                 lease_until = CASE WHEN $1 = 'running' THEN lease_until ELSE NULL END \
                 WHERE id = $8 AND state NOT IN ('succeeded', 'failed', 'closed_benign', 'cancelled')",
                args![s, kind, wait_ref, run_after, error, now, i64::from(terminal), run_id],
            )
            .await?;
        Ok(n == 1)
    }

    /// Closes an incident with a resolution (`benign`, `cancelled`, ...).
    pub async fn close_incident(&mut self, incident_id: &str, resolution: &str, now: i64) -> Result<()> {
        self.exec(
            "UPDATE incidents SET state = 'closed', resolution = $1, closed_at = $2 WHERE id = $3 AND state = 'open'",
            args![resolution, now, incident_id],
        )
        .await?;
        Ok(())
    }
}
