//! `[connectors.pagerduty]`: the Events API v2 integration floodgate pages through.
//!
//! The routing key is the credential of the Events API (it travels in the request body, not a
//! header) and is resolved here from a secret reference. It must never appear in a plan, an
//! error, a log line or a ref: plans redact the `routing_key` body field, and no error message
//! built by this crate mentions it.

use floodgate_sdk::{BuildError, Secret, SecretRef};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// PagerDuty's Events API host.
pub const DEFAULT_EVENTS_API_URL: &str = "https://events.pagerduty.com";

/// The `[connectors.pagerduty]` table exactly as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PagerDutyConfig {
    /// Integration key of an "Events API v2" integration on the service to page, as a secret
    /// reference (`env:NAME` or `file:PATH`).
    pub routing_key: SecretRef,
    /// Events API base URL (without `/v2/enqueue`); only changed to point at the simulator.
    #[serde(default)]
    pub events_api_url: Option<String>,
    /// Prefix of floodgate's dedup keys, `<prefix>:incident:<incident id>`. Give each floodgate
    /// installation sharing one PagerDuty service its own prefix. Default `floodgate`.
    #[serde(default)]
    pub dedup_prefix: Option<String>,
    /// Events per minute floodgate allows itself per routing key (PagerDuty documents about
    /// 120). Default 120.
    #[serde(default)]
    pub max_events_per_minute: Option<u32>,
    /// Timeout of one HTTP request in seconds. Default 20.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct PagerDutySettings {
    pub(crate) routing_key: Secret,
    pub(crate) events_api_url: String,
    pub(crate) dedup_prefix: String,
    pub(crate) max_events_per_minute: u32,
    pub(crate) timeout: Duration,
}

impl PagerDutySettings {
    /// Parses and resolves a `[connectors.pagerduty]` table (already converted to JSON).
    pub fn from_value(value: &Value) -> Result<Self, BuildError> {
        let raw: PagerDutyConfig = serde_json::from_value(value.clone())
            .map_err(|e| BuildError::new("pagerduty", format!("invalid [connectors.pagerduty]: {e}")))?;
        raw.resolve()
    }

    pub fn dedup_prefix(&self) -> &str {
        &self.dedup_prefix
    }
}

impl PagerDutyConfig {
    pub fn resolve(self) -> Result<PagerDutySettings, BuildError> {
        let routing_key =
            self.routing_key.resolve().map_err(|e| BuildError::new("pagerduty", format!("routing_key: {e}")))?;
        let k = routing_key.expose();
        if k.len() != 32 || !k.chars().all(|c| c.is_ascii_alphanumeric()) {
            // Never echo the value, even a wrong one.
            return Err(BuildError::new(
                "pagerduty",
                "routing_key must be the 32-character Integration Key of an Events API v2 integration; check the secret it refers to",
            ));
        }
        let events_api_url =
            self.events_api_url.unwrap_or_else(|| DEFAULT_EVENTS_API_URL.to_string()).trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&events_api_url)
            .map_err(|e| BuildError::new("pagerduty", format!("events_api_url {events_api_url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(BuildError::new("pagerduty", "events_api_url must be an http(s) URL"));
        }
        let dedup_prefix = self.dedup_prefix.unwrap_or_else(|| "floodgate".to_string());
        if dedup_prefix.is_empty()
            || dedup_prefix.len() > 64
            || !dedup_prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        {
            return Err(BuildError::new(
                "pagerduty",
                format!("dedup_prefix {dedup_prefix:?} must be 1-64 ASCII letters, digits, -, _ or ."),
            ));
        }
        Ok(PagerDutySettings {
            routing_key,
            events_api_url,
            dedup_prefix,
            max_events_per_minute: self.max_events_per_minute.unwrap_or(120).max(1),
            timeout: Duration::from_secs(self.timeout_seconds.unwrap_or(20).clamp(1, 300)),
        })
    }
}
