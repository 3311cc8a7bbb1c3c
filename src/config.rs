//! `floodgate.toml`: what to listen on, where state lives, which sources may send alerts and
//! how they authenticate, who the responders are, and each connector's settings.
//!
//! Secrets are references (`env:NAME`, `file:PATH`), resolved when the server starts so a
//! missing one is named before any alert arrives. Relative paths (`playbooks`, a `sqlite://`
//! file, `[detections] directory`, `[[audit_files]] directory`) are relative to the config
//! file's directory; a relative `file:` secret path is the exception: it is opened as written,
//! from the process's current directory. Unknown keys are errors with their position, like
//! playbooks.

use floodgate_sdk::{Secret, SecretRef};
use serde::Deserialize;
use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    server: ServerConfig,
    #[serde(default)]
    database: DatabaseConfig,
    #[serde(default)]
    engine: EngineConfig,
    #[serde(default = "default_playbooks")]
    playbooks: PathBuf,
    #[serde(default)]
    sources: Vec<SourceConfig>,
    #[serde(default)]
    identities: Vec<Identity>,
    #[serde(default)]
    groups: BTreeMap<String, Vec<String>>,
    #[serde(default)]
    policy: PolicyConfig,
    #[serde(default)]
    approvals: ApprovalChannels,
    #[serde(default)]
    detections: crate::ingest::detections::DetectionsConfig,
    #[serde(default)]
    audit_files: Vec<crate::ingest::audit_files::AuditFilesConfig>,
    #[serde(default)]
    connectors: BTreeMap<String, toml::Value>,
}

fn default_playbooks() -> PathBuf {
    PathBuf::from("playbooks")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    /// Address to listen on. Default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// The URL people use to reach floodgate (links in tickets and chat). Default derived from `listen`.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Key that signs approval links and console sessions (secret reference). Without it a
    /// random key is made at start, and links sent before a restart stop working.
    #[serde(default)]
    pub secret: Option<SecretRef>,
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig { listen: default_listen(), public_url: None, secret: None }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `sqlite://PATH` (default `sqlite://floodgate.db`) or `postgres://user@host/db`.
    #[serde(default = "default_db")]
    pub url: String,
    /// Pool size. Default 8 (PostgreSQL); SQLite uses one writer regardless.
    #[serde(default = "default_pool")]
    pub max_connections: u32,
}

fn default_db() -> String {
    "sqlite://floodgate.db".into()
}
fn default_pool() -> u32 {
    8
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { url: default_db(), max_connections: default_pool() }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EngineConfig {
    /// Runs worked on at once by this process. Default 4.
    #[serde(default = "default_workers")]
    pub workers: usize,
    /// How long a worker's claim on a run lasts without renewal. Default `30s`.
    #[serde(default = "default_lease", with = "human_duration")]
    pub lease: Duration,
    /// How often idle workers look for work made by other processes. Default `500ms`.
    #[serde(default = "default_poll", with = "human_duration")]
    pub poll_interval: Duration,
}

fn default_workers() -> usize {
    4
}
fn default_lease() -> Duration {
    Duration::from_secs(30)
}
fn default_poll() -> Duration {
    Duration::from_millis(500)
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig { workers: default_workers(), lease: default_lease(), poll_interval: default_poll() }
    }
}

mod human_duration {
    use serde::{Deserialize, Deserializer};
    use std::time::Duration;
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        crate::duration::parse(&s).map_err(serde::de::Error::custom)
    }
}

/// How an alert source proves who it is.
#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum SourceAuth {
    /// `X-Floodgate-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
    HmacSha256 { secret: SecretRef },
    /// `Authorization: Bearer <token>`.
    Bearer { token: SecretRef },
    /// `Authorization: Basic ...` (Databricks notification destinations can only send this).
    Basic { username: String, password: SecretRef },
}

/// The alert body format of a source.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceFormat {
    /// Any JSON object, with `mapping` saying where each field is.
    Generic,
    /// A Databricks SQL alert notification (v2 payload).
    DatabricksSqlAlert,
    /// One `system.access.audit` row.
    DatabricksAudit,
}

/// Where a generic source's fields are, as JSON pointers (`/alert/id`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldMapping {
    pub id: Option<String>,
    pub title: Option<String>,
    pub description: Option<String>,
    pub severity: Option<String>,
    pub confidence: Option<String>,
    pub rule: Option<String>,
    pub workspace_id: Option<String>,
    #[serde(default)]
    pub entities: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// The `{source}` in `POST /v1/alerts/{source}`.
    pub name: String,
    pub format: SourceFormat,
    pub auth: SourceAuth,
    /// Severity for alerts that carry none. Default `medium`.
    #[serde(default)]
    pub default_severity: Option<String>,
    /// Confidence (0.0–1.0) for alerts that carry none. Default 0.5.
    #[serde(default, deserialize_with = "optional_confidence")]
    pub default_confidence: Option<f64>,
    /// Generic sources only.
    #[serde(default)]
    pub mapping: FieldMapping,
}

/// A confidence, on the scale alerts use once normalized: 0.0 to 1.0. The error is raised while
/// the value is read, so it carries the value's position in the file.
pub(crate) fn confidence<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    let c = f64::deserialize(d)?;
    if !(0.0..=1.0).contains(&c) {
        return Err(serde::de::Error::custom(format!("confidence must be between 0.0 and 1.0, found {c}")));
    }
    Ok(c)
}

pub(crate) fn optional_confidence<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
    confidence(d).map(Some)
}

/// A person who can approve.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub id: String,
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub slack_user_id: Option<String>,
    /// API token for the REST API and the console (`Authorization: Bearer`), as a secret reference.
    #[serde(default)]
    pub api_token: Option<SecretRef>,
    /// Console password as an Argon2id hash (`floodgate passwd` prints one). Not a secret by
    /// itself, but keep the file private all the same.
    #[serde(default)]
    pub password_hash: Option<String>,
}

/// Who must approve what, and what automation may do alone.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    /// Groups asked when a step needs approval but has no `approval:` of its own.
    #[serde(default)]
    pub default_approvers: Vec<String>,
    /// Risk classes that always need approval. Default: contain and destructive.
    #[serde(default = "default_require_approval")]
    pub require_approval: Vec<floodgate_sdk::RiskClass>,
    /// Minimum quorum by risk class, e.g. `{ destructive = 2 }`. Steps may ask for more, never fewer.
    #[serde(default)]
    pub min_quorum: BTreeMap<floodgate_sdk::RiskClass, u32>,
    /// Whether a step's `on_timeout: approve` may take effect. Default false: silence never
    /// approves containment unless the config says so.
    #[serde(default)]
    pub allow_approve_on_timeout: bool,
    /// Groups whose members may extend or end temporary containment. Default: default_approvers.
    #[serde(default)]
    pub revert_managers: Vec<String>,
    #[serde(default)]
    pub auto_approve: AutoApprovePolicy,
}

fn default_require_approval() -> Vec<floodgate_sdk::RiskClass> {
    vec![floodgate_sdk::RiskClass::Contain, floodgate_sdk::RiskClass::Destructive]
}

impl Default for PolicyConfig {
    fn default() -> Self {
        PolicyConfig {
            default_approvers: Vec::new(),
            require_approval: default_require_approval(),
            min_quorum: BTreeMap::new(),
            allow_approve_on_timeout: false,
            revert_managers: Vec::new(),
            auto_approve: AutoApprovePolicy::default(),
        }
    }
}

/// Limits on automatic approval.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoApprovePolicy {
    /// Master switch: false ignores every `auto_approve` rule. Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// Most automatic approvals in any hour, all playbooks together. Default 20.
    #[serde(default = "twenty")]
    pub max_per_hour: u32,
    /// Most automatic approvals in any hour for one playbook. Default 10.
    #[serde(default = "ten")]
    pub max_per_hour_per_playbook: u32,
    /// Rules besides playbooks' own `auto_approve:`.
    #[serde(default)]
    pub rules: Vec<AutoApproveRule>,
}

fn yes() -> bool {
    true
}
fn twenty() -> u32 {
    20
}
fn ten() -> u32 {
    10
}

impl Default for AutoApprovePolicy {
    fn default() -> Self {
        AutoApprovePolicy { enabled: true, max_per_hour: 20, max_per_hour_per_playbook: 10, rules: Vec::new() }
    }
}

/// A config-level automatic approval rule.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoApproveRule {
    /// Playbook ids the rule covers (all when empty).
    #[serde(default)]
    pub playbooks: Vec<String>,
    /// The alert's confidence (0.0–1.0) must be at least this.
    #[serde(deserialize_with = "confidence")]
    pub min_confidence: f64,
    /// The alert's severity must be one of these. Default high and critical.
    #[serde(default)]
    pub severities: Option<Vec<crate::playbook::Severity>>,
}

/// Where approval requests go besides the CLI, API and console.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalChannels {
    /// Slack channel id for approval requests with Approve/Deny buttons (needs [connectors.slack]
    /// with a signing_secret).
    #[serde(default)]
    pub slack_channel: Option<String>,
    /// Post approval cards with per-approver links to Teams (needs [connectors.teams]).
    #[serde(default)]
    pub teams: bool,
    /// Page through PagerDuty when an approval escalates (needs [connectors.pagerduty]).
    #[serde(default)]
    pub pagerduty_on_escalation: bool,
}

/// The loaded configuration.
#[derive(Debug, Clone)]
pub struct Config {
    pub path: PathBuf,
    pub server: ServerConfig,
    pub database: DatabaseConfig,
    pub engine: EngineConfig,
    pub playbooks: PathBuf,
    pub sources: Vec<SourceConfig>,
    pub identities: Vec<Identity>,
    pub groups: BTreeMap<String, Vec<String>>,
    pub policy: PolicyConfig,
    pub approvals: ApprovalChannels,
    pub detections: crate::ingest::detections::DetectionsConfig,
    pub audit_files: Vec<crate::ingest::audit_files::AuditFilesConfig>,
    pub connectors: BTreeMap<String, serde_json::Value>,
}

/// A configuration problem, with the file position when there is one.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

impl Config {
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("{}: cannot read config: {e}", path.display())))?;
        Self::parse(&text, path)
    }

    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| {
            let (line, col) = e
                .span()
                .map(|s| {
                    let p = crate::playbook::yaml::offset_pos(text, s.start);
                    (p.line, p.col)
                })
                .unwrap_or((1, 1));
            ConfigError(format!("{}:{line}:{col}: error: {}", path.display(), e.message().trim()))
        })?;
        let base = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
        let mut cfg = Config {
            path: path.to_path_buf(),
            server: raw.server,
            database: raw.database,
            engine: raw.engine,
            playbooks: base.join(raw.playbooks),
            sources: raw.sources,
            identities: raw.identities,
            groups: raw.groups,
            policy: raw.policy,
            approvals: raw.approvals,
            detections: raw.detections,
            audit_files: raw.audit_files,
            connectors: raw
                .connectors
                .into_iter()
                .map(|(k, v)| (k, serde_json::to_value(v).unwrap_or(serde_json::Value::Null)))
                .collect(),
        };
        if let Some(file) = cfg.database.url.strip_prefix("sqlite://")
            && !file.starts_with('/')
            && !file.starts_with(":memory:")
        {
            cfg.database.url = format!("sqlite://{}", base.join(file).display());
        }
        cfg.check()?;
        Ok(cfg)
    }

    fn check(&self) -> Result<(), ConfigError> {
        let err = |m: String| Err(ConfigError(format!("{}: {m}", self.path.display())));
        let mut names = BTreeSet::new();
        for s in &self.sources {
            if s.name.is_empty() || !s.name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_') {
                return err(format!("source name {:?} must be letters, digits, '-' or '_'", s.name));
            }
            if !names.insert(&s.name) {
                return err(format!("source {:?} is defined twice", s.name));
            }
            if let Some(sev) = &s.default_severity
                && crate::playbook::Severity::parse(sev).is_none()
            {
                return err(format!(
                    "source {:?}: default_severity {sev:?} is not info, low, medium, high or critical",
                    s.name
                ));
            }
        }
        let ids: BTreeSet<&str> = self.identities.iter().map(|i| i.id.as_str()).collect();
        if ids.len() != self.identities.len() {
            return err("an identity id is defined twice".into());
        }
        for (g, members) in &self.groups {
            for m in members {
                if !ids.contains(m.as_str()) {
                    return err(format!("group {g:?} lists {m:?}, which is not an [[identities]] id"));
                }
            }
        }
        for (key, list) in
            [("default_approvers", &self.policy.default_approvers), ("revert_managers", &self.policy.revert_managers)]
        {
            for g in list {
                if !self.groups.contains_key(g) {
                    return err(format!("policy.{key} names unknown group {g:?}"));
                }
            }
        }
        let mut slack_ids = BTreeMap::new();
        for i in &self.identities {
            if let Some(u) = &i.slack_user_id {
                if !floodgate_slack::is_member_id(u) {
                    return err(format!(
                        "identity {:?}: slack_user_id {u:?} is not a Slack member id (U… or W…, upper-case letters and digits)",
                        i.id
                    ));
                }
                if let Some(other) = slack_ids.insert(u.as_str(), i.id.as_str()) {
                    return err(format!(
                        "identities {other:?} and {:?} have the same slack_user_id {u:?}: a button press must map to one person",
                        i.id
                    ));
                }
            }
            if let Some(h) = &i.password_hash
                && !h.starts_with("$argon2id$")
            {
                return err(format!(
                    "identity {:?}: password_hash must be an Argon2id hash (run `floodgate passwd`)",
                    i.id
                ));
            }
        }
        if self.approvals.slack_channel.is_some() && !self.connectors.contains_key("slack") {
            return err("approvals.slack_channel needs a [connectors.slack] table".into());
        }
        if self.approvals.teams && !self.connectors.contains_key("teams") {
            return err("approvals.teams needs a [connectors.teams] table".into());
        }
        if self.approvals.pagerduty_on_escalation && !self.connectors.contains_key("pagerduty") {
            return err("approvals.pagerduty_on_escalation needs a [connectors.pagerduty] table".into());
        }
        Ok(())
    }

    /// Group name → member identity ids.
    pub fn group_members(&self) -> BTreeMap<String, BTreeSet<String>> {
        self.groups.iter().map(|(g, m)| (g.clone(), m.iter().cloned().collect())).collect()
    }

    pub fn source(&self, name: &str) -> Option<&SourceConfig> {
        self.sources.iter().find(|s| s.name == name)
    }

    pub fn public_url(&self) -> String {
        self.server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.server.listen))
            .trim_end_matches('/')
            .to_string()
    }
}

/// A source's credentials, resolved.
#[derive(Debug, Clone)]
pub enum ResolvedAuth {
    Hmac(Secret),
    Bearer(Secret),
    Basic { username: String, password: Secret },
}

impl SourceAuth {
    pub fn resolve(&self, source: &str) -> Result<ResolvedAuth, ConfigError> {
        let ctx = |e: floodgate_sdk::SecretError| ConfigError(format!("source {source:?}: {e}"));
        Ok(match self {
            SourceAuth::HmacSha256 { secret } => ResolvedAuth::Hmac(secret.resolve().map_err(ctx)?),
            SourceAuth::Bearer { token } => ResolvedAuth::Bearer(token.resolve().map_err(ctx)?),
            SourceAuth::Basic { username, password } => {
                ResolvedAuth::Basic { username: username.clone(), password: password.resolve().map_err(ctx)? }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_literal_secrets_are_positioned_errors() {
        let e = Config::parse("[server]\nlisten = \"127.0.0.1:1\"\nlisen = 2\n", Path::new("f.toml")).unwrap_err();
        assert!(e.0.starts_with("f.toml:3:1: error:"), "{}", e.0);
        let e = Config::parse(
            "[[sources]]\nname = \"s\"\nformat = \"generic\"\nauth = { type = \"bearer\", token = \"hunter2\" }\n",
            Path::new("f.toml"),
        )
        .unwrap_err();
        assert!(e.0.contains("env:NAME or file:PATH"), "{}", e.0);
        assert!(!e.0.contains("hunter2"), "{}", e.0);
    }

    #[test]
    fn relative_paths_follow_the_config_file() {
        let c = Config::parse("playbooks = \"pb\"\n", Path::new("/etc/fg/floodgate.toml")).unwrap();
        assert_eq!(c.playbooks, PathBuf::from("/etc/fg/pb"));
        assert_eq!(c.database.url, "sqlite:///etc/fg/floodgate.db");
    }

    #[test]
    fn slack_user_ids_are_well_formed_and_map_to_one_person() {
        let two = |a: &str, b: &str| {
            format!(
                "[[identities]]\nid = \"a\"\nslack_user_id = \"{a}\"\n[[identities]]\nid = \"b\"\nslack_user_id = \"{b}\"\n"
            )
        };
        assert!(Config::parse(&two("U01ALICE", "W02BOB"), Path::new("f.toml")).is_ok());
        let e = Config::parse(&two("U01ALICE", "U01ALICE"), Path::new("f.toml")).unwrap_err();
        assert!(e.0.contains("have the same slack_user_id \"U01ALICE\""), "{}", e.0);
        for bad in ["u01alice", "alice", "C0123SOC", "U01 ALICE"] {
            let e = Config::parse(&two(bad, "U02BOB"), Path::new("f.toml")).unwrap_err();
            assert!(e.0.contains("is not a Slack member id"), "{bad}: {}", e.0);
        }
    }

    #[test]
    fn confidences_are_checked_with_their_position() {
        let source = |c: &str| {
            format!(
                "[[sources]]\nname = \"s\"\nformat = \"generic\"\nauth = {{ type = \"bearer\", token = \"env:T\" }}\ndefault_confidence = {c}\n"
            )
        };
        let e = Config::parse(&source("85"), Path::new("f.toml")).unwrap_err();
        assert!(e.0.starts_with("f.toml:5:22: error:"), "{}", e.0);
        assert!(e.0.contains("confidence must be between 0.0 and 1.0, found 85"), "{}", e.0);
        assert!(Config::parse(&source("-0.1"), Path::new("f.toml")).is_err());
        let c = Config::parse(&source("0.85"), Path::new("f.toml")).unwrap();
        assert_eq!(c.sources[0].default_confidence, Some(0.85));
        assert_eq!(Config::parse(&source("1"), Path::new("f.toml")).unwrap().sources[0].default_confidence, Some(1.0));

        let e =
            Config::parse("[[policy.auto_approve.rules]]\nmin_confidence = 1.5\n", Path::new("f.toml")).unwrap_err();
        assert!(e.0.starts_with("f.toml:2:18: error:") && e.0.contains("found 1.5"), "{}", e.0);

        let e = Config::parse(
            "[[audit_files]]\nname = \"a\"\ndirectory = \"d\"\n[[audit_files.rules]]\nactions = [\"*\"]\nconfidence = 70\n",
            Path::new("f.toml"),
        )
        .unwrap_err();
        assert!(e.0.starts_with("f.toml:6:14: error:") && e.0.contains("found 70"), "{}", e.0);
    }

    #[test]
    fn groups_must_name_identities() {
        let e = Config::parse("[groups]\noncall = [\"ghost\"]\n", Path::new("f.toml")).unwrap_err();
        assert!(e.0.contains("ghost"), "{}", e.0);
    }
}
