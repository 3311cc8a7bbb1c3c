//! The shipped detections on the local SQL engine: the same expectations as on the simulator
//! (`EXPECTED`, over the same fixture files), alert for alert the same alerts; then
//! `floodgate detections test --events` as operators run it (text, json, malformed lines), and
//! over the shared sample events when they are present.

use super::{EXPECTED, Lakehouse, classification_rows, detections_dir, finding, fixture, ms, shipped_detections};
use crate::common::{repo, run_in, write};
use floodgate::ingest::detections::finding::Window;
use floodgate::ingest::detections::{Job, local, poller};
use floodgate_databricks::localsql::LocalSql;
use serde_json::Value;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

/// Both fixture files' rows, in order.
fn fixture_rows() -> Vec<Value> {
    ["audit-events.jsonl", "detections-events.jsonl"]
        .iter()
        .flat_map(|f| fixture(f).lines().filter(|l| !l.trim().is_empty()).map(String::from).collect::<Vec<_>>())
        .map(|l| serde_json::from_str(&l).unwrap())
        .collect()
}

/// An alert without what differs on every run (its own id and receipt time).
fn comparable(a: &Value) -> Value {
    let mut a = a.clone();
    let o = a.as_object_mut().unwrap();
    o.remove("id");
    o.remove("received_at");
    a
}

#[tokio::test]
async fn shipped_detections_on_the_local_engine_find_the_attacks_and_raise_the_simulators_alerts() {
    let engine = LocalSql::open().await.unwrap();
    assert_eq!(engine.load(local::AUDIT, &fixture_rows()).await.unwrap(), 114);
    engine.load("system.data_classification.results", &classification_rows()).await.unwrap();
    let lake = Lakehouse::start().await;
    let dbx = lake.databricks();
    let window = Window { since: ms("2026-08-01T00:00:00Z"), until: ms("2026-09-03T00:00:00Z") };
    let detections = shipped_detections();
    assert_eq!(detections.len(), 12, "a new shipped detection needs its expectations in EXPECTED");
    let mut found = Vec::new();
    for d in detections {
        let id = d.id.clone();
        let (result, alerts) = local::evaluate(&engine, &d, "databricks-detection", "prod", window, window.until)
            .await
            .unwrap_or_else(|e| panic!("{id} on the local engine: {e}"));
        assert_eq!(result.rows.len(), alerts.len());
        let job = Job { detection: Arc::new(d), workspace: "prod".into() };
        let (remote, remote_alerts) =
            poller::evaluate(&dbx, &job, "databricks-detection", window, window, window.until).await.unwrap();
        assert_eq!(result.columns, remote.columns, "{id}: result columns");
        assert_eq!(result.rows, remote.rows, "{id}: result rows");
        let by_key = |v: &[floodgate::alert::Alert]| -> BTreeMap<String, Value> {
            v.iter().map(|a| (a.external_id.clone(), comparable(&a.to_json()))).collect()
        };
        assert_eq!(by_key(&alerts), by_key(&remote_alerts), "{id}: local and simulator alerts differ");
        found.extend(alerts.iter().map(|a| finding(&id, &a.to_json())));
    }
    found.sort();
    assert_eq!(found, EXPECTED, "findings over both fixture files on the local engine");
}

/// The findings of a `detections test --format json` report, sorted.
fn report_findings(report: &Value) -> Vec<String> {
    let mut found: Vec<String> = report["detections"]
        .as_array()
        .expect("detections array")
        .iter()
        .flat_map(|d| {
            let id = d["id"].as_str().unwrap().to_string();
            d["alerts"].as_array().unwrap().iter().map(move |a| finding(&id, a)).collect::<Vec<_>>()
        })
        .collect();
    found.sort();
    found
}

#[test]
fn detections_test_events_runs_every_detection_locally_without_databricks_or_a_database() {
    let dir = tempfile::tempdir().unwrap();
    let lines: Vec<String> = fixture_rows().iter().map(Value::to_string).collect();
    let events = write(dir.path(), "events.jsonl", lines.join("\n") + "\n");
    let events = events.display().to_string();
    let det = detections_dir().display().to_string();

    // JSON: every detection, its alerts, the event count and the window over all events.
    let (code, out, err) =
        run_in(dir.path(), &["detections", "test", "--events", &events, "--detections-dir", &det, "--format", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["events"], 114);
    assert_eq!(v["malformed"], 0);
    assert_eq!(v["detections"].as_array().unwrap().len(), 12);
    assert_eq!(v["alerts"].as_u64(), Some(EXPECTED.len() as u64));
    assert_eq!(v["window"], serde_json::json!({"since": "2026-08-20T09:30:00Z", "until": "2026-09-02T16:11:00.001Z"}));
    // Without the classification table, the HR table is still sensitive by its name.
    assert_eq!(report_findings(&v), EXPECTED);
    let a = &v["detections"].as_array().unwrap().iter().find(|d| d["id"] == "secret-enumeration").unwrap()["alerts"][0];
    assert_eq!(
        (a["source"].as_str(), a["rule"].as_str()),
        (Some("databricks-detection"), Some("detection:secret-enumeration"))
    );
    assert_eq!(a["fields"]["detection"]["workspace"], "local");
    assert!(!dir.path().join("floodgate.db").exists());

    // Text, one detection, from a directory holding ./detections (the default).
    std::fs::create_dir_all(dir.path().join("detections")).unwrap();
    for entry in std::fs::read_dir(detections_dir()).unwrap().filter_map(Result::ok) {
        std::fs::copy(entry.path(), dir.path().join("detections").join(entry.file_name())).unwrap();
    }
    let (code, out, err) =
        run_in(dir.path(), &["detections", "test", "--events", "events.jsonl", "--detection", "secret-enumeration"]);
    assert_eq!(code, 0, "{out}{err}");
    let text: Vec<&str> = out.lines().collect();
    assert_eq!(text[0], "114 events from events.jsonl, window 2026-08-20T09:30:00Z .. 2026-09-02T16:11:00.001Z");
    assert_eq!(text[1], "secret-enumeration: 1 alert");
    assert!(text[2].contains("mallory@corp.example read 8 different secrets in an hour"), "{out}");
    assert_eq!(text.last().copied(), Some("1 of 1 detection raised 1 alert"));

    // A narrower window, and an unknown id.
    let (code, out, _) = run_in(
        dir.path(),
        &[
            "detections",
            "test",
            "--events",
            "events.jsonl",
            "--since",
            "2026-09-01T00:00:00Z",
            "--until",
            "2026-09-02T00:00:00Z",
            "--format",
            "json",
        ],
    );
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report_findings(&v), super::expected_before("2026-09-02T00:00:00Z"));
    let (code, _, err) =
        run_in(dir.path(), &["detections", "test", "--events", "events.jsonl", "--detection", "secret-enumeratoin"]);
    assert_eq!(code, 1);
    assert!(err.contains("did you mean \"secret-enumeration\""), "{err}");
}

#[test]
fn detections_test_events_reports_malformed_lines_with_their_position_and_runs_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let mut lines: Vec<String> = fixture_rows().iter().map(Value::to_string).collect();
    lines.insert(2, "{\"event_time\": \"2026-09-01T00:00:00Z\", ".into());
    lines.insert(5, "[1, 2, 3]".into());
    lines.insert(7, "{\"event_time\": \"2026-09-01T00:00:00Z\", \"colour\": \"red\"}".into());
    lines.insert(9, "{\"event_time\": \"last tuesday\"}".into());
    write(dir.path(), "events.jsonl", lines.join("\n") + "\n");
    let det = detections_dir().display().to_string();
    let (code, out, err) = run_in(
        dir.path(),
        &["detections", "test", "--events", "events.jsonl", "--detections-dir", &det, "--format", "json"],
    );
    assert_eq!(code, 1, "malformed lines fail the command after the report: {out}{err}");
    let err: Vec<&str> = err.lines().collect();
    assert!(err[0].starts_with("events.jsonl:3:39: invalid JSON: EOF while parsing"), "{err:?}");
    assert_eq!(err[1], "events.jsonl:6: not a JSON object (one system.access.audit row per line)");
    assert_eq!(err[2], "events.jsonl:8: system.access.audit has no column \"colour\"");
    assert!(err[3].starts_with("events.jsonl:10: column event_time: \"last tuesday\" is not a timestamp"), "{err:?}");
    assert_eq!(err[4], "4 malformed lines skipped");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["events"].as_u64(), v["malformed"].as_u64()), (Some(114), Some(4)));
    assert_eq!(report_findings(&v), EXPECTED, "the good lines are all read");

    let (code, _, err) =
        run_in(dir.path(), &["detections", "test", "--events", "missing.jsonl", "--detections-dir", &det]);
    assert_eq!(code, 1);
    assert!(err.contains("cannot read missing.jsonl"), "{err}");
}

/// The shared sample events: `$FLOODGATE_SAMPLES_DIR`, else `samples` beside
/// `$FLOODGATE_SPECS_DIR`, else ../shared/samples beside the repository. Absent: skipped,
/// unless `FLOODGATE_REQUIRE_SPECS=1`.
pub fn samples_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FLOODGATE_SAMPLES_DIR").map(PathBuf::from).unwrap_or_else(|| {
        match std::env::var_os("FLOODGATE_SPECS_DIR") {
            Some(specs) => PathBuf::from(specs).join("../samples"),
            None => repo().join("../shared/samples"),
        }
    });
    if dir.join("audit-events.jsonl").is_file() {
        return Some(dir);
    }
    if std::env::var("FLOODGATE_REQUIRE_SPECS").as_deref() == Ok("1") {
        panic!("sample events {}/audit-events.jsonl are missing and FLOODGATE_REQUIRE_SPECS=1", dir.display());
    }
    eprintln!("SKIPPED: sample events {}/audit-events.jsonl not found (set FLOODGATE_SAMPLES_DIR)", dir.display());
    None
}

/// What the shipped detections find in the shared sample (one intrusion by carol@example.com
/// from 203.0.113.66 on 2026-03-10, among benign activity by alice, bob, dave and a service
/// principal): see docs/detections.md for why each one fires.
pub const SAMPLE_EXPECTED: &[&str] = &[
    // 8 failed logins, then a success from the same new address.
    "account-takeover-new-ip|high|carol@example.com|203.0.113.66|",
    // carol adds herself to admins.
    "admin-group-change|high|carol@example.com|203.0.113.66|",
    // A request from a second address refused by the IP access list.
    "denied-ingress|medium|carol@example.com|203.0.113.99|",
    "failed-logins|medium|carol@example.com|203.0.113.66|",
    // She rewrites the `office` allow list.
    "ip-access-list-change|medium|carol@example.com|203.0.113.66|",
    // Two tokens, valid 89 and 727 days (over the 72-hour limit).
    "long-lived-token|medium|carol@example.com|203.0.113.66|",
    "long-lived-token|medium|carol@example.com|203.0.113.66|",
    // SELECT granted to herself on the HR table (sensitive by name: the sample has no classification).
    "sensitive-table-grant|high|carol@example.com|203.0.113.66|main.hr.employees_pii",
    // Verbose audit logs off (critical); results download and notebook export on. The
    // responder turning downloads off again is not a finding.
    "workspace-conf-weakened|critical|carol@example.com|203.0.113.66|",
    "workspace-conf-weakened|high|carol@example.com|203.0.113.66|",
    "workspace-conf-weakened|high|carol@example.com|203.0.113.66|",
];

/// Quiet on the sample, and why: carol's 6 downloads and exports stay under bulk-downloads'
/// 10, her 3 secrets read (a 4th denied) under secret-enumeration's 5; one permission change
/// and one cluster start are no burst or spike; alice, bob, dave and the service principals
/// raise nothing.
pub const SAMPLE_QUIET: &[&str] = &["bulk-downloads", "compute-spike", "permission-change-burst", "secret-enumeration"];

#[test]
fn detections_test_events_over_the_shared_sample_finds_the_intrusion() {
    let Some(samples) = samples_dir() else { return };
    let events = samples.join("audit-events.jsonl").display().to_string();
    let det = detections_dir().display().to_string();
    let (code, out, err) =
        run_in(&repo(), &["detections", "test", "--events", &events, "--detections-dir", &det, "--format", "json"]);
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["events"].as_u64(), v["malformed"].as_u64()), (Some(39), Some(0)));
    assert!(v["detections"].as_array().unwrap().iter().all(|d| d.get("error").is_none()), "{out}");
    assert_eq!(report_findings(&v), SAMPLE_EXPECTED, "{out}");
    for id in SAMPLE_QUIET {
        let d = v["detections"].as_array().unwrap().iter().find(|d| d["id"] == *id).unwrap();
        assert_eq!(d["alerts"].as_array().map(Vec::len), Some(0), "{id}");
    }
}
