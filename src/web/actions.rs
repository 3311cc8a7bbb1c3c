//! The console's decisions: votes on approvals and changes to temporary containment.
//!
//! Every handler checks, in this order: the request came from our own pages (`SameOrigin`,
//! before the body is read), a live session (`Viewer`), the session's CSRF token, then asks the
//! engine, which judges who may do what. A refusal is shown in the engine's own words with
//! status 403, and nothing is changed.

use super::pages::{self, EXTEND_CHOICES};
use super::render::{PageError, see_other};
use super::session::{SameOrigin, Viewer};
use crate::api::AppState;
use crate::engine::EngineError;
use crate::store::{ApprovalState, StoreError};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

/// Longest reason kept (the rest is cut, as the API does).
pub const MAX_REASON: usize = 2000;

#[derive(Debug, Deserialize)]
pub struct DecisionForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
}

/// A reason people must give: trimmed, required, bounded.
pub fn reason(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| floodgate_sdk::text::truncate(t, MAX_REASON))
}

pub async fn decide(
    State(s): State<AppState>,
    _: SameOrigin,
    v: Viewer,
    Path(id): Path<String>,
    Form(f): Form<DecisionForm>,
) -> Result<Response, PageError> {
    v.check_csrf(f.csrf.as_deref())?;
    let approve = match f.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return Err(PageError::BadRequest("Choose Approve or Deny.".into())),
    };
    let Some(why) = reason(&f.reason) else {
        let page = pages::approval_page(
            &s,
            &v,
            &id,
            Some("Write a reason: it goes into the audit trail with your decision."),
            None,
            StatusCode::BAD_REQUEST,
        )
        .await?;
        return Ok(page.into_response());
    };
    match s.engine.decide(&id, &v.identity, approve, Some(&why), "web").await {
        Ok(Ok(outcome)) => {
            let run_id = s.engine.store().approval(&id).await?.map(|a| a.run_id).unwrap_or_default();
            let notice = match (outcome.repeated, outcome.state) {
                (true, _) => "repeat",
                (false, ApprovalState::Approved) => "approved",
                (false, ApprovalState::Denied) => "denied",
                _ => "approve-recorded",
            };
            tracing::info!(approval = %id, identity = %v.identity, approve, "decision recorded from the console");
            Ok(see_other(&format!("/runs/{run_id}?notice={notice}")))
        }
        Ok(Err(refused)) => {
            let page = pages::approval_page(&s, &v, &id, Some(&refused), Some(&why), StatusCode::FORBIDDEN).await?;
            Ok(page.into_response())
        }
        Err(EngineError::Store(StoreError::NotFound(_))) => {
            Err(PageError::NotFound(format!("There is no approval {id}.")))
        }
        Err(e) => Err(e.into()),
    }
}

#[derive(Debug, Deserialize)]
pub struct RevertForm {
    #[serde(default)]
    csrf: Option<String>,
    #[serde(default)]
    by: String,
    #[serde(default)]
    reason: String,
}

pub async fn extend_revert(
    State(s): State<AppState>,
    _: SameOrigin,
    v: Viewer,
    Path(id): Path<String>,
    Form(f): Form<RevertForm>,
) -> Result<Response, PageError> {
    v.check_csrf(f.csrf.as_deref())?;
    if !EXTEND_CHOICES.contains(&f.by.as_str()) {
        return Err(PageError::BadRequest(format!("Extend by one of: {}.", EXTEND_CHOICES.join(", "))));
    }
    let by = crate::duration::parse(&f.by).map_err(PageError::BadRequest)?;
    change_revert(&s, &v, &id, &f.reason, Some(by)).await
}

pub async fn cancel_revert(
    State(s): State<AppState>,
    _: SameOrigin,
    v: Viewer,
    Path(id): Path<String>,
    Form(f): Form<RevertForm>,
) -> Result<Response, PageError> {
    v.check_csrf(f.csrf.as_deref())?;
    change_revert(&s, &v, &id, &f.reason, None).await
}

async fn change_revert(
    s: &AppState,
    v: &Viewer,
    id: &str,
    reason_text: &str,
    extend: Option<std::time::Duration>,
) -> Result<Response, PageError> {
    let store = s.engine.store();
    let r =
        store.revert(id).await?.ok_or_else(|| PageError::NotFound(format!("There is no scheduled revert {id}.")))?;
    let Some(why) = reason(reason_text) else {
        let msg = "Write a reason: it goes into the audit trail with the change.";
        let page = pages::run_page(s, v, &r.run_id, None, Some(msg), StatusCode::BAD_REQUEST).await?;
        return Ok(page.into_response());
    };
    let result = match extend {
        Some(by) => s.engine.extend_revert(id, &v.identity, by, Some(&why)).await,
        None => s.engine.cancel_revert(id, &v.identity, Some(&why)).await,
    };
    match result {
        Ok(Ok(_)) => {
            let notice = if extend.is_some() { "extended" } else { "permanent" };
            tracing::info!(revert = %id, identity = %v.identity, notice, "containment changed from the console");
            Ok(see_other(&format!("/runs/{}?notice={notice}", r.run_id)))
        }
        Ok(Err(refused)) => {
            let page = pages::run_page(s, v, &r.run_id, None, Some(&refused), StatusCode::FORBIDDEN).await?;
            Ok(page.into_response())
        }
        Err(e) => Err(e.into()),
    }
}
