//! Playbooks: the YAML security teams write, and what it means once checked.
//!
//! `raw` is the format exactly as written (and the source of the JSON Schema); `compile` checks a
//! file, collecting every problem with its position, and yields a `Playbook` whose actions are
//! resolved, templates parsed and durations read. Nothing downstream re-validates, and nothing
//! here does I/O beyond reading the file it is given.

mod compile;
pub mod diag;
pub mod raw;
pub mod schema;
pub mod template;
pub mod yaml;

pub use compile::{CompileOptions, compile, load_dir, load_file};
pub use diag::Diagnostic;
pub use raw::{OnError, OnTimeout, Severity};
pub use template::{Condition, Input, RenderError, Templates, ValueTemplate};

use floodgate_sdk::{ActionSpec, ConnectorKind};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

/// The five phases, in the order a run walks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    Detection,
    Triage,
    Investigation,
    Containment,
    Remediation,
}

impl Phase {
    pub const ALL: [Phase; 5] =
        [Phase::Detection, Phase::Triage, Phase::Investigation, Phase::Containment, Phase::Remediation];

    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Detection => "detection",
            Phase::Triage => "triage",
            Phase::Investigation => "investigation",
            Phase::Containment => "containment",
            Phase::Remediation => "remediation",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Every action every known connector offers, by full name (`databricks.ip_access_list.block`).
#[derive(Debug, Clone, Default)]
pub struct ActionCatalog {
    actions: BTreeMap<String, ActionSpec>,
}

impl ActionCatalog {
    pub fn from_kinds<'a>(kinds: impl IntoIterator<Item = &'a dyn ConnectorKind>) -> Self {
        let mut actions = BTreeMap::new();
        for k in kinds {
            for a in k.actions() {
                actions.insert(format!("{}.{}", k.name(), a.name), a);
            }
        }
        ActionCatalog { actions }
    }
    pub fn get(&self, full: &str) -> Option<&ActionSpec> {
        self.actions.get(full)
    }
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.actions.keys().map(String::as_str)
    }
    pub fn connectors(&self) -> Vec<&str> {
        let mut c: Vec<&str> = self.actions.keys().filter_map(|k| k.split('.').next()).collect();
        c.dedup();
        c
    }
    pub fn iter(&self) -> impl Iterator<Item = (&str, &ActionSpec)> {
        self.actions.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// How alerts group into one incident.
#[derive(Debug, Clone)]
pub struct Grouping {
    pub key: ValueTemplate,
    pub window: Duration,
}

/// When containment may run without a human.
#[derive(Debug, Clone)]
pub struct AutoApprove {
    pub min_confidence: f64,
    pub severities: Vec<Severity>,
}

/// Durable retry policy of a step.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Retry {
    pub max_attempts: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
}

impl Retry {
    /// Delay before attempt `next_attempt` (2 = first retry): doubles from `backoff`, capped.
    pub fn delay(&self, next_attempt: u32) -> Duration {
        let exp = next_attempt.saturating_sub(2).min(30);
        self.backoff.saturating_mul(1u32 << exp).min(self.max_backoff)
    }
}

impl Default for Retry {
    fn default() -> Self {
        Retry { max_attempts: 3, backoff: Duration::from_secs(5), max_backoff: Duration::from_secs(300) }
    }
}

/// Who must approve a step.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ApprovalSpec {
    pub groups: Vec<String>,
    pub quorum: u32,
    #[serde(with = "duration_secs")]
    pub timeout: Duration,
    pub on_timeout: OnTimeout,
    pub escalate_to: Vec<String>,
}

mod duration_secs {
    pub fn serialize<S: serde::Serializer>(d: &std::time::Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::duration::format(*d))
    }
}

/// One compiled step.
#[derive(Debug)]
pub struct Step {
    pub id: String,
    pub name: Option<String>,
    pub phase: Phase,
    /// `connector.action` as written.
    pub action: String,
    pub connector: String,
    /// The action's name inside its connector.
    pub action_name: String,
    pub spec: ActionSpec,
    pub input: Input,
    pub when: Option<Condition>,
    pub foreach: Option<ValueTemplate>,
    pub retry: Retry,
    pub timeout: Option<Duration>,
    pub on_error: OnError,
    pub approval: Option<ApprovalSpec>,
    pub revert_after: Option<Duration>,
    /// Where the step starts in the file.
    pub line: u64,
}

/// A checked playbook, ready to run. Shared between workers behind an `Arc`.
#[derive(Debug)]
pub struct Playbook {
    pub id: String,
    pub name: String,
    pub description: String,
    pub version: u32,
    /// SHA-256 of the file's bytes: runs pin this exact version.
    pub hash: String,
    /// The file's text, stored with runs so a run finishes on the version it started with.
    pub source: Arc<str>,
    pub path: String,
    pub priority: i32,
    pub sources: Vec<String>,
    pub rules: Vec<String>,
    pub when: Option<Condition>,
    pub group: Option<Grouping>,
    pub auto_approve: Option<AutoApprove>,
    pub vars: Map<String, Value>,
    pub steps: Vec<Step>,
    pub templates: Templates,
}

impl Playbook {
    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }

    /// Does this playbook's source/rule filter accept the alert? (`when` is evaluated separately,
    /// because it needs the template context.)
    pub fn accepts(&self, source: &str, rule: Option<&str>) -> bool {
        let source_ok = self.sources.is_empty() || self.sources.iter().any(|s| s == source);
        let rule_ok = self.rules.is_empty()
            || rule.is_some_and(|r| {
                self.rules.iter().any(|p| match p.strip_suffix('*') {
                    Some(prefix) => r.starts_with(prefix),
                    None => p == r,
                })
            });
        source_ok && rule_ok
    }
}
