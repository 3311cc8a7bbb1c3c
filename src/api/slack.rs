//! `POST /slack/interactions`: a responder pressed Approve or Deny on an approval message.
//!
//! Order matters: the body is read as raw bytes (at most 64 KiB), Slack's v0 signature is
//! checked over exactly those bytes with the five-minute window and a constant-time compare,
//! and only then is the form decoded. A bad or stale signature is a 401 with a JSON body and
//! changes nothing. The Slack user is mapped to a floodgate identity by `slack_user_id`; the
//! vote then goes through `Engine::decide` like every other channel, so groups, quorum,
//! self-approval, deadlines and double clicks are judged in one place.
//!
//! Slack wants an answer within three seconds. The vote is one short transaction; if it has
//! not finished after two seconds the request is answered anyway and the vote completes in
//! the background. What the presser should read (a refusal, "recorded, 1 of 2") goes to the
//! interaction's `response_url` as an ephemeral message; the approval message itself is
//! updated by the notifier once the approval is decided.

use super::{ApiError, AppState};
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use floodgate_sdk::Secret;
use floodgate_sdk::http::{HttpClient, Request, RetryPolicy};
use floodgate_slack::{InteractionResponse, ephemeral_note as ephemeral, ephemeral_refusal};
use std::time::Duration;

/// Interaction payloads are a few kilobytes; anything much larger is not from Slack.
const MAX_INTERACTION_BODY: usize = 64 * 1024;
/// How long the request waits for the vote before answering Slack anyway.
const ANSWER_WITHIN: Duration = Duration::from_secs(2);

/// What the endpoint needs: the signing secret, and where replies may be sent.
pub struct SlackApp {
    signing_secret: Secret,
    /// Origin of the configured Web API (`https://slack.com` or a simulator); `response_url`s
    /// are only followed to it or to `https://hooks.slack.com`, never to an arbitrary host.
    api_origin: String,
    http: HttpClient,
}

impl SlackApp {
    /// From `[connectors.slack]`, when it has a `signing_secret`.
    pub fn from_config(cfg: &crate::config::Config) -> Result<Option<SlackApp>, crate::config::ConfigError> {
        let Some(table) = cfg.connectors.get("slack") else { return Ok(None) };
        let settings = floodgate_slack::SlackSettings::from_value(table)
            .map_err(|e| crate::config::ConfigError(format!("[connectors.slack]: {e}")))?;
        let Some(secret) = settings.signing_secret().cloned() else { return Ok(None) };
        let api_origin =
            url::Url::parse(settings.api_base_url()).map(|u| u.origin().ascii_serialization()).unwrap_or_default();
        // One try: a retried POST could show the presser the same reply twice.
        let http = HttpClient::new(RetryPolicy { max_attempts: 1, ..RetryPolicy::default() })
            .with_timeout(Duration::from_secs(10));
        Ok(Some(SlackApp { signing_secret: secret, api_origin, http }))
    }

    fn may_reply_to(&self, response_url: &str) -> bool {
        let Ok(u) = url::Url::parse(response_url) else { return false };
        let origin = u.origin().ascii_serialization();
        origin == "https://hooks.slack.com" || (!self.api_origin.is_empty() && origin == self.api_origin)
    }

    /// Sends an ephemeral reply in the background; failures are logged, never shown to Slack.
    fn reply(&self, response_url: Option<String>, body: InteractionResponse) {
        let Some(url) = response_url.filter(|u| self.may_reply_to(u)) else {
            if body.response_type == floodgate_slack::ResponseType::Ephemeral {
                tracing::info!("slack interaction: no usable response_url; the presser sees no reply");
            }
            return;
        };
        let http = self.http.clone();
        // A response_url lets whoever holds it post to the channel for 30 minutes: it is never
        // logged, nor is an error that could quote it; the host is enough to diagnose.
        let host = url::Url::parse(&url).ok().and_then(|u| u.host_str().map(str::to_string)).unwrap_or_default();
        tokio::spawn(async move {
            let Ok(json) = serde_json::to_value(&body) else { return };
            match http.send(&Request::post(url).json(json)).await {
                Ok(r) if r.is_success() => {}
                Ok(r) => tracing::warn!(status = r.status, %host, "slack response_url refused the reply"),
                Err(e) => tracing::warn!(code = e.code(), %host, "cannot reach the slack response_url"),
            }
        });
    }
}

fn refusal(status: StatusCode, code: &'static str, message: String) -> Response {
    ApiError::new(status, code, message).into_response()
}

pub async fn interactions(State(s): State<AppState>, headers: HeaderMap, body: Body) -> Response {
    let Some(app) = s.slack.clone() else {
        return refusal(
            StatusCode::NOT_FOUND,
            "slack_not_configured",
            "Slack interactions need [connectors.slack] with a signing_secret".into(),
        );
    };
    let too_big = || {
        refusal(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_large",
            format!("an interaction body is at most {MAX_INTERACTION_BODY} bytes"),
        )
    };
    if headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > MAX_INTERACTION_BODY)
    {
        return too_big();
    }
    let Ok(raw): Result<Bytes, _> = axum::body::to_bytes(body, MAX_INTERACTION_BODY).await else {
        return too_big();
    };
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let now = time::OffsetDateTime::from_unix_timestamp(s.engine.now().div_euclid(1000))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    if let Err(e) = floodgate_slack::verify_signature(
        &app.signing_secret,
        header("x-slack-request-timestamp"),
        header("x-slack-signature"),
        &raw,
        now,
    ) {
        tracing::warn!(code = e.code(), "slack interaction refused: {e}");
        return refusal(StatusCode::UNAUTHORIZED, e.code(), e.to_string());
    }
    let action = match floodgate_slack::parse_block_actions(&raw) {
        Ok(a) => a,
        Err(floodgate_slack::InteractionError::UnsupportedType(t)) => {
            tracing::debug!(kind = %t, "slack interaction ignored");
            return StatusCode::OK.into_response();
        }
        Err(e) => return refusal(StatusCode::BAD_REQUEST, e.code(), e.to_string()),
    };
    let Some(button) = action.approval_button() else {
        // Another app's button, or a link button: nothing for floodgate to do.
        return StatusCode::OK.into_response();
    };
    let directory = &s.engine.inner().directory;
    let identity = directory
        .people
        .values()
        .find(|p| p.slack_user_id.as_deref() == Some(action.user_id.as_str()))
        .map(|p| p.id.clone());
    let Some(identity) = identity else {
        tracing::warn!(slack_user = %action.user_id, approval = %button.approval_id, "slack vote from an unknown user refused");
        app.reply(
            action.response_url.clone(),
            ephemeral_refusal(&format!(
                "Your Slack account ({}) is not linked to a floodgate identity, so your vote was not recorded. Ask an administrator to set slack_user_id for you.",
                action.user_id
            )),
        );
        return StatusCode::OK.into_response();
    };
    let approve = button.decision == floodgate_slack::Decision::Approve;
    let engine = s.engine.clone();
    let approval_id = button.approval_id.clone();
    let response_url = action.response_url.clone();
    let app_bg = app.clone();
    let vote = tokio::spawn(async move {
        let out = engine.decide(&approval_id, &identity, approve, None, "slack").await;
        let reply = match out {
            Ok(Ok(o)) if o.repeated && o.state == crate::store::ApprovalState::Pending => {
                Some(ephemeral("Your vote was already recorded; it counts once."))
            }
            Ok(Ok(o)) if o.repeated => Some(ephemeral(&format!(
                "Your vote was already recorded; it counts once. The approval is {}.",
                o.state.as_str()
            ))),
            Ok(Ok(o)) if o.state == crate::store::ApprovalState::Pending => Some(ephemeral(&format!(
                "Your approval is recorded ({} of {} needed). The step runs when enough approvers agree.",
                o.approvals, o.quorum
            ))),
            Ok(Ok(_)) => None, // decided: the message itself is updated
            Ok(Err(why)) => Some(ephemeral_refusal(&why)),
            Err(crate::engine::EngineError::Store(crate::store::StoreError::NotFound(_))) => {
                Some(ephemeral_refusal(&format!("Approval {approval_id} does not exist.")))
            }
            Err(e) => {
                tracing::error!(error = %e, approval = %approval_id, "cannot record a slack vote");
                Some(ephemeral_refusal("floodgate could not record your vote right now; press the button again."))
            }
        };
        if let Some(r) = reply {
            app_bg.reply(response_url, r);
        }
    });
    // Answer Slack in time whatever the database does; the vote finishes either way.
    let _ = tokio::time::timeout(ANSWER_WITHIN, vote).await;
    StatusCode::OK.into_response()
}
