//! `floodgate detections …` as operators run it: `validate` names every problem with its
//! position, `schema` matches the committed editor schema, `test` prints what each detection
//! would raise without storing anything, and `run-once` / `list` commit and show watermarks.

use super::{EXPECTED, Lakehouse, detections_dir, finding};
use crate::common::{repo, run_in, write};
use serde_json::Value;
use std::path::Path;

const BAD: &str = "id: Bad Id
title: Broken
severity: hgh
intervall: 5m
params:
  limit: {type: INTEGER, value: ten}
sql: |
  SELECT * FROM system.access.audit
  WHERE event_time >= :since AND event_time < :untill
alert:
  title: \"{{ row.x \"
  entities: {ip: source_ip_address}
";

#[test]
fn validate_prints_every_problem_with_its_position_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    write(dir.path(), "detections/bad.yaml", BAD);
    let (code, out, err) = run_in(dir.path(), &["detections", "validate"]);
    assert_eq!(code, 1, "{out}{err}");
    let p = Path::new("detections").join("bad.yaml").display().to_string();
    let want = [
        format!(
            "{p}:1:5: error: invalid detection id \"Bad Id\": use lowercase letters, digits, '-' and '_' (at most 63)"
        ),
        format!(
            "{p}:3:11: error: severity: expected one of info, low, medium, high, critical, found \"hgh\" — did you mean \"high\"?"
        ),
        format!("{p}:4:1: error: unknown key \"intervall\" — did you mean \"interval\"?"),
        format!("{p}:6:10: error: parameter \"limit\": \"ten\" is not a valid INT value"),
        format!(
            "{p}:8:3: error: sql: never uses :until: a detection reads only its window (event_time >= :since AND event_time < :until)"
        ),
        format!(
            "{p}:9:47: error: sql: unknown parameter :untill — did you mean :until? (floodgate sets :since, :until, :since_date, :until_date; declare others under params)"
        ),
        format!("{p}:11:10: error: invalid template: Unexpected end of input (template line 1, column 9)"),
        format!(
            "{p}:12:14: error: unknown entity \"ip\" (entities: user, source_ip, workspace, table, token, cluster, service_principal)"
        ),
    ];
    assert_eq!(out.lines().collect::<Vec<_>>(), want);
    assert_eq!(err.trim(), "8 problems in 1 file");

    let (code, out, err) = run_in(&repo(), &["detections", "validate", "detections"]);
    assert_eq!((code, out.trim()), (0, "ok: 12 detections valid"), "{err}");
    let (code, out, _) = run_in(&repo(), &["detections", "validate", "--format", "json", "detections"]);
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!((code, v["valid"].as_bool(), v["detections"].as_array().map(Vec::len)), (0, Some(true), Some(12)));
}

#[test]
fn the_committed_editor_schema_is_current_and_every_detection_declares_it() {
    let (code, out, _) = run_in(&repo(), &["detections", "schema"]);
    assert_eq!(code, 0);
    let committed = std::fs::read_to_string(detections_dir().join("schema.json")).unwrap();
    assert_eq!(out.trim(), committed.trim(), "run `floodgate detections schema > detections/schema.json`");
    for entry in std::fs::read_dir(detections_dir()).unwrap().filter_map(Result::ok) {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.ends_with(".yaml") {
            let text = std::fs::read_to_string(entry.path()).unwrap();
            assert!(text.starts_with("# yaml-language-server: $schema=./schema.json"), "{name}");
        }
    }
}

fn cli_config(dir: &Path, lake: &Lakehouse) -> std::path::PathBuf {
    std::fs::create_dir_all(dir.join("playbooks")).unwrap();
    let text = format!(
        "playbooks = \"playbooks\"\n[database]\nurl = \"sqlite://{db}\"\n[detections]\ndirectory = \"{det}\"\nlag = \"0s\"\nmax_lookback = \"400d\"\n{conn}",
        db = dir.join("floodgate.db").display(),
        det = detections_dir().display(),
        conn = lake.connector_toml()
    );
    write(dir, "floodgate.toml", text)
}

/// Runs the CLI off the async runtime, so the in-process simulator keeps answering.
async fn floodgate(dir: &Path, args: &[&str]) -> (i32, String, String) {
    let (dir, args): (std::path::PathBuf, Vec<String>) =
        (dir.to_path_buf(), args.iter().map(|s| s.to_string()).collect());
    tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        run_in(&dir, &refs)
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_prints_the_alerts_and_stores_nothing() {
    let lake = Lakehouse::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = cli_config(dir.path(), &lake);
    let cfg = cfg.display().to_string();
    let args =
        ["detections", "test", "--config", &cfg, "--since", "2026-08-01T00:00:00Z", "--until", "2026-09-03T00:00:00Z"];
    let (code, out, err) = floodgate(dir.path(), &[&args[..], &["--format", "json"]].concat()).await;
    assert_eq!(code, 0, "{out}{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let mut found: Vec<String> = v["results"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| {
            let id = r["detection"].as_str().unwrap().to_string();
            r["alerts"].as_array().unwrap().iter().map(move |a| finding(&id, a)).collect::<Vec<_>>()
        })
        .collect();
    found.sort();
    assert_eq!(found, EXPECTED);
    assert!(!dir.path().join("floodgate.db").exists(), "test never opens the database");

    let (code, out, _) = floodgate(dir.path(), &[&args[..], &["--detection", "secret-enumeration"]].concat()).await;
    assert_eq!(code, 0);
    assert!(out.contains("secret-enumeration (prod): 1 alert\n"), "{out}");
    assert!(out.contains("mallory@corp.example read 8 different secrets in an hour"), "{out}");
    let (code, _, err) =
        floodgate(dir.path(), &["detections", "test", "--config", &cfg, "--detection", "secret-enumeratoin"]).await;
    assert_eq!(code, 1);
    assert!(err.contains("did you mean \"secret-enumeration\""), "{err}");

    lake.sim.fail_next_statement("INTERNAL_ERROR", "warehouse is gone");
    let (code, out, _) = floodgate(dir.path(), &[&args[..], &["--detection", "failed-logins"]].concat()).await;
    assert_eq!(code, 1, "a failing detection fails the command");
    assert!(out.contains("failed-logins (prod): ERROR") && out.contains("warehouse is gone"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn run_once_commits_windows_and_list_shows_them() {
    let lake = Lakehouse::start().await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = cli_config(dir.path(), &lake).display().to_string();
    let (code, out, err) = floodgate(dir.path(), &["detections", "run-once", "--config", &cfg]).await;
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("secret-enumeration (prod): ") && out.contains("1 row, 1 new, 0 duplicate"), "{out}");
    let (code, out, _) = floodgate(dir.path(), &["detections", "list", "--config", &cfg, "--format", "json"]).await;
    assert_eq!(code, 0);
    let list: Value = serde_json::from_str(&out).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 12);
    let alerts: i64 = list.iter().map(|d| d["state"][0]["alerts"].as_i64().unwrap()).sum();
    assert_eq!(alerts as usize, EXPECTED.len());
    assert!(list.iter().all(|d| d["state"][0]["windows"] == 1 && d["state"][0]["failures"] == 0), "{list:?}");
    // Again: nothing new is stored.
    let (code, out, _) = floodgate(dir.path(), &["detections", "run-once", "--config", &cfg]).await;
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains(" 1 new"), "{out}");
    let (_, text, _) = floodgate(dir.path(), &["detections", "list", "--config", &cfg]).await;
    assert!(text.contains("on  failed-logins") && text.contains("prod: watermark "), "{text}");
}

#[test]
fn read_files_reads_delivered_files_once() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("playbooks")).unwrap();
    let lines = super::files::delivered_lines();
    write(dir.path(), "logs/workspaceId=4242424242424242/date=2026-09-01/auditlogs_1.json", lines.join("\n") + "\n");
    let text = "playbooks = \"playbooks\"\n[database]\nurl = \"sqlite://floodgate.db\"\n\
        [[audit_files]]\nname = \"audit-files\"\ndirectory = \"logs\"\n\
        [[audit_files.rules]]\nactions = [\"accounts.login\"]\nwhen = \"event.response.status_code >= 400\"\n";
    write(dir.path(), "floodgate.toml", text);
    let file = "workspaceId=4242424242424242/date=2026-09-01/auditlogs_1.json";
    let (code, out, err) = run_in(dir.path(), &["detections", "read-files", "--config", "floodgate.toml"]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(out.trim(), format!("audit-files: {file}: 11 records, 6 matched, 6 new, 0 duplicate, 0 malformed"));
    let (code, out, _) = run_in(dir.path(), &["detections", "read-files", "--config", "floodgate.toml"]);
    assert_eq!(code, 0);
    assert_eq!(out.trim(), format!("audit-files: {file}: 0 records, 0 matched, 0 new, 0 duplicate, 0 malformed"));
}
