//! floodgate's Jira connector: open one ticket per incident, comment on it, move it through
//! its workflow.
//!
//! Jira Cloud (REST v3, Atlassian Document Format, email + API token) and Jira Data Center
//! (REST v2, plain text, personal access token) are one connector with a `flavor` switch; the
//! paths, auth and rich-text rendering differ, the dedup design does not. See `actions` for how
//! each action takes effect once, `client` for errors and rate limits, and
//! `docs/connectors/jira.md` for the operator's view.
//!
//! The connector never names the engine and never logs or returns a secret. With feature `sim`,
//! `sim` holds a local Jira simulator used by tests and the demo.

mod actions;
mod adf;
mod client;
mod config;
mod content;
mod locks;
#[cfg(feature = "sim")]
pub mod sim;
// The crate tests run against the simulator, so they need feature `sim`.
#[cfg(all(test, feature = "sim"))]
mod tests;

pub use actions::{COMMENT_PROPERTY, CommentInput, CreateInput, NS_COMMENT, NS_ISSUE, NS_TRANSITION, TransitionInput};
pub use config::{Fact, Flavor, JiraConfig};

use client::JiraClient;
use config::Settings;
use floodgate_sdk::http::RetryPolicy;
use floodgate_sdk::{ActionCall, ActionError, ActionOutput, ActionSpec, BuildError, Connector, ConnectorKind, Plan};
use serde_json::Value;
use std::sync::Arc;

/// Registers the `jira` connector: `[connectors.jira]` builds a [`Jira`].
pub struct JiraKind;

impl ConnectorKind for JiraKind {
    fn name(&self) -> &'static str {
        "jira"
    }

    fn actions(&self) -> Vec<ActionSpec> {
        actions::specs()
    }

    fn build(&self, config: Option<&Value>) -> Result<Arc<dyn Connector>, BuildError> {
        Ok(Arc::new(match config {
            Some(v) => Jira::from_config(v, RetryPolicy::default())?,
            None => Jira::unconfigured(),
        }))
    }
}

/// A configured Jira connector.
pub struct Jira {
    client: JiraClient,
    locks: locks::KeyedLocks,
}

impl Jira {
    /// Builds from a `[connectors.jira]` table (as JSON), resolving secrets now. `policy` sets
    /// in-request retries (tests shorten the delays).
    pub fn from_config(config: &Value, policy: RetryPolicy) -> Result<Self, BuildError> {
        let cfg: JiraConfig =
            serde_json::from_value(config.clone()).map_err(|e| BuildError::new("jira", e.to_string()))?;
        Ok(Jira { client: JiraClient::new(Settings::from_config(cfg)?, policy), locks: locks::KeyedLocks::default() })
    }

    /// No configuration: plans use `https://<jira-host>`; execute refuses.
    pub fn unconfigured() -> Self {
        Jira {
            client: JiraClient::new(Settings::unconfigured(), RetryPolicy::default()),
            locks: locks::KeyedLocks::default(),
        }
    }
}

fn unknown(action: &str) -> ActionError {
    ActionError::permanent(
        "unknown_action",
        format!("jira has no action {action:?}; it has issue.create, issue.comment and issue.transition"),
    )
}

#[async_trait::async_trait]
impl Connector for Jira {
    fn name(&self) -> &str {
        "jira"
    }

    fn actions(&self) -> Vec<ActionSpec> {
        actions::specs()
    }

    fn plan(&self, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
        match call.action {
            "issue.create" => self.plan_create(call),
            "issue.comment" => self.plan_comment(call),
            "issue.transition" => self.plan_transition(call),
            other => Err(unknown(other)),
        }
    }

    async fn execute(&self, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
        if !self.client.is_configured() {
            return Err(ActionError::not_configured("jira"));
        }
        match call.action {
            "issue.create" => self.create(call).await,
            "issue.comment" => self.comment(call).await,
            "issue.transition" => self.transition(call).await,
            other => Err(unknown(other)),
        }
    }
}
