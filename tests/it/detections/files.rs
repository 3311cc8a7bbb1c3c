//! Delivered audit-log files on both databases: only records a rule takes become alerts; a
//! restart repeats nothing; appended lines are read once; a file Databricks rewrote with more
//! lines is read again safely (what was seen comes back as duplicates); a malformed line is
//! skipped without stopping the rest; a half-written last line waits for the next scan.

use super::{WORKSPACE_ID, fixture, ms};
use crate::harness::{Db, Harness};
use crate::on_both_databases;
use floodgate::ingest::audit_files::{AuditFileRule, AuditFiles, AuditFilesConfig, FileReport};
use serde_json::{Value, json};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

const SOURCE: &str = "audit-files";
const FILE: &str = "workspaceId=4242424242424242/date=2026-09-01/auditlogs_0001.json";

/// A system-table fixture row as Databricks delivers it in a file: camelCase keys, epoch-ms
/// `timestamp`, numeric `workspaceId`, and no event id.
pub fn delivered(row: &Value) -> Value {
    json!({
        "accountId": row["account_id"],
        "version": row["version"],
        "auditLevel": row["audit_level"],
        "timestamp": ms(row["event_time"].as_str().unwrap()),
        "workspaceId": row["workspace_id"].as_str().unwrap().parse::<u64>().unwrap(),
        "sourceIPAddress": row["source_ip_address"],
        "userAgent": row["user_agent"],
        "sessionId": row["session_id"],
        "userIdentity": {"email": row["user_identity"]["email"]},
        "serviceName": row["service_name"],
        "actionName": row["action_name"],
        "requestId": row["request_id"],
        "requestParams": row["request_params"],
        "response": {"statusCode": row["response"]["status_code"], "errorMessage": row["response"]["error_message"], "result": null},
    })
}

/// The fixture's 2026-09-01 rows, delivered.
pub fn delivered_lines() -> Vec<String> {
    fixture("audit-events.jsonl")
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| delivered(&serde_json::from_str(l).unwrap()).to_string())
        .collect()
}

pub fn config(dir: &Path) -> AuditFilesConfig {
    AuditFilesConfig {
        name: SOURCE.into(),
        directory: dir.to_path_buf(),
        poll_interval: Duration::from_secs(30),
        rules: vec![
            AuditFileRule {
                actions: vec!["accounts.login".into()],
                when: Some("event.response.status_code >= 400".into()),
                severity: Some("medium".into()),
                confidence: None,
            },
            AuditFileRule {
                actions: vec!["workspace.*".into()],
                when: None,
                severity: Some("high".into()),
                confidence: Some(0.9),
            },
        ],
        detections: false,
    }
}

fn one(reports: Vec<Result<FileReport, floodgate::ingest::audit_files::AuditFileError>>) -> FileReport {
    assert_eq!(reports.len(), 1, "{reports:?}");
    reports.into_iter().next().unwrap().expect("the file is read")
}

fn counts(r: &FileReport) -> (usize, usize, usize, usize, usize) {
    (r.records, r.matched, r.new_alerts, r.duplicates, r.malformed)
}

on_both_databases!(audit_files_are_read_once_across_restarts_appends_and_rewrites);

async fn audit_files_are_read_once_across_restarts_appends_and_rewrites(db: Db) {
    let h = Harness::new(db, &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let lines = delivered_lines();
    assert_eq!(lines.len(), 11);
    // Six failed logins, a success, a token, a download, a workspace-conf edit, a table read —
    // with a truncated record in the middle.
    let mut text: Vec<String> = lines[..5].to_vec();
    text.push(r#"{"serviceName": "accounts", "actionName": "login", "requestId": "#.into());
    text.extend(lines[5..].iter().cloned());
    std::fs::write(&path, text.join("\n") + "\n").unwrap();

    let files = AuditFiles::new(&config(dir.path()), Path::new("/"), h.engine.clone()).unwrap();
    assert_eq!(files.files().unwrap(), [FILE]);
    let r = one(files.scan_once().await);
    assert_eq!(counts(&r), (11, 7, 7, 0, 1), "six failures and the conf edit; the truncated line is reported");
    let stored = h
        .store
        .all("SELECT external_id, rule, severity, body FROM alerts WHERE source = $1", floodgate::args![SOURCE])
        .await
        .unwrap();
    assert_eq!(stored.len(), 7);
    for a in &stored {
        let body = a.json("body").unwrap();
        assert!(a.text("external_id").unwrap().starts_with("file:"), "delivered records get a content id");
        assert_eq!(body["workspace_id"], WORKSPACE_ID);
        assert!(body["fields"]["event_time"].as_str().unwrap().starts_with("2026-09-01T03:"), "{body}");
        match a.opt_text("rule").unwrap().as_deref() {
            Some("audit:accounts.login") => assert_eq!(a.text("severity").unwrap(), "medium"),
            Some("audit:workspace.workspaceConfEdit") => assert_eq!(a.text("severity").unwrap(), "high"),
            other => panic!("unexpected rule {other:?}"),
        }
    }

    // A restart: a new watcher over the same database reads nothing again.
    let files = AuditFiles::new(&config(dir.path()), Path::new("/"), h.engine.clone()).unwrap();
    assert_eq!(counts(&one(files.scan_once().await)), (0, 0, 0, 0, 0));

    // Databricks appends: a failed login, and half of the next record.
    let more: Vec<Value> = [("req-9001", 401), ("req-9002", 403)]
        .iter()
        .map(|(id, status)| {
            let mut v: Value = serde_json::from_str(&lines[0]).unwrap();
            v["requestId"] = json!(id);
            v["response"]["statusCode"] = json!(status);
            v
        })
        .collect();
    let second = more[1].to_string();
    let (head, tail) = second.split_at(40);
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    write!(f, "{}\n{head}", more[0]).unwrap();
    drop(f);
    assert_eq!(counts(&one(files.scan_once().await)), (1, 1, 1, 0, 0), "only the complete line");
    let mut f = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    writeln!(f, "{tail}").unwrap();
    drop(f);
    assert_eq!(counts(&one(files.scan_once().await)), (1, 1, 1, 0, 0), "the rest of the record, once complete");

    // Databricks rewrites the file: the same records (without the bad line), in another order,
    // plus one new workspace-conf edit.
    let mut rewritten: Vec<String> = lines.iter().rev().cloned().collect();
    rewritten.push(more[0].to_string());
    rewritten.push(more[1].to_string());
    let mut conf: Value = serde_json::from_str(&lines[9]).unwrap();
    conf["requestId"] = json!("req-9003");
    conf["requestParams"]["workspaceConfValues"] = json!("true");
    rewritten.push(conf.to_string());
    std::fs::write(&path, rewritten.join("\n") + "\n").unwrap();
    let r = one(files.scan_once().await);
    assert!(r.reread, "a rewritten file is read again from the start");
    assert_eq!(counts(&r), (14, 10, 1, 9, 0), "what was seen before comes back as duplicates");
    assert_eq!(super::alert_count(&h.store, SOURCE).await, 10);
    let progress = h.store.audit_files(SOURCE).await.unwrap();
    assert_eq!(progress.len(), 1);
    assert_eq!(progress[0].byte_offset, std::fs::metadata(&path).unwrap().len() as i64);
    assert_eq!((progress[0].records, progress[0].alerts, progress[0].malformed), (14, 10, 0));
    assert_eq!(counts(&one(files.scan_once().await)), (0, 0, 0, 0, 0));
}

#[tokio::test]
async fn audit_file_rules_are_checked_before_anything_is_read() {
    let h = Harness::new(Db::new(crate::harness::Backend::Sqlite).await, &[]).await;
    let mut cfg = config(Path::new("/nonexistent"));
    cfg.name = "bad name".into();
    cfg.rules.push(AuditFileRule {
        actions: vec![],
        when: None,
        severity: Some("urgent".into()),
        confidence: Some(2.0),
    });
    cfg.rules.push(AuditFileRule {
        actions: vec!["login".into()],
        when: Some("event.x ==".into()),
        severity: None,
        confidence: None,
    });
    let e = AuditFiles::new(&cfg, Path::new("/"), h.engine.clone()).err().expect("refused");
    for want in [
        "name must be",
        "give actions or when",
        "severity \"urgent\"",
        "confidence 2",
        "action \"login\" must be",
        "when:",
    ] {
        assert!(e.contains(want), "missing {want:?} in:\n{e}");
    }
}
