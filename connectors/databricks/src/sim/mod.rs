//! A local Databricks (feature `sim`): one HTTP server that behaves like a workspace and its
//! account console for every endpoint this connector uses, for tests and the demo. Nothing in
//! the product depends on it.
//!
//! It follows shared/reference/databricks.md: the same paths and methods, bearer/PAT and OAuth
//! M2M authentication (tokens expire; account APIs refuse PATs), request validation with
//! Databricks' error bodies (standard `{error_code, message}`, SCIM errors on SCIM paths, OAuth
//! errors on token endpoints), the 1000-value IP access list quota (`QUOTA_EXCEEDED`) and
//! self-lockout (`INVALID_STATE`, judged against `caller_ip` — every test connects over loopback,
//! so the caller's address is a setting), IP access list enforcement when `enableIpAccessLists`
//! is on, workspace-conf and the typed `sql_results_download` setting (with etags), SCIM users
//! (workspace and account) with `active`, service principals with at most five OAuth secrets,
//! the Secrets API, token management (a revoked token stops working), clusters, and the
//! Statement Execution API. State is inspectable through `DatabricksSim`; every call is recorded
//! (`calls()`), and `faults()` injects 429 (with `Retry-After`), 5xx, delays and hangs with
//! Databricks-shaped bodies.
//!
//! # Statement Execution
//! States `PENDING` → `RUNNING` → `SUCCEEDED`/`FAILED` over `set_statement_latency`;
//! `wait_timeout` (`0s` or 5–50 s) and `on_wait_timeout` (`CONTINUE`/`CANCEL`) as documented;
//! `CANCELED` after a cancel; `CLOSED` once results expire (`set_result_ttl`, default 1 h); HTTP
//! 404 for unknown or forgotten statements (`set_forget_after`, default 12 h). Results are
//! `INLINE` `JSON_ARRAY` chunks of `set_chunk_rows` rows linked by `next_chunk_index` /
//! `next_chunk_internal_link`; `row_limit` sets `truncated`. A statement that cannot run is
//! HTTP 200 with `status.state = FAILED`, `status.error` and `status.sql_state`.
//!
//! # The SQL it runs
//! Real SQL over the local SQL engine (`crate::localsql`, feature `local-sql`), which holds
//! the system tables in an in-memory SQLite database and translates the Databricks subset
//! floodgate uses; its module docs list the subset (load rows with `load_audit_events` /
//! `insert_rows`).

// Handlers answer errors with the HTTP response itself; its size does not matter here.
#![allow(clippy::result_large_err)]

mod iam;
mod rest;
/// The local SQL engine, under its old name.
pub use crate::localsql as sqlengine;
mod statements;
#[cfg(test)]
pub(crate) mod testdata;
mod world;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use floodgate_sdk::sim::{CallLog, Faults, SimServer, instrument};
use serde_json::{Value, json};
use sqlengine::SqlDb;
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use world::World;

/// Where the simulated workspace and account start.
#[derive(Debug, Clone)]
pub struct SimOptions {
    pub workspace_id: String,
    pub account_id: String,
    pub warehouse_id: String,
}

impl Default for SimOptions {
    fn default() -> Self {
        SimOptions {
            workspace_id: "1111222233334444".into(),
            account_id: "0a1b2c3d-0000-4000-8000-000000000001".into(),
            warehouse_id: "abcdef0123456789".into(),
        }
    }
}

pub(crate) struct Shared {
    pub world: Mutex<World>,
    pub db: SqlDb,
}

impl Shared {
    pub fn world(&self) -> MutexGuard<'_, World> {
        self.world.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Who is calling, as the simulator authenticated them.
#[derive(Debug, Clone)]
pub(crate) struct Caller {
    pub name: String,
    pub admin: bool,
}

/// A running simulated Databricks workspace + account.
pub struct DatabricksSim {
    server: SimServer,
    shared: Arc<Shared>,
    log: CallLog,
    faults: Faults,
    warehouse_id: String,
    admin_pat: String,
    floodgate_client: (String, String),
}

/// The application id of the service principal the simulator creates for floodgate.
pub const FLOODGATE_APP_ID: &str = "00000000-0000-4000-8000-0000000000f1";

impl DatabricksSim {
    pub async fn start() -> std::io::Result<DatabricksSim> {
        Self::start_with(SimOptions::default()).await
    }

    pub async fn start_with(opts: SimOptions) -> std::io::Result<DatabricksSim> {
        Self::start_on("127.0.0.1:0".parse().map_err(std::io::Error::other)?, opts).await
    }

    /// Serves on a chosen address (for the demo, or to restart on the same port).
    pub async fn start_on(addr: std::net::SocketAddr, opts: SimOptions) -> std::io::Result<DatabricksSim> {
        let db = SqlDb::open().await.map_err(std::io::Error::other)?;
        let mut world = World::new(&opts.workspace_id, &opts.account_id, &opts.warehouse_id);
        let (admin_pat, _) = world.add_pat("floodgate-admin@corp.example", true);
        let sp = world.add_sp(FLOODGATE_APP_ID, "floodgate");
        let (_, secret) = world.add_sp_secret(&sp).ok_or_else(|| std::io::Error::other("sp"))?;
        let shared = Arc::new(Shared { world: Mutex::new(world), db });
        let log = CallLog::default();
        let faults = Faults::new(Arc::new(render_fault));
        let server = SimServer::start_on(addr, instrument(router(shared.clone()), log.clone(), faults.clone())).await?;
        Ok(DatabricksSim {
            server,
            shared,
            log,
            faults,
            warehouse_id: opts.warehouse_id,
            admin_pat,
            floodgate_client: (FLOODGATE_APP_ID.to_string(), secret),
        })
    }

    /// `http://127.0.0.1:<port>`: both the workspace host and the account host.
    pub fn url(&self) -> String {
        self.server.url()
    }
    pub fn workspace_id(&self) -> String {
        self.shared.world().workspace_id.clone()
    }
    pub fn account_id(&self) -> String {
        self.shared.world().account_id.clone()
    }
    pub fn warehouse_id(&self) -> &str {
        &self.warehouse_id
    }
    /// An admin personal access token.
    pub fn admin_pat(&self) -> &str {
        &self.admin_pat
    }
    /// `(application id, secret)` of an admin service principal for OAuth M2M.
    pub fn floodgate_client(&self) -> (&str, &str) {
        (&self.floodgate_client.0, &self.floodgate_client.1)
    }
    pub fn calls(&self) -> &CallLog {
        &self.log
    }
    pub fn faults(&self) -> &Faults {
        &self.faults
    }

    /// The address the simulator believes every caller has (default 127.0.0.1).
    pub fn set_caller_ip(&self, ip: &str) {
        if let Ok(ip) = ip.parse::<Ipv4Addr>() {
            self.shared.world().caller_ip = ip;
        }
    }

    /// IP access lists as the API returns them (`account` for the account console's).
    pub fn ip_access_lists(&self, account: bool) -> Vec<Value> {
        self.shared.world().lists(account).iter().map(rest::list_json).collect()
    }

    pub fn add_ip_access_list(&self, account: bool, label: &str, list_type: &str, ips: &[&str]) -> String {
        let mut w = self.shared.world();
        let id = uuid::Uuid::new_v4().to_string();
        let now = world::now_ms();
        w.lists_mut(account).push(world::AclList {
            list_id: id.clone(),
            label: label.into(),
            list_type: list_type.into(),
            ip_addresses: ips.iter().map(|s| s.to_string()).collect(),
            enabled: true,
            created_at: now,
            updated_at: now,
        });
        id
    }

    pub fn workspace_conf(&self, key: &str) -> Option<String> {
        self.shared.world().conf.get(key).cloned().flatten()
    }
    pub fn set_workspace_conf(&self, key: &str, value: Option<&str>) {
        self.shared.world().conf.insert(key.into(), value.map(str::to_string));
    }
    /// The typed `sql_results_download` setting; `None` when the workspace does not have it.
    pub fn sql_results_download(&self) -> Option<bool> {
        self.shared.world().sql_results_download.as_ref().map(|s| s.value)
    }
    pub fn set_sql_results_download(&self, value: Option<bool>) {
        let mut w = self.shared.world();
        w.sql_results_download = value.map(|value| world::TypedSetting { value, etag: 1 });
    }

    /// The account setting `acct_ip_acl_enable` (default off, as in a new account).
    pub fn set_account_ip_acl_enabled(&self, on: bool) {
        self.shared.world().acct_ip_acl.value = on;
    }

    /// Adds a SCIM user (workspace, or account when `account`); returns its id.
    pub fn add_user(&self, account: bool, user_name: &str) -> String {
        self.shared.world().add_user(account, user_name)
    }
    pub fn user_active(&self, account: bool, user_id: &str) -> Option<bool> {
        let mut w = self.shared.world();
        w.users_mut(account).iter().find(|u| u.id == user_id).map(|u| u.active)
    }
    pub fn set_user_active(&self, account: bool, user_id: &str, active: bool) {
        let mut w = self.shared.world();
        if let Some(u) = w.users_mut(account).iter_mut().find(|u| u.id == user_id) {
            u.active = active;
        }
    }

    /// Adds a service principal; returns its numeric id.
    pub fn add_service_principal(&self, application_id: &str, name: &str) -> String {
        self.shared.world().add_sp(application_id, name)
    }
    /// Adds an OAuth secret; returns `(secret id, value)`.
    pub fn add_sp_secret(&self, sp_id: &str) -> Option<(String, String)> {
        self.shared.world().add_sp_secret(sp_id)
    }
    pub fn sp_secret_ids(&self, sp_id: &str) -> Vec<String> {
        let w = self.shared.world();
        w.sps
            .iter()
            .find(|s| s.id == sp_id)
            .map(|s| s.secrets.iter().map(|x| x.id.clone()).collect())
            .unwrap_or_default()
    }
    pub fn sp_secret_value(&self, sp_id: &str, secret_id: &str) -> Option<String> {
        let w = self.shared.world();
        let sp = w.sps.iter().find(|s| s.id == sp_id)?;
        sp.secrets.iter().find(|x| x.id == secret_id).map(|x| x.value.clone())
    }

    pub fn create_secret_scope(&self, name: &str) {
        self.shared.world().scopes.entry(name.into()).or_default();
    }
    pub fn secret(&self, scope: &str, key: &str) -> Option<String> {
        self.shared.world().scopes.get(scope).and_then(|s| s.get(key)).cloned()
    }

    /// Creates a personal access token for `user_name`; returns `(value, token_id)`.
    pub fn create_pat(&self, user_name: &str, admin: bool) -> (String, String) {
        self.shared.world().add_pat(user_name, admin)
    }
    /// `(token_id, created_by_username)` of every live token.
    pub fn tokens(&self) -> Vec<(String, String)> {
        let w = self.shared.world();
        w.pats.iter().map(|p| (p.token_id.clone(), p.created_by_username.clone())).collect()
    }
    /// The SCIM id of a workspace user (created by `create_pat` or `add_user`).
    pub fn user_id(&self, account: bool, user_name: &str) -> Option<String> {
        let mut w = self.shared.world();
        w.users_mut(account).iter().find(|u| u.user_name == user_name).map(|u| u.id.clone())
    }

    pub fn add_cluster(&self, cluster_id: &str, name: &str, state: &str) {
        self.shared
            .world()
            .clusters
            .insert(cluster_id.into(), world::Cluster { name: name.into(), state: state.into() });
    }
    pub fn cluster_state(&self, cluster_id: &str) -> Option<String> {
        self.shared.world().clusters.get(cluster_id).map(|c| c.state.clone())
    }

    /// Lifetime (`expires_in`) of OAuth access tokens issued from now on.
    pub fn set_token_lifetime(&self, d: Duration) {
        self.shared.world().token_lifetime = d;
    }
    /// Makes every issued OAuth access token expire now (as if an hour had passed).
    pub fn expire_access_tokens(&self) {
        let mut w = self.shared.world();
        let past = Instant::now();
        for t in w.access_tokens.values_mut() {
            t.expires_at = past;
        }
    }

    pub fn set_statement_latency(&self, d: Duration) {
        self.shared.world().statement_latency = d;
    }
    pub fn set_chunk_rows(&self, n: usize) {
        self.shared.world().chunk_rows = n.max(1);
    }
    pub fn set_result_ttl(&self, d: Duration) {
        self.shared.world().result_ttl = d;
    }
    pub fn set_forget_after(&self, d: Duration) {
        self.shared.world().forget_after = d;
    }
    /// The next statement FAILs with this service error (e.g. `TEMPORARILY_UNAVAILABLE`).
    pub fn fail_next_statement(&self, error_code: &str, message: &str) {
        self.shared.world().statement_failures.push((error_code.into(), message.into()));
    }
    pub fn statement_count(&self) -> usize {
        self.shared.world().statements.len()
    }

    /// Loads `system.access.audit` rows from JSON lines (system-table shape).
    pub async fn load_audit_events(&self, jsonl: &str) -> Result<usize, String> {
        self.shared.db.load_audit_jsonl(jsonl).await
    }
    /// Inserts rows (JSON objects by column) into any simulated system table.
    pub async fn insert_rows(&self, table: &str, rows: &[Value]) -> Result<usize, String> {
        self.shared.db.insert(table, rows).await
    }

    pub async fn stop(self) {
        self.server.stop().await;
    }
}

/// A Databricks error response (the standard shape).
pub(crate) fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (status, axum::Json(json!({"error_code": code, "message": message.into()}))).into_response()
}

/// A SCIM error response (RFC 7644 §3.7.3).
pub(crate) fn scim_error(status: StatusCode, scim_type: Option<&str>, detail: impl Into<String>) -> Response {
    let mut body = json!({
        "schemas": ["urn:ietf:params:scim:api:messages:2.0:Error"],
        "detail": detail.into(),
        "status": status.as_u16().to_string(),
    });
    if let Some(t) = scim_type {
        body["scimType"] = json!(t);
    }
    (status, axum::Json(body)).into_response()
}

pub(crate) fn ok_json(v: Value) -> Response {
    (StatusCode::OK, axum::Json(v)).into_response()
}

pub(crate) fn ok_empty() -> Response {
    (StatusCode::OK, axum::Json(json!({}))).into_response()
}

/// Parses a JSON object body the way Databricks refuses bad ones.
pub(crate) fn json_body(bytes: &[u8]) -> Result<serde_json::Map<String, Value>, Response> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(m)) => Ok(m),
        _ if bytes.iter().all(u8::is_ascii_whitespace) => Ok(serde_json::Map::new()),
        _ => Err(error(
            StatusCode::BAD_REQUEST,
            "MALFORMED_REQUEST",
            "Invalid JSON given in the body of the request - expected a map",
        )),
    }
}

pub(crate) fn require_admin(caller: &Caller) -> Result<(), Response> {
    if caller.admin {
        Ok(())
    } else {
        Err(error(
            StatusCode::FORBIDDEN,
            "PERMISSION_DENIED",
            format!("{} is not an administrator; this API is only accessible by admins", caller.name),
        ))
    }
}

/// The error body of an injected fault, as Databricks sends it.
fn render_fault(status: u16, retry_after: Option<u64>) -> Response {
    let code = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut r = match status {
        429 => error(code, "REQUEST_LIMIT_EXCEEDED", "Too many requests. Please wait a moment and try again."),
        503 => error(code, "TEMPORARILY_UNAVAILABLE", "The service is temporarily unavailable. Please try again later."),
        502 | 504 => (
            code,
            format!("<html><head><title>Error {status}</title></head><body><h2>HTTP ERROR {status}</h2><pre>Gateway error {status}</pre></body></html>"),
        )
            .into_response(),
        401 => error(code, "UNAUTHENTICATED", "Invalid access token."),
        403 => error(code, "PERMISSION_DENIED", "The caller does not have permission (injected)."),
        404 => error(code, "RESOURCE_DOES_NOT_EXIST", "Not found (injected)."),
        s if s < 500 => error(code, "BAD_REQUEST", format!("Bad request (injected HTTP {status})")),
        _ => error(code, "INTERNAL_ERROR", format!("Internal error (injected HTTP {status})")),
    };
    if let Some(s) = retry_after
        && let Ok(v) = s.to_string().parse()
    {
        r.headers_mut().insert("retry-after", v);
    }
    r
}

fn router(shared: Arc<Shared>) -> Router {
    let api = rest::routes()
        .merge(iam::routes())
        .merge(statements::routes())
        .layer(axum::middleware::from_fn_with_state(shared.clone(), authenticate));
    Router::new()
        .merge(iam::token_routes())
        .merge(api)
        .fallback(|| async { error(StatusCode::NOT_FOUND, "ENDPOINT_NOT_FOUND", "No API found for this path") })
        .with_state(shared)
}

/// Is this path an account-console API (`/api/2.0/accounts/<account_id>/…`)? The workspace
/// proxy `/api/2.0/accounts/servicePrincipals/…` is a workspace API.
fn is_account_path(path: &str) -> bool {
    path.strip_prefix("/api/2.0/accounts/").is_some_and(|rest| !rest.starts_with("servicePrincipals/"))
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

/// Authenticates every `/api` call and enforces workspace IP access lists.
async fn authenticate(State(shared): State<Arc<Shared>>, mut req: Request<Body>, next: Next) -> Response {
    let path = req.uri().path().to_string();
    let account = is_account_path(&path);
    let caller = {
        let w = shared.world();
        let Some(token) = bearer(req.headers()) else {
            return error(
                StatusCode::UNAUTHORIZED,
                "UNAUTHENTICATED",
                "Credential was not sent or was of an unsupported type for this API.",
            );
        };
        let now = Instant::now();
        let caller = if let Some(t) = w.access_tokens.get(&token) {
            if t.expires_at <= now {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHENTICATED",
                    "Invalid access token: the token has expired.",
                );
            }
            if account && !t.account_level {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHENTICATED",
                    "This API requires an account-level OAuth token.",
                );
            }
            Caller { admin: !w.non_admin_sps.contains(&t.application_id), name: t.application_id.clone() }
        } else if let Some(p) = w.pats.iter().find(|p| p.value == token) {
            if account {
                return error(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHENTICATED",
                    "Account APIs do not accept personal access tokens.",
                );
            }
            Caller { name: p.created_by_username.clone(), admin: p.admin }
        } else {
            return error(StatusCode::UNAUTHORIZED, "UNAUTHENTICATED", "Invalid access token.");
        };
        if !account && w.conf.get("enableIpAccessLists").cloned().flatten().as_deref() == Some("true") {
            let ip = w.caller_ip;
            if rest::blocked(&w.ws_lists, ip) {
                return error(
                    StatusCode::FORBIDDEN,
                    "PERMISSION_DENIED",
                    format!(
                        "Source IP address: {ip} is blocked by Databricks IP ACL for workspace: {}",
                        w.workspace_id
                    ),
                );
            }
        }
        caller
    };
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// Standard base64 decoding (for Basic credentials).
pub(crate) fn base64_decode(s: &str) -> Option<Vec<u8>> {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let s = s.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes() {
        let v = T.iter().position(|x| *x == c)? as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_and_paths() {
        assert_eq!(base64_decode("Zm9vYmFy").unwrap(), b"foobar");
        assert_eq!(base64_decode("Zm8=").unwrap(), b"fo");
        assert!(base64_decode("!!").is_none());
        assert!(is_account_path("/api/2.0/accounts/abc/ip-access-lists"));
        assert!(!is_account_path("/api/2.0/accounts/servicePrincipals/1/credentials/secrets"));
        assert!(!is_account_path("/api/2.0/ip-access-lists"));
    }
}
