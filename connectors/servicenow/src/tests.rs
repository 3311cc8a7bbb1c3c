//! Crate tests: the connector against the ServiceNow simulator on 127.0.0.1. ServiceNow
//! publishes no API spec, so every request is also checked by hand-written assertions against
//! the Table API reference (`assert_requests_follow_reference`).

use crate::sim::{
    SIM_GROUP_NAME, SIM_GROUP_SYS_ID, SIM_OAUTH_TOKEN, SIM_PASSWORD, SIM_USER, SIM_USER_SYS_ID, ServiceNowSim,
};
use crate::{NS_INCIDENT, ServiceNow, ServiceNowKind, marker};
use floodgate_sdk::http::RetryPolicy;
use floodgate_sdk::{
    ActionCall, ActionError, ActionOutput, CallContext, Connector, ConnectorKind, MemoryRefStore, RefStore,
};
use serde_json::{Value, json};
use std::time::Duration;

fn fast() -> RetryPolicy {
    RetryPolicy { base_delay: Duration::from_millis(1), max_delay: Duration::from_millis(5), ..RetryPolicy::default() }
}

fn secret_file(name: &str, value: &str) -> String {
    // One file per call: tests run in parallel and must not read a file another is rewriting.
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    let path = std::env::temp_dir().join(format!("fg-sn-test-{}-{n}-{name}", std::process::id()));
    std::fs::write(&path, value).expect("write secret file");
    format!("file:{}", path.display())
}

fn config(sim: &ServiceNowSim) -> Value {
    json!({
        "instance_url": sim.url(), "username": SIM_USER, "password": secret_file("pw", SIM_PASSWORD),
        "assignment_group": SIM_GROUP_NAME, "caller": SIM_USER, "category": "network",
        "rate_limit_per_second": 1000.0,
    })
}

async fn setup() -> (ServiceNowSim, ServiceNow) {
    let sim = ServiceNowSim::start().await.expect("start simulator");
    let sn = ServiceNow::from_config(&config(&sim), fast()).expect("build connector");
    (sim, sn)
}

fn ctx(incident: &str) -> CallContext {
    CallContext {
        run_id: "run-1".into(),
        step_id: "ticket".into(),
        incident_id: incident.into(),
        playbook_id: "exfiltration".into(),
        attempt: 1,
        alert: json!({
            "id": "al-1", "source": "databricks", "rule": "bulk_download",
            "title": "Bulk download by a service principal",
            "description": "Downloaded 40 GB\u{0} from main.sales", "severity": "high", "confidence": 0.93,
            "workspace_id": "1234", "entities": {"user": "sp-etl@corp.example", "source_ip": "203.0.113.66"},
            "fields": {}, "received_at": "2025-01-01T00:00:00Z"
        }),
        incident: json!({"id": incident, "title": "Exfiltration from workspace 1234", "severity": "high", "alert_count": 2}),
        incident_url: Some(format!("https://floodgate.example.com/incidents/{incident}")),
    }
}

async fn run(
    sn: &ServiceNow,
    action: &str,
    input: Value,
    key: &str,
    ctx: &CallContext,
    refs: &dyn RefStore,
) -> Result<ActionOutput, ActionError> {
    sn.execute(&ActionCall { action, input: &input, idempotency_key: key, ctx, refs }).await
}

async fn run_like_engine(
    sn: &ServiceNow,
    action: &str,
    input: Value,
    key: &str,
    ctx: &CallContext,
    refs: &dyn RefStore,
) -> (Result<ActionOutput, ActionError>, u32) {
    let mut ctx = ctx.clone();
    loop {
        let r = run(sn, action, input.clone(), key, &ctx, refs).await;
        match &r {
            Err(e) if e.is_retryable() && ctx.attempt < 10 => ctx.attempt += 1,
            _ => return (r, ctx.attempt),
        }
    }
}

const WRITABLE: &[&str] = &[
    "short_description",
    "description",
    "urgency",
    "impact",
    "state",
    "category",
    "subcategory",
    "correlation_id",
    "correlation_display",
    "caller_id",
    "assignment_group",
    "assigned_to",
    "work_notes",
    "comments",
    "close_code",
    "close_notes",
];

/// ServiceNow has no published spec: check every request the connector sent against the Table
/// API reference by hand. Returns how many requests were checked.
fn assert_requests_follow_reference(sim: &ServiceNowSim) -> usize {
    let calls = sim.log().calls();
    for c in &calls {
        let what = format!("{} {}?{}", c.method, c.path, c.query.as_deref().unwrap_or(""));
        let rest = c.path.strip_prefix("/api/now/table/").unwrap_or_else(|| panic!("not a Table API path: {what}"));
        let table = rest.split('/').next().unwrap_or("");
        assert!(["incident", "sys_user_group", "sys_user"].contains(&table), "{what}");
        assert_eq!(c.header("accept"), Some("application/json"), "{what}");
        let q: Vec<(String, String)> =
            url::form_urlencoded::parse(c.query.as_deref().unwrap_or("").as_bytes()).into_owned().collect();
        let param = |k: &str| q.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        for (k, _) in &q {
            assert!(
                [
                    "sysparm_query",
                    "sysparm_fields",
                    "sysparm_limit",
                    "sysparm_exclude_reference_link",
                    "sysparm_display_value"
                ]
                .contains(&k.as_str()),
                "unexpected parameter {k} in {what}"
            );
        }
        match c.method.as_str() {
            "POST" | "PATCH" => {
                assert_eq!(table, "incident", "{what}");
                assert_eq!(c.header("content-type"), Some("application/json"), "{what}");
                let body = c.json().unwrap_or_else(|| panic!("{what}: body is not JSON"));
                let obj = body.as_object().unwrap_or_else(|| panic!("{what}: body is not an object"));
                for (k, v) in obj {
                    assert!(WRITABLE.contains(&k.as_str()), "{what}: {k} is not a writable incident column");
                    assert!(v.is_string(), "{what}: {k} must be a string (the Table API's type), got {v}");
                }
                assert_eq!(param("sysparm_exclude_reference_link"), Some("true"), "{what}");
                if c.method == "POST" {
                    assert!(c.path == "/api/now/table/incident", "{what}");
                    let sd = obj["short_description"].as_str().unwrap_or("");
                    assert!(!sd.is_empty() && sd.chars().count() <= 160, "{what}: short_description");
                    assert!(obj["correlation_id"].as_str().is_some_and(|s| !s.is_empty() && s.len() <= 100), "{what}");
                    assert!(obj.contains_key("correlation_display"), "{what}");
                    for f in ["urgency", "impact"] {
                        assert!(["1", "2", "3"].contains(&obj[f].as_str().unwrap_or("")), "{what}: {f}");
                    }
                    for f in ["assignment_group", "caller_id"] {
                        if let Some(v) = obj.get(f).and_then(Value::as_str) {
                            assert!(crate::actions::is_sys_id(v), "{what}: {f} must be a sys_id, got {v:?}");
                        }
                    }
                } else {
                    assert!(
                        crate::actions::is_sys_id(rest.rsplit('/').next().unwrap_or("")),
                        "{what}: PATCH by sys_id"
                    );
                }
            }
            "GET" => {
                if param("sysparm_display_value") == Some("true") {
                    assert_eq!(
                        param("sysparm_fields"),
                        Some("sys_id,work_notes"),
                        "{what}: display values only to read the journal"
                    );
                } else if table == "incident" {
                    assert_eq!(param("sysparm_exclude_reference_link"), Some("true"), "{what}");
                }
                if !rest.contains('/') {
                    let query =
                        param("sysparm_query").unwrap_or_else(|| panic!("{what}: a list read without sysparm_query"));
                    let column = query.split(['=', '^']).next().unwrap_or("");
                    let expected = match table {
                        "incident" => &["correlation_id", "number"][..],
                        "sys_user_group" => &["name"][..],
                        _ => &["user_name"][..],
                    };
                    assert!(expected.contains(&column), "{what}: query on {column:?}");
                    assert!(param("sysparm_limit").is_some(), "{what}: reads are bounded");
                }
            }
            other => panic!("unexpected method {other} in {what}"),
        }
    }
    calls.len()
}

#[tokio::test]
async fn create_then_update_with_work_notes_and_state() {
    let (sim, sn) = setup().await;
    let refs = MemoryRefStore::new();
    let c = ctx("inc-42");
    let out = run(&sn, "incident.create", json!({}), "k-create", &c, &refs).await.unwrap();
    assert_eq!(out.output["number"], "INC0010001");
    assert_eq!(out.output["created"], true);
    assert_eq!(out.output["correlation_id"], "floodgate-inc-42");
    let sys_id = out.output["sys_id"].as_str().unwrap().to_string();
    let rec = sim.incident(&sys_id).unwrap();
    assert_eq!(rec.get("short_description"), "[floodgate] Exfiltration from workspace 1234");
    assert_eq!(rec.get("correlation_display"), "floodgate");
    assert_eq!((rec.get("urgency"), rec.get("impact"), rec.get("priority")), ("1", "2", "2"), "high severity");
    assert_eq!(rec.get("assignment_group"), SIM_GROUP_SYS_ID, "group name resolved to its sys_id");
    assert_eq!(rec.get("caller_id"), SIM_USER_SYS_ID, "caller user_name resolved to its sys_id");
    assert_eq!(rec.get("category"), "network");
    let d = rec.get("description");
    assert!(d.contains("- Entity source_ip: 203.0.113.66"), "{d}");
    assert!(d.contains("Downloaded 40 GB from main.sales"), "control characters removed: {d}");
    assert!(d.ends_with("floodgate: https://floodgate.example.com/incidents/inc-42"), "{d}");
    assert_eq!(refs.get(NS_INCIDENT, "inc-42").await.unwrap().unwrap()["sys_id"], sys_id.as_str());

    let out = run(
        &sn,
        "incident.update",
        json!({"work_note": "Containment approved by alice.", "state": "in_progress"}),
        "k-u1",
        &c,
        &refs,
    )
    .await
    .unwrap();
    assert_eq!(out.output["state"], "2");
    let rec = sim.incident(&sys_id).unwrap();
    assert_eq!(rec.get("state"), "2");
    assert_eq!(rec.work_notes(), [format!("Containment approved by alice.\n\n{}", marker("k-u1"))]);

    let out = run(
        &sn,
        "incident.update",
        json!({"state": "resolved", "close_code": "Solution provided", "close_notes": "IP blocked"}),
        "k-u2",
        &c,
        &refs,
    )
    .await
    .unwrap();
    assert_eq!(out.output["state"], "6");
    assert_eq!(sim.incident(&sys_id).unwrap().get("close_notes"), "IP blocked");
    // Group and caller were looked up once each, then cached.
    assert_eq!(sim.log().count("GET", "/api/now/table/sys_user_group"), 1);
    run(&sn, "incident.create", json!({}), "k", &ctx("inc-43"), &refs).await.unwrap();
    assert_eq!(sim.log().count("GET", "/api/now/table/sys_user_group"), 1);
    assert!(assert_requests_follow_reference(&sim) >= 8);
}

#[tokio::test]
async fn oauth_bearer_and_sys_id_references() {
    let sim = ServiceNowSim::start().await.unwrap();
    let cfg = json!({"instance_url": sim.url(), "oauth_token": secret_file("tok", SIM_OAUTH_TOKEN),
        "assignment_group": SIM_GROUP_SYS_ID});
    let sn = ServiceNow::from_config(&cfg, fast()).unwrap();
    let out = run(
        &sn,
        "incident.create",
        json!({"urgency": "3", "impact": "3", "fields": {"subcategory": "dlp"}}),
        "k",
        &ctx("inc-o"),
        &MemoryRefStore::new(),
    )
    .await
    .unwrap();
    let rec = sim.incident(out.output["sys_id"].as_str().unwrap()).unwrap();
    assert_eq!(rec.get("assignment_group"), SIM_GROUP_SYS_ID);
    assert_eq!(rec.get("priority"), "5");
    assert_eq!(rec.get("subcategory"), "dlp");
    assert_eq!(sim.log().count("GET", "/api/now/table/sys_user_group"), 0, "a sys_id needs no lookup");
    assert!(sim.log().calls().iter().all(|c| c.header("authorization") == Some(&format!("Bearer {SIM_OAUTH_TOKEN}"))));
    assert_requests_follow_reference(&sim);
}

#[tokio::test]
async fn one_servicenow_incident_per_floodgate_incident_even_across_crashes() {
    let (sim, sn) = setup().await;
    let c = ctx("inc-crash");
    let refs = MemoryRefStore::new();
    let a = run(&sn, "incident.create", json!({}), "step-a", &c, &refs).await.unwrap();
    let b = run(&sn, "incident.create", json!({}), "step-b", &c, &refs).await.unwrap();
    assert_eq!(a.output["sys_id"], b.output["sys_id"]);
    assert_eq!(b.output["found_by"], "refs");
    // Crash after ServiceNow stored the record but before refs were committed.
    let mut retry = c.clone();
    retry.attempt = 2;
    let fresh = MemoryRefStore::new();
    let r = run(&sn, "incident.create", json!({}), "step-a", &retry, &fresh).await.unwrap();
    assert_eq!(r.output["sys_id"], a.output["sys_id"]);
    assert_eq!(r.output["found_by"], "query");
    assert_eq!(fresh.get(NS_INCIDENT, "inc-crash").await.unwrap().unwrap()["number"], "INC0010001");
    // A create whose answer was lost (504 after commit) is reconciled on the engine's retry.
    sim.lose_next_create_answers(1);
    let (r, attempts) =
        run_like_engine(&sn, "incident.create", json!({}), "k", &ctx("inc-lost"), &MemoryRefStore::new()).await;
    assert_eq!(r.unwrap().output["found_by"], "query");
    assert_eq!(attempts, 2);
    // Another floodgate incident is not mistaken for this one.
    run(&sn, "incident.create", json!({}), "k", &ctx("inc-other"), &refs).await.unwrap();
    let incidents = sim.incidents();
    assert_eq!(incidents.len(), 3);
    for cid in ["floodgate-inc-crash", "floodgate-inc-lost", "floodgate-inc-other"] {
        assert_eq!(incidents.iter().filter(|i| i.get("correlation_id") == cid).count(), 1, "{cid}");
    }
    assert_eq!(sim.log().count("POST", "/api/now/table/incident"), 3);
    assert_requests_follow_reference(&sim);
}

#[tokio::test]
async fn a_repeated_work_note_is_appended_once() {
    let (sim, sn) = setup().await;
    let refs = MemoryRefStore::new();
    let c = ctx("inc-wn");
    let created = run(&sn, "incident.create", json!({}), "k", &c, &refs).await.unwrap();
    let sys_id = created.output["sys_id"].as_str().unwrap().to_string();
    run(&sn, "incident.update", json!({"work_note": "note"}), "k-note", &c, &refs).await.unwrap();
    run(&sn, "incident.update", json!({"work_note": "note"}), "k-note", &c, &refs).await.unwrap();
    // Crash after the PATCH but before refs: attempt 2 finds the marker in the journal.
    let fresh = MemoryRefStore::new();
    let mut retry = c.clone();
    retry.attempt = 2;
    let out = run(&sn, "incident.update", json!({"work_note": "note"}), "k-note", &retry, &fresh).await.unwrap();
    assert_eq!(out.output["work_note_added"], true);
    assert_eq!(sim.incident(&sys_id).unwrap().work_notes().len(), 1);
    assert_eq!(sim.log().count("PATCH", &format!("/api/now/table/incident/{sys_id}")), 1);
    // Same text, different step: a second note.
    run(&sn, "incident.update", json!({"work_note": "note"}), "k-note-2", &retry, &fresh).await.unwrap();
    assert_eq!(sim.incident(&sys_id).unwrap().work_notes().len(), 2);
    // By number.
    run(&sn, "incident.update", json!({"incident": "INC0010001", "work_note": "by number"}), "k-n", &c, &refs)
        .await
        .unwrap();
    assert_eq!(sim.incident(&sys_id).unwrap().work_notes().len(), 3);
    assert_requests_follow_reference(&sim);
}

#[tokio::test]
async fn rides_out_a_429_storm_without_loss_or_duplicates() {
    let (sim, sn) = setup().await;
    let refs = MemoryRefStore::new();
    let c = ctx("inc-storm");
    sim.faults().rate_limit_every(2, 0, None);
    run_like_engine(&sn, "incident.create", json!({}), "k", &c, &refs).await.0.unwrap();
    for i in 0..5 {
        run_like_engine(
            &sn,
            "incident.update",
            json!({"work_note": format!("update {i}")}),
            &format!("k{i}"),
            &c,
            &refs,
        )
        .await
        .0
        .unwrap();
    }
    sim.faults().clear();
    sim.faults().rate_limit_next(6, 0, Some("/api/now/table/incident/"));
    let (r, attempts) =
        run_like_engine(&sn, "incident.update", json!({"work_note": "last"}), "k-last", &c, &refs).await;
    r.unwrap();
    assert!(attempts >= 2);
    let incidents = sim.incidents();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].work_notes().len(), 6, "every note exactly once");
    assert!(sim.log().calls().iter().filter(|c| c.status == 429).count() >= 8);
    sim.faults().rate_limit_next(10, 120, None);
    let e = run(&sn, "incident.update", json!({"work_note": "x"}), "k-x", &c, &refs).await.unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.retry_after_hint(), Some(Duration::from_secs(120)));
    assert!(e.message().contains("Rate limit exceeded"), "{}", e.message());
    sim.faults().clear();
    assert_requests_follow_reference(&sim);
}

#[tokio::test]
async fn errors_are_parsed_and_4xx_never_retried() {
    let (sim, sn) = setup().await;
    let refs = MemoryRefStore::new();
    let c = ctx("inc-err");
    run(&sn, "incident.create", json!({}), "k", &c, &refs).await.unwrap();
    let e = run(&sn, "incident.update", json!({"state": "resolved"}), "k-r", &c, &refs).await.unwrap_err();
    assert_eq!(e.code(), "http_403");
    assert!(!e.is_retryable());
    assert!(e.message().contains("Operation Failed: Data Policy Exception:"), "{}", e.message());
    assert!(e.message().contains("Resolution code, Resolution notes"), "{}", e.message());
    let patches = sim.log().calls().iter().filter(|c| c.method == "PATCH").count();
    assert_eq!(patches, 1, "403 is not retried");
    let e = run(
        &sn,
        "incident.update",
        json!({"incident": "0123456789abcdef0123456789abcdef", "work_note": "x"}),
        "k-404",
        &c,
        &refs,
    )
    .await
    .unwrap_err();
    assert_eq!(e.code(), "http_404");
    assert!(
        e.message().contains("No Record found: Record doesn't exist or ACL restricts the record retrieval"),
        "{}",
        e.message()
    );
    let e = run(&sn, "incident.update", json!({"incident": "INC9999999", "work_note": "x"}), "k-n", &c, &refs)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "no_incident");
    let e = run(&sn, "incident.update", json!({"state": "done"}), "k", &c, &refs).await.unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    let e = run(&sn, "incident.update", json!({}), "k", &c, &refs).await.unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    let e = run(&sn, "incident.update", json!({"work_note": "x"}), "k", &ctx("inc-none"), &refs).await.unwrap_err();
    assert_eq!(e.code(), "no_incident");
    let e = run(&sn, "incident.create", json!({"urgency": "0"}), "k", &ctx("inc-u"), &refs).await.unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    let e = run(&sn, "incident.create", json!({"assignment_group": "Nobody"}), "k", &ctx("inc-g"), &refs)
        .await
        .unwrap_err();
    assert_eq!(e.code(), "reference_not_found");

    let mut bad = config(&sim);
    bad["password"] = json!(secret_file("wrong", "wrong-password-value"));
    let wrong = ServiceNow::from_config(&bad, fast()).unwrap();
    let before = sim.log().len();
    let e = run(&wrong, "incident.create", json!({}), "k", &ctx("inc-auth"), &MemoryRefStore::new()).await.unwrap_err();
    assert_eq!(e.code(), "http_401");
    assert!(e.message().contains("User Not Authenticated: Required to provide Auth information"), "{}", e.message());
    assert!(!e.message().contains("wrong-password-value"));
    assert_eq!(sim.log().len(), before + 1, "401 is not retried");

    // 5xx on a read is retried in-request.
    sim.faults().fail_next(2, 503, Some("/api/now/table/incident"));
    run(&sn, "incident.create", json!({}), "k", &ctx("inc-5xx"), &MemoryRefStore::new()).await.unwrap();
    assert_requests_follow_reference(&sim);
}

#[tokio::test]
async fn plans_show_requests_without_secrets_and_without_io() {
    let (sim, sn) = setup().await;
    let refs = MemoryRefStore::new();
    let c = ctx("inc-plan");
    let input = json!({"short_description": "Suspicious download"});
    let plan = sn
        .plan(&ActionCall { action: "incident.create", input: &input, idempotency_key: "k", ctx: &c, refs: &refs })
        .unwrap();
    let methods: Vec<&str> = plan.requests.iter().map(|r| r.method.as_str()).collect();
    assert_eq!(methods, ["GET", "GET", "GET", "POST"]);
    assert!(
        plan.requests[0].url.contains("sysparm_query=correlation_id%3Dfloodgate-inc-plan%5EORDERBYsys_created_on"),
        "{}",
        plan.requests[0].url
    );
    let body = plan.requests[3].body.as_ref().unwrap();
    assert_eq!(body["short_description"], "Suspicious download");
    assert_eq!(body["assignment_group"], "<sys_id of sys_user_group name=Security Operations>");
    assert_eq!(body["correlation_id"], "floodgate-inc-plan");
    let shown = serde_json::to_string(&plan).unwrap();
    assert!(!shown.contains(SIM_PASSWORD) && !shown.contains("Basic "), "{shown}");
    let input = json!({"work_note": "x", "state": "on_hold"});
    let plan = sn
        .plan(&ActionCall { action: "incident.update", input: &input, idempotency_key: "k", ctx: &c, refs: &refs })
        .unwrap();
    assert_eq!(plan.requests[0].method, "PATCH");
    assert!(plan.requests[0].url.contains("<sys_id of the ServiceNow incident of inc-plan>"));
    assert_eq!(plan.requests[0].body.as_ref().unwrap()["state"], "3");
    assert!(sim.log().is_empty(), "plan did no I/O");

    let unconfigured = ServiceNowKind.build(None).unwrap();
    let input = json!({});
    let call = ActionCall { action: "incident.create", input: &input, idempotency_key: "k", ctx: &c, refs: &refs };
    let plan = unconfigured.plan(&call).unwrap();
    assert!(
        plan.requests.last().unwrap().url.starts_with("https://<instance>.service-now.com/api/now/table/incident?")
    );
    assert_eq!(unconfigured.execute(&call).await.unwrap_err().code(), "not_configured");
}

#[test]
fn config_is_checked_and_never_takes_literal_secrets() {
    let e = ServiceNowKind
        .build(Some(&json!({"instance_url": "https://x.service-now.com", "username": "u", "password": "hunter2"})))
        .err()
        .unwrap()
        .to_string();
    assert!(!e.contains("hunter2"), "{e}");
    let e =
        ServiceNowKind.build(Some(&json!({"instance_url": "https://x.service-now.com"}))).err().unwrap().to_string();
    assert!(e.contains("either username + password"), "{e}");
    let e = ServiceNowKind
        .build(Some(&json!({"instance_url": "https://x.service-now.com", "oauth_token": "env:X", "username": "u", "password": "env:Y"})))
        .err()
        .unwrap()
        .to_string();
    assert!(e.contains("not both"), "{e}");
    let specs = ServiceNowKind.actions();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["incident.create", "incident.update"]);
    assert!(
        specs.iter().all(|s| s.risk == floodgate_sdk::RiskClass::Ticket && !s.revertible && !s.idempotency.is_empty())
    );
}

#[tokio::test]
async fn timeouts_are_retried_safely() {
    let sim = ServiceNowSim::start().await.unwrap();
    let mut cfg = config(&sim);
    cfg["timeout_seconds"] = json!(1);
    let sn = ServiceNow::from_config(&cfg, fast()).unwrap();
    let refs = MemoryRefStore::new();
    let c = ctx("inc-hang");
    sim.faults().inject(Some("GET"), Some("/api/now/table/incident"), Some(1), floodgate_sdk::sim::Fault::Hang);
    sim.faults().inject(Some("POST"), Some("/api/now/table/incident"), Some(1), floodgate_sdk::sim::Fault::Hang);
    let (r, attempts) = run_like_engine(&sn, "incident.create", json!({}), "k", &c, &refs).await;
    assert_eq!(r.unwrap().output["created"], true);
    assert_eq!(attempts, 2, "the hung create went back to the engine, which queried before creating");
    assert_eq!(sim.incidents().len(), 1);
    // A hung work-note PATCH is not replayed in-request either; the retry checks the journal.
    sim.faults().inject(Some("PATCH"), Some("/api/now/table/incident/"), Some(1), floodgate_sdk::sim::Fault::Hang);
    let (r, attempts) = run_like_engine(&sn, "incident.update", json!({"work_note": "n"}), "k-n", &c, &refs).await;
    r.unwrap();
    assert_eq!(attempts, 2);
    assert_eq!(sim.incidents()[0].work_notes().len(), 1);
    assert_requests_follow_reference(&sim);
}

#[tokio::test]
async fn simulator_renders_references_and_journals_like_the_table_api() {
    let (sim, sn) = setup().await;
    let refs = MemoryRefStore::new();
    let c = ctx("inc-r");
    let out = run(&sn, "incident.create", json!({}), "k", &c, &refs).await.unwrap();
    run(&sn, "incident.update", json!({"work_note": "first"}), "k1", &c, &refs).await.unwrap();
    let id = out.output["sys_id"].as_str().unwrap();
    let http = floodgate_sdk::http::HttpClient::new(fast());
    let get = |q: &str| {
        floodgate_sdk::http::Request::get(format!("{}/api/now/table/incident/{id}?{q}", sim.url()))
            .basic(SIM_USER, &floodgate_sdk::Secret::new(SIM_PASSWORD))
    };
    let raw: Value =
        http.send(&get("sysparm_fields=assignment_group,urgency,work_notes")).await.unwrap().json().unwrap();
    assert_eq!(
        raw["result"]["assignment_group"],
        json!({"link": format!("{}/api/now/table/sys_user_group/{SIM_GROUP_SYS_ID}", sim.url()), "value": SIM_GROUP_SYS_ID})
    );
    assert_eq!(raw["result"]["urgency"], "1", "values are strings");
    assert_eq!(raw["result"]["work_notes"], "", "journals read back empty without display values");
    let rv: crate::client::RefValue = serde_json::from_value(raw["result"]["assignment_group"].clone()).unwrap();
    assert_eq!(rv.value(), SIM_GROUP_SYS_ID, "the connector reads the {{link, value}} form");
    let shown: Value = http
        .send(&get("sysparm_fields=assignment_group,urgency,work_notes&sysparm_display_value=true&sysparm_exclude_reference_link=true"))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(shown["result"]["assignment_group"], SIM_GROUP_NAME);
    assert_eq!(shown["result"]["urgency"], "1 - High");
    assert!(shown["result"]["work_notes"].as_str().unwrap().contains("(Work notes)\nfirst"));
    // An encoded query with a misspelt column is widened, as on a real instance; the
    // connector's guard only adopts records whose correlation_id matches.
    let list = floodgate_sdk::http::Request::get(format!(
        "{}/api/now/table/incident?sysparm_query=corelation_id%3Dnope&sysparm_limit=5",
        sim.url()
    ))
    .basic(SIM_USER, &floodgate_sdk::Secret::new(SIM_PASSWORD));
    let r = http.send(&list).await.unwrap();
    assert_eq!(r.header("x-total-count"), Some("1"));
    let missing = floodgate_sdk::http::Request::get(format!("{}/api/now/table/no_such_table", sim.url()))
        .basic(SIM_USER, &floodgate_sdk::Secret::new(SIM_PASSWORD));
    let r = http.send(&missing).await.unwrap();
    assert_eq!(r.status, 400);
    assert_eq!(r.json::<Value>().unwrap()["status"], "failure");
}
