//! floodgate's PagerDuty connector (Events API v2).
//!
//! - `pagerduty.event.trigger` (notify): pages on-call for the incident.
//! - `pagerduty.event.acknowledge` (notify) and `pagerduty.event.resolve` (notify).
//!
//! All three always carry floodgate's deterministic `dedup_key` (see [`actions::dedup_key`]),
//! so one incident is one PagerDuty alert whatever retries, crashes or reruns happen. 400s are
//! never retried; 429, 5xx and network errors are. The routing key never leaves the request
//! body: plans redact it, and errors and logs never include it.

pub mod actions;
pub mod client;
pub mod config;

#[cfg(feature = "sim")]
pub mod sim;

// The crate tests run against the simulator: `cargo test -p floodgate-pagerduty --all-features`.
#[cfg(all(test, feature = "sim"))]
mod tests;

pub use client::{Accepted, Event, EventAction, EventsApi, Severity};
pub use config::{PagerDutyConfig, PagerDutySettings};

use floodgate_sdk::{ActionCall, ActionError, ActionOutput, ActionSpec, BuildError, Connector, ConnectorKind, Plan};
use serde_json::Value;
use std::sync::Arc;
use std::time::Duration;

/// Registers the `pagerduty` connector.
pub struct PagerDutyKind;

impl ConnectorKind for PagerDutyKind {
    fn name(&self) -> &'static str {
        "pagerduty"
    }

    fn actions(&self) -> Vec<ActionSpec> {
        actions::specs()
    }

    fn build(&self, config: Option<&Value>) -> Result<Arc<dyn Connector>, BuildError> {
        Ok(Arc::new(match config {
            Some(v) => PagerDuty::new(PagerDutySettings::from_value(v)?),
            None => PagerDuty::unconfigured(),
        }))
    }
}

/// A built PagerDuty connector.
pub struct PagerDuty {
    configured: bool,
    api: EventsApi,
    dedup_prefix: String,
}

impl PagerDuty {
    pub fn new(settings: PagerDutySettings) -> Self {
        PagerDuty { configured: true, api: EventsApi::new(&settings), dedup_prefix: settings.dedup_prefix }
    }

    /// No configuration: plans show PagerDuty's URL with the key redacted; execute refuses.
    pub fn unconfigured() -> Self {
        PagerDuty { configured: false, api: EventsApi::for_planning(), dedup_prefix: "floodgate".into() }
    }

    /// Replaces the HTTP client (tests use a fast retry policy).
    pub fn with_http(mut self, http: floodgate_sdk::http::HttpClient) -> Self {
        self.api = self.api.with_http(http);
        self
    }

    /// The dedup key this connector uses for an incident.
    pub fn dedup_key(&self, incident_id: &str) -> String {
        actions::dedup_key(&self.dedup_prefix, incident_id)
    }
}

#[async_trait::async_trait]
impl Connector for PagerDuty {
    fn name(&self) -> &str {
        "pagerduty"
    }

    fn actions(&self) -> Vec<ActionSpec> {
        actions::specs()
    }

    fn plan(&self, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
        actions::plan(&self.api, call, &self.dedup_prefix)
    }

    async fn execute(&self, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
        if !self.configured {
            actions::build_event(call, &self.dedup_prefix)?;
            return Err(ActionError::not_configured("pagerduty"));
        }
        actions::execute(&self.api, call, &self.dedup_prefix).await
    }

    fn default_timeout(&self) -> Duration {
        Duration::from_secs(120)
    }
}
