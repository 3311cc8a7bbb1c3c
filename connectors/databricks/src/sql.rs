//! The Statement Execution API 2.0 client: run one SQL statement on a SQL warehouse with named
//! parameters, wait for it, fetch every result chunk, and return rows as JSON objects with typed
//! values.
//!
//! Used by `sql.query` and `investigate.*`, and by the engine's detection poller through
//! `Databricks::run_statement`. Values always travel as statement parameters (`:name` markers);
//! this module never splices a value into SQL text.
//!
//! Semantics followed (databricks-sdk-go `service/sql/interface.go`):
//! - hybrid mode: `wait_timeout` (0 or 5–50 s) with `on_wait_timeout=CONTINUE`, then poll
//!   `GET /api/2.0/sql/statements/{id}` until a terminal state;
//! - a SQL error is HTTP 200 with `status.state = FAILED` — a permanent error here, except the
//!   service-side codes that say "try again" (`TEMPORARILY_UNAVAILABLE`, ...);
//! - `CANCELED` and `CLOSED` (results expire an hour after success) are retryable: a read can be
//!   run again;
//! - results come as `JSON_ARRAY` strings in `INLINE` chunks, followed by
//!   `next_chunk_internal_link` (a path on the same host; anything else is refused) or
//!   `next_chunk_index`.

use crate::Databricks;
use crate::client::{Target, parse_json};
use crate::config::SqlSettings;
use floodgate_sdk::ActionError;
use floodgate_sdk::http::{Replay, Request};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use std::time::Duration;
use tokio::time::Instant;

/// The statement size limit of the API.
const MAX_STATEMENT_BYTES: usize = 16 * 1024 * 1024;
/// A guard against a server that never stops sending chunks.
const MAX_CHUNKS: usize = 100_000;

/// A statement parameter type, as the API names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum SqlType {
    String,
    Int,
    Bigint,
    Smallint,
    Tinyint,
    Double,
    Float,
    Decimal,
    Boolean,
    Date,
    Timestamp,
    TimestampNtz,
}

impl SqlType {
    pub fn as_str(self) -> &'static str {
        match self {
            SqlType::String => "STRING",
            SqlType::Int => "INT",
            SqlType::Bigint => "BIGINT",
            SqlType::Smallint => "SMALLINT",
            SqlType::Tinyint => "TINYINT",
            SqlType::Double => "DOUBLE",
            SqlType::Float => "FLOAT",
            SqlType::Decimal => "DECIMAL",
            SqlType::Boolean => "BOOLEAN",
            SqlType::Date => "DATE",
            SqlType::Timestamp => "TIMESTAMP",
            SqlType::TimestampNtz => "TIMESTAMP_NTZ",
        }
    }

    /// Parses a type name as playbooks write it (case-insensitive; `LONG` = `BIGINT`).
    pub fn parse(s: &str) -> Option<SqlType> {
        Some(match s.trim().to_ascii_uppercase().as_str() {
            "STRING" => SqlType::String,
            "INT" | "INTEGER" => SqlType::Int,
            "BIGINT" | "LONG" => SqlType::Bigint,
            "SMALLINT" | "SHORT" => SqlType::Smallint,
            "TINYINT" | "BYTE" => SqlType::Tinyint,
            "DOUBLE" => SqlType::Double,
            "FLOAT" | "REAL" => SqlType::Float,
            "DECIMAL" => SqlType::Decimal,
            "BOOLEAN" => SqlType::Boolean,
            "DATE" => SqlType::Date,
            "TIMESTAMP" => SqlType::Timestamp,
            "TIMESTAMP_NTZ" => SqlType::TimestampNtz,
            _ => return None,
        })
    }
}

/// One named parameter (`:name` in the SQL). A `None` value is SQL NULL.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SqlParam {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    #[serde(rename = "type")]
    pub type_name: SqlType,
}

impl SqlParam {
    pub fn string(name: &str, value: impl Into<String>) -> SqlParam {
        Self::raw(name, SqlType::String, Some(value.into()))
    }
    pub fn int(name: &str, value: i32) -> SqlParam {
        Self::raw(name, SqlType::Int, Some(value.to_string()))
    }
    pub fn bigint(name: &str, value: i64) -> SqlParam {
        Self::raw(name, SqlType::Bigint, Some(value.to_string()))
    }
    pub fn double(name: &str, value: f64) -> SqlParam {
        Self::raw(name, SqlType::Double, Some(value.to_string()))
    }
    pub fn boolean(name: &str, value: bool) -> SqlParam {
        Self::raw(name, SqlType::Boolean, Some(value.to_string()))
    }
    /// `YYYY-MM-DD`.
    pub fn date(name: &str, value: time::Date) -> SqlParam {
        let v = format!("{:04}-{:02}-{:02}", value.year(), u8::from(value.month()), value.day());
        Self::raw(name, SqlType::Date, Some(v))
    }
    /// An instant, sent as RFC 3339 in UTC.
    pub fn timestamp(name: &str, value: time::OffsetDateTime) -> SqlParam {
        let utc = value.to_offset(time::UtcOffset::UTC);
        let v = utc
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_else(|_| utc.unix_timestamp().to_string());
        Self::raw(name, SqlType::Timestamp, Some(v))
    }
    pub fn null(name: &str, type_name: SqlType) -> SqlParam {
        Self::raw(name, type_name, None)
    }
    /// A parameter from text, checked against its type before anything is sent.
    pub fn typed(name: &str, type_name: SqlType, value: Option<&str>) -> Result<SqlParam, ActionError> {
        if let Some(v) = value {
            check_value(name, type_name, v)?;
        }
        Ok(Self::raw(name, type_name, value.map(str::to_string)))
    }
    fn raw(name: &str, type_name: SqlType, value: Option<String>) -> SqlParam {
        SqlParam { name: name.to_string(), value, type_name }
    }
}

fn check_value(name: &str, t: SqlType, v: &str) -> Result<(), ActionError> {
    let ok = match t {
        SqlType::String => true,
        SqlType::Int | SqlType::Bigint | SqlType::Smallint | SqlType::Tinyint => v.trim().parse::<i64>().is_ok(),
        SqlType::Double | SqlType::Float | SqlType::Decimal => v.trim().parse::<f64>().is_ok(),
        SqlType::Boolean => matches!(v.trim().to_ascii_lowercase().as_str(), "true" | "false"),
        SqlType::Date => {
            time::Date::parse(v.trim(), &time::macros::format_description!("[year]-[month]-[day]")).is_ok()
        }
        SqlType::Timestamp | SqlType::TimestampNtz => {
            time::OffsetDateTime::parse(v.trim(), &time::format_description::well_known::Rfc3339).is_ok()
                || time::PrimitiveDateTime::parse(
                    v.trim(),
                    &time::macros::format_description!(
                        "[year]-[month]-[day] [hour]:[minute]:[second][optional [.[subsecond]]]"
                    ),
                )
                .is_ok()
                || time::Date::parse(v.trim(), &time::macros::format_description!("[year]-[month]-[day]")).is_ok()
        }
    };
    if ok {
        Ok(())
    } else {
        Err(ActionError::invalid_input(format!("parameter {name:?}: {v:?} is not a valid {} value", t.as_str())))
    }
}

fn valid_param_name(n: &str) -> bool {
    let mut chars = n.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A result column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    /// `STRING`, `INT`, `LONG`, `TIMESTAMP`, `ARRAY`, ... (the manifest's `type_name`).
    #[serde(rename = "type")]
    pub type_name: String,
}

/// Every row of a finished statement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QueryResult {
    pub statement_id: String,
    pub columns: Vec<Column>,
    /// One object per row, keyed by column name, values typed by the manifest: integers and
    /// floats as numbers, booleans as booleans, arrays/maps/structs as JSON, `DECIMAL`, dates and
    /// timestamps as the strings Databricks sent (no precision is lost), NULL as null.
    pub rows: Vec<Map<String, Value>>,
    /// True when `row_limit` cut the result.
    pub truncated: bool,
}

/// Per-call knobs of `run_statement_with`.
#[derive(Debug, Clone, Default)]
pub struct StatementOptions {
    /// Overrides the workspace's configured `warehouse_id`.
    pub warehouse_id: Option<String>,
    /// Databricks stops after this many rows and sets `truncated`.
    pub row_limit: Option<u64>,
    /// Overrides `[connectors.databricks.sql] timeout_seconds`.
    pub timeout: Option<Duration>,
}

#[derive(Deserialize)]
struct StatementResponse {
    statement_id: String,
    status: StatementStatus,
    #[serde(default)]
    manifest: Option<Manifest>,
    #[serde(default)]
    result: Option<ResultData>,
}

#[derive(Deserialize)]
struct StatementStatus {
    state: String,
    #[serde(default)]
    error: Option<ServiceError>,
    #[serde(default)]
    sql_state: Option<String>,
}

#[derive(Deserialize)]
struct ServiceError {
    #[serde(default)]
    error_code: Option<Value>,
    #[serde(default)]
    message: Option<String>,
}

#[derive(Deserialize, Default)]
struct Manifest {
    #[serde(default)]
    schema: Option<ManifestSchema>,
    #[serde(default)]
    truncated: Option<bool>,
    #[serde(default)]
    format: Option<String>,
}

#[derive(Deserialize, Default)]
struct ManifestSchema {
    #[serde(default)]
    columns: Vec<ManifestColumn>,
}

#[derive(Deserialize)]
struct ManifestColumn {
    name: String,
    #[serde(default)]
    position: Option<usize>,
    #[serde(default)]
    type_name: Option<String>,
}

#[derive(Deserialize, Default)]
struct ResultData {
    #[serde(default)]
    data_array: Option<Vec<Vec<Value>>>,
    #[serde(default)]
    next_chunk_index: Option<u64>,
    #[serde(default)]
    next_chunk_internal_link: Option<String>,
    #[serde(default)]
    external_links: Option<Vec<Value>>,
}

/// The request that starts a statement (shared by `plan()` and `execute()`).
pub(crate) fn execute_request(
    target: &Target,
    settings: &SqlSettings,
    warehouse_id: &str,
    statement: &str,
    params: &[SqlParam],
    row_limit: Option<u64>,
) -> Request {
    let mut body = json!({
        "statement": statement,
        "warehouse_id": warehouse_id,
        "parameters": params,
        "wait_timeout": format!("{}s", settings.wait_timeout_seconds),
        "on_wait_timeout": "CONTINUE",
        "disposition": "INLINE",
        "format": "JSON_ARRAY",
    });
    if let Some(n) = row_limit {
        body["row_limit"] = json!(n);
    }
    // A statement that reads is safe to start twice; floodgate only runs reads.
    Request::post(target.url("/api/2.0/sql/statements")).json(body).replay(Replay::Safe)
}

pub(crate) fn check_statement(statement: &str, params: &[SqlParam]) -> Result<(), ActionError> {
    if statement.trim().is_empty() {
        return Err(ActionError::invalid_input("the SQL statement is empty"));
    }
    if statement.len() > MAX_STATEMENT_BYTES {
        return Err(ActionError::invalid_input("the SQL statement is longer than 16 MiB (a Databricks limit)"));
    }
    for p in params {
        if !valid_param_name(&p.name) {
            return Err(ActionError::invalid_input(format!(
                "parameter name {:?} must be letters, digits and '_' (used as :{} in the SQL)",
                p.name, p.name
            )));
        }
    }
    Ok(())
}

/// Runs a statement to completion on `target` and returns every row.
pub(crate) async fn run(
    target: &Target,
    settings: &SqlSettings,
    warehouse_id: &str,
    statement: &str,
    params: &[SqlParam],
    opts: &StatementOptions,
) -> Result<QueryResult, ActionError> {
    check_statement(statement, params)?;
    let deadline = Instant::now() + opts.timeout.unwrap_or(settings.timeout);
    let req = execute_request(target, settings, warehouse_id, statement, params, opts.row_limit);
    let mut resp: StatementResponse = target.call_json(&req).await?;
    let id = resp.statement_id.clone();
    let mut delay = Duration::from_millis(100);
    loop {
        match resp.status.state.as_str() {
            "SUCCEEDED" => break,
            "PENDING" | "RUNNING" => {
                if Instant::now() + delay > deadline {
                    cancel(target, &id).await;
                    return Err(ActionError::retryable(
                        "statement_timeout",
                        format!(
                            "SQL statement {id} on {} did not finish in time and was cancelled; the warehouse may be starting or overloaded",
                            target.describe()
                        ),
                    ));
                }
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(3));
                let get = Request::get(target.url(&format!("/api/2.0/sql/statements/{id}")));
                resp = poll(target, &get, &id).await?;
            }
            "FAILED" => return Err(failed(target, &id, &resp.status)),
            "CANCELED" => {
                return Err(ActionError::retryable(
                    "statement_canceled",
                    format!("SQL statement {id} on {} was canceled before it finished", target.describe()),
                ));
            }
            "CLOSED" => {
                return Err(ActionError::retryable(
                    "statement_closed",
                    format!(
                        "SQL statement {id} on {} was closed; its result is no longer available",
                        target.describe()
                    ),
                ));
            }
            other => {
                return Err(ActionError::permanent(
                    "bad_response",
                    format!("SQL statement {id} on {} is in an unknown state {other:?}", target.describe()),
                ));
            }
        }
    }
    collect(target, resp).await
}

/// A status poll. A 404 means the statement expired or was forgotten: running it again helps.
async fn poll(target: &Target, req: &Request, id: &str) -> Result<StatementResponse, ActionError> {
    let resp = target.send(req).await?;
    if resp.status == 404 {
        return Err(ActionError::retryable(
            "statement_expired",
            format!("SQL statement {id} is no longer known to {} (HTTP 404)", target.describe()),
        ));
    }
    if !resp.is_success() {
        return Err(crate::error::api_error(&target.what(req), &resp));
    }
    parse_json(&resp, &target.what(req))
}

async fn cancel(target: &Target, id: &str) {
    let req = Request::post(target.url(&format!("/api/2.0/sql/statements/{id}/cancel"))).replay(Replay::Safe);
    if let Err(e) = target.call(&req).await {
        tracing::warn!(statement_id = %id, error = %e, "could not cancel a timed-out statement");
    }
}

fn failed(target: &Target, id: &str, status: &StatementStatus) -> ActionError {
    let (error_code, message) = match &status.error {
        Some(e) => (
            e.error_code.as_ref().map(|c| match c {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            }),
            e.message.clone().unwrap_or_default(),
        ),
        None => (None, String::new()),
    };
    // Spark error classes lead the message: "[TABLE_OR_VIEW_NOT_FOUND] The table ...".
    let class = message
        .strip_prefix('[')
        .and_then(|r| r.split_once(']'))
        .map(|(c, _)| c.to_string())
        .filter(|c| !c.is_empty() && c.chars().all(|ch| ch.is_ascii_uppercase() || ch == '_' || ch == '.'));
    let code = class.or_else(|| error_code.clone()).unwrap_or_else(|| "statement_failed".into());
    let sql_state = status.sql_state.as_deref().map(|s| format!(" (SQLSTATE {s})")).unwrap_or_default();
    let text = format!(
        "SQL statement {id} FAILED on {}{sql_state}: {}{}",
        target.describe(),
        error_code.as_deref().map(|c| format!("{c}: ")).unwrap_or_default(),
        floodgate_sdk::text::truncate(&message, 1000)
    );
    match error_code.as_deref() {
        Some("TEMPORARILY_UNAVAILABLE" | "WORKSPACE_TEMPORARILY_UNAVAILABLE" | "SERVICE_UNDER_MAINTENANCE") => {
            ActionError::retryable(&code, text)
        }
        _ => ActionError::permanent(&code, text),
    }
}

async fn collect(target: &Target, resp: StatementResponse) -> Result<QueryResult, ActionError> {
    let id = resp.statement_id;
    let manifest = resp.manifest.unwrap_or_default();
    if manifest.format.as_deref().is_some_and(|f| f != "JSON_ARRAY") {
        return Err(ActionError::permanent(
            "bad_response",
            format!("SQL statement {id} returned format {:?}; floodgate reads JSON_ARRAY only", manifest.format),
        ));
    }
    let mut cols = manifest.schema.unwrap_or_default().columns;
    cols.sort_by_key(|c| c.position.unwrap_or(usize::MAX));
    let columns: Vec<Column> = cols
        .iter()
        .map(|c| Column { name: c.name.clone(), type_name: c.type_name.clone().unwrap_or_else(|| "STRING".into()) })
        .collect();
    let mut rows = Vec::new();
    let mut chunk = resp.result.unwrap_or_default();
    for _ in 0..MAX_CHUNKS {
        if chunk.external_links.as_ref().is_some_and(|l| !l.is_empty()) {
            return Err(ActionError::permanent(
                "bad_response",
                format!("SQL statement {id} returned EXTERNAL_LINKS; floodgate requests INLINE results"),
            ));
        }
        for raw in chunk.data_array.take().unwrap_or_default() {
            rows.push(typed_row(&columns, raw));
        }
        let path = match (&chunk.next_chunk_internal_link, chunk.next_chunk_index) {
            (Some(link), _) => {
                // Follow only links back into this statement's results on the same host.
                if !link.starts_with(&format!("/api/2.0/sql/statements/{id}/result/chunks/")) {
                    return Err(ActionError::permanent(
                        "bad_response",
                        format!("SQL statement {id}: refusing to follow unexpected chunk link {link:?}"),
                    ));
                }
                link.clone()
            }
            (None, Some(i)) => format!("/api/2.0/sql/statements/{id}/result/chunks/{i}"),
            (None, None) => {
                return Ok(QueryResult {
                    statement_id: id,
                    columns,
                    rows,
                    truncated: manifest.truncated.unwrap_or(false),
                });
            }
        };
        let req = Request::get(target.url(&path));
        let resp = target.send(&req).await?;
        if resp.status == 404 {
            return Err(ActionError::retryable(
                "statement_expired",
                format!("SQL statement {id}: result chunk {path} is gone (results expire an hour after success)"),
            ));
        }
        if !resp.is_success() {
            return Err(crate::error::api_error(&target.what(&req), &resp));
        }
        chunk = parse_json(&resp, &target.what(&req))?;
    }
    Err(ActionError::permanent("bad_response", format!("SQL statement {id} returned more than {MAX_CHUNKS} chunks")))
}

fn typed_row(columns: &[Column], raw: Vec<Value>) -> Map<String, Value> {
    let mut row = Map::new();
    for (i, v) in raw.into_iter().enumerate() {
        let (name, ty) = match columns.get(i) {
            Some(c) => (c.name.clone(), c.type_name.as_str()),
            None => (format!("_{i}"), "STRING"),
        };
        let text = match v {
            Value::Null => None,
            Value::String(s) => Some(s),
            other => Some(other.to_string()),
        };
        row.insert(name, typed_value(ty, text.as_deref()));
    }
    row
}

/// A `JSON_ARRAY` cell (always a string) as a JSON value of its column's type.
pub fn typed_value(type_name: &str, v: Option<&str>) -> Value {
    let Some(s) = v else { return Value::Null };
    match type_name {
        "BYTE" | "SHORT" | "INT" | "LONG" | "BIGINT" | "SMALLINT" | "TINYINT" | "INTEGER" => {
            s.trim().parse::<i64>().map(Value::from).unwrap_or_else(|_| Value::String(s.into()))
        }
        "FLOAT" | "DOUBLE" => match s.trim().parse::<f64>() {
            Ok(f) if f.is_finite() => json!(f),
            _ => Value::String(s.into()),
        },
        "BOOLEAN" => match s.trim() {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            _ => Value::String(s.into()),
        },
        "ARRAY" | "MAP" | "STRUCT" => serde_json::from_str(s).unwrap_or_else(|_| Value::String(s.into())),
        "NULL" => Value::Null,
        _ => Value::String(s.into()),
    }
}

impl Databricks {
    /// Runs a read-only SQL statement on a workspace's SQL warehouse and returns every row.
    ///
    /// `workspace` is a configured workspace name or numeric id; `None` means
    /// `default_workspace`. Values go in `params` (`:name` markers), never into `sql`.
    pub async fn run_statement(
        &self,
        workspace: Option<&str>,
        sql: &str,
        params: &[SqlParam],
    ) -> Result<QueryResult, ActionError> {
        self.run_statement_with(workspace, sql, params, &StatementOptions::default()).await
    }

    /// `run_statement` with a warehouse, row limit or timeout of the caller's choosing.
    pub async fn run_statement_with(
        &self,
        workspace: Option<&str>,
        sql: &str,
        params: &[SqlParam],
        opts: &StatementOptions,
    ) -> Result<QueryResult, ActionError> {
        self.ensure_configured()?;
        let target = self.workspace_target(workspace)?;
        let warehouse = self.warehouse_of(target, opts.warehouse_id.as_deref())?;
        run(target, &self.config.sql, &warehouse, sql, params, opts).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn params_serialize_as_the_api_expects() {
        let ts = time::macros::datetime!(2026-03-10 21:00:00 UTC);
        let v = serde_json::to_value([
            SqlParam::timestamp("since", ts),
            SqlParam::string("user", "carol@example.com"),
            SqlParam::null("x", SqlType::Int),
            SqlParam::date("d", ts.date()),
        ])
        .unwrap();
        assert_eq!(
            v,
            json!([
                {"name": "since", "value": "2026-03-10T21:00:00Z", "type": "TIMESTAMP"},
                {"name": "user", "value": "carol@example.com", "type": "STRING"},
                {"name": "x", "type": "INT"},
                {"name": "d", "value": "2026-03-10", "type": "DATE"}
            ])
        );
        assert!(SqlParam::typed("n", SqlType::Int, Some("12x")).is_err());
        assert!(SqlParam::typed("t", SqlType::Timestamp, Some("2026-03-10 01:02:03")).is_ok());
        assert!(check_statement("SELECT 1", &[SqlParam::string("bad name", "x")]).is_err());
    }

    #[test]
    fn cells_are_typed_by_the_manifest() {
        assert_eq!(typed_value("INT", Some("401")), json!(401));
        assert_eq!(typed_value("LONG", Some("9007199254740993")), json!(9007199254740993_i64));
        assert_eq!(typed_value("DOUBLE", Some("1.5")), json!(1.5));
        assert_eq!(typed_value("DOUBLE", Some("NaN")), json!("NaN"));
        assert_eq!(typed_value("BOOLEAN", Some("true")), json!(true));
        assert_eq!(typed_value("ARRAY", Some("[\"a\",\"b\"]")), json!(["a", "b"]));
        assert_eq!(typed_value("DECIMAL", Some("1.10")), json!("1.10"));
        assert_eq!(typed_value("TIMESTAMP", Some("2026-03-10T21:14:01.120Z")), json!("2026-03-10T21:14:01.120Z"));
        assert_eq!(typed_value("STRING", None), Value::Null);
    }
}
