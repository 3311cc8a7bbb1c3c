//! The global approval policy: which risk classes need people, minimum quorums, approval by
//! silence, automatic approval and its hourly caps — and that playbooks cannot loosen it.

use crate::common::{run_in, write};
use crate::harness::{Db, Harness, directory};
use crate::on_both_databases;
use floodgate::config::{AutoApproveRule, PolicyConfig};
use floodgate::playbook::Severity;
use floodgate::store::{ApprovalState, RunState, Wait};
use floodgate_sdk::RiskClass;
use serde_json::json;
use std::collections::BTreeMap;

fn with_policy(f: impl FnOnce(&mut PolicyConfig)) -> floodgate::engine::Directory {
    let mut d = directory();
    d.policy = PolicyConfig { default_approvers: vec!["oncall".into()], ..Default::default() };
    f(&mut d.policy);
    d
}

async fn waiting_approval(h: &Harness, run_id: &str) -> String {
    match h.run(run_id).await.state {
        RunState::Waiting(Wait::Approval(id)) => id,
        other => panic!("expected a wait for approval, got {other:?}"),
    }
}

on_both_databases!(
    silence_never_approves_unless_the_policy_allows_it,
    policy_minimum_quorum_and_required_classes_apply_at_run_time,
    automatic_approval_is_capped_per_hour,
    automatic_approval_rules_in_config_and_the_master_switch,
);

const SILENT: &str = r#"
id: silent
name: Silent
match: {rule: s}
steps:
  containment:
    - id: c
      action: test.contain
      approval: {groups: [oncall], timeout: 5m, on_timeout: approve}
      with: {target: x}
"#;

async fn silence_never_approves_unless_the_policy_allows_it(db: Db) {
    let h = Harness::with_directory(db, &[SILENT], with_policy(|_| {})).await;
    let run = h.alert(json!({"id": "s1", "rule": "s", "title": "s"})).await.run_id.unwrap();
    h.settle().await;
    let apr = waiting_approval(&h, &run).await;
    h.clock.advance(5 * 60 * 1000 + 1);
    h.engine.tick_timers().await.unwrap();
    let a = h.store.approval(&apr).await.unwrap().unwrap();
    assert_eq!(a.state, ApprovalState::Expired);
    assert!(a.decided_reason.unwrap().contains("not allowed by the policy"));
    h.settle().await;
    assert_eq!(h.vendor.calls("contain"), 0);
}

const QUORUM: &str = r#"
id: quorum
name: Quorum
match: {rule: q}
steps:
  containment:
    - id: destroy
      action: test.destroy
      approval: {groups: [oncall], quorum: 1}
      with: {target: x}
  remediation:
    - id: tell
      action: test.notify
      with: {target: y}
"#;

async fn policy_minimum_quorum_and_required_classes_apply_at_run_time(db: Db) {
    let dir = with_policy(|p| {
        p.min_quorum = BTreeMap::from([(RiskClass::Destructive, 2)]);
        p.require_approval = vec![RiskClass::Destructive, RiskClass::Notify];
    });
    let h = Harness::with_directory(db, &[QUORUM], dir).await;
    let run = h.alert(json!({"id": "q1", "rule": "q", "title": "q"})).await.run_id.unwrap();
    h.settle().await;
    let apr = waiting_approval(&h, &run).await;
    assert_eq!(h.store.approval(&apr).await.unwrap().unwrap().quorum, 2, "the policy minimum beats the step's quorum");
    assert_eq!(h.engine.decide(&apr, "alice", true, None, "cli").await.unwrap().unwrap().state, ApprovalState::Pending);
    assert_eq!(h.engine.decide(&apr, "bob", true, None, "cli").await.unwrap().unwrap().state, ApprovalState::Approved);
    h.settle().await;
    // `notify` is a required class in this policy: the next step asks the default approvers.
    let apr2 = waiting_approval(&h, &run).await;
    assert_eq!(h.store.approval(&apr2).await.unwrap().unwrap().groups, vec!["oncall".to_string()]);
    assert_eq!(h.vendor.calls("notify"), 0);
}

const AUTO: &str = r#"
id: auto
name: Auto
match: {rule: a}
auto_approve: {min_confidence: 0.9, severities: [critical]}
steps:
  containment:
    - id: block
      action: test.contain
      with: {target: "{{ alert.external_id }}"}
"#;

fn sure(id: &str) -> serde_json::Value {
    json!({"id": id, "rule": "a", "title": "a", "severity": "critical", "confidence": 0.99})
}

async fn automatic_approval_is_capped_per_hour(db: Db) {
    let dir = with_policy(|p| p.auto_approve.max_per_hour_per_playbook = 2);
    let h = Harness::with_directory(db, &[AUTO], dir).await;
    let mut runs = Vec::new();
    for i in 0..3 {
        runs.push(h.alert(sure(&format!("a{i}"))).await.run_id.unwrap());
        h.settle().await;
    }
    assert_eq!(h.run(&runs[0]).await.state, RunState::Succeeded);
    assert_eq!(h.run(&runs[1]).await.state, RunState::Succeeded);
    let apr = waiting_approval(&h, &runs[2]).await;
    let events = h.store.run_events(&runs[2], &h.run(&runs[2]).await.incident_id).await.unwrap();
    let requested = events.iter().find(|e| e.kind == "approval_requested").unwrap();
    assert!(
        requested.data["note"].as_str().unwrap().contains("automatic approval limit reached"),
        "{}",
        requested.data
    );
    assert_eq!(h.store.approval(&apr).await.unwrap().unwrap().auto_rule, None);
    assert_eq!(h.vendor.calls("contain"), 2);
    // An hour later automation may act again.
    h.clock.advance(3_600_001);
    let later = h.alert(sure("a9")).await.run_id.unwrap();
    h.settle().await;
    assert_eq!(h.run(&later).await.state, RunState::Succeeded);
    assert_eq!(h.vendor.calls("contain"), 3);
}

const AUTO_NONE: &str = r#"
id: auto-none
name: Auto none
match: {rule: b}
steps:
  containment:
    - id: block
      action: test.contain
      with: {target: x}
"#;

async fn automatic_approval_rules_in_config_and_the_master_switch(db: Db) {
    let dir = with_policy(|p| {
        p.auto_approve.rules = vec![AutoApproveRule {
            playbooks: vec!["auto-none".into()],
            min_confidence: 0.95,
            severities: Some(vec![Severity::High]),
        }];
    });
    let h = Harness::with_directory(db, &[AUTO_NONE], dir).await;
    let yes = h
        .alert(json!({"id": "b1", "rule": "b", "title": "b", "severity": "high", "confidence": 0.97}))
        .await
        .run_id
        .unwrap();
    let no = h
        .alert(json!({"id": "b2", "rule": "b", "title": "b", "severity": "critical", "confidence": 0.97}))
        .await
        .run_id
        .unwrap();
    h.settle().await;
    assert_eq!(h.run(&yes).await.state, RunState::Succeeded);
    let steps = h.store.step_executions(&yes).await.unwrap();
    let a = h.store.approval_for_step(&steps[0].id).await.unwrap().unwrap();
    assert!(a.auto_rule.unwrap().starts_with("policy.auto_approve.rules[0]"));
    waiting_approval(&h, &no).await;

    let off = with_policy(|p| p.auto_approve.enabled = false);
    let Harness { db, .. } = h;
    let h2 = Harness::with_directory(db, &[AUTO], off).await;
    let run = h2.alert(sure("z1")).await.run_id.unwrap();
    h2.settle().await;
    waiting_approval(&h2, &run).await;
}

#[test]
fn validate_refuses_playbooks_that_loosen_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "floodgate.toml",
        "[[identities]]\nid = \"a\"\n[[identities]]\nid = \"b\"\n[groups]\noncall = [\"a\", \"b\"]\n[policy]\ndefault_approvers = [\"oncall\"]\nmin_quorum = { notify = 2 }\n[policy.auto_approve]\nenabled = false\n",
    );
    write(
        dir.path(),
        "pb.yaml",
        "id: loose\nname: Loose\nmatch: {}\nauto_approve: {min_confidence: 0.5}\nsteps:\n  containment:\n    - id: c\n      action: core.http\n      with: {url: \"https://x\"}\n      approval: {groups: [oncall], quorum: 1, on_timeout: approve}\n    - id: d\n      action: core.log\n      with: {message: x}\n      approval: {groups: [oncall], quorum: 1}\n",
    );
    let (code, out, _) = run_in(dir.path(), &["validate", "--config", "floodgate.toml", "pb.yaml"]);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("auto_approve is disabled by the policy"), "{out}");
    assert!(out.contains("on_timeout: approve is not allowed by the policy"), "{out}");
    assert!(out.contains("quorum 1 is below the policy minimum of 2 for notify actions"), "{out}");
    // The minimum is per risk class: core.log is `read`, so its quorum of 1 is fine.
    assert_eq!(out.matches("below the policy minimum").count(), 1, "{out}");
}
