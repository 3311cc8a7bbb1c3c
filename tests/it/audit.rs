//! The hash-chained audit trail: every kind of change is recorded, and any edit, insertion or
//! deletion is found and named. On both databases.

use crate::common::{run_in, write};
use crate::harness::{Db, Harness};
use crate::on_both_databases;
use floodgate::store::audit::Verdict;
use serde_json::json;

const PB: &str = r#"
id: audited
name: Audited
match: {rule: audit}
steps:
  containment:
    - id: block
      action: test.contain
      approval: {groups: [oncall], timeout: 10m}
      with: {target: "{{ alert.entities.source_ip }}"}
"#;

on_both_databases!(tampering_is_detected_and_named);

async fn tampering_is_detected_and_named(db: Db) {
    let h = Harness::new(db, &[PB]).await;
    let run_id = h
        .alert(json!({"id": "a1", "rule": "audit", "title": "t", "entities": {"source_ip": "198.51.100.1"}}))
        .await
        .run_id
        .unwrap();
    h.settle().await;
    let apr = h.store.pending_approvals().await.unwrap()[0].id.clone();
    h.engine.decide(&apr, "alice", true, Some("ok"), "cli").await.unwrap().unwrap();
    h.settle().await;
    let kinds: Vec<String> = h
        .store
        .run_events(&run_id, &h.run(&run_id).await.incident_id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    for k in [
        "alert_received",
        "run_queued",
        "approval_requested",
        "vote",
        "approval_decided",
        "step_started",
        "step_succeeded",
        "run_finished",
    ] {
        assert!(kinds.iter().any(|x| x == k), "{k} missing from {kinds:?}");
    }
    let Verdict::Intact { entries, head } = h.store.verify_audit().await.unwrap() else {
        panic!("fresh chain must verify")
    };
    assert_eq!(entries as usize, kinds.len());
    assert_eq!(head.len(), 64);

    // Edit one entry's content.
    let mut tx = h.store.begin().await.unwrap();
    tx.exec("UPDATE events SET data = '{\"identity\":\"mallory\"}' WHERE seq = 4", vec![]).await.unwrap();
    tx.commit().await.unwrap();
    assert!(matches!(h.store.verify_audit().await.unwrap(), Verdict::Broken { seq: 4, .. }));
    // Restore it, then delete an entry in the middle.
    let mut tx = h.store.begin().await.unwrap();
    tx.exec("DELETE FROM events WHERE seq = 4", vec![]).await.unwrap();
    tx.commit().await.unwrap();
    match h.store.verify_audit().await.unwrap() {
        Verdict::Broken { seq: 4, reason } => assert!(reason.contains("missing"), "{reason}"),
        other => panic!("{other:?}"),
    }
    // Insert a forged entry at the end.
    let mut tx = h.store.begin().await.unwrap();
    tx.exec("DELETE FROM events WHERE seq >= 4", vec![]).await.unwrap();
    tx.exec(
        "INSERT INTO events (seq, at, kind, data, prev_hash, hash) VALUES (4, 0, 'vote', '{}', 'ab', 'cd')",
        vec![],
    )
    .await
    .unwrap();
    tx.commit().await.unwrap();
    assert!(matches!(h.store.verify_audit().await.unwrap(), Verdict::Broken { seq: 4, .. }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audit_commands_verify_and_export() {
    let h = Harness::new(Db::new(crate::harness::Backend::Sqlite).await, &[PB]).await;
    h.alert(json!({"id": "a1", "rule": "audit", "title": "t", "entities": {"source_ip": "198.51.100.1"}})).await;
    h.settle().await;
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "floodgate.toml", format!("[database]\nurl = \"{}\"\n", h.db.url));
    let (code, out, _) = run_in(dir.path(), &["audit", "verify"]);
    assert_eq!(code, 0);
    assert!(out.starts_with("ok: 4 audit entries, chain intact; head "), "{out}");
    let (code, out, err) = run_in(dir.path(), &["audit", "export", "--format", "jsonl"]);
    assert_eq!(code, 0, "{err}");
    let lines: Vec<serde_json::Value> = out.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 4);
    assert_eq!(lines[0]["seq"], 1);
    assert_eq!(lines[0]["prev_hash"], floodgate::store::audit::GENESIS);
    assert_eq!(lines[1]["prev_hash"], lines[0]["hash"]);
    let (_, out, _) = run_in(dir.path(), &["audit", "export", "--since", "2100-01-01T00:00:00Z"]);
    assert_eq!(out, "");
    let (code, _, err) = run_in(dir.path(), &["audit", "export", "--since", "yesterday"]);
    assert_eq!(code, 1);
    assert!(err.contains("RFC 3339"), "{err}");
    let mut tx = h.store.begin().await.unwrap();
    tx.exec("UPDATE events SET kind = 'nothing' WHERE seq = 2", vec![]).await.unwrap();
    tx.commit().await.unwrap();
    let (code, out, _) = run_in(dir.path(), &["audit", "verify"]);
    assert_eq!(code, 1);
    assert!(out.contains("audit trail broken at entry 2"), "{out}");
}
