//! The engine suite: intake, grouping, the run state machine, approvals, retries, leases.
//! Every test runs on SQLite and on PostgreSQL.

use crate::harness::{Db, Harness, T0};
use crate::on_both_databases;
use floodgate::store::audit::Verdict;
use floodgate::store::{ApprovalState, RunState, StepState, Wait};
use serde_json::json;
use std::sync::atomic::Ordering;
use std::time::Duration;

const FLOW: &str = r#"
id: flow
name: Flow
match: {source: siem, rule: "login*"}
group: {key: "{{ alert.entities.user }}", window: 1h}
vars: {greeting: hello}
steps:
  triage:
    - id: score
      action: core.set
      with: {risk: "{{ (alert.confidence * 100) | int }}", who: "{{ alert.entities.user }}"}
    - id: benign
      action: core.close
      when: alert.severity == "info"
      with: {reason: "informational only"}
  investigation:
    - id: note
      action: core.log
      with: {message: "{{ vars.greeting }} {{ vars.who }} risk {{ vars.risk }}"}
    - id: each
      action: test.notify
      foreach: "{{ alert.fields.ips }}"
      with: {target: "{{ item }}"}
  remediation:
    - id: tell
      action: test.notify
      with: {target: "{{ steps.note.output.message }}"}
"#;

fn login(id: &str, user: &str, severity: &str) -> serde_json::Value {
    json!({"id": id, "title": "login", "rule": "login-failure", "severity": severity, "confidence": 0.8,
           "entities": {"user": user}, "ips": ["10.0.0.1", "10.0.0.2", "10.0.0.3"]})
}

on_both_databases!(
    a_run_walks_every_phase_to_success,
    duplicates_and_grouping,
    one_batch_dedups_and_groups_like_alerts_one_by_one,
    triage_can_close_as_benign,
    approval_gates_containment_until_quorum,
    separation_of_duties_is_enforced,
    deadlines_deny_approve_or_escalate,
    retries_are_durable_and_honour_retry_after,
    permanent_errors_fail_or_continue,
    a_crash_after_the_intent_repeats_the_call_with_the_same_key,
    a_worker_that_lost_its_lease_cannot_write,
    auto_approval_is_recorded_with_its_rule,
    runs_stay_on_the_playbook_version_they_started_with,
    concurrent_votes_from_two_channels_count_once_each,
    an_empty_foreach_gives_an_empty_list,
);

async fn a_run_walks_every_phase_to_success(db: Db) {
    let h = Harness::new(db, &[FLOW]).await;
    let acc = h.alert(login("a1", "dana@corp.example", "high")).await;
    assert!(!acc.duplicate);
    let run_id = acc.run_id.expect("a run started");
    h.settle().await;
    let run = h.run(&run_id).await;
    assert_eq!(run.state, RunState::Succeeded, "{run:?}");
    assert_eq!(run.vars["risk"], 80, "a single expression keeps its type");
    let steps = h.store.step_executions(&run_id).await.unwrap();
    let states: Vec<(&str, i64, StepState)> =
        steps.iter().map(|s| (s.step_id.as_str(), s.iteration, s.state)).collect();
    assert_eq!(
        states,
        vec![
            ("score", 0, StepState::Succeeded),
            ("benign", 0, StepState::Skipped),
            ("note", 0, StepState::Succeeded),
            ("each", 0, StepState::Succeeded),
            ("each", 1, StepState::Succeeded),
            ("each", 2, StepState::Succeeded),
            ("tell", 0, StepState::Succeeded),
        ]
    );
    let targets: Vec<String> =
        h.vendor.inputs("notify").iter().map(|i| i["target"].as_str().unwrap().to_string()).collect();
    assert_eq!(targets, ["10.0.0.1", "10.0.0.2", "10.0.0.3", "hello dana@corp.example risk 80"]);
    // Each foreach item has its own idempotency key.
    assert_eq!(h.vendor.effect_count(), 4);
    let events = h.events(&run).await;
    for kind in
        ["alert_received", "run_queued", "run_started", "note", "step_succeeded", "step_skipped", "run_finished"]
    {
        assert!(events.iter().any(|e| e == kind), "missing {kind} in {events:?}");
    }
}

async fn duplicates_and_grouping(db: Db) {
    let h = Harness::new(db, &[FLOW]).await;
    let first = h.alert(login("g1", "eve@corp.example", "high")).await;
    let dup = h.alert(login("g1", "eve@corp.example", "high")).await;
    assert!(dup.duplicate);
    assert_eq!(
        (dup.alert_id.as_str(), dup.incident_id.as_str(), dup.run_id.as_deref()),
        (first.alert_id.as_str(), first.incident_id.as_str(), first.run_id.as_deref())
    );
    let joined = h.alert(login("g2", "eve@corp.example", "critical")).await;
    assert!(!joined.duplicate);
    assert_eq!(joined.incident_id, first.incident_id);
    assert_eq!(joined.run_id, None, "a grouped alert starts no run");
    let inc = h.store.incident(&first.incident_id).await.unwrap().unwrap();
    assert_eq!((inc.alert_count, inc.severity.as_str()), (2, "critical"));
    let other_user = h.alert(login("g3", "frank@corp.example", "high")).await;
    assert_ne!(other_user.incident_id, first.incident_id);
    h.clock.advance(3_600_001);
    let later = h.alert(login("g4", "eve@corp.example", "high")).await;
    assert_ne!(later.incident_id, first.incident_id, "outside the window a new incident opens");
    assert!(later.run_id.is_some());
    let unmatched = h.alert(json!({"id": "u1", "title": "other", "rule": "dns"})).await;
    assert!(unmatched.run_id.is_none());
    assert!(h.store.incident(&unmatched.incident_id).await.unwrap().is_some());
}

const EMPTY_EACH: &str = r#"
id: empty-each
name: Empty foreach
match: {rule: "empty*"}
steps:
  investigation:
    - id: each
      action: test.notify
      foreach: "{{ alert.fields.ips }}"
      with: {target: "{{ item }}"}
    - id: never
      action: test.notify
      when: alert.severity == "info"
      foreach: "{{ alert.fields.ips }}"
      with: {target: "{{ item }}"}
    - id: count
      action: core.set
      with: {each: "{{ steps.each.output | length }}", never: "{{ steps.never.output | length }}"}
"#;

/// A `foreach` over an empty list (or skipped as a whole) has the output `[]`, so later
/// templates can iterate it.
async fn an_empty_foreach_gives_an_empty_list(db: Db) {
    let h = Harness::new(db, &[EMPTY_EACH]).await;
    let body = json!({"id": "e1", "title": "t", "rule": "empty-list", "severity": "high", "ips": []});
    let run_id = h.alert(body).await.run_id.expect("a run");
    h.settle().await;
    let run = h.run(&run_id).await;
    assert_eq!(run.state, RunState::Succeeded, "{run:?}");
    assert_eq!((run.vars["each"].clone(), run.vars["never"].clone()), (json!(0), json!(0)), "{:?}", run.vars);
    assert_eq!(h.vendor.calls("test.notify"), 0);
}

/// Intake stores a batch with a few statements; the outcome must be that of taking its alerts
/// one by one: duplicates of stored alerts and of earlier alerts of the same batch, joining
/// stored incidents and incidents the batch itself opened, windows, and one continuous audit
/// chain in the batch's order. A large batch crosses the multi-row statements' chunk size.
async fn one_batch_dedups_and_groups_like_alerts_one_by_one(db: Db) {
    let h = Harness::new(db, &[FLOW]).await;
    let frank_old = h.alert(login("b1", "frank@corp.example", "high")).await;
    h.clock.advance(40 * 60_000);
    let eve = h.alert(login("b0", "eve@corp.example", "low")).await;
    h.clock.advance(40 * 60_000);
    // Now frank's incident is outside the 1h window and eve's is inside.
    let bodies = [
        login("c1", "carol@corp.example", "high"),
        login("c1", "carol@corp.example", "high"),
        login("c2", "carol@corp.example", "critical"),
        login("b0", "eve@corp.example", "low"),
        login("c3", "eve@corp.example", "critical"),
        login("c4", "eve@corp.example", "medium"),
        login("c5", "frank@corp.example", "low"),
        login("c6", "frank@corp.example", "high"),
        json!({"id": "u1", "title": "other", "rule": "dns"}),
        login("c2", "carol@corp.example", "critical"),
    ];
    let batch: Vec<_> = bodies.into_iter().map(|b| h.routed(b)).collect();
    let got = h.store.accept_alerts(&batch, h.engine.now()).await.unwrap();
    let ids = |i: usize| (got[i].alert_id.clone(), got[i].incident_id.clone(), got[i].run_id.clone());
    let flags: Vec<(bool, bool, bool)> = got.iter().map(|a| (a.duplicate, a.joined, a.run_id.is_some())).collect();
    assert_eq!(
        flags,
        [
            (false, false, true),
            (true, false, true),
            (false, true, false),
            (true, false, true),
            (false, true, false),
            (false, true, false),
            (false, false, true),
            (false, true, false),
            (false, false, false),
            (true, false, false),
        ]
    );
    assert_eq!(ids(1), ids(0), "a duplicate within the batch answers with the first alert");
    assert_eq!(ids(9), ids(2));
    assert_eq!(got[2].incident_id, got[0].incident_id, "joins the incident an earlier alert of the batch opened");
    assert_eq!(ids(3), (eve.alert_id.clone(), eve.incident_id.clone(), eve.run_id.clone()));
    assert_eq!(
        (got[4].incident_id.as_str(), got[5].incident_id.as_str()),
        (eve.incident_id.as_str(), eve.incident_id.as_str())
    );
    assert_ne!(got[6].incident_id, frank_old.incident_id, "outside the window a new incident opens");
    assert_eq!(got[7].incident_id, got[6].incident_id);
    let incident = |id: String| {
        let store = h.store.clone();
        async move {
            let i = store.incident(&id).await.unwrap().unwrap();
            (i.alert_count, i.severity)
        }
    };
    assert_eq!(incident(got[0].incident_id.clone()).await, (2, "critical".to_string()));
    assert_eq!(incident(eve.incident_id.clone()).await, (3, "critical".to_string()));
    assert_eq!(incident(frank_old.incident_id.clone()).await, (1, "high".to_string()));
    assert_eq!(incident(got[6].incident_id.clone()).await, (2, "high".to_string()));
    assert_eq!(incident(got[8].incident_id.clone()).await, (1, "medium".to_string()));
    let eve_row = h.store.incident(&eve.incident_id).await.unwrap().unwrap();
    assert_eq!(eve_row.last_alert_at, h.engine.now());
    assert_eq!(h.store.count_alerts().await.unwrap(), 9);
    let run = h.run(got[0].run_id.as_deref().unwrap()).await;
    assert_eq!((&run.state, run.alert_id.as_str()), (&RunState::Queued, got[0].alert_id.as_str()));
    assert_eq!(run.playbook_hash, h.run(frank_old.run_id.as_deref().unwrap()).await.playbook_hash);
    // Two stored alerts made 4 entries; the batch adds, in its order, 2 per run and 1 per join
    // or unmatched alert.
    let Verdict::Intact { entries, .. } = h.store.verify_audit().await.unwrap() else { panic!("chain broken") };
    assert_eq!(entries, 4 + 2 + 1 + 1 + 1 + 2 + 1 + 1);
    let kinds: Vec<String> = h.events(&run).await;
    assert_eq!(kinds, ["alert_received", "run_queued", "alert_received"]);

    // More alerts than one statement carries: 600 alerts of 300 users, twice in one batch.
    let bodies: Vec<_> =
        (0..600).map(|i| login(&format!("m{i}"), &format!("u{}@corp.example", i % 300), "high")).collect();
    let batch: Vec<_> = bodies.iter().chain(&bodies).map(|b| h.routed(b.clone())).collect();
    let got = h.store.accept_alerts(&batch, h.engine.now()).await.unwrap();
    assert_eq!(got.iter().filter(|a| a.duplicate).count(), 600);
    assert_eq!(got.iter().filter(|a| a.run_id.is_some() && !a.duplicate).count(), 300);
    assert_eq!(got.iter().filter(|a| a.joined).count(), 300);
    for i in 0..600 {
        assert_eq!(got[i + 600].alert_id, got[i].alert_id);
        assert_eq!(got[i].incident_id, got[i % 300].incident_id);
    }
    assert_eq!(incident(got[299].incident_id.clone()).await, (2, "high".to_string()));
    assert_eq!(h.store.count_alerts().await.unwrap(), 9 + 600);
    let Verdict::Intact { entries: after, .. } = h.store.verify_audit().await.unwrap() else { panic!("chain broken") };
    assert_eq!(after, entries + 300 * 2 + 300);
}

async fn triage_can_close_as_benign(db: Db) {
    let h = Harness::new(db, &[FLOW]).await;
    let acc = h.alert(login("b1", "gus@corp.example", "info")).await;
    h.settle().await;
    let run = h.run(acc.run_id.as_deref().unwrap()).await;
    assert_eq!(run.state, RunState::ClosedBenign);
    let inc = h.store.incident(&acc.incident_id).await.unwrap().unwrap();
    assert_eq!((inc.state.as_str(), inc.resolution.as_deref()), ("closed", Some("benign")));
    assert_eq!(h.vendor.calls("notify"), 0, "nothing after the verdict runs");
    // A closed incident takes no more alerts: the next one opens a new incident.
    let next = h.alert(login("b2", "gus@corp.example", "high")).await;
    assert_ne!(next.incident_id, acc.incident_id);
}

const CONTAIN: &str = r#"
id: contain
name: Contain
match: {rule: intrusion}
steps:
  containment:
    - id: block
      action: test.contain
      approval: {groups: [oncall], quorum: 2, timeout: 30m}
      with: {target: "{{ alert.entities.source_ip }}"}
  remediation:
    - id: after
      action: test.notify
      with: {target: "{{ steps.block.status }}"}
"#;

fn intrusion(id: &str) -> serde_json::Value {
    json!({"id": id, "title": "intrusion", "rule": "intrusion", "severity": "high", "confidence": 0.7,
           "entities": {"user": "dana@corp.example", "source_ip": "203.0.113.7"}})
}

async fn waiting_approval(h: &Harness, run_id: &str) -> String {
    match h.run(run_id).await.state {
        RunState::Waiting(Wait::Approval(id)) => id,
        other => panic!("expected a wait for approval, got {other:?}"),
    }
}

async fn approval_gates_containment_until_quorum(db: Db) {
    let h = Harness::new(db, &[CONTAIN]).await;
    let run_id = h.alert(intrusion("i1")).await.run_id.unwrap();
    h.settle().await;
    let apr = waiting_approval(&h, &run_id).await;
    assert_eq!(h.vendor.calls("contain"), 0, "nothing runs before approval");
    let a = h.store.approval(&apr).await.unwrap().unwrap();
    assert_eq!(a.summary, "block: contain 203.0.113.7");
    assert_eq!(a.plan["requests"][0]["url"], "https://vendor.test/contain");
    let one = h.engine.decide(&apr, "alice", true, Some("looks bad"), "cli").await.unwrap().unwrap();
    assert_eq!((one.state, one.approvals, one.quorum), (ApprovalState::Pending, 1, 2));
    h.settle().await;
    assert_eq!(h.vendor.calls("contain"), 0, "one approval of two is not enough");
    let two = h.engine.decide(&apr, "bob", true, None, "api").await.unwrap().unwrap();
    assert_eq!(two.state, ApprovalState::Approved);
    h.settle().await;
    assert_eq!(h.run(&run_id).await.state, RunState::Succeeded);
    assert_eq!(h.vendor.calls("contain"), 1);
    assert_eq!(h.vendor.inputs("notify")[0]["target"], "succeeded");

    // A denial skips the step and the run goes on.
    let run2 = h.alert(intrusion("i2")).await.run_id.unwrap();
    h.settle().await;
    let apr2 = waiting_approval(&h, &run2).await;
    let d = h.engine.decide(&apr2, "alice", false, Some("false positive"), "cli").await.unwrap().unwrap();
    assert_eq!(d.state, ApprovalState::Denied);
    h.settle().await;
    assert_eq!(h.run(&run2).await.state, RunState::Succeeded);
    assert_eq!(h.vendor.calls("contain"), 1);
    let steps = h.store.step_executions(&run2).await.unwrap();
    assert_eq!(steps[0].state, StepState::Skipped);
    assert!(steps[0].reason.as_deref().unwrap().contains("denied by alice"), "{:?}", steps[0].reason);
}

async fn separation_of_duties_is_enforced(db: Db) {
    let h = Harness::new(db, &[CONTAIN]).await;
    let run_id = h.alert(intrusion("s1")).await.run_id.unwrap();
    h.settle().await;
    let apr = waiting_approval(&h, &run_id).await;
    let self_vote = h.engine.decide(&apr, "dana", true, None, "cli").await.unwrap().unwrap_err();
    assert!(self_vote.contains("aimed at"), "{self_vote}");
    let outsider = h.engine.decide(&apr, "carol", true, None, "cli").await.unwrap().unwrap_err();
    assert!(outsider.contains("not in the approver groups"), "{outsider}");
    let stranger = h.engine.decide(&apr, "mallory", true, None, "cli").await.unwrap().unwrap_err();
    assert!(stranger.contains("not a known identity"), "{stranger}");
    let first = h.engine.decide(&apr, "alice", true, None, "slack").await.unwrap().unwrap();
    let again = h.engine.decide(&apr, "alice", true, None, "web").await.unwrap().unwrap();
    assert!(again.repeated, "a second identical vote counts once");
    assert_eq!((first.approvals, again.approvals), (1, 1));
    let flip = h.engine.decide(&apr, "alice", false, None, "cli").await.unwrap().unwrap_err();
    assert!(flip.contains("already voted"), "{flip}");
    assert_eq!(h.store.approval_votes(&apr).await.unwrap().len(), 1);
    h.clock.advance(31 * 60 * 1000);
    let late = h.engine.decide(&apr, "bob", true, None, "cli").await.unwrap().unwrap_err();
    assert!(late.contains("deadline"), "{late}");
}

const TIMEOUTS: &str = r#"
id: timeouts
name: Timeouts
match: {rule: t}
steps:
  containment:
    - id: deny_me
      action: test.contain
      approval: {groups: [oncall], timeout: 10m}
      with: {target: a}
    - id: approve_me
      action: test.contain
      approval: {groups: [oncall], timeout: 10m, on_timeout: approve}
      with: {target: b}
    - id: escalate_me
      action: test.destroy
      approval: {groups: [oncall], timeout: 10m, on_timeout: escalate, escalate_to: [leads]}
      with: {target: c}
"#;

async fn deadlines_deny_approve_or_escalate(db: Db) {
    let h = Harness::new(db, &[TIMEOUTS]).await;
    let run_id = h.alert(json!({"id": "t1", "rule": "t", "title": "t"})).await.run_id.unwrap();
    h.settle().await;
    let a1 = waiting_approval(&h, &run_id).await;
    h.clock.advance(9 * 60 * 1000);
    assert_eq!(h.engine.tick_timers().await.unwrap(), 0, "not due yet");
    h.clock.advance(60 * 1000 + 1);
    assert_eq!(h.engine.tick_timers().await.unwrap(), 1);
    assert_eq!(h.store.approval(&a1).await.unwrap().unwrap().state, ApprovalState::Expired);
    h.settle().await;
    let a2 = waiting_approval(&h, &run_id).await;
    h.clock.advance(10 * 60 * 1000 + 1);
    h.engine.tick_timers().await.unwrap();
    assert_eq!(h.store.approval(&a2).await.unwrap().unwrap().state, ApprovalState::Approved);
    h.settle().await;
    let a3 = waiting_approval(&h, &run_id).await;
    assert_eq!(h.vendor.inputs("contain"), vec![json!({"target": "b"})], "deny_me skipped, approve_me ran");
    let carol_early = h.engine.decide(&a3, "carol", true, None, "cli").await.unwrap().unwrap_err();
    assert!(carol_early.contains("not in the approver groups"), "{carol_early}");
    h.clock.advance(10 * 60 * 1000 + 1);
    h.engine.tick_timers().await.unwrap();
    let esc = h.store.approval(&a3).await.unwrap().unwrap();
    assert_eq!(
        (esc.state, esc.escalation_level, esc.groups.clone()),
        (ApprovalState::Pending, 1, vec!["oncall".to_string(), "leads".to_string()])
    );
    let ok = h.engine.decide(&a3, "carol", true, Some("escalated to me"), "cli").await.unwrap().unwrap();
    assert_eq!(ok.state, ApprovalState::Approved);
    h.settle().await;
    assert_eq!(h.run(&run_id).await.state, RunState::Succeeded);
    assert_eq!(h.vendor.calls("destroy"), 1);
    let events = h.events(&h.run(&run_id).await).await;
    assert!(events.contains(&"approval_escalated".to_string()), "{events:?}");
}

const FLAKY: &str = r#"
id: flaky
name: Flaky
match: {rule: flaky}
steps:
  investigation:
    - id: call
      action: test.notify
      retry: {max_attempts: 4, backoff: 10s}
      with: {target: x}
"#;

async fn retries_are_durable_and_honour_retry_after(db: Db) {
    let h = Harness::new(db, &[FLAKY]).await;
    h.vendor.retryable_failures.store(2, Ordering::SeqCst);
    *h.vendor.retry_after.lock().unwrap() = Some(Duration::from_secs(30));
    let run_id = h.alert(json!({"id": "f1", "rule": "flaky", "title": "f"})).await.run_id.unwrap();
    h.settle().await;
    let run = h.run(&run_id).await;
    assert_eq!(run.state, RunState::Waiting(Wait::Retry));
    assert_eq!(run.run_after, T0 + 30_000, "Retry-After (30s) beats the 10s backoff");
    h.settle().await;
    assert_eq!(h.vendor.calls("notify"), 1, "nothing happens before run_after");
    h.clock.advance(30_000);
    h.settle().await;
    assert_eq!(h.vendor.calls("notify"), 2);
    let run = h.run(&run_id).await;
    assert_eq!(run.state, RunState::Waiting(Wait::Retry));
    h.clock.advance(30_000);
    h.settle().await;
    assert_eq!(h.run(&run_id).await.state, RunState::Succeeded);
    let steps = h.store.step_executions(&run_id).await.unwrap();
    assert_eq!((steps[0].attempt, steps[0].state), (3, StepState::Succeeded));
    let keys: std::collections::BTreeSet<String> = h.vendor.calls.lock().unwrap().iter().map(|c| c.1.clone()).collect();
    assert_eq!(keys.len(), 1, "every attempt carries the same idempotency key");

    // Retries run out: the step fails for good.
    h.vendor.retryable_failures.store(10, Ordering::SeqCst);
    *h.vendor.retry_after.lock().unwrap() = None;
    let run2 = h.alert(json!({"id": "f2", "rule": "flaky", "title": "f"})).await.run_id.unwrap();
    for _ in 0..4 {
        h.settle().await;
        h.clock.advance(120_000);
    }
    let r = h.run(&run2).await;
    assert_eq!(r.state, RunState::Failed);
    assert!(r.error.as_deref().unwrap().contains("after 4 attempts"), "{:?}", r.error);
}

const FAILING: &str = r#"
id: failing
name: Failing
match: {rule: fail}
steps:
  investigation:
    - id: optional
      action: test.notify
      on_error: continue
      with: {target: one}
    - id: required
      action: test.notify
      with: {target: two}
    - id: never
      action: core.log
      with: {message: unreachable}
"#;

async fn permanent_errors_fail_or_continue(db: Db) {
    let h = Harness::new(db, &[FAILING]).await;
    h.vendor.permanent_failures.store(2, Ordering::SeqCst);
    let run_id = h.alert(json!({"id": "p1", "rule": "fail", "title": "p"})).await.run_id.unwrap();
    h.settle().await;
    let run = h.run(&run_id).await;
    assert_eq!(run.state, RunState::Failed);
    assert!(run.error.as_deref().unwrap().contains("step required failed: vendor refused"), "{:?}", run.error);
    let steps = h.store.step_executions(&run_id).await.unwrap();
    assert_eq!(
        steps.iter().map(|s| (s.step_id.as_str(), s.state)).collect::<Vec<_>>(),
        vec![("optional", StepState::Failed), ("required", StepState::Failed)]
    );
    assert_eq!(h.vendor.calls("notify"), 2, "permanent errors are not retried");
    // A terminal state is never overwritten.
    let mut tx = h.store.begin().await.unwrap();
    assert!(!tx.set_run_state(&run_id, &RunState::Succeeded, 0, None, 0).await.unwrap());
    tx.commit().await.unwrap();
    assert_eq!(h.run(&run_id).await.state, RunState::Failed);
}

async fn a_crash_after_the_intent_repeats_the_call_with_the_same_key(db: Db) {
    let h = Harness::new(db, &[FLAKY]).await;
    let run_id = h.alert(json!({"id": "c1", "rule": "flaky", "title": "c"})).await.run_id.unwrap();
    // A worker claims the run and commits the step's intent, then "dies" (never writes again).
    let claims = h.store.claim_runs("dead-worker", T0, 30_000, 1).await.unwrap();
    let dead = &claims[0];
    let mut tx = h.store.begin_fenced(dead, T0).await.unwrap().unwrap();
    let key = floodgate::engine::idempotency_key(&run_id, "call", 0);
    let row = floodgate::store::StepExecRow {
        id: floodgate::store::new_id("stp"),
        run_id: run_id.clone(),
        step_id: "call".into(),
        iteration: 0,
        seq: 0,
        phase: "investigation".into(),
        action: "test.notify".into(),
        state: StepState::Started,
        attempt: 1,
        idempotency_key: key.clone(),
        input: Some(json!({"target": "x"})),
        plan: None,
        output: None,
        revert_state: None,
        error: None,
        error_code: None,
        reason: None,
        run_after: None,
        started_at: Some(T0),
        finished_at: None,
    };
    tx.insert_step(&row).await.unwrap();
    tx.commit().await.unwrap();
    // Suppose the vendor did act on it before the crash.
    h.vendor.effects.lock().unwrap().insert(key.clone(), 1);
    h.settle().await;
    assert_eq!(h.run(&run_id).await.state, RunState::Running, "claimable only after the dead worker's lease expires");
    assert_eq!(h.vendor.calls("notify"), 0);
    h.clock.advance(30_001);
    h.settle().await;
    let run = h.run(&run_id).await;
    assert_eq!(run.state, RunState::Succeeded);
    let calls = h.vendor.calls.lock().unwrap().clone();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].1, key, "the resumed call reuses the idempotency key");
    assert_eq!(h.vendor.max_effects_per_key(), 1, "and so took effect once");
    let steps = h.store.step_executions(&run_id).await.unwrap();
    assert_eq!(steps[0].attempt, 2);
    // The dead worker, waking up, cannot write anything.
    assert!(h.store.begin_fenced(dead, T0 + 40_000).await.unwrap().is_none());
}

async fn a_worker_that_lost_its_lease_cannot_write(db: Db) {
    let h = Harness::new(db, &[FLAKY]).await;
    let run_id = h.alert(json!({"id": "l1", "rule": "flaky", "title": "l"})).await.run_id.unwrap();
    let old = h.store.claim_runs("w-old", T0, 30_000, 10).await.unwrap().remove(0);
    assert!(
        h.store.claim_runs("w-new", T0 + 1_000, 30_000, 10).await.unwrap().is_empty(),
        "a held lease is not claimable"
    );
    let new = h.store.claim_runs("w-new", T0 + 30_001, 30_000, 10).await.unwrap().remove(0);
    assert_eq!(new.run_id, run_id);
    assert_eq!(new.epoch, old.epoch + 1);
    assert!(h.store.begin_fenced(&old, T0 + 30_002).await.unwrap().is_none(), "the old owner is fenced out");
    assert!(!h.store.renew_lease(&old, T0 + 90_000).await.unwrap());
    assert!(h.store.renew_lease(&new, T0 + 90_000).await.unwrap());
    assert!(h.store.begin_fenced(&new, T0 + 30_002).await.unwrap().is_some());
    // Shutdown hands the run back for the next worker.
    assert_eq!(h.store.release_leases("w-new", T0 + 30_003).await.unwrap(), 1);
    assert_eq!(h.run(&run_id).await.state, RunState::Queued);
}

const AUTO: &str = r#"
id: auto
name: Auto
match: {rule: auto}
auto_approve: {min_confidence: 0.9}
steps:
  containment:
    - id: block
      action: test.contain
      with: {target: "{{ alert.entities.source_ip }}"}
"#;

async fn auto_approval_is_recorded_with_its_rule(db: Db) {
    let h = Harness::new(db, &[AUTO]).await;
    let sure = h.alert(json!({"id": "x1", "rule": "auto", "title": "x", "severity": "critical", "confidence": 0.95, "entities": {"source_ip": "1.1.1.1"}})).await;
    let unsure = h.alert(json!({"id": "x2", "rule": "auto", "title": "x", "severity": "critical", "confidence": 0.5, "entities": {"source_ip": "2.2.2.2"}})).await;
    h.settle().await;
    assert_eq!(h.run(sure.run_id.as_deref().unwrap()).await.state, RunState::Succeeded);
    let steps = h.store.step_executions(sure.run_id.as_deref().unwrap()).await.unwrap();
    let a = h.store.approval_for_step(&steps[0].id).await.unwrap().unwrap();
    assert_eq!(a.state, ApprovalState::Approved);
    assert!(a.auto_rule.as_deref().unwrap().contains("auto_approve: confidence 0.95 >= 0.9"), "{:?}", a.auto_rule);
    // Low confidence falls back to people (the config's default approvers for `contain`).
    let waiting = h.run(unsure.run_id.as_deref().unwrap()).await.state;
    assert!(matches!(waiting, RunState::Waiting(Wait::Approval(_))), "{waiting:?}");
    assert_eq!(h.vendor.calls("contain"), 1);
}

async fn runs_stay_on_the_playbook_version_they_started_with(db: Db) {
    let h = Harness::new(db, &[CONTAIN]).await;
    let run_id = h.alert(intrusion("v1")).await.run_id.unwrap();
    h.settle().await;
    let apr = waiting_approval(&h, &run_id).await;
    let pinned = h.run(&run_id).await.playbook_hash;
    // A new engine (a restart) with an edited playbook.
    let edited = CONTAIN.replace("target: \"{{ steps.block.status }}\"", "target: edited");
    let clock = h.clock.clone();
    let Harness { db, .. } = h;
    let h2 = Harness::with_store(db, &[&edited], Some(clock)).await;
    h2.engine.decide(&apr, "alice", true, None, "cli").await.unwrap().unwrap();
    h2.engine.decide(&apr, "bob", true, None, "cli").await.unwrap().unwrap();
    h2.settle().await;
    let run = h2.run(&run_id).await;
    assert_eq!((run.state, run.playbook_hash.as_str()), (RunState::Succeeded, pinned.as_str()));
    assert_eq!(h2.vendor.inputs("notify")[0]["target"], "succeeded", "the old version's step ran");
    let new_run = h2.alert(intrusion("v2")).await.run_id.unwrap();
    assert_ne!(h2.run(&new_run).await.playbook_hash, pinned, "new runs use the edited file");
}

async fn concurrent_votes_from_two_channels_count_once_each(db: Db) {
    let h = Harness::new(db, &[CONTAIN]).await;
    let run_id = h.alert(intrusion("cv1")).await.run_id.unwrap();
    h.settle().await;
    let apr = waiting_approval(&h, &run_id).await;
    let (e1, e2) = (h.engine.clone(), h.engine.clone());
    let (a1, a2) = (apr.clone(), apr.clone());
    let (r1, r2) = tokio::join!(
        tokio::spawn(async move { e1.decide(&a1, "alice", true, None, "slack").await }),
        tokio::spawn(async move { e2.decide(&a2, "bob", true, None, "web").await }),
    );
    let (o1, o2) = (r1.unwrap().unwrap().unwrap(), r2.unwrap().unwrap().unwrap());
    let mut counts = [o1.approvals, o2.approvals];
    counts.sort();
    assert_eq!(counts, [1, 2], "the second vote saw the first");
    assert_eq!(h.store.approval(&apr).await.unwrap().unwrap().state, ApprovalState::Approved);
    // A decision racing the deadline: exactly one of them wins.
    let run2 = h.alert(intrusion("cv2")).await.run_id.unwrap();
    h.settle().await;
    let apr2 = waiting_approval(&h, &run2).await;
    h.engine.decide(&apr2, "alice", true, None, "cli").await.unwrap().unwrap();
    h.clock.advance(30 * 60 * 1000);
    let e3 = h.engine.clone();
    let a3 = apr2.clone();
    let (vote, ticked) = tokio::join!(
        tokio::spawn(async move { e3.decide(&a3, "bob", true, None, "api").await }),
        h.engine.tick_timers()
    );
    let final_state = h.store.approval(&apr2).await.unwrap().unwrap().state;
    match vote.unwrap().unwrap() {
        Ok(o) => {
            assert_eq!((o.state, final_state, ticked.unwrap()), (ApprovalState::Approved, ApprovalState::Approved, 0))
        }
        Err(_) => assert_eq!(final_state, ApprovalState::Expired),
    }
}
