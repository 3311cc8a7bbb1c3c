//! Crate tests: the connector against the simulator on 127.0.0.1, as the engine would call it.
//!
//! Crashes are simulated the way they happen: an `execute` future is dropped mid-flight (a
//! `timeout` around a call the simulator never answers), or a refs write fails, and then the
//! step is executed again with the same idempotency key and the same refs.

mod actions;
mod http;
mod ip_acl;
mod rotate;
mod sim_api;
mod sql;
mod sql_subset;

use crate::sim::DatabricksSim;
use crate::{Databricks, DatabricksKind};
use floodgate_sdk::{
    ActionCall, ActionError, ActionOutput, CallContext, Connector, ConnectorKind, MemoryRefStore, Plan, RefStore,
};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

static DIRS: AtomicU32 = AtomicU32::new(0);

/// A fresh private directory for one test's secret files.
pub(crate) fn temp_dir() -> PathBuf {
    let n = DIRS.fetch_add(1, Ordering::SeqCst);
    let dir = std::env::temp_dir().join(format!("fg-dbx-test-{}-{n}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A `file:` secret reference holding `value`.
pub(crate) fn secret_file(dir: &std::path::Path, name: &str, value: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, value).unwrap();
    format!("file:{}", p.display())
}

/// The connector configured against one simulator: workspace `main` with a PAT, the account
/// with OAuth M2M. Fast retries so tests do not sleep.
pub(crate) fn base_config(sim: &DatabricksSim, dir: &std::path::Path) -> Value {
    let (app, secret) = sim.floodgate_client();
    json!({
        "default_workspace": "main",
        "rate_limit_per_second": 500,
        "retry_base_delay_ms": 5,
        "max_retry_wait_seconds": 5,
        "http_timeout_seconds": 10,
        "workspaces": {
            "main": {
                "host": sim.url(),
                "workspace_id": sim.workspace_id(),
                "warehouse_id": sim.warehouse_id(),
                "auth": {"type": "pat", "token": secret_file(dir, "pat", sim.admin_pat())},
            }
        },
        "account": {
            "host": sim.url(),
            "account_id": sim.account_id(),
            "auth": {"type": "oauth-m2m", "client_id": app, "client_secret": secret_file(dir, "client-secret", secret)},
        },
    })
}

pub(crate) struct Env {
    pub sim: DatabricksSim,
    pub dbx: Arc<Databricks>,
    pub refs: Arc<MemoryRefStore>,
    pub ctx: CallContext,
}

impl Env {
    pub async fn new() -> Env {
        Self::with(|_, _| {}).await
    }

    /// Starts a simulator and builds the connector from `base_config`, changed by `edit`.
    pub async fn with(edit: impl FnOnce(&mut Value, &DatabricksSim)) -> Env {
        let sim = DatabricksSim::start().await.unwrap();
        let dir = temp_dir();
        let mut cfg = base_config(&sim, &dir);
        edit(&mut cfg, &sim);
        let dbx = Arc::new(Databricks::from_config(&cfg).unwrap_or_else(|e| panic!("config: {e}")));
        let ctx = CallContext {
            run_id: "run-1".into(),
            step_id: "step-1".into(),
            attempt: 1,
            alert: json!({"id": "a-1", "workspace_id": sim.workspace_id(), "entities": {}}),
            ..Default::default()
        };
        Env { sim, dbx, refs: Arc::new(MemoryRefStore::new()), ctx }
    }

    pub async fn exec(&self, action: &str, input: Value) -> Result<ActionOutput, ActionError> {
        self.exec_key(action, input, "key-1").await
    }

    pub async fn exec_key(&self, action: &str, input: Value, key: &str) -> Result<ActionOutput, ActionError> {
        exec_with(self.dbx.as_ref(), action, &input, key, &self.ctx, self.refs.as_ref()).await
    }

    pub async fn revert(&self, action: &str, input: Value, state: &Value) -> Result<ActionOutput, ActionError> {
        let call = ActionCall {
            action,
            input: &input,
            idempotency_key: "revert-key-1",
            ctx: &self.ctx,
            refs: self.refs.as_ref(),
        };
        self.dbx.revert(&call, state).await
    }

    pub fn plan(&self, action: &str, input: Value) -> Result<Plan, ActionError> {
        plan_with(self.dbx.as_ref(), action, &input, &self.ctx)
    }

    /// Requests the simulator answered itself (not injected faults), by method and path.
    pub fn served(&self, method: &str, path: &str) -> usize {
        self.sim.calls().successful(method, path).len()
    }

    pub fn acct(&self, rest: &str) -> String {
        format!("/api/2.0/accounts/{}{rest}", self.sim.account_id())
    }
}

pub(crate) async fn exec_with(
    c: &dyn Connector,
    action: &str,
    input: &Value,
    key: &str,
    ctx: &CallContext,
    refs: &dyn RefStore,
) -> Result<ActionOutput, ActionError> {
    let call = ActionCall { action, input, idempotency_key: key, ctx, refs };
    c.execute(&call).await
}

pub(crate) fn plan_with(
    c: &dyn Connector,
    action: &str,
    input: &Value,
    ctx: &CallContext,
) -> Result<Plan, ActionError> {
    let refs = MemoryRefStore::new();
    let call = ActionCall { action, input, idempotency_key: "plan-key", ctx, refs: &refs };
    c.plan(&call)
}

/// The unconfigured connector (as `simulate` without a config builds it).
pub(crate) fn unconfigured() -> Arc<dyn Connector> {
    DatabricksKind.build(None).unwrap()
}
