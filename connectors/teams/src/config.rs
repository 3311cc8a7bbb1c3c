//! `[connectors.teams]`: the Workflows webhook floodgate posts to.
//!
//! The webhook URL carries a shared-access signature (`sig=`): whoever has the URL can post to
//! the channel, so the whole URL is a secret reference, resolved here and never shown. Plans
//! and errors show only `scheme://host/[redacted]`.

use floodgate_sdk::{BuildError, Secret, SecretRef};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// The `[connectors.teams]` table exactly as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TeamsConfig {
    /// The Workflows webhook URL ("Post to a channel when a webhook request is received"),
    /// as a secret reference (`env:NAME` or `file:PATH`).
    pub webhook_url: SecretRef,
    /// Timeout of one HTTP request in seconds. Default 20.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// The resolved configuration.
#[derive(Clone)]
pub struct TeamsSettings {
    pub(crate) webhook_url: Secret,
    /// `scheme://host/[redacted]`, safe to show.
    pub(crate) shown_url: String,
    pub(crate) timeout: Duration,
}

impl std::fmt::Debug for TeamsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeamsSettings").field("webhook_url", &self.shown_url).field("timeout", &self.timeout).finish()
    }
}

impl TeamsSettings {
    /// Parses and resolves a `[connectors.teams]` table (already converted to JSON).
    pub fn from_value(value: &Value) -> Result<Self, BuildError> {
        let raw: TeamsConfig = serde_json::from_value(value.clone())
            .map_err(|e| BuildError::new("teams", format!("invalid [connectors.teams]: {e}")))?;
        raw.resolve()
    }
}

impl TeamsConfig {
    pub fn resolve(self) -> Result<TeamsSettings, BuildError> {
        let webhook_url =
            self.webhook_url.resolve().map_err(|e| BuildError::new("teams", format!("webhook_url: {e}")))?;
        // Never include the URL (or the parser's view of it) in an error.
        let parsed = url::Url::parse(webhook_url.expose().trim())
            .map_err(|_| BuildError::new("teams", "webhook_url is not a URL; check the secret it refers to"))?;
        let host = parsed.host_str().unwrap_or_default().to_string();
        let loopback = matches!(host.as_str(), "127.0.0.1" | "localhost" | "[::1]");
        if parsed.scheme() != "https" && !(parsed.scheme() == "http" && loopback) {
            return Err(BuildError::new(
                "teams",
                "webhook_url must be https (plain http is only accepted for a local simulator)",
            ));
        }
        let shown_url = match parsed.port() {
            Some(p) => format!("{}://{host}:{p}/[redacted]", parsed.scheme()),
            None => format!("{}://{host}/[redacted]", parsed.scheme()),
        };
        Ok(TeamsSettings {
            webhook_url: Secret::new(webhook_url.expose().trim()),
            shown_url,
            timeout: Duration::from_secs(self.timeout_seconds.unwrap_or(20).clamp(1, 300)),
        })
    }
}
