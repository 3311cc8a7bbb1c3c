//! floodgate's ServiceNow connector: open one ServiceNow incident per floodgate incident and
//! keep it updated with work notes and state changes, through the Table API.
//!
//! ServiceNow has no idempotency key, so dedup rests on two handles: the record's sys_id kept
//! in refs, and a `correlation_id` derived from the floodgate incident id that is queried
//! before every create (see `actions`). Errors are ServiceNow's
//! `{"error": {"message", "detail"}, "status": "failure"}`, classified by the SDK HTTP layer
//! (429/5xx retried, other 4xx not). The connector never names the engine and never logs or
//! returns a secret. With feature `sim`, `sim` holds a local Table API simulator.

mod actions;
mod client;
mod config;
mod content;
mod locks;
#[cfg(feature = "sim")]
pub mod sim;
// The crate tests run against the simulator, so they need feature `sim`.
#[cfg(all(test, feature = "sim"))]
mod tests;

pub use actions::{CreateInput, NS_INCIDENT, NS_UPDATE, UpdateInput, marker};
pub use config::ServiceNowConfig;

use client::Client;
use config::Settings;
use floodgate_sdk::http::RetryPolicy;
use floodgate_sdk::{ActionCall, ActionError, ActionOutput, ActionSpec, BuildError, Connector, ConnectorKind, Plan};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Registers the `servicenow` connector: `[connectors.servicenow]` builds a [`ServiceNow`].
pub struct ServiceNowKind;

impl ConnectorKind for ServiceNowKind {
    fn name(&self) -> &'static str {
        "servicenow"
    }

    fn actions(&self) -> Vec<ActionSpec> {
        actions::specs()
    }

    fn build(&self, config: Option<&Value>) -> Result<Arc<dyn Connector>, BuildError> {
        Ok(Arc::new(match config {
            Some(v) => ServiceNow::from_config(v, RetryPolicy::default())?,
            None => ServiceNow::unconfigured(),
        }))
    }
}

/// A configured ServiceNow connector.
pub struct ServiceNow {
    client: Client,
    locks: locks::KeyedLocks,
    /// Reference names (group, caller) already resolved to sys_ids; they rarely change.
    lookup_cache: Mutex<HashMap<String, String>>,
}

impl ServiceNow {
    /// Builds from a `[connectors.servicenow]` table (as JSON), resolving secrets now. `policy`
    /// sets in-request retries (tests shorten the delays).
    pub fn from_config(config: &Value, policy: RetryPolicy) -> Result<Self, BuildError> {
        let cfg: ServiceNowConfig =
            serde_json::from_value(config.clone()).map_err(|e| BuildError::new("servicenow", e.to_string()))?;
        Ok(Self::with_settings(Settings::from_config(cfg)?, policy))
    }

    /// No configuration: plans use `https://<instance>.service-now.com`; execute refuses.
    pub fn unconfigured() -> Self {
        Self::with_settings(Settings::unconfigured(), RetryPolicy::default())
    }

    fn with_settings(settings: Settings, policy: RetryPolicy) -> Self {
        ServiceNow {
            client: Client::new(settings, policy),
            locks: locks::KeyedLocks::default(),
            lookup_cache: Mutex::new(HashMap::new()),
        }
    }
}

fn unknown(action: &str) -> ActionError {
    ActionError::permanent(
        "unknown_action",
        format!("servicenow has no action {action:?}; it has incident.create and incident.update"),
    )
}

#[async_trait::async_trait]
impl Connector for ServiceNow {
    fn name(&self) -> &str {
        "servicenow"
    }

    fn actions(&self) -> Vec<ActionSpec> {
        actions::specs()
    }

    fn plan(&self, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
        match call.action {
            "incident.create" => self.plan_create(call),
            "incident.update" => self.plan_update(call),
            other => Err(unknown(other)),
        }
    }

    async fn execute(&self, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
        if !self.client.is_configured() {
            return Err(ActionError::not_configured("servicenow"));
        }
        match call.action {
            "incident.create" => self.create(call).await,
            "incident.update" => self.update(call).await,
            other => Err(unknown(other)),
        }
    }
}
