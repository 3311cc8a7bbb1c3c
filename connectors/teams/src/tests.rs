//! Crate tests against the Teams webhook simulator, and the check of every card it received
//! against the Adaptive Card 1.5 JSON Schema plus the webhook rule (no Submit/Execute).

use crate::sim::{SIM_SIG, SIM_WORKFLOW_ID, TeamsSim};
use crate::{
    ApprovalCardError, ApprovalLink, ApprovalRequest, Teams, TeamsKind, TeamsSettings, approval_card,
    check_webhook_card,
};
use floodgate_sdk::conformance::{check_json_schema, load, specs_dir};
use floodgate_sdk::sim::CallLog;
use floodgate_sdk::{
    ActionCall, ActionError, ActionOutput, CallContext, Connector, ConnectorKind, MemoryRefStore, Plan, RefStore,
    RiskClass,
};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

fn secret_file(value: &str) -> String {
    static N: AtomicU32 = AtomicU32::new(0);
    let path =
        std::env::temp_dir().join(format!("fg-teams-test-{}-{}", std::process::id(), N.fetch_add(1, Ordering::SeqCst)));
    std::fs::write(&path, value).expect("write secret");
    format!("file:{}", path.display())
}

fn connector_for(url: &str) -> Teams {
    let settings = TeamsSettings::from_value(&json!({"webhook_url": secret_file(url)})).expect("settings");
    Teams::new(&settings).with_timing(Duration::from_millis(500), Duration::from_millis(2))
}

fn ctx(incident: &str) -> CallContext {
    CallContext {
        run_id: "run-1".into(),
        step_id: "teams".into(),
        incident_id: incident.into(),
        playbook_id: "exfiltration".into(),
        attempt: 1,
        alert: json!({
            "id": "al-1", "source": "databricks-audit", "rule": "Large export from a new IP",
            "title": "Unusual export", "description": "500 tables exported in 3 minutes", "severity": "high",
            "confidence": 0.92, "workspace_id": "1234567890",
            "entities": {"user": "alice@example.com", "source_ip": "203.0.113.66"}
        }),
        incident: json!({"id": incident, "title": "Data exfiltration", "severity": "high", "alert_count": 2}),
        incident_url: Some(format!("https://floodgate.example/incidents/{incident}")),
    }
}

fn call<'a>(input: &'a Value, key: &'a str, ctx: &'a CallContext, refs: &'a dyn RefStore) -> ActionCall<'a> {
    ActionCall { action: "message.post", input, idempotency_key: key, ctx, refs }
}

async fn run_until_done(
    teams: &Teams,
    input: &Value,
    key: &str,
    ctx: &CallContext,
    refs: &dyn RefStore,
) -> Result<ActionOutput, ActionError> {
    for _ in 0..20 {
        match teams.execute(&call(input, key, ctx, refs)).await {
            Err(e) if e.is_retryable() => continue,
            other => return other,
        }
    }
    Err(ActionError::permanent("gave_up", "still failing"))
}

/// Validates a card against the published Adaptive Card 1.5 schema and the webhook rule.
fn check_card(card: &Value) {
    check_webhook_card(card).unwrap_or_else(|e| panic!("card has actions webhooks cannot carry: {e:?}"));
    if let Some(dir) = specs_dir() {
        let schema = load(&dir, "adaptive-card-1.5.schema.json");
        if let Err(errs) = check_json_schema(&schema, card) {
            panic!("card does not conform to Adaptive Card 1.5: {errs:#?}\n{card:#}");
        }
    } else {
        eprintln!("SKIPPED: Adaptive Card schema conformance (no specs directory)");
    }
}

/// Every request the simulator received: the envelope the Workflows template expects, with a
/// conforming card.
fn check_log(log: &CallLog) -> usize {
    let mut n = 0;
    // Raw probes of the simulator itself are marked and skipped; everything else is ours.
    for c in log.calls().into_iter().filter(|c| c.header("x-test-probe").is_none()) {
        let body = c.json().expect("JSON body");
        assert_eq!(body["type"], "message");
        assert_eq!(c.header("content-type"), Some("application/json"));
        for a in body["attachments"].as_array().expect("attachments") {
            assert_eq!(a["contentType"], "application/vnd.microsoft.card.adaptive");
            assert!(a["contentUrl"].is_null());
            check_card(&a["content"]);
            assert_eq!(a["content"]["version"], "1.5");
        }
        n += 1;
    }
    n
}

#[test]
fn the_lint_and_schema_catch_what_webhooks_cannot_render() {
    let submit = json!({"type": "AdaptiveCard", "version": "1.5", "body": [],
        "actions": [{"type": "Action.Submit", "title": "Approve", "data": {"x": 1}}]});
    assert!(check_webhook_card(&submit).is_err(), "valid per schema, refused by our rule");
    if let Some(dir) = specs_dir() {
        let schema = load(&dir, "adaptive-card-1.5.schema.json");
        check_json_schema(&schema, &submit).expect("the schema itself accepts Action.Submit");
        let typo = json!({"type": "AdaptiveCard", "version": "1.5", "body": [{"type": "TextBlock", "txet": "x"}]});
        assert!(check_json_schema(&schema, &typo).is_err());
    }
}

#[tokio::test]
async fn an_incident_card_is_posted_and_conforms() {
    let sim = TeamsSim::start().await.expect("sim");
    let teams = connector_for(&sim.webhook_url());
    let ctx = ctx("inc-1");
    let refs = MemoryRefStore::new();
    let input = json!({"status": "Containment pending approval", "facts": {"Ticket": "SEC-12"},
        "links": [{"title": "Runbook", "url": "https://wiki.example/runbooks/exfil"}]});
    let out = teams.execute(&call(&input, "k1", &ctx, &refs)).await.expect("post");
    assert_eq!(out.output["status"], 202);
    assert_eq!(out.output["outcome"], "posted");
    let cards = sim.cards();
    assert_eq!(cards.len(), 1);
    let text = cards[0].to_string();
    for needle in [
        "Data exfiltration",
        "[HIGH]",
        "alice@example.com",
        "203.0.113.66",
        "92%",
        "SEC-12",
        "Containment pending approval",
        "500 tables exported",
    ] {
        assert!(text.contains(needle), "{needle} missing: {text}");
    }
    let actions = cards[0]["actions"].as_array().expect("actions");
    assert_eq!(actions[0]["type"], "Action.OpenUrl");
    assert_eq!(actions[0]["url"], "https://floodgate.example/incidents/inc-1");
    assert_eq!(actions[1]["url"], "https://wiki.example/runbooks/exfil");

    // The same step again sends nothing.
    let again = teams.execute(&call(&input, "k1", &ctx, &refs)).await.expect("repeat");
    assert_eq!(again.output["outcome"], "already_posted");
    assert_eq!(sim.log().len(), 1);
    assert_eq!(sim.cards().len(), 1);
    assert_eq!(check_log(sim.log()), 1);
}

#[tokio::test]
async fn the_28_kb_limit_is_enforced_before_sending() {
    let sim = TeamsSim::start().await.expect("sim");
    let teams = connector_for(&sim.webhook_url());
    let refs = MemoryRefStore::new();
    let ctx = ctx("inc-2");
    // Attacker-sized alert text is shortened until the card fits: the notification still goes out.
    let mut noisy = ctx.clone();
    noisy.alert["description"] = json!("d".repeat(100_000));
    let mut facts = serde_json::Map::new();
    for i in 0..29 {
        facts.insert(format!("fact {i:02}"), json!("x".repeat(5_000)));
    }
    let out = teams
        .execute(&call(&json!({"text": "y".repeat(50_000), "facts": facts}), "k1", &noisy, &refs))
        .await
        .expect("shortened to fit");
    assert!(out.output["bytes"].as_u64().expect("bytes") <= 28 * 1024, "{}", out.output);
    assert_eq!(sim.cards().len(), 1);

    // What cannot be shortened (here: links) is refused with a clear error, before sending.
    let links: Vec<Value> = (0..150)
        .map(|i| json!({"title": format!("link {i}"), "url": format!("https://wiki.example/{}/{i}", "p".repeat(200))}))
        .collect();
    let big = json!({"links": links});
    let sent_before = sim.log().len();
    let e = teams.execute(&call(&big, "k2", &ctx, &refs)).await.unwrap_err();
    assert_eq!(e.code(), "payload_too_large");
    assert!(e.message().contains("28 KB"), "{}", e.message());
    assert!(!e.is_retryable());
    assert_eq!(sim.log().len(), sent_before, "nothing was sent");
    let e = teams.plan(&call(&big, "k2", &ctx, &refs)).unwrap_err();
    assert_eq!(e.code(), "payload_too_large");

    // The simulator refuses an oversize body as Teams would.
    let raw = floodgate_sdk::http::HttpClient::new(Default::default())
        .send(
            &floodgate_sdk::http::Request::post(sim.webhook_url())
                .header("x-test-probe", "1")
                .json(json!({"type": "message", "pad": "z".repeat(30_000)})),
        )
        .await
        .expect("sent");
    assert_eq!(raw.status, 400);
    assert_eq!(raw.json::<Value>().expect("json")["error"]["code"], "MessageSizeExceeded");
    check_log(sim.log());
}

#[tokio::test]
async fn hostile_alert_text_cannot_add_links_or_actions() {
    let sim = TeamsSim::start().await.expect("sim");
    let teams = connector_for(&sim.webhook_url());
    let refs = MemoryRefStore::new();
    let mut ctx = ctx("inc-3");
    ctx.incident["title"] = json!("[Reset your password](https://evil.example/login)");
    ctx.alert["description"] = json!("**urgent** <https://evil.example> <at>everyone</at>");
    ctx.alert["entities"]["user"] = json!("[admin](https://evil.example/2)");
    teams
        .execute(&call(
            &json!({"facts": {"[x](https://evil.example/3)": "[y]: https://evil.example/4"}}),
            "k",
            &ctx,
            &refs,
        ))
        .await
        .expect("post");
    let card = &sim.cards()[0];
    // Every place Teams renders as markdown has its link syntax broken.
    for f in card["body"].as_array().expect("body").iter().filter(|e| e["type"] == "FactSet") {
        for fact in f["facts"].as_array().expect("facts") {
            for k in ["title", "value"] {
                let s = fact[k].as_str().expect("string");
                assert!(!s.contains("](") && !s.contains("]:") && !s.contains("<h"), "{s:?}");
            }
        }
    }
    let fallback = card["fallbackText"].as_str().expect("fallback");
    assert!(!fallback.contains("]("), "{fallback}");
    // Free text only sits in TextRuns, which render no markdown at all.
    walk(card, &mut |v| {
        if v.get("type") == Some(&json!("TextBlock")) {
            panic!("no TextBlock (markdown) should carry alert text: {v}");
        }
    });
    // The only buttons are floodgate's.
    for a in card["actions"].as_array().expect("actions") {
        assert!(a["url"].as_str().expect("url").starts_with("https://floodgate.example/"), "{a}");
    }
    check_log(sim.log());
}

fn walk(v: &Value, f: &mut impl FnMut(&Value)) {
    f(v);
    match v {
        Value::Array(a) => a.iter().for_each(|x| walk(x, f)),
        Value::Object(o) => o.values().for_each(|x| walk(x, f)),
        _ => {}
    }
}

#[tokio::test]
async fn rate_limits_are_ridden_out_and_5xx_is_not_replayed_in_the_call() {
    let sim = TeamsSim::start().await.expect("sim");
    let teams = connector_for(&sim.webhook_url());
    let refs = MemoryRefStore::new();
    sim.faults().rate_limit_next(2, 0, None);
    teams.execute(&call(&json!({}), "a", &ctx("inc-4"), &refs)).await.expect("absorbed");
    assert_eq!(sim.log().len(), 3);
    assert_eq!(sim.cards().len(), 1);

    sim.faults().rate_limit_next(9, 0, None);
    let e = teams.execute(&call(&json!({}), "b", &ctx("inc-5"), &refs)).await.unwrap_err();
    assert_eq!(e.code(), "rate_limited");
    assert!(e.is_retryable());
    run_until_done(&teams, &json!({}), "b", &ctx("inc-5"), &refs).await.expect("after the storm");
    assert_eq!(sim.cards().len(), 2, "no loss, no duplicate");

    // A long Retry-After is handed to the engine.
    sim.faults().rate_limit_next(1, 120, None);
    let e = teams.execute(&call(&json!({}), "c", &ctx("inc-6"), &refs)).await.unwrap_err();
    assert_eq!(e.retry_after_hint(), Some(Duration::from_secs(120)));

    // A 5xx may have posted: not replayed inside the call, retryable for the engine.
    let before = sim.log().len();
    sim.faults().fail_next(1, 502, None);
    let e = teams.execute(&call(&json!({}), "d", &ctx("inc-7"), &refs)).await.unwrap_err();
    assert_eq!(e.code(), "teams_unavailable");
    assert!(e.is_retryable());
    assert_eq!(sim.log().len(), before + 1);

    // An injected 4xx is a client error in Logic Apps' shape, and permanent.
    sim.faults().fail_next(1, 400, None);
    let e = teams.execute(&call(&json!({}), "e", &ctx("inc-7b"), &refs)).await.unwrap_err();
    assert_eq!(e.code(), "http_400");
    assert!(!e.is_retryable());
    assert!(e.to_string().contains("HTTP 400 (BadRequest): The request is invalid."), "{e}");
    check_log(sim.log());
}

#[tokio::test]
async fn the_webhook_url_never_appears_in_plans_errors_or_debug() {
    let sim = TeamsSim::start().await.expect("sim");
    let ctx = ctx("inc-8");
    let refs = MemoryRefStore::new();
    let secrets = [SIM_SIG, SIM_WORKFLOW_ID];
    let assert_clean = |what: &str, text: &str| {
        for s in secrets {
            assert!(!text.contains(s), "{what} leaks {s}: {text}");
        }
    };
    let teams = connector_for(&sim.webhook_url());
    let plan = teams.plan(&call(&json!({}), "k", &ctx, &refs)).expect("plan");
    assert_eq!(plan.requests[0].url, format!("{}/[redacted]", sim.base_url()));
    assert_clean("plan", &serde_json::to_string(&plan).expect("json"));
    assert!(sim.log().is_empty(), "plan() does no I/O");

    // Wrong signature and unknown workflow: permanent, and the message names neither.
    for url in [
        sim.url_with(SIM_WORKFLOW_ID, "WrongSignature0000000000"),
        sim.url_with("0000000000000000ffffffffffffffff", SIM_SIG),
    ] {
        let t = connector_for(&url);
        let e = t.execute(&call(&json!({}), "k", &ctx, &refs)).await.unwrap_err();
        assert_eq!(e.code(), "webhook_rejected");
        assert!(!e.is_retryable());
        assert_clean("error", &format!("{e} {e:?}"));
        assert!(!e.message().contains("WrongSignature"), "{}", e.message());
    }
    // A hang times out: retryable, and the network error is scrubbed too.
    sim.faults().hang_next(1, None);
    let e = teams.execute(&call(&json!({}), "h", &ctx, &refs)).await.unwrap_err();
    assert!(e.is_retryable());
    assert_clean("timeout error", &format!("{e} {e:?}"));
    // Connection refused.
    let dead = connector_for(&format!(
        "http://127.0.0.1:1/workflows/{SIM_WORKFLOW_ID}/triggers/manual/paths/invoke?api-version=1&sig={SIM_SIG}"
    ));
    let e = dead.execute(&call(&json!({}), "x", &ctx, &refs)).await.unwrap_err();
    assert!(e.is_retryable());
    assert_clean("network error", &format!("{e} {e:?}"));

    // Config: Debug and errors never show the URL; plain http only for loopback.
    let s = TeamsSettings::from_value(&json!({"webhook_url": secret_file(&sim.webhook_url())})).expect("ok");
    assert_clean("settings Debug", &format!("{s:?}"));
    let e = TeamsSettings::from_value(
        &json!({"webhook_url": secret_file(&format!("http://teams.example/x?sig={SIM_SIG}"))}),
    )
    .unwrap_err();
    assert_clean("config error", &e.to_string());
    assert!(e.to_string().contains("https"));
    let e = TeamsSettings::from_value(&json!({"webhook_url": "https://literal.example"})).unwrap_err();
    assert!(!e.to_string().contains("literal.example"), "{e}");

    // Unconfigured: plans with a placeholder, refuses to execute.
    let unconfigured = TeamsKind.build(None).expect("build");
    let plan = unconfigured.plan(&call(&json!({}), "k", &ctx, &refs)).expect("plan");
    assert_eq!(plan.requests[0].url, "<teams-webhook-url>");
    let e = unconfigured.execute(&call(&json!({}), "k", &ctx, &refs)).await.unwrap_err();
    assert_eq!(e.code(), "not_configured");
    let e = teams
        .execute(&call(&json!({"links": [{"title": "x", "url": "javascript:alert(1)"}]}), "j", &ctx, &refs))
        .await
        .unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    check_log(sim.log());
}

#[tokio::test]
async fn the_simulator_refuses_malformed_envelopes() {
    let sim = TeamsSim::start().await.expect("sim");
    let http = floodgate_sdk::http::HttpClient::new(Default::default());
    for (body, needle) in [
        (json!({"text": "hello"}), "'foreach'"),
        (
            json!({"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive", "content": {"type": "MessageCard"}}]}),
            "must be 'AdaptiveCard'",
        ),
        (
            json!({"type": "message", "attachments": [{"contentType": "application/vnd.microsoft.card.adaptive",
                "content": {"type": "AdaptiveCard", "version": "1.5", "body": [], "actions": [{"type": "Action.Submit", "title": "Approve"}]}}]}),
            "Action.Submit",
        ),
    ] {
        let r =
            http.send(&floodgate_sdk::http::Request::post(sim.webhook_url()).json(body.clone())).await.expect("sent");
        assert_eq!(r.status, 400, "{body}");
        let err = r.json::<Value>().expect("json");
        assert_eq!(err["error"]["code"], "TriggerInputSchemaMismatch");
        assert!(err["error"]["message"].as_str().expect("message").contains(needle), "{err}");
    }
    assert!(sim.cards().is_empty());
}

fn approval() -> ApprovalRequest {
    ApprovalRequest {
        approval_id: "apr-7".into(),
        incident_id: "inc-9".into(),
        incident_title: "Exfiltration by [alice](https://evil.example)".into(),
        severity: Some("critical".into()),
        incident_url: Some("https://floodgate.example/incidents/inc-9".into()),
        action: "databricks.ip_access_list.block".into(),
        risk: RiskClass::Contain,
        plan: Plan::new("add 203.0.113.66 to block list floodgate-block").request(
            "PATCH",
            "https://dbc-1.cloud.databricks.com/api/2.0/ip-access-lists/abc",
            Some(json!({"ip_addresses": ["203.0.113.66"], "client_secret": "[redacted]"})),
        ),
        evidence: vec![("User".into(), "alice@example.com".into()), ("Source IP".into(), "203.0.113.66".into())],
        approvers: Some("secops (2 of 3)".into()),
        expires_at: Some(time::OffsetDateTime::from_unix_timestamp(1_767_227_400).expect("time")),
    }
}

#[tokio::test]
async fn the_approval_card_has_one_link_per_approver_and_posts() {
    let sim = TeamsSim::start().await.expect("sim");
    let teams = connector_for(&sim.webhook_url());
    let links = vec![
        ApprovalLink {
            title: "Review as Alice".into(),
            url: "https://floodgate.example/approvals/apr-7?t=sig-alice".into(),
        },
        ApprovalLink {
            title: "Review as Bob".into(),
            url: "https://floodgate.example/approvals/apr-7?t=sig-bob".into(),
        },
    ];
    let env = approval_card(&approval(), &links).expect("card");
    let v = serde_json::to_value(&env).expect("json");
    let card = &v["attachments"][0]["content"];
    check_card(card);
    let actions = card["actions"].as_array().expect("actions");
    assert_eq!(actions.len(), 3);
    assert_eq!(actions[0]["url"], "https://floodgate.example/approvals/apr-7?t=sig-alice");
    assert_eq!(actions[1]["title"], "Review as Bob");
    assert_eq!(actions[2]["url"], "https://floodgate.example/incidents/inc-9");
    assert!(actions.iter().all(|a| a["type"] == "Action.OpenUrl"));
    let text = card.to_string();
    for needle in [
        "Approval needed",
        "databricks.ip_access_list.block",
        "risk: contain",
        "PATCH https://dbc-1",
        "secops (2 of 3)",
        "2026-01-01 00:30 UTC",
        "alice@example.com",
    ] {
        assert!(text.contains(needle), "{needle} missing: {text}");
    }
    let status = teams.webhook().post(&env).await.expect("posted");
    assert_eq!(status, 202);
    assert_eq!(sim.cards().len(), 1);

    assert_eq!(approval_card(&approval(), &[]).unwrap_err(), ApprovalCardError::NoLinks);
    let bad = [ApprovalLink { title: "x".into(), url: "ftp://x".into() }];
    assert!(matches!(approval_card(&approval(), &bad), Err(ApprovalCardError::BadLink(_))));

    // A huge plan is shortened to fit Teams' limit rather than refused.
    let mut big = approval();
    for i in 0..8 {
        big.plan = big.plan.request("POST", format!("https://h/{i}"), Some(json!({"blob": "b".repeat(5000)})));
    }
    let env = approval_card(&big, &links).expect("shortened");
    assert!(env.size() <= crate::MAX_MESSAGE_BYTES);
    teams.webhook().post(&env).await.expect("posted");
    check_log(sim.log());
}

#[tokio::test]
async fn the_webhook_url_never_reaches_the_logs() {
    let logs = floodgate_sdk::sim::captured_logs();
    tracing::debug!("teams webhook log capture works");

    let sim = TeamsSim::start().await.expect("sim");
    let teams = connector_for(&sim.webhook_url());
    let refs = MemoryRefStore::new();
    let ctx = ctx("inc-logs");
    sim.faults().rate_limit_next(2, 0, None);
    teams.execute(&call(&json!({}), "a", &ctx, &refs)).await.expect("post after 429s");
    sim.faults().fail_next(1, 503, None);
    let _ = teams.execute(&call(&json!({}), "b", &ctx, &refs)).await.unwrap_err();
    sim.faults().hang_next(1, None);
    let _ = teams.execute(&call(&json!({}), "c", &ctx, &refs)).await.unwrap_err();
    let wrong = connector_for(&sim.url_with(SIM_WORKFLOW_ID, "AnotherSignature123456789"));
    let _ = wrong.execute(&call(&json!({}), "d", &ctx, &refs)).await.unwrap_err();

    let text = logs.text();
    assert!(text.contains("teams webhook log capture works"), "the capture itself works: {text}");
    for secret in [SIM_SIG, SIM_WORKFLOW_ID, "AnotherSignature123456789"] {
        assert!(!text.contains(secret), "log output contains {secret}: {text}");
    }
}
