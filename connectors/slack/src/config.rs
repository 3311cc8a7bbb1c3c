//! `[connectors.slack]`: what an operator writes, and the resolved settings the connector uses.
//!
//! Secrets (the bot token, the signing secret) are references resolved here, once, in
//! `build()`; they never leave this crate except on the wire (`Authorization` header) or to
//! the engine's interaction endpoint through [`SlackSettings::signing_secret`].

use floodgate_sdk::{BuildError, Secret, SecretRef};
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// Slack's Web API base URL.
pub const DEFAULT_API_BASE_URL: &str = "https://slack.com/api";

/// The `[connectors.slack]` table exactly as written.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SlackConfig {
    /// Bot token (`xoxb-…`) as a secret reference: `env:NAME` or `file:PATH`.
    pub bot_token: SecretRef,
    /// Channel ID (`C…` or `G…`) used when a step names none.
    #[serde(default)]
    pub default_channel: Option<String>,
    /// Web API base URL; only changed to point at the simulator.
    #[serde(default)]
    pub api_base_url: Option<String>,
    /// Signing secret of the Slack app, for verifying interaction requests (approval buttons).
    #[serde(default)]
    pub signing_secret: Option<SecretRef>,
    /// Look for an already-posted message in the channel history (by its marker block) before
    /// posting, so a crash between Slack's answer and floodgate recording it never posts
    /// twice. Needs the `channels:history` / `groups:history` scopes. Default true.
    #[serde(default = "default_true")]
    pub reconcile_from_history: bool,
    /// Timeout of one HTTP request in seconds. Default 20.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

fn default_true() -> bool {
    true
}

/// The resolved configuration.
#[derive(Debug, Clone)]
pub struct SlackSettings {
    pub(crate) bot_token: Secret,
    pub(crate) default_channel: Option<String>,
    pub(crate) api_base_url: String,
    pub(crate) signing_secret: Option<Secret>,
    pub(crate) reconcile_from_history: bool,
    pub(crate) timeout: Duration,
}

impl SlackSettings {
    /// Parses and resolves a `[connectors.slack]` table (already converted to JSON).
    pub fn from_value(value: &Value) -> Result<SlackSettings, BuildError> {
        let raw: SlackConfig = serde_json::from_value(value.clone())
            .map_err(|e| BuildError::new("slack", format!("invalid [connectors.slack]: {e}")))?;
        raw.resolve()
    }

    /// The app's signing secret, for `verify_signature` at the interaction endpoint.
    pub fn signing_secret(&self) -> Option<&Secret> {
        self.signing_secret.as_ref()
    }

    pub fn default_channel(&self) -> Option<&str> {
        self.default_channel.as_deref()
    }

    pub fn api_base_url(&self) -> &str {
        &self.api_base_url
    }
}

impl SlackConfig {
    pub fn resolve(self) -> Result<SlackSettings, BuildError> {
        let bot_token = self.bot_token.resolve().map_err(|e| BuildError::new("slack", format!("bot_token: {e}")))?;
        if !bot_token.expose().starts_with("xox") {
            // Never echo the value: it is a secret even when it is the wrong one.
            return Err(BuildError::new(
                "slack",
                "bot_token does not look like a Slack token (expected xoxb-…); check the secret it refers to",
            ));
        }
        let signing_secret = self
            .signing_secret
            .map(|r| r.resolve())
            .transpose()
            .map_err(|e| BuildError::new("slack", format!("signing_secret: {e}")))?;
        if let Some(ch) = &self.default_channel {
            check_channel_id(ch).map_err(|m| BuildError::new("slack", format!("default_channel: {m}")))?;
        }
        let api_base_url =
            self.api_base_url.unwrap_or_else(|| DEFAULT_API_BASE_URL.to_string()).trim_end_matches('/').to_string();
        let parsed = url::Url::parse(&api_base_url)
            .map_err(|e| BuildError::new("slack", format!("api_base_url {api_base_url:?}: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(BuildError::new("slack", "api_base_url must be an http(s) URL"));
        }
        Ok(SlackSettings {
            bot_token,
            default_channel: self.default_channel,
            api_base_url,
            signing_secret,
            reconcile_from_history: self.reconcile_from_history,
            timeout: Duration::from_secs(self.timeout_seconds.unwrap_or(20).clamp(1, 300)),
        })
    }
}

/// Channel IDs, not names: names change and `conversations.history` only takes IDs.
pub(crate) fn check_channel_id(ch: &str) -> Result<(), String> {
    let mut chars = ch.chars();
    let ok = matches!(chars.next(), Some('C' | 'G' | 'D'))
        && ch.len() >= 3
        && ch.len() <= 32
        && chars.all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
    if ok {
        Ok(())
    } else {
        Err(format!(
            "{ch:?} is not a Slack channel ID; use the ID (C… or G…, shown at the bottom of the channel's details), not its name"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn literal_tokens_and_channel_names_are_refused() {
        let e = SlackSettings::from_value(&json!({"bot_token": "xoxb-literal"})).unwrap_err();
        assert!(!e.to_string().contains("xoxb-literal"), "{e}");
        assert!(check_channel_id("#soc").is_err());
        assert!(check_channel_id("C0123ABC").is_ok());
        let e = SlackSettings::from_value(&json!({"bot_token": "env:X", "extra": 1})).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
