//! Crate tests against the PagerDuty simulator, and the check of every event it received
//! against PagerDuty's published Events API v2 OpenAPI document.

use crate::sim::{AlertStatus, PagerDutySim, SIM_ROUTING_KEY};
use crate::{PagerDuty, PagerDutyKind, PagerDutySettings, Severity};
use floodgate_sdk::conformance::{check_openapi3_request, load, specs_dir};
use floodgate_sdk::http::{HttpClient, RetryPolicy};
use floodgate_sdk::sim::CallLog;
use floodgate_sdk::{
    ActionCall, ActionError, ActionOutput, CallContext, Connector, ConnectorKind, MemoryRefStore, RefStore,
};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn secret_file(value: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let path =
        std::env::temp_dir().join(format!("fg-pd-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    std::fs::write(&path, value).expect("write secret");
    format!("file:{}", path.display())
}

fn config(sim: &PagerDutySim, key: &str) -> Value {
    json!({"routing_key": secret_file(key), "events_api_url": sim.url(), "max_events_per_minute": 6000})
}

fn connector(sim: &PagerDutySim) -> PagerDuty {
    connector_with(config(sim, SIM_ROUTING_KEY))
}

fn connector_with(cfg: Value) -> PagerDuty {
    PagerDuty::new(PagerDutySettings::from_value(&cfg).expect("config")).with_http(HttpClient::new(RetryPolicy {
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(10),
        ..RetryPolicy::default()
    }))
}

fn ctx(incident: &str) -> CallContext {
    CallContext {
        run_id: "run-1".into(),
        step_id: "page".into(),
        incident_id: incident.into(),
        playbook_id: "exfiltration".into(),
        attempt: 1,
        alert: json!({
            "id": "al-1", "source": "databricks-audit", "rule": "Large export from a new IP",
            "title": "Unusual export", "description": "500 tables exported", "severity": "high",
            "confidence": 0.9, "workspace_id": "1234567890",
            "entities": {"user": "alice@example.com", "source_ip": "203.0.113.66"},
            "received_at": "2026-01-01T00:00:00Z"
        }),
        incident: json!({"id": incident, "title": "Data exfiltration", "severity": "high", "alert_count": 2}),
        incident_url: Some(format!("https://floodgate.example/incidents/{incident}")),
    }
}

fn call<'a>(
    action: &'a str,
    input: &'a Value,
    key: &'a str,
    ctx: &'a CallContext,
    refs: &'a dyn RefStore,
) -> ActionCall<'a> {
    ActionCall { action, input, idempotency_key: key, ctx, refs }
}

struct CrashingRefs(MemoryRefStore);

#[async_trait::async_trait]
impl RefStore for CrashingRefs {
    async fn get(&self, ns: &str, key: &str) -> Result<Option<Value>, ActionError> {
        self.0.get(ns, key).await
    }
    async fn put(&self, _: &str, _: &str, _: &Value) -> Result<(), ActionError> {
        Err(ActionError::retryable("crash", "simulated crash before the outcome was recorded"))
    }
    async fn delete(&self, ns: &str, key: &str) -> Result<(), ActionError> {
        self.0.delete(ns, key).await
    }
}

async fn run_until_done(
    pd: &PagerDuty,
    action: &str,
    key: &str,
    ctx: &CallContext,
    refs: &dyn RefStore,
) -> Result<ActionOutput, ActionError> {
    let mut ctx = ctx.clone();
    let input = json!({});
    for attempt in 1..=20 {
        ctx.attempt = attempt;
        match pd.execute(&call(action, &input, key, &ctx, refs)).await {
            Err(e) if e.is_retryable() => continue,
            other => return other,
        }
    }
    Err(ActionError::permanent("gave_up", "still failing"))
}

/// Every event the simulator received, validated against the published Events v2 schema.
fn check_log(log: &CallLog) -> usize {
    let Some(dir) = specs_dir() else {
        eprintln!("SKIPPED: PagerDuty Events API conformance (no specs directory)");
        return 0;
    };
    let doc = load(&dir, "pagerduty-events-v2-openapiv3.json");
    let mut n = 0;
    for c in log.matching("POST", "/v2/enqueue") {
        let body = c.json().expect("JSON body");
        if let Err(errs) = check_openapi3_request(&doc, "POST", "/enqueue", &body) {
            panic!("event does not conform to PagerDuty's Events API v2 spec: {errs:#?}\n{body:#}");
        }
        assert_eq!(c.header("content-type"), Some("application/json"));
        assert!(c.header("authorization").is_none(), "the Events API takes no auth header");
        n += 1;
    }
    n
}

#[test]
fn actions_and_severity_mapping() {
    let names: Vec<String> = PagerDutyKind.actions().into_iter().map(|s| s.name).collect();
    assert_eq!(names, vec!["event.trigger", "event.acknowledge", "event.resolve"]);
    for s in PagerDutyKind.actions() {
        assert_eq!(s.risk, floodgate_sdk::RiskClass::Notify);
    }
    for (fg, pd) in [
        ("critical", Severity::Critical),
        ("high", Severity::Error),
        ("medium", Severity::Warning),
        ("low", Severity::Info),
        ("info", Severity::Info),
        ("ERROR", Severity::Error),
        ("warning", Severity::Warning),
    ] {
        assert_eq!(Severity::from_name(fg), Some(pd), "{fg}");
    }
    assert_eq!(Severity::from_name("sev1"), None);
}

#[test]
fn dedup_keys_are_deterministic_and_bounded() {
    assert_eq!(crate::actions::dedup_key("floodgate", "inc-1"), "floodgate:incident:inc-1");
    let long = "x".repeat(300);
    let k = crate::actions::dedup_key("floodgate", &long);
    assert!(k.len() <= 255 && k.starts_with("floodgate:incident-sha256:"));
    assert_eq!(k, crate::actions::dedup_key("floodgate", &long));
}

#[tokio::test]
async fn trigger_acknowledge_resolve_one_alert() {
    let sim = PagerDutySim::start().await.expect("sim");
    let pd = connector(&sim);
    let ctx = ctx("inc-1");
    let refs = MemoryRefStore::new();
    let out = pd
        .execute(&call("event.trigger", &json!({"custom_details": {"note": "exports spiking"}}), "t", &ctx, &refs))
        .await
        .expect("trigger");
    assert_eq!(out.output["dedup_key"], "floodgate:incident:inc-1");
    assert_eq!(out.output["status"], "success");
    assert_eq!(out.output["outcome"], "sent");

    let alerts = sim.alerts();
    assert_eq!(alerts.len(), 1);
    let a = &alerts[0];
    assert_eq!(a.status, AlertStatus::Triggered);
    assert_eq!(a.summary, "[HIGH] Data exfiltration");
    assert_eq!(a.severity, "error");
    assert_eq!(a.source, "databricks-workspace-1234567890");
    assert_eq!(a.custom_details["incident_id"], "inc-1");
    assert_eq!(a.custom_details["entities"]["source_ip"], "203.0.113.66");
    assert_eq!(a.custom_details["note"], "exports spiking");
    assert_eq!(a.links[0]["href"], "https://floodgate.example/incidents/inc-1");
    let sent = &sim.log().matching("POST", "/v2/enqueue")[0].json().expect("json");
    assert_eq!(sent["payload"]["timestamp"], "2026-01-01T00:00:00Z");
    assert_eq!(sent["payload"]["class"], "Large export from a new IP");
    assert_eq!(sent["client"], "floodgate");

    pd.execute(&call("event.acknowledge", &json!({}), "a", &ctx, &refs)).await.expect("ack");
    assert_eq!(sim.alerts()[0].status, AlertStatus::Acknowledged);
    pd.execute(&call("event.resolve", &json!({}), "r", &ctx, &refs)).await.expect("resolve");
    let a = &sim.alerts()[0];
    assert_eq!(a.status, AlertStatus::Resolved);
    assert_eq!(a.events, 3);
    let ack_body = sim.log().matching("POST", "/v2/enqueue")[1].json().expect("json");
    assert_eq!(
        ack_body.as_object().expect("object").keys().cloned().collect::<Vec<_>>(),
        vec!["dedup_key", "event_action", "routing_key"]
    );
    assert_eq!(check_log(sim.log()) > 0, specs_dir().is_some());
}

#[tokio::test]
async fn crash_and_retry_pages_once_with_refs_kept_or_lost() {
    let sim = PagerDutySim::start().await.expect("sim");
    let pd = connector(&sim);
    let ctx = ctx("inc-2");
    // Attempt 1 reaches PagerDuty, then the process "crashes" before recording it.
    let crashing = CrashingRefs(MemoryRefStore::new());
    let e = pd.execute(&call("event.trigger", &json!({}), "run-1/page", &ctx, &crashing)).await.unwrap_err();
    assert_eq!(e.code(), "crash");
    // Retry with refs lost: same dedup key, PagerDuty adds it to the same open alert.
    let refs = MemoryRefStore::new();
    let out = run_until_done(&pd, "event.trigger", "run-1/page", &ctx, &refs).await.expect("retry");
    assert_eq!(out.output["outcome"], "sent");
    // Retry with refs kept: nothing is sent.
    let before = sim.log().len();
    let out = run_until_done(&pd, "event.trigger", "run-1/page", &ctx, &refs).await.expect("again");
    assert_eq!(out.output["outcome"], "already_sent");
    assert_eq!(sim.log().len(), before);
    // Another run of the same incident pages the same alert too.
    run_until_done(&pd, "event.trigger", "run-2/page", &ctx, &refs).await.expect("rerun");
    let alerts = sim.alerts_for("floodgate:incident:inc-2");
    assert_eq!(alerts.len(), 1, "one PagerDuty alert per incident");
    assert_eq!(alerts[0].triggers, 3);
    assert_eq!(sim.alerts().len(), 1);

    // Once resolved, a step that already triggered does not reopen it on a retry.
    run_until_done(&pd, "event.resolve", "run-2/resolve", &ctx, &refs).await.expect("resolve");
    run_until_done(&pd, "event.trigger", "run-1/page", &ctx, &refs).await.expect("late retry");
    assert_eq!(sim.alerts().len(), 1, "a retried trigger must not page again after resolve");
    check_log(sim.log());
}

#[tokio::test]
async fn a_429_storm_is_ridden_out_and_5xx_retried_without_duplicates() {
    let sim = PagerDutySim::start().await.expect("sim");
    let pd = connector(&sim);
    let refs = MemoryRefStore::new();
    sim.faults().fail_next(2, 502, None);
    pd.execute(&call("event.trigger", &json!({}), "k0", &ctx("inc-s0"), &refs)).await.expect("5xx retried");
    assert_eq!(sim.log().count("POST", "/v2/enqueue"), 3);

    sim.faults().rate_limit_next(9, 0, None);
    let e = pd.execute(&call("event.trigger", &json!({}), "k1", &ctx("inc-s1"), &refs)).await.unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.code(), "rate_limited");
    assert_eq!(e.retry_after_hint(), Some(Duration::from_secs(0)), "Retry-After honoured when sent");
    run_until_done(&pd, "event.trigger", "k1", &ctx("inc-s1"), &refs).await.expect("after the storm");

    sim.faults().rate_limit(300.0, 2, 0);
    for i in 0..12 {
        run_until_done(&pd, "event.trigger", &format!("p{i}"), &ctx(&format!("inc-p{i}")), &refs).await.expect("paged");
    }
    sim.faults().clear();
    let alerts = sim.alerts();
    assert_eq!(alerts.len(), 14, "every incident paged, none twice");
    assert!(alerts.iter().all(|a| a.triggers == 1));
    check_log(sim.log());
}

#[tokio::test]
async fn a_429_without_retry_after_asks_the_engine_to_wait_30s() {
    let sim = PagerDutySim::start().await.expect("sim");
    let pd = connector(&sim);
    sim.faults().inject(None, None, Some(4), floodgate_sdk::sim::Fault::Status { status: 429, retry_after: None });
    let refs = MemoryRefStore::new();
    let e = pd.execute(&call("event.trigger", &json!({}), "k", &ctx("inc-w"), &refs)).await.unwrap_err();
    assert_eq!(e.retry_after_hint(), Some(Duration::from_secs(30)));
    assert!(e.message().contains("too many events"));
    check_log(sim.log());
}

#[tokio::test]
async fn bad_requests_are_never_retried_and_never_show_the_key() {
    let sim = PagerDutySim::start().await.expect("sim");
    // A well-formed key PagerDuty does not know.
    let other = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345";
    let pd = connector_with(config(&sim, other));
    let refs = MemoryRefStore::new();
    let e = pd.execute(&call("event.trigger", &json!({}), "k", &ctx("inc-3"), &refs)).await.unwrap_err();
    assert!(!e.is_retryable());
    assert_eq!(e.code(), "invalid_event");
    assert!(e.message().contains("Invalid routing key"), "{}", e.message());
    assert!(!e.message().contains(other));
    assert_eq!(sim.log().count("POST", "/v2/enqueue"), 1, "400 is never retried");

    // An injected 400 (PagerDuty's body) is not retried either.
    let pd = connector(&sim);
    sim.faults().fail_next(1, 400, None);
    let e = pd.execute(&call("event.resolve", &json!({}), "r", &ctx("inc-3"), &refs)).await.unwrap_err();
    assert_eq!(e.code(), "invalid_event");
    assert_eq!(sim.log().count("POST", "/v2/enqueue"), 2);
    assert!(sim.alerts().is_empty());

    // Input the Events API would refuse is refused before sending.
    for bad in [json!({"severity": "sev1"}), json!({"links": [{"href": "javascript:x"}]}), json!({"dedup_key": "mine"})]
    {
        let e = pd.execute(&call("event.trigger", &bad, "b", &ctx("inc-3"), &refs)).await.unwrap_err();
        assert_eq!(e.code(), "invalid_input", "{bad}");
    }
    let e = pd.execute(&call("event.trigger", &json!({}), "c", &CallContext::default(), &refs)).await.unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    assert_eq!(sim.log().count("POST", "/v2/enqueue"), 2);
    check_log(sim.log());
}

#[tokio::test]
async fn the_simulator_refuses_what_pagerduty_refuses() {
    let sim = PagerDutySim::start().await.expect("sim");
    let http = raw_post(&sim);
    for (body, needle) in [
        (json!({"routing_key": SIM_ROUTING_KEY, "event_action": "trigger"}), "'payload' is missing"),
        (
            json!({"routing_key": SIM_ROUTING_KEY, "event_action": "trigger", "payload": {"summary": "x", "source": "y", "severity": "high"}}),
            "'payload.severity' is invalid",
        ),
        (json!({"routing_key": SIM_ROUTING_KEY, "event_action": "resolve"}), "'dedup_key' is missing"),
        (json!({"routing_key": SIM_ROUTING_KEY, "event_action": "page"}), "'event_action' is invalid"),
        (json!({"event_action": "trigger"}), "'routing_key' is missing"),
    ] {
        let r = http(body.clone()).await;
        assert_eq!(r.0, 400, "{body}");
        assert!(r.1.to_string().contains(needle), "{needle}: {}", r.1);
        assert_eq!(r.1["message"], "Event object is invalid");
    }
    let r =
        http(json!({"routing_key": SIM_ROUTING_KEY, "event_action": "acknowledge", "dedup_key": "nothing-open"})).await;
    assert_eq!(r.0, 202, "acknowledging no open alert is accepted and dropped");
    assert!(!sim.events()[0].applied);
}

/// Posts raw JSON to the simulator through the SDK HTTP layer.
fn raw_post(
    sim: &PagerDutySim,
) -> impl Fn(Value) -> std::pin::Pin<Box<dyn std::future::Future<Output = (u16, Value)>>> {
    let url = format!("{}/v2/enqueue", sim.url());
    move |body: Value| {
        let url = url.clone();
        Box::pin(async move {
            let r = HttpClient::new(RetryPolicy::default())
                .send(&floodgate_sdk::http::Request::post(url).json(body))
                .await
                .expect("send");
            let status = r.status;
            (status, r.json::<Value>().unwrap_or(Value::Null))
        })
    }
}

#[tokio::test]
async fn plans_redact_the_routing_key_everywhere() {
    let sim = PagerDutySim::start().await.expect("sim");
    let pd = connector(&sim);
    let refs = MemoryRefStore::new();
    let ctx = ctx("inc-4");
    for action in ["event.trigger", "event.acknowledge", "event.resolve"] {
        let plan = pd.plan(&call(action, &json!({}), "k", &ctx, &refs)).expect("plan");
        let shown = serde_json::to_string(&plan).expect("json");
        assert!(!shown.contains(SIM_ROUTING_KEY), "{shown}");
        let body = plan.requests[0].body.as_ref().expect("body");
        assert_eq!(body["routing_key"], "[redacted]");
        assert_eq!(body["dedup_key"], "floodgate:incident:inc-4");
        assert_eq!(plan.requests[0].url, format!("{}/v2/enqueue", sim.url()));
    }
    assert!(sim.log().is_empty(), "plan() does no I/O");
    let req = pd.plan(&call("event.trigger", &json!({"summary": "s"}), "k", &ctx, &refs)).expect("plan");
    assert!(req.summary.contains("floodgate:incident:inc-4"));

    let unconfigured = PagerDutyKind.build(None).expect("build");
    let plan = unconfigured.plan(&call("event.trigger", &json!({}), "k", &ctx, &refs)).expect("plan");
    assert_eq!(plan.requests[0].url, "https://events.pagerduty.com/v2/enqueue");
    let e = unconfigured.execute(&call("event.trigger", &json!({}), "k", &ctx, &refs)).await.unwrap_err();
    assert_eq!(e.code(), "not_configured");

    // Config errors never echo the key.
    let e = PagerDutySettings::from_value(&json!({"routing_key": secret_file("short-secret")})).unwrap_err();
    assert!(!e.to_string().contains("short-secret"));
    let e = PagerDutySettings::from_value(&json!({"routing_key": "literal"})).unwrap_err();
    assert!(!e.to_string().contains("literal\""), "{e}");
    let settings = PagerDutySettings::from_value(&config(&sim, SIM_ROUTING_KEY)).expect("ok");
    assert!(!format!("{settings:?}").contains(SIM_ROUTING_KEY));
}

#[tokio::test]
async fn long_summaries_are_cut_to_pagerdutys_limit() {
    let sim = PagerDutySim::start().await.expect("sim");
    let pd = connector(&sim);
    let refs = MemoryRefStore::new();
    let mut c = ctx("inc-5");
    c.incident["title"] = json!("é".repeat(2000));
    c.incident["severity"] = json!("weird");
    c.alert["severity"] = json!("weird");
    pd.execute(&call("event.trigger", &json!({}), "k", &c, &refs)).await.expect("trigger");
    let a = &sim.alerts()[0];
    assert_eq!(a.summary.chars().count(), 1024);
    assert_eq!(a.severity, "error", "unknown severities page with high urgency");
    check_log(sim.log());
}

#[tokio::test]
async fn the_routing_key_never_reaches_the_logs() {
    let logs = floodgate_sdk::sim::captured_logs();

    let sim = PagerDutySim::start().await.expect("sim");
    let pd = connector(&sim);
    let refs = MemoryRefStore::new();
    sim.faults().rate_limit_next(2, 0, None);
    pd.execute(&call("event.trigger", &json!({}), "a", &ctx("inc-l"), &refs)).await.expect("after 429s");
    sim.faults().fail_next(9, 500, None);
    let _ = pd.execute(&call("event.resolve", &json!({}), "b", &ctx("inc-l"), &refs)).await.unwrap_err();
    sim.faults().clear();
    let unknown = connector_with(config(&sim, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"));
    let _ = unknown.execute(&call("event.trigger", &json!({}), "c", &ctx("inc-l"), &refs)).await.unwrap_err();

    let text = logs.text();
    let mine = format!("url={}", sim.url());
    assert!(
        text.lines().any(|l| l.contains("retrying request") && l.contains(&mine)),
        "the HTTP layer's retries of this test were logged: {text}"
    );
    for secret in [SIM_ROUTING_KEY, "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"] {
        assert!(!text.contains(secret), "log output contains the routing key: {text}");
    }
    check_log(sim.log());
}
