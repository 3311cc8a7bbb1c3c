//! `floodgate simulate`: what a playbook would do with an alert — no database, no side effects.
//!
//! It walks the steps the way the engine does: conditions, `foreach`, rendered inputs, each
//! action's `plan()` (method, URL, body, secrets redacted) and where the run would wait for
//! approval. Pure built-in actions (`core.set`, `core.log`, `core.close`, ...) are evaluated in
//! memory, since they touch nothing, so variables and a benign verdict carry through. Outputs of
//! other actions exist only at run time; steps that depend on them say so.

use crate::engine::Directory;
use crate::engine::approval::{self, Requirement};
use crate::engine::registry::Connectors;
use crate::playbook::{Playbook, Step};
use floodgate_sdk::{ActionCall, CallContext, EndRun, MemoryRefStore, PlannedRequest};
use serde::Serialize;
use serde_json::{Map, Value, json};

#[derive(Debug, Serialize)]
pub struct Simulation {
    pub playbook: String,
    pub matched: bool,
    pub match_reason: String,
    pub group_key: Option<String>,
    pub steps: Vec<SimStep>,
}

#[derive(Debug, Serialize)]
pub struct SimStep {
    pub id: String,
    pub phase: String,
    pub action: String,
    pub risk: String,
    pub run: bool,
    pub reason: String,
    /// Rendered input per item (one for steps without `foreach`).
    pub inputs: Vec<Value>,
    pub approval: Option<Value>,
    pub summary: String,
    pub requests: Vec<PlannedRequest>,
}

/// Why (or why not) the playbook takes the alert.
fn matches(pb: &Playbook, alert: &Value, ctx: &tera::Context) -> (bool, String) {
    let source = alert["source"].as_str().unwrap_or("");
    let rule = alert["rule"].as_str();
    if !pb.sources.is_empty() && !pb.sources.iter().any(|s| s == source) {
        return (false, format!("source {source:?} is not one of {:?}", pb.sources));
    }
    if !pb.accepts(source, rule) {
        return (false, format!("rule {:?} matches none of {:?}", rule.unwrap_or(""), pb.rules));
    }
    if let Some(c) = &pb.when {
        match pb.templates.eval(c, ctx) {
            Ok(true) => {}
            Ok(false) => return (false, format!("match.when is false: {}", c.source)),
            Err(e) => return (false, format!("match.when cannot be evaluated on this alert: {e}")),
        }
    }
    (true, "the playbook matches this alert".into())
}

pub async fn simulate(pb: &Playbook, alert: Value, connectors: &Connectors, dir: &Directory) -> Simulation {
    let incident = json!({"id": "inc_simulated", "title": alert["title"], "severity": alert["severity"], "state": "open",
                          "alert_count": 1, "group_key": null, "opened_at": alert["received_at"], "url": null});
    let run = json!({"id": "run_simulated", "playbook": pb.id, "playbook_version": pb.version, "playbook_hash": pb.hash, "started_at": alert["received_at"]});
    let mut vars = Value::Object(pb.vars.clone());
    let mut steps_view = Map::new();
    let tera_ctx = |vars: &Value, steps: &Map<String, Value>, item: Option<&Value>| {
        let mut c = tera::Context::new();
        c.insert("alert", &alert);
        c.insert("incident", &incident);
        c.insert("steps", steps);
        c.insert("vars", vars);
        c.insert("run", &run);
        if let Some(i) = item {
            c.insert("item", i);
        }
        c
    };
    let (matched, match_reason) = matches(pb, &alert, &tera_ctx(&vars, &steps_view, None));
    let group_key =
        pb.group.as_ref().and_then(|g| pb.templates.render_text(&g.key, &tera_ctx(&vars, &steps_view, None)).ok());
    let refs = MemoryRefStore::new();
    let mut ended: Option<String> = None;
    let mut out = Vec::new();
    for step in &pb.steps {
        let mut s = SimStep {
            id: step.id.clone(),
            phase: step.phase.as_str().into(),
            action: step.action.clone(),
            risk: step.spec.risk.to_string(),
            run: false,
            reason: String::new(),
            inputs: Vec::new(),
            approval: None,
            summary: String::new(),
            requests: Vec::new(),
        };
        if !matched {
            s.reason = format!("not run: {match_reason}");
        } else if let Some(at) = &ended {
            s.reason = format!("not run: the run ends at step {at} (closed as benign)");
        }
        let ctx = tera_ctx(&vars, &steps_view, None);
        let mut runs = true;
        let mut notes = Vec::new();
        if let Some(c) = &step.when {
            match pb.templates.eval(c, &ctx) {
                Ok(true) => notes.push(format!("when holds: {}", c.source)),
                Ok(false) => {
                    runs = false;
                    notes.push(format!("skipped: when is false: {}", c.source));
                }
                Err(e) => notes.push(format!("when needs run-time data ({e}); shown as if it holds")),
            }
        }
        let items: Vec<Option<Value>> = match &step.foreach {
            None => vec![None],
            Some(t) => match pb.templates.render_value(t, &ctx) {
                Ok(Value::Array(a)) if a.is_empty() => {
                    runs = false;
                    notes.push("skipped: the foreach list is empty".into());
                    vec![]
                }
                Ok(Value::Array(a)) => a.into_iter().map(Some).collect(),
                Ok(other) => {
                    notes.push(format!("foreach gives {other}, not a list: the step would fail"));
                    vec![]
                }
                Err(e) => {
                    notes.push(format!("foreach needs run-time data ({e})"));
                    vec![None]
                }
            },
        };
        let mut summaries = Vec::new();
        let mut outputs = Vec::new();
        for item in &items {
            let input = match pb.templates.render_input(&step.input, &tera_ctx(&vars, &steps_view, item.as_ref())) {
                Ok(v) => v,
                Err(e) => {
                    notes.push(format!("input needs run-time data: {e}"));
                    continue;
                }
            };
            s.inputs.push(floodgate_sdk::text::redact_json(&input));
            let Some(conn) = connectors.get(&step.connector) else { continue };
            let call_ctx = CallContext {
                run_id: "run_simulated".into(),
                step_id: step.id.clone(),
                incident_id: "inc_simulated".into(),
                playbook_id: pb.id.clone(),
                attempt: 1,
                alert: alert.clone(),
                incident: incident.clone(),
                incident_url: None,
            };
            let key = crate::engine::idempotency_key("run_simulated", &step.id, 0);
            let call = ActionCall {
                action: &step.action_name,
                input: &input,
                idempotency_key: &key,
                ctx: &call_ctx,
                refs: &refs,
            };
            match conn.plan(&call) {
                Ok(p) => {
                    summaries.push(p.summary.clone());
                    s.requests.extend(p.requests);
                }
                Err(e) => notes.push(format!("plan failed: {e}; the step would fail")),
            }
            if step.spec.pure && runs && matched && ended.is_none() {
                // Pure actions touch nothing: evaluate them so later steps see their effects.
                if let Ok(o) = conn.execute(&call).await {
                    if let Value::Object(m) = &mut vars {
                        m.extend(o.set_vars.clone());
                    }
                    if let Some(EndRun::ClosedBenign { reason }) = &o.end_run {
                        notes.push(format!("closes the incident as benign: {reason}"));
                        ended = Some(step.id.clone());
                    }
                    outputs.push(o.output);
                }
            }
        }
        s.summary = summaries.join("; ");
        s.approval = approval_view(step, pb, &alert, dir);
        s.run = runs && matched && (ended.is_none() || ended.as_deref() == Some(step.id.as_str()));
        if s.reason.is_empty() {
            let mut r = if runs { vec!["runs".to_string()] } else { vec![] };
            r.extend(notes);
            if runs && let Some(a) = &s.approval {
                r.push(match a.get("auto") {
                    Some(rule) => format!("approved automatically ({})", rule.as_str().unwrap_or("")),
                    None => "waits for approval".to_string(),
                });
            }
            s.reason = r.join("; ");
        }
        let status = if s.run { "simulated" } else { "skipped" };
        let output = if step.foreach.is_some() {
            Value::Array(outputs)
        } else {
            outputs.into_iter().next().unwrap_or(Value::Null)
        };
        steps_view.insert(step.id.clone(), json!({"status": status, "output": output}));
        out.push(s);
    }
    Simulation { playbook: pb.id.clone(), matched, match_reason, group_key, steps: out }
}

fn approval_view(step: &Step, pb: &Playbook, alert: &Value, dir: &Directory) -> Option<Value> {
    match approval::requirement(step, pb, alert, dir) {
        Requirement::None => None,
        Requirement::Auto { rule, .. } => Some(json!({"auto": rule})),
        Requirement::Nobody(why) => Some(json!({"error": why})),
        Requirement::Ask(spec) => Some(serde_json::to_value(spec).unwrap_or(Value::Null)),
    }
}

/// The simulation as text for people.
pub fn render_text(sim: &Simulation) -> String {
    let mut out = String::new();
    out.push_str(&format!("playbook {}: {}\n", sim.playbook, sim.match_reason));
    if let Some(k) = &sim.group_key {
        out.push_str(&format!("group key: {k}\n"));
    }
    let mut phase = String::new();
    for s in &sim.steps {
        if s.phase != phase {
            phase = s.phase.clone();
            out.push_str(&format!("\n{phase}\n"));
        }
        let mark = if !s.run {
            "-"
        } else if s.approval.as_ref().is_some_and(|a| a.get("auto").is_none()) {
            "?"
        } else {
            "+"
        };
        out.push_str(&format!("  {mark} {} ({}, {}): {}\n", s.id, s.action, s.risk, s.reason));
        if !s.summary.is_empty() {
            out.push_str(&format!("      plan: {}\n", s.summary));
        }
        if let Some(a) = &s.approval
            && a.get("auto").is_none()
        {
            out.push_str(&format!("      approval: {a}\n"));
        }
        for r in &s.requests {
            out.push_str(&format!("      {} {}\n", r.method, r.url));
            if let Some(b) = &r.body {
                out.push_str(&format!("      {b}\n"));
            }
        }
    }
    out.push_str("\nlegend: + runs, ? waits for approval, - does not run\n");
    out
}
