//! The HTTP surface: alert webhooks, the REST API for runs and approvals, health and metrics.
//!
//! Every error is JSON `{"error": {"code", "message"}}` with a 4xx/5xx status that says what
//! kind of problem it is; nothing is stored for a rejected request.

mod alerts;
mod ops;
mod rest;
pub mod slack;

use crate::config::{Config, ResolvedAuth, SourceConfig};
use crate::engine::Engine;
use crate::ingest::Intake;
use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde_json::json;
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::sync::Arc;

/// Request bodies above this are refused with 413.
pub const MAX_BODY: usize = 1024 * 1024;

/// A source with its credentials resolved.
pub struct Source {
    pub config: SourceConfig,
    pub auth: ResolvedAuth,
}

/// API tokens (stored as SHA-256) and the identities they stand for.
#[derive(Default)]
pub struct Tokens(Vec<([u8; 32], String)>);

impl Tokens {
    pub fn add(&mut self, token: &str, identity: &str) {
        self.0.push((Sha256::digest(token.as_bytes()).into(), identity.to_string()));
    }
    /// The identity of a bearer token; every stored hash is compared, in constant time.
    pub fn identity(&self, token: &str) -> Option<&str> {
        use subtle::ConstantTimeEq;
        let h: [u8; 32] = Sha256::digest(token.as_bytes()).into();
        let mut found = None;
        for (stored, id) in &self.0 {
            if bool::from(stored.ct_eq(&h)) {
                found = Some(id.as_str());
            }
        }
        found
    }
}

#[derive(Clone)]
pub struct AppState {
    pub engine: Engine,
    pub intake: Intake,
    pub sources: Arc<BTreeMap<String, Source>>,
    pub tokens: Arc<Tokens>,
    /// Console sign-in, link key and public URL.
    pub console: Arc<crate::web::Console>,
    /// Slack interactions, when `[connectors.slack]` has a signing secret.
    pub slack: Option<Arc<slack::SlackApp>>,
}

impl AppState {
    /// Resolves every source's and identity's secrets; a missing one is an error naming it.
    pub fn from_config(cfg: &Config, engine: Engine, intake: Intake) -> Result<AppState, crate::config::ConfigError> {
        let mut sources = BTreeMap::new();
        for s in &cfg.sources {
            sources.insert(s.name.clone(), Source { config: s.clone(), auth: s.auth.resolve(&s.name)? });
        }
        let mut tokens = Tokens::default();
        for i in &cfg.identities {
            if let Some(r) = &i.api_token {
                let t = r.resolve().map_err(|e| crate::config::ConfigError(format!("identity {:?}: {e}", i.id)))?;
                tokens.add(t.expose(), &i.id);
            }
        }
        let console = Arc::new(crate::web::Console::from_config(cfg)?);
        let slack = slack::SlackApp::from_config(cfg)?.map(Arc::new);
        Ok(AppState { engine, intake, sources: Arc::new(sources), tokens: Arc::new(tokens), console, slack })
    }
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        ApiError { status, code, message: message.into() }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, axum::Json(json!({"error": {"code": self.code, "message": self.message}}))).into_response()
    }
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> Self {
        tracing::error!(error = %e, "database error while answering a request");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "database", "the database is unavailable; try again")
    }
}

pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/v1/alerts/{source}", post(alerts::receive))
        .route("/v1/runs", get(rest::list_runs))
        .route("/v1/runs/{id}", get(rest::show_run))
        .route("/v1/approvals", get(rest::list_approvals))
        .route("/v1/approvals/{id}/decision", post(rest::decide))
        .route("/v1/reverts/{id}/extend", post(rest::extend_revert))
        .route("/v1/reverts/{id}/cancel", post(rest::cancel_revert))
        .route("/slack/interactions", post(slack::interactions))
        .route("/healthz", get(ops::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics))
        .merge(crate::web::router())
        .fallback(|| async { ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint") })
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "this endpoint does not accept that method",
            )
        })
        .with_state(state)
}
