//! `ip_access_list.block` / `unblock`: the floodgate list, exactly-once after crashes, revert,
//! quota and self-lockout refusals, account level.

use super::Env;
use floodgate_sdk::Connector;
use floodgate_sdk::sim::Fault;
use serde_json::{Value, json};

const LABEL: &str = "floodgate-block";

fn our_list(lists: &[Value]) -> Vec<&Value> {
    lists.iter().filter(|l| l["label"] == LABEL && l["list_type"] == "BLOCK").collect()
}

fn values(list: &Value) -> Vec<String> {
    let mut v: Vec<String> =
        list["ip_addresses"].as_array().unwrap().iter().map(|x| x.as_str().unwrap().to_string()).collect();
    v.sort();
    v
}

#[tokio::test]
async fn block_creates_the_list_and_revert_removes_exactly_what_it_added() {
    let env = Env::new().await;
    let other = env.sim.add_ip_access_list(false, "someone-else", "BLOCK", &["198.51.100.9"]);
    let out = env
        .exec("ip_access_list.block", json!({"ips": ["203.0.113.7", "198.51.100.0/24", "203.0.113.7:4431"]}))
        .await
        .unwrap();
    let lists = env.sim.ip_access_lists(false);
    let ours = our_list(&lists);
    assert_eq!(ours.len(), 1);
    assert_eq!(values(ours[0]), vec!["198.51.100.0/24", "203.0.113.7"]);
    assert_eq!(out.output["added"], json!(["198.51.100.0/24", "203.0.113.7"]));
    assert_eq!(out.output["enforced"], true);
    // Another step adds a value to the same list; this step's revert must leave it there.
    env.exec_key("ip_access_list.block", json!({"ips": "192.0.2.99"}), "key-2").await.unwrap();
    let state = out.revert_state.clone().unwrap();
    let plan = env.dbx.plan_revert(
        &floodgate_sdk::ActionCall {
            action: "ip_access_list.block",
            input: &json!({"ips": "x"}),
            idempotency_key: "r",
            ctx: &env.ctx,
            refs: env.refs.as_ref(),
        },
        &state,
    );
    assert!(plan.unwrap().summary.contains("203.0.113.7"));
    let r = env.revert("ip_access_list.block", json!({"ips": []}), &state).await.unwrap();
    assert_eq!(r.output["removed"], json!(["198.51.100.0/24", "203.0.113.7"]));
    let lists = env.sim.ip_access_lists(false);
    assert_eq!(values(our_list(&lists)[0]), vec!["192.0.2.99"]);
    let theirs = lists.iter().find(|l| l["list_id"] == other.as_str()).unwrap();
    assert_eq!(values(theirs), vec!["198.51.100.9"], "lists floodgate does not own are never touched");
    // Reverting again is harmless.
    let r = env.revert("ip_access_list.block", json!({}), &state).await.unwrap();
    assert_eq!(r.output["removed"], json!([]));
}

#[tokio::test]
async fn a_list_left_by_a_crash_is_reused_without_duplicates() {
    let env = Env::new().await;
    // A previous attempt created the list and crashed before recording anything.
    env.sim.add_ip_access_list(false, LABEL, "BLOCK", &["203.0.113.7"]);
    let out = env.exec("ip_access_list.block", json!({"ips": ["203.0.113.7", "203.0.113.8"]})).await.unwrap();
    let lists = env.sim.ip_access_lists(false);
    assert_eq!(our_list(&lists).len(), 1, "no second list");
    assert_eq!(values(our_list(&lists)[0]), vec!["203.0.113.7", "203.0.113.8"]);
    assert_eq!(env.served("POST", "/api/2.0/ip-access-lists"), 0);
    // Without a checkpoint, the value that was already there is not claimed by this step.
    assert_eq!(out.output["added"], json!(["203.0.113.8"]));
    assert_eq!(out.output["already_blocked"], json!(["203.0.113.7"]));
}

#[tokio::test]
async fn a_crash_after_create_is_resumed_with_the_same_key_exactly_once() {
    let env = Env::new().await;
    // The list gets created, then the step fails before it finishes (the enforcement check
    // answers 500): to the engine this attempt's outcome is unknown.
    env.sim.faults().inject(
        Some("GET"),
        Some("/api/2.0/workspace-conf"),
        Some(1),
        Fault::Status { status: 500, retry_after: None },
    );
    let e = env.exec("ip_access_list.block", json!({"ips": ["203.0.113.7"]})).await.unwrap_err();
    assert!(e.is_retryable(), "{e:?}");
    assert_eq!(env.served("POST", "/api/2.0/ip-access-lists"), 1);
    // The engine retries with the same key and refs.
    let out = env.exec("ip_access_list.block", json!({"ips": ["203.0.113.7"]})).await.unwrap();
    let lists = env.sim.ip_access_lists(false);
    assert_eq!(our_list(&lists).len(), 1);
    assert_eq!(values(our_list(&lists)[0]), vec!["203.0.113.7"]);
    assert_eq!(env.served("POST", "/api/2.0/ip-access-lists"), 1, "created once");
    assert_eq!(
        env.served("PATCH", &format!("/api/2.0/ip-access-lists/{}", out.output["list_id"].as_str().unwrap())),
        0
    );
    // The retry still knows the value is this step's, so revert removes it.
    assert_eq!(out.output["added"], json!(["203.0.113.7"]));
    let out2 = env.exec("ip_access_list.block", json!({"ips": ["203.0.113.7"]})).await.unwrap();
    assert_eq!(out2.revert_state, out.revert_state);
    env.revert("ip_access_list.block", json!({}), out.revert_state.as_ref().unwrap()).await.unwrap();
    assert!(values(our_list(&env.sim.ip_access_lists(false))[0]).is_empty());
}

#[tokio::test]
async fn quota_is_refused_before_sending() {
    let env = Env::new().await;
    let many: Vec<String> = (0..999).map(|k| format!("10.{}.{}.1", k / 250, k % 250)).collect();
    let refs: Vec<&str> = many.iter().map(String::as_str).collect();
    env.sim.add_ip_access_list(false, "bulk", "BLOCK", &refs);
    let e = env.exec("ip_access_list.block", json!({"ips": ["203.0.113.7", "203.0.113.8"]})).await.unwrap_err();
    assert_eq!(e.code(), "QUOTA_EXCEEDED");
    assert!(!e.is_retryable());
    assert!(e.message().contains("1001"), "{}", e.message());
    assert_eq!(env.sim.calls().count("POST", "/api/2.0/ip-access-lists"), 0, "refused before any write");
    // Exactly at the limit is fine.
    env.exec_key("ip_access_list.block", json!({"ips": "203.0.113.7"}), "k2").await.unwrap();
}

#[tokio::test]
async fn floodgates_own_egress_is_never_blocked() {
    let env = Env::with(|c, _| c["egress_ips"] = json!(["192.0.2.50", "198.51.100.64/26"])).await;
    for ip in ["192.0.2.0/24", "192.0.2.50", "198.51.100.70"] {
        let e = env.exec("ip_access_list.block", json!({"ips": ["203.0.113.7", ip]})).await.unwrap_err();
        assert_eq!(e.code(), "INVALID_STATE", "{ip}");
        assert!(e.message().contains("egress"), "{}", e.message());
    }
    assert!(env.sim.calls().is_empty(), "refused without any request");
}

#[tokio::test]
async fn databricks_refuses_self_lockout_with_invalid_state() {
    // No egress_ips configured: Databricks itself refuses a list that would block the caller.
    let env = Env::new().await;
    env.sim.set_caller_ip("192.0.2.50");
    let e = env.exec("ip_access_list.block", json!({"ips": "192.0.2.0/24"})).await.unwrap_err();
    assert_eq!(e.code(), "INVALID_STATE");
    assert!(!e.is_retryable());
    assert!(e.message().contains("192.0.2.50"), "{}", e.message());
    assert_eq!(env.sim.calls().count("POST", "/api/2.0/ip-access-lists"), 1, "a 400 is not retried");
    assert!(our_list(&env.sim.ip_access_lists(false)).is_empty());
}

#[tokio::test]
async fn invalid_values_are_refused_with_every_problem_named() {
    let env = Env::new().await;
    let e = env
        .exec("ip_access_list.block", json!({"ips": ["2001:db8::1", "10.0.0.0/8", "nope", "203.0.113.7"]}))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    for needle in ["IPv6", "/8", "nope"] {
        assert!(e.message().contains(needle), "{needle}: {}", e.message());
    }
    let e = env.exec("ip_access_list.block", json!({"ips": []})).await.unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    let e = env.exec("ip_access_list.block", json!({"ip": "1.2.3.4"})).await.unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    assert!(env.sim.calls().is_empty());
}

#[tokio::test]
async fn unblock_touches_only_floodgates_list() {
    let env = Env::new().await;
    let theirs = env.sim.add_ip_access_list(false, "manual", "BLOCK", &["203.0.113.7"]);
    env.exec("ip_access_list.block", json!({"ips": ["203.0.113.7", "203.0.113.8"]})).await.unwrap();
    let out =
        env.exec_key("ip_access_list.unblock", json!({"ips": ["203.0.113.7/32", "203.0.113.9"]}), "u1").await.unwrap();
    assert_eq!(out.output["removed"], json!(["203.0.113.7"]));
    assert_eq!(out.output["not_found"], json!(["203.0.113.9"]));
    let lists = env.sim.ip_access_lists(false);
    assert_eq!(values(our_list(&lists)[0]), vec!["203.0.113.8"]);
    let manual = lists.iter().find(|l| l["list_id"] == theirs.as_str()).unwrap();
    assert_eq!(values(manual), vec!["203.0.113.7"]);
}

#[tokio::test]
async fn account_level_block_uses_the_account_console_with_oauth() {
    let env = Env::new().await;
    let out = env.exec("ip_access_list.block", json!({"ips": "203.0.113.7", "level": "account"})).await.unwrap();
    assert_eq!(out.output["target"]["level"], "account");
    assert_eq!(out.output["enforced"], false, "a new account does not enforce its lists");
    assert!(out.notes.iter().any(|n| n.contains("acct_ip_acl_enable")), "{:?}", out.notes);
    let lists = env.sim.ip_access_lists(true);
    assert_eq!(values(our_list(&lists)[0]), vec!["203.0.113.7"]);
    assert!(our_list(&env.sim.ip_access_lists(false)).is_empty());
    assert_eq!(env.served("POST", &env.acct("/ip-access-lists")), 1);
    let token_calls = env.sim.calls().matching("POST", &format!("/oidc/accounts/{}/v1/token", env.sim.account_id()));
    assert_eq!(token_calls.len(), 1);
    assert_eq!(token_calls[0].form().iter().find(|(k, _)| k == "scope").map(|(_, v)| v.as_str()), Some("all-apis"));
    env.revert("ip_access_list.block", json!({}), out.revert_state.as_ref().unwrap()).await.unwrap();
    assert!(values(our_list(&env.sim.ip_access_lists(true))[0]).is_empty());
    let e =
        env.exec("ip_access_list.block", json!({"ips": "203.0.113.7", "level": "account", "workspace": "main"})).await;
    assert_eq!(e.unwrap_err().code(), "invalid_input");
}

#[tokio::test]
async fn unenforced_lists_are_reported_and_plans_match_execution() {
    let env = Env::new().await;
    env.sim.set_workspace_conf("enableIpAccessLists", Some("false"));
    let plan = env.plan("ip_access_list.block", json!({"ips": "203.0.113.7"})).unwrap();
    let out = env.exec("ip_access_list.block", json!({"ips": "203.0.113.7"})).await.unwrap();
    assert_eq!(out.output["enforced"], false);
    assert!(out.notes.iter().any(|n| n.contains("enableIpAccessLists")), "{:?}", out.notes);
    let create = env.sim.calls().successful("POST", "/api/2.0/ip-access-lists");
    let planned = plan.requests.iter().find(|r| r.method == "POST").unwrap();
    assert_eq!(Some(create[0].json().unwrap()), planned.body, "the plan shows the body execute sent");
    assert!(planned.url.starts_with(&env.sim.url()));
    assert!(plan.summary.contains("203.0.113.7"));
}
