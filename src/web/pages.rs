//! The console's pages (GETs only: nothing here changes state).

use super::render::{Page, PageError, see_other};
use super::session::{self, Viewer};
use super::view;
use crate::api::AppState;
use crate::playbook::Phase;
use crate::store::web::{ConsoleRunFilter, IncidentFilter};
use crate::store::{RunState, StoreError, Wait};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value, json};

const SEVERITIES: [&str; 5] = ["critical", "high", "medium", "low", "info"];
const RUN_STATES: [&str; 7] = ["queued", "running", "waiting", "succeeded", "failed", "closed_benign", "cancelled"];
/// What "extend" offers on the run page.
pub const EXTEND_CHOICES: [&str; 5] = ["1h", "4h", "12h", "24h", "72h"];

/// The confirmation shown after a redirect (`?notice=`): fixed texts, so a crafted URL cannot
/// put words on the page.
fn notice_text(code: Option<&str>) -> Option<&'static str> {
    Some(match code? {
        "approved" => "Your approval was recorded. The approval is complete: the run continues.",
        "approve-recorded" => "Your approval was recorded. More approvals are needed before the step runs.",
        "denied" => "Your denial was recorded. The step will not run.",
        "repeat" => "You had already voted this way; nothing changed.",
        "extended" => "The temporary containment was extended.",
        "permanent" => "The containment is now permanent: it will not be undone automatically.",
        _ => return None,
    })
}

/// Data every page's layout needs.
pub async fn base(s: &AppState, v: &Viewer, title: &str, active: &str) -> Result<Map<String, Value>, PageError> {
    let pending = s.engine.store().pending_approval_count().await?;
    let mut m = Map::new();
    m.insert("title".into(), json!(title));
    m.insert("viewer".into(), v.json());
    m.insert("pending_count".into(), json!(pending));
    m.insert("active".into(), json!(active));
    Ok(m)
}

fn blank(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_string()).filter(|s| !s.is_empty())
}

pub async fn home(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, PageError> {
    let c = super::console(&s);
    Ok(match session::current(&s, &c, &headers).await? {
        Some(_) => see_other("/approvals"),
        None => see_other("/login"),
    })
}

#[derive(Debug, Deserialize)]
pub struct IncidentQuery {
    state: Option<String>,
    severity: Option<String>,
    playbook: Option<String>,
    q: Option<String>,
}

pub async fn incidents(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<IncidentQuery>,
) -> Result<Page, PageError> {
    let store = s.engine.store();
    let now = s.engine.now();
    let f = IncidentFilter {
        state: blank(q.state),
        severity: blank(q.severity),
        playbook: blank(q.playbook),
        text: blank(q.q),
        limit: 200,
    };
    let rows = store.list_incidents(&f).await?;
    let mut m = base(&s, &v, "Incidents", "incidents").await?;
    m.insert("incidents".into(), rows.iter().map(|i| view::incident(i, now)).collect());
    m.insert("filter".into(), json!({"state": f.state, "severity": f.severity, "playbook": f.playbook, "q": f.text}));
    m.insert("states".into(), json!(["open", "closed"]));
    m.insert("severities".into(), json!(SEVERITIES));
    m.insert("playbooks".into(), json!(store.incident_playbooks().await?));
    Ok(Page::new("incidents.html", Value::Object(m)))
}

pub async fn incident(State(s): State<AppState>, v: Viewer, Path(id): Path<String>) -> Result<Page, PageError> {
    let store = s.engine.store();
    let now = s.engine.now();
    let i = store.incident(&id).await?.ok_or_else(|| PageError::NotFound(format!("There is no incident {id}.")))?;
    let alerts: Vec<Value> = store
        .incident_alerts(&id)
        .await?
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "source": a.source,
                "external_id": a.external_id,
                "rule": a.rule,
                "title": a.title,
                "severity": a.severity,
                "confidence": format!("{:.2}", a.confidence),
                "received": super::render::when(a.received_at, now),
                "run_id": a.run_id,
                "description": a.body["description"].as_str().unwrap_or(""),
                "entities": entities(&a.body),
                "body": view::pretty(&a.body),
            })
        })
        .collect();
    let runs =
        store.console_runs(&ConsoleRunFilter { incident: Some(id.clone()), limit: 100, ..Default::default() }).await?;
    let mut m = base(&s, &v, &format!("Incident: {}", i.title), "incidents").await?;
    m.insert("incident".into(), view::incident(&i, now));
    m.insert("alerts".into(), json!(alerts));
    m.insert("runs".into(), runs.iter().map(|r| view::run_summary(r, now)).collect());
    Ok(Page::new("incident.html", Value::Object(m)))
}

/// An alert's entities as `[{name, value}]`, redacted.
fn entities(body: &Value) -> Value {
    let e = floodgate_sdk::text::redact_json(&body["entities"]);
    e.as_object()
        .map(|o| o.iter().map(|(k, v)| json!({"name": k, "value": v.as_str().unwrap_or(&v.to_string())})).collect())
        .unwrap_or_else(|| json!([]))
}

#[derive(Debug, Deserialize)]
pub struct RunQuery {
    state: Option<String>,
    severity: Option<String>,
    playbook: Option<String>,
    incident: Option<String>,
    q: Option<String>,
}

pub async fn runs(State(s): State<AppState>, v: Viewer, Query(q): Query<RunQuery>) -> Result<Page, PageError> {
    let store = s.engine.store();
    let now = s.engine.now();
    let f = ConsoleRunFilter {
        state: blank(q.state),
        severity: blank(q.severity),
        playbook: blank(q.playbook),
        incident: blank(q.incident),
        text: blank(q.q),
        limit: 200,
    };
    let rows = store.console_runs(&f).await?;
    let mut m = base(&s, &v, "Runs", "runs").await?;
    m.insert("runs".into(), rows.iter().map(|r| view::run_summary(r, now)).collect());
    m.insert(
        "filter".into(),
        json!({"state": f.state, "severity": f.severity, "playbook": f.playbook, "incident": f.incident, "q": f.text}),
    );
    m.insert("states".into(), json!(RUN_STATES));
    m.insert("severities".into(), json!(SEVERITIES));
    let playbooks: Vec<String> = s.engine.playbooks().current().iter().map(|p| p.id.clone()).collect();
    m.insert("playbooks".into(), json!(playbooks));
    Ok(Page::new("runs.html", Value::Object(m)))
}

#[derive(Debug, Deserialize)]
pub struct NoticeQuery {
    notice: Option<String>,
}

pub async fn run(
    State(s): State<AppState>,
    v: Viewer,
    Path(id): Path<String>,
    Query(q): Query<NoticeQuery>,
) -> Result<Page, PageError> {
    run_page(&s, &v, &id, notice_text(q.notice.as_deref()), None, StatusCode::OK).await
}

/// The run page; `error` shows a refusal (a vote or a containment change) above everything.
pub async fn run_page(
    s: &AppState,
    v: &Viewer,
    id: &str,
    notice: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Page, PageError> {
    let store = s.engine.store();
    let now = s.engine.now();
    let dir = &s.engine.inner().directory;
    let d = match store.run_detail(id).await {
        Ok(d) => d,
        Err(StoreError::NotFound(_)) => return Err(PageError::NotFound(format!("There is no run {id}."))),
        Err(e) => return Err(e.into()),
    };
    let pb = s.engine.playbooks().by_hash(store, &d.run.playbook_hash).await.ok();
    let step_name = |sid: &str| pb.as_ref().and_then(|p| p.step(sid)).and_then(|st| st.name.clone());
    let mut phases = Vec::new();
    for phase in Phase::ALL {
        let mut steps: Vec<&crate::store::StepExecRow> = d.steps.iter().filter(|x| x.phase == phase.as_str()).collect();
        steps.sort_by_key(|x| (x.seq, x.iteration));
        let mut shown: Vec<Value> =
            steps.iter().map(|x| view::step(x, step_name(&x.step_id).as_deref(), now)).collect();
        // Steps the run has not reached yet, so the responder sees what comes next.
        if let Some(p) = &pb {
            for st in p.steps.iter().filter(|st| st.phase == phase) {
                if !d.steps.iter().any(|x| x.step_id == st.id) {
                    let state = if d.run.state.is_terminal() { "not run" } else { "not started" };
                    shown.push(json!({"step_id": st.id, "name": st.name.clone().unwrap_or_else(|| st.id.clone()),
                        "action": st.action, "state": state, "upcoming": true}));
                }
            }
        }
        if !shown.is_empty() {
            phases.push(json!({"name": phase.as_str(), "steps": shown}));
        }
    }
    let waiting = match &d.run.state {
        RunState::Waiting(Wait::Approval(_)) => Some("approval"),
        RunState::Waiting(Wait::Retry) => Some("retry"),
        RunState::Waiting(Wait::Timer) => Some("timer"),
        _ => None,
    };
    let state = d.run.state.as_str();
    let reverts: Vec<Value> = store
        .reverts_for_run(id)
        .await?
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "step_id": r.step_id,
                "action": r.action,
                "state": r.state.as_str(),
                "tone": view::tone(r.state.as_str()),
                "scheduled": r.state == crate::store::reverts::RevertState::Scheduled,
                "due": super::render::when(r.due_at, now),
                "attempt": r.attempt,
                "error": r.error,
                "finished": super::render::when_opt(r.finished_at, now),
            })
        })
        .collect();
    let approvals: Vec<Value> = d.approvals.iter().map(|a| view::approval_detail(a, &v.identity, dir, now)).collect();
    let title = d.incident.as_ref().map_or_else(|| format!("Run {id}"), |i| i.title.clone());
    let mut m = base(s, v, &title, "runs").await?;
    m.insert(
        "run".into(),
        json!({
            "id": d.run.id,
            "state": state,
            "label": d.run.state.label(),
            "tone": view::tone(state),
            "terminal": d.run.state.is_terminal(),
            "headline": view::run_headline(state, waiting, d.run.error.as_deref()),
            "playbook": d.run.playbook_id,
            "playbook_name": pb.as_ref().map(|p| p.name.clone()),
            "version": view::short_hash(&d.run.playbook_hash),
            "alert_id": d.run.alert_id,
            "error": d.run.error,
            "created": super::render::when(d.run.created_at, now),
            "updated": super::render::when(d.run.updated_at, now),
            "finished": super::render::when_opt(d.run.finished_at, now),
        }),
    );
    m.insert("incident".into(), d.incident.as_ref().map_or(Value::Null, |i| view::incident(i, now)));
    m.insert("phases".into(), json!(phases));
    m.insert("pending".into(), approvals.iter().filter(|a| a["pending"] == true).cloned().collect());
    m.insert("approvals".into(), json!(approvals));
    m.insert("reverts".into(), json!(reverts));
    m.insert("extend_choices".into(), json!(EXTEND_CHOICES));
    m.insert("events".into(), d.events.iter().map(|e| view::event(e, dir, now)).collect());
    m.insert("notice".into(), json!(notice));
    m.insert("error".into(), json!(error));
    m.insert("refresh".into(), json!(!d.run.state.is_terminal()));
    Ok(Page::new("run.html", Value::Object(m)).status(status))
}

pub async fn approvals(State(s): State<AppState>, v: Viewer) -> Result<Page, PageError> {
    let store = s.engine.store();
    let now = s.engine.now();
    let dir = &s.engine.inner().directory;
    let mut list = Vec::new();
    for a in store.pending_approvals().await? {
        let votes = store.approval_votes(&a.id).await?;
        let mut item = view::approval(&a, &votes, &v.identity, dir, now);
        item["incident"] = store.incident(&a.incident_id).await?.map_or(Value::Null, |i| view::incident(&i, now));
        list.push(item);
    }
    // Mine first (what I can act on), then soonest deadline.
    list.sort_by_key(|a| (a["can_vote"] != true, a["deadline"]["iso"].as_str().unwrap_or("").to_string()));
    let mut m = base(&s, &v, "Pending approvals", "approvals").await?;
    m.insert("approvals".into(), json!(list));
    m.insert("refresh".into(), json!(true));
    Ok(Page::new("approvals.html", Value::Object(m)))
}

pub async fn approval(State(s): State<AppState>, v: Viewer, Path(id): Path<String>) -> Result<Page, PageError> {
    approval_page(&s, &v, &id, None, None, StatusCode::OK).await
}

/// One approval with its plan, evidence and the decision form; `error` shows a refusal and
/// `reason` keeps what the person typed.
pub async fn approval_page(
    s: &AppState,
    v: &Viewer,
    id: &str,
    error: Option<&str>,
    reason: Option<&str>,
    status: StatusCode,
) -> Result<Page, PageError> {
    let store = s.engine.store();
    let now = s.engine.now();
    let dir = &s.engine.inner().directory;
    let a = store.approval(id).await?.ok_or_else(|| PageError::NotFound(format!("There is no approval {id}.")))?;
    let votes = store.approval_votes(id).await?;
    let run = store.run(&a.run_id).await?;
    let alert = match &run {
        Some(r) => store.alert_body(&r.alert_id).await?,
        None => None,
    };
    let incident = store.incident(&a.incident_id).await?;
    let mut m = base(s, v, &format!("Approve? {}", a.summary), "approvals").await?;
    m.insert("approval".into(), view::approval(&a, &votes, &v.identity, dir, now));
    m.insert("incident".into(), incident.as_ref().map_or(Value::Null, |i| view::incident(i, now)));
    m.insert("playbook".into(), json!(run.as_ref().map(|r| r.playbook_id.clone())));
    m.insert(
        "alert".into(),
        alert.as_ref().map_or(Value::Null, |b| {
            json!({"title": b["title"], "description": b["description"].as_str().unwrap_or(""),
                   "confidence": b["confidence"], "rule": b["rule"], "source": b["source"], "entities": entities(b)})
        }),
    );
    m.insert("error".into(), json!(error));
    m.insert("reason".into(), json!(reason.unwrap_or("")));
    Ok(Page::new("approval.html", Value::Object(m)).status(status))
}
