//! The REST API for runs and approvals, authenticated with an identity's API token
//! (`Authorization: Bearer <token>`). Decisions made here follow the same rules as every other
//! channel: the engine judges them.

use super::{ApiError, AppState};
use crate::store::{RunFilter, StoreError};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

fn identity(s: &AppState, headers: &HeaderMap) -> Result<String, ApiError> {
    let unauthorized = || {
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", "send an API token as Authorization: Bearer <token>")
    };
    let value = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).ok_or_else(unauthorized)?;
    let token = value.strip_prefix("Bearer ").ok_or_else(unauthorized)?;
    s.tokens.identity(token.trim()).map(str::to_string).ok_or_else(unauthorized)
}

#[derive(Debug, Deserialize)]
pub struct RunQuery {
    state: Option<String>,
    playbook: Option<String>,
    incident: Option<String>,
    limit: Option<i64>,
}

pub async fn list_runs(
    State(s): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<RunQuery>,
) -> Result<Response, ApiError> {
    identity(&s, &headers)?;
    let f = RunFilter {
        state: q.state,
        playbook: q.playbook,
        incident: q.incident,
        limit: q.limit.unwrap_or(50).clamp(1, 1000),
    };
    let runs = s.engine.store().list_runs(&f).await?;
    Ok(axum::Json(json!({"runs": runs})).into_response())
}

pub async fn show_run(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    identity(&s, &headers)?;
    match s.engine.store().run_detail(&id).await {
        Ok(d) => Ok(axum::Json(d).into_response()),
        Err(StoreError::NotFound(_)) => Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no run {id}"))),
        Err(e) => Err(e.into()),
    }
}

pub async fn list_approvals(State(s): State<AppState>, headers: HeaderMap) -> Result<Response, ApiError> {
    identity(&s, &headers)?;
    let pending = s.engine.store().pending_approvals().await?;
    Ok(axum::Json(json!({"approvals": pending})).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionBody {
    /// `approve` or `deny`.
    decision: String,
    #[serde(default)]
    reason: Option<String>,
}

pub async fn decide(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    let who = identity(&s, &headers)?;
    let d: DecisionBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_body",
            format!("expected {{\"decision\": \"approve\"|\"deny\", \"reason\": \"...\"}}: {e}"),
        )
    })?;
    let approve = match d.decision.as_str() {
        "approve" => true,
        "deny" => false,
        other => {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("decision {other:?} is not approve or deny"),
            ));
        }
    };
    let reason = d.reason.as_deref().map(|r| floodgate_sdk::text::truncate(r, 2000));
    match s.engine.decide(&id, &who, approve, reason.as_deref(), "api").await {
        Ok(Ok(outcome)) => Ok(axum::Json(outcome).into_response()),
        Ok(Err(refused)) => Err(ApiError::new(StatusCode::FORBIDDEN, "refused", refused)),
        Err(crate::engine::EngineError::Store(StoreError::NotFound(_))) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no approval {id}")))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot record a decision");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the decision could not be recorded; try again",
            ))
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RevertBody {
    /// How much later (extend only), e.g. "24h".
    #[serde(default)]
    by: Option<String>,
    #[serde(default)]
    reason: Option<String>,
}

async fn change_revert(
    s: AppState,
    headers: HeaderMap,
    id: String,
    body: axum::body::Bytes,
    extend: bool,
) -> Result<Response, ApiError> {
    let who = identity(&s, &headers)?;
    let b: RevertBody = if body.is_empty() {
        RevertBody { by: None, reason: None }
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "invalid_body",
                format!("expected {{\"by\": \"24h\", \"reason\": \"...\"}}: {e}"),
            )
        })?
    };
    let reason = b.reason.as_deref().map(|r| floodgate_sdk::text::truncate(r, 2000));
    let result = if extend {
        let by = b.by.as_deref().ok_or_else(|| {
            ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", "\"by\" is required, e.g. \"24h\"")
        })?;
        let by = crate::duration::parse(by).map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_body", e))?;
        s.engine.extend_revert(&id, &who, by, reason.as_deref()).await
    } else {
        s.engine.cancel_revert(&id, &who, reason.as_deref()).await
    };
    match result {
        Ok(Ok(r)) => Ok(axum::Json(r).into_response()),
        Ok(Err(refused)) => Err(ApiError::new(StatusCode::FORBIDDEN, "refused", refused)),
        Err(crate::engine::EngineError::Store(StoreError::NotFound(_))) => {
            Err(ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no revert {id}")))
        }
        Err(e) => {
            tracing::error!(error = %e, "cannot change a revert");
            Err(ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "unavailable",
                "the change could not be recorded; try again",
            ))
        }
    }
}

pub async fn extend_revert(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    change_revert(s, headers, id, body, true).await
}

pub async fn cancel_revert(
    State(s): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, ApiError> {
    change_revert(s, headers, id, body, false).await
}
