//! A local PagerDuty Events API v2 (feature `sim`) for tests and the demo.
//!
//! `POST /v2/enqueue` validates events as PagerDuty documents them (routing key, event action,
//! dedup key length, the trigger payload's required `summary`/`source`/`severity`, severities,
//! timestamps, links and images) and answers 202 `{"status":"success","message":"Event
//! processed","dedup_key":…}` or 400 `{"status","message","errors":[…]}`. Alerts are tracked
//! per routing key and dedup key with PagerDuty's semantics: a trigger for an open alert is
//! added to it, acknowledge/resolve of an alert that is not open are dropped (still 202), and a
//! trigger after a resolve opens a new alert. 429s and 5xx come from [`Faults`] with
//! PagerDuty-shaped bodies.
//!
//! Nothing in the product depends on this module.

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use floodgate_sdk::sim::{CallLog, Faults, SimServer, instrument};
use serde::Serialize;
use serde_json::{Value, json};
use std::collections::HashSet;
use std::sync::{Arc, Mutex, MutexGuard};

/// The routing key the simulator accepts by default.
pub const SIM_ROUTING_KEY: &str = "R0UT1NGKEYF00DGATE5IMULAT0R00001";

const TOP_LEVEL: &[&str] =
    &["routing_key", "event_action", "dedup_key", "payload", "client", "client_url", "links", "images"];
const PAYLOAD_FIELDS: &[&str] =
    &["summary", "source", "severity", "timestamp", "component", "group", "class", "custom_details"];

/// An alert's state in PagerDuty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    Triggered,
    Acknowledged,
    Resolved,
}

/// An alert as the simulator tracks it.
#[derive(Debug, Clone, Serialize)]
pub struct SimAlert {
    /// Creation order, 1-based.
    pub number: u32,
    pub dedup_key: String,
    pub status: AlertStatus,
    pub summary: String,
    pub severity: String,
    pub source: String,
    pub custom_details: Value,
    pub links: Value,
    /// Events applied to it (triggers, acknowledges, resolves).
    pub events: u32,
    pub triggers: u32,
}

/// One accepted event, applied or dropped.
#[derive(Debug, Clone, Serialize)]
pub struct SimEvent {
    pub event_action: String,
    pub dedup_key: String,
    /// False when PagerDuty accepted but ignored it (acknowledge/resolve of no open alert).
    pub applied: bool,
}

#[derive(Default)]
struct Inner {
    routing_keys: HashSet<String>,
    alerts: Vec<(String, SimAlert)>,
    events: Vec<SimEvent>,
    generated: u32,
}

type Shared = Arc<Mutex<Inner>>;

fn lock(s: &Shared) -> MutexGuard<'_, Inner> {
    s.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running PagerDuty Events API simulator.
pub struct PagerDutySim {
    server: SimServer,
    state: Shared,
    log: CallLog,
    faults: Faults,
}

fn render_fault(status: u16, retry_after: Option<u64>) -> Response {
    let body = match status {
        429 => {
            json!({"status": "throttle event", "message": "Requests for this service are arriving too quickly. Please retry later.", "errors": ["Too many requests"]})
        }
        400 => {
            json!({"status": "invalid event", "message": "Event object is invalid", "errors": ["injected fault"]})
        }
        _ => {
            json!({"status": "Internal Server Error", "message": "An error occurred while processing the event"})
        }
    };
    let mut r =
        (StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR), axum::Json(body)).into_response();
    if let Some(v) = retry_after.and_then(|s| s.to_string().parse().ok()) {
        r.headers_mut().insert("retry-after", v);
    }
    r
}

impl PagerDutySim {
    pub async fn start() -> std::io::Result<PagerDutySim> {
        let mut inner = Inner::default();
        inner.routing_keys.insert(SIM_ROUTING_KEY.to_string());
        let state: Shared = Arc::new(Mutex::new(inner));
        let log = CallLog::default();
        let faults = Faults::new(Arc::new(render_fault));
        let router = Router::new()
            .route("/v2/enqueue", post(enqueue))
            .fallback(|| async {
                (StatusCode::NOT_FOUND, axum::Json(json!({"status": "Not Found", "message": "Not Found"})))
            })
            .with_state(state.clone());
        let server = SimServer::start(instrument(router, log.clone(), faults.clone())).await?;
        Ok(PagerDutySim { server, state, log, faults })
    }

    /// The Events API base URL, for `events_api_url`.
    pub fn url(&self) -> String {
        self.server.url()
    }

    pub fn log(&self) -> &CallLog {
        &self.log
    }

    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    pub fn add_routing_key(&self, key: &str) {
        lock(&self.state).routing_keys.insert(key.to_string());
    }

    /// Every alert ever opened, in order.
    pub fn alerts(&self) -> Vec<SimAlert> {
        lock(&self.state).alerts.iter().map(|(_, a)| a.clone()).collect()
    }

    /// Alerts opened for this dedup key (more than one only if it was resolved and triggered again).
    pub fn alerts_for(&self, dedup_key: &str) -> Vec<SimAlert> {
        self.alerts().into_iter().filter(|a| a.dedup_key == dedup_key).collect()
    }

    /// Every accepted event, in order.
    pub fn events(&self) -> Vec<SimEvent> {
        lock(&self.state).events.clone()
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

fn invalid(message: &str, errors: Vec<String>) -> Response {
    (StatusCode::BAD_REQUEST, axum::Json(json!({"status": "invalid event", "message": message, "errors": errors})))
        .into_response()
}

fn is_url(v: &Value, https_only: bool) -> bool {
    v.as_str()
        .and_then(|s| url::Url::parse(s).ok())
        .is_some_and(|u| u.scheme() == "https" || (!https_only && u.scheme() == "http"))
}

/// Checks an event as PagerDuty does; every problem, in PagerDuty's wording style.
fn validate(ev: &serde_json::Map<String, Value>) -> Vec<String> {
    let mut errs = Vec::new();
    for k in ev.keys() {
        if !TOP_LEVEL.contains(&k.as_str()) {
            errs.push(format!("'{k}' is not a recognized field"));
        }
    }
    let action = ev.get("event_action").and_then(Value::as_str);
    match action {
        Some("trigger" | "acknowledge" | "resolve") => {}
        Some(_) => errs.push("'event_action' is invalid (must be one of trigger, acknowledge, resolve)".into()),
        None => errs.push("'event_action' is missing or blank".into()),
    }
    match ev.get("dedup_key") {
        None | Some(Value::Null) if action.is_some_and(|a| a != "trigger") => {
            errs.push("'dedup_key' is missing or blank".into())
        }
        None | Some(Value::Null) => {}
        Some(Value::String(s)) if s.is_empty() || s.chars().count() > 255 => {
            errs.push("'dedup_key' must be between 1 and 255 characters".into())
        }
        Some(Value::String(_)) => {}
        Some(_) => errs.push("'dedup_key' must be a string".into()),
    }
    for k in ["client", "client_url"] {
        if ev.get(k).is_some_and(|v| !v.is_string()) {
            errs.push(format!("'{k}' must be a string"));
        }
    }
    if ev.get("client_url").is_some() && !is_url(&ev["client_url"], false) {
        errs.push("'client_url' must be a URL".into());
    }
    if let Some(links) = ev.get("links") {
        match links.as_array() {
            Some(list) => {
                for (i, l) in list.iter().enumerate() {
                    if !l.get("href").is_some_and(|h| is_url(h, false)) {
                        errs.push(format!("'links[{i}].href' must be a URL"));
                    }
                }
            }
            None => errs.push("'links' must be an array".into()),
        }
    }
    if let Some(images) = ev.get("images") {
        match images.as_array() {
            Some(list) => {
                for (i, im) in list.iter().enumerate() {
                    if !im.get("src").is_some_and(|s| is_url(s, true)) {
                        errs.push(format!("'images[{i}].src' must be an https URL"));
                    }
                }
            }
            None => errs.push("'images' must be an array".into()),
        }
    }
    if action == Some("trigger") {
        let Some(payload) = ev.get("payload").and_then(Value::as_object) else {
            errs.push("'payload' is missing or blank".into());
            return errs;
        };
        for k in payload.keys() {
            if !PAYLOAD_FIELDS.contains(&k.as_str()) {
                errs.push(format!("'payload.{k}' is not a recognized field"));
            }
        }
        match payload.get("summary").and_then(Value::as_str) {
            Some(s) if !s.trim().is_empty() && s.chars().count() <= 1024 => {}
            Some(s) if !s.trim().is_empty() => errs.push("'payload.summary' must be at most 1024 characters".into()),
            _ => errs.push("'payload.summary' is missing or blank".into()),
        }
        if payload.get("source").and_then(Value::as_str).is_none_or(|s| s.trim().is_empty()) {
            errs.push("'payload.source' is missing or blank".into());
        }
        match payload.get("severity").and_then(Value::as_str) {
            Some("critical" | "error" | "warning" | "info") => {}
            Some(_) => {
                errs.push("'payload.severity' is invalid (must be one of critical, error, warning, info)".into())
            }
            None => errs.push("'payload.severity' is missing or blank".into()),
        }
        if let Some(t) = payload.get("timestamp") {
            let ok = t.as_str().is_some_and(|s| {
                time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).is_ok()
            });
            if !ok {
                errs.push("'payload.timestamp' must be an ISO 8601 timestamp".into());
            }
        }
        for k in ["component", "group", "class"] {
            if payload.get(k).is_some_and(|v| !v.is_string()) {
                errs.push(format!("'payload.{k}' must be a string"));
            }
        }
        if payload.get("custom_details").is_some_and(|v| !v.is_object()) {
            errs.push("'payload.custom_details' must be an object".into());
        }
    }
    errs
}

async fn enqueue(State(state): State<Shared>, headers: HeaderMap, body: Bytes) -> Response {
    let ctype = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    let parsed: Option<Value> =
        if ctype.starts_with("application/json") { serde_json::from_slice(&body).ok() } else { None };
    let Some(Value::Object(ev)) = parsed else {
        return (
            StatusCode::BAD_REQUEST,
            axum::Json(json!({"status": "Unrecognized object", "message": "Event object format is unrecognized", "errors": ["JSON parse error"]})),
        )
            .into_response();
    };
    let mut st = lock(&state);
    match ev.get("routing_key").and_then(Value::as_str) {
        None | Some("") => {
            return invalid("Event object is invalid", vec!["'routing_key' is missing or blank".into()]);
        }
        Some(k) if k.len() != 32 => {
            return invalid("Event object is invalid", vec!["'routing_key' must be 32 characters".into()]);
        }
        Some(k) if !st.routing_keys.contains(k) => {
            return invalid("Event object is invalid", vec!["Invalid routing key".into()]);
        }
        Some(_) => {}
    }
    let errs = validate(&ev);
    if !errs.is_empty() {
        return invalid("Event object is invalid", errs);
    }
    let routing_key = ev["routing_key"].as_str().unwrap_or_default().to_string();
    let action = ev["event_action"].as_str().unwrap_or_default().to_string();
    let dedup_key = match ev.get("dedup_key").and_then(Value::as_str) {
        Some(k) => k.to_string(),
        None => {
            st.generated += 1;
            format!("{:032x}", st.generated)
        }
    };
    let open = st
        .alerts
        .iter_mut()
        .find(|(rk, a)| *rk == routing_key && a.dedup_key == dedup_key && a.status != AlertStatus::Resolved);
    let applied = match (action.as_str(), open) {
        ("trigger", Some((_, a))) => {
            a.events += 1;
            a.triggers += 1;
            true
        }
        ("trigger", None) => {
            let p = &ev["payload"];
            let number = st.alerts.len() as u32 + 1;
            st.alerts.push((
                routing_key,
                SimAlert {
                    number,
                    dedup_key: dedup_key.clone(),
                    status: AlertStatus::Triggered,
                    summary: p["summary"].as_str().unwrap_or_default().to_string(),
                    severity: p["severity"].as_str().unwrap_or_default().to_string(),
                    source: p["source"].as_str().unwrap_or_default().to_string(),
                    custom_details: p.get("custom_details").cloned().unwrap_or(Value::Null),
                    links: ev.get("links").cloned().unwrap_or(Value::Null),
                    events: 1,
                    triggers: 1,
                },
            ));
            true
        }
        ("acknowledge", Some((_, a))) => {
            a.events += 1;
            if a.status == AlertStatus::Triggered {
                a.status = AlertStatus::Acknowledged;
            }
            true
        }
        ("resolve", Some((_, a))) => {
            a.events += 1;
            a.status = AlertStatus::Resolved;
            true
        }
        // PagerDuty accepts, then drops, acknowledge/resolve of an alert that is not open.
        _ => false,
    };
    st.events.push(SimEvent { event_action: action, dedup_key: dedup_key.clone(), applied });
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"status": "success", "message": "Event processed", "dedup_key": dedup_key})),
    )
        .into_response()
}
