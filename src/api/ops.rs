//! Liveness, readiness and Prometheus metrics.

use super::AppState;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

pub async fn healthz() -> Response {
    axum::Json(json!({"status": "ok"})).into_response()
}

/// Ready when the database answers and playbooks are loaded.
pub async fn readyz(State(s): State<AppState>) -> Response {
    match s.engine.store().ping().await {
        Ok(()) => {
            axum::Json(json!({"status": "ready", "playbooks": s.engine.playbooks().current().len()})).into_response()
        }
        Err(e) => {
            tracing::warn!(error = %e, "not ready: database");
            (StatusCode::SERVICE_UNAVAILABLE, axum::Json(json!({"status": "unavailable", "reason": "database"})))
                .into_response()
        }
    }
}

pub async fn metrics(State(s): State<AppState>) -> Response {
    let states = s.engine.store().run_state_counts().await.unwrap_or_default();
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], s.engine.metrics().render(&states)).into_response()
}
