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
use crate::playbook::{OnError, Playbook, Step};
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
    /// Why the step would fail when the run reaches it (its `when` cannot be evaluated, ...).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub would_fail: Option<String>,
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

/// Walks `pb` over `alert`. `public_url` is the console's address from the config (for
/// `incident.url`); without one the incident has no URL, as in the engine.
pub async fn simulate(
    pb: &Playbook,
    alert: Value,
    connectors: &Connectors,
    dir: &Directory,
    public_url: Option<&str>,
) -> Simulation {
    // Routing sees the alert alone, exactly as intake does: no vars, incident or run yet.
    let mut alert_ctx = tera::Context::new();
    alert_ctx.insert("alert", &alert);
    let (matched, match_reason) = matches(pb, &alert, &alert_ctx);
    let group_key = pb.group.as_ref().and_then(|g| pb.templates.render_text(&g.key, &alert_ctx).ok());
    let incident_url = public_url.map(|u| format!("{}/incidents/inc_simulated", u.trim_end_matches('/')));
    let incident = json!({"id": "inc_simulated", "title": alert["title"], "severity": alert["severity"], "state": "open",
                          "alert_count": 1, "group_key": group_key, "opened_at": alert["received_at"], "url": incident_url});
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
    let refs = MemoryRefStore::new();
    let mut ended: Option<String> = None;
    // The step at which the run would fail, and steps whose outputs exist only at run time.
    let mut failed_at: Option<String> = None;
    let mut unknown_outputs: Vec<&str> = Vec::new();
    let mut out = Vec::new();
    for step in &pb.steps {
        let mut s = SimStep {
            id: step.id.clone(),
            phase: step.phase.as_str().into(),
            action: step.action.clone(),
            risk: step.spec.risk.to_string(),
            run: false,
            would_fail: None,
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
        } else if let Some(at) = &failed_at {
            s.reason = format!("not run: the run fails at step {at}");
        }
        let ctx = tera_ctx(&vars, &steps_view, None);
        let mut runs = true;
        let mut notes = Vec::new();
        let mut when_error = None;
        if let Some(c) = &step.when {
            match pb.templates.eval(c, &ctx) {
                Ok(true) => notes.push(format!("when holds: {}", c.source)),
                Ok(false) => {
                    runs = false;
                    notes.push(format!("skipped: when is false: {}", c.source));
                }
                Err(e) if unknown_outputs.iter().any(|id| refers_to_step(&c.source, id)) => {
                    notes.push(format!("when needs run-time data ({e}); shown as if it holds"))
                }
                Err(e) => {
                    // The engine fails the step: the condition cannot be evaluated.
                    runs = false;
                    when_error = Some(format!("when: {e}"));
                }
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
                incident_url: incident_url.clone(),
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
        s.run =
            runs && matched && failed_at.is_none() && (ended.is_none() || ended.as_deref() == Some(step.id.as_str()));
        let reached = matched && ended.is_none() && failed_at.is_none();
        if let Some(e) = when_error
            && reached
        {
            s.reason = match step.on_error {
                OnError::Fail => format!("would fail: {e}; the run fails here"),
                OnError::Continue => format!("would fail: {e}; the run goes on (on_error: continue)"),
            };
            s.would_fail = Some(e);
            if step.on_error == OnError::Fail {
                failed_at = Some(step.id.clone());
            }
        }
        if s.run && !step.spec.pure {
            unknown_outputs.push(&step.id);
        }
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
        let status = match (&s.would_fail, s.run) {
            (Some(_), _) => "failed",
            (None, true) => "simulated",
            (None, false) => "skipped",
        };
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

/// Whether a condition's text reads `steps.<id>`.
fn refers_to_step(source: &str, id: &str) -> bool {
    let needle = format!("steps.{id}");
    source.match_indices(&needle).any(|(at, _)| {
        let before = source[..at].chars().next_back();
        let after = source[at + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '.')
            && !after.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '-')
    })
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
        let mark = if s.would_fail.is_some() {
            "!"
        } else if !s.run {
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
    out.push_str("\nlegend: + runs, ? waits for approval, ! would fail, - does not run\n");
    out
}
