//! Crate tests against the Slack simulator on 127.0.0.1, and the conformance check that runs
//! over every request the simulator received.

mod approvals;
mod conformance;
mod messages;
mod security;

use crate::sim::{SIM_BOT_TOKEN, SOC_CHANNEL, SlackSim};
use crate::{Slack, SlackKind};
use floodgate_sdk::http::{HttpClient, RetryPolicy};
use floodgate_sdk::{ActionCall, ActionError, CallContext, Connector, ConnectorKind, MemoryRefStore, RefStore};
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

/// Writes a secret to a private temp file and returns its `file:` reference.
pub(crate) fn secret_file(value: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let path =
        std::env::temp_dir().join(format!("fg-slack-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    std::fs::write(&path, value).expect("write secret file");
    format!("file:{}", path.display())
}

pub(crate) fn fast_http() -> HttpClient {
    HttpClient::new(RetryPolicy {
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(10),
        ..RetryPolicy::default()
    })
}

pub(crate) fn config(sim: &SlackSim, token: &str) -> Value {
    json!({
        "bot_token": secret_file(token),
        "default_channel": SOC_CHANNEL,
        "api_base_url": sim.url(),
        "signing_secret": secret_file(crate::sim::SIM_SIGNING_SECRET),
    })
}

/// A connector pointed at the simulator, with a fast retry policy.
pub(crate) fn connector(sim: &SlackSim) -> Slack {
    connector_with(config(sim, SIM_BOT_TOKEN))
}

pub(crate) fn connector_with(cfg: Value) -> Slack {
    Slack::new(crate::SlackSettings::from_value(&cfg).expect("valid config")).with_http(fast_http())
}

pub(crate) fn ctx(incident: &str) -> CallContext {
    let opened = time::OffsetDateTime::now_utc() - time::Duration::minutes(10);
    CallContext {
        run_id: "run-1".into(),
        step_id: "notify".into(),
        incident_id: incident.into(),
        playbook_id: "exfiltration".into(),
        attempt: 1,
        alert: json!({
            "id": "al-1", "source": "databricks-audit", "external_id": "x-1",
            "rule": "Large export from a new IP", "title": "Unusual export by alice@example.com",
            "description": "500 tables exported in 3 minutes", "severity": "high", "confidence": 0.92,
            "workspace_id": "1234567890",
            "entities": {"user": "alice@example.com", "source_ip": "203.0.113.66"},
            "fields": {}, "received_at": "2026-01-01T00:00:00Z"
        }),
        incident: json!({
            "id": incident, "title": "Data exfiltration from workspace 1234567890", "severity": "high",
            "alert_count": 3,
            "opened_at": opened.format(&time::format_description::well_known::Rfc3339).expect("format"),
            "group_key": "alice", "state": "open"
        }),
        incident_url: Some(format!("https://floodgate.example/incidents/{incident}")),
    }
}

pub(crate) fn call<'a>(
    action: &'a str,
    input: &'a Value,
    key: &'a str,
    ctx: &'a CallContext,
    refs: &'a dyn RefStore,
) -> ActionCall<'a> {
    ActionCall { action, input, idempotency_key: key, ctx, refs }
}

/// A ref store whose writes fail: the process "crashes" right after the vendor call.
pub(crate) struct CrashingRefs(pub MemoryRefStore);

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

/// Retries like the engine does: same key, growing attempt, until success or a permanent error.
pub(crate) async fn run_until_done(
    slack: &Slack,
    action: &str,
    input: &Value,
    key: &str,
    ctx: &CallContext,
    refs: &dyn RefStore,
) -> Result<floodgate_sdk::ActionOutput, ActionError> {
    let mut ctx = ctx.clone();
    for attempt in 1..=20 {
        ctx.attempt = attempt;
        match slack.execute(&call(action, input, key, &ctx, refs)).await {
            Err(e) if e.is_retryable() => continue,
            other => return other,
        }
    }
    Err(ActionError::permanent("gave_up", "still failing after 20 attempts"))
}

#[test]
fn actions_are_notify_and_documented() {
    let specs = SlackKind.actions();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, vec!["message.post", "message.update"]);
    for s in &specs {
        assert_eq!(s.risk, floodgate_sdk::RiskClass::Notify);
        assert!(!s.revertible);
        assert!(!s.idempotency.is_empty());
        assert_eq!(s.input_schema["additionalProperties"], json!(false), "{}", s.name);
    }
}

#[tokio::test]
async fn unconfigured_connector_plans_with_placeholders_and_refuses_to_execute() {
    let slack = SlackKind.build(None).expect("build");
    let ctx = ctx("inc-plan");
    let refs = MemoryRefStore::new();
    let input = json!({"text": "hello"});
    let plan = slack.plan(&call("message.post", &input, "k", &ctx, &refs)).expect("plan");
    assert_eq!(plan.requests.len(), 1);
    assert_eq!(plan.requests[0].url, "https://slack.com/api/chat.postMessage");
    assert_eq!(plan.requests[0].body.as_ref().expect("body")["channel"], "<default_channel>");
    let e = slack.execute(&call("message.post", &input, "k", &ctx, &refs)).await.unwrap_err();
    assert_eq!(e.code(), "not_configured");
    let e = slack.execute(&call("message.post", &json!({"bogus": 1}), "k", &ctx, &refs)).await.unwrap_err();
    assert_eq!(e.code(), "invalid_input", "input errors come before config errors");
    let e = slack.plan(&call("message.delete", &input, "k", &ctx, &refs)).unwrap_err();
    assert_eq!(e.code(), "unknown_action");
}

#[tokio::test]
async fn plans_never_show_the_bot_token() {
    let sim = SlackSim::start().await.expect("sim");
    let slack: Arc<dyn Connector> = SlackKind.build(Some(&config(&sim, SIM_BOT_TOKEN))).expect("build");
    let ctx = ctx("inc-plan-2");
    let refs = MemoryRefStore::new();
    for (action, input) in
        [("message.post", json!({"text": "x", "status": "open"})), ("message.update", json!({"status": "contained"}))]
    {
        let plan = slack.plan(&call(action, &input, "k", &ctx, &refs)).expect("plan");
        let shown = serde_json::to_string(&plan).expect("json");
        assert!(!shown.contains(SIM_BOT_TOKEN), "{shown}");
        assert!(!shown.contains("xoxb"), "{shown}");
        assert!(plan.requests[0].url.starts_with(&sim.url()));
    }
    assert!(sim.log().is_empty(), "plan() must not do I/O");
}

#[tokio::test]
async fn the_bot_token_never_reaches_logs_or_errors() {
    let logs = floodgate_sdk::sim::captured_logs();

    let sim = SlackSim::start().await.expect("sim");
    let slack = connector(&sim);
    let refs = MemoryRefStore::new();
    sim.faults().rate_limit_next(2, 0, Some("/api/chat.postMessage"));
    slack.execute(&call("message.post", &json!({}), "a", &ctx("inc-logs"), &refs)).await.expect("after 429s");
    let mut errors = Vec::new();
    sim.faults().fail_next(9, 500, None);
    errors.push(slack.execute(&call("message.post", &json!({}), "b", &ctx("inc-logs-2"), &refs)).await.unwrap_err());
    sim.faults().clear();
    let e = slack
        .execute(&call("message.post", &json!({"channel": "C0NOPE00001"}), "c", &ctx("inc-logs-3"), &refs))
        .await
        .unwrap_err();
    errors.push(e);

    let text = logs.text();
    let mine = format!("url={}", sim.url());
    assert!(
        text.lines().any(|l| l.contains("retrying request") && l.contains(&mine)),
        "the HTTP layer's retries of this test were logged: {text}"
    );
    assert!(!text.contains(SIM_BOT_TOKEN), "log output contains the bot token: {text}");
    for e in errors {
        assert!(!format!("{e} {e:?}").contains(SIM_BOT_TOKEN));
    }
    conformance::check_log(sim.log());
}
