//! The actions playbooks call as `databricks.<name>`: their specs (input schema, risk class,
//! revertibility, idempotency) and dispatch to one module per family.
//!
//! Every action builds its requests with the same functions in `plan()` and `execute()`, so
//! what an approver sees is what is sent. `plan()` never does I/O: where `execute` first reads
//! state (the current block list, the current settings), the plan shows those reads and the
//! write with placeholders for what only the read can tell.

mod common;
mod compute;
mod exports;
mod ip_acl;
mod principals;
mod query;
mod rotate;

use crate::Databricks;
use floodgate_sdk::{ActionCall, ActionError, ActionOutput, ActionSpec, Plan, RiskClass, input_schema};
use serde_json::Value;

pub(crate) fn specs() -> Vec<ActionSpec> {
    vec![
        ActionSpec::new(
            "ip_access_list.block",
            "Add IPv4 addresses/CIDR ranges to floodgate's BLOCK list (workspace or account)",
            RiskClass::Contain,
            input_schema::<ip_acl::BlockInput>(),
        )
        .revertible()
        .idempotency(
            "the list is found by its label before it is created; the values this step added are \
             recorded in refs before the write, so a retry adds nothing twice and revert removes exactly them",
        ),
        ActionSpec::new(
            "ip_access_list.unblock",
            "Remove IPv4 addresses/CIDR ranges from floodgate's BLOCK list",
            RiskClass::Contain,
            input_schema::<ip_acl::UnblockInput>(),
        )
        .idempotency("removing values that are absent changes nothing"),
        ActionSpec::new(
            "exports.disable",
            "Turn off notebook export, results download, table clipboard, DBFS browser and SQL results download",
            RiskClass::Contain,
            input_schema::<exports::ExportsInput>(),
        )
        .revertible()
        .idempotency(
            "sets values (not toggles); the settings found before the first attempt are kept in refs, \
             so a retry never records \"false\" as the value to restore",
        ),
        ActionSpec::new(
            "service_principal.rotate_secret",
            "Create a new OAuth secret for a service principal, deliver and verify it, then delete the old ones",
            RiskClass::Destructive,
            input_schema::<rotate::RotateInput>(),
        )
        .idempotency(
            "checkpoints (secret ids and stage only, never the value) in refs; a resumed rotation \
             deletes a new secret whose value was lost before delivery and creates another, and \
             deletes old secrets only after the new one is delivered and verified",
        ),
        ActionSpec::new(
            "user.deactivate",
            "Deactivate a user (SCIM active=false) in a workspace or the account",
            RiskClass::Contain,
            input_schema::<principals::DeactivateInput>(),
        )
        .revertible()
        .idempotency("sets active=false; the state before the first attempt is kept in refs for revert"),
        ActionSpec::new(
            "tokens.revoke",
            "Revoke every personal access token of a user or service principal (token management)",
            RiskClass::Destructive,
            input_schema::<principals::RevokeInput>(),
        )
        .idempotency("deleting a token that is already gone is treated as done; revoked ids are kept in refs"),
        ActionSpec::new(
            "cluster.terminate",
            "Terminate a cluster",
            RiskClass::Destructive,
            input_schema::<compute::TerminateInput>(),
        )
        .idempotency("terminating a terminated cluster is a no-op"),
        ActionSpec::new(
            "sql.query",
            "Run a read-only SQL statement with named parameters and return its rows",
            RiskClass::Read,
            input_schema::<query::SqlQueryInput>(),
        )
        .idempotency("reads only"),
        ActionSpec::new(
            "investigate.user_activity",
            "Recent audit events of a user (system.access.audit)",
            RiskClass::Read,
            input_schema::<query::UserActivityInput>(),
        )
        .idempotency("reads only"),
        ActionSpec::new(
            "investigate.ip_activity",
            "Recent audit events from a source IP (system.access.audit)",
            RiskClass::Read,
            input_schema::<query::IpActivityInput>(),
        )
        .idempotency("reads only"),
        ActionSpec::new(
            "investigate.sensitive_tables",
            "Tables a user touched that hold classified sensitive data (system.data_classification.results)",
            RiskClass::Read,
            input_schema::<query::SensitiveTablesInput>(),
        )
        .idempotency("reads only"),
        ActionSpec::new(
            "investigate.table_lineage",
            "Reads and writes of a table, upstream and downstream (system.access.table_lineage)",
            RiskClass::Read,
            input_schema::<query::TableLineageInput>(),
        )
        .idempotency("reads only"),
        ActionSpec::new(
            "investigate.privileges",
            "Principals holding privileges on a catalog, schema or table (information_schema)",
            RiskClass::Read,
            input_schema::<query::PrivilegesInput>(),
        )
        .idempotency("reads only"),
    ]
}

fn unknown(action: &str) -> ActionError {
    ActionError::permanent("unknown_action", format!("databricks has no action {action:?}"))
}

pub(crate) fn plan(db: &Databricks, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
    match call.action {
        "ip_access_list.block" => ip_acl::plan_block(db, call),
        "ip_access_list.unblock" => ip_acl::plan_unblock(db, call),
        "exports.disable" => exports::plan(db, call),
        "service_principal.rotate_secret" => rotate::plan(db, call),
        "user.deactivate" => principals::plan_deactivate(db, call),
        "tokens.revoke" => principals::plan_revoke(db, call),
        "cluster.terminate" => compute::plan(db, call),
        "sql.query" => query::plan_sql(db, call),
        a if a.starts_with("investigate.") => query::plan_investigate(db, call),
        other => Err(unknown(other)),
    }
}

pub(crate) async fn execute(db: &Databricks, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
    if !specs().iter().any(|s| s.name == call.action) {
        return Err(unknown(call.action));
    }
    db.ensure_configured()?;
    match call.action {
        "ip_access_list.block" => ip_acl::execute_block(db, call).await,
        "ip_access_list.unblock" => ip_acl::execute_unblock(db, call).await,
        "exports.disable" => exports::execute(db, call).await,
        "service_principal.rotate_secret" => rotate::execute(db, call).await,
        "user.deactivate" => principals::execute_deactivate(db, call).await,
        "tokens.revoke" => principals::execute_revoke(db, call).await,
        "cluster.terminate" => compute::execute(db, call).await,
        "sql.query" => query::execute_sql(db, call).await,
        _ => query::execute_investigate(db, call).await,
    }
}

fn not_revertible(action: &str) -> ActionError {
    ActionError::permanent("not_revertible", format!("databricks.{action} cannot be reverted"))
}

pub(crate) async fn revert(db: &Databricks, call: &ActionCall<'_>, state: &Value) -> Result<ActionOutput, ActionError> {
    db.ensure_configured()?;
    match call.action {
        "ip_access_list.block" => ip_acl::revert_block(db, call, state).await,
        "exports.disable" => exports::revert(db, state).await,
        "user.deactivate" => principals::revert_deactivate(db, state).await,
        other => Err(not_revertible(other)),
    }
}

pub(crate) fn plan_revert(db: &Databricks, call: &ActionCall<'_>, state: &Value) -> Result<Plan, ActionError> {
    match call.action {
        "ip_access_list.block" => ip_acl::plan_revert_block(db, state),
        "exports.disable" => exports::plan_revert(db, state),
        "user.deactivate" => principals::plan_revert_deactivate(db, state),
        other => Err(not_revertible(other)),
    }
}
