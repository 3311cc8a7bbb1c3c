//! What templates see while a run executes: `alert`, `incident`, `steps.<id>`, `vars`, `run`,
//! and `item` inside a `foreach`. Never secrets: nothing here comes from configuration.

use crate::playbook::{Playbook, Step};
use crate::store::{IncidentRow, RunRow, StepExecRow, StepState};
use serde_json::{Map, Value, json};

pub struct RunContext {
    pub alert: Value,
    pub incident: Value,
    pub steps: Map<String, Value>,
    pub vars: Value,
    pub run: Value,
}

pub fn incident_json(i: &IncidentRow, public_url: Option<&str>) -> Value {
    json!({
        "id": i.id,
        "title": i.title,
        "severity": i.severity,
        "state": i.state,
        "alert_count": i.alert_count,
        "group_key": i.group_key,
        "opened_at": crate::clock::rfc3339(i.opened_at),
        "url": public_url.map(|u| format!("{u}/incidents/{}", i.id)),
    })
}

/// `steps.<id>` for one step from its executions: `{status, output, error}`. A `foreach` step's
/// output is the list of its items' outputs.
pub fn step_view(step: &Step, execs: &[&StepExecRow]) -> Value {
    let status = |s: StepState| s.as_str();
    if step.foreach.is_none() {
        let Some(e) = execs.first() else {
            return json!({"status": "pending", "output": null});
        };
        return json!({"status": status(e.state), "output": e.output.clone().unwrap_or(Value::Null), "error": e.error, "reason": e.reason});
    }
    // A step skipped as a whole (its list is empty, its `when` is false) leaves one row for the
    // step, not an item: its output is the empty list.
    let whole_step_skip = |e: &&&StepExecRow| e.state == StepState::Skipped && e.input.is_none() && e.plan.is_none();
    let outputs: Vec<Value> =
        execs.iter().filter(|e| !whole_step_skip(e)).map(|e| e.output.clone().unwrap_or(Value::Null)).collect();
    let agg = if execs.iter().any(|e| e.state == StepState::Failed) {
        "failed"
    } else if !execs.is_empty() && execs.iter().all(|e| e.state == StepState::Skipped) {
        "skipped"
    } else {
        "succeeded"
    };
    json!({"status": agg, "output": outputs, "error": execs.iter().find_map(|e| e.error.clone())})
}

impl RunContext {
    pub fn new(run: &RunRow, pb: &Playbook, alert: Value, incident: Value, execs: &[StepExecRow]) -> Self {
        let mut steps = Map::new();
        for step in &pb.steps {
            let mine: Vec<&StepExecRow> = execs.iter().filter(|e| e.step_id == step.id).collect();
            if !mine.is_empty() && mine.iter().all(|e| e.state.is_terminal()) {
                steps.insert(step.id.clone(), step_view(step, &mine));
            }
        }
        RunContext {
            alert,
            incident,
            steps,
            vars: run.vars.clone(),
            run: json!({
                "id": run.id,
                "playbook": pb.id,
                "playbook_version": pb.version,
                "playbook_hash": pb.hash,
                "started_at": crate::clock::rfc3339(run.created_at),
            }),
        }
    }

    /// The tera context, with `item` bound inside a `foreach`.
    pub fn tera(&self, item: Option<&Value>) -> tera::Context {
        let mut c = tera::Context::new();
        c.insert("alert", &self.alert);
        c.insert("incident", &self.incident);
        c.insert("steps", &self.steps);
        c.insert("vars", &self.vars);
        c.insert("run", &self.run);
        if let Some(i) = item {
            c.insert("item", i);
        }
        c
    }
}
