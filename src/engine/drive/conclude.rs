//! Recording how a step item ended — output, error, skip reason, variables, timeline notes — and
//! what follows from it (the next step, a benign close, a failed run), in one fenced transaction.

use super::{Drive, Stop};
use crate::playbook::{OnError, Step};
use crate::store::{RunState, StepState, append_event, new_id};
use floodgate_sdk::{ActionOutput, EndRun};
use serde_json::{Map, Value, json};

/// How a step item ended.
pub(super) struct Conclusion {
    state: StepState,
    output: Option<Value>,
    revert_state: Option<Value>,
    error: Option<(String, String)>,
    reason: Option<String>,
    notes: Vec<String>,
    set_vars: Map<String, Value>,
    end_run: Option<EndRun>,
}

impl Conclusion {
    pub(super) fn failed(code: &str, message: impl Into<String>) -> Self {
        Conclusion {
            state: StepState::Failed,
            output: None,
            revert_state: None,
            error: Some((code.to_string(), message.into())),
            reason: None,
            notes: Vec::new(),
            set_vars: Map::new(),
            end_run: None,
        }
    }
    pub(super) fn skipped(reason: impl Into<String>) -> Self {
        Conclusion { state: StepState::Skipped, reason: Some(reason.into()), error: None, ..Self::failed("", "") }
    }
    pub(super) fn succeeded(out: ActionOutput) -> Self {
        Conclusion {
            state: StepState::Succeeded,
            output: Some(out.output),
            revert_state: out.revert_state,
            error: None,
            reason: None,
            notes: out.notes,
            set_vars: out.set_vars,
            end_run: out.end_run,
        }
    }
}

/// The row a conclusion is written to.
pub(super) enum RowRef {
    /// No row yet: insert one (at `attempt`).
    New { input: Option<Value>, plan: Option<Value>, attempt: i64 },
    /// Update the row, fenced by the attempt that produced the outcome.
    Existing { id: String, attempt: i64 },
}

impl Drive<'_> {
    /// Writes how a step item ended, and what follows from it, in one fenced transaction.
    pub(super) async fn conclude(
        &mut self,
        idx: usize,
        step: &Step,
        i: usize,
        last: bool,
        row: RowRef,
        c: Conclusion,
    ) -> Result<Option<Stop>, crate::engine::EngineError> {
        let Some(mut tx) = self.fenced().await? else {
            return Ok(Some(Stop::Lost));
        };
        let now = self.now();
        let error = c.error.as_ref().map(|(code, msg)| (code.as_str(), msg.as_str()));
        let saved = match row {
            RowRef::New { input, plan, attempt } => {
                let mut r = self.new_row(step, i, c.state, attempt, input, plan);
                if let Some(existing) = self.execs.iter().find(|e| e.step_id == step.id && e.iteration == i as i64) {
                    r.id = existing.id.clone();
                    r.started_at = existing.started_at;
                }
                r.output = c.output.clone();
                r.revert_state = c.revert_state.clone();
                r.error_code = c.error.as_ref().map(|e| e.0.clone());
                r.error = c.error.as_ref().map(|e| e.1.clone());
                r.reason = c.reason.clone();
                r.finished_at = Some(now);
                tx.insert_step(&r).await?;
                r
            }
            RowRef::Existing { id, attempt } => {
                if !tx
                    .finish_step(
                        &id,
                        attempt,
                        c.state,
                        c.output.as_ref(),
                        c.revert_state.as_ref(),
                        error,
                        c.reason.as_deref(),
                        now,
                    )
                    .await?
                {
                    return Ok(Some(Stop::Lost));
                }
                let mut r = self
                    .execs
                    .iter()
                    .find(|e| e.id == id)
                    .cloned()
                    .unwrap_or_else(|| self.new_row(step, i, c.state, attempt, None, None));
                r.state = c.state;
                r.attempt = attempt;
                r.output = c.output.clone();
                r.revert_state = c.revert_state.clone();
                r.error_code = c.error.as_ref().map(|e| e.0.clone());
                r.error = c.error.as_ref().map(|e| e.1.clone());
                r.reason = c.reason.clone();
                r.finished_at = Some(now);
                r
            }
        };
        // Temporary containment: the revert is scheduled with the success it undoes.
        if c.state == StepState::Succeeded
            && let Some(after) = step.revert_after
        {
            let (inc, run_id) = (self.run.incident_id.clone(), self.run.id.clone());
            match &c.revert_state {
                Some(_) => {
                    let id = new_id("rev");
                    let due = now + after.as_millis() as i64;
                    tx.schedule_revert(&id, &run_id, &inc, &saved.id, &step.id, &step.action, due, now).await?;
                    let data = json!({"revert_id": id, "due_at": crate::clock::rfc3339(due), "after": crate::duration::format(after)});
                    append_event(&mut tx, now, Some(&inc), Some(&run_id), Some(&step.id), "revert_scheduled", &data)
                        .await?;
                }
                None => {
                    let data = json!({"note": "the action reported nothing to undo"});
                    append_event(&mut tx, now, Some(&inc), Some(&run_id), Some(&step.id), "revert_not_needed", &data)
                        .await?;
                }
            }
        }
        if !c.set_vars.is_empty() {
            if let Value::Object(m) = &mut self.run.vars {
                m.extend(c.set_vars.clone());
            }
            tx.set_vars(&self.run.id, &self.run.vars).await?;
            self.ctx.vars = self.run.vars.clone();
        }
        let (inc, run_id, sid) = (self.run.incident_id.clone(), self.run.id.clone(), step.id.clone());
        let at = (Some(inc.as_str()), Some(run_id.as_str()), Some(sid.as_str()));
        for note in &c.notes {
            append_event(&mut tx, now, at.0, at.1, at.2, "note", &json!({"message": note})).await?;
        }
        let kind = match c.state {
            StepState::Succeeded => "step_succeeded",
            StepState::Skipped => "step_skipped",
            _ => "step_failed",
        };
        append_event(&mut tx, now, at.0, at.1, at.2, kind, &json!({"action": step.action, "iteration": i, "attempt": saved.attempt, "reason": c.reason, "error": c.error.as_ref().map(|e| &e.1), "code": c.error.as_ref().map(|e| &e.0)})).await?;
        let mut stop = None;
        if let Some(EndRun::ClosedBenign { reason }) = &c.end_run {
            tx.set_run_state(&self.run.id, &RunState::ClosedBenign, now, None, now).await?;
            tx.close_incident(&self.run.incident_id, "benign", now).await?;
            append_event(
                &mut tx,
                now,
                at.0,
                at.1,
                at.2,
                "run_finished",
                &json!({"state": "closed_benign", "reason": reason}),
            )
            .await?;
            stop = Some(Stop::Finished);
        } else if c.state == StepState::Failed && step.on_error == OnError::Fail {
            let msg = format!("step {} failed: {}", step.id, c.error.as_ref().map_or("", |e| e.1.as_str()));
            tx.set_run_state(&self.run.id, &RunState::Failed, now, Some(&msg), now).await?;
            append_event(&mut tx, now, at.0, at.1, at.2, "run_finished", &json!({"state": "failed", "error": msg}))
                .await?;
            stop = Some(Stop::Finished);
        } else if last {
            tx.set_cursor(&self.run.id, idx as i64 + 1).await?;
        }
        tx.commit().await?;
        match self.execs.iter_mut().find(|e| e.id == saved.id) {
            Some(r) => *r = saved,
            None => self.execs.push(saved),
        }
        if let Some(s) = stop {
            self.eng.metrics.run_finished(if c.end_run.is_some() { "closed_benign" } else { "failed" });
            return Ok(Some(s));
        }
        if last {
            self.after_step(idx, step);
        }
        Ok(None)
    }
}
