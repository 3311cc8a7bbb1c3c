//! The crash test: `floodgate serve` is SIGKILLed at injected points — after a step's intent is
//! committed but before the connector is called, after the call but before its outcome is
//! committed, and in the middle of intake — and restarted each time. Afterwards:
//! - every alert that got a 2xx has its incident and its run;
//! - every run reaches its terminal state;
//! - the connector action took effect exactly once per run, counted at a sink that honours the
//!   `Idempotency-Key` header the way a vendor does.

use crate::harness::{Backend, Db};
use crate::server::{Server, config, post_alert};
use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;
use floodgate::store::{RunState, Store};
use floodgate_sdk::sim::SimServer;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A vendor that honours idempotency keys: the first call with a key takes effect, repeats
/// answer the same without acting again.
#[derive(Default, Clone)]
struct Sink {
    calls: Arc<Mutex<BTreeMap<String, u32>>>,
    effects: Arc<Mutex<BTreeMap<String, u32>>>,
}

async fn effect(State(sink): State<Sink>, headers: HeaderMap, Json(body): Json<Value>) -> Json<Value> {
    let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    *sink.calls.lock().unwrap().entry(key.clone()).or_default() += 1;
    let mut effects = sink.effects.lock().unwrap();
    let first = !effects.contains_key(&key);
    if first && !key.is_empty() {
        effects.insert(key, 1);
    }
    Json(json!({"new": first, "alert": body["alert"]}))
}

const PLAYBOOK: &str = r#"
id: crashy
name: Crash test
match: {source: siem}
steps:
  containment:
    - id: act
      action: core.http
      retry: {max_attempts: 5, backoff: 200ms}
      with:
        method: POST
        url: "{{ vars.sink }}/effect"
        json: {alert: "{{ alert.external_id }}"}
  remediation:
    - id: done
      action: core.log
      with: {message: "acted for {{ alert.external_id }}"}
"#;

fn alert(n: usize) -> Value {
    json!({"id": format!("crash-{n}"), "title": "crash test", "severity": "high", "entities": {"user": format!("user{n}@corp.example")}})
}

/// Sends alerts `range` one after another until the server stops answering; returns the 202s.
async fn send(
    client: &reqwest::Client,
    url: &str,
    range: std::ops::Range<usize>,
    accepted: &mut BTreeMap<usize, Value>,
) -> usize {
    for n in range.clone() {
        match post_alert(client, url, &alert(n)).await {
            Some((202, body)) => {
                accepted.insert(n, body);
            }
            Some((status, body)) => panic!("alert {n}: unexpected {status} {body}"),
            None => return n,
        }
    }
    range.end
}

async fn crash_and_recover(backend: Backend) {
    let db = Db::new(backend).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::default();
    let router = axum::Router::new().route("/effect", axum::routing::post(effect)).with_state(sink.clone());
    let sim = SimServer::start(router).await.unwrap();
    let pbdir = dir.path().join("playbooks");
    crate::common::write(
        &pbdir,
        "crashy.yaml",
        PLAYBOOK.replace("steps:", &format!("vars: {{sink: \"{}\"}}\nsteps:", sim.url())),
    );
    let cfg = config(dir.path(), &db.url, &pbdir, "");
    let client = crate::common::client();
    let mut accepted: BTreeMap<usize, Value> = BTreeMap::new();
    let total = 24;

    // 1. Die right after committing a step's intent, before calling the vendor.
    let mut s = Server::start(&cfg, &[("FLOODGATE_FAILPOINTS", "step.after_intent=kill@3")]);
    let mut next = send(&client, &s.url, 0..8, &mut accepted).await;
    assert!(s.wait_exit(Duration::from_secs(30)).is_some(), "failpoint step.after_intent never fired:\n{}", s.stderr());
    assert!(s.stderr().contains("failpoint step.after_intent"), "{}", s.stderr());

    // 2. Die after the vendor acted but before the outcome is committed.
    let mut s = Server::start(&cfg, &[("FLOODGATE_FAILPOINTS", "step.before_outcome=kill@2")]);
    next = send(&client, &s.url, next..next + 6, &mut accepted).await;
    assert!(
        s.wait_exit(Duration::from_secs(30)).is_some(),
        "failpoint step.before_outcome never fired:\n{}",
        s.stderr()
    );

    // 3. Die in the middle of intake, before the batch commits: that alert gets no 2xx.
    let mut s = Server::start(&cfg, &[("FLOODGATE_FAILPOINTS", "intake.before_commit=kill@3")]);
    let died_at = send(&client, &s.url, next..next + 6, &mut accepted).await;
    assert!(died_at < next + 6, "intake failpoint never fired");
    assert!(s.wait_exit(Duration::from_secs(30)).is_some());
    assert!(!accepted.contains_key(&died_at));

    // 4. A clean restart: the unanswered alert is sent again, then the rest.
    let s = Server::start(&cfg, &[]);
    let resent = post_alert(&client, &s.url, &alert(died_at)).await.unwrap();
    assert_eq!(resent.0, 202);
    assert_eq!(resent.1["duplicate"], false, "the alert whose intake crashed was not committed");
    accepted.insert(died_at, resent.1);
    send(&client, &s.url, died_at + 1..total, &mut accepted).await;

    let store = Store::connect(&db.url, 2).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let runs = loop {
        let runs = store.list_runs(&floodgate::store::RunFilter { limit: 1000, ..Default::default() }).await.unwrap();
        if runs.len() >= accepted.len() && runs.iter().all(|r| r.finished_at.is_some()) {
            break runs;
        }
        assert!(
            Instant::now() < deadline,
            "runs did not finish: {:?}\n{}",
            runs.iter().map(|r| (&r.id, &r.state)).collect::<Vec<_>>(),
            s.stderr()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };

    // Every 2xx alert has its incident and run, and every run finished well.
    for (n, body) in &accepted {
        let run_id = body["run_id"].as_str().unwrap_or_else(|| panic!("alert {n} got no run: {body}"));
        let run = store.run(run_id).await.unwrap().unwrap_or_else(|| panic!("run of alert {n} is missing"));
        assert_eq!(run.state, RunState::Succeeded, "alert {n}: {run:?}");
        assert!(store.incident(body["incident_id"].as_str().unwrap()).await.unwrap().is_some());
    }
    assert_eq!(runs.len(), accepted.len(), "no run without an accepted alert");
    // The vendor action took effect exactly once per run, although some calls were repeated.
    let effects = sink.effects.lock().unwrap().clone();
    let calls = sink.calls.lock().unwrap().clone();
    assert_eq!(effects.len(), runs.len(), "one effect per run");
    assert!(effects.values().all(|n| *n == 1));
    let repeated: BTreeSet<&String> = calls.iter().filter(|(_, n)| **n > 1).map(|(k, _)| k).collect();
    assert!(!repeated.is_empty(), "the crash between call and outcome should have caused a repeated call: {calls:?}");
    for run in &runs {
        let steps = store.step_executions(&run.id).await.unwrap();
        let act = steps.iter().find(|s| s.step_id == "act").unwrap();
        assert!(effects.contains_key(&act.idempotency_key), "run {} acted under its own key", run.id);
    }
    let resumed = runs.iter().filter(|r| r.cursor >= 0).count();
    assert_eq!(resumed, runs.len());
    store.close().await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_and_recover_sqlite() {
    crash_and_recover(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_and_recover_postgres() {
    crash_and_recover(Backend::Postgres).await;
}

/// SIGTERM stops taking work and hands runs back; a restart finishes them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_shuts_down_gracefully() {
    let db = Db::new(Backend::Sqlite).await;
    let dir = tempfile::tempdir().unwrap();
    let sink = Sink::default();
    let router = axum::Router::new().route("/effect", axum::routing::post(effect)).with_state(sink.clone());
    let sim = SimServer::start(router).await.unwrap();
    let pbdir = dir.path().join("playbooks");
    crate::common::write(
        &pbdir,
        "crashy.yaml",
        PLAYBOOK.replace("steps:", &format!("vars: {{sink: \"{}\"}}\nsteps:", sim.url())),
    );
    let cfg = config(dir.path(), &db.url, &pbdir, "");
    let client = crate::common::client();
    let mut s = Server::start(&cfg, &[]);
    let mut accepted = BTreeMap::new();
    send(&client, &s.url, 0..5, &mut accepted).await;
    let status = s.sigterm().expect("floodgate exits on SIGTERM");
    assert!(status.success(), "exit status {status:?}\n{}", s.stderr());
    assert!(s.stderr().contains("stopped"), "{}", s.stderr());
    // stderr is a pipe here, not a terminal: plain text, no colour codes.
    assert!(!s.stderr().contains('\x1b'), "ANSI escapes in piped logs:\n{:?}", s.stderr());
    let s = Server::start(&cfg, &[]);
    let store = Store::connect(&db.url, 2).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let runs = store.list_runs(&Default::default()).await.unwrap();
        if runs.len() == 5 && runs.iter().all(|r| r.state == "succeeded") {
            break;
        }
        assert!(Instant::now() < deadline, "{runs:?}\n{}", s.stderr());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(sink.effects.lock().unwrap().len(), 5);
    drop(s);
    sim.stop().await;
}
