//! message.post / message.update against the simulator: happy paths, once-only posting,
//! rate limits, Slack error codes, escaping.

use super::conformance::check_log;
use super::*;
use crate::sim::{ARCHIVED_CHANNEL, OUTSIDE_CHANNEL, PRIVATE_CHANNEL, SimMessage};

fn all_texts(m: &SimMessage) -> String {
    let mut out = m.text.clone().unwrap_or_default();
    out.push('\n');
    out.push_str(&serde_json::to_string(&m.blocks).expect("json"));
    out
}

#[tokio::test]
async fn post_then_update_edits_the_same_message() {
    let sim = SlackSim::start().await.expect("sim");
    let slack = connector(&sim);
    let ctx = ctx("inc-100");
    let refs = MemoryRefStore::new();
    let out = slack
        .execute(&call("message.post", &json!({"status": "Triage"}), "run-1/notify", &ctx, &refs))
        .await
        .expect("post");
    assert_eq!(out.output["outcome"], "posted");
    assert_eq!(out.output["channel"], SOC_CHANNEL);
    let ts = out.output["ts"].as_str().expect("ts").to_string();

    let msgs = sim.messages(SOC_CHANNEL);
    assert_eq!(msgs.len(), 1);
    let m = &msgs[0];
    let text = m.text.clone().expect("a text fallback is always set");
    assert!(text.contains("Data exfiltration from workspace 1234567890"), "{text}");
    let blocks = serde_json::to_string(&m.blocks).expect("json");
    for needle in ["alice@example.com", "203.0.113.66", "92%", "Large export from a new IP", "inc-100", "Triage"] {
        assert!(blocks.contains(needle), "{needle} missing from {blocks}");
    }
    assert!(blocks.contains("<https://floodgate.example/incidents/inc-100|Open in floodgate>"), "{blocks}");
    assert_eq!(m.post_args["unfurl_links"], json!(false));
    assert_eq!(m.post_args["parse"], json!("none"));
    let auth = &sim.log().matching("POST", "/api/chat.postMessage")[0];
    assert_eq!(auth.header("authorization"), Some(format!("Bearer {SIM_BOT_TOKEN}").as_str()));

    let out = slack
        .execute(&call("message.update", &json!({"status": "Contained: IP blocked"}), "run-1/update", &ctx, &refs))
        .await
        .expect("update");
    assert_eq!(out.output["ts"], ts.as_str());
    let msgs = sim.messages(SOC_CHANNEL);
    assert_eq!(msgs.len(), 1, "update never posts");
    assert_eq!(msgs[0].edits, 1);
    assert!(all_texts(&msgs[0]).contains("Contained: IP blocked"));
    assert!(check_log(sim.log()) > 0 || floodgate_sdk::conformance::specs_dir().is_none());
}

#[tokio::test]
async fn repeating_a_post_with_the_same_key_posts_once() {
    let sim = SlackSim::start().await.expect("sim");
    let slack = connector(&sim);
    let ctx = ctx("inc-101");
    let refs = MemoryRefStore::new();
    let input = json!({"text": "first"});
    let a = slack.execute(&call("message.post", &input, "k1", &ctx, &refs)).await.expect("post");
    let b = slack.execute(&call("message.post", &input, "k1", &ctx, &refs)).await.expect("repeat");
    assert_eq!(b.output["outcome"], "already_posted");
    assert_eq!(a.output["ts"], b.output["ts"]);
    assert_eq!(sim.log().count("POST", "/api/chat.postMessage"), 1, "refs are read first: nothing sent");
    assert_eq!(sim.messages(SOC_CHANNEL).len(), 1);

    // Another step of the same incident posting the same named message updates it.
    let c =
        slack.execute(&call("message.post", &json!({"text": "second"}), "k2", &ctx, &refs)).await.expect("second step");
    assert_eq!(c.output["outcome"], "updated");
    assert_eq!(c.output["ts"], a.output["ts"]);
    let msgs = sim.messages(SOC_CHANNEL);
    assert_eq!(msgs.len(), 1);
    assert!(all_texts(&msgs[0]).contains("second"));

    // A differently named message is a second message.
    slack.execute(&call("message.post", &json!({"name": "containment"}), "k3", &ctx, &refs)).await.expect("named");
    assert_eq!(sim.messages(SOC_CHANNEL).len(), 2);
    check_log(sim.log());
}

#[tokio::test]
async fn crash_after_posting_then_retry_with_refs_kept_or_lost_gives_one_message() {
    let sim = SlackSim::start().await.expect("sim");
    let slack = connector(&sim);
    let ctx = ctx("inc-102");
    let input = json!({"text": "exfiltration in progress"});

    // Attempt 1 posts, then "crashes" before the refs are written.
    let crashing = CrashingRefs(MemoryRefStore::new());
    let e = slack.execute(&call("message.post", &input, "run-9/notify", &ctx, &crashing)).await.unwrap_err();
    assert_eq!(e.code(), "crash");
    assert_eq!(sim.messages(SOC_CHANNEL).len(), 1);
    // Lots of chatter since: the message is on the second history page now.
    for i in 0..230 {
        sim.post_as_user(SOC_CHANNEL, "U0PERSON1", &format!("chatter {i}"));
    }

    // Attempt 2 with every ref lost finds it by its marker and updates it.
    let lost = MemoryRefStore::new();
    let mut retry_ctx = ctx.clone();
    retry_ctx.attempt = 2;
    let out = slack.execute(&call("message.post", &input, "run-9/notify", &retry_ctx, &lost)).await.expect("retry");
    assert_eq!(out.output["outcome"], "reconciled");
    let bot_msgs: Vec<_> = sim.messages(SOC_CHANNEL).into_iter().filter(|m| m.bot_id.is_some()).collect();
    assert_eq!(bot_msgs.len(), 1, "exactly one Slack message for the incident");
    assert_eq!(out.output["ts"], bot_msgs[0].ts.as_str());
    assert!(sim.log().count("GET", "/api/conversations.history") >= 2, "paged through the history");

    // Attempt 3 with refs kept sends nothing at all.
    let before = sim.log().len();
    let again = slack.execute(&call("message.post", &input, "run-9/notify", &retry_ctx, &lost)).await.expect("again");
    assert_eq!(again.output["outcome"], "already_posted");
    assert_eq!(sim.log().len(), before);

    // A new run for the same incident with no refs at all still finds the one message.
    let fresh = MemoryRefStore::new();
    let out = slack.execute(&call("message.post", &input, "run-10/notify", &ctx, &fresh)).await.expect("other run");
    assert_eq!(out.output["ts"], bot_msgs[0].ts.as_str());
    assert_eq!(sim.messages(SOC_CHANNEL).into_iter().filter(|m| m.bot_id.is_some()).count(), 1);
    check_log(sim.log());
}

#[tokio::test]
async fn a_deleted_message_is_posted_again() {
    let sim = SlackSim::start().await.expect("sim");
    let slack = connector(&sim);
    let ctx = ctx("inc-103");
    let refs = MemoryRefStore::new();
    // refs say a message exists, but Slack does not know it (deleted).
    refs.put("slack", "message:inc-103:incident", &json!({"channel": SOC_CHANNEL, "ts": "1.000001"}))
        .await
        .expect("put");
    let out = slack.execute(&call("message.post", &json!({}), "k", &ctx, &refs)).await.expect("post");
    assert_eq!(out.output["outcome"], "posted");
    assert_eq!(sim.messages(SOC_CHANNEL).len(), 1);
    check_log(sim.log());
}

#[tokio::test]
async fn a_429_storm_is_ridden_out_without_loss_or_duplicates() {
    let sim = SlackSim::start().await.expect("sim");
    let slack = connector(&sim);
    let refs = MemoryRefStore::new();
    // A short storm is absorbed inside one call (Retry-After honoured by the HTTP layer).
    sim.faults().rate_limit_next(2, 0, Some("/api/chat.postMessage"));
    let ctx1 = ctx("inc-110");
    slack.execute(&call("message.post", &json!({}), "a", &ctx1, &refs)).await.expect("absorbed");
    assert_eq!(sim.log().count("POST", "/api/chat.postMessage"), 3);
    let faulted = sim.log().matching("POST", "/api/chat.postMessage");
    assert!(faulted[0].faulted && faulted[0].status == 429);

    // A long storm outlasts the in-call retries: the engine gets a retryable error with
    // Slack's code and tries again with the same key until it passes.
    sim.faults().rate_limit_next(9, 0, None);
    let ctx2 = ctx("inc-111");
    let e = slack.execute(&call("message.post", &json!({}), "b", &ctx2, &refs)).await.unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.code(), "ratelimited");
    let out = run_until_done(&slack, "message.post", &json!({}), "b", &ctx2, &refs).await.expect("eventually posted");
    assert_eq!(out.output["outcome"], "posted");
    // Ten incidents through a rate limit: all ten posted, once each.
    sim.faults().rate_limit(200.0, 3, 0);
    for i in 0..10 {
        let c = ctx(&format!("inc-storm-{i}"));
        run_until_done(&slack, "message.post", &json!({}), &format!("s{i}"), &c, &refs).await.expect("posted");
    }
    sim.faults().clear();
    assert_eq!(sim.messages(SOC_CHANNEL).len(), 12);
    check_log(sim.log());
}

#[tokio::test]
async fn a_long_retry_after_is_handed_to_the_engine() {
    let sim = SlackSim::start().await.expect("sim");
    let slack = connector(&sim);
    sim.faults().rate_limit_next(1, 120, None);
    let refs = MemoryRefStore::new();
    let e = slack.execute(&call("message.post", &json!({}), "k", &ctx("inc-112"), &refs)).await.unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.retry_after_hint(), Some(Duration::from_secs(120)));
    assert_eq!(sim.log().len(), 1, "the first 429 ends the call: no waiting inside it");
    check_log(sim.log());
}

#[tokio::test]
async fn slack_ok_false_errors_are_surfaced_with_their_code() {
    let sim = SlackSim::start().await.expect("sim");
    let refs = MemoryRefStore::new();
    let ctx = ctx("inc-120");
    let no_reconcile = |token: &str| {
        let mut c = config(&sim, token);
        c["reconcile_from_history"] = json!(false);
        connector_with(c)
    };
    let slack = no_reconcile(SIM_BOT_TOKEN);
    for (channel, code) in
        [("C0NOPE00001", "channel_not_found"), (OUTSIDE_CHANNEL, "not_in_channel"), (ARCHIVED_CHANNEL, "is_archived")]
    {
        let e =
            slack.execute(&call("message.post", &json!({"channel": channel}), channel, &ctx, &refs)).await.unwrap_err();
        assert_eq!(e.code(), code);
        assert!(!e.is_retryable(), "{code}");
        assert!(e.message().contains(code), "{}", e.message());
    }
    let bad = no_reconcile("xoxb-wrong-token");
    let e = bad.execute(&call("message.post", &json!({}), "x", &ctx, &refs)).await.unwrap_err();
    assert_eq!(e.code(), "invalid_auth");
    assert!(e.message().contains("bot_token") && !e.message().contains("xoxb-wrong-token"), "{}", e.message());

    // A token without history scopes: reconciliation explains what to grant or switch off.
    sim.add_token("xoxb-post-only", &["chat:write"]);
    let post_only = connector_with(config(&sim, "xoxb-post-only"));
    let e = post_only.execute(&call("message.post", &json!({}), "y", &ctx, &refs)).await.unwrap_err();
    assert_eq!(e.code(), "missing_scope");
    assert!(
        e.message().contains("channels:history") && e.message().contains("reconcile_from_history"),
        "{}",
        e.message()
    );

    // Private channels work with groups:history.
    let out = connector(&sim)
        .execute(&call("message.post", &json!({"channel": PRIVATE_CHANNEL}), "z", &ctx, &refs))
        .await
        .expect("private");
    assert_eq!(out.output["channel"], PRIVATE_CHANNEL);

    // An update of a message never posted is refused with a clear message.
    let e = slack.execute(&call("message.update", &json!({"name": "never"}), "u", &ctx, &refs)).await.unwrap_err();
    assert_eq!(e.code(), "message_not_posted");
    check_log(sim.log());
}

#[tokio::test]
async fn invalid_blocks_are_reported_with_slacks_reasons() {
    use slack_morphism::prelude::*;
    let sim = SlackSim::start().await.expect("sim");
    let slack = connector(&sim);
    let empty =
        SlackSectionBlock::new().with_text(SlackBlockText::MarkDown(SlackBlockMarkDownText::new(String::new())));
    let req = SlackApiChatPostMessageRequest::new(
        SlackChannelId::new(SOC_CHANNEL.into()),
        SlackMessageContent::new().with_text("x".into()).with_blocks(vec![empty.into()]),
    );
    let e = slack.api().post_message(&req).await.unwrap_err();
    assert_eq!(e.code(), "invalid_blocks");
    assert!(e.message().contains("json-pointer:/blocks/0/text"), "{}", e.message());
    let req = SlackApiChatPostMessageRequest::new(SlackChannelId::new(SOC_CHANNEL.into()), SlackMessageContent::new());
    assert_eq!(slack.api().post_message(&req).await.unwrap_err().code(), "no_text");
    assert!(sim.messages(SOC_CHANNEL).is_empty());
    // Even the refused requests were well-formed Web API calls.
    check_log(sim.log());
}

#[tokio::test]
async fn hostile_alert_text_cannot_ping_or_inject_links() {
    let sim = SlackSim::start().await.expect("sim");
    let slack = connector(&sim);
    let mut ctx = ctx("inc-130");
    ctx.incident["title"] = json!("<!channel> wake up");
    ctx.alert["description"] =
        json!("@here see <https://evil.example|your SSO page> & <@U0BOSS> <#C0SECRET> <!subteam^S1>");
    ctx.alert["entities"]["user"] = json!("<!everyone>");
    ctx.alert["rule"] = json!("@channel rule");
    let refs = MemoryRefStore::new();
    slack
        .execute(&call(
            "message.post",
            &json!({"fields": {"<!here>": "<https://evil.example/2|x>"}, "status": "@everyone & <b>"}),
            "k",
            &ctx,
            &refs,
        ))
        .await
        .expect("post");
    let m = &sim.messages(SOC_CHANNEL)[0];
    let everything = all_texts(m);
    for forbidden in [
        "<!channel>",
        "<!here>",
        "<!everyone>",
        "<https://evil",
        "<@U0BOSS>",
        "<#C0SECRET>",
        "<!subteam",
        "@here",
        "@channel",
        "@everyone",
        "<b>",
    ] {
        assert!(!everything.contains(forbidden), "{forbidden:?} reached Slack: {everything}");
    }
    assert!(everything.contains("&lt;!channel&gt; wake up"));
    assert!(everything.contains("&amp;"));
    // The only link is floodgate's own.
    assert_eq!(everything.matches("<http").count(), 1, "{everything}");
    // Every mrkdwn object asks Slack not to auto-link or auto-mention.
    let mut mrkdwn = 0;
    walk(&Value::Array(m.blocks.clone()), &mut |v| {
        if v.get("type") == Some(&json!("mrkdwn")) {
            mrkdwn += 1;
            assert_eq!(v["verbatim"], json!(true), "{v}");
        }
    });
    assert!(mrkdwn > 3);
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
async fn mentions_take_validated_ids_only() {
    let sim = SlackSim::start().await.expect("sim");
    let slack = connector(&sim);
    let ctx = ctx("inc-140");
    let refs = MemoryRefStore::new();
    slack
        .execute(&call("message.post", &json!({"mention": ["U0ONCALL1", "S0SECOPS1"]}), "k", &ctx, &refs))
        .await
        .expect("post");
    let m = &sim.messages(SOC_CHANNEL)[0];
    let text = m.text.clone().unwrap_or_default();
    assert!(text.starts_with("<@U0ONCALL1> <!subteam^S0SECOPS1>"), "{text}");
    for bad in ["!channel", "<@U1>", "here", "U1|x"] {
        let e = slack.execute(&call("message.post", &json!({"mention": [bad]}), bad, &ctx, &refs)).await.unwrap_err();
        assert_eq!(e.code(), "invalid_input", "{bad}");
    }
    let e = slack.execute(&call("message.post", &json!({"channel": "#soc"}), "c", &ctx, &refs)).await.unwrap_err();
    assert!(e.message().contains("channel ID"), "{}", e.message());
    check_log(sim.log());
}
