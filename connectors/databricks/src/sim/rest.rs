//! Simulated workspace/account resources: IP access lists (workspace and account, with the
//! 1000-value quota and the self-lockout check), workspace-conf, the typed
//! `sql_results_download` setting, the Secrets API, and clusters.

// Handlers answer errors with the HTTP response itself; its size does not matter here.
#![allow(clippy::result_large_err)]

use super::world::{AclList, CONF_KEYS, World, now_ms};
use super::{Caller, Shared, error, json_body, ok_empty, ok_json, require_admin};
use crate::net::Ipv4Net;
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::sync::Arc;

type S = State<Arc<Shared>>;
type Who = Extension<Caller>;

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/2.0/ip-access-lists", get(ws_list).post(ws_create))
        .route("/api/2.0/ip-access-lists/{id}", get(ws_get).put(ws_replace).patch(ws_update).delete(ws_delete))
        .route("/api/2.0/accounts/{acct}/ip-access-lists", get(acct_list).post(acct_create))
        .route(
            "/api/2.0/accounts/{acct}/ip-access-lists/{id}",
            get(acct_get).put(acct_replace).patch(acct_update).delete(acct_delete),
        )
        .route(
            "/api/2.0/accounts/{acct}/settings/types/acct_ip_acl_enable/names/default",
            get(acct_acl_setting_get).patch(acct_acl_setting_patch),
        )
        .route("/api/2.0/workspace-conf", get(conf_get).patch(conf_patch))
        .route("/api/2.0/preview/workspace-conf", get(conf_get).patch(conf_patch))
        .route(
            "/api/2.0/settings/types/sql_results_download/names/default",
            get(setting_get).patch(setting_patch).delete(setting_delete),
        )
        .route("/api/2.0/secrets/scopes/create", post(scope_create))
        .route("/api/2.0/secrets/scopes/list", get(scope_list))
        .route("/api/2.0/secrets/put", post(secret_put))
        .route("/api/2.0/secrets/list", get(secret_list))
        .route("/api/2.1/clusters/delete", post(cluster_delete))
        .route("/api/2.0/clusters/delete", post(cluster_delete))
        .route("/api/2.1/clusters/get", get(cluster_get))
        .route("/api/2.0/clusters/get", get(cluster_get))
}

pub(super) fn list_json(l: &AclList) -> Value {
    json!({
        "list_id": l.list_id,
        "label": l.label,
        "list_type": l.list_type,
        "ip_addresses": l.ip_addresses,
        "address_count": l.ip_addresses.len(),
        "enabled": l.enabled,
        "created_at": l.created_at,
        "created_by": 1,
        "updated_at": l.updated_at,
        "updated_by": 1,
    })
}

fn nets(l: &AclList) -> Vec<Ipv4Net> {
    l.ip_addresses.iter().filter_map(|v| v.parse().ok()).collect()
}

/// Block lists first; then, if any allow list exists, the address must be on one.
pub(super) fn blocked(lists: &[AclList], ip: Ipv4Addr) -> bool {
    let enabled = || lists.iter().filter(|l| l.enabled);
    if enabled().filter(|l| l.list_type == "BLOCK").any(|l| nets(l).iter().any(|n| n.contains_addr(ip))) {
        return true;
    }
    let mut allows = enabled().filter(|l| l.list_type == "ALLOW").peekable();
    allows.peek().is_some() && !allows.any(|l| nets(l).iter().any(|n| n.contains_addr(ip)))
}

fn account_ok(w: &World, acct: &str) -> Result<(), Response> {
    if acct == w.account_id {
        Ok(())
    } else {
        Err(error(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", format!("Account {acct} does not exist")))
    }
}

fn bad(msg: impl Into<String>) -> Response {
    error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", msg)
}

fn not_found_list(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", format!("IP access list {id} does not exist"))
}

/// Validates `ip_addresses` values (IPv4 addresses or CIDR ranges).
fn check_values(v: &Value) -> Result<Vec<String>, Response> {
    let arr = v.as_array().ok_or_else(|| bad("ip_addresses must be an array of strings"))?;
    let mut out = Vec::new();
    for x in arr {
        let s = x.as_str().ok_or_else(|| bad("ip_addresses must be an array of strings"))?;
        if s.parse::<Ipv4Net>().is_err() {
            return Err(bad(format!("{s} is not a valid IP address or CIDR range")));
        }
        out.push(s.to_string());
    }
    Ok(out)
}

fn check_type(v: &Value) -> Result<String, Response> {
    match v.as_str() {
        Some(t @ ("ALLOW" | "BLOCK")) => Ok(t.to_string()),
        _ => Err(bad("list_type must be ALLOW or BLOCK")),
    }
}

/// Refuses a change that would pass the quota or lock the caller out.
fn check_new_state(w: &World, lists: &[AclList]) -> Result<(), Response> {
    let total: usize = lists.iter().map(|l| l.ip_addresses.len()).sum();
    if total > 1000 {
        return Err(bad_code(
            "QUOTA_EXCEEDED",
            format!("IP access lists may hold at most 1000 values in total; this change would make {total}"),
        ));
    }
    let ip = w.caller_ip;
    if blocked(lists, ip) {
        return Err(bad_code(
            "INVALID_STATE",
            format!(
                "Your current IP {ip} will not be allowed to access the workspace under the new IP access list configuration"
            ),
        ));
    }
    Ok(())
}

fn bad_code(code: &str, msg: String) -> Response {
    error(StatusCode::BAD_REQUEST, code, msg)
}

fn acl_list(shared: &Shared, account: bool, caller: &Caller) -> Response {
    if let Err(r) = require_admin(caller) {
        return r;
    }
    let w = shared.world();
    let lists: Vec<Value> = w.lists(account).iter().map(list_json).collect();
    ok_json(json!({ "ip_access_lists": lists }))
}

fn acl_create(shared: &Shared, account: bool, caller: &Caller, body: &[u8]) -> Response {
    let run = || -> Result<Response, Response> {
        require_admin(caller)?;
        let b = json_body(body)?;
        let label = b.get("label").and_then(Value::as_str).unwrap_or("");
        if label.trim().is_empty() {
            return Err(bad("label is required and must not be empty"));
        }
        let list_type = check_type(b.get("list_type").unwrap_or(&Value::Null))?;
        let values = match b.get("ip_addresses") {
            Some(v) => check_values(v)?,
            None => Vec::new(),
        };
        let mut w = shared.world();
        let now = now_ms();
        let list = AclList {
            list_id: uuid::Uuid::new_v4().to_string(),
            label: label.to_string(),
            list_type,
            ip_addresses: values,
            enabled: true,
            created_at: now,
            updated_at: now,
        };
        let mut next = w.lists(account).clone();
        next.push(list.clone());
        check_new_state(&w, &next)?;
        *w.lists_mut(account) = next;
        Ok(ok_json(json!({ "ip_access_list": list_json(&list) })))
    };
    run().unwrap_or_else(|r| r)
}

fn acl_get(shared: &Shared, account: bool, caller: &Caller, id: &str) -> Response {
    if let Err(r) = require_admin(caller) {
        return r;
    }
    let w = shared.world();
    match w.lists(account).iter().find(|l| l.list_id == id) {
        Some(l) => ok_json(json!({ "ip_access_list": list_json(l) })),
        None => not_found_list(id),
    }
}

/// PUT (`replace`: label, list_type and enabled required) or PATCH (`update`: any subset).
fn acl_change(shared: &Shared, account: bool, caller: &Caller, id: &str, body: &[u8], replace: bool) -> Response {
    let run = || -> Result<Response, Response> {
        require_admin(caller)?;
        let b = json_body(body)?;
        if replace {
            for f in ["label", "list_type", "enabled"] {
                if !b.contains_key(f) {
                    return Err(bad(format!("{f} is required")));
                }
            }
        }
        let mut w = shared.world();
        let mut next = w.lists(account).clone();
        let list = next.iter_mut().find(|l| l.list_id == id).ok_or_else(|| not_found_list(id))?;
        if let Some(v) = b.get("label") {
            let l = v.as_str().filter(|s| !s.trim().is_empty()).ok_or_else(|| bad("label must not be empty"))?;
            list.label = l.to_string();
        }
        if let Some(v) = b.get("list_type") {
            list.list_type = check_type(v)?;
        }
        if let Some(v) = b.get("ip_addresses") {
            list.ip_addresses = check_values(v)?;
        } else if replace {
            list.ip_addresses = Vec::new();
        }
        if let Some(v) = b.get("enabled") {
            list.enabled = v.as_bool().ok_or_else(|| bad("enabled must be a boolean"))?;
        }
        list.updated_at = now_ms();
        check_new_state(&w, &next)?;
        *w.lists_mut(account) = next;
        Ok(ok_empty())
    };
    run().unwrap_or_else(|r| r)
}

fn acl_delete(shared: &Shared, account: bool, caller: &Caller, id: &str) -> Response {
    let run = || -> Result<Response, Response> {
        require_admin(caller)?;
        let mut w = shared.world();
        let mut next = w.lists(account).clone();
        let before = next.len();
        next.retain(|l| l.list_id != id);
        if next.len() == before {
            return Err(not_found_list(id));
        }
        check_new_state(&w, &next)?;
        *w.lists_mut(account) = next;
        Ok(ok_empty())
    };
    run().unwrap_or_else(|r| r)
}

async fn ws_list(State(s): S, Extension(c): Who) -> Response {
    acl_list(&s, false, &c)
}
async fn ws_create(State(s): S, Extension(c): Who, body: Bytes) -> Response {
    acl_create(&s, false, &c, &body)
}
async fn ws_get(State(s): S, Extension(c): Who, Path(id): Path<String>) -> Response {
    acl_get(&s, false, &c, &id)
}
async fn ws_replace(State(s): S, Extension(c): Who, Path(id): Path<String>, body: Bytes) -> Response {
    acl_change(&s, false, &c, &id, &body, true)
}
async fn ws_update(State(s): S, Extension(c): Who, Path(id): Path<String>, body: Bytes) -> Response {
    acl_change(&s, false, &c, &id, &body, false)
}
async fn ws_delete(State(s): S, Extension(c): Who, Path(id): Path<String>) -> Response {
    acl_delete(&s, false, &c, &id)
}

macro_rules! with_account {
    ($s:expr, $acct:expr, $body:expr) => {{
        let check = account_ok(&$s.world(), &$acct);
        match check {
            Ok(()) => $body,
            Err(r) => r,
        }
    }};
}

async fn acct_list(State(s): S, Extension(c): Who, Path(acct): Path<String>) -> Response {
    with_account!(s, acct, acl_list(&s, true, &c))
}
async fn acct_create(State(s): S, Extension(c): Who, Path(acct): Path<String>, body: Bytes) -> Response {
    with_account!(s, acct, acl_create(&s, true, &c, &body))
}
async fn acct_get(State(s): S, Extension(c): Who, Path((acct, id)): Path<(String, String)>) -> Response {
    with_account!(s, acct, acl_get(&s, true, &c, &id))
}
async fn acct_replace(
    State(s): S,
    Extension(c): Who,
    Path((acct, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    with_account!(s, acct, acl_change(&s, true, &c, &id, &body, true))
}
async fn acct_update(
    State(s): S,
    Extension(c): Who,
    Path((acct, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    with_account!(s, acct, acl_change(&s, true, &c, &id, &body, false))
}
async fn acct_delete(State(s): S, Extension(c): Who, Path((acct, id)): Path<(String, String)>) -> Response {
    with_account!(s, acct, acl_delete(&s, true, &c, &id))
}

async fn conf_get(State(s): S, Extension(c): Who, Query(q): Query<HashMap<String, String>>) -> Response {
    if let Err(r) = require_admin(&c) {
        return r;
    }
    let Some(keys) = q.get("keys").filter(|k| !k.is_empty()) else {
        return bad("keys is required: a comma-separated list of configuration keys");
    };
    let w = s.world();
    let mut out = Map::new();
    let mut unknown = Vec::new();
    for k in keys.split(',').map(str::trim) {
        match w.conf.get(k) {
            Some(v) => {
                out.insert(k.to_string(), v.clone().map(Value::String).unwrap_or(Value::Null));
            }
            None => unknown.push(k.to_string()),
        }
    }
    if !unknown.is_empty() {
        return bad(format!("Invalid keys: {unknown:?}"));
    }
    ok_json(Value::Object(out))
}

async fn conf_patch(State(s): S, Extension(c): Who, body: Bytes) -> Response {
    let run = || -> Result<Response, Response> {
        require_admin(&c)?;
        let b = json_body(&body)?;
        let mut w = s.world();
        for (k, v) in &b {
            if !CONF_KEYS.contains(&k.as_str()) {
                return Err(bad(format!("Invalid keys: [\"{k}\"]")));
            }
            let v = v.as_str().ok_or_else(|| bad(format!("value of {k} must be a string")))?;
            if k.starts_with("enable") && v != "true" && v != "false" {
                return Err(bad(format!("value of {k} must be \"true\" or \"false\"")));
            }
        }
        for (k, v) in b {
            w.conf.insert(k, v.as_str().map(str::to_string));
        }
        Ok(StatusCode::NO_CONTENT.into_response())
    };
    run().unwrap_or_else(|r| r)
}

fn setting_json(value: bool, etag: u64) -> Value {
    json!({"boolean_val": {"value": value}, "etag": etag.to_string(), "setting_name": "default"})
}

fn no_setting() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "RESOURCE_DOES_NOT_EXIST",
        "Setting sql_results_download is not available in this workspace",
    )
}

async fn setting_get(State(s): S, Extension(c): Who) -> Response {
    if let Err(r) = require_admin(&c) {
        return r;
    }
    match &s.world().sql_results_download {
        Some(t) => ok_json(setting_json(t.value, t.etag)),
        None => no_setting(),
    }
}

async fn setting_patch(State(s): S, Extension(c): Who, body: Bytes) -> Response {
    let run = || -> Result<Response, Response> {
        require_admin(&c)?;
        let b = json_body(&body)?;
        if b.get("allow_missing").and_then(Value::as_bool) != Some(true) {
            return Err(bad("allow_missing must be true"));
        }
        match b.get("field_mask").and_then(Value::as_str) {
            Some("boolean_val.value") | Some("*") => {}
            _ => return Err(bad("field_mask must be \"boolean_val.value\"")),
        }
        let setting = b.get("setting").and_then(Value::as_object).ok_or_else(|| bad("setting is required"))?;
        let value = setting
            .get("boolean_val")
            .and_then(|v| v.get("value"))
            .and_then(Value::as_bool)
            .ok_or_else(|| bad("setting.boolean_val.value must be a boolean"))?;
        let mut w = s.world();
        let current = w.sql_results_download.as_mut().ok_or_else(no_setting)?;
        if let Some(e) = setting.get("etag").and_then(Value::as_str)
            && !e.is_empty()
            && e != current.etag.to_string()
        {
            return Err(error(
                StatusCode::CONFLICT,
                "ABORTED",
                "The setting was changed since it was read (etag mismatch); read it again and retry",
            ));
        }
        current.value = value;
        current.etag += 1;
        Ok(ok_json(setting_json(current.value, current.etag)))
    };
    run().unwrap_or_else(|r| r)
}

async fn setting_delete(State(s): S, Extension(c): Who) -> Response {
    if let Err(r) = require_admin(&c) {
        return r;
    }
    let mut w = s.world();
    match w.sql_results_download.as_mut() {
        Some(t) => {
            t.value = true;
            t.etag += 1;
            ok_json(json!({"etag": t.etag.to_string()}))
        }
        None => no_setting(),
    }
}

fn acct_acl_json(t: &super::world::TypedSetting) -> Value {
    json!({"acct_ip_acl_enable": {"value": t.value}, "etag": t.etag.to_string(), "setting_name": "default"})
}

async fn acct_acl_setting_get(State(s): S, Extension(c): Who, Path(acct): Path<String>) -> Response {
    let run = || -> Result<Response, Response> {
        require_admin(&c)?;
        let w = s.world();
        account_ok(&w, &acct)?;
        Ok(ok_json(acct_acl_json(&w.acct_ip_acl)))
    };
    run().unwrap_or_else(|r| r)
}

async fn acct_acl_setting_patch(State(s): S, Extension(c): Who, Path(acct): Path<String>, body: Bytes) -> Response {
    let run = || -> Result<Response, Response> {
        require_admin(&c)?;
        let b = json_body(&body)?;
        if b.get("allow_missing").and_then(Value::as_bool) != Some(true) {
            return Err(bad("allow_missing must be true"));
        }
        if b.get("field_mask").and_then(Value::as_str) != Some("acct_ip_acl_enable.value") {
            return Err(bad("field_mask must be \"acct_ip_acl_enable.value\""));
        }
        let value = b
            .get("setting")
            .and_then(|v| v.pointer("/acct_ip_acl_enable/value"))
            .and_then(Value::as_bool)
            .ok_or_else(|| bad("setting.acct_ip_acl_enable.value must be a boolean"))?;
        let mut w = s.world();
        account_ok(&w, &acct)?;
        w.acct_ip_acl.value = value;
        w.acct_ip_acl.etag += 1;
        Ok(ok_json(acct_acl_json(&w.acct_ip_acl)))
    };
    run().unwrap_or_else(|r| r)
}

async fn scope_create(State(s): S, body: Bytes) -> Response {
    let run = || -> Result<Response, Response> {
        let b = json_body(&body)?;
        let scope = b.get("scope").and_then(Value::as_str).unwrap_or("");
        if !crate::config::valid_secret_name(scope) {
            return Err(bad(
                "Scope name must consist of alphanumeric characters, dashes, underscores, and periods, and may not exceed 128 characters",
            ));
        }
        let mut w = s.world();
        if w.scopes.contains_key(scope) {
            return Err(error(
                StatusCode::BAD_REQUEST,
                "RESOURCE_ALREADY_EXISTS",
                format!("Scope {scope} already exists!"),
            ));
        }
        w.scopes.insert(scope.to_string(), Default::default());
        Ok(ok_empty())
    };
    run().unwrap_or_else(|r| r)
}

async fn scope_list(State(s): S) -> Response {
    let w = s.world();
    let scopes: Vec<Value> = w.scopes.keys().map(|k| json!({"name": k, "backend_type": "DATABRICKS"})).collect();
    ok_json(json!({ "scopes": scopes }))
}

async fn secret_put(State(s): S, body: Bytes) -> Response {
    let run = || -> Result<Response, Response> {
        let b = json_body(&body)?;
        let scope = b.get("scope").and_then(Value::as_str).unwrap_or("");
        let key = b.get("key").and_then(Value::as_str).unwrap_or("");
        if !crate::config::valid_secret_name(key) {
            return Err(bad(
                "Key name must consist of alphanumeric characters, dashes, underscores, and periods, and may not exceed 128 characters",
            ));
        }
        let value = match (b.get("string_value"), b.get("bytes_value")) {
            (Some(Value::String(v)), None) => v.clone(),
            (None, Some(Value::String(v))) => v.clone(),
            _ => return Err(bad("Exactly one of string_value and bytes_value must be set")),
        };
        if value.len() > 128 * 1024 {
            return Err(bad("Secret value may not exceed 128 KB"));
        }
        let mut w = s.world();
        let entries = w.scopes.get_mut(scope).ok_or_else(|| {
            error(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", format!("Scope {scope} does not exist!"))
        })?;
        entries.insert(key.to_string(), value);
        Ok(ok_empty())
    };
    run().unwrap_or_else(|r| r)
}

async fn secret_list(State(s): S, Query(q): Query<HashMap<String, String>>) -> Response {
    let scope = q.get("scope").cloned().unwrap_or_default();
    let w = s.world();
    match w.scopes.get(&scope) {
        Some(entries) => {
            let list: Vec<Value> =
                entries.keys().map(|k| json!({"key": k, "last_updated_timestamp": now_ms()})).collect();
            ok_json(json!({ "secrets": list }))
        }
        None => error(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", format!("Scope {scope} does not exist!")),
    }
}

fn no_cluster(id: &str) -> Response {
    bad(format!("Cluster {id} does not exist"))
}

async fn cluster_delete(State(s): S, Extension(c): Who, body: Bytes) -> Response {
    let run = || -> Result<Response, Response> {
        require_admin(&c)?;
        let b = json_body(&body)?;
        let id =
            b.get("cluster_id").and_then(Value::as_str).ok_or_else(|| bad("Missing required field: cluster_id"))?;
        let mut w = s.world();
        let cluster = w.clusters.get_mut(id).ok_or_else(|| no_cluster(id))?;
        if cluster.state != "TERMINATED" {
            cluster.state = "TERMINATING".into();
        }
        Ok(ok_empty())
    };
    run().unwrap_or_else(|r| r)
}

async fn cluster_get(State(s): S, Query(q): Query<HashMap<String, String>>) -> Response {
    let Some(id) = q.get("cluster_id") else {
        return bad("Missing required field: cluster_id");
    };
    let mut w = s.world();
    let Some(cluster) = w.clusters.get_mut(id) else {
        return no_cluster(id);
    };
    let shown = cluster.state.clone();
    // Termination completes by the next look.
    if cluster.state == "TERMINATING" {
        cluster.state = "TERMINATED".into();
    }
    ok_json(json!({"cluster_id": id, "cluster_name": cluster.name, "state": shown}))
}
