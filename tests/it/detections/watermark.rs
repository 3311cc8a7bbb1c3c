//! The watermark's contract on both databases: each window is committed exactly once, with its
//! alerts, and never skipped — not by late events (caught by the overlap, once), not by a
//! FAILED statement or a 429 storm (the same window runs again), not by a second process (the
//! lease lets one of them run it, the fence stops a process that lost its lease).

use super::{Lakehouse, Soc, alert_count, ms, only, shipped_detections, stored_findings};
use crate::harness::Db;
use crate::on_both_databases;
use floodgate::ingest::detections::{Outcome, poller};
use floodgate::store::detections::advance_watermark_in;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const SOURCE: &str = "databricks-detection";
const MIN: i64 = 60_000;

fn committed(r: &Result<Outcome, poller::DetectionError>) -> &poller::Committed {
    match r {
        Ok(Outcome::Committed(c)) => c,
        other => panic!("expected a committed window, got {other:?}"),
    }
}

on_both_databases!(
    windows_commit_once_and_late_events_inside_the_overlap_are_caught_once,
    failed_statements_and_429_storms_lose_no_window,
    two_processes_never_commit_the_same_window,
);

async fn windows_commit_once_and_late_events_inside_the_overlap_are_caught_once(db: Db) {
    let lake = Lakehouse::start().await;
    let now = ms("2026-09-02T10:30:00Z");
    let soc =
        Soc::start_with(db, &lake, BTreeMap::new(), now, only(&["failed-logins", "account-takeover-new-ip"])).await;
    let first = soc.poller.run_until_caught_up().await;
    assert_eq!(first.len(), 2);
    for (_, r) in &first {
        let c = committed(r);
        assert_eq!((c.window.since, c.window.until), (now - MIN - 24 * 60 * MIN, now - MIN), "first window");
    }
    assert_eq!(
        stored_findings(&soc.store, SOURCE).await,
        ["failed-logins|medium|erin@corp.example|198.51.100.23|"],
        "erin's seven failures; frank's and grace's are benign, dana's are older than max_lookback"
    );
    // Nothing new yet: no window, no statement.
    let statements = lake.sim.statement_count();
    for (_, r) in soc.poller.run_until_caught_up().await {
        assert_eq!(r.unwrap(), Outcome::Idle);
    }
    assert_eq!(lake.sim.statement_count(), statements);

    // Erin's successful login at 10:20 reaches the system table only now, after the window
    // that covered 10:20 was committed.
    let late = json!({"account_id": "0a1b2c3d-0000-4000-8000-00000000abcd", "workspace_id": super::WORKSPACE_ID,
        "event_time": "2026-09-02T10:20:00.000+00:00", "event_date": "2026-09-02", "source_ip_address": "198.51.100.23",
        "user_identity": {"email": "erin@corp.example"}, "service_name": "accounts", "action_name": "login",
        "request_id": "late-1", "request_params": {"user": "erin@corp.example"}, "response": {"status_code": 200},
        "audit_level": "WORKSPACE_LEVEL", "event_id": "late-erin-login"});
    lake.sim.load_audit_events(&late.to_string()).await.unwrap();
    soc.clock.advance(5 * MIN);
    for (job, r) in soc.poller.run_until_caught_up().await {
        let c = committed(&r);
        assert_eq!(
            (c.window.since, c.window.until),
            (now - MIN, now + 4 * MIN),
            "the next window starts at the watermark"
        );
        match job.detection.id.as_str() {
            "account-takeover-new-ip" => {
                assert_eq!(c.statement.since, now - MIN - 15 * MIN, "the statement reaches back the overlap");
                assert_eq!((c.new_alerts, c.duplicates), (1, 0), "the late login is caught");
            }
            _ => {
                assert_eq!(c.statement.since, now - MIN - 60 * MIN, "an hourly aggregation reaches back its lookback");
                assert_eq!((c.new_alerts, c.duplicates), (0, 1), "erin's hour is seen again, as a duplicate");
            }
        }
    }
    // Still inside the overlap on the next window: found again, stored once.
    soc.clock.advance(5 * MIN);
    for (job, r) in soc.poller.run_until_caught_up().await {
        let c = committed(&r);
        assert_eq!(c.new_alerts, 0, "{}", job.detection.id);
    }
    assert_eq!(alert_count(&soc.store, SOURCE).await, 2);
    for w in soc.store.watermarks().await.unwrap() {
        assert_eq!((w.watermark, w.windows, w.failures), (now + 9 * MIN, 3, 0), "{w:?}");
        assert_eq!(w.lease_owner, None, "no lease is held between windows");
    }
    assert_eq!(soc.store.watermarks().await.unwrap().iter().map(|w| w.alerts).sum::<i64>(), 2);
}

async fn failed_statements_and_429_storms_lose_no_window(db: Db) {
    let lake = Lakehouse::start().await;
    let now = ms("2026-09-02T10:30:00Z");
    let soc = Soc::start_with(db, &lake, BTreeMap::new(), now, only(&["failed-logins"])).await;
    let job = soc.poller.jobs()[0].clone();
    let start = now - MIN - 24 * 60 * MIN;

    lake.sim.fail_next_statement("INTERNAL_ERROR", "the warehouse lost its driver");
    let e = soc.poller.run_window(&job).await.unwrap_err();
    assert!(e.to_string().contains("the warehouse lost its driver"), "{e}");
    let w = soc.store.watermark("failed-logins", "prod").await.unwrap().unwrap();
    assert_eq!((w.watermark, w.windows, w.failures, w.lease_owner.as_deref()), (start, 0, 1, None));
    assert!(w.last_error.as_deref().unwrap_or("").contains("lost its driver"), "{w:?}");

    // A 429 storm longer than the connector's own retries.
    lake.sim.faults().rate_limit_next(1000, 0, Some("/api/2.0/sql/statements"));
    match soc.poller.run_window(&job).await {
        Err(poller::DetectionError::Statement(e)) => assert!(e.is_retryable(), "{e:?}"),
        other => panic!("expected the storm to fail the window: {other:?}"),
    }
    let w = soc.store.watermark("failed-logins", "prod").await.unwrap().unwrap();
    assert_eq!((w.watermark, w.failures), (start, 2), "the watermark did not move");
    assert_eq!(alert_count(&soc.store, SOURCE).await, 0);

    lake.sim.faults().clear();
    soc.clock.advance(MIN);
    let r = soc.poller.run_window(&job).await;
    let c = committed(&r);
    assert_eq!(c.window.since, start, "the failed window is the one that runs");
    assert_eq!(c.new_alerts, 1);
    let w = soc.store.watermark("failed-logins", "prod").await.unwrap().unwrap();
    // One max_lookback from where it started (the minute the clock moved is the next window).
    assert_eq!((w.watermark, w.windows, w.failures, w.last_error), (start + 24 * 60 * MIN, 1, 0, None));
}

async fn two_processes_never_commit_the_same_window(db: Db) {
    let lake = Lakehouse::start().await;
    // Slow statements, so both processes are inside a window at the same time.
    lake.sim.set_statement_latency(Duration::from_millis(200));
    let now = ms("2026-09-02T17:00:00Z");
    let a = Soc::start_with(db, &lake, BTreeMap::new(), now, shipped_detections()).await;
    let b = a.second(&lake, shipped_detections()).await;
    let (ra, rb) = tokio::join!(a.poller.run_until_caught_up(), b.poller.run_until_caught_up());
    let mut per_job: BTreeMap<String, Vec<Outcome>> = BTreeMap::new();
    for (job, r) in ra.into_iter().chain(rb) {
        per_job.entry(job.detection.id.clone()).or_default().push(r.unwrap());
    }
    let busy = per_job.values().flatten().filter(|o| **o == Outcome::Busy).count();
    assert!(busy > 0, "the two processes met on at least one window: {per_job:?}");
    let mut new_alerts = 0;
    for (id, outcomes) in &per_job {
        let commits: Vec<_> =
            outcomes.iter().filter_map(|o| if let Outcome::Committed(c) = o { Some(c) } else { None }).collect();
        assert_eq!(commits.len(), 1, "{id}: exactly one process commits the window: {outcomes:?}");
        assert!(
            outcomes.iter().all(|o| matches!(o, Outcome::Committed(_) | Outcome::Busy | Outcome::Idle)),
            "{outcomes:?}"
        );
        new_alerts += commits[0].new_alerts;
    }
    let expected =
        super::expected_before("2026-09-02T17:00:00Z").into_iter().filter(|f| !f.contains("dana@")).collect::<Vec<_>>();
    assert_eq!(stored_findings(&a.store, SOURCE).await, expected, "dana's attack is older than max_lookback");
    assert_eq!(new_alerts, expected.len());
    for w in a.store.watermarks().await.unwrap() {
        assert_eq!((w.windows, w.watermark), (1, now - MIN), "{w:?}");
    }

    // The fence: a process whose lease expired cannot commit over the one that took over.
    let store = &a.store;
    let t = now + 10 * MIN;
    let lease = 30_000;
    let first = store.claim_detection("fence", "prod", "soc-1", t, t + lease, t - MIN).await.unwrap().unwrap();
    assert!(store.claim_detection("fence", "prod", "soc-2", t, t + lease, t - MIN).await.unwrap().is_none(), "busy");
    let later = t + lease + 1;
    let second = store.claim_detection("fence", "prod", "soc-2", later, later + lease, t - MIN).await.unwrap().unwrap();
    assert_eq!(second.watermark, first.watermark);
    let mut tx = store.begin_durable().await.unwrap();
    assert!(!advance_watermark_in(&mut tx, "fence", "prod", "soc-1", first.watermark, t, 0, t).await.unwrap());
    drop(tx);
    let mut tx = store.begin_durable().await.unwrap();
    assert!(advance_watermark_in(&mut tx, "fence", "prod", "soc-2", second.watermark, t, 0, later).await.unwrap());
    tx.commit().await.unwrap();
    let w = store.watermark("fence", "prod").await.unwrap().unwrap();
    assert_eq!((w.watermark, w.windows, w.lease_owner), (t, 1, None));
}
