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

/// Both fixture files delivered as Databricks writes them: one file per workspace and day.
fn deliver(dir: &std::path::Path) -> Vec<String> {
    let mut by_day: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for row in fixture_rows() {
        let day = row["event_time"].as_str().unwrap()[..10].to_string();
        by_day.entry(day).or_default().push(super::files::delivered(&row).to_string());
    }
    let mut files = Vec::new();
    for (day, lines) in by_day {
        let rel = format!("workspaceId=4242424242424242/date={day}/auditlogs_{}.json", day.replace('-', ""));
        write(dir, &rel, lines.join("\n") + "\n");
        files.push(rel);
    }
    files
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_audit_logs_runs_the_detections_over_delivered_files_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("playbooks")).unwrap();
    let files = deliver(&dir.path().join("logs"));
    // A malformed line in the middle of the busiest day's file.
    let busiest = files.iter().find(|f| f.contains("2026-09-02")).unwrap().clone();
    let path = dir.path().join("logs").join(&busiest);
    let mut lines: Vec<String> = std::fs::read_to_string(&path).unwrap().lines().map(String::from).collect();
    lines.insert(2, "{\"timestamp\": ".into());
    std::fs::write(&path, lines.join("\n") + "\n").unwrap();
    let text = format!(
        "playbooks = \"playbooks\"\n[database]\nurl = \"sqlite://floodgate.db\"\n[detections]\ndirectory = \"{}\"\n",
        detections_dir().display()
    );
    write(dir.path(), "floodgate.toml", text);
    let run = |args: &[&str]| {
        let (dir, args): (PathBuf, Vec<String>) =
            (dir.path().to_path_buf(), args.iter().map(|s| s.to_string()).collect());
        tokio::task::spawn_blocking(move || run_in(&dir, &args.iter().map(String::as_str).collect::<Vec<_>>()))
    };

    let (code, out, err) =
        run(&["ingest", "audit-logs", "logs", "--config", "floodgate.toml", "--format", "json"]).await.unwrap();
    assert_eq!(code, 1, "a malformed line makes the exit code 1, after everything else is read: {out}{err}");
    let bad = dir.path().join("logs").join(&busiest).display().to_string();
    let want = format!("{bad}:3: not an audit record (a JSON object per line); skipped");
    assert!(err.lines().any(|l| l == want), "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((v["records"].as_u64(), v["malformed"].as_u64()), (Some(114), Some(1)), "{v}");
    assert_eq!(v["files_read"].as_u64(), Some(files.len() as u64));
    assert_eq!(v["alerts"]["new"].as_u64(), Some(EXPECTED.len() as u64), "{v}");
    let store = floodgate::store::Store::connect(&format!("sqlite://{}", dir.path().join("floodgate.db").display()), 1)
        .await
        .unwrap();
    assert_eq!(super::stored_findings(&store, "databricks-detection").await, EXPECTED);

    // Again: every file is unchanged, nothing is read or stored.
    let (code, out, err) = run(&["ingest", "audit-logs", "logs", "--config", "floodgate.toml"]).await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(
        out.trim(),
        format!(
            "0 files read ({} unchanged), 0 records, 0 malformed lines, alerts stored: 0 new, 0 duplicate",
            files.len()
        )
    );

    // A delivered file grows by a new failed-login burst: only the new lines are read, and the
    // detections see them together with what was read before.
    let extra = dir.path().join("logs/workspaceId=4242424242424242/date=2026-09-02/auditlogs_late.json");
    let base = fixture_rows()
        .into_iter()
        .find(|r| r["action_name"] == "login" && r["response"]["status_code"] == 401)
        .unwrap();
    let mut late = Vec::new();
    for k in 0..6 {
        let mut r = base.clone();
        r["event_time"] = Value::from(format!("2026-09-02T23:0{k}:00.000+00:00"));
        r["request_params"]["user"] = Value::from("zed@corp.example");
        r["user_identity"]["email"] = Value::Null;
        r["request_id"] = Value::from(format!("late-{k}"));
        late.push(super::files::delivered(&r).to_string());
    }
    write(dir.path(), &extra.strip_prefix(dir.path()).unwrap().display().to_string(), late.join("\n") + "\n");
    let (code, out, err) = run(&["ingest", "audit-logs", "logs", "--config", "floodgate.toml"]).await.unwrap();
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("failed-logins: 1 alert"), "{out}");
    assert!(
        out.ends_with(&format!(
            "1 file read ({} unchanged), 6 records, 0 malformed lines, alerts stored: 1 new, 0 duplicate\n",
            files.len()
        )),
        "{out}"
    );
    let found = super::stored_findings(&store, "databricks-detection").await;
    assert_eq!(found.len(), EXPECTED.len() + 1);
    assert!(found.iter().any(|f| f.starts_with("failed-logins|medium|zed@corp.example|")), "{found:?}");
    store.close().await;
}

/// A failed login as Databricks delivers it.
fn failed_login(user: &str, at: &str, request: &str) -> String {
    serde_json::json!({
        "version": "2.0", "auditLevel": "WORKSPACE_LEVEL", "timestamp": ms(at), "workspaceId": 4242424242424242u64,
        "sourceIPAddress": "198.51.100.7:40000", "userAgent": "curl/8.5.0", "userIdentity": {"email": null},
        "serviceName": "accounts", "actionName": "login", "requestId": request,
        "requestParams": {"user": user}, "response": {"statusCode": 401, "errorMessage": "bad password"},
    })
    .to_string()
}

crate::on_both_databases!(watched_files_with_detections_count_across_scans_and_never_twice);

/// `[[audit_files]]` with `detections = true`, as `serve` runs it: an hour's failures split
/// over two files and two scans are counted together; a rewritten file's records are not
/// counted twice; a restart reads nothing again.
async fn watched_files_with_detections_count_across_scans_and_never_twice(db: crate::harness::Db) {
    use floodgate::ingest::audit_files::{AuditFiles, AuditFilesConfig};
    use floodgate::ingest::detections::DetectionsConfig;
    let h = crate::harness::Harness::new(db, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let day = "workspaceId=4242424242424242/date=2026-09-05";
    let entry = AuditFilesConfig {
        name: "audit-files".into(),
        directory: dir.path().to_path_buf(),
        poll_interval: std::time::Duration::from_secs(30),
        rules: Vec::new(),
        detections: true,
    };
    let watcher = || {
        AuditFiles::new(&entry, std::path::Path::new("/"), h.engine.clone())
            .unwrap()
            .with_detections(super::only(&["failed-logins"]), &DetectionsConfig::default())
    };
    let files = watcher();
    let lines = |user: &str, minutes: &[u32], hour: u32| -> String {
        let v: Vec<String> = minutes
            .iter()
            .map(|m| failed_login(user, &format!("2026-09-05T{hour:02}:{m:02}:00Z"), &format!("{user}-{hour}-{m}")))
            .collect();
        v.join("\n") + "\n"
    };
    let count = || super::alert_count(&h.store, "databricks-detection");

    write(dir.path(), &format!("{day}/auditlogs_a.json"), lines("zed@corp.example", &[0, 1, 2], 10));
    let scan = files.scan().await;
    assert_eq!(scan.detections, vec![("failed-logins".to_string(), Ok(0))]);
    assert_eq!((scan.detection_new, count().await), (0, 0));

    write(dir.path(), &format!("{day}/auditlogs_b.json"), lines("zed@corp.example", &[10, 11, 12], 10));
    let scan = files.scan().await;
    assert_eq!(scan.detections, vec![("failed-logins".to_string(), Ok(1))], "3 + 3 failures in one hour");
    assert_eq!((scan.detection_new, count().await), (1, 1));
    let body = h
        .store
        .all("SELECT body FROM alerts WHERE source = $1", floodgate::args!["databricks-detection"])
        .await
        .unwrap()[0]
        .json("body")
        .unwrap();
    assert_eq!(body["fields"]["failures"], 6);
    assert_eq!(body["external_id"], "failed-logins:zed@corp.example|2026-09-05T10:00:00.000Z");

    // Three failures in another hour; then Databricks rewrites that file (same records,
    // written differently): it is read again, but its records are not counted twice.
    let c = format!("{day}/auditlogs_c.json");
    write(dir.path(), &c, lines("yan@corp.example", &[0, 1, 2], 12));
    assert_eq!(files.scan().await.detections, vec![("failed-logins".to_string(), Ok(0))]);
    let rewritten = lines("yan@corp.example", &[0, 1, 2], 12).replace("{\"", "{ \"");
    write(dir.path(), &c, rewritten);
    let scan = files.scan().await;
    let read: Vec<_> = scan.files.iter().filter_map(|f| f.as_ref().ok()).filter(|f| f.records > 0).collect();
    assert_eq!((read.len(), read[0].reread, read[0].records), (1, true, 3));
    assert_eq!(scan.detections, vec![("failed-logins".to_string(), Ok(0))], "3 failures, not 6");
    assert_eq!(count().await, 1);

    // A restart reads nothing again.
    let scan = watcher().scan().await;
    assert!(scan.files.iter().all(|f| f.as_ref().is_ok_and(|f| f.records == 0)), "{:?}", scan.files);
    assert_eq!(scan.detections, vec![]);
    assert_eq!(count().await, 1);
}

#[test]
fn read_files_runs_the_detections_of_an_entry_that_asks_for_them() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("playbooks")).unwrap();
    deliver(&dir.path().join("logs"));
    let text = format!(
        "playbooks = \"playbooks\"\n[database]\nurl = \"sqlite://floodgate.db\"\n[detections]\ndirectory = \"{}\"\n\
         [[audit_files]]\nname = \"audit-files\"\ndirectory = \"logs\"\ndetections = true\n",
        detections_dir().display()
    );
    write(dir.path(), "floodgate.toml", text);
    let (code, out, err) = run_in(dir.path(), &["detections", "read-files", "--config", "floodgate.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("audit-files: detection secret-enumeration: 1 alert\n"), "{out}");
    assert!(out.contains(&format!("audit-files: detections stored {} new, 0 duplicate\n", EXPECTED.len())), "{out}");
    let (code, out, _) = run_in(dir.path(), &["detections", "read-files", "--config", "floodgate.toml"]);
    assert_eq!(code, 0);
    assert!(out.contains("audit-files: detections stored 0 new, 0 duplicate\n"), "{out}");
}
