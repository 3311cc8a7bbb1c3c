//! The playbook exactly as its author wrote it.
//!
//! These types are the single source of the format: serde reads them and schemars derives the
//! JSON Schema that `floodgate schema` prints, editors autocomplete from, and `validate` checks
//! against. Doc comments here become the schema's descriptions, so they are written for
//! playbook authors. Nothing here is checked beyond shape: `compile` gives it meaning.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// A floodgate playbook: what alerts it handles, how they group into incidents, and the steps
/// that walk an incident through detection, triage, investigation, containment and remediation.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "floodgate playbook")]
pub struct RawPlaybook {
    /// Stable identifier (lowercase letters, digits, `-`, `_`). Runs and incidents refer to it.
    #[schemars(pattern(r"^[a-z0-9][a-z0-9_-]{0,62}$"))]
    pub id: String,
    /// Human name, shown to responders.
    #[schemars(length(min = 1, max = 200))]
    pub name: String,
    /// What this playbook is for and when it runs.
    #[serde(default)]
    pub description: String,
    /// The author's version number. floodgate also pins each run to the file's content hash.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub version: u32,
    /// Which alerts start this playbook. When several playbooks match, the highest `priority`
    /// wins (then the lowest `id`).
    #[serde(rename = "match")]
    pub matcher: RawMatch,
    /// Higher wins when several playbooks match the same alert. Default 0.
    #[serde(default)]
    pub priority: i32,
    /// How alerts group into one incident. Without it, every alert opens its own incident.
    #[serde(default)]
    pub group: Option<RawGroup>,
    /// Lets containment run without a human for high-confidence alerts (still within the
    /// global policy and its rate limits).
    #[serde(default)]
    pub auto_approve: Option<RawAutoApprove>,
    /// Initial run variables (`vars.<name>` in templates); `core.set` changes them.
    #[serde(default)]
    pub vars: Map<String, Value>,
    /// The steps, by phase. Phases run in order: detection, triage, investigation,
    /// containment, remediation.
    pub steps: RawPhases,
}

fn one() -> u32 {
    1
}

/// One value or a list of values.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn to_vec(&self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s.clone()],
            OneOrMany::Many(v) => v.clone(),
        }
    }
}

/// Which alerts this playbook handles. Every given criterion must hold.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawMatch {
    /// Source name(s) from the config's `[[sources]]` (or `databricks-detection`).
    #[serde(default)]
    pub source: Option<OneOrMany>,
    /// Rule or detection id(s). A trailing `*` matches a prefix (`audit:accounts.*`).
    #[serde(default)]
    pub rule: Option<OneOrMany>,
    /// A condition on the alert (tera expression), e.g. `alert.severity in ["high", "critical"]`.
    #[serde(default)]
    pub when: Option<String>,
}

/// How alerts join an open incident.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawGroup {
    /// Template giving the grouping key, e.g. `{{ alert.entities.user }}`. Alerts with the same
    /// key join the same open incident.
    #[schemars(length(min = 1))]
    pub key: String,
    /// How long after an incident opens new alerts may still join it, e.g. `1h`.
    #[schemars(pattern(r"^([0-9]+(ms|s|m|h|d|w))+$"))]
    pub window: String,
}

/// Alert severities, lowest first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Info,
    Low,
    Medium,
    High,
    Critical,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::Info => "info",
            Severity::Low => "low",
            Severity::Medium => "medium",
            Severity::High => "high",
            Severity::Critical => "critical",
        }
    }
    pub fn parse(s: &str) -> Option<Severity> {
        Some(match s.trim().to_ascii_lowercase().as_str() {
            "info" | "informational" => Severity::Info,
            "low" => Severity::Low,
            "medium" | "moderate" => Severity::Medium,
            "high" => Severity::High,
            "critical" => Severity::Critical,
            _ => return None,
        })
    }
}

/// When containment may run without a human.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAutoApprove {
    /// The alert's confidence (0.0–1.0) must be at least this.
    #[schemars(range(min = 0.0, max = 1.0))]
    pub min_confidence: f64,
    /// The alert's severity must be one of these. Default: high and critical.
    #[serde(default)]
    pub severities: Option<Vec<Severity>>,
}

/// Steps by phase; each phase is a list of steps run in order.
#[derive(Debug, Clone, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPhases {
    #[serde(default)]
    pub detection: Vec<RawStep>,
    #[serde(default)]
    pub triage: Vec<RawStep>,
    #[serde(default)]
    pub investigation: Vec<RawStep>,
    #[serde(default)]
    pub containment: Vec<RawStep>,
    #[serde(default)]
    pub remediation: Vec<RawStep>,
}

/// What to do when a step fails for good.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Stop the run as failed (default).
    #[default]
    Fail,
    /// Record the failure and go on with the next step.
    Continue,
}

/// One step: call one action with templated inputs.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    /// Unique in the playbook; later steps read `steps.<id>.output`.
    #[schemars(pattern(r"^[a-z][a-z0-9_]{0,62}$"))]
    pub id: String,
    /// Human description shown on the timeline and in approval requests.
    #[serde(default)]
    pub name: Option<String>,
    /// `<connector>.<action>`, e.g. `core.log` or `databricks.ip_access_list.block`.
    #[schemars(pattern(r"^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)+$"))]
    pub action: String,
    /// The action's inputs. Strings are templates; maps and lists keep their structure. A
    /// string that is exactly `{{ expression }}` keeps the expression's type (list, number...).
    #[serde(default, rename = "with")]
    pub with: Map<String, Value>,
    /// Run the step only when this condition holds; otherwise it is skipped.
    #[serde(default)]
    pub when: Option<String>,
    /// Run the step once per item of this list (a `{{ expression }}` or a literal list); the
    /// item is `item` in templates. The output is the list of each item's output.
    #[serde(default)]
    pub foreach: Option<Value>,
    /// Retries after retryable errors (429, 5xx, timeouts), kept durably. Without it: 3
    /// attempts, waiting 5s then 10s.
    #[serde(default)]
    pub retry: Option<RawRetry>,
    /// Bound on one attempt, e.g. `30s`. Default: the connector's own (5 minutes).
    #[serde(default)]
    #[schemars(pattern(r"^([0-9]+(ms|s|m|h|d|w))+$"))]
    pub timeout: Option<String>,
    /// `fail` (default) stops the run when the step fails for good; `continue` goes on.
    #[serde(default)]
    pub on_error: OnError,
    /// Require people to approve before the step runs.
    #[serde(default)]
    pub approval: Option<RawApproval>,
    /// Undo the action automatically after this long (temporary containment), e.g. `24h`.
    /// Only for actions that can be reverted.
    #[serde(default)]
    #[schemars(pattern(r"^([0-9]+(ms|s|m|h|d|w))+$"))]
    pub revert_after: Option<String>,
}

/// Durable retries of a step.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetry {
    /// Total attempts including the first (1–50). Default 3.
    #[serde(default = "three")]
    #[schemars(range(min = 1, max = 50))]
    pub max_attempts: u32,
    /// Wait before the first retry; doubles each time. Default `5s`.
    #[serde(default)]
    #[schemars(pattern(r"^([0-9]+(ms|s|m|h|d|w))+$"))]
    pub backoff: Option<String>,
    /// Longest wait between retries. Default `5m`.
    #[serde(default)]
    #[schemars(pattern(r"^([0-9]+(ms|s|m|h|d|w))+$"))]
    pub max_backoff: Option<String>,
}

fn three() -> u32 {
    3
}

/// What happens when nobody decides in time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum OnTimeout {
    /// The step does not run (default).
    #[default]
    Deny,
    /// The step runs (only where the global policy allows approval by timeout).
    Approve,
    /// Ask the next group in `escalate_to`, with a new deadline and a notification.
    Escalate,
}

/// Who must approve, how many, and how long they have.
#[derive(Debug, Clone, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApproval {
    /// Approver groups from the config; any member may vote.
    #[schemars(length(min = 1))]
    pub groups: Vec<String>,
    /// Distinct approvals needed. Default 1.
    #[serde(default = "one")]
    #[schemars(range(min = 1))]
    pub quorum: u32,
    /// How long approvers have, e.g. `30m`. Default `1h`.
    #[serde(default)]
    #[schemars(pattern(r"^([0-9]+(ms|s|m|h|d|w))+$"))]
    pub timeout: Option<String>,
    /// `deny` (default), `approve` or `escalate`.
    #[serde(default)]
    pub on_timeout: OnTimeout,
    /// Groups asked in turn when `on_timeout: escalate`, each with a fresh `timeout`.
    #[serde(default)]
    pub escalate_to: Vec<String>,
}
