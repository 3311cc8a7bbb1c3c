//! `[connectors.servicenow]`: what the operator writes, and the validated settings it builds.
//!
//! `ServiceNowConfig` is the table as written (unknown keys refused); `Settings` is what the
//! connector runs with (secrets resolved, exactly one auth method). Nothing here may log or echo
//! a secret value.

use floodgate_sdk::{BuildError, Secret, SecretRef};
use serde::Deserialize;

/// The `[connectors.servicenow]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceNowConfig {
    /// `https://acme.service-now.com`.
    pub instance_url: String,
    /// Basic auth: the integration user's user name.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic auth: its password (secret reference).
    #[serde(default)]
    pub password: Option<SecretRef>,
    /// OAuth: a bearer access token (secret reference), instead of username/password.
    #[serde(default)]
    pub oauth_token: Option<SecretRef>,
    /// Default assignment group: a `sys_user_group` sys_id or its name.
    #[serde(default)]
    pub assignment_group: Option<String>,
    /// Default caller: a `sys_user` sys_id or its `user_name`.
    #[serde(default)]
    pub caller: Option<String>,
    /// Default incident category (a choice value of `incident.category`).
    #[serde(default)]
    pub category: Option<String>,
    /// `correlation_display` written on every incident. Default `floodgate`.
    #[serde(default)]
    pub correlation_display: Option<String>,
    /// Prefix of the `correlation_id` (followed by the incident id). Default `floodgate-`.
    #[serde(default)]
    pub correlation_prefix: Option<String>,
    /// Client-side request rate (requests per second). Default 5: instances rate-limit per
    /// hour by rule, and a burst of updates should not spend an hour's budget at once.
    #[serde(default)]
    pub rate_limit_per_second: Option<f64>,
    /// Timeout of one HTTP request in seconds. Default 30.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

#[derive(Clone)]
pub enum Auth {
    Basic {
        user: String,
        password: Secret,
    },
    Bearer(Secret),
    /// Built without configuration: `plan()` works, `execute()` refuses.
    Unconfigured,
}

#[derive(Clone)]
pub struct Settings {
    /// Without a trailing slash.
    pub instance_url: String,
    pub auth: Auth,
    pub assignment_group: Option<String>,
    pub caller: Option<String>,
    pub category: Option<String>,
    pub correlation_display: String,
    pub correlation_prefix: String,
    pub rate_limit_per_second: Option<f64>,
    pub timeout_seconds: u64,
}

const NAME: &str = "servicenow";

/// Characters that would change the meaning of an encoded query (`^` joins conditions).
pub fn query_safe(s: &str) -> bool {
    !s.is_empty() && !s.contains('^') && !s.contains('\n') && !s.contains('\r')
}

impl Settings {
    pub fn unconfigured() -> Self {
        Settings {
            instance_url: "https://<instance>.service-now.com".into(),
            auth: Auth::Unconfigured,
            assignment_group: None,
            caller: None,
            category: None,
            correlation_display: "floodgate".into(),
            correlation_prefix: "floodgate-".into(),
            rate_limit_per_second: None,
            timeout_seconds: 30,
        }
    }

    pub fn from_config(cfg: ServiceNowConfig) -> Result<Self, BuildError> {
        let err = |m: String| BuildError::new(NAME, m);
        let url = url::Url::parse(&cfg.instance_url)
            .map_err(|e| err(format!("instance_url {:?} is not a URL: {e}", cfg.instance_url)))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(err(format!("instance_url {:?} must be an http(s) URL with a host", cfg.instance_url)));
        }
        let auth = match (cfg.username, cfg.password, cfg.oauth_token) {
            (Some(user), Some(pw), None) => {
                Auth::Basic { user, password: pw.resolve().map_err(|e| err(format!("password: {e}")))? }
            }
            (None, None, Some(tok)) => Auth::Bearer(tok.resolve().map_err(|e| err(format!("oauth_token: {e}")))?),
            _ => {
                return Err(
                    err("set either username + password (basic auth) or oauth_token (bearer), not both".into()),
                );
            }
        };
        for (key, v) in
            [("assignment_group", &cfg.assignment_group), ("caller", &cfg.caller), ("category", &cfg.category)]
        {
            if let Some(v) = v
                && !query_safe(v)
            {
                return Err(err(format!("{key} {v:?} must be non-empty and contain no '^' or newline")));
            }
        }
        let prefix = cfg.correlation_prefix.unwrap_or_else(|| "floodgate-".into());
        if !prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':')) {
            return Err(err(format!(
                "correlation_prefix {prefix:?} may hold only letters, digits, '-', '_', '.', ':'"
            )));
        }
        if let Some(r) = cfg.rate_limit_per_second
            && !(r.is_finite() && r > 0.0)
        {
            return Err(err(format!("rate_limit_per_second must be positive, not {r}")));
        }
        Ok(Settings {
            instance_url: cfg.instance_url.trim_end_matches('/').to_string(),
            auth,
            assignment_group: cfg.assignment_group,
            caller: cfg.caller,
            category: cfg.category,
            correlation_display: cfg.correlation_display.unwrap_or_else(|| "floodgate".into()),
            correlation_prefix: prefix,
            rate_limit_per_second: Some(cfg.rate_limit_per_second.unwrap_or(5.0)),
            timeout_seconds: cfg.timeout_seconds.unwrap_or(30),
        })
    }
}
