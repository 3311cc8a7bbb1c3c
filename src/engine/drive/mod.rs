//! Driving one claimed run through its steps.
//!
//! For each step: evaluate `when`, expand `foreach`, render the input, ask the connector for its
//! plan, and either wait for approval, or commit the intent (attempt n, idempotency key,
//! rendered input) and call the connector. Its outcome is committed — with the cursor move, the
//! variables and the timeline notes — before the run moves on. A retryable error becomes a
//! durable `run_after`; nothing waits in memory. Every write goes through a fenced transaction,
//! so a worker that lost its lease stops without writing.
//!
//! After a crash the next owner finds the step `started` and calls the connector again with the
//! same idempotency key: the connector makes that take effect once.
//!
//! `call.rs` calls the connector (intent, call, retry); `conclude.rs` records how a step item
//! ended and what follows from it.

mod call;
mod conclude;

use call::Pending;
use conclude::{Conclusion, RowRef};

use super::approval::{self, Requirement};
use super::context::{RunContext, incident_json, step_view};
use super::{Inner, LostSignal};
use crate::playbook::{Playbook, Step};
use crate::store::{
    ApprovalRow, ApprovalState, Claim, RunRow, RunState, StepExecRow, StepState, Tx, Wait, append_event, new_id,
};
use floodgate_sdk::{ActionCall, CallContext, Connector};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::sync::Arc;

/// Why driving stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The run waits (approval, retry) and is no longer ours.
    Suspended,
    /// The run reached a terminal state.
    Finished,
    /// Our lease was lost; another worker owns the run now.
    Lost,
    /// Shutting down: the run went back to the queue.
    Released,
}

/// The most items a `foreach` may expand to.
const MAX_ITEMS: usize = 1000;

/// Same for every attempt of the same step item of the same run, and after a crash.
pub fn idempotency_key(run_id: &str, step_id: &str, iteration: usize) -> String {
    let h = Sha256::digest(format!("{run_id}\u{1f}{step_id}\u{1f}{iteration}").as_bytes());
    format!("fg-{}", &hex::encode(h)[..32])
}

struct Drive<'a> {
    eng: &'a Inner,
    claim: &'a Claim,
    lost: &'a LostSignal,
    run: RunRow,
    pb: Arc<Playbook>,
    ctx: RunContext,
    execs: Vec<StepExecRow>,
}

pub async fn drive(eng: &Inner, claim: &Claim, lost: &LostSignal) -> Result<Stop, crate::engine::EngineError> {
    let run =
        eng.store.run(&claim.run_id).await?.ok_or_else(|| crate::engine::EngineError::Missing(claim.run_id.clone()))?;
    if run.state.is_terminal() {
        return Ok(Stop::Finished);
    }
    let alert = eng.store.alert_body(&run.alert_id).await?.unwrap_or(Value::Null);
    let incident = eng
        .store
        .incident(&run.incident_id)
        .await?
        .map(|i| incident_json(&i, eng.settings.public_url.as_deref()))
        .unwrap_or(Value::Null);
    let pb = match eng.playbooks.by_hash(&eng.store, &run.playbook_hash).await {
        Ok(p) => p,
        Err(e) => {
            let mut tx = match eng.store.begin_fenced(claim, eng.now()).await? {
                Some(tx) => tx,
                None => return Ok(Stop::Lost),
            };
            let msg = format!("cannot load playbook version {}: {e}", run.playbook_hash);
            tx.set_run_state(&run.id, &RunState::Failed, eng.now(), Some(&msg), eng.now()).await?;
            append_event(
                &mut tx,
                eng.now(),
                Some(&run.incident_id),
                Some(&run.id),
                None,
                "run_finished",
                &json!({"state": "failed", "error": msg}),
            )
            .await?;
            tx.commit().await?;
            return Ok(Stop::Finished);
        }
    };
    let execs = eng.store.step_executions(&run.id).await?;
    let ctx = RunContext::new(&run, &pb, alert, incident, &execs);
    let mut d = Drive { eng, claim, lost, run, pb, ctx, execs };
    if d.run.cursor == 0 && d.execs.is_empty() {
        d.event(None, "run_started", json!({"playbook": d.pb.id, "worker": claim.owner, "epoch": claim.epoch})).await?;
    }
    loop {
        if lost.is_set() {
            return Ok(Stop::Lost);
        }
        if eng.shutting_down() {
            return d.release().await;
        }
        let idx = usize::try_from(d.run.cursor).unwrap_or(usize::MAX);
        if idx >= d.pb.steps.len() {
            return d.finish(RunState::Succeeded, None).await;
        }
        if let Some(stop) = d.step(idx).await? {
            return Ok(stop);
        }
    }
}

impl Drive<'_> {
    fn now(&self) -> i64 {
        self.eng.now()
    }

    async fn fenced(&self) -> Result<Option<Tx>, crate::engine::EngineError> {
        Ok(self.eng.store.begin_fenced(self.claim, self.now()).await?)
    }

    /// A timeline entry in its own fenced transaction.
    async fn event(&self, step: Option<&str>, kind: &str, data: Value) -> Result<(), crate::engine::EngineError> {
        if let Some(mut tx) = self.fenced().await? {
            append_event(&mut tx, self.now(), Some(&self.run.incident_id), Some(&self.run.id), step, kind, &data)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    async fn release(&mut self) -> Result<Stop, crate::engine::EngineError> {
        let Some(mut tx) = self.fenced().await? else {
            return Ok(Stop::Lost);
        };
        tx.set_run_state(&self.run.id, &RunState::Queued, self.now(), None, self.now()).await?;
        tx.commit().await?;
        Ok(Stop::Released)
    }

    async fn finish(&mut self, state: RunState, error: Option<&str>) -> Result<Stop, crate::engine::EngineError> {
        let Some(mut tx) = self.fenced().await? else {
            return Ok(Stop::Lost);
        };
        let now = self.now();
        tx.set_run_state(&self.run.id, &state, now, error, now).await?;
        append_event(
            &mut tx,
            now,
            Some(&self.run.incident_id),
            Some(&self.run.id),
            None,
            "run_finished",
            &json!({"state": state.as_str(), "error": error}),
        )
        .await?;
        tx.commit().await?;
        self.eng.metrics.run_finished(state.as_str());
        Ok(Stop::Finished)
    }

    async fn wait(&mut self, state: RunState, run_after: i64) -> Result<Option<Stop>, crate::engine::EngineError> {
        let Some(mut tx) = self.fenced().await? else {
            return Ok(Some(Stop::Lost));
        };
        tx.set_run_state(&self.run.id, &state, run_after, None, self.now()).await?;
        tx.commit().await?;
        Ok(Some(Stop::Suspended))
    }

    fn exec(&self, step: &Step, i: usize) -> Option<&StepExecRow> {
        self.execs.iter().find(|e| e.step_id == step.id && e.iteration == i as i64)
    }

    fn call_ctx(&self, step: &Step, attempt: i64) -> CallContext {
        CallContext {
            run_id: self.run.id.clone(),
            step_id: step.id.clone(),
            incident_id: self.run.incident_id.clone(),
            playbook_id: self.pb.id.clone(),
            attempt: u32::try_from(attempt).unwrap_or(u32::MAX),
            alert: self.ctx.alert.clone(),
            incident: self.ctx.incident.clone(),
            incident_url: self.ctx.incident["url"].as_str().map(str::to_string),
        }
    }

    /// Advances through one step. `None` means go on with the next step.
    async fn step(&mut self, idx: usize) -> Result<Option<Stop>, crate::engine::EngineError> {
        let pb = self.pb.clone();
        let step = &pb.steps[idx];
        let started = self.execs.iter().any(|e| e.step_id == step.id);
        if !started && let Some(c) = &step.when {
            match pb.templates.eval(c, &self.ctx.tera(None)) {
                Ok(true) => {}
                Ok(false) => {
                    return self
                        .conclude(
                            idx,
                            step,
                            0,
                            true,
                            RowRef::New { input: None, plan: None, attempt: 0 },
                            Conclusion::skipped("when: condition is false"),
                        )
                        .await;
                }
                Err(e) => {
                    return self
                        .conclude(
                            idx,
                            step,
                            0,
                            true,
                            RowRef::New { input: None, plan: None, attempt: 0 },
                            Conclusion::failed("condition", format!("when: {e}")),
                        )
                        .await;
                }
            }
        }
        let items: Vec<Option<Value>> = match &step.foreach {
            None => vec![None],
            Some(t) => {
                let fail = |m: String| Conclusion::failed("foreach", m);
                let new = || RowRef::New { input: None, plan: None, attempt: 0 };
                match pb.templates.render_value(t, &self.ctx.tera(None)) {
                    Ok(Value::Array(a)) if a.is_empty() => {
                        return self
                            .conclude(idx, step, 0, true, new(), Conclusion::skipped("foreach: the list is empty"))
                            .await;
                    }
                    Ok(Value::Array(a)) if a.len() > MAX_ITEMS => {
                        return self
                            .conclude(
                                idx,
                                step,
                                0,
                                true,
                                new(),
                                fail(format!("foreach: {} items; at most {MAX_ITEMS}", a.len())),
                            )
                            .await;
                    }
                    Ok(Value::Array(a)) => a.into_iter().map(Some).collect(),
                    Ok(other) => {
                        return self
                            .conclude(idx, step, 0, true, new(), fail(format!("foreach: expected a list, got {other}")))
                            .await;
                    }
                    Err(e) => {
                        return self.conclude(idx, step, 0, true, new(), fail(format!("foreach: {e}"))).await;
                    }
                }
            }
        };
        let n = items.len();
        for (i, item) in items.iter().enumerate() {
            let exec = self.exec(step, i).cloned();
            if exec.as_ref().is_some_and(|e| e.state.is_terminal()) {
                continue;
            }
            if let Some(stop) = self.item(idx, step, i, item.as_ref(), exec, i + 1 == n).await? {
                return Ok(Some(stop));
            }
        }
        if self.run.cursor == idx as i64 {
            // Every item was already concluded (e.g. by a worker that crashed before moving on).
            let Some(mut tx) = self.fenced().await? else {
                return Ok(Some(Stop::Lost));
            };
            tx.set_cursor(&self.run.id, idx as i64 + 1).await?;
            tx.commit().await?;
            self.after_step(idx, step);
        }
        Ok(None)
    }

    fn after_step(&mut self, idx: usize, step: &Step) {
        self.run.cursor = idx as i64 + 1;
        let mine: Vec<&StepExecRow> = self.execs.iter().filter(|e| e.step_id == step.id).collect();
        let view = step_view(step, &mine);
        self.ctx.steps.insert(step.id.clone(), view);
    }

    /// One item of a step (the only one without `foreach`).
    async fn item(
        &mut self,
        idx: usize,
        step: &Step,
        i: usize,
        item: Option<&Value>,
        exec: Option<StepExecRow>,
        last: bool,
    ) -> Result<Option<Stop>, crate::engine::EngineError> {
        let Some(conn) = self.eng.connectors.get(&step.connector).cloned() else {
            let c = Conclusion::failed("no_connector", format!("connector {:?} is not available", step.connector));
            return self.conclude(idx, step, i, last, RowRef::New { input: None, plan: None, attempt: 0 }, c).await;
        };
        let Some(e) = exec else {
            return self.first_try(idx, step, i, item, last, conn).await;
        };
        if e.state == StepState::Planned {
            if let Some(a) = self.eng.store.approval_for_step(&e.id).await? {
                match a.state {
                    ApprovalState::Pending => {
                        return self.wait(RunState::Waiting(Wait::Approval(a.id.clone())), a.deadline).await;
                    }
                    ApprovalState::Denied | ApprovalState::Expired => {
                        let why = a.decided_reason.clone().unwrap_or_else(|| format!("approval {}", a.state.as_str()));
                        let c = Conclusion::skipped(format!("not approved: {why}"));
                        return self
                            .conclude(idx, step, i, last, RowRef::Existing { id: e.id.clone(), attempt: e.attempt }, c)
                            .await;
                    }
                    ApprovalState::Approved => {}
                }
            }
            if let Some(at) = e.run_after
                && at > self.now()
            {
                return self.wait(RunState::Waiting(Wait::Retry), at).await;
            }
        }
        // Approved, due for a retry, or `started` by a worker that died: call again with the
        // same idempotency key.
        let input = e.input.clone().unwrap_or(Value::Null);
        self.execute(idx, step, i, last, conn, Pending::Existing(Box::new(e)), input).await
    }

    async fn first_try(
        &mut self,
        idx: usize,
        step: &Step,
        i: usize,
        item: Option<&Value>,
        last: bool,
        conn: Arc<dyn Connector>,
    ) -> Result<Option<Stop>, crate::engine::EngineError> {
        let new = |input: Option<Value>, plan: Option<Value>| RowRef::New { input, plan, attempt: 0 };
        let input = match self.pb.templates.render_input(&step.input, &self.ctx.tera(item)) {
            Ok(v) => v,
            Err(e) => {
                return self
                    .conclude(
                        idx,
                        step,
                        i,
                        last,
                        new(None, None),
                        Conclusion::failed("render", format!("cannot render inputs: {e}")),
                    )
                    .await;
            }
        };
        let key = idempotency_key(&self.run.id, &step.id, i);
        let call_ctx = self.call_ctx(step, 1);
        let refs = self.eng.refs.clone();
        let call = ActionCall {
            action: &step.action_name,
            input: &input,
            idempotency_key: &key,
            ctx: &call_ctx,
            refs: refs.as_ref(),
        };
        let plan = match conn.plan(&call) {
            Ok(p) => p,
            Err(e) => {
                return self
                    .conclude(
                        idx,
                        step,
                        i,
                        last,
                        new(Some(input.clone()), None),
                        Conclusion::failed(e.code(), e.message()),
                    )
                    .await;
            }
        };
        let plan_json = serde_json::to_value(&plan).unwrap_or(Value::Null);
        match approval::requirement(step, &self.pb, &self.ctx.alert, &self.eng.directory) {
            Requirement::None => {
                self.execute(idx, step, i, last, conn, Pending::New { plan: plan_json, auto: None }, input).await
            }
            Requirement::Auto { rule, fallback } => {
                let auto = AutoGrant { rule, fallback };
                self.execute(idx, step, i, last, conn, Pending::New { plan: plan_json, auto: Some(auto) }, input).await
            }
            Requirement::Nobody(why) => {
                self.conclude(
                    idx,
                    step,
                    i,
                    last,
                    new(Some(input), Some(plan_json)),
                    Conclusion::failed("no_approvers", why),
                )
                .await
            }
            Requirement::Ask(spec) => self.ask(step, i, input, plan_json, &spec, None).await,
        }
    }

    /// Records the step as planned and asks people for approval; the run waits.
    pub(super) async fn ask(
        &mut self,
        step: &Step,
        i: usize,
        input: Value,
        plan: Value,
        spec: &crate::playbook::ApprovalSpec,
        note: Option<String>,
    ) -> Result<Option<Stop>, crate::engine::EngineError> {
        let Some(mut tx) = self.fenced().await? else {
            return Ok(Some(Stop::Lost));
        };
        let now = self.now();
        let row = self.new_row(step, i, StepState::Planned, 0, Some(input), Some(plan.clone()));
        tx.insert_step(&row).await?;
        let approval = ApprovalRow {
            id: new_id("apr"),
            run_id: self.run.id.clone(),
            step_exec_id: row.id.clone(),
            step_id: step.id.clone(),
            incident_id: self.run.incident_id.clone(),
            state: ApprovalState::Pending,
            groups: spec.groups.clone(),
            quorum: i64::from(spec.quorum),
            timeout_ms: spec.timeout.as_millis() as i64,
            deadline: now + spec.timeout.as_millis() as i64,
            on_timeout: spec.on_timeout,
            escalation: spec.escalate_to.clone(),
            escalation_level: 0,
            target_user: self.ctx.alert["entities"]["user"].as_str().map(str::to_string),
            summary: approval_summary(step, plan["summary"].as_str().unwrap_or("")),
            plan,
            auto_rule: None,
            decided_at: None,
            decided_reason: None,
            created_at: now,
        };
        tx.insert_approval(&approval).await?;
        tx.set_run_state(
            &self.run.id,
            &RunState::Waiting(Wait::Approval(approval.id.clone())),
            approval.deadline,
            None,
            now,
        )
        .await?;
        append_event(
            &mut tx,
            now,
            Some(&self.run.incident_id),
            Some(&self.run.id),
            Some(&step.id),
            "approval_requested",
            &json!({"approval_id": approval.id, "groups": spec.groups, "quorum": spec.quorum,
                    "deadline": crate::clock::rfc3339(approval.deadline), "summary": approval.summary, "note": note}),
        )
        .await?;
        tx.commit().await?;
        self.execs.push(row);
        self.eng.approval_requested(&approval);
        Ok(Some(Stop::Suspended))
    }

    fn new_row(
        &self,
        step: &Step,
        i: usize,
        state: StepState,
        attempt: i64,
        input: Option<Value>,
        plan: Option<Value>,
    ) -> StepExecRow {
        StepExecRow {
            id: new_id("stp"),
            run_id: self.run.id.clone(),
            step_id: step.id.clone(),
            iteration: i as i64,
            seq: self.pb.steps.iter().position(|s| s.id == step.id).unwrap_or(0) as i64,
            phase: step.phase.as_str().to_string(),
            action: step.action.clone(),
            state,
            attempt,
            idempotency_key: idempotency_key(&self.run.id, &step.id, i),
            input,
            plan,
            output: None,
            revert_state: None,
            error: None,
            error_code: None,
            reason: None,
            run_after: None,
            started_at: None,
            finished_at: None,
        }
    }
}

fn approval_summary(step: &Step, plan_summary: &str) -> String {
    let what = step.name.clone().unwrap_or_else(|| step.id.clone());
    if plan_summary.is_empty() { format!("{what}: {}", step.action) } else { format!("{what}: {plan_summary}") }
}

/// An automatic approval to record, with the people to ask if the hourly cap is reached.
pub(super) struct AutoGrant {
    pub rule: String,
    pub fallback: Option<crate::playbook::ApprovalSpec>,
}
