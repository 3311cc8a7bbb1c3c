//! Interaction payloads (a responder pressed a button) and the responses floodgate sends back.
//!
//! Slack POSTs `application/x-www-form-urlencoded` with a single field `payload` holding JSON.
//! Only `block_actions` matters to floodgate. The payload is parsed into a small typed struct
//! with exactly the fields the approval flow needs, rather than slack-morphism's full
//! `SlackInteractionEvent`: that model also decodes the whole original message, its blocks and
//! any view state, and a Block Kit element it does not know must never make a valid,
//! signed approval click unreadable.
//!
//! Parse only after `verify_signature` succeeded over the same raw bytes. Nothing here
//! authorises anyone: the Slack user id is an identity to map, not a permission.

use serde::{Deserialize, Serialize};
use slack_morphism::prelude::SlackMessageContent;

/// One button press, as the approval flow needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockAction {
    /// The Slack user who pressed (`U…`/`W…`).
    pub user_id: String,
    pub user_name: Option<String>,
    pub team_id: Option<String>,
    pub action_id: String,
    pub block_id: Option<String>,
    pub value: Option<String>,
    /// Where to send an ephemeral reply or a message replacement (valid 30 minutes).
    pub response_url: Option<String>,
    pub channel_id: Option<String>,
    /// `ts` of the message holding the button (to `chat.update` it).
    pub message_ts: Option<String>,
    pub trigger_id: String,
    pub action_ts: Option<String>,
}

impl BlockAction {
    /// The floodgate approval button this press was, if it was one.
    pub fn approval_button(&self) -> Option<crate::approval::ApprovalButton> {
        crate::approval::parse_button(&self.action_id, self.value.as_deref()?)
    }
}

/// Why a body is not a usable `block_actions` payload.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InteractionError {
    #[error("the body has no `payload` form field")]
    MissingPayload,
    #[error("`payload` is not valid JSON: {0}")]
    InvalidJson(String),
    #[error("interaction type {0:?} is not handled (only block_actions)")]
    UnsupportedType(String),
    #[error("block_actions payload has no {0}")]
    MissingField(&'static str),
}

impl InteractionError {
    pub fn code(&self) -> &'static str {
        match self {
            InteractionError::MissingPayload => "missing_payload",
            InteractionError::InvalidJson(_) => "invalid_json",
            InteractionError::UnsupportedType(_) => "unsupported_type",
            InteractionError::MissingField(_) => "missing_field",
        }
    }
}

#[derive(Deserialize)]
struct RawPayload {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    user: Option<RawUser>,
    #[serde(default)]
    team: Option<RawId>,
    #[serde(default)]
    trigger_id: Option<String>,
    #[serde(default)]
    response_url: Option<String>,
    #[serde(default)]
    channel: Option<RawId>,
    #[serde(default)]
    container: Option<RawContainer>,
    #[serde(default)]
    message: Option<RawMessage>,
    #[serde(default)]
    actions: Vec<RawAction>,
}

#[derive(Deserialize)]
struct RawUser {
    id: String,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    team_id: Option<String>,
}

#[derive(Deserialize)]
struct RawId {
    id: String,
}

#[derive(Deserialize)]
struct RawContainer {
    #[serde(default)]
    message_ts: Option<String>,
    #[serde(default)]
    channel_id: Option<String>,
}

#[derive(Deserialize)]
struct RawMessage {
    #[serde(default)]
    ts: Option<String>,
}

#[derive(Deserialize)]
struct RawAction {
    action_id: String,
    #[serde(default)]
    block_id: Option<String>,
    #[serde(default)]
    value: Option<String>,
    #[serde(default)]
    action_ts: Option<String>,
}

/// Parses the raw body of an interaction request (form-encoded `payload=<json>`).
pub fn parse_block_actions(raw_body: &[u8]) -> Result<BlockAction, InteractionError> {
    let payload = url::form_urlencoded::parse(raw_body)
        .find(|(k, _)| k == "payload")
        .map(|(_, v)| v.into_owned())
        .ok_or(InteractionError::MissingPayload)?;
    parse_block_actions_json(&payload)
}

/// Parses the JSON in the `payload` field.
pub fn parse_block_actions_json(payload: &str) -> Result<BlockAction, InteractionError> {
    let raw: RawPayload = serde_json::from_str(payload).map_err(|e| InteractionError::InvalidJson(e.to_string()))?;
    if raw.kind != "block_actions" {
        return Err(InteractionError::UnsupportedType(raw.kind.chars().take(40).collect()));
    }
    let user = raw.user.ok_or(InteractionError::MissingField("user"))?;
    if user.id.is_empty() {
        return Err(InteractionError::MissingField("user.id"));
    }
    // Buttons deliver exactly one action per payload.
    let action = raw.actions.into_iter().next().ok_or(InteractionError::MissingField("actions"))?;
    let trigger_id = raw.trigger_id.ok_or(InteractionError::MissingField("trigger_id"))?;
    let (container_ts, container_channel) = match raw.container {
        Some(c) => (c.message_ts, c.channel_id),
        None => (None, None),
    };
    Ok(BlockAction {
        user_id: user.id,
        user_name: user.username.or(user.name),
        team_id: raw.team.map(|t| t.id).or(user.team_id),
        action_id: action.action_id,
        block_id: action.block_id,
        value: action.value,
        response_url: raw.response_url,
        channel_id: raw.channel.map(|c| c.id).or(container_channel),
        message_ts: container_ts.or(raw.message.and_then(|m| m.ts)),
        trigger_id,
        action_ts: action.action_ts,
    })
}

/// Whether a `response_url` reply is seen only by the presser or by the channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ResponseType {
    Ephemeral,
    InChannel,
}

/// A body for `response_url` (or the HTTP answer to the interaction request).
#[derive(Debug, Clone, Serialize)]
pub struct InteractionResponse {
    pub response_type: ResponseType,
    /// false: leave the original message (the approval request) as it is.
    pub replace_original: bool,
    #[serde(flatten)]
    pub content: SlackMessageContent,
}

/// An ephemeral refusal shown only to the person who pressed the button; the approval message
/// stays unchanged. `reason` is escaped.
pub fn ephemeral_refusal(reason: &str) -> InteractionResponse {
    ephemeral(format!(":no_entry_sign: {}", crate::escape::escape_truncated(reason, crate::blocks::FALLBACK_MAX)))
}

/// An ephemeral note for the person who pressed (e.g. "recorded, 1 of 2"); the approval
/// message stays unchanged. `note` is escaped.
pub fn ephemeral_note(note: &str) -> InteractionResponse {
    ephemeral(crate::escape::escape_truncated(note, crate::blocks::FALLBACK_MAX))
}

fn ephemeral(text: String) -> InteractionResponse {
    InteractionResponse {
        response_type: ResponseType::Ephemeral,
        replace_original: false,
        content: SlackMessageContent::new().with_text(text),
    }
}
