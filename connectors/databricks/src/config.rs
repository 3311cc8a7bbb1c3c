//! `[connectors.databricks]`: what the operator writes, and what it means once checked.
//!
//! Two stages: `RawConfig` is the table exactly as written (serde, unknown keys refused);
//! `Config::from_raw` checks it, collecting every problem into one `BuildError`, resolves secret
//! references, and yields values the rest of the crate uses without re-validating.
//!
//! Secrets are `env:NAME` / `file:PATH` references only (a literal is refused by `SecretRef`),
//! and are resolved here, once, when the connector is built.

use crate::net::Ipv4Net;
use floodgate_sdk::{BuildError, Secret, SecretRef};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

pub(crate) const CONNECTOR: &str = "databricks";

/// The SDKs' client-side limit (databricks-sdk-go `defaultRateLimitPerSeconds = 15`).
pub const DEFAULT_RATE_LIMIT: f64 = 15.0;
pub const DEFAULT_BLOCK_LABEL: &str = "floodgate-block";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Workspaces by a name of the operator's choosing (used by `workspace:` inputs).
    #[serde(default)]
    pub workspaces: BTreeMap<String, RawWorkspace>,
    /// The account console, for account-level actions (`level: account`) and SP secrets.
    #[serde(default)]
    pub account: Option<RawAccount>,
    /// The workspace a step acts on when neither its input nor its alert names one.
    #[serde(default)]
    pub default_workspace: Option<String>,
    /// floodgate's own egress addresses/ranges: never put on a block list.
    #[serde(default)]
    pub egress_ips: Vec<String>,
    /// Requests per second per workspace/account (default 15, like the Databricks SDKs).
    #[serde(default)]
    pub rate_limit_per_second: Option<f64>,
    /// Label of the BLOCK list floodgate owns (default `floodgate-block`).
    #[serde(default)]
    pub block_list_label: Option<String>,
    /// Timeout of one HTTP request, seconds (default 60, like the SDKs).
    #[serde(default)]
    pub http_timeout_seconds: Option<u64>,
    /// Tries per request, including the first, for 429/503 (default 6).
    #[serde(default)]
    pub max_attempts: Option<u32>,
    /// First backoff delay in milliseconds (default 500); grows exponentially with jitter.
    #[serde(default)]
    pub retry_base_delay_ms: Option<u64>,
    /// Longest `Retry-After` waited in-request, seconds (default 30); longer waits go back to
    /// the engine, which retries the step durably.
    #[serde(default)]
    pub max_retry_wait_seconds: Option<u64>,
    /// Statement Execution settings.
    #[serde(default)]
    pub sql: RawSql,
    /// Service principals whose OAuth secret `service_principal.rotate_secret` may rotate, and
    /// where the new secret goes.
    #[serde(default)]
    pub service_principals: BTreeMap<String, RawServicePrincipal>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawWorkspace {
    /// `https://<workspace-host>` (e.g. `https://dbc-1234.cloud.databricks.com`).
    pub host: String,
    /// The numeric workspace id (alerts carry it as `workspace_id`).
    pub workspace_id: String,
    pub auth: RawAuth,
    /// SQL warehouse for `sql.query`, `investigate.*` and detections.
    #[serde(default)]
    pub warehouse_id: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAccount {
    /// `https://accounts.cloud.databricks.com` (AWS), `https://accounts.azuredatabricks.net`, ...
    pub host: String,
    pub account_id: String,
    pub auth: RawAuth,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RawAuth {
    /// A personal access token (workspaces only).
    Pat { token: SecretRef },
    /// OAuth machine-to-machine: a service principal's application id and OAuth secret.
    OauthM2m { client_id: String, client_secret: SecretRef },
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSql {
    /// `wait_timeout` sent with each statement: 0 or 5–50 seconds (default 10).
    #[serde(default)]
    pub wait_timeout_seconds: Option<u32>,
    /// How long to poll a running statement before cancelling it (default 240 s).
    #[serde(default)]
    pub timeout_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServicePrincipal {
    /// The principal's numeric id (the `service_principal_id` of the secrets API).
    pub id: String,
    /// The principal's application id (its OAuth client id).
    pub application_id: String,
    /// `account` (default when an account is configured) or a configured workspace name: where
    /// its secrets are managed and where the new secret is verified.
    #[serde(default)]
    pub level: Option<String>,
    /// Where the new secret is delivered.
    pub deliver_to: RawDestination,
    /// Lifetime of new secrets in seconds (Databricks default: 730 days).
    #[serde(default)]
    pub secret_lifetime_seconds: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum RawDestination {
    /// A Databricks secret scope (Secrets API `put`).
    SecretScope {
        /// Configured workspace name (default: `default_workspace`).
        #[serde(default)]
        workspace: Option<String>,
        scope: String,
        key: String,
    },
    /// A local file, written with mode 0600 and replaced atomically.
    File { path: PathBuf },
}

/// How floodgate authenticates to one workspace or the account.
#[derive(Debug, Clone)]
pub enum AuthConfig {
    Pat(Secret),
    OAuthM2m {
        client_id: String,
        client_secret: Secret,
    },
    /// `build(None)`: plans only.
    Placeholder,
}

#[derive(Debug, Clone)]
pub struct WorkspaceConfig {
    pub name: String,
    pub host: String,
    pub workspace_id: String,
    pub warehouse_id: Option<String>,
    pub auth: AuthConfig,
}

#[derive(Debug, Clone)]
pub struct AccountConfig {
    pub host: String,
    pub account_id: String,
    pub auth: AuthConfig,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SpLevel {
    Account,
    Workspace(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    SecretScope { workspace: String, scope: String, key: String },
    File { path: PathBuf },
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::SecretScope { workspace, scope, key } => {
                write!(f, "secret scope {scope:?} key {key:?} in workspace {workspace}")
            }
            Destination::File { path } => write!(f, "file {}", path.display()),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ServicePrincipalConfig {
    pub name: String,
    pub id: String,
    pub application_id: String,
    pub level: SpLevel,
    pub deliver_to: Destination,
    pub secret_lifetime_seconds: Option<u64>,
}

#[derive(Debug, Clone)]
pub struct HttpSettings {
    pub timeout: Duration,
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_wait: Duration,
    pub rate_limit_per_second: f64,
}

#[derive(Debug, Clone)]
pub struct SqlSettings {
    pub wait_timeout_seconds: u32,
    pub timeout: Duration,
}

/// The checked configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub workspaces: Vec<WorkspaceConfig>,
    pub account: Option<AccountConfig>,
    pub default_workspace: Option<String>,
    pub egress: Vec<Ipv4Net>,
    pub block_list_label: String,
    pub http: HttpSettings,
    pub sql: SqlSettings,
    pub service_principals: Vec<ServicePrincipalConfig>,
    /// False for `build(None)`: plans use placeholders and `execute` refuses.
    pub configured: bool,
}

impl Config {
    /// The unconfigured connector's view: one placeholder workspace and account, so `plan()`
    /// can show the requests with `https://<workspace-host>`.
    pub fn placeholder() -> Config {
        Config {
            workspaces: vec![WorkspaceConfig {
                name: "default".into(),
                host: "https://<workspace-host>".into(),
                workspace_id: "<workspace-id>".into(),
                warehouse_id: Some("<warehouse-id>".into()),
                auth: AuthConfig::Placeholder,
            }],
            account: Some(AccountConfig {
                host: "https://<account-host>".into(),
                account_id: "<account-id>".into(),
                auth: AuthConfig::Placeholder,
            }),
            default_workspace: Some("default".into()),
            egress: Vec::new(),
            block_list_label: DEFAULT_BLOCK_LABEL.into(),
            http: HttpSettings {
                timeout: Duration::from_secs(60),
                max_attempts: 6,
                base_delay: Duration::from_millis(500),
                max_wait: Duration::from_secs(30),
                rate_limit_per_second: DEFAULT_RATE_LIMIT,
            },
            sql: SqlSettings { wait_timeout_seconds: 10, timeout: Duration::from_secs(240) },
            service_principals: Vec::new(),
            configured: false,
        }
    }

    /// Parses and checks a `[connectors.databricks]` table (as JSON).
    pub fn from_json(value: &serde_json::Value) -> Result<Config, BuildError> {
        let raw: RawConfig = serde_json::from_value(value.clone())
            .map_err(|e| BuildError::new(CONNECTOR, format!("invalid [connectors.databricks]: {e}")))?;
        Config::from_raw(raw)
    }

    pub fn from_raw(raw: RawConfig) -> Result<Config, BuildError> {
        let mut problems: Vec<String> = Vec::new();
        let mut workspaces = Vec::new();
        for (name, w) in raw.workspaces {
            let at = format!("workspaces.{name}");
            if !valid_name(&name) {
                problems.push(format!("{at}: workspace names may use letters, digits, '-' and '_' only"));
            }
            let host = check_host(&w.host).map_err(|e| problems.push(format!("{at}.host: {e}"))).ok();
            if w.workspace_id.is_empty() || !w.workspace_id.chars().all(|c| c.is_ascii_digit()) {
                problems.push(format!("{at}.workspace_id: {:?} must be the numeric workspace id", w.workspace_id));
            }
            if let Some(wh) = &w.warehouse_id
                && (wh.is_empty() || !wh.chars().all(|c| c.is_ascii_alphanumeric()))
            {
                problems.push(format!("{at}.warehouse_id: {wh:?} is not a warehouse id"));
            }
            let auth = resolve_auth(&w.auth, &format!("{at}.auth"), &mut problems);
            if let (Some(host), Some(auth)) = (host, auth) {
                workspaces.push(WorkspaceConfig {
                    name,
                    host,
                    workspace_id: w.workspace_id,
                    warehouse_id: w.warehouse_id,
                    auth,
                });
            }
        }
        let mut ids: Vec<&str> = workspaces.iter().map(|w| w.workspace_id.as_str()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|p| p[0] == p[1]) {
            problems.push("workspaces: two workspaces have the same workspace_id".into());
        }

        let account = raw.account.and_then(|a| {
            let host = check_host(&a.host).map_err(|e| problems.push(format!("account.host: {e}"))).ok();
            if a.account_id.is_empty() || !a.account_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                problems.push(format!("account.account_id: {:?} must be the account UUID", a.account_id));
            }
            if matches!(a.auth, RawAuth::Pat { .. }) {
                problems.push(
                    "account.auth: account APIs do not accept personal access tokens; use type = \"oauth-m2m\"".into(),
                );
            }
            let auth = resolve_auth(&a.auth, "account.auth", &mut problems);
            Some(AccountConfig { host: host?, account_id: a.account_id, auth: auth? })
        });

        if workspaces.is_empty() && account.is_none() {
            problems.push(
                "configure at least one [connectors.databricks.workspaces.<name>] or [connectors.databricks.account]"
                    .into(),
            );
        }
        if let Some(d) = &raw.default_workspace
            && !workspaces.iter().any(|w| &w.name == d)
        {
            problems.push(format!(
                "default_workspace: {d:?} is not a configured workspace (configured: {})",
                names(&workspaces)
            ));
        }
        let default_workspace = raw.default_workspace.or_else(|| {
            // One workspace is the obvious default.
            (workspaces.len() == 1).then(|| workspaces[0].name.clone())
        });

        let mut egress = Vec::new();
        for e in &raw.egress_ips {
            match e.parse::<Ipv4Net>() {
                Ok(n) => egress.push(n),
                Err(msg) => problems.push(format!("egress_ips: {msg}")),
            }
        }

        let rate = raw.rate_limit_per_second.unwrap_or(DEFAULT_RATE_LIMIT);
        if !(rate.is_finite() && rate > 0.0) {
            problems.push(format!("rate_limit_per_second: {rate} must be a positive number"));
        }
        let label = raw.block_list_label.unwrap_or_else(|| DEFAULT_BLOCK_LABEL.to_string());
        if label.trim().is_empty() || label.len() > 100 {
            problems.push("block_list_label: must be 1 to 100 characters".into());
        }
        let max_attempts = raw.max_attempts.unwrap_or(6);
        if max_attempts == 0 || max_attempts > 20 {
            problems.push("max_attempts: must be between 1 and 20".into());
        }
        let wait = raw.sql.wait_timeout_seconds.unwrap_or(10);
        if wait != 0 && !(5..=50).contains(&wait) {
            problems
                .push(format!("sql.wait_timeout_seconds: {wait} must be 0 or between 5 and 50 (a Databricks limit)"));
        }

        let mut service_principals = Vec::new();
        for (name, sp) in raw.service_principals {
            let at = format!("service_principals.{name}");
            if sp.id.is_empty() || !sp.id.chars().all(|c| c.is_ascii_digit()) {
                problems.push(format!("{at}.id: {:?} must be the numeric service principal id", sp.id));
            }
            if sp.application_id.is_empty() || !sp.application_id.chars().all(|c| c.is_ascii_hexdigit() || c == '-') {
                problems
                    .push(format!("{at}.application_id: {:?} must be the application (client) id", sp.application_id));
            }
            let level = match sp.level.as_deref() {
                Some("account") => Some(SpLevel::Account),
                None if account.is_some() => Some(SpLevel::Account),
                None => default_workspace.clone().map(SpLevel::Workspace),
                Some(w) => Some(SpLevel::Workspace(w.to_string())),
            };
            match &level {
                Some(SpLevel::Account) if account.is_none() => {
                    problems.push(format!("{at}.level: \"account\" needs [connectors.databricks.account]"));
                }
                Some(SpLevel::Workspace(w)) if !workspaces.iter().any(|x| &x.name == w) => {
                    problems.push(format!("{at}.level: {w:?} is neither \"account\" nor a configured workspace"));
                }
                None => problems.push(format!("{at}.level: set \"account\" or a workspace name")),
                _ => {}
            }
            let dest = match sp.deliver_to {
                RawDestination::SecretScope { workspace, scope, key } => {
                    let ws = workspace.or_else(|| default_workspace.clone());
                    match ws {
                        Some(w) if workspaces.iter().any(|x| x.name == w) => {
                            if !valid_secret_name(&scope) || !valid_secret_name(&key) {
                                problems.push(format!(
                                    "{at}.deliver_to: scope and key may use letters, digits, '-', '_' and '.' (max 128)"
                                ));
                            }
                            Some(Destination::SecretScope { workspace: w, scope, key })
                        }
                        _ => {
                            problems.push(format!("{at}.deliver_to.workspace: name a configured workspace"));
                            None
                        }
                    }
                }
                RawDestination::File { path } => {
                    if !path.is_absolute() {
                        problems.push(format!("{at}.deliver_to.path: {} must be an absolute path", path.display()));
                    }
                    if !cfg!(unix) {
                        problems.push(format!("{at}.deliver_to: file destinations need a Unix system (mode 0600)"));
                    }
                    Some(Destination::File { path })
                }
            };
            if let (Some(level), Some(deliver_to)) = (level, dest) {
                service_principals.push(ServicePrincipalConfig {
                    name,
                    id: sp.id,
                    application_id: sp.application_id,
                    level,
                    deliver_to,
                    secret_lifetime_seconds: sp.secret_lifetime_seconds,
                });
            }
        }

        if !problems.is_empty() {
            return Err(BuildError::new(CONNECTOR, problems.join("; ")));
        }
        Ok(Config {
            workspaces,
            account,
            default_workspace,
            egress,
            block_list_label: label,
            http: HttpSettings {
                timeout: Duration::from_secs(raw.http_timeout_seconds.unwrap_or(60).max(1)),
                max_attempts,
                base_delay: Duration::from_millis(raw.retry_base_delay_ms.unwrap_or(500)),
                max_wait: Duration::from_secs(raw.max_retry_wait_seconds.unwrap_or(30)),
                rate_limit_per_second: rate,
            },
            sql: SqlSettings {
                wait_timeout_seconds: wait,
                timeout: Duration::from_secs(raw.sql.timeout_seconds.unwrap_or(240).max(1)),
            },
            service_principals,
            configured: true,
        })
    }

    pub fn workspace_by_name(&self, name: &str) -> Option<&WorkspaceConfig> {
        self.workspaces.iter().find(|w| w.name == name)
    }

    /// A workspace named by its configured name or its numeric id.
    pub fn workspace(&self, name_or_id: &str) -> Option<&WorkspaceConfig> {
        self.workspaces
            .iter()
            .find(|w| w.name == name_or_id)
            .or_else(|| self.workspaces.iter().find(|w| w.workspace_id == name_or_id))
    }

    pub fn workspace_names(&self) -> String {
        names(&self.workspaces)
    }
}

fn names(ws: &[WorkspaceConfig]) -> String {
    if ws.is_empty() {
        return "none".into();
    }
    ws.iter().map(|w| w.name.as_str()).collect::<Vec<_>>().join(", ")
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Secrets API scope/key names: alphanumerics, dashes, underscores and periods, at most 128.
pub(crate) fn valid_secret_name(s: &str) -> bool {
    !s.is_empty() && s.len() <= 128 && s.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

/// Accepts `https://host[:port]`; plain `http` only for loopback (the simulator).
fn check_host(host: &str) -> Result<String, String> {
    let url = url::Url::parse(host).map_err(|e| format!("{host:?} is not a URL: {e}"))?;
    let h = url.host_str().unwrap_or("");
    let loopback = matches!(h, "127.0.0.1" | "localhost" | "[::1]" | "::1");
    match url.scheme() {
        "https" => {}
        "http" if loopback => {}
        s => return Err(format!("{host:?}: scheme {s:?} is not allowed; use https")),
    }
    if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
        return Err(format!("{host:?} must be a bare origin such as https://dbc-1234.cloud.databricks.com"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(format!("{}: credentials do not belong in the host", url.host_str().unwrap_or("host")));
    }
    Ok(url.as_str().trim_end_matches('/').to_string())
}

fn resolve_auth(raw: &RawAuth, at: &str, problems: &mut Vec<String>) -> Option<AuthConfig> {
    match raw {
        RawAuth::Pat { token } => match token.resolve() {
            Ok(s) => Some(AuthConfig::Pat(s)),
            Err(e) => {
                problems.push(format!("{at}.token: {e}"));
                None
            }
        },
        RawAuth::OauthM2m { client_id, client_secret } => {
            if client_id.trim().is_empty() {
                problems.push(format!("{at}.client_id: must not be empty"));
            }
            match client_secret.resolve() {
                Ok(s) => Some(AuthConfig::OAuthM2m { client_id: client_id.clone(), client_secret: s }),
                Err(e) => {
                    problems.push(format!("{at}.client_secret: {e}"));
                    None
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// Writes a secret file and returns its `file:` reference (tests never mutate the environment).
    fn secret_file(name: &str, v: &str) -> String {
        let path = std::env::temp_dir().join(format!("fg-dbx-{}-{name}", std::process::id()));
        std::fs::write(&path, v).unwrap();
        format!("file:{}", path.display())
    }

    #[test]
    fn full_config_parses() {
        let pat = secret_file("pat", "dapi-x");
        let secret = secret_file("secret", "s3cret");
        let cfg = Config::from_json(&json!({
            "default_workspace": "prod",
            "egress_ips": ["192.0.2.50", "198.51.100.0/28"],
            "rate_limit_per_second": 10,
            "workspaces": {
                "prod": {"host": "https://dbc-1.cloud.databricks.com/", "workspace_id": "1234567890123456",
                         "warehouse_id": "4b9b953939869799",
                         "auth": {"type": "oauth-m2m", "client_id": "abc", "client_secret": secret}},
                "dev": {"host": "https://dbc-2.cloud.databricks.com", "workspace_id": "22",
                        "auth": {"type": "pat", "token": pat}}
            },
            "account": {"host": "https://accounts.cloud.databricks.com", "account_id": "23e22ba4-87b9-4cc2",
                        "auth": {"type": "oauth-m2m", "client_id": "abc", "client_secret": secret}},
            "service_principals": {"etl": {"id": "77", "application_id": "4f6c2b1e-8d7a",
                "deliver_to": {"type": "secret-scope", "scope": "etl", "key": "sp-secret"}}}
        }))
        .unwrap();
        assert_eq!(cfg.workspaces.len(), 2);
        assert_eq!(cfg.workspace("prod").unwrap().host, "https://dbc-1.cloud.databricks.com");
        assert_eq!(cfg.workspace("22").unwrap().name, "dev");
        assert_eq!(cfg.block_list_label, "floodgate-block");
        assert_eq!(cfg.egress.len(), 2);
        assert_eq!(cfg.service_principals[0].level, SpLevel::Account);
        assert!(format!("{cfg:?}").contains("[redacted]"));
        assert!(!format!("{cfg:?}").contains("s3cret"));
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let e = Config::from_json(&json!({
            "default_workspace": "nope",
            "egress_ips": ["2001:db8::1"],
            "workspaces": {"w": {"host": "http://example.com", "workspace_id": "abc",
                                  "auth": {"type": "pat", "token": "env:FG_DBX_SURELY_UNSET"}}},
            "account": {"host": "https://a", "account_id": "x y", "auth": {"type": "pat", "token": "env:FG_DBX_SURELY_UNSET"}}
        }))
        .unwrap_err()
        .to_string();
        for needle in [
            "http",
            "workspace_id",
            "FG_DBX_SURELY_UNSET",
            "default_workspace",
            "IPv6",
            "account_id",
            "personal access tokens",
        ] {
            assert!(e.contains(needle), "{needle} missing from: {e}");
        }
    }

    #[test]
    fn literal_secrets_and_unknown_keys_are_refused() {
        let e = Config::from_json(&json!({"workspaces": {"w": {"host": "https://h", "workspace_id": "1",
            "auth": {"type": "pat", "token": "dapi-literal"}}}}))
        .unwrap_err()
        .to_string();
        assert!(e.contains("env:NAME"), "{e}");
        assert!(!e.contains("dapi-literal"), "{e}");
        let e = Config::from_json(&json!({"workspacez": {}})).unwrap_err().to_string();
        assert!(e.contains("workspacez"), "{e}");
    }
}
