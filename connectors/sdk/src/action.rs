use crate::{ActionError, BuildError, RefStore, RiskClass};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::sync::Arc;
use std::time::Duration;

/// What one action of a connector is, as the engine and `floodgate validate` see it.
#[derive(Debug, Clone, Serialize)]
pub struct ActionSpec {
    /// The action's name inside its connector, e.g. `ip_access_list.block`. The playbook writes
    /// `<connector>.<name>`.
    pub name: String,
    /// One line for docs, `floodgate simulate` and approval messages.
    pub summary: String,
    pub risk: RiskClass,
    /// JSON Schema (draft 2020-12) of the rendered `with:` input.
    pub input_schema: Value,
    /// Whether `revert()` can undo it (temporary containment via `revert_after`).
    pub revertible: bool,
    /// True when the action has no effect outside floodgate (log, set variables). The engine
    /// may then run it without committing an intent first: repeating it after a crash is harmless.
    pub pure: bool,
    /// How a repeated call with the same idempotency key is made harmless (for docs and review).
    pub idempotency: String,
}

impl ActionSpec {
    pub fn new(name: &str, summary: &str, risk: RiskClass, input_schema: Value) -> Self {
        ActionSpec {
            name: name.to_string(),
            summary: summary.to_string(),
            risk,
            input_schema,
            revertible: false,
            pure: false,
            idempotency: String::new(),
        }
    }
    pub fn revertible(mut self) -> Self {
        self.revertible = true;
        self
    }
    pub fn pure(mut self) -> Self {
        self.pure = true;
        self
    }
    pub fn idempotency(mut self, how: &str) -> Self {
        self.idempotency = how.to_string();
        self
    }
}

/// The JSON Schema of a connector's input type, as `ActionSpec::input_schema` expects it.
pub fn input_schema<T: schemars::JsonSchema>() -> Value {
    serde_json::to_value(schemars::schema_for!(T)).unwrap_or(Value::Bool(true))
}

/// Who is calling and why: identities of the run and step, the triggering alert (normalized,
/// never secrets), and links back to floodgate for messages and tickets.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CallContext {
    pub run_id: String,
    pub step_id: String,
    pub incident_id: String,
    pub playbook_id: String,
    /// 1 on the first try; grows with every retry, including one after a crash.
    pub attempt: u32,
    /// The normalized alert that started the run (`id`, `source`, `title`, `severity`,
    /// `entities`, `workspace_id`, ...).
    pub alert: Value,
    /// The incident as templates see it (`id`, `title`, `severity`, `alert_count`, ...).
    pub incident: Value,
    /// Absolute URL of the incident in floodgate's console, when the server knows its public URL.
    pub incident_url: Option<String>,
}

/// One call of one action.
pub struct ActionCall<'a> {
    /// The action name inside the connector (`ip_access_list.block`).
    pub action: &'a str,
    /// The rendered `with:` input.
    pub input: &'a Value,
    /// Stable across retries and crashes of the same step (and foreach item): vendors use it
    /// (or something derived from it) to make a repeated call take effect once.
    pub idempotency_key: &'a str,
    pub ctx: &'a CallContext,
    /// Durable references the connector keeps between calls (ticket keys, message ids,
    /// rotation checkpoints). Never secrets.
    pub refs: &'a dyn RefStore,
}

impl ActionCall<'_> {
    /// Deserializes the input into the action's typed input struct, naming the problem on error.
    pub fn parse_input<T: serde::de::DeserializeOwned>(&self) -> Result<T, ActionError> {
        serde_json::from_value(self.input.clone())
            .map_err(|e| ActionError::permanent("invalid_input", format!("invalid input for {}: {e}", self.action)))
    }
}

/// How a step can end its run early.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "resolution", rename_all = "snake_case")]
pub enum EndRun {
    /// Triage decided the alert is benign: close the incident and stop.
    ClosedBenign { reason: String },
}

/// What an action returns.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ActionOutput {
    /// Visible to later steps as `steps.<id>.output`.
    pub output: Value,
    /// What `revert()` needs to undo exactly this call (e.g. the IPs this step added).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revert_state: Option<Value>,
    /// Messages for the incident timeline.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
    /// Run variables to set (`vars.<name>` in later templates).
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub set_vars: Map<String, Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_run: Option<EndRun>,
}

impl ActionOutput {
    pub fn new(output: Value) -> Self {
        ActionOutput { output, ..Default::default() }
    }
    pub fn with_revert_state(mut self, state: Value) -> Self {
        self.revert_state = Some(state);
        self
    }
    pub fn with_note(mut self, note: impl Into<String>) -> Self {
        self.notes.push(note.into());
        self
    }
}

/// One request `execute` would send, secrets redacted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedRequest {
    pub method: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<Value>,
}

/// What an action would do, computed from its input and configuration alone, with no I/O.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// One sentence for people: "add 203.0.113.66 to block list floodgate-block in workspace 123".
    pub summary: String,
    pub requests: Vec<PlannedRequest>,
}

impl Plan {
    pub fn new(summary: impl Into<String>) -> Self {
        Plan { summary: summary.into(), requests: Vec::new() }
    }
    pub fn request(mut self, method: &str, url: impl Into<String>, body: Option<Value>) -> Self {
        self.requests.push(PlannedRequest { method: method.to_string(), url: url.into(), body });
        self
    }
}

/// A configured connector: one per `[connectors.<name>]` table (or built-in).
#[async_trait::async_trait]
pub trait Connector: Send + Sync {
    /// The prefix playbooks use: `databricks`, `jira`, `core`.
    fn name(&self) -> &str;

    fn actions(&self) -> Vec<ActionSpec>;

    /// What `execute` would send, without sending anything. Must not do I/O.
    fn plan(&self, call: &ActionCall<'_>) -> Result<Plan, ActionError>;

    /// Performs the action. Called again with the same idempotency key after a retryable
    /// error or a crash; it must then take effect at most once.
    async fn execute(&self, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError>;

    /// Undoes a successful `execute`, given the `revert_state` it returned. The call carries
    /// the original input and a new idempotency key for the revert itself.
    async fn revert(&self, call: &ActionCall<'_>, revert_state: &Value) -> Result<ActionOutput, ActionError> {
        let _ = revert_state;
        Err(ActionError::permanent("not_revertible", format!("{}.{} cannot be reverted", self.name(), call.action)))
    }

    /// What `revert` would send. Must not do I/O.
    fn plan_revert(&self, call: &ActionCall<'_>, revert_state: &Value) -> Result<Plan, ActionError> {
        let _ = revert_state;
        Err(ActionError::permanent("not_revertible", format!("{}.{} cannot be reverted", self.name(), call.action)))
    }

    /// A bound on one `execute` when the step sets no `timeout:`.
    fn default_timeout(&self) -> Duration {
        Duration::from_secs(300)
    }
}

/// Builds a connector from its configuration table. Registered once per connector crate.
pub trait ConnectorKind: Send + Sync {
    fn name(&self) -> &'static str;

    /// The actions, known without any configuration (for `validate` and `schema`).
    fn actions(&self) -> Vec<ActionSpec>;

    /// Builds the connector from its `[connectors.<name>]` table. `None` builds an
    /// unconfigured connector whose `plan()` works with placeholder hosts (for `simulate`
    /// without a config) and whose `execute()` fails with `not_configured`.
    fn build(&self, config: Option<&Value>) -> Result<Arc<dyn Connector>, BuildError>;
}
