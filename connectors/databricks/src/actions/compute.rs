//! `cluster.terminate`: stop a cluster (`POST /api/2.1/clusters/delete`, which terminates and
//! keeps the configuration; permanent deletion is deliberately not offered). Terminating a
//! terminated cluster is a no-op at Databricks, so a retry is harmless.

use super::common::{plan_of, q, target_state};
use crate::Databricks;
use crate::client::Target;
use floodgate_sdk::http::{Replay, Request};
use floodgate_sdk::{ActionCall, ActionError, ActionOutput, Plan};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::json;

/// Input of `cluster.terminate`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TerminateInput {
    /// The cluster id, e.g. `0310-090000-abcd1234`.
    pub cluster_id: String,
    #[serde(default)]
    pub workspace: Option<String>,
}

#[derive(Deserialize)]
struct ClusterInfo {
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    cluster_name: Option<String>,
}

fn check_id(id: &str) -> Result<&str, ActionError> {
    let id = id.trim();
    if id.is_empty() || id.len() > 64 || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(ActionError::invalid_input(format!("{id:?} is not a cluster id")));
    }
    Ok(id)
}

fn get_request(t: &Target, id: &str) -> Request {
    Request::get(t.url(&format!("/api/2.1/clusters/get?cluster_id={}", q(id))))
}

fn delete_request(t: &Target, id: &str) -> Request {
    // Terminating twice is a no-op, so replaying after an unknown outcome is safe.
    Request::post(t.url("/api/2.1/clusters/delete")).json(json!({"cluster_id": id})).replay(Replay::Safe)
}

pub fn plan(db: &Databricks, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
    let input: TerminateInput = call.parse_input()?;
    let id = check_id(&input.cluster_id)?;
    let t = db.select_workspace(input.workspace.as_deref(), call.ctx)?;
    Ok(plan_of(format!("terminate cluster {id} in {}", t.describe()), &[&get_request(t, id), &delete_request(t, id)]))
}

pub async fn execute(db: &Databricks, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
    let input: TerminateInput = call.parse_input()?;
    let id = check_id(&input.cluster_id)?;
    let t = db.select_workspace(input.workspace.as_deref(), call.ctx)?;
    let before: ClusterInfo = t.call_json(&get_request(t, id)).await?;
    let previous = before.state.unwrap_or_else(|| "UNKNOWN".into());
    let name = before.cluster_name.unwrap_or_default();
    if matches!(previous.as_str(), "TERMINATED" | "TERMINATING") {
        return Ok(ActionOutput::new(json!({
            "target": target_state(t), "cluster_id": id, "cluster_name": name,
            "previous_state": previous, "state": previous,
        }))
        .with_note(format!("cluster {id} in {} was already {previous}", t.describe())));
    }
    t.call(&delete_request(t, id)).await?;
    let after: ClusterInfo = t.call_json(&get_request(t, id)).await?;
    let state = after.state.unwrap_or_else(|| "TERMINATING".into());
    Ok(ActionOutput::new(json!({
        "target": target_state(t), "cluster_id": id, "cluster_name": name,
        "previous_state": previous, "state": state,
    }))
    .with_note(format!("terminating cluster {id} ({name}) in {}", t.describe())))
}
