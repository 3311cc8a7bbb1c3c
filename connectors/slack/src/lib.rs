//! floodgate's Slack connector.
//!
//! - `slack.message.post` (notify): an incident message in Block Kit, with a text fallback,
//!   posted once per incident and message name (see [`actions`] for how a repeat is made
//!   harmless), its channel and `ts` kept so later steps update the same message.
//! - `slack.message.update` (notify): replaces that message's content.
//!
//! Building blocks for human approvals (used by the engine's `/slack/interactions`):
//! [`verify_signature`] (Slack's v0 request signing), [`parse_block_actions`] (a button press),
//! [`approval_request_message`] / [`approval_decided_message`] (the Approve / Deny message and
//! its "decided by" update), [`ephemeral_refusal`], and [`SlackApi::post_content`] /
//! [`SlackApi::update_content`] to post and update them.
//!
//! Block Kit and request bodies are slack-morphism types, serialized by serde; alert data is
//! escaped ([`escape`]) so it can neither mention people nor inject links. Requests go through
//! the floodgate-sdk HTTP layer with the bot token as a Bearer header. The crate never logs,
//! returns or stores the bot token or the signing secret.

pub mod actions;
pub mod approval;
mod blocks;
pub mod client;
pub mod config;
pub mod escape;
pub mod interaction;
pub mod signature;

#[cfg(feature = "sim")]
pub mod sim;

// The crate tests run against the simulator: `cargo test -p floodgate-slack --all-features`.
#[cfg(all(test, feature = "sim"))]
mod tests;

pub use approval::{
    APPROVE_ACTION_ID, ApprovalButton, ApprovalMessageError, ApprovalOutcome, ApprovalRequest, DENY_ACTION_ID, Decider,
    Decision, Verdict, approval_decided_message, approval_request_message, button_value, parse_button,
};
pub use blocks::is_member_id;
pub use client::{PostedMessage, SlackApi, SlackApiError};
pub use config::{SlackConfig, SlackSettings};
pub use interaction::{
    BlockAction, InteractionError, InteractionResponse, ResponseType, ephemeral_note, ephemeral_refusal,
    parse_block_actions, parse_block_actions_json,
};
pub use signature::{MAX_SKEW_SECONDS, SignatureError, sign, verify_signature};
/// The Block Kit model the builders return, re-exported so callers need no second version.
pub use slack_morphism;

use floodgate_sdk::{ActionCall, ActionError, ActionOutput, ActionSpec, BuildError, Connector, ConnectorKind, Plan};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Registers the `slack` connector.
pub struct SlackKind;

impl ConnectorKind for SlackKind {
    fn name(&self) -> &'static str {
        "slack"
    }

    fn actions(&self) -> Vec<ActionSpec> {
        actions::specs()
    }

    fn build(&self, config: Option<&Value>) -> Result<Arc<dyn Connector>, BuildError> {
        Ok(Arc::new(match config {
            Some(v) => Slack::new(SlackSettings::from_value(v)?),
            None => Slack::unconfigured(),
        }))
    }
}

/// A built Slack connector.
pub struct Slack {
    settings: Option<SlackSettings>,
    api: SlackApi,
}

impl Slack {
    pub fn new(settings: SlackSettings) -> Self {
        Slack { api: SlackApi::new(&settings), settings: Some(settings) }
    }

    /// No configuration: plans use Slack's public API URL and placeholders; execute refuses.
    pub fn unconfigured() -> Self {
        Slack { api: SlackApi::for_planning(config::DEFAULT_API_BASE_URL), settings: None }
    }

    /// Replaces the HTTP client (tests use a fast retry policy).
    pub fn with_http(mut self, http: floodgate_sdk::http::HttpClient) -> Self {
        self.api = self.api.with_http(http);
        self
    }

    pub fn settings(&self) -> Option<&SlackSettings> {
        self.settings.as_ref()
    }

    /// The API handle, for posting approval messages.
    pub fn api(&self) -> &SlackApi {
        &self.api
    }

    fn default_channel(&self) -> Option<&str> {
        self.settings.as_ref().and_then(|s| s.default_channel.as_deref())
    }
}

#[async_trait::async_trait]
impl Connector for Slack {
    fn name(&self) -> &str {
        "slack"
    }

    fn actions(&self) -> Vec<ActionSpec> {
        actions::specs()
    }

    fn plan(&self, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
        match call.action {
            actions::POST => actions::plan_post(&self.api, call, self.default_channel()),
            actions::UPDATE => actions::plan_update(&self.api, call, self.default_channel()),
            other => Err(actions::unknown(other)),
        }
    }

    async fn execute(&self, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
        let Some(settings) = &self.settings else {
            // Check the input anyway so `simulate` reports input errors before config errors.
            self.plan(call)?;
            return Err(ActionError::not_configured("slack"));
        };
        let reconcile = settings.reconcile_from_history;
        match call.action {
            actions::POST => actions::execute_post(&self.api, call, self.default_channel(), reconcile).await,
            actions::UPDATE => actions::execute_update(&self.api, call, self.default_channel(), reconcile).await,
            other => Err(actions::unknown(other)),
        }
    }

    fn default_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }
}
