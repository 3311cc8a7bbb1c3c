//! The simulated Statement Execution API 2.0: validation of `ExecuteStatementRequest`, the
//! statement lifecycle with `wait_timeout` / `on_wait_timeout`, chunked `INLINE` `JSON_ARRAY`
//! results, cancel, expiry, and SQL failures reported as HTTP 200 `FAILED`.

// Handlers answer errors with the HTTP response itself; its size does not matter here.
#![allow(clippy::result_large_err)]

use super::sqlengine::BoundParam;
use super::sqlengine::DType;
use super::world::{Outcome, Statement};
use super::{Shared, error, json_body, ok_empty, ok_json};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

type S = State<Arc<Shared>>;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/2.0/sql/statements", post(execute))
        .route("/api/2.0/sql/statements/{id}", get(status))
        .route("/api/2.0/sql/statements/{id}/result/chunks/{index}", get(chunk))
        .route("/api/2.0/sql/statements/{id}/cancel", post(cancel))
}

fn bad(msg: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", msg)
}

fn not_found(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", format!("Statement {id} does not exist or has expired"))
}

struct Request {
    statement: String,
    params: Vec<BoundParam>,
    wait: Duration,
    cancel_on_timeout: bool,
    row_limit: Option<usize>,
}

fn parse_request(body: &[u8], warehouses: &std::collections::BTreeSet<String>) -> Result<Request, Response> {
    let b = json_body(body)?;
    let statement = b.get("statement").and_then(Value::as_str).unwrap_or("");
    if statement.trim().is_empty() {
        return Err(bad("statement is required"));
    }
    if statement.len() > 16 * 1024 * 1024 {
        return Err(bad("statement is larger than 16 MiB"));
    }
    let warehouse = b.get("warehouse_id").and_then(Value::as_str).unwrap_or("");
    if warehouse.is_empty() {
        return Err(bad("warehouse_id is required"));
    }
    if !warehouses.contains(warehouse) {
        return Err(error(
            StatusCode::NOT_FOUND,
            "RESOURCE_DOES_NOT_EXIST",
            format!("SQL warehouse {warehouse} does not exist"),
        ));
    }
    let wait = match b.get("wait_timeout") {
        None => Duration::from_secs(10),
        Some(v) => {
            let secs = v
                .as_str()
                .and_then(|s| s.strip_suffix('s'))
                .and_then(|n| n.parse::<u64>().ok())
                .filter(|n| *n == 0 || (5..=50).contains(n))
                .ok_or_else(|| bad("wait_timeout must be \"0s\" or between \"5s\" and \"50s\""))?;
            Duration::from_secs(secs)
        }
    };
    let cancel_on_timeout = match b.get("on_wait_timeout").and_then(Value::as_str) {
        None | Some("CONTINUE") => false,
        Some("CANCEL") => true,
        Some(other) => return Err(bad(format!("on_wait_timeout must be CONTINUE or CANCEL, not {other}"))),
    };
    let disposition = b.get("disposition").and_then(Value::as_str).unwrap_or("INLINE");
    let format = b.get("format").and_then(Value::as_str).unwrap_or("JSON_ARRAY");
    match (disposition, format) {
        ("INLINE", "JSON_ARRAY") => {}
        ("INLINE", "ARROW_STREAM" | "CSV") => {
            return Err(bad(format!("format {format} requires disposition EXTERNAL_LINKS")));
        }
        ("EXTERNAL_LINKS", _) => return Err(bad("the floodgate simulator serves disposition INLINE only")),
        _ => return Err(bad(format!("invalid disposition {disposition} or format {format}"))),
    }
    let row_limit = match b.get("row_limit") {
        None => None,
        Some(v) => {
            Some(v.as_u64().filter(|n| *n > 0).ok_or_else(|| bad("row_limit must be a positive integer"))? as usize)
        }
    };
    let mut params = Vec::new();
    if let Some(p) = b.get("parameters") {
        let list = p.as_array().ok_or_else(|| bad("parameters must be an array"))?;
        for item in list {
            let name = item.get("name").and_then(Value::as_str).unwrap_or("");
            let valid = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                return Err(bad(format!("parameter name {name:?} is not valid")));
            }
            let type_name = match item.get("type") {
                None | Some(Value::Null) => "STRING",
                Some(Value::String(t)) => t.as_str(),
                Some(_) => return Err(bad(format!("type of parameter {name} must be a string"))),
            };
            let dtype = DType::from_param_type(type_name)
                .ok_or_else(|| bad(format!("parameter {name} has an unsupported type {type_name}")))?;
            let value = match item.get("value") {
                None | Some(Value::Null) => None,
                Some(Value::String(v)) => Some(v.clone()),
                Some(_) => return Err(bad(format!("value of parameter {name} must be a string"))),
            };
            params.push(BoundParam { name: name.to_string(), dtype, value });
        }
    }
    Ok(Request { statement: statement.to_string(), params, wait, cancel_on_timeout, row_limit })
}

async fn execute(State(s): S, body: Bytes) -> Response {
    let (req, failure) = {
        let mut w = s.world();
        let req = match parse_request(&body, &w.warehouses) {
            Ok(r) => r,
            Err(resp) => return resp,
        };
        let failure = (!w.statement_failures.is_empty()).then(|| w.statement_failures.remove(0));
        (req, failure)
    };
    let outcome = match failure {
        Some((code, message)) => Outcome::Failed { error_code: code, message, sql_state: "XX000".into() },
        None => match s.db.run(&req.statement, &req.params).await {
            Ok(out) => {
                let mut rows = out.rows;
                let truncated = req.row_limit.is_some_and(|n| rows.len() > n);
                if let Some(n) = req.row_limit {
                    rows.truncate(n);
                }
                Outcome::Rows { columns: out.columns, rows, truncated }
            }
            Err(e) => Outcome::Failed {
                error_code: "BAD_REQUEST".into(),
                sql_state: e.sql_state.to_string(),
                message: e.to_string(),
            },
        },
    };
    let (id, wait_until) = {
        let mut w = s.world();
        let id = format!("01f0{}", uuid::Uuid::new_v4().simple());
        let id = format!("{}-{}-{}-{}-{}", &id[..8], &id[8..12], &id[12..16], &id[16..20], &id[20..32]);
        let st = Statement {
            id: id.clone(),
            submitted: Instant::now(),
            latency: w.statement_latency,
            outcome,
            canceled: false,
            closed: false,
            chunk_rows: w.chunk_rows,
        };
        let wait_until = st.submitted + req.wait.min(st.latency);
        w.statements.insert(id.clone(), st);
        (id, wait_until)
    };
    tokio::time::sleep_until(wait_until.into()).await;
    let mut w = s.world();
    let ttl = w.result_ttl;
    let Some(st) = w.statements.get_mut(&id) else { return not_found(&id) };
    let now = Instant::now();
    let state = st.state(now, ttl);
    if req.cancel_on_timeout && req.wait > Duration::ZERO && matches!(state, "PENDING" | "RUNNING") {
        st.canceled = true;
    }
    ok_json(statement_json(st, Instant::now(), ttl))
}

fn is_gone(st: &Statement, now: Instant, forget_after: Duration) -> bool {
    now > st.done_at() + forget_after
}

async fn status(State(s): S, Path(id): Path<String>) -> Response {
    let w = s.world();
    let now = Instant::now();
    match w.statements.get(&id) {
        Some(st) if !is_gone(st, now, w.forget_after) => ok_json(statement_json(st, now, w.result_ttl)),
        _ => not_found(&id),
    }
}

async fn chunk(State(s): S, Path((id, index)): Path<(String, String)>) -> Response {
    let w = s.world();
    let now = Instant::now();
    let Some(st) = w.statements.get(&id).filter(|st| !is_gone(st, now, w.forget_after)) else {
        return not_found(&id);
    };
    match st.state(now, w.result_ttl) {
        "SUCCEEDED" => {}
        "CLOSED" => {
            return error(
                StatusCode::NOT_FOUND,
                "RESOURCE_DOES_NOT_EXIST",
                format!("The result of statement {id} has expired"),
            );
        }
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                "BAD_REQUEST",
                format!("Statement {id} is {other}; results are available once it SUCCEEDED"),
            );
        }
    }
    let Ok(i) = index.parse::<usize>() else {
        return bad(format!("chunk index {index} is not a number"));
    };
    match chunk_json(st, i) {
        Some(c) => ok_json(c),
        None => bad(format!("chunk index {i} is out of range")),
    }
}

async fn cancel(State(s): S, Path(id): Path<String>) -> Response {
    let mut w = s.world();
    let now = Instant::now();
    let (ttl, forget) = (w.result_ttl, w.forget_after);
    match w.statements.get_mut(&id) {
        Some(st) if !is_gone(st, now, forget) => {
            if matches!(st.state(now, ttl), "PENDING" | "RUNNING") {
                st.canceled = true;
            }
            ok_empty()
        }
        _ => not_found(&id),
    }
}

fn chunk_count(st: &Statement) -> usize {
    match &st.outcome {
        Outcome::Rows { rows, .. } => rows.len().div_ceil(st.chunk_rows),
        Outcome::Failed { .. } => 0,
    }
}

fn chunk_json(st: &Statement, i: usize) -> Option<Value> {
    let Outcome::Rows { rows, .. } = &st.outcome else { return None };
    let total = chunk_count(st);
    if i >= total {
        return None;
    }
    let start = i * st.chunk_rows;
    let data: Vec<&Vec<Option<String>>> = rows.iter().skip(start).take(st.chunk_rows).collect();
    let mut c = json!({
        "chunk_index": i,
        "row_offset": start,
        "row_count": data.len(),
        "data_array": data,
    });
    if i + 1 < total {
        c["next_chunk_index"] = json!(i + 1);
        c["next_chunk_internal_link"] = json!(format!("/api/2.0/sql/statements/{}/result/chunks/{}", st.id, i + 1));
    }
    Some(c)
}

fn statement_json(st: &Statement, now: Instant, ttl: Duration) -> Value {
    let state = st.state(now, ttl);
    let mut v = json!({"statement_id": st.id, "status": {"state": state}});
    match (&st.outcome, state) {
        (Outcome::Failed { error_code, message, sql_state }, "FAILED") => {
            v["status"]["error"] = json!({"error_code": error_code, "message": message});
            v["status"]["sql_state"] = json!(sql_state);
        }
        (Outcome::Rows { columns, rows, truncated }, "SUCCEEDED") => {
            let cols: Vec<Value> = columns
                .iter()
                .enumerate()
                .map(|(k, (name, t))| {
                    let (tn, tt) = t.manifest();
                    json!({"name": name, "position": k, "type_name": tn, "type_text": tt})
                })
                .collect();
            let total = chunk_count(st);
            let chunks: Vec<Value> = (0..total)
                .map(|i| {
                    let start = i * st.chunk_rows;
                    json!({"chunk_index": i, "row_offset": start, "row_count": rows.len().saturating_sub(start).min(st.chunk_rows)})
                })
                .collect();
            v["manifest"] = json!({
                "format": "JSON_ARRAY",
                "schema": {"column_count": columns.len(), "columns": cols},
                "total_chunk_count": total,
                "chunks": chunks,
                "total_row_count": rows.len(),
                "truncated": truncated,
            });
            if let Some(first) = chunk_json(st, 0) {
                v["result"] = first;
            }
        }
        _ => {}
    }
    v
}
