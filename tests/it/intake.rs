//! Webhook intake and the REST API over HTTP against `floodgate serve`.

use crate::harness::{Backend, Db};
use crate::server::{SIEM_SECRET, Server, config, signature};
use base64::Engine as _;
use floodgate::store::Store;
use serde_json::{Value, json};
use std::time::Duration;

const PLAYBOOK: &str = r#"
id: intake-test
name: Intake test
match: {source: [siem, audit, sql]}
group: {key: "{{ alert.entities.user | default(value=alert.external_id) }}", window: 1h}
steps:
  containment:
    - id: hold
      action: core.log
      approval: {groups: [oncall], timeout: 1h}
      with: {message: "contain {{ alert.entities.user | default(value='?') }}"}
"#;

const EXTRA: &str = r#"
[[sources]]
name = "sql"
format = "databricks-sql-alert"
auth = { type = "basic", username = "databricks", password = "env:FG_SQL_PASSWORD" }

[[sources]]
name = "audit"
format = "databricks-audit"
auth = { type = "bearer", token = "env:FG_AUDIT_TOKEN" }

[[identities]]
id = "alice"
email = "alice@corp.example"
api_token = "env:FG_TOKEN_ALICE"

[[identities]]
id = "dana"
email = "dana@corp.example"
api_token = "env:FG_TOKEN_DANA"

[groups]
oncall = ["alice", "dana"]
"#;

struct Fixture {
    server: Server,
    db: Db,
    _dir: tempfile::TempDir,
}

async fn start() -> Fixture {
    let db = Db::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let pbdir = dir.path().join("playbooks");
    crate::common::write(&pbdir, "intake.yaml", PLAYBOOK);
    let cfg = config(dir.path(), &db.url, &pbdir, EXTRA);
    let server = Server::start(
        &cfg,
        &[
            ("FG_SQL_PASSWORD", "sql-pw"),
            ("FG_AUDIT_TOKEN", "audit-token"),
            ("FG_TOKEN_ALICE", "alice-token"),
            ("FG_TOKEN_DANA", "dana-token"),
        ],
    );
    Fixture { server, db, _dir: dir }
}

async fn alert_count(db: &Db) -> i64 {
    let s = Store::connect(&db.url, 1).await.unwrap();
    let n = s.count_alerts().await.unwrap();
    s.close().await;
    n
}

fn now() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_answers_and_stores_nothing_for_rejected_requests() {
    let f = start().await;
    let c = crate::common::client();
    let url = format!("{}/v1/alerts/siem", f.server.url);
    let body =
        serde_json::to_vec(&json!({"id": "w-1", "title": "t", "entities": {"user": "eve@corp.example"}})).unwrap();
    let post = |b: Vec<u8>, headers: Vec<(&'static str, String)>| {
        let mut r = c.post(&url).body(b);
        for (k, v) in headers {
            r = r.header(k, v);
        }
        r.send()
    };
    let json_ct = ("content-type", "application/json".to_string());
    let error_code = |v: &Value| v["error"]["code"].as_str().unwrap_or("").to_string();

    // Unknown source: 404.
    let r = c
        .post(format!("{}/v1/alerts/nope", f.server.url))
        .header("content-type", "application/json")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    assert_eq!(error_code(&r.json().await.unwrap()), "unknown_source");
    // Missing, wrong and stale signatures: 401.
    for headers in [
        vec![json_ct.clone()],
        vec![json_ct.clone(), ("x-floodgate-signature", format!("t={},v1={}", now(), "ab".repeat(32)))],
        vec![
            json_ct.clone(),
            ("x-floodgate-signature", floodgate::ingest::auth::sign(SIEM_SECRET.as_bytes(), now() - 301, &body)),
        ],
        vec![json_ct.clone(), ("x-floodgate-signature", floodgate::ingest::auth::sign(b"other-secret", now(), &body))],
        vec![json_ct.clone(), ("x-floodgate-signature", "garbage".to_string())],
    ] {
        let r = post(body.clone(), headers).await.unwrap();
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.unwrap();
        assert_eq!(error_code(&v), "unauthorized", "{v}");
    }
    // Not JSON: 415.
    let r =
        post(body.clone(), vec![("content-type", "text/plain".into()), ("x-floodgate-signature", signature(&body))])
            .await
            .unwrap();
    assert_eq!(r.status(), 415);
    // Too large: 413, by declared length and by actual size.
    let big = vec![b' '; 1024 * 1024 + 1];
    assert_eq!(declared_length_post(&f.server.url, &big).await, 413, "refused from the declared length alone");
    assert_eq!(chunked_post(&f.server.url, &big).await, 413, "the limit also holds without a Content-Length");
    // Malformed JSON and a missing id: 400 naming the problem.
    let bad = b"{\"id\": ".to_vec();
    let r = post(bad.clone(), vec![json_ct.clone(), ("x-floodgate-signature", signature(&bad))]).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert_eq!(error_code(&v), "invalid_json");
    let noid = serde_json::to_vec(&json!({"title": "no id"})).unwrap();
    let r = post(noid.clone(), vec![json_ct.clone(), ("x-floodgate-signature", signature(&noid))]).await.unwrap();
    assert_eq!(r.status(), 400);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("/id"), "{v}");
    assert_eq!(alert_count(&f.db).await, 0, "nothing stored for rejected requests");

    // Accepted: 202 with ids; again: duplicate.
    let r = post(body.clone(), vec![json_ct.clone(), ("x-floodgate-signature", signature(&body))]).await.unwrap();
    assert_eq!(r.status(), 202);
    let first: Value = r.json().await.unwrap();
    assert_eq!(first["duplicate"], false);
    assert!(first["run_id"].as_str().unwrap().starts_with("run_"));
    let r = post(body.clone(), vec![json_ct.clone(), ("x-floodgate-signature", signature(&body))]).await.unwrap();
    let again: Value = r.json().await.unwrap();
    assert_eq!((again["duplicate"].clone(), again["run_id"].clone()), (json!(true), first["run_id"].clone()));
    // Grouped: same user, another id → same incident, no run.
    let b2 = serde_json::to_vec(&json!({"id": "w-2", "title": "t", "entities": {"user": "eve@corp.example"}})).unwrap();
    let grouped: Value = post(b2.clone(), vec![json_ct.clone(), ("x-floodgate-signature", signature(&b2))])
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (grouped["incident_id"].clone(), grouped["run_id"].clone()),
        (first["incident_id"].clone(), Value::Null)
    );
    assert_eq!(alert_count(&f.db).await, 2);

    // Basic-auth SQL alerts (Databricks notification destinations) and bearer audit rows.
    let sql = std::fs::read(crate::common::repo().join("tests/data/sql-alert.json")).unwrap();
    let basic =
        |u: &str, p: &str| format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{u}:{p}")));
    let r = c
        .post(format!("{}/v1/alerts/sql", f.server.url))
        .header("content-type", "application/json")
        .header("authorization", basic("databricks", "wrong"))
        .body(sql.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = c
        .post(format!("{}/v1/alerts/sql", f.server.url))
        .header("content-type", "application/json")
        .header("authorization", basic("databricks", "sql-pw"))
        .body(sql)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let audit = std::fs::read_to_string(crate::common::repo().join("tests/data/audit-events.jsonl")).unwrap();
    let row = audit.lines().next().unwrap().to_string();
    let r = c
        .post(format!("{}/v1/alerts/audit", f.server.url))
        .header("content-type", "application/json; charset=utf-8")
        .header("authorization", "Bearer audit-token")
        .body(row)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 202);
    let r = c
        .post(format!("{}/v1/alerts/audit", f.server.url))
        .header("content-type", "application/json")
        .header("authorization", "Bearer nope")
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // Operations endpoints.
    assert_eq!(c.get(format!("{}/healthz", f.server.url)).send().await.unwrap().status(), 200);
    assert_eq!(c.get(format!("{}/readyz", f.server.url)).send().await.unwrap().status(), 200);
    // The runs reach their approval wait asynchronously: wait for the gauge to show it.
    let mut metrics = String::new();
    for _ in 0..100 {
        metrics = c.get(format!("{}/metrics", f.server.url)).send().await.unwrap().text().await.unwrap();
        if metrics.contains("floodgate_runs{state=\"waiting\"}") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for line in [
        "floodgate_alerts_received_total{source=\"siem\",outcome=\"unauthorized\"} 5",
        "floodgate_alerts_received_total{source=\"siem\",outcome=\"duplicate\"} 1",
        "floodgate_alerts_received_total{source=\"siem\",outcome=\"grouped\"} 1",
        "floodgate_alerts_received_total{source=\"sql\",outcome=\"accepted\"} 1",
        "floodgate_step_duration_seconds_count",
        "floodgate_runs{state=\"waiting\"}",
    ] {
        assert!(metrics.contains(line), "missing {line} in\n{metrics}");
    }
}

/// Posts `body` with `Transfer-Encoding: chunked` (no Content-Length) over a raw connection and
/// returns the status code.
/// Sends only the headers of a request whose Content-Length is over the limit and reads the
/// answer: the server must refuse it without waiting for (or reading) the body. A client that
/// keeps writing after that answer may see a broken pipe instead, so none is sent.
async fn declared_length_post(base: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/alerts/siem HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-Floodgate-Signature: {}\r\nContent-Length: {}\r\n\r\n",
        signature(body),
        body.len()
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    let mut resp = vec![0u8; 4096];
    let n = tokio::time::timeout(std::time::Duration::from_secs(10), sock.read(&mut resp)).await.unwrap().unwrap();
    let text = String::from_utf8_lossy(&resp[..n]);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

async fn chunked_post(base: &str, body: &[u8]) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let addr = base.trim_start_matches("http://");
    let mut sock = tokio::net::TcpStream::connect(addr).await.unwrap();
    let head = format!(
        "POST /v1/alerts/siem HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nX-Floodgate-Signature: {}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        signature(body)
    );
    sock.write_all(head.as_bytes()).await.unwrap();
    for chunk in body.chunks(64 * 1024) {
        // The server may answer and close before reading everything; that is fine.
        if sock.write_all(format!("{:x}\r\n", chunk.len()).as_bytes()).await.is_err()
            || sock.write_all(chunk).await.is_err()
            || sock.write_all(b"\r\n").await.is_err()
        {
            break;
        }
    }
    let _ = sock.write_all(b"0\r\n\r\n").await;
    let mut resp = Vec::new();
    let _ = sock.read_to_end(&mut resp).await;
    let text = String::from_utf8_lossy(&resp);
    text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rest_api_needs_a_token_and_follows_the_approval_rules() {
    let f = start().await;
    let c = crate::common::client();
    let body = serde_json::to_vec(
        &json!({"id": "r-1", "title": "t", "severity": "high", "entities": {"user": "dana@corp.example"}}),
    )
    .unwrap();
    let r = c
        .post(format!("{}/v1/alerts/siem", f.server.url))
        .header("content-type", "application/json")
        .header("x-floodgate-signature", signature(&body))
        .body(body)
        .send()
        .await
        .unwrap();
    let accepted: Value = r.json().await.unwrap();
    let run_id = accepted["run_id"].as_str().unwrap().to_string();
    // Wait for the run to ask for approval.
    let mut approval = String::new();
    for _ in 0..100 {
        let v: Value = c
            .get(format!("{}/v1/approvals", f.server.url))
            .bearer_auth("alice-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        if let Some(a) = v["approvals"].as_array().and_then(|a| a.first()) {
            approval = a["id"].as_str().unwrap().to_string();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!approval.is_empty(), "no approval requested:\n{}", f.server.stderr());
    assert_eq!(c.get(format!("{}/v1/runs", f.server.url)).send().await.unwrap().status(), 401);
    assert_eq!(c.get(format!("{}/v1/runs", f.server.url)).bearer_auth("wrong").send().await.unwrap().status(), 401);
    let decide = |token: &'static str, body: Value| {
        c.post(format!("{}/v1/approvals/{approval}/decision", f.server.url)).bearer_auth(token).json(&body).send()
    };
    // dana is the alert's user: she may not approve containment aimed at herself.
    let r = decide("dana-token", json!({"decision": "approve"})).await.unwrap();
    assert_eq!(r.status(), 403);
    let v: Value = r.json().await.unwrap();
    assert!(v["error"]["message"].as_str().unwrap().contains("aimed at"), "{v}");
    let r = decide("alice-token", json!({"decision": "maybe"})).await.unwrap();
    assert_eq!(r.status(), 400);
    let r = c
        .post(format!("{}/v1/approvals/apr_nope/decision", f.server.url))
        .bearer_auth("alice-token")
        .json(&json!({"decision": "approve"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let r = decide("alice-token", json!({"decision": "approve", "reason": "checked with dana"})).await.unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["state"], "approved");
    let mut state = String::new();
    for _ in 0..100 {
        let v: Value = c
            .get(format!("{}/v1/runs/{run_id}", f.server.url))
            .bearer_auth("alice-token")
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        state = v["run"]["state"].as_str().unwrap_or("").to_string();
        if state == "succeeded" {
            assert_eq!(v["approvals"][0]["votes"][0]["identity"], "alice");
            assert_eq!(v["approvals"][0]["votes"][0]["channel"], "api");
            assert!(v["events"].as_array().unwrap().iter().any(|e| e["kind"] == "approval_decided"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(state, "succeeded");
    let list: Value = c
        .get(format!("{}/v1/runs?state=succeeded", f.server.url))
        .bearer_auth("alice-token")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["runs"].as_array().unwrap().len(), 1);
    let missing = c.get(format!("{}/v1/runs/run_nope", f.server.url)).bearer_auth("alice-token").send().await.unwrap();
    assert_eq!(missing.status(), 404);
}

#[test]
fn serve_refuses_to_start_with_a_missing_secret_and_names_it() {
    let dir = tempfile::tempdir().unwrap();
    let pbdir = dir.path().join("playbooks");
    crate::common::write(&pbdir, "intake.yaml", PLAYBOOK);
    let cfg = config(dir.path(), &format!("sqlite://{}/x.db", dir.path().display()), &pbdir, EXTRA);
    let out = std::process::Command::new(crate::common::bin())
        .args(["serve", "--config"])
        .arg(&cfg)
        .env("FLOODGATE_SIEM_SECRET", "x")
        .env_remove("FG_SQL_PASSWORD")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("FG_SQL_PASSWORD"), "{err}");
}
