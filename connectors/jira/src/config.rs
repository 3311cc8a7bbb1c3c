//! `[connectors.jira]`: what the operator writes, and the validated settings it builds.
//!
//! Two stages, as elsewhere in floodgate: `JiraConfig` is the table exactly as written (serde,
//! unknown keys refused), `Settings` is what the connector runs with (secrets resolved, flavor
//! and auth checked against each other). Nothing here may log or echo a secret value.

use floodgate_sdk::{BuildError, Secret, SecretRef};
use serde::Deserialize;
use std::collections::BTreeMap;

/// Which Jira the connector talks to; it decides the API version, the auth scheme and whether
/// rich text is Atlassian Document Format or a plain (wiki-escaped) string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flavor {
    /// Jira Cloud: REST v3, ADF, Basic auth with email + API token.
    Cloud,
    /// Jira Data Center / Server ≥ 8.14: REST v2, plain text, bearer personal access token.
    DataCenter,
}

impl Flavor {
    /// The REST API prefix of this flavor.
    pub fn api(self) -> &'static str {
        match self {
            Flavor::Cloud => "/rest/api/3",
            Flavor::DataCenter => "/rest/api/2",
        }
    }
}

/// Facts floodgate can copy into Jira fields of the operator's choosing (usually custom fields).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Fact {
    IncidentId,
    IncidentUrl,
    Severity,
    AlertRule,
    AlertSource,
    SourceIp,
    User,
    Workspace,
}

/// The `[connectors.jira]` table as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct JiraConfig {
    /// `https://acme.atlassian.net` (Cloud) or `https://jira.example.com` (Data Center).
    pub base_url: String,
    /// `cloud` (default) or `data-center`.
    #[serde(default)]
    pub flavor: Option<Flavor>,
    /// Cloud: the Atlassian account email the API token belongs to.
    #[serde(default)]
    pub email: Option<String>,
    /// Cloud: API token (secret reference).
    #[serde(default)]
    pub api_token: Option<SecretRef>,
    /// Data Center: personal access token (secret reference).
    #[serde(default)]
    pub personal_access_token: Option<SecretRef>,
    /// Default project key for `issue.create`.
    pub project: String,
    /// Default issue type name. Default `Task`.
    #[serde(default)]
    pub issue_type: Option<String>,
    /// Prefix of the dedup label put on every issue. Default `floodgate-`.
    #[serde(default)]
    pub label_prefix: Option<String>,
    /// Incident severity → Jira priority name. Unmapped severities set no priority.
    #[serde(default)]
    pub priorities: BTreeMap<String, String>,
    /// floodgate fact → Jira field id (e.g. `incident_id = "customfield_10050"`).
    #[serde(default)]
    pub fields: BTreeMap<Fact, String>,
    /// Client-side request rate (requests per second). Default 10 on Cloud, unlimited on Data
    /// Center (which has no built-in limit unless an admin sets one).
    #[serde(default)]
    pub rate_limit_per_second: Option<f64>,
    /// Timeout of one HTTP request in seconds. Default 30.
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

/// How the connector authenticates.
#[derive(Clone)]
pub enum Auth {
    Basic {
        email: String,
        token: Secret,
    },
    Bearer(Secret),
    /// Built without configuration: `plan()` works, `execute()` refuses.
    Unconfigured,
}

/// The validated settings a `Jira` connector runs with.
#[derive(Clone)]
pub struct Settings {
    /// Without a trailing slash.
    pub base_url: String,
    pub flavor: Flavor,
    pub auth: Auth,
    pub project: String,
    pub issue_type: String,
    pub label_prefix: String,
    pub priorities: BTreeMap<String, String>,
    pub fields: BTreeMap<Fact, String>,
    pub rate_limit_per_second: Option<f64>,
    pub timeout_seconds: u64,
}

const NAME: &str = "jira";

impl Settings {
    /// What `build(None)` runs with: placeholder host and project so plans still render.
    pub fn unconfigured() -> Self {
        Settings {
            base_url: "https://<jira-host>".into(),
            flavor: Flavor::Cloud,
            auth: Auth::Unconfigured,
            project: "<project>".into(),
            issue_type: "Task".into(),
            label_prefix: "floodgate-".into(),
            priorities: BTreeMap::new(),
            fields: BTreeMap::new(),
            rate_limit_per_second: None,
            timeout_seconds: 30,
        }
    }

    pub fn from_config(cfg: JiraConfig) -> Result<Self, BuildError> {
        let err = |m: String| BuildError::new(NAME, m);
        let url = url::Url::parse(&cfg.base_url)
            .map_err(|e| err(format!("base_url {:?} is not a URL: {e}", cfg.base_url)))?;
        if !matches!(url.scheme(), "https" | "http") || url.host_str().is_none() {
            return Err(err(format!("base_url {:?} must be an http(s) URL with a host", cfg.base_url)));
        }
        let flavor = cfg.flavor.unwrap_or(Flavor::Cloud);
        let resolve = |r: &SecretRef, key: &str| r.resolve().map_err(|e| err(format!("{key}: {e}")));
        let auth = match flavor {
            Flavor::Cloud => {
                if cfg.personal_access_token.is_some() {
                    return Err(err(
                        "personal_access_token is for flavor = \"data-center\"; Jira Cloud uses email + api_token"
                            .into(),
                    ));
                }
                let (Some(email), Some(token)) = (cfg.email, cfg.api_token.as_ref()) else {
                    return Err(err(
                        "flavor \"cloud\" needs email and api_token (e.g. api_token = \"env:JIRA_API_TOKEN\")".into(),
                    ));
                };
                Auth::Basic { email, token: resolve(token, "api_token")? }
            }
            Flavor::DataCenter => {
                if cfg.api_token.is_some() || cfg.email.is_some() {
                    return Err(err(
                        "email/api_token are for Jira Cloud; flavor \"data-center\" uses personal_access_token".into(),
                    ));
                }
                let Some(pat) = cfg.personal_access_token.as_ref() else {
                    return Err(err(
                        "flavor \"data-center\" needs personal_access_token (e.g. \"env:JIRA_PAT\")".into()
                    ));
                };
                Auth::Bearer(resolve(pat, "personal_access_token")?)
            }
        };
        if cfg.project.trim().is_empty() {
            return Err(err("project must name a project key, e.g. \"SEC\"".into()));
        }
        let label_prefix = cfg.label_prefix.unwrap_or_else(|| "floodgate-".into());
        if label_prefix.is_empty() || label_prefix.chars().any(char::is_whitespace) {
            return Err(err(format!(
                "label_prefix {label_prefix:?} must be non-empty and contain no spaces (Jira labels cannot)"
            )));
        }
        for sev in cfg.priorities.keys() {
            if !SEVERITIES.contains(&sev.as_str()) {
                return Err(err(format!(
                    "priorities: unknown severity {sev:?}; expected one of {}",
                    SEVERITIES.join(", ")
                )));
            }
        }
        if let Some(r) = cfg.rate_limit_per_second
            && !(r.is_finite() && r > 0.0)
        {
            return Err(err(format!("rate_limit_per_second must be positive, not {r}")));
        }
        Ok(Settings {
            base_url: cfg.base_url.trim_end_matches('/').to_string(),
            flavor,
            auth,
            project: cfg.project,
            issue_type: cfg.issue_type.unwrap_or_else(|| "Task".into()),
            label_prefix,
            priorities: cfg.priorities,
            fields: cfg.fields,
            rate_limit_per_second: cfg.rate_limit_per_second.or(match flavor {
                // Jira Cloud's burst limits are per tenant and endpoint; staying at 10/s keeps a
                // busy incident well below them instead of learning them from 429s.
                Flavor::Cloud => Some(10.0),
                Flavor::DataCenter => None,
            }),
            timeout_seconds: cfg.timeout_seconds.unwrap_or(30),
        })
    }
}

/// Severity names of a normalized alert, lowest first.
pub const SEVERITIES: [&str; 5] = ["info", "low", "medium", "high", "critical"];
