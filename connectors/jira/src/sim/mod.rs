//! A local Jira for tests and the demo (feature `sim`).
//!
//! It serves the endpoints the connector uses, on the paths of the chosen flavor only (Cloud:
//! `/rest/api/3`, Data Center: `/rest/api/2`), checks auth the way each flavor does (Basic with
//! email and API token; bearer PAT), validates bodies the way Jira does (project, issue type, priority,
//! summary rules, unknown fields, ADF on v3 and strings on v2) and answers with Jira's own
//! `{"errorMessages": [...], "errors": {...}}` bodies. It keeps real state (issues, labels,
//! comments with properties, workflow status) that tests inspect, paginates `/search/jql` with
//! `nextPageToken` (and v2 `/search` with `startAt`), and can lose the answer to a create it has
//! committed, which is how a crash between "Jira created it" and "floodgate recorded it" looks.
//!
//! It must never accept a request real Jira would refuse just to make a test pass.

// Handlers return the vendor's error `Response` as their `Err`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod adf_check;
mod comments;
mod issues;
mod jql;
mod search;

use comments::{add_comment, comments_by_id, list_comments};
use issues::{create_issue, do_transition, get_issue, get_transitions};
use search::{search_jql_get, search_jql_post, search_removed, search_v2_get, search_v2_post};

use crate::Flavor;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use floodgate_sdk::sim::{CallLog, Faults, SimServer, instrument};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Credentials the simulator accepts.
pub const SIM_EMAIL: &str = "soc-bot@example.com";
pub const SIM_API_TOKEN: &str = "sim-jira-api-token";
pub const SIM_PAT: &str = "sim-jira-pat";
/// The project every simulator starts with, with issue types Task, Bug and Incident.
pub const SIM_PROJECT: &str = "SEC";
/// A text custom field the simulator knows.
pub const SIM_CUSTOM_FIELD: &str = "customfield_10050";

/// One comment as the simulator stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimComment {
    pub id: String,
    /// ADF document (v3) or string (v2), exactly as received.
    pub body: Value,
    pub properties: Vec<(String, Value)>,
}

/// One issue as the simulator stores it.
#[derive(Debug, Clone, PartialEq)]
pub struct SimIssue {
    pub id: String,
    pub key: String,
    pub project: String,
    pub issue_type: String,
    pub summary: String,
    /// ADF document (v3) or string (v2), exactly as received.
    pub description: Value,
    pub labels: Vec<String>,
    pub priority: Option<String>,
    pub status: String,
    pub resolution: Option<String>,
    pub custom_fields: BTreeMap<String, Value>,
    pub comments: Vec<SimComment>,
    seq: u64,
}

struct Project {
    id: String,
    key: String,
    issue_types: Vec<(&'static str, &'static str)>,
    next_number: u64,
}

struct SimState {
    projects: Vec<Project>,
    issues: Vec<SimIssue>,
    next_issue_id: u64,
    next_comment_id: u64,
    seq: u64,
    lose_create_answers: u32,
}

struct Inner {
    flavor: Flavor,
    state: Mutex<SimState>,
    base_url: OnceLock<String>,
}

type Shared = Arc<Inner>;

const PRIORITIES: [(&str, &str); 5] = [("1", "Highest"), ("2", "High"), ("3", "Medium"), ("4", "Low"), ("5", "Lowest")];
const RESOLUTIONS: [&str; 4] = ["Done", "Won't Do", "Duplicate", "Cannot Reproduce"];
/// (id, name, category key, category name)
const STATUSES: [(&str, &str, &str, &str); 3] = [
    ("10000", "To Do", "new", "To Do"),
    ("3", "In Progress", "indeterminate", "In Progress"),
    ("10001", "Done", "done", "Done"),
];

/// The simulated workflow: (transition id, name, target status) available from a status.
fn transitions_from(status: &str) -> Vec<(&'static str, &'static str, &'static str)> {
    match status {
        "To Do" => vec![("11", "Start Progress", "In Progress"), ("31", "Done", "Done")],
        "In Progress" => vec![("21", "Stop Progress", "To Do"), ("31", "Done", "Done")],
        _ => vec![("41", "Reopen", "To Do")],
    }
}

fn lock(m: &Mutex<SimState>) -> MutexGuard<'_, SimState> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// A running Jira simulator.
pub struct JiraSim {
    server: SimServer,
    inner: Shared,
    log: CallLog,
    faults: Faults,
}

impl JiraSim {
    /// Starts a simulator of `flavor` on 127.0.0.1 with project `SEC`.
    pub async fn start(flavor: Flavor) -> std::io::Result<JiraSim> {
        let inner = Arc::new(Inner {
            flavor,
            state: Mutex::new(SimState {
                projects: vec![Project {
                    id: "10000".into(),
                    key: SIM_PROJECT.into(),
                    issue_types: vec![("10001", "Task"), ("10002", "Bug"), ("10003", "Incident")],
                    next_number: 1,
                }],
                issues: Vec::new(),
                next_issue_id: 10001,
                next_comment_id: 20001,
                seq: 0,
                lose_create_answers: 0,
            }),
            base_url: OnceLock::new(),
        });
        let log = CallLog::default();
        let faults = Faults::new(Arc::new(render_fault));
        let router = instrument(routes(flavor, inner.clone()), log.clone(), faults.clone());
        let server = SimServer::start(router).await?;
        let _ = inner.base_url.set(server.url());
        Ok(JiraSim { server, inner, log, faults })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }
    pub fn flavor(&self) -> Flavor {
        self.inner.flavor
    }
    pub fn log(&self) -> &CallLog {
        &self.log
    }
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
    pub fn issues(&self) -> Vec<SimIssue> {
        lock(&self.inner.state).issues.clone()
    }
    pub fn issue(&self, key: &str) -> Option<SimIssue> {
        lock(&self.inner.state).issues.iter().find(|i| i.key == key).cloned()
    }
    pub fn issues_with_label(&self, label: &str) -> Vec<SimIssue> {
        lock(&self.inner.state).issues.iter().filter(|i| i.labels.iter().any(|l| l == label)).cloned().collect()
    }
    /// The next `n` creates are committed, but their answer is replaced by a 504 from the
    /// "gateway": the issue exists and the client does not know it.
    pub fn lose_next_create_answers(&self, n: u32) {
        lock(&self.inner.state).lose_create_answers = n;
    }
    /// Moves an issue as a person in Jira would (e.g. closes it under floodgate's feet).
    pub fn set_status(&self, key: &str, status: &str) {
        if let Some(i) = lock(&self.inner.state).issues.iter_mut().find(|i| i.key == key) {
            i.status = status.to_string();
        }
    }
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// Jira's error body for injected statuses (429 with its rate-limit headers, 5xx, 409...).
fn render_fault(status: u16, retry_after: Option<u64>) -> Response {
    let message = match status {
        429 => "Rate limit exceeded.",
        409 => "The issue could not be updated due to a conflicting update.",
        503 => "Service Unavailable",
        s if s >= 500 => "Internal server error",
        _ => "Request failed",
    };
    let mut r = jira_error(status, &[message], &[]);
    let h = r.headers_mut();
    if let Some(s) = retry_after {
        h.insert("retry-after", s.into());
    }
    if status == 429 {
        h.insert("x-ratelimit-limit", "\"100\"".parse().expect("static header"));
        h.insert("x-ratelimit-remaining", 0.into());
        h.insert("ratelimit-reason", "jira-burst-based".parse().expect("static header"));
    }
    r
}

fn jira_error(status: u16, messages: &[&str], errors: &[(&str, String)]) -> Response {
    let errors: Map<String, Value> = errors.iter().map(|(k, v)| (k.to_string(), json!(v))).collect();
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(json!({"errorMessages": messages, "errors": errors})),
    )
        .into_response()
}

fn field_errors(errors: BTreeMap<String, String>) -> Response {
    let pairs: Vec<(&str, String)> = errors.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    jira_error(400, &[], &pairs)
}

fn not_found_issue() -> Response {
    jira_error(404, &["Issue does not exist or you do not have permission to see it."], &[])
}

fn routes(flavor: Flavor, inner: Shared) -> Router {
    let api = flavor.api();
    let mut r = Router::new()
        .route(&format!("{api}/issue"), post(create_issue))
        .route(&format!("{api}/issue/{{key}}"), get(get_issue))
        .route(&format!("{api}/issue/{{key}}/comment"), get(list_comments).post(add_comment))
        .route(&format!("{api}/issue/{{key}}/transitions"), get(get_transitions).post(do_transition))
        .route(&format!("{api}/comment/list"), post(comments_by_id));
    r = match flavor {
        Flavor::Cloud => r
            .route(&format!("{api}/search/jql"), get(search_jql_get).post(search_jql_post))
            .route(&format!("{api}/search"), get(search_removed).post(search_removed)),
        Flavor::DataCenter => r.route(&format!("{api}/search"), get(search_v2_get).post(search_v2_post)),
    };
    r.with_state(inner)
}

fn b64(bytes: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in bytes.chunks(3) {
        let b = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(T[(n >> 18) as usize & 63] as char);
        out.push(T[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 { T[(n >> 6) as usize & 63] as char } else { '=' });
        out.push(if chunk.len() > 2 { T[n as usize & 63] as char } else { '=' });
    }
    out
}

fn authorize(inner: &Inner, h: &HeaderMap) -> Result<(), Response> {
    let got = h.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let want = match inner.flavor {
        Flavor::Cloud => format!("Basic {}", b64(format!("{SIM_EMAIL}:{SIM_API_TOKEN}").as_bytes())),
        Flavor::DataCenter => format!("Bearer {SIM_PAT}"),
    };
    if got == want {
        Ok(())
    } else {
        Err(jira_error(401, &["You are not authenticated. Authentication required to perform this operation."], &[]))
    }
}

/// The JSON body of a POST, refusing what Jira refuses (wrong media type, broken JSON).
fn json_body(h: &HeaderMap, body: &Bytes) -> Result<Value, Response> {
    let ct = h.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/json") {
        return Err((StatusCode::UNSUPPORTED_MEDIA_TYPE, "Unsupported Media Type").into_response());
    }
    serde_json::from_slice(body).map_err(|e| jira_error(400, &[&format!("Unexpected character: {e}")], &[]))
}

fn query_pairs(q: &Option<String>) -> Vec<(String, String)> {
    q.as_deref().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default()
}

impl Inner {
    fn base(&self) -> &str {
        self.base_url.get().map(String::as_str).unwrap_or("http://127.0.0.1")
    }

    fn is_v3(&self) -> bool {
        self.flavor == Flavor::Cloud
    }

    /// Checks a rich-text value: an ADF document on v3, a string on v2.
    fn check_rich_text(&self, v: &Value) -> Result<(), String> {
        if self.is_v3() {
            adf_check::check_doc(v).map_err(|e| {
                format!("Operation value must be an Atlassian Document (see the Atlassian Document Format): {e}")
            })
        } else if v.is_string() {
            Ok(())
        } else {
            Err("Operation value must be a string".into())
        }
    }

    fn issue_json(&self, issue: &SimIssue, fields: Option<&[String]>) -> Value {
        let (sid, sname, ckey, cname) = STATUSES.iter().find(|s| s.1 == issue.status).copied().unwrap_or((
            "1",
            "Unknown",
            "undefined",
            "No Category",
        ));
        let mut all = Map::new();
        all.insert("summary".into(), json!(issue.summary));
        all.insert("description".into(), issue.description.clone());
        all.insert("labels".into(), json!(issue.labels));
        all.insert("status".into(), json!({"id": sid, "name": sname, "statusCategory": {"key": ckey, "name": cname}}));
        all.insert("project".into(), json!({"key": issue.project}));
        all.insert("issuetype".into(), json!({"name": issue.issue_type}));
        all.insert("priority".into(), issue.priority.as_ref().map_or(Value::Null, |p| json!({"name": p})));
        all.insert("resolution".into(), issue.resolution.as_ref().map_or(Value::Null, |r| json!({"name": r})));
        all.insert("created".into(), json!(timestamp(issue.seq)));
        for (k, v) in &issue.custom_fields {
            all.insert(k.clone(), v.clone());
        }
        let wanted: Option<Vec<&str>> = fields.map(|f| f.iter().map(String::as_str).collect());
        let fields: Map<String, Value> = match wanted {
            Some(w) if !w.contains(&"*all") && !w.contains(&"*navigable") => {
                all.into_iter().filter(|(k, _)| w.contains(&k.as_str())).collect()
            }
            _ => all,
        };
        json!({
            "id": issue.id,
            "key": issue.key,
            "self": format!("{}{}/issue/{}", self.base(), self.flavor.api(), issue.id),
            "fields": fields,
        })
    }

    fn comment_json(&self, issue: &SimIssue, c: &SimComment, with_properties: bool) -> Value {
        let mut v = json!({
            "id": c.id,
            "self": format!("{}{}/issue/{}/comment/{}", self.base(), self.flavor.api(), issue.id, c.id),
            "author": {"accountId": "sim-floodgate-bot", "displayName": "floodgate", "active": true},
            "body": c.body,
            "created": timestamp(0),
            "updated": timestamp(0),
            "jsdPublic": true,
        });
        if with_properties {
            v["properties"] =
                Value::Array(c.properties.iter().map(|(k, val)| json!({"key": k, "value": val})).collect());
        }
        v
    }
}

fn timestamp(seq: u64) -> String {
    format!("2025-01-01T{:02}:{:02}:{:02}.000+0000", (seq / 3600) % 24, (seq / 60) % 60, seq % 60)
}

fn find_issue<'a>(st: &'a mut SimState, key: &str) -> Option<&'a mut SimIssue> {
    st.issues.iter_mut().find(|i| i.key.eq_ignore_ascii_case(key) || i.id == key)
}

/// `{"name": x}` / `{"id": x}` / `{"key": x}` reference values.
fn reference<'a>(v: Option<&'a Value>, keys: &[&'static str]) -> Option<(&'static str, &'a str)> {
    let o = v?.as_object()?;
    keys.iter().find_map(|k| o.get(*k).and_then(Value::as_str).map(|s| (*k, s)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_matches_rfc_base64() {
        assert_eq!(b64(b"foobar"), "Zm9vYmFy");
        assert_eq!(b64(b"fo"), "Zm8=");
    }
}
