//! Pieces every action family shares: the workspace/account level of a step, where a step acts,
//! refs checkpoints, and plans built from the very requests `execute` sends.

use crate::Databricks;
use crate::client::Target;
use floodgate_sdk::http::Request;
use floodgate_sdk::{ActionCall, ActionError, Plan};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Whether an action works on a workspace or on the account console.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// A workspace: the step's `workspace` input, else the alert's workspace, else the default.
    #[default]
    Workspace,
    /// The account console ([connectors.databricks.account]).
    Account,
}

/// One string or a list of strings (a template often renders a single alert entity).
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum OneOrMany {
    One(String),
    Many(Vec<String>),
}

impl OneOrMany {
    pub fn into_vec(self) -> Vec<String> {
        match self {
            OneOrMany::One(s) => vec![s],
            OneOrMany::Many(v) => v,
        }
    }
}

/// The target of a step at `level`.
pub fn target<'a>(
    db: &'a Databricks,
    call: &ActionCall<'_>,
    level: Level,
    workspace: Option<&str>,
) -> Result<&'a Target, ActionError> {
    match level {
        Level::Account => {
            if workspace.is_some() {
                return Err(ActionError::invalid_input("`workspace` cannot be combined with `level: account`"));
            }
            db.account_target()
        }
        Level::Workspace => db.select_workspace(workspace, call.ctx),
    }
}

/// How a revert finds the target again: by workspace id (names may change in config).
pub fn target_state(t: &Target) -> Value {
    match t.workspace_id() {
        Some(id) => json!({"level": "workspace", "workspace_id": id}),
        None => json!({"level": "account", "account_id": t.account_id()}),
    }
}

pub fn target_from_state<'a>(db: &'a Databricks, state: &Value) -> Result<&'a Target, ActionError> {
    match state.get("level").and_then(Value::as_str) {
        Some("account") => db.account_target(),
        Some("workspace") => {
            let id = state.get("workspace_id").and_then(Value::as_str).ok_or_else(|| bad_state("workspace_id"))?;
            db.workspace_target(Some(id))
        }
        _ => Err(bad_state("level")),
    }
}

pub fn bad_state(field: &str) -> ActionError {
    ActionError::permanent(
        "bad_revert_state",
        format!("the recorded revert state has no valid {field:?}; it was not written by this connector"),
    )
}

/// A plan listing `requests` as `execute` sends them (secrets redacted by `planned()`).
pub fn plan_of(summary: String, requests: &[&Request]) -> Plan {
    Plan { summary, requests: requests.iter().map(|r| r.planned()).collect() }
}

/// Reads this step's checkpoint in `namespace` (keyed by the idempotency key).
pub async fn load_ref<T: DeserializeOwned>(call: &ActionCall<'_>, namespace: &str) -> Result<Option<T>, ActionError> {
    match call.refs.get(namespace, call.idempotency_key).await? {
        None => Ok(None),
        Some(v) => serde_json::from_value(v).map(Some).map_err(|e| {
            ActionError::permanent(
                "bad_refs",
                format!("the checkpoint in refs {namespace:?} for this step is unreadable: {e}"),
            )
        }),
    }
}

/// Commits this step's checkpoint (never secrets).
pub async fn save_ref<T: Serialize>(call: &ActionCall<'_>, namespace: &str, value: &T) -> Result<(), ActionError> {
    let v = serde_json::to_value(value)
        .map_err(|e| ActionError::permanent("bad_refs", format!("cannot encode checkpoint: {e}")))?;
    call.refs.put(namespace, call.idempotency_key, &v).await
}

/// Percent-encodes a query value.
pub fn q(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
}

/// Percent-encodes one path segment.
pub fn seg(v: &str) -> String {
    url::form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>().replace('+', "%20")
}
