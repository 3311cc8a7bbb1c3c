//! Calling a connector: commit the intent (attempt n, idempotency key), call with a timeout
//! while the lease is watched, then hand the outcome to `conclude` or schedule a durable retry.

use super::conclude::{Conclusion, RowRef};
use super::{AutoGrant, Drive, Stop, idempotency_key};
use crate::playbook::Step;
use crate::store::{ApprovalRow, ApprovalState, RunRow, RunState, StepExecRow, StepState, Wait, append_event, new_id};
use floodgate_sdk::{ActionCall, ActionError, Connector};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::Instant;

/// A step item about to be called.
pub(super) enum Pending {
    New { plan: Value, auto: Option<AutoGrant> },
    Existing(Box<StepExecRow>),
}

impl Drive<'_> {
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn execute(
        &mut self,
        idx: usize,
        step: &Step,
        i: usize,
        last: bool,
        conn: Arc<dyn Connector>,
        pending: Pending,
        input: Value,
    ) -> Result<Option<Stop>, crate::engine::EngineError> {
        let now = self.now();
        // Pure actions (no effect outside floodgate) skip the intent commit on their first try:
        // repeating one after a crash is harmless.
        let skip_intent = step.spec.pure && matches!(&pending, Pending::New { auto: None, .. });
        let (row_id, attempt, plan) = match pending {
            Pending::New { plan, auto } => {
                let mut row = self.new_row(step, i, StepState::Started, 1, Some(input.clone()), Some(plan.clone()));
                row.started_at = Some(now);
                if !skip_intent {
                    let Some(mut tx) = self.fenced().await? else {
                        return Ok(Some(Stop::Lost));
                    };
                    if let Some(grant) = &auto {
                        // The hourly caps are counted under a lock, so concurrent workers (and
                        // processes) can never approve more than the policy allows.
                        tx.lock_key("auto-approve").await?;
                        let (all, mine) = tx.auto_approvals_since(now - 3_600_000, &self.pb.id).await?;
                        let limits = &self.eng.directory.policy.auto_approve;
                        if all >= i64::from(limits.max_per_hour) || mine >= i64::from(limits.max_per_hour_per_playbook)
                        {
                            drop(tx);
                            let note = format!(
                                "automatic approval limit reached ({all} in the last hour in all, {mine} for playbook {}; limits {} and {})",
                                self.pb.id, limits.max_per_hour, limits.max_per_hour_per_playbook
                            );
                            return match &grant.fallback {
                                Some(spec) => self.ask(step, i, input, plan, spec, Some(note)).await,
                                None => {
                                    let row = RowRef::New { input: Some(input), plan: Some(plan), attempt: 0 };
                                    let why = format!("{note}, and no approvers are configured for this step");
                                    self.conclude(idx, step, i, last, row, Conclusion::failed("no_approvers", why))
                                        .await
                                }
                            };
                        }
                    }
                    tx.insert_step(&row).await?;
                    if let Some(AutoGrant { rule, .. }) = &auto {
                        self.eng.metrics.auto_approved();
                        let a = auto_approval(&self.run, step, &row, &plan, rule, now);
                        tx.insert_approval(&a).await?;
                        append_event(
                            &mut tx,
                            now,
                            Some(&self.run.incident_id),
                            Some(&self.run.id),
                            Some(&step.id),
                            "approval_automatic",
                            &json!({"approval_id": a.id, "rule": rule}),
                        )
                        .await?;
                    }
                    append_event(
                        &mut tx,
                        now,
                        Some(&self.run.incident_id),
                        Some(&self.run.id),
                        Some(&step.id),
                        "step_started",
                        &json!({"attempt": 1, "idempotency_key": row.idempotency_key, "action": step.action}),
                    )
                    .await?;
                    tx.commit().await?;
                    crate::failpoint!("step.after_intent");
                }
                let id = row.id.clone();
                self.execs.push(row);
                (id, 1, plan)
            }
            Pending::Existing(e) => {
                let attempt = e.attempt + 1;
                let Some(mut tx) = self.fenced().await? else {
                    return Ok(Some(Stop::Lost));
                };
                if !tx.start_step(&e.id, e.attempt, attempt, now).await? {
                    return Ok(Some(Stop::Lost));
                }
                let what = if e.state == StepState::Started { "resumed after an interruption" } else { "started" };
                append_event(&mut tx, now, Some(&self.run.incident_id), Some(&self.run.id), Some(&step.id), "step_started", &json!({"attempt": attempt, "idempotency_key": e.idempotency_key, "action": step.action, "note": what})).await?;
                tx.commit().await?;
                crate::failpoint!("step.after_intent");
                if let Some(row) = self.execs.iter_mut().find(|r| r.id == e.id) {
                    row.state = StepState::Started;
                    row.attempt = attempt;
                }
                (e.id.clone(), attempt, e.plan.clone().unwrap_or(Value::Null))
            }
        };
        let _ = plan;
        let key = idempotency_key(&self.run.id, &step.id, i);
        let call_ctx = self.call_ctx(step, attempt);
        let refs = self.eng.refs.clone();
        let call = ActionCall {
            action: &step.action_name,
            input: &input,
            idempotency_key: &key,
            ctx: &call_ctx,
            refs: refs.as_ref(),
        };
        let timeout = step.timeout.unwrap_or_else(|| conn.default_timeout());
        let began = Instant::now();
        let result = tokio::select! {
            r = tokio::time::timeout(timeout, conn.execute(&call)) => match r {
                Ok(r) => r,
                Err(_) => Err(ActionError::retryable("timeout", format!("{} gave no answer within {}", step.action, crate::duration::format(timeout)))),
            },
            () = self.lost.wait() => return Ok(Some(Stop::Lost)),
        };
        self.eng.metrics.step_duration(began.elapsed());
        // Crash tests aim here: the vendor acted, floodgate has not recorded it yet. Pure
        // actions have nothing to repeat, so the point only marks calls with effects.
        if !step.spec.pure {
            crate::failpoint!("step.before_outcome");
        }
        let row = if skip_intent {
            RowRef::New { input: Some(input.clone()), plan: None, attempt: 1 }
        } else {
            RowRef::Existing { id: row_id.clone(), attempt }
        };
        match result {
            Ok(out) => self.conclude(idx, step, i, last, row, Conclusion::succeeded(out)).await,
            Err(e) if e.is_retryable() && attempt < i64::from(step.retry.max_attempts) => {
                self.eng.metrics.connector_error(&step.connector, e.code());
                let mut delay = step.retry.delay(u32::try_from(attempt + 1).unwrap_or(u32::MAX));
                if let Some(ra) = e.retry_after_hint() {
                    delay = delay.max(ra);
                }
                let run_after = self.now() + delay.as_millis() as i64;
                let Some(mut tx) = self.fenced().await? else {
                    return Ok(Some(Stop::Lost));
                };
                if skip_intent {
                    // The row exists in memory only: insert it as a planned retry.
                    if let Some(r) = self.execs.iter_mut().find(|r| r.id == row_id) {
                        r.state = StepState::Planned;
                        r.run_after = Some(run_after);
                        r.error_code = Some(e.code().to_string());
                        r.error = Some(e.message().to_string());
                        let r = r.clone();
                        tx.insert_step(&r).await?;
                    }
                } else if !tx.schedule_retry(&row_id, attempt, run_after, (e.code(), e.message())).await? {
                    return Ok(Some(Stop::Lost));
                }
                tx.set_run_state(&self.run.id, &RunState::Waiting(Wait::Retry), run_after, None, self.now()).await?;
                append_event(&mut tx, self.now(), Some(&self.run.incident_id), Some(&self.run.id), Some(&step.id), "step_retry_scheduled", &json!({"attempt": attempt, "error": e.message(), "code": e.code(), "retry_at": crate::clock::rfc3339(run_after)})).await?;
                tx.commit().await?;
                if let Some(r) = self.execs.iter_mut().find(|r| r.id == row_id) {
                    r.state = StepState::Planned;
                    r.run_after = Some(run_after);
                }
                Ok(Some(Stop::Suspended))
            }
            Err(e) => {
                self.eng.metrics.connector_error(&step.connector, e.code());
                let msg = if attempt > 1 {
                    format!("{} (after {attempt} attempts)", e.message())
                } else {
                    e.message().to_string()
                };
                self.conclude(idx, step, i, last, row, Conclusion::failed(e.code(), msg)).await
            }
        }
    }
}

fn auto_approval(run: &RunRow, step: &Step, row: &StepExecRow, plan: &Value, rule: &str, now: i64) -> ApprovalRow {
    ApprovalRow {
        id: new_id("apr"),
        run_id: run.id.clone(),
        step_exec_id: row.id.clone(),
        step_id: step.id.clone(),
        incident_id: run.incident_id.clone(),
        state: ApprovalState::Approved,
        groups: Vec::new(),
        quorum: 0,
        timeout_ms: 0,
        deadline: now,
        on_timeout: crate::playbook::OnTimeout::Deny,
        escalation: Vec::new(),
        escalation_level: 0,
        target_user: None,
        summary: plan["summary"].as_str().unwrap_or(&step.action).to_string(),
        plan: plan.clone(),
        auto_rule: Some(rule.to_string()),
        decided_at: Some(now),
        decided_reason: Some(format!("approved automatically: {rule}")),
        created_at: now,
    }
}
