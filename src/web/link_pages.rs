//! The pages behind approval links (Teams cards, e-mail).
//!
//! `GET /links/{token}` verifies the link and shows the approval, its plan and the evidence,
//! and asks for a confirmation with a reason; it never decides (link scanners and chat
//! previews fetch URLs). `POST /links/{token}` records the decision as the link's identity
//! (channel `link`) through `Engine::decide`, once: the link's nonce is recorded first, and the
//! primary key lets exactly one request through even when two race.
//!
//! Refused with a page that says why, and nothing changed: a forged or altered link, an expired
//! one, a used one, one opened by someone signed in to the console as another person, a POST
//! from another origin or without the page's confirmation token.

use super::links::{self, LinkClaims, LinkError};
use super::render::{Page, PageError, message, when};
use super::session::{self, SameOrigin, constant_time_eq};
use super::{Console, actions, view};
use crate::api::AppState;
use crate::engine::EngineError;
use crate::store::web::LinkUse;
use crate::store::{ApprovalRow, ApprovalState, StoreError};
use axum::Form;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;

fn refused(status: StatusCode, title: &str, text: &str) -> Response {
    let mut p = message(status, title, text, "bad");
    p.no_referrer = true;
    p.into_response()
}

/// A verified, unused link for the approval it names, opened by nobody else.
async fn check(
    s: &AppState,
    c: &Console,
    token: &str,
    headers: &HeaderMap,
) -> Result<(LinkClaims, ApprovalRow), Response> {
    let store = s.engine.store();
    let now = s.engine.now();
    let dir = &s.engine.inner().directory;
    let claims = links::verify(c.secret(), token, now).map_err(|e| match e {
        LinkError::Expired => refused(
            StatusCode::GONE,
            "This approval link has expired",
            "Links stop working at the approval's deadline. If the approval is still open, decide in the console.",
        ),
        LinkError::Malformed | LinkError::BadSignature => refused(
            StatusCode::FORBIDDEN,
            "This approval link is not valid",
            "It was altered or copied incompletely. Open the link from the original card, or decide in the console.",
        ),
    })?;
    let db = |e: StoreError| PageError::from(e).into_response();
    if let Some(used) = store.link_use(&claims.nonce).await.map_err(db)? {
        return Err(refused(
            StatusCode::GONE,
            "This approval link was already used",
            &format!(
                "It recorded “{}” for {} at {}. Each link works once; to change anything, use the console.",
                used.decision,
                view::display_name(dir, &used.identity),
                super::render::utc(used.used_at)
            ),
        ));
    }
    let signed_in = session::current(s, c, headers).await.map_err(IntoResponse::into_response)?;
    if let Some(v) = signed_in.filter(|v| v.identity != claims.identity) {
        return Err(refused(
            StatusCode::FORBIDDEN,
            "This approval link is for someone else",
            &format!(
                "It was made for {}, and you are signed in to the console as {}. Links cannot be passed on: decide in the console as yourself.",
                view::display_name(dir, &claims.identity),
                v.name
            ),
        ));
    }
    match store.approval(&claims.approval_id).await.map_err(db)? {
        Some(a) => Ok((claims, a)),
        None => {
            Err(refused(StatusCode::NOT_FOUND, "Approval not found", "The approval this link names does not exist."))
        }
    }
}

/// The confirmation page.
async fn confirm_page(
    s: &AppState,
    c: &Console,
    token: &str,
    claims: &LinkClaims,
    a: &ApprovalRow,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Page, PageError> {
    let store = s.engine.store();
    let now = s.engine.now();
    let dir = &s.engine.inner().directory;
    let votes = store.approval_votes(&a.id).await?;
    let incident = store.incident(&a.incident_id).await?;
    let mut page = Page::new(
        "link.html",
        json!({
            "title": format!("Approve? {}", a.summary),
            "viewer": null,
            "token": token,
            "confirm": links::confirm_token(c.secret(), &claims.nonce),
            "for_name": view::display_name(dir, &claims.identity),
            "for_id": claims.identity,
            "expires": when(claims.expires_ms, now),
            "approval": view::approval(a, &votes, &claims.identity, dir, now),
            "incident": incident.as_ref().map(|i| view::incident(i, now)),
            "error": error,
        }),
    )
    .status(status);
    page.no_referrer = true;
    Ok(page)
}

pub async fn show(State(s): State<AppState>, headers: HeaderMap, Path(token): Path<String>) -> Response {
    let c = super::console(&s);
    let (claims, a) = match check(&s, &c, &token, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    match confirm_page(&s, &c, &token, &claims, &a, None, StatusCode::OK).await {
        Ok(p) => p.into_response(),
        Err(e) => e.into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct LinkForm {
    #[serde(default)]
    confirm: Option<String>,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    reason: String,
}

pub async fn submit(
    State(s): State<AppState>,
    _: SameOrigin,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(f): Form<LinkForm>,
) -> Response {
    let c = super::console(&s);
    let (claims, a) = match check(&s, &c, &token, &headers).await {
        Ok(x) => x,
        Err(r) => return r,
    };
    let expected = links::confirm_token(c.secret(), &claims.nonce);
    if !f.confirm.as_deref().is_some_and(|t| constant_time_eq(t, &expected)) {
        return refused(
            StatusCode::FORBIDDEN,
            "Refused — nothing was changed",
            "This form did not come from the link's own page. Open the link again and confirm there.",
        );
    }
    let approve = match f.decision.as_str() {
        "approve" => true,
        "deny" => false,
        _ => return refused(StatusCode::BAD_REQUEST, "Check the form", "Choose Approve or Deny."),
    };
    let Some(why) = actions::reason(&f.reason) else {
        let msg = "Write a reason: it goes into the audit trail with your decision.";
        return match confirm_page(&s, &c, &token, &claims, &a, Some(msg), StatusCode::BAD_REQUEST).await {
            Ok(p) => p.into_response(),
            Err(e) => e.into_response(),
        };
    };
    decide(&s, &claims, approve, &why).await
}

/// Records the link's use, then the vote; gives the link back only when no vote could be
/// recorded at all (the approval vanished, the database failed).
async fn decide(s: &AppState, claims: &LinkClaims, approve: bool, why: &str) -> Response {
    let store = s.engine.store();
    let dir = &s.engine.inner().directory;
    let decision = if approve { "approve" } else { "deny" };
    let used = LinkUse {
        approval_id: claims.approval_id.clone(),
        identity: claims.identity.clone(),
        decision: decision.into(),
        used_at: s.engine.now(),
    };
    match store.claim_link_nonce(&claims.nonce, &used).await {
        Ok(true) => {}
        Ok(false) => {
            return refused(StatusCode::GONE, "This approval link was already used", "Each link works once.");
        }
        Err(e) => return PageError::from(e).into_response(),
    }
    let result = s.engine.decide(&claims.approval_id, &claims.identity, approve, Some(why), "link").await;
    let give_back = |what: &str| {
        let store = store.clone();
        let nonce = claims.nonce.clone();
        let what = what.to_string();
        async move {
            if let Err(e) = store.release_link_nonce(&nonce).await {
                tracing::error!(error = %e, "cannot give an approval link back after {what}");
            }
        }
    };
    match result {
        Ok(Ok(o)) => {
            let name = view::display_name(dir, &claims.identity);
            let state = match o.state {
                ApprovalState::Approved => "The approval is complete: the step runs now.".to_string(),
                ApprovalState::Denied => "The approval is denied: the step will not run.".to_string(),
                ApprovalState::Pending => format!("{} of {} approvals so far; more are needed.", o.approvals, o.quorum),
                ApprovalState::Expired => "The approval has expired.".to_string(),
            };
            let text = if o.repeated {
                format!("{name}, you had already voted to {decision}; nothing changed. {state}")
            } else {
                format!("{name}, your decision to {decision} was recorded. {state}")
            };
            tracing::info!(approval = %claims.approval_id, identity = %claims.identity, approve, "decision recorded through an approval link");
            let mut p = message(StatusCode::OK, "Decision recorded", &text, "good");
            p.no_referrer = true;
            p.into_response()
        }
        Ok(Err(why_not)) => refused(
            StatusCode::FORBIDDEN,
            "Refused — nothing was changed",
            &format!("{why_not}. This link cannot be used again."),
        ),
        Err(EngineError::Store(StoreError::NotFound(_))) => {
            give_back("a missing approval").await;
            refused(StatusCode::NOT_FOUND, "Approval not found", "The approval this link names does not exist.")
        }
        Err(e) => {
            give_back("a failed vote").await;
            PageError::from(e).into_response()
        }
    }
}
