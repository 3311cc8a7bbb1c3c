//! A local ServiceNow Table API for tests and the demo (feature `sim`).
//!
//! It serves `GET|POST /api/now/table/{table}` and `GET|PATCH|PUT /api/now/table/{table}/{sys_id}`
//! for `incident`, `sys_user_group` and `sys_user`, with the Table API's behaviour: every value
//! a string, reference fields as `{"link", "value"}` (plain with
//! `sysparm_exclude_reference_link=true`, display values with `sysparm_display_value`), journal
//! fields (`work_notes`, `comments`) that append on write and read back only as display values,
//! `sysparm_query` filtering (conditions on unknown columns silently dropped, as on an
//! instance), `sysparm_fields`/`sysparm_limit`/`sysparm_offset`, `X-Total-Count`, the default
//! data policy that requires resolution fields when resolving, and ServiceNow's
//! `{"error": {"message", "detail"}, "status": "failure"}` errors. Injected faults (429 with
//! `Retry-After` and the rate-limit headers, 5xx) use the same error shape.
//!
//! It must never accept a request a real instance would refuse just to make a test pass.

// Handlers return the vendor's error `Response` as their `Err`; boxing it would only add noise.
#![allow(clippy::result_large_err)]

mod handlers;
mod query;

use handlers::{create, get_one, list, update};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use floodgate_sdk::sim::{CallLog, Faults, SimServer, instrument};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

/// Credentials the simulator accepts: basic auth, or an OAuth bearer token.
pub const SIM_USER: &str = "floodgate.integration";
pub const SIM_PASSWORD: &str = "sim-servicenow-password";
pub const SIM_OAUTH_TOKEN: &str = "sim-servicenow-oauth-token";
/// A group and a user every simulator starts with.
pub const SIM_GROUP_NAME: &str = "Security Operations";
pub const SIM_GROUP_SYS_ID: &str = "287ebd7da9fe198100f92cc8d1d2154e";
pub const SIM_USER_SYS_ID: &str = "6816f79cc0a8016401c5a33be04be441";

struct TableDef {
    name: &'static str,
    columns: &'static [&'static str],
    /// Columns that reference another table.
    references: &'static [(&'static str, &'static str)],
    /// The column shown as a record's display value.
    display: &'static str,
    writable: bool,
}

const INCIDENT_COLUMNS: &[&str] = &[
    "sys_id",
    "number",
    "short_description",
    "description",
    "urgency",
    "impact",
    "priority",
    "state",
    "category",
    "subcategory",
    "correlation_id",
    "correlation_display",
    "caller_id",
    "assignment_group",
    "assigned_to",
    "work_notes",
    "comments",
    "close_code",
    "close_notes",
    "active",
    "opened_at",
    "sys_created_on",
    "sys_updated_on",
];
const TABLES: &[TableDef] = &[
    TableDef {
        name: "incident",
        columns: INCIDENT_COLUMNS,
        references: &[("caller_id", "sys_user"), ("assignment_group", "sys_user_group"), ("assigned_to", "sys_user")],
        display: "number",
        writable: true,
    },
    TableDef {
        name: "sys_user_group",
        columns: &["sys_id", "name", "description", "active"],
        references: &[],
        display: "name",
        writable: false,
    },
    TableDef {
        name: "sys_user",
        columns: &["sys_id", "user_name", "name", "email", "active"],
        references: &[],
        display: "name",
        writable: false,
    },
];
const JOURNAL: [&str; 2] = ["work_notes", "comments"];
/// Columns the Table API computes; writes to them are ignored.
const READ_ONLY: [&str; 6] = ["sys_id", "number", "priority", "opened_at", "sys_created_on", "sys_updated_on"];

fn table(name: &str) -> Option<&'static TableDef> {
    TABLES.iter().find(|t| t.name == name)
}

fn choice_label(column: &str, v: &str) -> Option<&'static str> {
    Some(match (column, v) {
        ("state", "1") => "New",
        ("state", "2") => "In Progress",
        ("state", "3") => "On Hold",
        ("state", "6") => "Resolved",
        ("state", "7") => "Closed",
        ("state", "8") => "Canceled",
        ("urgency" | "impact", "1") => "1 - High",
        ("urgency" | "impact", "2") => "2 - Medium",
        ("urgency" | "impact", "3") => "3 - Low",
        ("priority", "1") => "1 - Critical",
        ("priority", "2") => "2 - High",
        ("priority", "3") => "3 - Moderate",
        ("priority", "4") => "4 - Low",
        ("priority", "5") => "5 - Planning",
        _ => return None,
    })
}

/// The priority lookup of a default instance (impact × urgency).
fn priority(impact: &str, urgency: &str) -> &'static str {
    match (impact, urgency) {
        ("1", "1") => "1",
        ("1", "2") | ("2", "1") => "2",
        ("1", "3") | ("2", "2") | ("3", "1") => "3",
        ("2", "3") | ("3", "2") => "4",
        _ => "5",
    }
}

/// One journal entry (work note or additional comment).
#[derive(Debug, Clone, PartialEq)]
pub struct JournalEntry {
    pub element: String,
    pub value: String,
    seq: u64,
}

/// One record as the simulator stores it: every value a string, as in the Table API.
#[derive(Debug, Clone, PartialEq)]
pub struct SimRecord {
    pub sys_id: String,
    pub fields: BTreeMap<String, String>,
    pub journal: Vec<JournalEntry>,
    seq: u64,
}

impl SimRecord {
    pub fn get(&self, column: &str) -> &str {
        self.fields.get(column).map(String::as_str).unwrap_or("")
    }
    /// The work notes, oldest first.
    pub fn work_notes(&self) -> Vec<String> {
        self.journal.iter().filter(|j| j.element == "work_notes").map(|j| j.value.clone()).collect()
    }
}

#[derive(Default)]
struct SimState {
    records: BTreeMap<&'static str, Vec<SimRecord>>,
    seq: u64,
    next_number: u64,
    lose_create_answers: u32,
}

struct Inner {
    state: Mutex<SimState>,
    base_url: OnceLock<String>,
}

type Shared = Arc<Inner>;

fn lock(m: &Mutex<SimState>) -> MutexGuard<'_, SimState> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn timestamp(seq: u64) -> String {
    format!("2025-01-01 {:02}:{:02}:{:02}", (seq / 3600) % 24, (seq / 60) % 60, seq % 60)
}

fn sys_id(seq: u64) -> String {
    format!("{:032x}", 0x5eed_0000_0000_0000_0000_0000_0000_0000u128 + u128::from(seq))
}

/// A running ServiceNow simulator.
pub struct ServiceNowSim {
    server: SimServer,
    inner: Shared,
    log: CallLog,
    faults: Faults,
}

impl ServiceNowSim {
    /// Starts a simulator on 127.0.0.1 with the group "Security Operations" and the user
    /// `floodgate.integration`.
    pub async fn start() -> std::io::Result<ServiceNowSim> {
        let mut st = SimState { next_number: 10001, ..Default::default() };
        st.records.insert(
            "sys_user_group",
            vec![SimRecord {
                sys_id: SIM_GROUP_SYS_ID.into(),
                fields: [("sys_id", SIM_GROUP_SYS_ID), ("name", SIM_GROUP_NAME), ("active", "true")]
                    .into_iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
                journal: Vec::new(),
                seq: 0,
            }],
        );
        st.records.insert(
            "sys_user",
            vec![SimRecord {
                sys_id: SIM_USER_SYS_ID.into(),
                fields: [
                    ("sys_id", SIM_USER_SYS_ID),
                    ("user_name", SIM_USER),
                    ("name", "floodgate Integration"),
                    ("active", "true"),
                ]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
                journal: Vec::new(),
                seq: 0,
            }],
        );
        st.records.insert("incident", Vec::new());
        let inner = Arc::new(Inner { state: Mutex::new(st), base_url: OnceLock::new() });
        let log = CallLog::default();
        let faults = Faults::new(Arc::new(render_fault));
        let router = Router::new()
            .route("/api/now/table/{table}", get(list).post(create))
            .route("/api/now/table/{table}/{sys_id}", get(get_one).patch(update).put(update))
            .with_state(inner.clone());
        let server = SimServer::start(instrument(router, log.clone(), faults.clone())).await?;
        let _ = inner.base_url.set(server.url());
        Ok(ServiceNowSim { server, inner, log, faults })
    }

    pub fn url(&self) -> String {
        self.server.url()
    }
    pub fn log(&self) -> &CallLog {
        &self.log
    }
    pub fn faults(&self) -> &Faults {
        &self.faults
    }
    pub fn incidents(&self) -> Vec<SimRecord> {
        lock(&self.inner.state).records.get("incident").cloned().unwrap_or_default()
    }
    pub fn incident(&self, sys_id: &str) -> Option<SimRecord> {
        self.incidents().into_iter().find(|r| r.sys_id == sys_id)
    }
    /// The next `n` incident creates are committed, but their answer is replaced by a 504.
    pub fn lose_next_create_answers(&self, n: u32) {
        lock(&self.inner.state).lose_create_answers = n;
    }
    pub async fn stop(self) {
        self.server.stop().await;
    }
}

fn sn_error(status: u16, message: &str, detail: Option<&str>) -> Response {
    (
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
        axum::Json(json!({"error": {"message": message, "detail": detail}, "status": "failure"})),
    )
        .into_response()
}

fn render_fault(status: u16, retry_after: Option<u64>) -> Response {
    let (message, detail) = match status {
        429 => ("Rate limit exceeded", "Too many requests: the rate limit rule for this user was exceeded"),
        503 => ("Service Unavailable", "The instance is temporarily unavailable"),
        _ => ("Internal server error", "An unexpected error occurred"),
    };
    let mut r = sn_error(status, message, Some(detail));
    let h = r.headers_mut();
    if let Some(s) = retry_after {
        h.insert("retry-after", s.into());
    }
    if status == 429 {
        h.insert("x-ratelimit-limit", 1000.into());
        h.insert("x-ratelimit-reset", 1_735_689_600u64.into());
        h.insert("x-ratelimit-rule", "d1c3b2a1e0f94f6a8b7c6d5e4f3a2b1c".parse().expect("static header"));
    }
    r
}

fn not_found() -> Response {
    sn_error(404, "No Record found", Some("Record doesn't exist or ACL restricts the record retrieval"))
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

fn authorize(h: &HeaderMap) -> Result<(), Response> {
    let got = h.get("authorization").and_then(|v| v.to_str().ok()).unwrap_or("");
    let basic = format!("Basic {}", b64(format!("{SIM_USER}:{SIM_PASSWORD}").as_bytes()));
    let bearer = format!("Bearer {SIM_OAUTH_TOKEN}");
    if got == basic || got == bearer {
        Ok(())
    } else {
        Err(sn_error(401, "User Not Authenticated", Some("Required to provide Auth information")))
    }
}

fn known_table(name: &str) -> Result<&'static TableDef, Response> {
    table(name).ok_or_else(|| sn_error(400, &format!("Invalid table {name}"), None))
}

/// How a read renders values (`sysparm_display_value`, `sysparm_exclude_reference_link`,
/// `sysparm_fields`).
struct Render {
    display: String,
    exclude_link: bool,
    fields: Option<Vec<String>>,
    query: String,
    limit: usize,
    offset: usize,
}

impl Render {
    fn from(q: &Option<String>) -> Render {
        let mut r = Render {
            display: "false".into(),
            exclude_link: false,
            fields: None,
            query: String::new(),
            limit: 10_000,
            offset: 0,
        };
        let pairs: Vec<(String, String)> =
            q.as_deref().map(|q| url::form_urlencoded::parse(q.as_bytes()).into_owned().collect()).unwrap_or_default();
        for (k, v) in pairs {
            match k.as_str() {
                "sysparm_display_value" => r.display = v.to_ascii_lowercase(),
                "sysparm_exclude_reference_link" => r.exclude_link = v == "true",
                "sysparm_fields" => {
                    r.fields = Some(v.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
                }
                "sysparm_query" => r.query = v,
                "sysparm_limit" => r.limit = v.parse().unwrap_or(10_000),
                "sysparm_offset" => r.offset = v.parse().unwrap_or(0),
                _ => {}
            }
        }
        r
    }
}

impl Inner {
    fn base(&self) -> &str {
        self.base_url.get().map(String::as_str).unwrap_or("http://127.0.0.1")
    }

    fn display_of(&self, st: &SimState, table: &str, sys_id: &str) -> String {
        let Some(def) = self::table(table) else {
            return String::new();
        };
        st.records
            .get(table)
            .and_then(|rs| rs.iter().find(|r| r.sys_id == sys_id))
            .map(|r| r.get(def.display).to_string())
            .unwrap_or_default()
    }

    fn render(&self, st: &SimState, def: &TableDef, rec: &SimRecord, how: &Render) -> Value {
        let mut out = Map::new();
        let columns: Vec<&str> = match &how.fields {
            Some(f) => f.iter().map(String::as_str).filter(|c| def.columns.contains(c)).collect(),
            None => def.columns.to_vec(),
        };
        for col in columns {
            let raw = rec.get(col);
            let value = if JOURNAL.contains(&col) {
                let mut entries: Vec<&JournalEntry> = rec.journal.iter().filter(|j| j.element == col).collect();
                entries.reverse();
                let text: String = entries
                    .iter()
                    .map(|j| {
                        let kind = if col == "work_notes" { "Work notes" } else { "Additional comments" };
                        format!("{} - floodgate Integration ({kind})\n{}\n\n", timestamp(j.seq), j.value)
                    })
                    .collect();
                match how.display.as_str() {
                    "true" => json!(text),
                    "all" => json!({"display_value": text, "value": ""}),
                    _ => json!(""),
                }
            } else if let Some((_, target)) = def.references.iter().find(|(c, _)| *c == col) {
                if raw.is_empty() {
                    json!("")
                } else {
                    let link = format!("{}/api/now/table/{target}/{raw}", self.base());
                    let shown = self.display_of(st, target, raw);
                    match (how.display.as_str(), how.exclude_link) {
                        ("true", true) => json!(shown),
                        ("true", false) => json!({"display_value": shown, "link": link}),
                        ("all", true) => json!({"display_value": shown, "value": raw}),
                        ("all", false) => {
                            json!({"display_value": shown, "value": raw, "link": link})
                        }
                        (_, true) => json!(raw),
                        (_, false) => json!({"link": link, "value": raw}),
                    }
                }
            } else {
                let label = choice_label(col, raw).map(str::to_string).unwrap_or_else(|| raw.to_string());
                match how.display.as_str() {
                    "true" => json!(label),
                    "all" => json!({"display_value": label, "value": raw}),
                    _ => json!(raw),
                }
            };
            out.insert(col.to_string(), value);
        }
        Value::Object(out)
    }
}
