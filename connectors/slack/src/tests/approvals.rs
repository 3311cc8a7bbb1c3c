//! Approval messages: built, posted to the simulator (which validates Block Kit as Slack does),
//! pressed, and updated to show the decision.

use super::conformance::check_log;
use super::*;
use crate::sim::{SIM_SIGNING_SECRET, block_actions_payload, signed_interaction};
use crate::{
    ApprovalOutcome, ApprovalRequest, Decider, Decision, Verdict, approval_decided_message, approval_request_message,
    ephemeral_refusal, parse_block_actions, verify_signature,
};
use floodgate_sdk::{Plan, RiskClass, Secret};
use slack_morphism::prelude::*;

fn request() -> ApprovalRequest {
    let plan = Plan::new("add 203.0.113.66 to IP block list floodgate-block in workspace 1234567890").request(
        "PATCH",
        "https://dbc-1.cloud.databricks.com/api/2.0/ip-access-lists/abc",
        Some(json!({"ip_addresses": ["203.0.113.66"], "label": "floodgate-block", "token": "[redacted]"})),
    );
    ApprovalRequest {
        approval_id: "apr-01J9Z".into(),
        incident_id: "inc-200".into(),
        incident_title: "Exfiltration by <!channel> alice".into(),
        severity: Some("critical".into()),
        incident_url: Some("https://floodgate.example/incidents/inc-200".into()),
        action: "databricks.ip_access_list.block".into(),
        risk: RiskClass::Contain,
        plan,
        evidence: vec![
            ("User".into(), "alice@example.com".into()),
            ("Source IP".into(), "203.0.113.66".into()),
            ("Rule".into(), "<https://evil.example|Reset your password>".into()),
        ],
        approvers: Some("secops (2 of 3)".into()),
        expires_at: Some(time::OffsetDateTime::from_unix_timestamp(1_767_227_400).expect("time")),
    }
}

fn json_of(c: &SlackMessageContent) -> String {
    serde_json::to_string(c).expect("json")
}

#[test]
fn the_request_has_summary_evidence_plan_and_two_buttons() {
    let content = approval_request_message(&request()).expect("build");
    let v = serde_json::to_value(&content).expect("json");
    let text = v["text"].as_str().expect("fallback text");
    assert!(text.starts_with("Approval needed: add 203.0.113.66"), "{text}");
    let all = json_of(&content);
    for needle in [
        "databricks.ip_access_list.block",
        "risk: contain",
        "alice@example.com",
        "PATCH https://dbc-1.cloud.databricks.com/api/2.0/ip-access-lists/abc",
        "secops (2 of 3)",
        "<!date^1767227400^",
        "<https://floodgate.example/incidents/inc-200|Open in floodgate>",
    ] {
        assert!(all.contains(needle), "{needle} missing: {all}");
    }
    assert!(!all.contains("<!channel>") && !all.contains("<https://evil"), "{all}");
    let actions = v["blocks"].as_array().expect("blocks").last().expect("last block").clone();
    assert_eq!(actions["type"], "actions");
    assert_eq!(actions["block_id"], "floodgate-approval:apr-01J9Z");
    let buttons = actions["elements"].as_array().expect("buttons");
    assert_eq!(buttons.len(), 2);
    assert_eq!(buttons[0]["action_id"], "floodgate_approve");
    assert_eq!(buttons[0]["value"], "approve:apr-01J9Z");
    assert_eq!(buttons[0]["style"], "primary");
    assert!(buttons[0]["confirm"].is_object(), "approving asks for confirmation");
    assert_eq!(buttons[1]["action_id"], "floodgate_deny");
    assert_eq!(buttons[1]["value"], "deny:apr-01J9Z");
    assert_eq!(buttons[1]["style"], "danger");

    let mut bad = request();
    bad.approval_id = "apr 1; drop".into();
    assert!(approval_request_message(&bad).is_err());
}

#[tokio::test]
async fn posted_pressed_and_updated_end_to_end_on_the_simulator() {
    let sim = SlackSim::start().await.expect("sim");
    let slack = connector(&sim);
    let req = request();
    let content = approval_request_message(&req).expect("build");
    let posted = slack.api().post_content(SOC_CHANNEL, content).await.expect("Slack accepts the approval message");

    // Someone presses Approve: Slack sends a signed form post.
    let payload = block_actions_payload(
        "U0ALICE01",
        &posted.channel,
        &posted.ts,
        "floodgate_approve",
        "approve:apr-01J9Z",
        &sim.response_url("r1"),
    );
    let now = time::OffsetDateTime::now_utc();
    let signed = signed_interaction(SIM_SIGNING_SECRET, now.unix_timestamp(), &payload);
    let secret = slack.settings().and_then(|s| s.signing_secret()).cloned().expect("configured");
    verify_signature(&secret, Some(&signed.timestamp), Some(&signed.signature), &signed.body, now).expect("verified");
    let action = parse_block_actions(&signed.body).expect("parsed");
    let button = action.approval_button().expect("approval button");
    assert_eq!(button.decision, Decision::Approve);
    assert_eq!(button.approval_id, req.approval_id);

    // The engine records the vote, then updates the message in place.
    let outcome = ApprovalOutcome {
        verdict: Verdict::Approved,
        decided_by: Decider::SlackUser(action.user_id.clone()),
        at: now,
        reason: Some("confirmed with alice's manager <!here>".into()),
    };
    let decided = approval_decided_message(&req, &outcome).expect("build");
    let target = crate::PostedMessage {
        channel: action.channel_id.clone().expect("channel"),
        ts: action.message_ts.clone().expect("ts"),
    };
    slack.api().update_message(&crate::actions::update_request(&target, decided)).await.expect("update");
    let m = sim.message(SOC_CHANNEL, &posted.ts).expect("message");
    assert_eq!(m.edits, 1);
    let all = serde_json::to_string(&m.blocks).expect("json");
    assert!(all.contains("*Approved* by <@U0ALICE01> at <!date^"), "{all}");
    assert!(all.contains("&lt;!here&gt;"), "reasons are escaped: {all}");
    assert!(!m.blocks.iter().any(|b| b["type"] == "actions"), "buttons are gone once decided");
    assert!(m.text.clone().unwrap_or_default().starts_with("Approved by U0ALICE01"));

    // Someone else presses after the decision: an ephemeral refusal through response_url.
    let refusal =
        serde_json::to_value(ephemeral_refusal("This approval was already decided by <@U0ALICE01>.")).expect("json");
    assert_eq!(refusal["response_type"], "ephemeral");
    assert_eq!(refusal["replace_original"], false);
    assert!(refusal["text"].as_str().expect("text").contains("&lt;@U0ALICE01&gt;"));
    let http = fast_http();
    let r = http
        .send(&floodgate_sdk::http::Request::post(action.response_url.clone().expect("url")).json(refusal.clone()))
        .await
        .expect("sent");
    assert_eq!(r.status, 200);
    assert_eq!(sim.responses(), vec![("r1".to_string(), refusal)]);
    check_log(sim.log());
}

#[test]
fn timeouts_and_named_deciders_render_without_mentions() {
    let req = request();
    for (by, verdict, expect) in [
        (Decider::Named("bob <@U0X>".into()), Verdict::Denied, "*Denied* by bob &lt;@U0X&gt;"),
        (
            Decider::Floodgate,
            Verdict::TimedOut { outcome: "escalated to oncall-2".into() },
            "*Timed out (escalated to oncall-2)* by floodgate",
        ),
        (Decider::SlackUser("not an id".into()), Verdict::Approved, "*Approved* by not an id"),
    ] {
        let c = approval_decided_message(
            &req,
            &ApprovalOutcome {
                verdict,
                decided_by: by,
                at: time::OffsetDateTime::from_unix_timestamp(1_767_225_600).expect("t"),
                reason: None,
            },
        )
        .expect("build");
        let all = json_of(&c);
        assert!(all.contains(expect), "{expect} missing: {all}");
        assert!(all.contains("2026-01-01 00:00 UTC"), "fallback time in UTC: {all}");
    }
    let _ = Secret::new("unused");
}
