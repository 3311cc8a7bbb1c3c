//! The Slack Web API as floodgate uses it: `chat.postMessage`, `chat.update` and
//! `conversations.history`, sent through the floodgate-sdk HTTP layer.
//!
//! Requests are built from slack-morphism's typed request structs and serialized as JSON with
//! `Authorization: Bearer <bot token>`. Responses are parsed into the few fields floodgate
//! needs (channel, ts, block ids) rather than slack-morphism's full message model: a post that
//! Slack accepted must never be reported as failed because someone else's message in the
//! channel history carries a block type the model does not know.
//!
//! Slack answers most errors with HTTP 200 and `{"ok":false,"error":"<code>"}`; `ok` is always
//! checked and the code is surfaced as the error's `code()`. Rate limits come as HTTP 429 with
//! `Retry-After`, which the SDK layer honours.
//!
//! The bot token is only ever placed in the `Authorization` header through `Request::bearer`,
//! which keeps it out of plans, `Debug` output and errors.

use crate::config::SlackSettings;
use floodgate_sdk::http::{HttpClient, Replay, Request, Response, RetryPolicy};
use floodgate_sdk::{ActionError, Secret};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use slack_morphism::prelude::{SlackApiChatPostMessageRequest, SlackApiChatUpdateRequest};
use std::time::Duration;

/// Slack's JSON API wants an explicit charset, otherwise it answers with a `missing_charset`
/// warning.
const JSON_UTF8: &str = "application/json; charset=utf-8";

/// A message Slack stored: where it is and its timestamp (its id within the channel).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, serde::Serialize)]
pub struct PostedMessage {
    pub channel: String,
    pub ts: String,
}

/// One message of `conversations.history`, reduced to what reconciliation reads.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct HistoryMessage {
    pub ts: String,
    #[serde(default)]
    pub blocks: Vec<HistoryBlock>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct HistoryBlock {
    #[serde(default)]
    pub block_id: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub(crate) struct HistoryPage {
    #[serde(default)]
    pub messages: Vec<HistoryMessage>,
    #[serde(default)]
    pub has_more: bool,
    #[serde(default)]
    pub response_metadata: Option<ResponseMetadata>,
}

#[derive(Debug, Clone, Default, Deserialize)]
pub(crate) struct ResponseMetadata {
    #[serde(default)]
    pub next_cursor: Option<String>,
    #[serde(default)]
    pub messages: Vec<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
}

/// The envelope of every Web API answer.
#[derive(Debug, Clone, Deserialize)]
struct Envelope {
    ok: bool,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    needed: Option<String>,
    #[serde(default)]
    provided: Option<String>,
    #[serde(default)]
    warning: Option<String>,
    #[serde(default)]
    errors: Vec<String>,
    #[serde(default)]
    response_metadata: Option<ResponseMetadata>,
}

/// A Slack error code (`ok:false`), turned into an `ActionError` whose `code()` is the Slack
/// code itself and whose message says what to do about it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("Slack {method} failed: {code}{detail}")]
pub struct SlackApiError {
    pub method: String,
    pub code: String,
    /// Extra detail Slack gave (`invalid_blocks` reasons, missing scope), already formatted.
    pub detail: String,
    pub retry_after: Option<Duration>,
}

impl SlackApiError {
    /// Codes Slack uses for conditions that pass by themselves.
    fn is_transient(&self) -> bool {
        matches!(
            self.code.as_str(),
            "ratelimited"
                | "rate_limited"
                | "fatal_error"
                | "internal_error"
                | "service_unavailable"
                | "request_timeout"
        )
    }

    fn hint(&self) -> &'static str {
        match self.code.as_str() {
            "channel_not_found" => " (check the channel ID; for a private channel, invite the bot first)",
            "not_in_channel" => " (invite the bot to the channel: /invite @<bot name>)",
            "is_archived" => " (the channel is archived; pick another channel)",
            "not_authed" | "invalid_auth" | "token_revoked" | "token_expired" | "account_inactive" => {
                " (check the secret that [connectors.slack] bot_token refers to)"
            }
            "missing_scope" => " (add the scope to the Slack app's bot token scopes and reinstall the app)",
            "invalid_blocks" | "invalid_blocks_format" => {
                " (the Block Kit payload was refused; this is a floodgate bug if the input was valid)"
            }
            "msg_too_long" => " (shorten the message text)",
            "no_text" => " (a message needs text)",
            "message_not_found" => " (the message was deleted or the ts is wrong)",
            "cant_update_message" => " (only messages posted by this bot can be updated)",
            "edit_window_closed" => " (the workspace no longer allows editing this message)",
            "ratelimited" | "rate_limited" => " (Slack rate limit; floodgate retries later)",
            _ => "",
        }
    }
}

impl From<SlackApiError> for ActionError {
    fn from(e: SlackApiError) -> ActionError {
        let message = format!("{e}{}", e.hint());
        if e.is_transient() {
            ActionError::retry_after(&e.code, message, e.retry_after)
        } else {
            ActionError::permanent(&e.code, message)
        }
    }
}

/// Slack's Web API behind floodgate's HTTP layer.
#[derive(Clone)]
pub struct SlackApi {
    http: HttpClient,
    base: String,
    token: Secret,
}

impl SlackApi {
    pub fn new(settings: &SlackSettings) -> Self {
        let policy = RetryPolicy {
            // Slack sends Retry-After on 429; anything up to a minute is worth waiting for
            // inside the call (chat.postMessage allows ~1 message per second per channel).
            max_wait: Duration::from_secs(30),
            ..RetryPolicy::default()
        };
        SlackApi {
            http: HttpClient::new(policy).with_timeout(settings.timeout),
            base: settings.api_base_url.clone(),
            token: settings.bot_token.clone(),
        }
    }

    /// An API handle for plans only: placeholder token, default or given base URL.
    pub(crate) fn for_planning(base: &str) -> Self {
        SlackApi {
            http: HttpClient::new(RetryPolicy::default()),
            base: base.trim_end_matches('/').to_string(),
            token: Secret::new("<bot-token>"),
        }
    }

    /// Replaces the HTTP client (tests use a fast retry policy).
    pub fn with_http(mut self, http: HttpClient) -> Self {
        self.http = http;
        self
    }

    pub(crate) fn post_message_request(&self, req: &SlackApiChatPostMessageRequest) -> Result<Request, ActionError> {
        let body = to_json(req)?;
        // A post creates a message: replay only what Slack certainly did not process (429);
        // anything else is reconciled on the next durable attempt.
        Ok(Request::post(format!("{}/chat.postMessage", self.base))
            .bearer(&self.token)
            .header("Content-Type", JSON_UTF8)
            .json(body)
            .replay(Replay::OnlyUnprocessed))
    }

    pub(crate) fn update_message_request(&self, req: &SlackApiChatUpdateRequest) -> Result<Request, ActionError> {
        let body = to_json(req)?;
        // Setting a message to the same content twice leaves it as once: safe to replay.
        Ok(Request::post(format!("{}/chat.update", self.base))
            .bearer(&self.token)
            .header("Content-Type", JSON_UTF8)
            .json(body)
            .replay(Replay::Safe))
    }

    pub(crate) fn history_request(
        &self,
        channel: &str,
        oldest: Option<&str>,
        cursor: Option<&str>,
        limit: u16,
    ) -> Result<Request, ActionError> {
        let mut url = url::Url::parse(&format!("{}/conversations.history", self.base))
            .map_err(|e| ActionError::permanent("invalid_config", format!("Slack api_base_url: {e}")))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("channel", channel);
            q.append_pair("limit", &limit.to_string());
            if let Some(o) = oldest {
                q.append_pair("oldest", o);
            }
            if let Some(c) = cursor {
                q.append_pair("cursor", c);
            }
        }
        Ok(Request::get(url.as_str()).bearer(&self.token))
    }

    /// Posts a message (`chat.postMessage`).
    pub async fn post_message(&self, req: &SlackApiChatPostMessageRequest) -> Result<PostedMessage, ActionError> {
        let request = self.post_message_request(req)?;
        self.call("chat.postMessage", &request).await
    }

    /// Replaces a message's content (`chat.update`).
    pub async fn update_message(&self, req: &SlackApiChatUpdateRequest) -> Result<PostedMessage, ActionError> {
        let request = self.update_message_request(req)?;
        self.call("chat.update", &request).await
    }

    /// Posts `content` (e.g. an approval message) to a channel with floodgate's safe defaults:
    /// no unfurling, no name linking, `parse=none`.
    pub async fn post_content(
        &self,
        channel: &str,
        content: slack_morphism::prelude::SlackMessageContent,
    ) -> Result<PostedMessage, ActionError> {
        self.post_message(&crate::actions::post_request(channel, content)).await
    }

    /// Replaces the content of a posted message (e.g. an approval once decided), `parse=none`.
    pub async fn update_content(
        &self,
        target: &PostedMessage,
        content: slack_morphism::prelude::SlackMessageContent,
    ) -> Result<PostedMessage, ActionError> {
        self.update_message(&crate::actions::update_request(target, content)).await
    }

    /// One page of a channel's history, newest first.
    pub(crate) async fn history_page(
        &self,
        channel: &str,
        oldest: Option<&str>,
        cursor: Option<&str>,
        limit: u16,
    ) -> Result<HistoryPage, ActionError> {
        let request = self.history_request(channel, oldest, cursor, limit)?;
        self.call("conversations.history", &request).await
    }

    async fn call<T: DeserializeOwned>(&self, method: &str, request: &Request) -> Result<T, ActionError> {
        let resp = self.http.send(request).await?;
        check(method, &resp)?;
        serde_json::from_slice(&resp.body).map_err(|e| {
            ActionError::permanent(
                "bad_response",
                format!(
                    "Slack {method} answered ok but the body is not as documented: {e}: {}",
                    floodgate_sdk::text::truncate(&resp.text(), 300)
                ),
            )
        })
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> Result<serde_json::Value, ActionError> {
    serde_json::to_value(v)
        .map_err(|e| ActionError::permanent("internal", format!("cannot serialize Slack request: {e}")))
}

/// Checks HTTP status and `ok`. Public within the crate so the simulator tests can reuse it.
pub(crate) fn check(method: &str, resp: &Response) -> Result<(), ActionError> {
    let envelope: Option<Envelope> = serde_json::from_slice(&resp.body).ok();
    if !resp.is_success() {
        // 429 and 5xx carry `{"ok":false,"error":...}` too; keep Slack's code when there is one.
        let mut err = ActionError::from_status(
            resp.status,
            format!(
                "Slack {method} answered HTTP {}{}",
                resp.status,
                envelope.as_ref().and_then(|e| e.error.as_deref()).map(|c| format!(" ({c})")).unwrap_or_default()
            ),
            resp.retry_after(),
        );
        if let Some(code) = envelope.and_then(|e| e.error) {
            err = match err {
                ActionError::Retryable { message, retry_after, .. } => {
                    ActionError::Retryable { code, message, retry_after }
                }
                ActionError::Permanent { message, .. } => ActionError::Permanent { code, message },
            };
        }
        return Err(err);
    }
    let Some(env) = envelope else {
        return Err(ActionError::permanent(
            "bad_response",
            format!(
                "Slack {method} answered HTTP {} with a body that is not JSON: {}",
                resp.status,
                floodgate_sdk::text::truncate(&resp.text(), 300)
            ),
        ));
    };
    let listed = env.response_metadata.as_ref().map(|m| m.warnings.join(", ")).unwrap_or_default();
    if let Some(w) = env.warning.as_deref().filter(|w| !w.is_empty()) {
        tracing::warn!(method, warning = %w, details = %listed, "Slack API warning");
    }
    if env.ok {
        return Ok(());
    }
    let code = env.error.clone().unwrap_or_else(|| "unknown_error".to_string());
    let mut detail = String::new();
    if let Some(needed) = &env.needed {
        detail.push_str(&format!(": needs scope {needed}"));
        if let Some(p) = &env.provided {
            detail.push_str(&format!(" (token has {p})"));
        }
    }
    let mut reasons = env.errors.clone();
    if let Some(md) = &env.response_metadata {
        reasons.extend(md.messages.iter().cloned());
    }
    if !reasons.is_empty() {
        detail.push_str(&format!(": {}", floodgate_sdk::text::truncate(&reasons.join("; "), 500)));
    }
    Err(SlackApiError { method: method.to_string(), code, detail, retry_after: resp.retry_after() }.into())
}
