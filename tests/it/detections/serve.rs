//! `floodgate serve` with `[detections]` and `[[audit_files]]`, killed by a failpoint between
//! reading (the statement ran, the file was read) and committing: the restarted server runs
//! the same window and reads the same lines again, and every finding is stored exactly once.

use super::files::delivered_lines;
use super::{EXPECTED, Lakehouse, alert_count, detections_dir, shipped_detections, stored_findings};
use crate::harness::Db;
use crate::on_both_databases;
use crate::server::{Server, config};
use floodgate::store::Store;
use std::path::Path;
use std::time::{Duration, Instant};

const SOURCE: &str = "databricks-detection";

fn floodgate_toml(dir: &Path, db: &Db, lake: &Lakehouse, audit_dir: &Path) -> std::path::PathBuf {
    let extra = format!(
        r#"
[[identities]]
id = "alice"
[[identities]]
id = "bob"
[groups]
oncall = ["alice", "bob"]

[detections]
directory = "{detections}"
lag = "0s"
overlap = "15m"
# The fixtures are months old: the first window reaches back far enough to see them.
max_lookback = "400d"

[[audit_files]]
name = "audit-files"
directory = "{audit}"
poll_interval = "200ms"
[[audit_files.rules]]
actions = ["accounts.login"]
when = "event.response.status_code >= 400"
{connector}"#,
        detections = detections_dir().display(),
        audit = audit_dir.display(),
        connector = lake.connector_toml()
    );
    // The shipped Databricks playbooks, so the alerts start real runs against the simulator.
    let playbooks = dir.join("playbooks");
    std::fs::create_dir_all(&playbooks).unwrap();
    for entry in std::fs::read_dir(crate::common::repo().join("playbooks")).unwrap().filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with("databricks-") || name == "schema.json" {
            std::fs::copy(entry.path(), playbooks.join(&name)).unwrap();
        }
    }
    config(dir, &db.url, &playbooks, &extra)
}

/// Waits until `check` holds (polling the database), or fails with what was seen.
async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), String>>,
{
    let start = Instant::now();
    loop {
        match check().await {
            Ok(()) => return,
            Err(seen) if start.elapsed() > timeout => panic!("{what}: still not true after {timeout:?}: {seen}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

async fn all_windows_committed(store: &Store, detections: usize) -> Result<(), String> {
    let w = store.watermarks().await.map_err(|e| e.to_string())?;
    let done = w.iter().filter(|w| w.windows >= 1).count();
    if done == detections { Ok(()) } else { Err(format!("{done} of {detections} detections committed: {w:?}")) }
}

on_both_databases!(crashes_before_the_commit_rerun_the_window_and_the_file_without_duplicates);

async fn crashes_before_the_commit_rerun_the_window_and_the_file_without_duplicates(db: Db) {
    let lake = Lakehouse::start().await;
    let dir = tempfile::tempdir().unwrap();
    let audit_dir = dir.path().join("audit-logs");
    std::fs::create_dir_all(&audit_dir).unwrap();
    let cfg = floodgate_toml(dir.path(), &db, &lake, &audit_dir);
    let store = Store::connect(&db.url, 2).await.unwrap();

    // 1. Killed after the first detection's statement ran, before its window committed.
    let mut server = Server::start(&cfg, &[("FLOODGATE_FAILPOINTS", "detections.before_commit=kill")]);
    let status = server.wait_exit(Duration::from_secs(30));
    assert!(status.is_some(), "the failpoint killed the server; stderr:\n{}", server.stderr());
    assert!(server.stderr().contains("failpoint detections.before_commit"), "{}", server.stderr());
    assert_eq!(alert_count(&store, SOURCE).await, 0, "nothing of the interrupted window is stored");
    assert!(store.watermarks().await.unwrap().iter().all(|w| w.windows == 0), "no watermark moved");

    // 2. Restarted: every window runs (the dead process's lease expires), each finding once.
    let mut server = Server::start(&cfg, &[]);
    let detections = shipped_detections().len();
    eventually("every detection committed its window", Duration::from_secs(60), || {
        all_windows_committed(&store, detections)
    })
    .await;
    assert_eq!(stored_findings(&store, SOURCE).await, EXPECTED);
    for w in store.watermarks().await.unwrap() {
        assert_eq!(w.windows, 1, "the watermark moved exactly once: {w:?}");
    }

    // 3. A delivered audit-log file appears; the intake is killed before its commit.
    server.sigterm();
    let file = audit_dir.join("workspaceId=4242424242424242/date=2026-09-01/auditlogs_0001.json");
    let mut server = Server::start(&cfg, &[("FLOODGATE_FAILPOINTS", "audit_files.before_commit=kill")]);
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, delivered_lines().join("\n") + "\n").unwrap();
    let status = server.wait_exit(Duration::from_secs(30));
    assert!(status.is_some(), "the failpoint killed the server; stderr:\n{}", server.stderr());
    assert_eq!(alert_count(&store, "audit-files").await, 0);
    assert!(store.audit_files("audit-files").await.unwrap().is_empty(), "no progress was saved");

    // 4. Restarted: the file is read from the start, once.
    let mut server = Server::start(&cfg, &[]);
    eventually("the audit-log file was read", Duration::from_secs(30), || async {
        let n = alert_count(&store, "audit-files").await;
        if n == 6 { Ok(()) } else { Err(format!("{n} alerts")) }
    })
    .await;
    // Another scan or two, and a restart, change nothing.
    tokio::time::sleep(Duration::from_millis(600)).await;
    server.sigterm();
    let mut server = Server::start(&cfg, &[]);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(alert_count(&store, "audit-files").await, 6, "six failed logins, once");
    assert_eq!(stored_findings(&store, SOURCE).await, EXPECTED, "restarts add no detection alerts");
    let progress = store.audit_files("audit-files").await.unwrap();
    assert_eq!(progress.len(), 1);
    assert_eq!(progress[0].byte_offset, std::fs::metadata(&file).unwrap().len() as i64);
    server.sigterm();
    store.close().await;
}
