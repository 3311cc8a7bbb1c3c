//! Crate tests: the connector against the Jira simulator on 127.0.0.1, for both flavors.
//! Every request body the connector sends to the Cloud simulator is also checked against
//! Atlassian's published OpenAPI v3 spec (skipped, with a message, where the specs are absent).
//! This file holds the shared harness; the cases are in the submodules.

mod dedup;
mod errors;
mod flows;
mod plans;
mod writes;

use crate::sim::{JiraSim, SIM_API_TOKEN, SIM_CUSTOM_FIELD, SIM_EMAIL, SIM_PAT};
use crate::{Flavor, Jira, JiraKind, NS_ISSUE, NS_TRANSITION};
use floodgate_sdk::http::{HttpClient, Request, RetryPolicy};
use floodgate_sdk::sim::Fault;
use floodgate_sdk::{
    ActionCall, ActionError, ActionOutput, CallContext, Connector, ConnectorKind, MemoryRefStore, RefStore, Secret,
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
    let path = std::env::temp_dir().join(format!("fg-jira-test-{}-{n}-{name}", std::process::id()));
    std::fs::write(&path, value).expect("write secret file");
    format!("file:{}", path.display())
}

fn config(sim: &JiraSim) -> Value {
    match sim.flavor() {
        Flavor::Cloud => json!({
            "base_url": sim.url(), "flavor": "cloud", "email": SIM_EMAIL,
            "api_token": secret_file("token", SIM_API_TOKEN), "project": "SEC",
            "priorities": {"high": "High", "critical": "Highest"},
            "fields": {"incident_id": SIM_CUSTOM_FIELD},
            "rate_limit_per_second": 1000.0,
        }),
        Flavor::DataCenter => json!({
            "base_url": sim.url(), "flavor": "data-center",
            "personal_access_token": secret_file("pat", SIM_PAT), "project": "SEC",
        }),
    }
}

async fn setup(flavor: Flavor) -> (JiraSim, Jira) {
    let sim = JiraSim::start(flavor).await.expect("start simulator");
    let jira = Jira::from_config(&config(&sim), fast()).expect("build connector");
    (sim, jira)
}

fn ctx(incident: &str) -> CallContext {
    CallContext {
        run_id: "run-1".into(),
        step_id: "ticket".into(),
        incident_id: incident.into(),
        playbook_id: "exfiltration".into(),
        attempt: 1,
        alert: json!({
            "id": "al-1", "source": "databricks", "external_id": "x-1", "rule": "bulk_download",
            "title": "Bulk download by a service principal",
            "description": "Downloaded 40 GB from main.sales [click](https://evil.example) {html}<b>x</b>{html}",
            "severity": "high", "confidence": 0.93, "workspace_id": "1234",
            "entities": {"user": "sp-etl@corp.example", "source_ip": "203.0.113.66"},
            "fields": {}, "received_at": "2025-01-01T00:00:00Z"
        }),
        incident: json!({"id": incident, "title": "Exfiltration from workspace 1234", "severity": "high",
            "alert_count": 2, "state": "open"}),
        incident_url: Some(format!("https://floodgate.example.com/incidents/{incident}")),
    }
}

async fn run(
    jira: &Jira,
    action: &str,
    input: Value,
    key: &str,
    ctx: &CallContext,
    refs: &dyn RefStore,
) -> Result<ActionOutput, ActionError> {
    jira.execute(&ActionCall { action, input: &input, idempotency_key: key, ctx, refs }).await
}

/// What the engine does: call again with the same key while the error is retryable.
async fn run_like_engine(
    jira: &Jira,
    action: &str,
    input: Value,
    key: &str,
    ctx: &CallContext,
    refs: &dyn RefStore,
) -> (Result<ActionOutput, ActionError>, u32) {
    let mut ctx = ctx.clone();
    loop {
        let r = run(jira, action, input.clone(), key, &ctx, refs).await;
        match &r {
            Err(e) if e.is_retryable() && ctx.attempt < 10 => ctx.attempt += 1,
            _ => return (r, ctx.attempt),
        }
    }
}

/// The spec path template of a Cloud request path, for the endpoints the connector uses.
fn spec_path(path: &str) -> Option<String> {
    let rest = path.strip_prefix("/rest/api/3")?;
    let parts: Vec<&str> = rest.split('/').collect();
    let t = match parts.as_slice() {
        ["", "issue"] => "/issue".to_string(),
        ["", "issue", _, tail] => format!("/issue/{{issueIdOrKey}}/{tail}"),
        ["", "search", "jql"] => "/search/jql".to_string(),
        ["", "comment", "list"] => "/comment/list".to_string(),
        _ => return None,
    };
    Some(format!("/rest/api/3{t}"))
}

/// `check_openapi3_request`, except that a path template with `{param}` is looked up here: the
/// SDK puts the raw JSON pointer into a `$ref`, and `{`/`}` are not valid in a URI fragment, so
/// the SDK helper cannot compile the schema of such paths. The operation's schema is a `$ref`
/// to `components/schemas`, which is validated directly instead.
fn check_request(doc: &Value, method: &str, path: &str, body: &Value) -> Result<(), Vec<String>> {
    if !path.contains('{') {
        return floodgate_sdk::conformance::check_openapi3_request(doc, method, path, body);
    }
    let op = format!(
        "/paths/{}/{}/requestBody/content/application~1json/schema",
        path.replace('~', "~0").replace('/', "~1"),
        method.to_ascii_lowercase()
    );
    let target = doc
        .pointer(&op)
        .and_then(|s| s.get("$ref"))
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix('#'))
        .ok_or_else(|| vec![format!("spec has no $ref schema at {op}")])?;
    floodgate_sdk::conformance::validate_at(doc, target, body)
}

/// Validates every JSON body the connector sent to the Cloud simulator against the Jira
/// OpenAPI v3 spec. Returns how many bodies were checked (0 when the specs are absent).
fn assert_bodies_conform(sim: &JiraSim) -> usize {
    let Some(dir) = floodgate_sdk::conformance::specs_dir() else {
        return 0;
    };
    let doc = floodgate_sdk::conformance::load(&dir, "jira-cloud-platform-rest-v3.openapi.json");
    let mut checked = 0;
    for call in sim.log().calls() {
        if call.body.is_empty() {
            continue;
        }
        let path = spec_path(&call.path).unwrap_or_else(|| panic!("no spec path for {} {}", call.method, call.path));
        let body = call.json().unwrap_or_else(|| panic!("{} {} sent a non-JSON body", call.method, call.path));
        if let Err(errs) = check_request(&doc, &call.method, &path, &body) {
            panic!("{} {path} body does not conform to the Jira v3 spec: {errs:#?}\n{body:#}", call.method);
        }
        checked += 1;
    }
    checked
}

fn conformance_done(sim: &JiraSim, at_least: usize) {
    let n = assert_bodies_conform(sim);
    if floodgate_sdk::conformance::specs_dir().is_some() {
        assert!(n >= at_least, "only {n} bodies checked against the spec");
    }
}
