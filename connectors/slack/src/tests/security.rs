//! Request signing and interaction payloads, the inputs of the approval endpoint.

use crate::sim::{SIM_SIGNING_SECRET, block_actions_payload, signed_interaction};
use crate::{Decision, InteractionError, SignatureError, parse_block_actions, sign, verify_signature};
use floodgate_sdk::Secret;
use serde_json::json;
use time::OffsetDateTime;

const NOW: i64 = 1_767_225_600; // 2026-01-01T00:00:00Z

fn at(unix: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp(unix).expect("valid time")
}

fn secret() -> Secret {
    Secret::new(SIM_SIGNING_SECRET)
}

#[test]
fn matches_slacks_documented_example() {
    // The worked example in Slack's "Verifying requests from Slack" guide.
    let secret = Secret::new("8f742231b10e8888abcd99yyyzzz85a5");
    let body = b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c";
    let sig = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503";
    verify_signature(&secret, Some("1531420618"), Some(sig), body, at(1_531_420_618 + 10))
        .expect("Slack's example verifies");
    assert_eq!(sign(&secret, 1_531_420_618, body), sig);
}

#[test]
fn correct_signatures_verify_and_everything_else_is_refused() {
    let payload = block_actions_payload(
        "U0ALICE01",
        "C0SOC000001",
        "1.000001",
        "floodgate_approve",
        "approve:apr-1",
        "https://x",
    );
    let req = signed_interaction(SIM_SIGNING_SECRET, NOW, &payload);
    let ok = |ts: Option<&str>, sig: Option<&str>, body: &[u8], now: i64| {
        verify_signature(&secret(), ts, sig, body, at(now))
    };

    ok(Some(&req.timestamp), Some(&req.signature), &req.body, NOW).expect("correct");
    ok(Some(&req.timestamp), Some(&req.signature), &req.body, NOW + 299).expect("within the window");
    ok(Some(&req.timestamp), Some(&req.signature), &req.body, NOW - 299).expect("clock a little behind");

    // Bad: another secret, an altered body, a signature for another timestamp.
    let e = verify_signature(&Secret::new("another"), Some(&req.timestamp), Some(&req.signature), &req.body, at(NOW));
    assert_eq!(e, Err(SignatureError::Mismatch));
    let mut altered = req.body.clone();
    altered.extend_from_slice(b"x");
    assert_eq!(ok(Some(&req.timestamp), Some(&req.signature), &altered, NOW), Err(SignatureError::Mismatch));
    let other_ts = (NOW + 1).to_string();
    assert_eq!(ok(Some(&other_ts), Some(&req.signature), &req.body, NOW), Err(SignatureError::Mismatch));

    // Stale and future, even when correctly signed.
    let old = signed_interaction(SIM_SIGNING_SECRET, NOW - 301, &payload);
    assert_eq!(
        ok(Some(&old.timestamp), Some(&old.signature), &old.body, NOW),
        Err(SignatureError::Stale { age_seconds: 301 })
    );
    let future = signed_interaction(SIM_SIGNING_SECRET, NOW + 301, &payload);
    assert_eq!(
        ok(Some(&future.timestamp), Some(&future.signature), &future.body, NOW),
        Err(SignatureError::FromTheFuture { ahead_seconds: 301 })
    );

    // Malformed headers.
    let ts = Some(req.timestamp.as_str());
    let sig = Some(req.signature.as_str());
    assert_eq!(ok(None, sig, &req.body, NOW), Err(SignatureError::MissingTimestamp));
    for bad_ts in ["", "abc", "-5", "1.5", "99999999999999999999", " "] {
        assert_eq!(ok(Some(bad_ts), sig, &req.body, NOW), Err(SignatureError::MalformedTimestamp), "{bad_ts:?}");
    }
    assert_eq!(ok(ts, None, &req.body, NOW), Err(SignatureError::MissingSignature));
    let no_prefix = req.signature.trim_start_matches("v0=").to_string();
    let v1 = req.signature.replacen("v0=", "v1=", 1);
    let short = req.signature[..60].to_string();
    let not_hex = format!("v0={}", "z".repeat(64));
    for bad in [no_prefix.as_str(), v1.as_str(), short.as_str(), not_hex.as_str(), ""] {
        assert_eq!(ok(ts, Some(bad), &req.body, NOW), Err(SignatureError::MalformedSignature), "{bad:?}");
    }
    // Errors never carry the expected signature.
    let e = ok(ts, Some(&format!("v0={}", "0".repeat(64))), &req.body, NOW).unwrap_err();
    assert!(!e.to_string().contains(&req.signature[3..]));
    assert_eq!(e.code(), "signature_mismatch");
}

#[test]
fn block_actions_payloads_parse_into_the_fields_approvals_need() {
    let payload = block_actions_payload(
        "U0ALICE01",
        "C0SOC000001",
        "1767225600.000100",
        "floodgate_deny",
        "deny:apr-42",
        "https://hooks.slack.com/actions/T1/1/xyz",
    );
    let req = signed_interaction(SIM_SIGNING_SECRET, NOW, &payload);
    let a = parse_block_actions(&req.body).expect("parse");
    assert_eq!(a.user_id, "U0ALICE01");
    assert_eq!(a.action_id, "floodgate_deny");
    assert_eq!(a.value.as_deref(), Some("deny:apr-42"));
    assert_eq!(a.channel_id.as_deref(), Some("C0SOC000001"));
    assert_eq!(a.message_ts.as_deref(), Some("1767225600.000100"));
    assert_eq!(a.response_url.as_deref(), Some("https://hooks.slack.com/actions/T1/1/xyz"));
    assert_eq!(a.trigger_id, "1234567890.0987654321.abcdef0123456789");
    assert_eq!(a.team_id.as_deref(), Some("T0SIM0001"));
    let b = a.approval_button().expect("an approval button");
    assert_eq!(b.approval_id, "apr-42");
    assert_eq!(b.decision, Decision::Deny);

    // A value that claims another decision than the button pressed is not an approval.
    let forged = block_actions_payload("U1", "C1", "1.1", "floodgate_deny", "approve:apr-42", "https://x");
    let f = crate::parse_block_actions_json(&forged.to_string()).expect("parse");
    assert!(f.approval_button().is_none());

    // Unknown fields and block types Slack adds later do not break parsing.
    let mut extended = payload.clone();
    extended["message"]["blocks"] = json!([{"type": "brand_new_block", "whatever": {"x": 1}}]);
    extended["state"] = json!({"values": {}});
    assert!(crate::parse_block_actions_json(&extended.to_string()).is_ok());

    assert_eq!(parse_block_actions(b"nopayload=1"), Err(InteractionError::MissingPayload));
    assert_eq!(parse_block_actions(b"payload=%7Bnot json").unwrap_err().code(), "invalid_json");
    let view = json!({"type": "view_submission", "user": {"id": "U1"}});
    assert_eq!(
        crate::parse_block_actions_json(&view.to_string()),
        Err(InteractionError::UnsupportedType("view_submission".into()))
    );
    let mut no_actions = payload.clone();
    no_actions["actions"] = json!([]);
    assert_eq!(
        crate::parse_block_actions_json(&no_actions.to_string()),
        Err(InteractionError::MissingField("actions"))
    );
    let mut no_user = payload;
    no_user.as_object_mut().expect("object").remove("user");
    assert_eq!(crate::parse_block_actions_json(&no_user.to_string()), Err(InteractionError::MissingField("user")));
}

#[test]
fn settings_expose_the_signing_secret_for_the_interaction_endpoint() {
    let cfg =
        json!({"bot_token": super::secret_file("xoxb-1"), "signing_secret": super::secret_file(SIM_SIGNING_SECRET)});
    let s = crate::SlackSettings::from_value(&cfg).expect("settings");
    assert_eq!(s.signing_secret().map(Secret::expose), Some(SIM_SIGNING_SECRET));
    assert!(!format!("{s:?}").contains(SIM_SIGNING_SECRET), "Debug must not print secrets");
    assert!(!format!("{s:?}").contains("xoxb-1"));
}
