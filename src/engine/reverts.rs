//! Temporary containment: when a step with `revert_after` succeeds, its revert is scheduled in
//! the same transaction; when it falls due, the timer loop claims it with a lease, commits the
//! attempt, calls the connector's `revert()` with the state the step recorded (e.g. exactly the
//! IPs it added) and an idempotency key of its own, and records the outcome — retrying durably
//! like any step, and on the incident's timeline (and so in the audit trail).
//!
//! People in `policy.revert_managers` (default: the default approvers) may extend a scheduled
//! revert or make the containment permanent.

use super::{Engine, EngineError};
use crate::store::reverts::{RevertClaim, RevertRow, RevertState};
use crate::store::{Result as StoreResult, append_event};
use floodgate_sdk::{ActionCall, ActionError, CallContext};
use serde_json::{Value, json};
use std::time::Duration;

/// Attempts before a revert is given up (and left for people, loudly, on the timeline).
const MAX_ATTEMPTS: i64 = 6;

fn backoff(attempt: i64) -> i64 {
    // 10 s, 20 s, 40 s ... capped at 10 minutes.
    (10_000i64 << attempt.clamp(0, 6)).min(600_000)
}

/// The revert's own idempotency key: stable, and distinct from the step's.
pub fn revert_key(step_key: &str) -> String {
    format!("{step_key}-revert")
}

impl Engine {
    /// Runs every revert that is due now. Returns how many it ran.
    pub async fn run_due_reverts(&self) -> Result<usize, EngineError> {
        let i = self.inner();
        let lease = i.settings.lease.as_millis() as i64;
        let claims = i.store.claim_reverts(&i.settings.worker_id, i.now(), lease, 10).await?;
        let n = claims.len();
        for c in claims {
            if let Err(e) = self.run_revert(&c).await {
                tracing::error!(revert = %c.id, error = %e, "revert failed to run; it is retried when its lease expires");
            }
        }
        Ok(n)
    }

    async fn run_revert(&self, claim: &RevertClaim) -> Result<(), EngineError> {
        let i = self.inner();
        let store = &i.store;
        let Some(r) = store.revert(&claim.id).await? else { return Ok(()) };
        let exec = store
            .step_execution(&r.step_exec_id)
            .await?
            .ok_or_else(|| EngineError::Missing(format!("step execution {}", r.step_exec_id)))?;
        let run = store.run(&r.run_id).await?.ok_or_else(|| EngineError::Missing(r.run_id.clone()))?;
        let attempt = r.attempt + 1;
        let key = revert_key(&exec.idempotency_key);
        let event = |kind: &'static str, data: Value| (kind, data);
        let now = i.now();
        let mut tx = store.begin().await?;
        if !tx.start_revert(claim, attempt, now).await? {
            return Ok(());
        }
        record(
            &mut tx,
            &r,
            event(
                "revert_started",
                json!({"revert_id": r.id, "action": r.action, "attempt": attempt, "idempotency_key": key}),
            ),
            now,
        )
        .await?;
        tx.commit().await?;

        let (connector_name, action_name) = r.action.split_once('.').unwrap_or((&r.action, ""));
        let result = match i.connectors.get(connector_name) {
            None => {
                Err(ActionError::permanent("no_connector", format!("connector {connector_name:?} is not available")))
            }
            Some(conn) => {
                let input = exec.input.clone().unwrap_or(Value::Null);
                let alert = store.alert_body(&run.alert_id).await?.unwrap_or(Value::Null);
                let ctx = CallContext {
                    run_id: r.run_id.clone(),
                    step_id: r.step_id.clone(),
                    incident_id: r.incident_id.clone(),
                    playbook_id: run.playbook_id.clone(),
                    attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
                    alert,
                    incident: Value::Null,
                    incident_url: i.settings.public_url.as_ref().map(|u| format!("{u}/incidents/{}", r.incident_id)),
                };
                let refs = i.refs.clone();
                let call = ActionCall {
                    action: action_name,
                    input: &input,
                    idempotency_key: &key,
                    ctx: &ctx,
                    refs: refs.as_ref(),
                };
                let state = exec.revert_state.clone().unwrap_or(Value::Null);
                match tokio::time::timeout(conn.default_timeout(), conn.revert(&call, &state)).await {
                    Ok(r) => r,
                    Err(_) => Err(ActionError::retryable("timeout", "the revert gave no answer in time")),
                }
            }
        };

        let now = i.now();
        let mut tx = store.begin().await?;
        let (state, run_after, output, error, ev) = match result {
            Ok(out) => (
                RevertState::Reverted,
                now,
                Some(out.output.clone()),
                None,
                event(
                    "revert_succeeded",
                    json!({"revert_id": r.id, "attempt": attempt, "output": out.output, "notes": out.notes}),
                ),
            ),
            Err(e) if e.is_retryable() && attempt < MAX_ATTEMPTS => {
                let at = now + backoff(attempt).max(e.retry_after_hint().map_or(0, |d| d.as_millis() as i64));
                (
                    RevertState::Scheduled,
                    at,
                    None,
                    Some(e.message().to_string()),
                    event(
                        "revert_retry_scheduled",
                        json!({"revert_id": r.id, "attempt": attempt, "error": e.message(), "code": e.code(), "retry_at": crate::clock::rfc3339(at)}),
                    ),
                )
            }
            Err(e) => {
                i.metrics.connector_error(connector_name, e.code());
                (
                    RevertState::Failed,
                    now,
                    None,
                    Some(e.message().to_string()),
                    event(
                        "revert_failed",
                        json!({"revert_id": r.id, "attempt": attempt, "error": e.message(), "code": e.code(), "note": "the containment is still in place: undo it by hand"}),
                    ),
                )
            }
        };
        if !tx.finish_revert(claim, state, run_after, output.as_ref(), error.as_deref(), now).await? {
            return Ok(());
        }
        record(&mut tx, &r, ev, now).await?;
        tx.commit().await?;
        Ok(())
    }

    fn may_manage_reverts(&self, identity: &str) -> bool {
        let dir = &self.inner().directory;
        let groups = if dir.policy.revert_managers.is_empty() {
            &dir.policy.default_approvers
        } else {
            &dir.policy.revert_managers
        };
        dir.people.contains_key(identity) && dir.members(groups).contains(identity)
    }

    /// Moves a scheduled revert `by` later. Refused (the `Err` string) for people outside the
    /// revert managers, or when the revert is no longer scheduled.
    pub async fn extend_revert(
        &self,
        id: &str,
        identity: &str,
        by: Duration,
        reason: Option<&str>,
    ) -> Result<std::result::Result<RevertRow, String>, EngineError> {
        self.change_revert(id, identity, reason, Some(by)).await
    }

    /// Makes a scheduled containment permanent (its revert will not run).
    pub async fn cancel_revert(
        &self,
        id: &str,
        identity: &str,
        reason: Option<&str>,
    ) -> Result<std::result::Result<RevertRow, String>, EngineError> {
        self.change_revert(id, identity, reason, None).await
    }

    async fn change_revert(
        &self,
        id: &str,
        identity: &str,
        reason: Option<&str>,
        extend: Option<Duration>,
    ) -> Result<std::result::Result<RevertRow, String>, EngineError> {
        if !self.may_manage_reverts(identity) {
            return Ok(Err(format!("{identity} may not change temporary containment (policy.revert_managers)")));
        }
        let store = &self.inner().store;
        let now = self.now();
        let mut tx = store.begin_durable().await?;
        let Some(r) = tx.lock_revert(id).await? else {
            return Err(EngineError::Store(crate::store::StoreError::NotFound(format!("revert {id}"))));
        };
        if r.state != RevertState::Scheduled {
            return Ok(Err(format!("revert {id} is {} and can no longer be changed", r.state.as_str())));
        }
        let (kind, data, ok) = match extend {
            Some(by) => {
                let due = r.due_at.max(now) + by.as_millis() as i64;
                let ok = tx.reschedule_revert(id, due, now).await?;
                (
                    "revert_extended",
                    json!({"revert_id": id, "by": crate::duration::format(by), "due_at": crate::clock::rfc3339(due), "identity": identity, "reason": reason}),
                    ok,
                )
            }
            None => {
                let ok = tx.make_revert_permanent(id, now).await?;
                (
                    "revert_cancelled",
                    json!({"revert_id": id, "identity": identity, "reason": reason, "note": "the containment is now permanent"}),
                    ok,
                )
            }
        };
        if !ok {
            return Ok(Err(format!("revert {id} started meanwhile and can no longer be changed")));
        }
        record(&mut tx, &r, (kind, data), now).await?;
        tx.commit().await?;
        let row = store.revert(id).await?.ok_or_else(|| EngineError::Missing(format!("revert {id}")))?;
        Ok(Ok(row))
    }
}

/// A timeline (and audit) entry about a revert.
async fn record(tx: &mut crate::store::Tx, r: &RevertRow, (kind, data): (&str, Value), now: i64) -> StoreResult<()> {
    append_event(tx, now, Some(&r.incident_id), Some(&r.run_id), Some(&r.step_id), kind, &data).await
}
