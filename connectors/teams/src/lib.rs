//! floodgate's Microsoft Teams connector.
//!
//! - `teams.message.post` (notify): an incident card (Adaptive Card 1.5) posted through a
//!   Workflows (Power Automate) webhook, the successor of the retired Office 365 connectors.
//!
//! Building block for human approvals: [`approval_card`] renders the same content as Slack's
//! approval message with one `Action.OpenUrl` per signed, per-approver link (a webhook card
//! cannot call back), and [`TeamsWebhook::post`] sends it.
//!
//! The webhook URL is a secret (it embeds a shared-access signature): it is a secret
//! reference in config and never appears in plans, errors, logs, outputs or refs. Cards are
//! typed structs serialized by serde; `Action.Submit`/`Action.Execute` cannot be expressed and
//! are linted against; the 28 KB Teams message limit is checked before sending.

pub mod actions;
pub mod card;
pub mod client;
pub mod config;
pub mod content;

#[cfg(feature = "sim")]
pub mod sim;

// The crate tests run against the simulator: `cargo test -p floodgate-teams --all-features`.
#[cfg(all(test, feature = "sim"))]
mod tests;

pub use card::{Envelope, check_webhook_card};
pub use client::{MAX_MESSAGE_BYTES, TeamsWebhook};
pub use config::{TeamsConfig, TeamsSettings};
pub use content::{ApprovalCardError, ApprovalLink, ApprovalRequest, approval_card};

use floodgate_sdk::{ActionCall, ActionError, ActionOutput, ActionSpec, BuildError, Connector, ConnectorKind, Plan};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Registers the `teams` connector.
pub struct TeamsKind;

impl ConnectorKind for TeamsKind {
    fn name(&self) -> &'static str {
        "teams"
    }

    fn actions(&self) -> Vec<ActionSpec> {
        actions::specs()
    }

    fn build(&self, config: Option<&Value>) -> Result<Arc<dyn Connector>, BuildError> {
        Ok(Arc::new(match config {
            Some(v) => Teams::new(&TeamsSettings::from_value(v)?),
            None => Teams::unconfigured(),
        }))
    }
}

/// A built Teams connector.
pub struct Teams {
    configured: bool,
    webhook: TeamsWebhook,
}

impl Teams {
    pub fn new(settings: &TeamsSettings) -> Self {
        Teams { configured: true, webhook: TeamsWebhook::new(settings) }
    }

    /// No configuration: plans show a placeholder URL; execute refuses.
    pub fn unconfigured() -> Self {
        Teams { configured: false, webhook: TeamsWebhook::unconfigured() }
    }

    /// Changes the per-try timeout and the 429 backoff (tests use short ones).
    pub fn with_timing(mut self, timeout: Duration, backoff: Duration) -> Self {
        self.webhook = self.webhook.with_timing(timeout, backoff);
        self
    }

    /// The webhook, for posting approval cards.
    pub fn webhook(&self) -> &TeamsWebhook {
        &self.webhook
    }
}

#[async_trait::async_trait]
impl Connector for Teams {
    fn name(&self) -> &str {
        "teams"
    }

    fn actions(&self) -> Vec<ActionSpec> {
        actions::specs()
    }

    fn plan(&self, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
        match call.action {
            actions::POST => actions::plan(&self.webhook, call),
            other => Err(actions::unknown(other)),
        }
    }

    async fn execute(&self, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
        if call.action != actions::POST {
            return Err(actions::unknown(call.action));
        }
        if !self.configured {
            self.plan(call)?;
            return Err(ActionError::not_configured("teams"));
        }
        actions::execute(&self.webhook, call).await
    }

    fn default_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }
}
