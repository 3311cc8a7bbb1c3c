//! `exports.disable`, `user.deactivate`, `tokens.revoke`, `cluster.terminate`, the action specs,
//! and plans of the unconfigured connector.

use super::{Env, plan_with, unconfigured};
use crate::DatabricksKind;
use floodgate_sdk::{CallContext, ConnectorKind, RiskClass};
use serde_json::{Value, json};

const EXPORT_KEYS: [&str; 4] =
    ["enableExportNotebook", "enableResultsDownloading", "enableNotebookTableClipboard", "enableDbfsFileBrowser"];

#[tokio::test]
async fn exports_are_disabled_and_revert_restores_what_was_there() {
    let env = Env::new().await;
    env.sim.set_workspace_conf("enableResultsDownloading", Some("true"));
    env.sim.set_workspace_conf("enableNotebookTableClipboard", Some("false"));
    env.sim.set_sql_results_download(Some(true));
    let out = env.exec("exports.disable", json!({})).await.unwrap();
    for k in EXPORT_KEYS {
        assert_eq!(env.sim.workspace_conf(k).as_deref(), Some("false"), "{k}");
    }
    assert_eq!(env.sim.sql_results_download(), Some(false));
    assert_eq!(out.output["previous"]["conf"]["enableResultsDownloading"], "true");
    assert_eq!(out.output["previous"]["conf"]["enableExportNotebook"], Value::Null);
    let patch = &env.sim.calls().successful("PATCH", "/api/2.0/settings/types/sql_results_download/names/default")[0];
    let body = patch.json().unwrap();
    assert_eq!(body["field_mask"], "boolean_val.value");
    assert_eq!(body["setting"]["etag"], "1", "the etag read is sent back");

    // The engine retries after a crash: the values to restore are still the original ones.
    let again = env.exec("exports.disable", json!({})).await.unwrap();
    assert_eq!(again.revert_state, out.revert_state);

    env.revert("exports.disable", json!({}), out.revert_state.as_ref().unwrap()).await.unwrap();
    assert_eq!(env.sim.workspace_conf("enableResultsDownloading").as_deref(), Some("true"));
    assert_eq!(env.sim.workspace_conf("enableNotebookTableClipboard").as_deref(), Some("false"));
    assert_eq!(env.sim.workspace_conf("enableExportNotebook").as_deref(), Some("true"), "unset restores its default");
    assert_eq!(env.sim.workspace_conf("enableDbfsFileBrowser").as_deref(), Some("false"), "unset restores its default");
    assert_eq!(env.sim.sql_results_download(), Some(true));
}

#[tokio::test]
async fn exports_without_the_typed_setting_change_workspace_conf_only() {
    let env = Env::new().await;
    env.sim.set_sql_results_download(None);
    let out = env.exec("exports.disable", json!({})).await.unwrap();
    assert_eq!(out.output["disabled"].as_array().unwrap().len(), 4);
    assert_eq!(out.revert_state.as_ref().unwrap()["sql_results_download"], Value::Null);
    let plan = env.plan("exports.disable", json!({})).unwrap();
    assert_eq!(plan.requests.len(), 4);
    assert_eq!(plan.requests[2].body.as_ref().unwrap()["enableExportNotebook"], "false");
    env.revert("exports.disable", json!({}), out.revert_state.as_ref().unwrap()).await.unwrap();
}

#[tokio::test]
async fn users_are_deactivated_and_revert_reactivates_them() {
    let env = Env::new().await;
    let id = env.sim.add_user(false, "mallory@corp.example");
    let out = env.exec("user.deactivate", json!({"user": "Mallory@corp.example"})).await.unwrap();
    assert_eq!(env.sim.user_active(false, &id), Some(false));
    assert_eq!(out.output["was_active"], true);
    let patch = env.sim.calls().successful("PATCH", &format!("/api/2.0/preview/scim/v2/Users/{id}"))[0].json().unwrap();
    assert_eq!(patch["Operations"], json!([{"op": "replace", "path": "active", "value": false}]));
    let lookup = &env.sim.calls().matching("GET", "/api/2.0/preview/scim/v2/Users")[0];
    assert_eq!(
        url::form_urlencoded::parse(lookup.query.as_deref().unwrap().as_bytes()).next().unwrap().1,
        "userName eq \"Mallory@corp.example\""
    );
    // A retry after a crash still remembers the user was active before floodgate acted.
    let again = env.exec("user.deactivate", json!({"user": "mallory@corp.example"})).await.unwrap();
    assert_eq!(again.revert_state, out.revert_state);
    env.revert("user.deactivate", json!({}), out.revert_state.as_ref().unwrap()).await.unwrap();
    assert_eq!(env.sim.user_active(false, &id), Some(true));

    // A user who was already inactive stays inactive after revert.
    env.sim.set_user_active(false, &id, false);
    let out = env.exec_key("user.deactivate", json!({"user": id}), "k2").await.unwrap();
    assert_eq!(out.output["was_active"], false);
    env.revert("user.deactivate", json!({}), out.revert_state.as_ref().unwrap()).await.unwrap();
    assert_eq!(env.sim.user_active(false, &id), Some(false));
}

#[tokio::test]
async fn account_users_and_hostile_names() {
    let env = Env::new().await;
    let id = env.sim.add_user(true, "mallory@corp.example");
    env.exec("user.deactivate", json!({"user": "mallory@corp.example", "level": "account"})).await.unwrap();
    assert_eq!(env.sim.user_active(true, &id), Some(false));
    assert_eq!(env.served("PATCH", &env.acct(&format!("/scim/v2/Users/{id}"))), 1);
    // A name crafted to widen the SCIM filter is just a name that matches nobody.
    let e = env.exec_key("user.deactivate", json!({"user": "x\" or userName pr \""}), "k2").await.unwrap_err();
    assert_eq!(e.code(), "user_not_found");
    let e = env.exec_key("user.deactivate", json!({"user": "a\nb"}), "k3").await.unwrap_err();
    assert_eq!(e.code(), "invalid_input");
}

#[tokio::test]
async fn every_token_of_a_principal_is_revoked_and_stops_working() {
    let env = Env::new().await;
    let (v1, t1) = env.sim.create_pat("mallory@corp.example", false);
    let (_, t2) = env.sim.create_pat("mallory@corp.example", false);
    let (_, other) = env.sim.create_pat("ann@corp.example", false);
    let out = env.exec("tokens.revoke", json!({"principal": "mallory@corp.example"})).await.unwrap();
    let mut revoked: Vec<String> = serde_json::from_value(out.output["revoked"].clone()).unwrap();
    revoked.sort();
    let mut expected = vec![t1.clone(), t2.clone()];
    expected.sort();
    assert_eq!(revoked, expected);
    let left: Vec<String> = env.sim.tokens().into_iter().map(|(id, _)| id).collect();
    assert!(left.contains(&other) && !left.contains(&t1) && !left.contains(&t2));
    // The revoked token no longer authenticates.
    let dir = super::temp_dir();
    let mut cfg = super::base_config(&env.sim, &dir);
    cfg["workspaces"]["main"]["auth"]["token"] = json!(super::secret_file(&dir, "revoked", &v1));
    let e = crate::Databricks::from_config(&cfg).unwrap().run_statement(None, "SELECT 1", &[]).await.unwrap_err();
    assert_eq!(e.code(), "UNAUTHENTICATED");
    // The retry after a crash reports the same revocations.
    let again = env.exec("tokens.revoke", json!({"principal": "mallory@corp.example"})).await.unwrap();
    assert_eq!(again.output["count"], 2);
    let e = env.exec_key("tokens.revoke", json!({"principal": env.sim.floodgate_client().0}), "k2").await;
    assert!(e.is_ok(), "floodgate uses a PAT here, so its client id is just another principal");
}

#[tokio::test]
async fn clusters_are_terminated_once() {
    let env = Env::new().await;
    env.sim.add_cluster("0401-000000-abc", "shared", "RUNNING");
    let out = env.exec("cluster.terminate", json!({"cluster_id": "0401-000000-abc"})).await.unwrap();
    assert_eq!(out.output["previous_state"], "RUNNING");
    assert_eq!(out.output["state"], "TERMINATING");
    let again = env.exec("cluster.terminate", json!({"cluster_id": "0401-000000-abc"})).await.unwrap();
    assert_eq!(again.output["state"], "TERMINATED");
    assert_eq!(env.sim.calls().count("POST", "/api/2.1/clusters/delete"), 1);
    let e = env.exec("cluster.terminate", json!({"cluster_id": "../x"})).await.unwrap_err();
    assert_eq!(e.code(), "invalid_input");
}

#[test]
fn every_action_is_declared_with_schema_risk_and_idempotency() {
    let specs = DatabricksKind.actions();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(
        names,
        vec![
            "ip_access_list.block",
            "ip_access_list.unblock",
            "exports.disable",
            "service_principal.rotate_secret",
            "user.deactivate",
            "tokens.revoke",
            "cluster.terminate",
            "sql.query",
            "investigate.user_activity",
            "investigate.ip_activity",
            "investigate.sensitive_tables",
            "investigate.table_lineage",
            "investigate.privileges",
        ]
    );
    let risk = |n: &str| specs.iter().find(|s| s.name == n).unwrap().risk;
    assert_eq!(risk("ip_access_list.block"), RiskClass::Contain);
    assert_eq!(risk("service_principal.rotate_secret"), RiskClass::Destructive);
    assert_eq!(risk("tokens.revoke"), RiskClass::Destructive);
    assert_eq!(risk("cluster.terminate"), RiskClass::Destructive);
    assert_eq!(risk("investigate.privileges"), RiskClass::Read);
    let revertible: Vec<&str> = specs.iter().filter(|s| s.revertible).map(|s| s.name.as_str()).collect();
    assert_eq!(revertible, vec!["ip_access_list.block", "exports.disable", "user.deactivate"]);
    for s in &specs {
        assert!(!s.idempotency.is_empty(), "{}", s.name);
        assert_eq!(s.input_schema["additionalProperties"], false, "{} refuses unknown input keys", s.name);
    }
    let block = &specs[0].input_schema;
    assert!(block["properties"]["ips"]["description"].as_str().unwrap().contains("CIDR"));
}

#[tokio::test]
async fn the_unconfigured_connector_plans_with_placeholders_and_refuses_to_execute() {
    let c = unconfigured();
    let ctx = CallContext::default();
    let cases = [
        ("ip_access_list.block", json!({"ips": "203.0.113.7"})),
        ("ip_access_list.block", json!({"ips": "203.0.113.7", "level": "account"})),
        ("ip_access_list.unblock", json!({"ips": "203.0.113.7"})),
        ("exports.disable", json!({})),
        ("service_principal.rotate_secret", json!({"service_principal": "etl"})),
        ("user.deactivate", json!({"user": "u@x"})),
        ("tokens.revoke", json!({"principal": "u@x"})),
        ("cluster.terminate", json!({"cluster_id": "c-1"})),
        ("sql.query", json!({"statement": "SELECT 1"})),
        ("investigate.user_activity", json!({"user": "u@x"})),
        ("investigate.ip_activity", json!({"ip": "203.0.113.7"})),
        ("investigate.sensitive_tables", json!({"user": "u@x"})),
        ("investigate.table_lineage", json!({"table": "a.b.c"})),
        ("investigate.privileges", json!({"securable": "a.b"})),
    ];
    let refs = floodgate_sdk::MemoryRefStore::new();
    for (action, input) in cases {
        let plan = plan_with(c.as_ref(), action, &input, &ctx).unwrap_or_else(|e| panic!("{action}: {e}"));
        assert!(!plan.summary.is_empty());
        for r in &plan.requests {
            assert!(
                r.url.starts_with("https://<workspace-host>/") || r.url.starts_with("https://<account-host>/"),
                "{action}: {}",
                r.url
            );
        }
        let e = super::exec_with(c.as_ref(), action, &input, "k", &ctx, &refs).await.unwrap_err();
        assert_eq!(e.code(), "not_configured", "{action}");
    }
    let e = plan_with(c.as_ref(), "nope", &json!({}), &ctx).unwrap_err();
    assert_eq!(e.code(), "unknown_action");
}
