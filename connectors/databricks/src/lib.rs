//! The Databricks connector: containment and investigation actions against Databricks
//! workspaces and the account console, and the Statement Execution client the engine's
//! detection poller uses.
//!
//! - `config`: `[connectors.databricks]` (workspaces, account, egress IPs, limits, rotations).
//! - `client`: the one HTTP layer (auth, OAuth token cache, rate limit, retries).
//! - `error`: Databricks error bodies in every documented shape.
//! - `sql`: Statement Execution (`Databricks::run_statement`) — public for the engine.
//! - `actions`: the actions playbooks call (`databricks.<action>`).
//! - `localsql` (feature `local-sql`): the local SQL engine — the system tables in an
//!   in-memory SQLite database and a translator of the Databricks SQL subset detections use.
//!   `floodgate detections test --events` and `floodgate ingest audit-logs` run detections on it.
//! - `sim` (feature `sim`, which includes `local-sql`): a local Databricks for tests and the
//!   demo, answering SQL with the local engine. The product never depends on it.
//!
//! This crate never imports the engine, never logs or stores a secret (tokens, client secrets,
//! rotated OAuth secrets), and never puts a value from an alert into SQL text.
//!
//! ## How the engine uses it
//! ```text
//! // The [connectors.databricks] table, converted to JSON:
//! let dbx = floodgate_databricks::Databricks::from_config(&table)?;
//! let result = dbx
//!     .run_statement(Some("prod"), "SELECT ... WHERE event_time > :since", &[SqlParam::timestamp("since", t)])
//!     .await?;
//! // Registered as a connector:
//! let kind: &dyn ConnectorKind = &floodgate_databricks::DatabricksKind;
//! ```

mod actions;
mod client;
pub mod config;
pub mod error;
pub mod net;
pub mod sql;

#[cfg(feature = "local-sql")]
pub mod localsql;
#[cfg(feature = "sim")]
pub mod sim;

#[cfg(all(test, feature = "sim"))]
mod tests;

pub use config::Config;
pub use sql::{Column, QueryResult, SqlParam, SqlType, StatementOptions};

use client::Target;
use floodgate_sdk::{
    ActionCall, ActionError, ActionOutput, ActionSpec, BuildError, CallContext, Connector, ConnectorKind, Plan,
};
use serde_json::Value;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Registers the connector with the engine (`databricks.<action>` in playbooks).
pub struct DatabricksKind;

impl ConnectorKind for DatabricksKind {
    fn name(&self) -> &'static str {
        config::CONNECTOR
    }

    fn actions(&self) -> Vec<ActionSpec> {
        actions::specs()
    }

    fn build(&self, config: Option<&Value>) -> Result<Arc<dyn Connector>, BuildError> {
        Ok(Arc::new(match config {
            Some(v) => Databricks::from_config(v)?,
            None => Databricks::unconfigured(),
        }))
    }
}

/// A configured Databricks connector: every workspace and the account console, each with its
/// own HTTP client, rate limit and token cache.
pub struct Databricks {
    pub(crate) config: Config,
    workspaces: Vec<Target>,
    account: Option<Target>,
    /// Serialises changes to one block list within this process, so two steps cannot both
    /// create the floodgate list (the label lookup is the cross-process guard).
    list_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

impl Databricks {
    /// Builds the connector from its `[connectors.databricks]` table (as JSON).
    pub fn from_config(config: &Value) -> Result<Databricks, BuildError> {
        Ok(Self::from_checked(Config::from_json(config)?))
    }

    /// The connector without configuration: plans show placeholder hosts, execution refuses.
    pub fn unconfigured() -> Databricks {
        Self::from_checked(Config::placeholder())
    }

    fn from_checked(config: Config) -> Databricks {
        let workspaces = config.workspaces.iter().map(|w| Target::workspace(w, &config.http)).collect();
        let account = config.account.as_ref().map(|a| Target::account(a, &config.http));
        Databricks { config, workspaces, account, list_locks: Mutex::new(HashMap::new()) }
    }

    /// The checked configuration.
    pub fn config(&self) -> &Config {
        &self.config
    }

    pub(crate) fn ensure_configured(&self) -> Result<(), ActionError> {
        if self.config.configured { Ok(()) } else { Err(ActionError::not_configured(config::CONNECTOR)) }
    }

    /// A workspace by configured name or numeric id; `None` is the default workspace.
    pub(crate) fn workspace_target(&self, name_or_id: Option<&str>) -> Result<&Target, ActionError> {
        if !self.config.configured {
            return self.workspaces.first().ok_or_else(|| ActionError::not_configured(config::CONNECTOR));
        }
        let wanted = match name_or_id {
            Some(w) => w.to_string(),
            None => self.config.default_workspace.clone().ok_or_else(|| {
                ActionError::permanent(
                    "no_workspace",
                    format!(
                        "no workspace was named and [connectors.databricks] has no default_workspace (configured: {})",
                        self.config.workspace_names()
                    ),
                )
            })?,
        };
        let found = self
            .config
            .workspace(&wanted)
            .and_then(|w| self.workspaces.iter().find(|t| t.workspace_id() == Some(&w.workspace_id)));
        found.ok_or_else(|| {
            ActionError::permanent(
                "unknown_workspace",
                format!(
                    "workspace {wanted:?} is not configured (configured: {}); name one of them or add it under [connectors.databricks.workspaces]",
                    self.config.workspace_names()
                ),
            )
        })
    }

    /// The workspace a step acts on: its `workspace` input, else the alert's `workspace_id`,
    /// else `default_workspace`.
    ///
    /// An alert from a workspace that is not configured is an error rather than a fall-back to
    /// the default: acting on a different workspace than the one under attack (deactivating a
    /// same-named user there, say) would be worse than stopping. Account-level events carry
    /// workspace id `0` and do fall back to the default.
    pub(crate) fn select_workspace(&self, explicit: Option<&str>, ctx: &CallContext) -> Result<&Target, ActionError> {
        if explicit.is_some() || !self.config.configured {
            return self.workspace_target(explicit);
        }
        let from_alert = match ctx.alert.get("workspace_id") {
            Some(Value::String(s)) if !s.is_empty() && s != "0" => Some(s.clone()),
            Some(Value::Number(n)) if n.as_u64() != Some(0) => Some(n.to_string()),
            _ => None,
        };
        match from_alert {
            Some(id) if self.config.workspaces.iter().any(|w| w.workspace_id == id) => self.workspace_target(Some(&id)),
            Some(id) => Err(ActionError::permanent(
                "unknown_workspace",
                format!(
                    "the alert comes from workspace {id}, which is not configured (configured: {}); add it under [connectors.databricks.workspaces] or name a workspace in the step's `workspace` input",
                    self.config.workspace_names()
                ),
            )),
            None => self.workspace_target(None),
        }
    }

    pub(crate) fn account_target(&self) -> Result<&Target, ActionError> {
        self.account.as_ref().ok_or_else(|| {
            ActionError::permanent(
                "no_account",
                "this action is at account level but [connectors.databricks.account] is not configured",
            )
        })
    }

    pub(crate) fn warehouse_of(&self, target: &Target, explicit: Option<&str>) -> Result<String, ActionError> {
        if let Some(w) = explicit {
            if w.is_empty() || !w.chars().all(|c| c.is_ascii_alphanumeric()) {
                return Err(ActionError::invalid_input(format!("warehouse_id {w:?} is not a warehouse id")));
            }
            return Ok(w.to_string());
        }
        match &target.kind {
            client::TargetKind::Workspace { warehouse_id: Some(w), .. } => Ok(w.clone()),
            client::TargetKind::Workspace { name, .. } => Err(ActionError::permanent(
                "no_warehouse",
                format!("workspace {name} has no warehouse_id in [connectors.databricks.workspaces.{name}]"),
            )),
            client::TargetKind::Account { .. } => Err(ActionError::permanent(
                "no_warehouse",
                "SQL runs on a workspace warehouse, not on the account console",
            )),
        }
    }

    pub(crate) fn list_lock(&self, key: &str) -> Arc<tokio::sync::Mutex<()>> {
        let mut locks = self.list_locks.lock().unwrap_or_else(|p| p.into_inner());
        locks.entry(key.to_string()).or_default().clone()
    }
}

#[async_trait::async_trait]
impl Connector for Databricks {
    fn name(&self) -> &str {
        config::CONNECTOR
    }

    fn actions(&self) -> Vec<ActionSpec> {
        actions::specs()
    }

    fn plan(&self, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
        actions::plan(self, call)
    }

    async fn execute(&self, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
        actions::execute(self, call).await
    }

    async fn revert(&self, call: &ActionCall<'_>, revert_state: &Value) -> Result<ActionOutput, ActionError> {
        actions::revert(self, call, revert_state).await
    }

    fn plan_revert(&self, call: &ActionCall<'_>, revert_state: &Value) -> Result<Plan, ActionError> {
        actions::plan_revert(self, call, revert_state)
    }

    fn default_timeout(&self) -> Duration {
        // A statement may wait for a warehouse to start; rotation verifies a new secret.
        self.config.sql.timeout + Duration::from_secs(60)
    }
}
