//! The one HTTP layer for every Databricks call: a workspace or the account console (`Target`),
//! its authentication, its rate limit, retries, and Databricks error parsing.
//!
//! - PAT: `Authorization: Bearer <token>`.
//! - OAuth M2M: client-credentials at the workspace `/oidc/v1/token` or the account
//!   `/oidc/accounts/<id>/v1/token` (Basic `client_id:secret`, form
//!   `grant_type=client_credentials&scope=all-apis`, as databricks-sdk-go `config/auth_m2m.go`).
//!   The token is cached per target and refreshed before it expires (a fifth of its lifetime,
//!   at most five minutes, ahead); a 401 drops it and the request is sent once more with a fresh
//!   one. The SDKs learned not to wrap a token source twice (double caching caused 401 bursts at
//!   rotation), so there is exactly one cache per target, here.
//! - 429 and 503 are retried in-request honouring `Retry-After` (the SDKs retry exactly these);
//!   other statuses come back to the caller, which turns them into `ActionError`s through
//!   `error::api_error`. A client-side token bucket keeps each target under
//!   `rate_limit_per_second` (15 by default, like the SDKs).
//!
//! Never log a `Request` with `{:?}` here: its Debug redacts headers but not every body field.

use crate::config::{AccountConfig, AuthConfig, CONNECTOR, HttpSettings, WorkspaceConfig};
use crate::error::api_error;
use floodgate_sdk::http::{HttpClient, Replay, Request, Response, RetryPolicy};
use floodgate_sdk::{ActionError, Secret};
use serde::Deserialize;
use std::time::Duration;
use tokio::sync::Mutex;
use tokio::time::Instant;

/// Which API surface a target is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TargetKind {
    Workspace { name: String, workspace_id: String, warehouse_id: Option<String> },
    Account { account_id: String },
}

enum TargetAuth {
    Pat(Secret),
    OAuth { client_id: String, client_secret: Secret, token_url: String },
    Placeholder,
}

struct CachedToken {
    value: Secret,
    refresh_at: Instant,
}

/// A workspace or the account console, with its own HTTP client (rate limit) and token cache.
pub struct Target {
    pub kind: TargetKind,
    pub host: String,
    auth: TargetAuth,
    http: HttpClient,
    token: Mutex<Option<CachedToken>>,
}

/// The OAuth token endpoint's answer (RFC 6749 §5.1).
#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
    #[serde(default)]
    expires_in: Option<f64>,
}

pub(crate) fn http_client(s: &HttpSettings) -> HttpClient {
    let policy = RetryPolicy {
        max_attempts: s.max_attempts,
        base_delay: s.base_delay,
        max_delay: Duration::from_secs(10).max(s.base_delay),
        max_wait: s.max_wait,
        // The Databricks SDKs retry 429 and 503 only; other 5xx go back to the engine.
        retry_statuses: vec![429, 503],
    };
    let burst = s.rate_limit_per_second.ceil().max(1.0) as u32;
    HttpClient::new(policy).with_timeout(s.timeout).with_rate_limit(s.rate_limit_per_second, burst)
}

impl Target {
    pub fn workspace(w: &WorkspaceConfig, s: &HttpSettings) -> Target {
        let token_url = format!("{}/oidc/v1/token", w.host);
        Target {
            kind: TargetKind::Workspace {
                name: w.name.clone(),
                workspace_id: w.workspace_id.clone(),
                warehouse_id: w.warehouse_id.clone(),
            },
            host: w.host.clone(),
            auth: target_auth(&w.auth, token_url),
            http: http_client(s),
            token: Mutex::new(None),
        }
    }

    pub fn account(a: &AccountConfig, s: &HttpSettings) -> Target {
        let token_url = format!("{}/oidc/accounts/{}/v1/token", a.host, a.account_id);
        Target {
            kind: TargetKind::Account { account_id: a.account_id.clone() },
            host: a.host.clone(),
            auth: target_auth(&a.auth, token_url),
            http: http_client(s),
            token: Mutex::new(None),
        }
    }

    /// `host` + `path` (paths always start with `/`).
    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.host, path)
    }

    /// For messages: `workspace prod (1234567890123456)` or `account 23e22ba4-…`.
    pub fn describe(&self) -> String {
        match &self.kind {
            TargetKind::Workspace { name, workspace_id, .. } => format!("workspace {name} ({workspace_id})"),
            TargetKind::Account { account_id } => format!("account {account_id}"),
        }
    }

    pub fn workspace_id(&self) -> Option<&str> {
        match &self.kind {
            TargetKind::Workspace { workspace_id, .. } => Some(workspace_id),
            TargetKind::Account { .. } => None,
        }
    }

    pub fn account_id(&self) -> Option<&str> {
        match &self.kind {
            TargetKind::Account { account_id } => Some(account_id),
            TargetKind::Workspace { .. } => None,
        }
    }

    /// The OAuth client id floodgate authenticates as here, if it uses OAuth.
    pub fn oauth_client_id(&self) -> Option<&str> {
        match &self.auth {
            TargetAuth::OAuth { client_id, .. } => Some(client_id),
            _ => None,
        }
    }

    /// The token endpoint of this target (used to verify a rotated secret).
    pub fn token_url(&self) -> String {
        match &self.kind {
            TargetKind::Workspace { .. } => self.url("/oidc/v1/token"),
            TargetKind::Account { account_id } => self.url(&format!("/oidc/accounts/{account_id}/v1/token")),
        }
    }

    pub fn http(&self) -> &HttpClient {
        &self.http
    }

    async fn bearer(&self, force_refresh: bool) -> Result<Secret, ActionError> {
        match &self.auth {
            TargetAuth::Pat(t) => Ok(t.clone()),
            TargetAuth::Placeholder => Err(ActionError::not_configured(CONNECTOR)),
            TargetAuth::OAuth { client_id, client_secret, token_url } => {
                // Holding the lock while fetching makes concurrent callers wait for one fetch
                // instead of each asking the token endpoint.
                let mut cached = self.token.lock().await;
                if !force_refresh
                    && let Some(t) = cached.as_ref()
                    && Instant::now() < t.refresh_at
                {
                    return Ok(t.value.clone());
                }
                let (value, lifetime) = fetch_token(&self.http, token_url, client_id, client_secret)
                    .await
                    .map_err(|e| with_context(e, &format!("OAuth token for {}", self.describe())))?;
                let margin = (lifetime / 5).min(Duration::from_secs(300));
                *cached = Some(CachedToken {
                    value: value.clone(),
                    refresh_at: Instant::now() + lifetime.saturating_sub(margin),
                });
                Ok(value)
            }
        }
    }

    /// Sends `req` with this target's credentials and returns the answer whatever its status.
    /// An OAuth 401 is retried once with a fresh token.
    pub async fn send(&self, req: &Request) -> Result<Response, ActionError> {
        let token = self.bearer(false).await?;
        let resp = self.http.send(&req.clone().bearer(&token)).await?;
        if resp.status == 401 && matches!(self.auth, TargetAuth::OAuth { .. }) {
            tracing::debug!(target = %self.describe(), "401 with a cached OAuth token; fetching a new one");
            let token = self.bearer(true).await?;
            return self.http.send(&req.clone().bearer(&token)).await;
        }
        Ok(resp)
    }

    /// Sends `req` and turns a non-2xx answer into an `ActionError` naming `what`.
    pub async fn call(&self, req: &Request) -> Result<Response, ActionError> {
        let resp = self.send(req).await?;
        if resp.is_success() { Ok(resp) } else { Err(api_error(&self.what(req), &resp)) }
    }

    /// `call`, then parse the JSON body.
    pub async fn call_json<T: serde::de::DeserializeOwned>(&self, req: &Request) -> Result<T, ActionError> {
        let resp = self.call(req).await?;
        parse_json(&resp, &self.what(req))
    }

    /// `METHOD /path on <target>` for messages.
    pub fn what(&self, req: &Request) -> String {
        let path = req.url().strip_prefix(&self.host).unwrap_or(req.url());
        let path = path.split('?').next().unwrap_or(path);
        format!("{} {} on {}", req.method(), path, self.describe())
    }
}

fn target_auth(auth: &AuthConfig, token_url: String) -> TargetAuth {
    match auth {
        AuthConfig::Pat(t) => TargetAuth::Pat(t.clone()),
        AuthConfig::OAuthM2m { client_id, client_secret } => {
            TargetAuth::OAuth { client_id: client_id.clone(), client_secret: client_secret.clone(), token_url }
        }
        AuthConfig::Placeholder => TargetAuth::Placeholder,
    }
}

/// Parses a JSON body; an unexpected body is a permanent error that shows a short excerpt.
pub(crate) fn parse_json<T: serde::de::DeserializeOwned>(resp: &Response, what: &str) -> Result<T, ActionError> {
    if resp.body.is_empty() {
        return serde_json::from_str("{}").map_err(|e| unexpected(what, resp, &e.to_string()));
    }
    serde_json::from_slice(&resp.body).map_err(|e| unexpected(what, resp, &e.to_string()))
}

fn unexpected(what: &str, resp: &Response, why: &str) -> ActionError {
    ActionError::permanent(
        "bad_response",
        format!(
            "Databricks {what} answered HTTP {} with an unexpected body ({why}): {}",
            resp.status,
            floodgate_sdk::text::truncate(&resp.text(), 300)
        ),
    )
}

fn with_context(e: ActionError, what: &str) -> ActionError {
    match e {
        ActionError::Retryable { code, message, retry_after } => {
            ActionError::Retryable { code, message: format!("{what}: {message}"), retry_after }
        }
        ActionError::Permanent { code, message } => {
            ActionError::Permanent { code, message: format!("{what}: {message}") }
        }
    }
}

/// Client-credentials grant. Returns the access token and its lifetime. The answer's body is
/// never quoted in errors: it holds a token.
pub(crate) async fn fetch_token(
    http: &HttpClient,
    token_url: &str,
    client_id: &str,
    client_secret: &Secret,
) -> Result<(Secret, Duration), ActionError> {
    let req = token_request(token_url, client_id, client_secret);
    let resp = http.send(&req).await?;
    if !resp.is_success() {
        return Err(api_error(&format!("POST {}", path_of(token_url)), &resp));
    }
    let parsed: TokenResponse = serde_json::from_slice(&resp.body).map_err(|_| {
        ActionError::permanent(
            "bad_response",
            format!("the OAuth token endpoint {} answered without an access_token", path_of(token_url)),
        )
    })?;
    // Databricks tokens live one hour; assume that when `expires_in` is missing.
    let secs = parsed.expires_in.filter(|s| s.is_finite() && *s > 0.0).unwrap_or(3600.0);
    Ok((Secret::new(parsed.access_token), Duration::from_secs_f64(secs)))
}

pub(crate) fn token_request(token_url: &str, client_id: &str, client_secret: &Secret) -> Request {
    Request::post(token_url)
        .basic(client_id, client_secret)
        .form(vec![("grant_type".into(), "client_credentials".into()), ("scope".into(), "all-apis".into())])
        // Asking for a token twice has no effect beyond a second token.
        .replay(Replay::Safe)
}

fn path_of(url: &str) -> &str {
    url.find("://").and_then(|i| url[i + 3..].find('/').map(|j| &url[i + 3 + j..])).unwrap_or(url)
}
