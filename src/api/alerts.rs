//! `POST /v1/alerts/{source}`: 202 only after the alert is committed.
//!
//! Checks run cheapest first and stop at the first failure: unknown source (404), declared size
//! (413), content type (415), body size while reading (413), credentials (401), JSON (400),
//! the source format's required fields (400). A rejected request stores nothing.

use super::{ApiError, AppState, MAX_BODY};
use crate::ingest::auth;
use crate::ingest::formats;
use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};

fn is_json(headers: &HeaderMap) -> bool {
    let Some(ct) = headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()) else { return false };
    let mime = ct.split(';').next().unwrap_or("").trim().to_ascii_lowercase();
    mime == "application/json" || (mime.starts_with("application/") && mime.ends_with("+json"))
}

pub async fn receive(
    State(s): State<AppState>,
    Path(source): Path<String>,
    headers: HeaderMap,
    body: Body,
) -> Response {
    match receive_inner(&s, &source, &headers, body).await {
        Ok(r) => r,
        Err(e) => {
            let outcome = match e.status {
                StatusCode::UNAUTHORIZED => "unauthorized",
                StatusCode::NOT_FOUND => "unknown_source",
                s if s.is_client_error() => "rejected",
                _ => "error",
            };
            if s.sources.contains_key(&source) {
                s.engine.metrics().alert(&source, outcome);
            }
            e.into_response()
        }
    }
}

async fn receive_inner(s: &AppState, source: &str, headers: &HeaderMap, body: Body) -> Result<Response, ApiError> {
    let Some(src) = s.sources.get(source) else {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "unknown_source",
            format!("no source named {source:?} is configured"),
        ));
    };
    let too_big = || {
        ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "too_large", format!("the body is larger than {MAX_BODY} bytes"))
    };
    if let Some(len) =
        headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok())
        && len > MAX_BODY as u64
    {
        return Err(too_big());
    }
    if !is_json(headers) {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send the alert as JSON with Content-Type: application/json",
        ));
    }
    let bytes = axum::body::to_bytes(body, MAX_BODY).await.map_err(|_| too_big())?;
    let now = s.engine.now();
    let lookup = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
    auth::verify(&src.auth, lookup, &bytes, now.div_euclid(1000))
        .map_err(|e| ApiError::new(StatusCode::UNAUTHORIZED, "unauthorized", e.to_string()))?;
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::new(StatusCode::BAD_REQUEST, "invalid_json", format!("the body is not valid JSON: {e}"))
    })?;
    let alert = formats::normalize(&src.config, &value, crate::store::new_id("alr"), now)
        .map_err(|e| ApiError::new(StatusCode::BAD_REQUEST, "invalid_alert", e))?;
    let accepted = s.intake.submit(&alert).await.map_err(|e| {
        tracing::error!(source, error = %e, "cannot store an alert");
        ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "unavailable", "the alert could not be stored; send it again")
    })?;
    Ok((StatusCode::ACCEPTED, axum::Json(accepted)).into_response())
}
