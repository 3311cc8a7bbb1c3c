//! Simulated identity: OAuth token endpoints (workspace and account), SCIM users and service
//! principals (workspace and account), service principal OAuth secrets (account API and the
//! workspace proxy, at most five per principal), and token management.

// Handlers answer errors with the HTTP response itself; its size does not matter here.
#![allow(clippy::result_large_err)]

use super::world::{AccessToken, ScimUser, ServicePrincipal, World};
use super::{Caller, Shared, base64_decode, error, json_body, ok_empty, ok_json, require_admin, scim_error};
use axum::Router;
use axum::body::Bytes;
use axum::extract::{Extension, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

type S = State<Arc<Shared>>;
type Who = Extension<Caller>;
type Q = Query<HashMap<String, String>>;

const MAX_SP_SECRETS: usize = 5;
const PATCH_OP: &str = "urn:ietf:params:scim:api:messages:2.0:PatchOp";

pub(super) fn token_routes() -> Router<Arc<Shared>> {
    Router::new().route("/oidc/v1/token", post(ws_token)).route("/oidc/accounts/{acct}/v1/token", post(acct_token))
}

pub(super) fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/api/2.0/preview/scim/v2/Users", get(ws_users))
        .route("/api/2.0/preview/scim/v2/Users/{id}", get(ws_user).patch(ws_user_patch))
        .route("/api/2.0/preview/scim/v2/ServicePrincipals", get(ws_sps))
        .route("/api/2.0/preview/scim/v2/Me", get(me))
        .route("/api/2.0/accounts/{acct}/scim/v2/Users", get(acct_users))
        .route("/api/2.0/accounts/{acct}/scim/v2/Users/{id}", get(acct_user).patch(acct_user_patch))
        .route("/api/2.0/accounts/{acct}/scim/v2/ServicePrincipals", get(acct_sps))
        .route("/api/2.0/accounts/servicePrincipals/{sp}/credentials/secrets", get(ws_secrets).post(ws_secret_create))
        .route("/api/2.0/accounts/servicePrincipals/{sp}/credentials/secrets/{sid}", delete(ws_secret_delete))
        .route(
            "/api/2.0/accounts/{acct}/servicePrincipals/{sp}/credentials/secrets",
            get(acct_secrets).post(acct_secret_create),
        )
        .route("/api/2.0/accounts/{acct}/servicePrincipals/{sp}/credentials/secrets/{sid}", delete(acct_secret_delete))
        .route("/api/2.0/token-management/tokens", get(tokens_list))
        .route("/api/2.0/token-management/tokens/{id}", get(token_get).delete(token_delete))
}

fn oauth_error(status: StatusCode, err: &str, desc: &str) -> Response {
    (status, axum::Json(json!({"error": err, "error_description": desc}))).into_response()
}

/// The client-credentials grant.
fn issue_token(shared: &Shared, headers: &HeaderMap, body: &[u8], account_level: bool) -> Response {
    let ct = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !ct.starts_with("application/x-www-form-urlencoded") {
        return oauth_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "Content-Type must be application/x-www-form-urlencoded",
        );
    }
    let form: HashMap<String, String> = url::form_urlencoded::parse(body).into_owned().collect();
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return oauth_error(StatusCode::BAD_REQUEST, "unsupported_grant_type", "grant_type must be client_credentials");
    }
    if !form.get("scope").is_some_and(|s| s.split(' ').any(|x| x == "all-apis")) {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_scope", "scope must include all-apis");
    }
    let basic = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Basic "))
        .and_then(base64_decode)
        .and_then(|b| String::from_utf8(b).ok())
        .and_then(|s| s.split_once(':').map(|(a, b)| (a.to_string(), b.to_string())));
    let creds = basic.or_else(|| Some((form.get("client_id")?.clone(), form.get("client_secret")?.clone())));
    let Some((client_id, secret)) = creds else {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed");
    };
    let mut w = shared.world();
    let valid = w
        .sps
        .iter()
        .any(|sp| sp.active && sp.application_id == client_id && sp.secrets.iter().any(|s| s.value == secret));
    if !valid {
        return oauth_error(StatusCode::UNAUTHORIZED, "invalid_client", "Client authentication failed");
    }
    let token = format!("eyJsim{}", w.opaque(48));
    let lifetime = w.token_lifetime;
    w.access_tokens.insert(
        token.clone(),
        AccessToken { application_id: client_id, account_level, expires_at: Instant::now() + lifetime },
    );
    ok_json(json!({
        "access_token": token,
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs_f64().round() as u64,
        "scope": "all-apis",
    }))
}

async fn ws_token(State(s): S, headers: HeaderMap, body: Bytes) -> Response {
    issue_token(&s, &headers, &body, false)
}

async fn acct_token(State(s): S, Path(acct): Path<String>, headers: HeaderMap, body: Bytes) -> Response {
    if acct != s.world().account_id {
        return oauth_error(StatusCode::BAD_REQUEST, "invalid_request", "Unknown account");
    }
    issue_token(&s, &headers, &body, true)
}

fn user_json(u: &ScimUser) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "id": u.id,
        "userName": u.user_name,
        "displayName": u.user_name,
        "active": u.active,
        "emails": [{"value": u.user_name, "primary": true, "type": "work"}],
    })
}

fn sp_json(sp: &ServicePrincipal) -> Value {
    json!({
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:ServicePrincipal"],
        "id": sp.id,
        "applicationId": sp.application_id,
        "displayName": sp.display_name,
        "active": sp.active,
    })
}

fn list_response(items: Vec<Value>) -> Response {
    ok_json(json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:ListResponse"],
        "totalResults": items.len(),
        "startIndex": 1,
        "itemsPerPage": items.len(),
        "Resources": items,
    }))
}

/// `attr eq "value"` — the filter form floodgate uses. Anything else is refused.
fn parse_filter(filter: &str) -> Result<(String, String), Response> {
    let invalid = || scim_error(StatusCode::BAD_REQUEST, Some("invalidFilter"), format!("Invalid filter: {filter}"));
    let mut parts = filter.trim().splitn(3, ' ');
    let attr = parts.next().ok_or_else(invalid)?;
    let op = parts.next().ok_or_else(invalid)?;
    let value = parts.next().ok_or_else(invalid)?;
    if !op.eq_ignore_ascii_case("eq") {
        return Err(invalid());
    }
    let v: String = serde_json::from_str(value.trim()).map_err(|_| invalid())?;
    Ok((attr.to_string(), v))
}

fn scim_users(w: &mut World, account: bool, q: &HashMap<String, String>) -> Response {
    let users = w.users_mut(account);
    let selected: Vec<Value> = match q.get("filter").filter(|f| !f.is_empty()) {
        None => users.iter().map(user_json).collect(),
        Some(f) => {
            let (attr, v) = match parse_filter(f) {
                Ok(x) => x,
                Err(r) => return r,
            };
            if !attr.eq_ignore_ascii_case("userName") {
                return scim_error(
                    StatusCode::BAD_REQUEST,
                    Some("invalidFilter"),
                    format!("Unsupported filter attribute {attr}"),
                );
            }
            users.iter().filter(|u| u.user_name.eq_ignore_ascii_case(&v)).map(user_json).collect()
        }
    };
    list_response(selected)
}

fn scim_user(w: &mut World, account: bool, id: &str) -> Response {
    match w.users_mut(account).iter().find(|u| u.id == id) {
        Some(u) => ok_json(user_json(u)),
        None => scim_error(StatusCode::NOT_FOUND, None, format!("User {id} not found")),
    }
}

/// `active` from the forms Databricks accepts: `false`, `"false"`, `[{"value": "false"}]`.
fn active_value(v: &Value) -> Option<bool> {
    match v {
        Value::Bool(b) => Some(*b),
        Value::String(s) => s.parse().ok(),
        Value::Array(a) => a.first().and_then(|x| x.get("value")).and_then(active_value),
        Value::Object(o) => o.get("active").and_then(active_value),
        _ => None,
    }
}

fn scim_patch(w: &mut World, account: bool, caller: &Caller, id: &str, body: &[u8]) -> Response {
    if !caller.admin {
        return scim_error(StatusCode::FORBIDDEN, None, format!("{} is not an administrator", caller.name));
    }
    let Ok(b) = json_body(body) else {
        return scim_error(StatusCode::BAD_REQUEST, Some("invalidSyntax"), "Request body is not valid JSON");
    };
    let has_schema =
        b.get("schemas").and_then(Value::as_array).is_some_and(|s| s.iter().any(|x| x.as_str() == Some(PATCH_OP)));
    if !has_schema {
        return scim_error(StatusCode::BAD_REQUEST, Some("invalidSyntax"), format!("schemas must contain {PATCH_OP}"));
    }
    let Some(ops) = b.get("Operations").and_then(Value::as_array).filter(|o| !o.is_empty()) else {
        return scim_error(StatusCode::BAD_REQUEST, Some("invalidSyntax"), "Operations must be a non-empty array");
    };
    let mut active = None;
    for op in ops {
        let kind = op.get("op").and_then(Value::as_str).unwrap_or("").to_ascii_lowercase();
        if !matches!(kind.as_str(), "add" | "replace" | "remove") {
            return scim_error(StatusCode::BAD_REQUEST, Some("invalidSyntax"), format!("Unsupported op {kind:?}"));
        }
        let path = op.get("path").and_then(Value::as_str).unwrap_or("");
        if path != "active" {
            return scim_error(
                StatusCode::BAD_REQUEST,
                Some("invalidPath"),
                format!("The simulator supports path \"active\" only, not {path:?}"),
            );
        }
        match op.get("value").and_then(active_value) {
            Some(v) => active = Some(v),
            None => return scim_error(StatusCode::BAD_REQUEST, Some("invalidValue"), "active must be true or false"),
        }
    }
    let Some(user) = w.users_mut(account).iter_mut().find(|u| u.id == id) else {
        return scim_error(StatusCode::NOT_FOUND, None, format!("User {id} not found"));
    };
    if let Some(a) = active {
        user.active = a;
    }
    StatusCode::NO_CONTENT.into_response()
}

fn scim_sps(w: &World, q: &HashMap<String, String>) -> Response {
    let selected: Vec<Value> = match q.get("filter").filter(|f| !f.is_empty()) {
        None => w.sps.iter().map(sp_json).collect(),
        Some(f) => {
            let (attr, v) = match parse_filter(f) {
                Ok(x) => x,
                Err(r) => return r,
            };
            let pick: fn(&ServicePrincipal) -> &str = match attr.to_ascii_lowercase().as_str() {
                "applicationid" => |s| &s.application_id,
                "displayname" => |s| &s.display_name,
                _ => {
                    return scim_error(
                        StatusCode::BAD_REQUEST,
                        Some("invalidFilter"),
                        format!("Unsupported filter attribute {attr}"),
                    );
                }
            };
            w.sps.iter().filter(|s| pick(s).eq_ignore_ascii_case(&v)).map(sp_json).collect()
        }
    };
    list_response(selected)
}

fn acct_check(w: &World, acct: &str) -> Result<(), Response> {
    if acct == w.account_id {
        Ok(())
    } else {
        Err(error(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", format!("Account {acct} does not exist")))
    }
}

async fn ws_users(State(s): S, q: Q) -> Response {
    scim_users(&mut s.world(), false, &q.0)
}
async fn ws_user(State(s): S, Path(id): Path<String>) -> Response {
    scim_user(&mut s.world(), false, &id)
}
async fn ws_user_patch(State(s): S, Extension(c): Who, Path(id): Path<String>, body: Bytes) -> Response {
    scim_patch(&mut s.world(), false, &c, &id, &body)
}
async fn ws_sps(State(s): S, q: Q) -> Response {
    scim_sps(&s.world(), &q.0)
}
async fn me(State(s): S, Extension(c): Who) -> Response {
    let mut w = s.world();
    match w.ws_users.iter().find(|u| u.user_name == c.name) {
        Some(u) => ok_json(user_json(u)),
        None => match w.sps.iter().find(|sp| sp.application_id == c.name) {
            Some(sp) => ok_json(sp_json(sp)),
            None => scim_user(&mut w, false, &c.name),
        },
    }
}
async fn acct_users(State(s): S, Path(acct): Path<String>, q: Q) -> Response {
    let mut w = s.world();
    acct_check(&w, &acct).map(|_| scim_users(&mut w, true, &q.0)).unwrap_or_else(|r| r)
}
async fn acct_user(State(s): S, Path((acct, id)): Path<(String, String)>) -> Response {
    let mut w = s.world();
    acct_check(&w, &acct).map(|_| scim_user(&mut w, true, &id)).unwrap_or_else(|r| r)
}
async fn acct_user_patch(
    State(s): S,
    Extension(c): Who,
    Path((acct, id)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut w = s.world();
    acct_check(&w, &acct).map(|_| scim_patch(&mut w, true, &c, &id, &body)).unwrap_or_else(|r| r)
}
async fn acct_sps(State(s): S, Path(acct): Path<String>, q: Q) -> Response {
    let w = s.world();
    acct_check(&w, &acct).map(|_| scim_sps(&w, &q.0)).unwrap_or_else(|r| r)
}

fn no_sp(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", format!("Service principal {id} does not exist"))
}

fn secrets_list(w: &World, caller: &Caller, sp_id: &str, q: &HashMap<String, String>) -> Response {
    if let Err(r) = require_admin(caller) {
        return r;
    }
    let Some(sp) = w.sps.iter().find(|s| s.id == sp_id) else { return no_sp(sp_id) };
    let size: usize = q.get("page_size").and_then(|p| p.parse().ok()).filter(|n| *n > 0).unwrap_or(100);
    let start: usize = match q.get("page_token").filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => match t.strip_prefix("offset-").and_then(|n| n.parse().ok()) {
            Some(n) => n,
            None => return error(StatusCode::BAD_REQUEST, "INVALID_PARAMETER_VALUE", "Invalid page_token"),
        },
    };
    let page: Vec<Value> = sp
        .secrets
        .iter()
        .skip(start)
        .take(size)
        .map(|x| {
            json!({"id": x.id, "secret_hash": format!("hash-{}", &x.id[..6.min(x.id.len())]), "status": "ACTIVE",
                        "create_time": x.create_time, "update_time": x.create_time})
        })
        .collect();
    let mut body = json!({ "secrets": page });
    if start + size < sp.secrets.len() {
        body["next_page_token"] = json!(format!("offset-{}", start + size));
    }
    ok_json(body)
}

fn secret_create(w: &mut World, caller: &Caller, sp_id: &str, body: &[u8]) -> Response {
    if let Err(r) = require_admin(caller) {
        return r;
    }
    let b = match json_body(body) {
        Ok(b) => b,
        Err(r) => return r,
    };
    if let Some(l) = b.get("lifetime") {
        let ok = l.as_str().and_then(|s| s.strip_suffix('s')).is_some_and(|n| n.parse::<u64>().is_ok());
        if !ok {
            return error(
                StatusCode::BAD_REQUEST,
                "INVALID_PARAMETER_VALUE",
                "lifetime must be a duration in seconds such as \"7776000s\"",
            );
        }
    }
    let Some(sp) = w.sps.iter().find(|s| s.id == sp_id) else { return no_sp(sp_id) };
    if sp.secrets.len() >= MAX_SP_SECRETS {
        return error(
            StatusCode::BAD_REQUEST,
            "QUOTA_EXCEEDED",
            format!("Service principal {sp_id} already has the maximum of {MAX_SP_SECRETS} OAuth secrets"),
        );
    }
    let Some((id, value)) = w.add_sp_secret(sp_id) else { return no_sp(sp_id) };
    let created = w
        .sps
        .iter()
        .find(|s| s.id == sp_id)
        .and_then(|s| s.secrets.iter().find(|x| x.id == id))
        .map(|x| x.create_time.clone())
        .unwrap_or_default();
    ok_json(json!({"id": id, "secret": value, "secret_hash": format!("hash-{}", &id[..6]), "status": "ACTIVE",
                   "create_time": created, "update_time": created}))
}

fn secret_delete(w: &mut World, caller: &Caller, sp_id: &str, secret_id: &str) -> Response {
    if let Err(r) = require_admin(caller) {
        return r;
    }
    let Some(sp) = w.sps.iter_mut().find(|s| s.id == sp_id) else { return no_sp(sp_id) };
    let before = sp.secrets.len();
    sp.secrets.retain(|x| x.id != secret_id);
    if sp.secrets.len() == before {
        return error(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", format!("Secret {secret_id} does not exist"));
    }
    ok_empty()
}

async fn ws_secrets(State(s): S, Extension(c): Who, Path(sp): Path<String>, q: Q) -> Response {
    secrets_list(&s.world(), &c, &sp, &q.0)
}
async fn ws_secret_create(State(s): S, Extension(c): Who, Path(sp): Path<String>, body: Bytes) -> Response {
    secret_create(&mut s.world(), &c, &sp, &body)
}
async fn ws_secret_delete(State(s): S, Extension(c): Who, Path((sp, sid)): Path<(String, String)>) -> Response {
    secret_delete(&mut s.world(), &c, &sp, &sid)
}
async fn acct_secrets(State(s): S, Extension(c): Who, Path((acct, sp)): Path<(String, String)>, q: Q) -> Response {
    let w = s.world();
    acct_check(&w, &acct).map(|_| secrets_list(&w, &c, &sp, &q.0)).unwrap_or_else(|r| r)
}
async fn acct_secret_create(
    State(s): S,
    Extension(c): Who,
    Path((acct, sp)): Path<(String, String)>,
    body: Bytes,
) -> Response {
    let mut w = s.world();
    acct_check(&w, &acct).map(|_| secret_create(&mut w, &c, &sp, &body)).unwrap_or_else(|r| r)
}
async fn acct_secret_delete(
    State(s): S,
    Extension(c): Who,
    Path((acct, sp, sid)): Path<(String, String, String)>,
) -> Response {
    let mut w = s.world();
    acct_check(&w, &acct).map(|_| secret_delete(&mut w, &c, &sp, &sid)).unwrap_or_else(|r| r)
}

fn token_json(p: &super::world::Pat, workspace_id: &str) -> Value {
    json!({
        "token_id": p.token_id,
        "comment": p.comment,
        "created_by_id": p.created_by_id.parse::<i64>().unwrap_or_default(),
        "created_by_username": p.created_by_username,
        "owner_id": p.owner_id.parse::<i64>().unwrap_or_default(),
        "creation_time": p.creation_time,
        "expiry_time": p.expiry_time,
        "workspace_id": workspace_id,
    })
}

async fn tokens_list(State(s): S, Extension(c): Who, q: Q) -> Response {
    if let Err(r) = require_admin(&c) {
        return r;
    }
    let w = s.world();
    let by_id = q.0.get("created_by_id");
    let by_name = q.0.get("created_by_username");
    let list: Vec<Value> = w
        .pats
        .iter()
        .filter(|p| by_id.is_none_or(|id| &p.created_by_id == id))
        .filter(|p| by_name.is_none_or(|n| p.created_by_username.eq_ignore_ascii_case(n)))
        .map(|p| token_json(p, &w.workspace_id))
        .collect();
    ok_json(json!({ "token_infos": list }))
}

fn no_token(id: &str) -> Response {
    error(StatusCode::NOT_FOUND, "RESOURCE_DOES_NOT_EXIST", format!("Token with id {id} does not exist"))
}

async fn token_get(State(s): S, Extension(c): Who, Path(id): Path<String>) -> Response {
    if let Err(r) = require_admin(&c) {
        return r;
    }
    let w = s.world();
    match w.pats.iter().find(|p| p.token_id == id) {
        Some(p) => ok_json(json!({ "token_info": token_json(p, &w.workspace_id) })),
        None => no_token(&id),
    }
}

async fn token_delete(State(s): S, Extension(c): Who, Path(id): Path<String>) -> Response {
    if let Err(r) = require_admin(&c) {
        return r;
    }
    let mut w = s.world();
    let before = w.pats.len();
    w.pats.retain(|p| p.token_id != id);
    if w.pats.len() == before {
        return no_token(&id);
    }
    ok_empty()
}
