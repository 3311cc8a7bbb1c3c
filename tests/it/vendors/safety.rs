//! Untrusted alert text reaches chat escaped, and `floodgate simulate` shows every vendor
//! request without a secret.

use super::*;

/// Alert text that tries to ping `@channel` or smuggle links reaches Slack escaped, and the
/// Teams card carries links to floodgate only, never `Action.Submit`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn untrusted_alert_text_cannot_ping_or_link() {
    let v = Vendors::start().await;
    let fg = Floodgate::new(Backend::Sqlite, &v, &["untrusted.yaml"]).await;
    let s = fg.serve(None);
    send_alert(&s, &alert_fixture("untrusted-alert.json")).await;
    let store = fg.store().await;
    let runs = finished_runs(&store, 1, &s, Duration::from_secs(60)).await;
    assert_eq!(runs[0].state, "succeeded", "{runs:?}\n{}", s.stderr());

    let sent: Vec<RecordedCall> = v
        .slack
        .log()
        .calls()
        .into_iter()
        .filter(|c| c.path == "/api/chat.postMessage" || c.path == "/api/chat.update")
        .collect();
    assert_eq!(sent.len(), 2, "{:?}", calls(v.slack.log()));
    for c in &sent {
        let b = body(c);
        let text = all_text(&b);
        // The hostile text arrived, as literal text.
        for shown in [
            "&lt;!channel&gt;",
            "&lt;@U0ADMIN01&gt;",
            "&lt;https://evil.example/login|re-authenticate here&gt;",
            "&lt;!everyone&gt;",
        ] {
            assert!(text.contains(shown), "{} lacks {shown:?}: {text}", c.path);
        }
        // Slack's control sequences: only floodgate's own link may open one.
        for (i, _) in text.match_indices('<') {
            assert!(text[i..].starts_with(&format!("<{PUBLIC_URL}/incidents/")), "{} injects {:?}", c.path, &text[i..]);
        }
        for broadcast in ["@channel", "@here", "@everyone"] {
            assert!(!text.contains(broadcast), "{} carries a bare {broadcast}: {text}", c.path);
        }
        assert!(text.contains("@\u{2060}channel"), "the broadcast is broken, not dropped");
        if c.path == "/api/chat.postMessage" {
            assert_eq!((b["link_names"].as_bool(), b["unfurl_links"].as_bool()), (Some(false), Some(false)), "{b}");
        }
    }
    let messages = v.slack.messages(SOC_CHANNEL);
    assert_eq!(messages.len(), 1);
    assert!(all_text(&json!(messages[0].blocks)).contains("Still looking at Login for &lt;!channel&gt;"));

    let cards = v.teams.cards();
    assert_eq!(cards.len(), 1);
    let raw = cards[0].to_string();
    assert!(!raw.contains("Action.Submit") && !raw.contains("Action.Execute"), "{raw}");
    let mut actions = Vec::new();
    card_actions(&cards[0], &mut actions);
    assert!(!actions.is_empty(), "the card links back to floodgate");
    for a in &actions {
        assert_eq!(a["type"], "Action.OpenUrl", "{a}");
        assert!(a["url"].as_str().is_some_and(|u| u.starts_with(PUBLIC_URL)), "a link out of floodgate: {a}");
    }
    let card_text = all_text(&cards[0]);
    assert!(!card_text.contains("[click](https://evil.example/x)"), "markdown link syntax survives: {card_text}");
    assert!(card_text.contains("mallory"), "the reporter fact is shown: {card_text}");
    store.close().await;
    drop(s);
    v.stop().await;
}

/// Secret values for the `simulate` test: any of them in its output is a leak.
const PLAN_SECRETS: [(&str, &str); 5] = [
    ("FLOODGATE_JIRA_API_TOKEN", "jira-api-token-7c1d2e"),
    ("FLOODGATE_SERVICENOW_PASSWORD", "sn-password-4b8a9f"),
    ("FLOODGATE_SLACK_BOT_TOKEN", "xoxb-1111-2222-slacksecret93"),
    (
        "FLOODGATE_TEAMS_WEBHOOK_URL",
        "https://prod-12.westeurope.logic.azure.com:443/workflows/0a1b2c3d4e5f/triggers/manual/paths/invoke?api-version=2016-06-01&sp=%2Ftriggers%2Fmanual%2Frun&sv=1.0&sig=TeamsSigSecret0987",
    ),
    ("FLOODGATE_PAGERDUTY_ROUTING_KEY", "PDROUTINGKEYSECRET0123456789abcd"),
];

/// `floodgate simulate` with the vendor tables shows each vendor action's requests (method,
/// URL, body) and no secret.
#[test]
fn simulate_shows_every_vendor_request_without_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tables = connector_tables(
        "https://acme.atlassian.net",
        "https://acme.service-now.com",
        "https://slack.com/api",
        "https://events.pagerduty.com",
    );
    let cfg = crate::common::write(
        dir.path(),
        "floodgate.toml",
        server_config("sqlite://unused.db", &dir.path().join("playbooks"), &tables),
    );
    let pb = crate::common::write(dir.path(), "five-vendors.yaml", fixture("five-vendors.yaml"));
    let alert = crate::common::write(dir.path(), "alert.json", fixture("alert.json"));
    let mut cmd = std::process::Command::new(crate::common::bin());
    cmd.arg("simulate").arg("--playbook").arg(&pb).arg("--alert").arg(&alert).arg("--config").arg(&cfg);
    cmd.args(["--source", "siem", "--format", "json"]).current_dir(dir.path());
    for (k, val) in PLAN_SECRETS {
        cmd.env(k, val);
    }
    let out = cmd.output().expect("floodgate simulate runs");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "{stdout}\n{stderr}");
    for (name, val) in PLAN_SECRETS {
        assert!(!stdout.contains(val) && !stderr.contains(val), "{name} leaked into simulate's output");
    }
    assert!(!stdout.contains("TeamsSigSecret0987") && !stdout.contains("0a1b2c3d4e5f"), "the webhook URL leaked");
    let sim: Value = serde_json::from_str(&stdout).expect("simulate --format json prints JSON");
    let steps = sim["steps"].as_array().expect("steps");
    let planned = |id: &str| -> Vec<Value> {
        let s = steps.iter().find(|s| s["id"] == id).unwrap_or_else(|| panic!("no step {id}"));
        assert_eq!(s["run"], true, "{s}");
        s["requests"].as_array().cloned().unwrap_or_default()
    };
    let lines = |id: &str| -> Vec<String> {
        planned(id)
            .iter()
            .map(|r| format!("{} {}", r["method"].as_str().unwrap_or("?"), r["url"].as_str().unwrap_or("?")))
            .collect()
    };
    let jira = "https://acme.atlassian.net/rest/api/3";
    let issue = "<issue of incident inc_simulated>";
    assert_eq!(lines("ticket"), [format!("POST {jira}/search/jql"), format!("POST {jira}/issue")]);
    let create = &planned("ticket")[1]["body"]["fields"];
    assert_eq!(
        (create["project"]["key"].as_str(), create["labels"][0].as_str()),
        (Some("SEC"), Some("floodgate-inc_simulated"))
    );
    assert_eq!(lines("ticket_note"), [format!("POST {jira}/issue/{issue}/comment")]);
    assert!(planned("ticket_note")[0]["body"].to_string().contains("Evidence: sp-etl@corp.example from 203.0.113.66"));
    assert_eq!(
        lines("ticket_done"),
        [format!("GET {jira}/issue/{issue}/transitions"), format!("POST {jira}/issue/{issue}/transitions")]
    );
    let sn = lines("sn_incident");
    assert!(
        sn[0].starts_with("GET https://acme.service-now.com/api/now/table/incident?sysparm_query=correlation_id"),
        "{sn:?}"
    );
    assert!(
        sn.last().is_some_and(|l| l.starts_with("POST https://acme.service-now.com/api/now/table/incident?")),
        "{sn:?}"
    );
    let sn_create = planned("sn_incident").pop().expect("create");
    assert_eq!(sn_create["body"]["correlation_id"], "floodgate-inc_simulated");
    let note = planned("sn_note");
    assert_eq!(note.last().expect("patch")["method"], "PATCH");
    assert!(
        note.last().expect("patch")["body"]["work_notes"]
            .as_str()
            .is_some_and(|w| w.starts_with("Investigating sp-etl"))
    );
    assert_eq!(lines("chat").last().map(String::as_str), Some("POST https://slack.com/api/chat.postMessage"));
    assert_eq!(planned("chat").last().expect("post")["body"]["channel"], SOC_CHANNEL);
    assert_eq!(lines("chat_update").last().map(String::as_str), Some("POST https://slack.com/api/chat.update"));
    let card = planned("card");
    assert_eq!(card.len(), 1);
    assert_eq!(card[0]["method"], "POST");
    assert!(
        card[0]["url"].as_str().is_some_and(|u| u.starts_with("https://prod-12.westeurope.logic.azure.com")),
        "{card:?}"
    );
    assert_eq!(card[0]["body"]["attachments"][0]["contentType"], "application/vnd.microsoft.card.adaptive");
    for (id, action) in [("page", "trigger"), ("unpage", "resolve")] {
        let p = planned(id);
        assert_eq!(lines(id), ["POST https://events.pagerduty.com/v2/enqueue"]);
        assert_eq!(p[0]["body"]["event_action"], action);
        assert_eq!(p[0]["body"]["dedup_key"], "floodgate:incident:inc_simulated");
        assert_ne!(p[0]["body"]["routing_key"], PLAN_SECRETS[4].1);
    }
}
