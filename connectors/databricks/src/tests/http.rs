//! The HTTP layer end to end: PAT and OAuth (cache, refresh before expiry, one retry on 401),
//! 429 storms and `Retry-After`, 503 vs 500, error bodies as Databricks sends them, the
//! client-side rate limit, and which workspace a step acts on.

use super::{Env, exec_with, secret_file};
use crate::Databricks;
use crate::sim::{DatabricksSim, SimOptions};
use serde_json::json;
use std::time::{Duration, Instant};

/// Workspace `main` authenticating with OAuth M2M instead of a PAT.
async fn oauth_env() -> Env {
    Env::with(|c, sim| {
        let (app, _) = sim.floodgate_client();
        let secret = c["account"]["auth"]["client_secret"].clone();
        c["workspaces"]["main"]["auth"] = json!({"type": "oauth-m2m", "client_id": app, "client_secret": secret});
    })
    .await
}

#[tokio::test]
async fn pat_requests_carry_the_bearer_token() {
    let env = Env::new().await;
    env.sim.add_cluster("c-1", "etl", "TERMINATED");
    env.exec("cluster.terminate", json!({"cluster_id": "c-1"})).await.unwrap();
    let call = &env.sim.calls().matching("GET", "/api/2.1/clusters/get")[0];
    assert_eq!(call.header("authorization"), Some(format!("Bearer {}", env.sim.admin_pat()).as_str()));
}

#[tokio::test]
async fn oauth_tokens_are_cached_and_refreshed_before_they_expire() {
    let env = oauth_env().await;
    env.sim.set_token_lifetime(Duration::from_secs(2));
    env.dbx.run_statement(None, "SELECT 1 AS one", &[]).await.unwrap();
    env.dbx.run_statement(None, "SELECT 1 AS one", &[]).await.unwrap();
    assert_eq!(env.sim.calls().count("POST", "/oidc/v1/token"), 1, "cached");
    // A fifth of the lifetime before expiry, the next call fetches a new token first.
    tokio::time::sleep(Duration::from_millis(1700)).await;
    env.dbx.run_statement(None, "SELECT 1 AS one", &[]).await.unwrap();
    assert_eq!(env.sim.calls().count("POST", "/oidc/v1/token"), 2);
    assert!(env.sim.calls().calls().iter().all(|c| c.status != 401), "refreshed before any 401");
    let token_call = &env.sim.calls().matching("POST", "/oidc/v1/token")[0];
    assert_eq!(token_call.header("content-type"), Some("application/x-www-form-urlencoded"));
    let form = token_call.form();
    assert!(form.contains(&("grant_type".into(), "client_credentials".into())));
    assert!(form.contains(&("scope".into(), "all-apis".into())));
}

#[tokio::test]
async fn a_token_that_expires_mid_run_is_replaced_once_and_the_run_continues() {
    let env = oauth_env().await;
    env.sim.load_audit_events(&crate::sim::testdata::story_jsonl()).await.unwrap();
    env.sim.set_chunk_rows(7);
    // The first chunk fetch is held while every issued token expires (as after an hour).
    env.sim.faults().delay_next(1, Duration::from_millis(400), Some("/api/2.0/sql/statements/"));
    let query = env.dbx.run_statement(None, "SELECT event_id FROM system.access.audit", &[]);
    let expire = async {
        tokio::time::sleep(Duration::from_millis(150)).await;
        env.sim.expire_access_tokens();
    };
    let (result, ()) = tokio::join!(query, expire);
    assert_eq!(result.unwrap().rows.len(), 19);
    assert_eq!(env.sim.calls().calls().iter().filter(|c| c.status == 401).count(), 1);
    assert_eq!(env.sim.calls().count("POST", "/oidc/v1/token"), 2);
}

#[tokio::test]
async fn a_429_storm_is_ridden_out() {
    let env = Env::new().await;
    env.sim.faults().rate_limit_next(5, 0, None);
    let out = env.exec("ip_access_list.block", json!({"ips": "203.0.113.7"})).await.unwrap();
    assert_eq!(out.output["added"], json!(["203.0.113.7"]));
    let faulted: Vec<u16> = env.sim.calls().calls().iter().filter(|c| c.faulted).map(|c| c.status).collect();
    assert_eq!(faulted, vec![429; 5]);
    // Every other request limited, across a whole containment and its revert.
    env.sim.faults().rate_limit_every(2, 0, None);
    let out = env.exec_key("exports.disable", json!({}), "k2").await.unwrap();
    env.revert("exports.disable", json!({}), out.revert_state.as_ref().unwrap()).await.unwrap();
    assert!(env.sim.calls().calls().iter().filter(|c| c.faulted).count() > 5);
}

#[tokio::test]
async fn retry_after_is_honoured_and_long_waits_go_back_to_the_engine() {
    let env = Env::new().await;
    env.sim.faults().rate_limit_next(1, 1, Some("/api/2.0/ip-access-lists"));
    let start = Instant::now();
    env.exec("ip_access_list.block", json!({"ips": "203.0.113.7"})).await.unwrap();
    assert!(start.elapsed() >= Duration::from_secs(1), "{:?}", start.elapsed());

    env.sim.faults().rate_limit_next(10, 120, None);
    env.sim.calls().clear();
    let e = env.exec_key("ip_access_list.block", json!({"ips": "203.0.113.8"}), "k2").await.unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.code(), "REQUEST_LIMIT_EXCEEDED");
    assert_eq!(e.retry_after_hint(), Some(Duration::from_secs(120)));
    assert_eq!(env.sim.calls().len(), 1, "a wait longer than max_retry_wait_seconds is not slept in-request");
}

#[tokio::test]
async fn five_hundred_three_is_retried_other_statuses_are_not() {
    let env = Env::new().await;
    env.sim.add_cluster("c-1", "etl", "RUNNING");
    env.sim.faults().fail_next(2, 503, Some("/api/2.1/clusters/get"));
    env.exec("cluster.terminate", json!({"cluster_id": "c-1"})).await.unwrap();
    assert_eq!(env.sim.calls().count("GET", "/api/2.1/clusters/get"), 4, "two 503s, then the read, then the check");

    env.sim.faults().fail_next(1, 500, Some("/api/2.1/clusters/get"));
    env.sim.calls().clear();
    let e = env.exec_key("cluster.terminate", json!({"cluster_id": "c-1"}), "k2").await.unwrap_err();
    assert!(e.is_retryable(), "5xx is retryable by the engine");
    assert_eq!(e.code(), "INTERNAL_ERROR");
    assert_eq!(env.sim.calls().len(), 1, "but not retried in-request");

    let e = env.exec_key("cluster.terminate", json!({"cluster_id": "nope"}), "k3").await.unwrap_err();
    assert_eq!(e.code(), "INVALID_PARAMETER_VALUE");
    assert!(!e.is_retryable());
    assert!(e.message().contains("Cluster nope does not exist"), "{}", e.message());
}

#[tokio::test]
async fn databricks_error_bodies_become_clear_errors() {
    let env = Env::new().await;
    // Standard body, non-admin identity.
    let (pat, _) = env.sim.create_pat("analyst@corp.example", false);
    let dir = super::temp_dir();
    let mut cfg = super::base_config(&env.sim, &dir);
    cfg["workspaces"]["main"]["auth"]["token"] = json!(secret_file(&dir, "analyst", &pat));
    let analyst = Databricks::from_config(&cfg).unwrap();
    let e =
        exec_with(&analyst, "ip_access_list.block", &json!({"ips": "203.0.113.7"}), "k", &env.ctx, env.refs.as_ref())
            .await
            .unwrap_err();
    assert_eq!(e.code(), "PERMISSION_DENIED");
    assert!(e.message().contains("least privileges"), "{}", e.message());
    // SCIM body.
    env.sim.add_user(false, "victim@corp.example");
    let e = exec_with(
        &analyst,
        "user.deactivate",
        &json!({"user": "victim@corp.example"}),
        "k2",
        &env.ctx,
        env.refs.as_ref(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), "SCIM_403");
    // OAuth body from the token endpoint.
    let mut cfg = super::base_config(&env.sim, &dir);
    cfg["account"]["auth"]["client_secret"] = json!(secret_file(&dir, "wrong", "not-the-secret"));
    let wrong = Databricks::from_config(&cfg).unwrap();
    let input = json!({"ips": "203.0.113.7", "level": "account"});
    let e = exec_with(&wrong, "ip_access_list.block", &input, "k3", &env.ctx, env.refs.as_ref()).await.unwrap_err();
    assert_eq!(e.code(), "invalid_client");
    assert!(!e.is_retryable());
    assert!(e.message().contains("OAuth token for account"), "{}", e.message());
    assert!(!e.message().contains("not-the-secret"));
    // An HTML page from a gateway.
    env.sim.faults().fail_next(1, 502, None);
    let e = env.exec_key("ip_access_list.block", json!({"ips": "203.0.113.7"}), "k4").await.unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.code(), "http_502");
    assert!(e.message().contains("Gateway error 502"), "{}", e.message());
    // A revoked/unknown PAT.
    cfg["workspaces"]["main"]["auth"]["token"] = json!(secret_file(&dir, "bogus", "dapi-bogus"));
    let bogus = Databricks::from_config(&cfg).unwrap();
    let e = bogus.run_statement(None, "SELECT 1", &[]).await.unwrap_err();
    assert_eq!(e.code(), "UNAUTHENTICATED");
    assert!(e.message().contains("check the credentials"), "{}", e.message());
}

#[tokio::test]
async fn the_client_side_rate_limit_spaces_requests() {
    let env = Env::with(|c, _| c["rate_limit_per_second"] = json!(5)).await;
    env.sim.add_cluster("c-1", "etl", "TERMINATED");
    let start = Instant::now();
    for k in 0..11 {
        env.exec_key("cluster.terminate", json!({"cluster_id": "c-1"}), &format!("k{k}")).await.unwrap();
    }
    // A burst of 5, then 5 per second: 11 requests take at least 1.2 s.
    assert!(start.elapsed() >= Duration::from_millis(1150), "{:?}", start.elapsed());
}

#[tokio::test]
async fn the_alerts_workspace_is_chosen_unless_the_step_names_one() {
    let env = Env::new().await;
    let other =
        DatabricksSim::start_with(SimOptions { workspace_id: "5555666677778888".into(), ..SimOptions::default() })
            .await
            .unwrap();
    let dir = super::temp_dir();
    let mut cfg = super::base_config(&env.sim, &dir);
    cfg["workspaces"]["second"] = json!({"host": other.url(), "workspace_id": "5555666677778888",
        "auth": {"type": "pat", "token": secret_file(&dir, "pat2", other.admin_pat())}});
    let dbx = Databricks::from_config(&cfg).unwrap();
    env.sim.add_cluster("c-1", "a", "RUNNING");
    other.add_cluster("c-1", "b", "RUNNING");
    let mut ctx = env.ctx.clone();
    let input = json!({"cluster_id": "c-1"});

    ctx.alert["workspace_id"] = json!("5555666677778888");
    let out = exec_with(&dbx, "cluster.terminate", &input, "k1", &ctx, env.refs.as_ref()).await.unwrap();
    assert_eq!(out.output["cluster_name"], "b");
    assert_eq!(env.sim.cluster_state("c-1").as_deref(), Some("RUNNING"));

    let named = json!({"cluster_id": "c-1", "workspace": "main"});
    let out = exec_with(&dbx, "cluster.terminate", &named, "k2", &ctx, env.refs.as_ref()).await.unwrap();
    assert_eq!(out.output["cluster_name"], "a", "the step's own workspace input wins");

    ctx.alert["workspace_id"] = json!(9999);
    let e = exec_with(&dbx, "cluster.terminate", &input, "k3", &ctx, env.refs.as_ref()).await.unwrap_err();
    assert_eq!(e.code(), "unknown_workspace");
    assert!(e.message().contains("9999"));

    ctx.alert["workspace_id"] = json!("0");
    let out = exec_with(&dbx, "cluster.terminate", &input, "k4", &ctx, env.refs.as_ref()).await.unwrap();
    assert_eq!(out.output["cluster_name"], "a", "account-level events fall back to the default");

    cfg.as_object_mut().unwrap().remove("default_workspace");
    let no_default = Databricks::from_config(&cfg).unwrap();
    ctx.alert["workspace_id"] = serde_json::Value::Null;
    let e = exec_with(&no_default, "cluster.terminate", &input, "k5", &ctx, env.refs.as_ref()).await.unwrap_err();
    assert_eq!(e.code(), "no_workspace");
    let e = exec_with(
        &dbx,
        "cluster.terminate",
        &json!({"cluster_id": "c-1", "workspace": "nope"}),
        "k6",
        &ctx,
        env.refs.as_ref(),
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), "unknown_workspace");
    assert!(e.message().contains("main, second"), "{}", e.message());
    other.stop().await;
}

#[tokio::test]
async fn hung_requests_time_out_reads_are_retried_creates_are_not_replayed() {
    let env = Env::with(|c, _| c["http_timeout_seconds"] = json!(1)).await;
    env.sim.add_cluster("c-1", "etl", "TERMINATED");
    env.sim.faults().hang_next(1, Some("/api/2.1/clusters/get"));
    let out = env.exec("cluster.terminate", json!({"cluster_id": "c-1"})).await.unwrap();
    assert_eq!(out.output["state"], "TERMINATED");
    assert_eq!(env.sim.calls().count("GET", "/api/2.1/clusters/get"), 2, "the read was sent again after the timeout");

    // A create whose outcome is unknown is left to the next durable attempt, which finds the
    // list by its label instead of sending the create again.
    env.sim.faults().inject(Some("POST"), Some("/api/2.0/ip-access-lists"), Some(1), floodgate_sdk::sim::Fault::Hang);
    let e = env.exec("ip_access_list.block", json!({"ips": "203.0.113.7"})).await.unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.code(), "network");
    assert_eq!(env.sim.calls().count("POST", "/api/2.0/ip-access-lists"), 1);
    env.exec("ip_access_list.block", json!({"ips": "203.0.113.7"})).await.unwrap();
}
