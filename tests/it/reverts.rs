//! Temporary containment: reverts run when due, durably and once; people can extend them or
//! make the containment permanent. On both databases.

use crate::harness::{Db, Harness, NowPub};
use crate::on_both_databases;
use floodgate::store::reverts::RevertState;
use floodgate::store::{RunState, Wait};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;

const TEMP: &str = r#"
id: temp
name: Temporary block
match: {rule: temp}
auto_approve: {min_confidence: 0.5, severities: [high]}
steps:
  containment:
    - id: block
      action: test.contain
      revert_after: 1h
      with: {target: "{{ alert.entities.source_ip }}"}
"#;

fn alert(id: &str) -> serde_json::Value {
    json!({"id": id, "rule": "temp", "title": "t", "severity": "high", "confidence": 0.9, "entities": {"source_ip": "203.0.113.9"}})
}

on_both_databases!(
    a_temporary_containment_is_reverted_once_when_due,
    people_extend_or_keep_containment,
    reverts_retry_and_report_failure,
);

async fn a_temporary_containment_is_reverted_once_when_due(db: Db) {
    let h = Harness::new(db, &[TEMP]).await;
    let run_id = h.alert(alert("t1")).await.run_id.unwrap();
    h.settle().await;
    assert_eq!(h.run(&run_id).await.state, RunState::Succeeded, "the run does not wait for its revert");
    let reverts = h.store.reverts_for_run(&run_id).await.unwrap();
    assert_eq!(reverts.len(), 1);
    assert_eq!((reverts[0].state, reverts[0].due_at), (RevertState::Scheduled, crate::harness::T0 + 3_600_000));
    h.clock.advance(3_599_000);
    assert_eq!(h.engine.run_due_reverts().await.unwrap(), 0, "not due yet");
    h.clock.advance(1_000);
    assert_eq!(h.engine.run_due_reverts().await.unwrap(), 1);
    let r = h.store.revert(&reverts[0].id).await.unwrap().unwrap();
    assert_eq!((r.state, r.attempt), (RevertState::Reverted, 1));
    let calls = h.vendor.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 2);
    assert_eq!(
        (calls[1].0.as_str(), calls[1].2.clone()),
        ("revert:contain", json!({"undo": "203.0.113.9"})),
        "the revert gets what the step recorded"
    );
    assert_eq!(calls[1].1, format!("{}-revert", calls[0].1), "the revert has an idempotency key of its own");
    assert_eq!(h.engine.run_due_reverts().await.unwrap(), 0, "and runs once");
    let kinds: Vec<String> = h
        .store
        .run_events(&run_id, &h.run(&run_id).await.incident_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for k in ["approval_automatic", "revert_scheduled", "revert_started", "revert_succeeded"] {
        assert!(kinds.contains(&k.to_string()), "{k} missing from {kinds:?}");
    }
}

async fn people_extend_or_keep_containment(db: Db) {
    let h = Harness::new(db, &[TEMP]).await;
    let r1 = h.alert(alert("e1")).await.run_id.unwrap();
    let r2 = h.alert(json!({"id": "e2", "rule": "temp", "title": "t", "severity": "high", "confidence": 0.9, "entities": {"source_ip": "198.51.100.3"}})).await.run_id.unwrap();
    h.settle().await;
    let rev1 = h.store.reverts_for_run(&r1).await.unwrap().remove(0);
    let rev2 = h.store.reverts_for_run(&r2).await.unwrap().remove(0);
    let refused =
        h.engine.extend_revert(&rev1.id, "carol", Duration::from_secs(3600), None).await.unwrap().unwrap_err();
    assert!(refused.contains("may not change"), "{refused}");
    let extended = h
        .engine
        .extend_revert(&rev1.id, "alice", Duration::from_secs(86_400), Some("attacker still active"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(extended.due_at, rev1.due_at + 86_400_000);
    let kept = h.engine.cancel_revert(&rev2.id, "bob", Some("confirmed malicious")).await.unwrap().unwrap();
    assert_eq!(kept.state, RevertState::Permanent);
    let again = h.engine.cancel_revert(&rev2.id, "bob", None).await.unwrap().unwrap_err();
    assert!(again.contains("permanent"), "{again}");
    h.clock.advance(3_600_000);
    assert_eq!(h.engine.run_due_reverts().await.unwrap(), 0, "the extended one is not due; the permanent one never is");
    h.clock.advance(86_400_000);
    assert_eq!(h.engine.run_due_reverts().await.unwrap(), 1);
    assert_eq!(h.store.revert(&rev1.id).await.unwrap().unwrap().state, RevertState::Reverted);
    assert_eq!(h.store.revert(&rev2.id).await.unwrap().unwrap().state, RevertState::Permanent);
    let events = h.store.run_events(&r1, &rev1.incident_id).await.unwrap();
    let ext = events.iter().find(|e| e.kind == "revert_extended").unwrap();
    assert_eq!(
        (ext.data["identity"].as_str(), ext.data["reason"].as_str()),
        (Some("alice"), Some("attacker still active"))
    );
}

async fn reverts_retry_and_report_failure(db: Db) {
    let h = Harness::new(db, &[TEMP]).await;
    let run_id = h.alert(alert("r1")).await.run_id.unwrap();
    h.settle().await;
    let rev = h.store.reverts_for_run(&run_id).await.unwrap().remove(0);
    h.vendor.retryable_failures.store(1, Ordering::SeqCst);
    h.clock.advance(3_600_000);
    h.engine.run_due_reverts().await.unwrap();
    let r = h.store.revert(&rev.id).await.unwrap().unwrap();
    assert_eq!((r.state, r.attempt), (RevertState::Scheduled, 1));
    assert!(r.run_after > h.clock.now_ms_pub(), "retried later, durably");
    // A restart (another engine on the same database) finishes it.
    let clock = h.clock.clone();
    let crate::harness::Harness { db, .. } = h;
    let h2 = Harness::with_store(db, &[TEMP], Some(clock)).await;
    h2.clock.advance(60_000);
    assert_eq!(h2.engine.run_due_reverts().await.unwrap(), 1);
    assert_eq!(h2.store.revert(&rev.id).await.unwrap().unwrap().state, RevertState::Reverted);
    // A permanent failure is reported loudly and left for people.
    let run2 = h2.alert(json!({"id": "r2", "rule": "temp", "title": "t", "severity": "high", "confidence": 0.9, "entities": {"source_ip": "192.0.2.77"}})).await.run_id.unwrap();
    h2.settle().await;
    let rev2 = h2.store.reverts_for_run(&run2).await.unwrap().remove(0);
    h2.vendor.permanent_failures.store(1, Ordering::SeqCst);
    h2.clock.advance(3_600_000);
    h2.engine.run_due_reverts().await.unwrap();
    let r2 = h2.store.revert(&rev2.id).await.unwrap().unwrap();
    assert_eq!(r2.state, RevertState::Failed);
    let ev = h2.store.run_events(&run2, &r2.incident_id).await.unwrap();
    assert!(ev.iter().any(|e| e.kind == "revert_failed" && e.data["note"].as_str().unwrap().contains("by hand")));
    let _ = Wait::Retry;
}
