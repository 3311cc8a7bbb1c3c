//! One incident through all five vendors: the exact calls each receives and the state it ends in.

use super::*;

/// One incident through all five vendors, asserting the exact calls and the final vendor state.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_incident_through_all_five_vendors() {
    let v = Vendors::start().await;
    let fg = Floodgate::new(Backend::Sqlite, &v, &["five-vendors.yaml"]).await;
    let server = fg.serve(None);
    let accepted = send_alert(&server, &alert_fixture("alert.json")).await;
    let store = fg.store().await;
    let runs = finished_runs(&store, 1, &server, Duration::from_secs(60)).await;
    assert_eq!(runs[0].state, "succeeded", "{runs:?}\n{}", server.stderr());
    let incident = accepted["incident_id"].as_str().expect("incident id").to_string();
    let run_id = accepted["run_id"].as_str().expect("run id");
    let steps = store.step_executions(run_id).await.expect("steps");
    let link = format!("{PUBLIC_URL}/incidents/{incident}");
    let label = format!("floodgate-{incident}");

    // Jira: search the dedup label, create, comment, read the transitions, move to Done.
    let jira = v.jira.log();
    assert_eq!(
        calls(jira),
        [
            "POST /rest/api/3/search/jql",
            "POST /rest/api/3/issue",
            "POST /rest/api/3/issue/SEC-1/comment",
            "GET /rest/api/3/issue/SEC-1/transitions",
            "POST /rest/api/3/issue/SEC-1/transitions",
        ]
    );
    assert_auth("jira", jira, Some(&basic(SIM_EMAIL, SIM_API_TOKEN)));
    let j = jira.calls();
    assert_eq!(body(&j[0])["jql"], format!("labels = \"{label}\" ORDER BY created ASC"));
    let fields = &body(&j[1])["fields"];
    assert_eq!(fields["project"], json!({"key": "SEC"}));
    assert_eq!(fields["labels"], json!([label, "floodgate"]));
    assert_eq!(fields["priority"], json!({"name": "High"}));
    assert_eq!(fields["summary"], "[floodgate] Bulk export by sp-etl (high)");
    let description = fields["description"].to_string();
    for evidence in [&link, "203.0.113.66", "sp-etl@corp.example", "bulk-export", "exported 412 tables"] {
        assert!(description.contains(evidence), "the Jira description lacks {evidence}: {description}");
    }
    let comment = body(&j[2]);
    assert_eq!(comment["properties"][0]["key"], "floodgate");
    assert_eq!(comment["properties"][0]["value"]["idempotency_key"], step(&steps, "ticket_note").idempotency_key);
    let comment_text = comment["body"].to_string();
    assert!(comment_text.contains("Evidence: sp-etl@corp.example from 203.0.113.66 (bulk-export)"), "{comment_text}");
    assert!(comment_text.contains(&link), "{comment_text}");
    assert_eq!(body(&j[4])["transition"], json!({"id": "31"}));
    let issues = v.jira.issues();
    assert_eq!(issues.len(), 1, "one issue: {issues:?}");
    assert_eq!((issues[0].key.as_str(), issues[0].status.as_str()), ("SEC-1", "Done"));
    assert_eq!(issues[0].comments.len(), 1);
    assert_eq!(step(&steps, "ticket").output.as_ref().expect("output")["key"], "SEC-1");

    // ServiceNow: dedup query, group lookup, create, one PATCH with the work note and state.
    let sn = v.servicenow.log();
    let records = v.servicenow.incidents();
    assert_eq!(records.len(), 1, "one ServiceNow incident");
    let sys_id = records[0].sys_id.clone();
    assert_eq!(
        calls(sn),
        [
            "GET /api/now/table/incident".to_string(),
            "GET /api/now/table/sys_user_group".to_string(),
            "POST /api/now/table/incident".to_string(),
            format!("PATCH /api/now/table/incident/{sys_id}"),
        ]
    );
    assert_auth("servicenow", sn, Some(&basic(SIM_USER, SIM_PASSWORD)));
    let s = sn.calls();
    let query: Vec<(String, String)> =
        url::form_urlencoded::parse(s[0].query.as_deref().unwrap_or_default().as_bytes()).into_owned().collect();
    let by_correlation = (String::from("sysparm_query"), format!("correlation_id={label}^ORDERBYsys_created_on"));
    assert!(query.contains(&by_correlation), "{query:?}");
    let created = body(&s[2]);
    assert_eq!(created["correlation_id"], label);
    assert_eq!(created["assignment_group"], SIM_GROUP_SYS_ID);
    assert_eq!(created["category"], "network");
    assert!(created.as_object().expect("object").values().all(Value::is_string), "Table API bodies are strings only");
    let description = created["description"].as_str().unwrap_or_default();
    for evidence in [&link, "203.0.113.66", "sp-etl@corp.example", "exported 412 tables"] {
        assert!(description.contains(evidence), "the ServiceNow description lacks {evidence}: {description}");
    }
    let patch = body(&s[3]);
    assert_eq!(patch["state"], "2");
    let note = patch["work_notes"].as_str().unwrap_or_default();
    assert!(note.starts_with("Investigating sp-etl@corp.example from 203.0.113.66"), "{note}");
    assert_eq!(records[0].get("correlation_id"), label);
    assert_eq!(records[0].get("state"), "2");
    assert_eq!(records[0].work_notes().len(), 1, "one work note");

    // Slack: history read (dedup), one post, one update of the same message.
    let slack = v.slack.log();
    assert_eq!(calls(slack), ["GET /api/conversations.history", "POST /api/chat.postMessage", "POST /api/chat.update"]);
    assert_auth("slack", slack, Some(&format!("Bearer {SIM_BOT_TOKEN}")));
    let messages = v.slack.messages(SOC_CHANNEL);
    assert_eq!(messages.len(), 1, "one Slack message");
    let m = &messages[0];
    assert_eq!(m.edits, 1, "updated in place once");
    let sl = slack.calls();
    let (post, update) = (body(&sl[1]), body(&sl[2]));
    assert_eq!(post["channel"], SOC_CHANNEL);
    assert!(post["text"].as_str().is_some_and(|t| t.contains("Bulk export by sp-etl")), "fallback text: {post}");
    assert_eq!((update["channel"].as_str(), update["ts"].as_str()), (Some(SOC_CHANNEL), Some(m.ts.as_str())));
    let shown = all_text(&json!(m.blocks));
    for evidence in
        [&link, "203.0.113.66", "sp-etl@corp.example", &incident, "Contained: sessions of sp-etl@corp.example revoked"]
    {
        assert!(shown.contains(evidence), "the Slack message lacks {evidence}: {shown}");
    }
    assert!(!shown.contains("Triage:"), "the update replaced the triage status: {shown}");

    // Teams: one card through the webhook, links only.
    let teams = v.teams.log();
    assert_eq!(calls(teams).len(), 1);
    let t = &teams.calls()[0];
    assert_eq!(t.method, "POST");
    assert!(t.path.starts_with("/workflows/") && t.path.ends_with("/triggers/manual/paths/invoke"), "{}", t.path);
    assert!(t.query.as_deref().is_some_and(|q| q.contains("sig=")), "the webhook URL's signature is the credential");
    assert_auth("teams", teams, None);
    let cards = v.teams.cards();
    assert_eq!(cards.len(), 1, "one Teams card");
    let card_text = all_text(&cards[0]);
    for evidence in [&link, "203.0.113.66", "sp-etl@corp.example", "Triage: bulk-export"] {
        assert!(card_text.contains(evidence), "the Teams card lacks {evidence}: {card_text}");
    }
    let mut actions = Vec::new();
    card_actions(&cards[0], &mut actions);
    assert!(actions.iter().any(|a| a["url"] == link.as_str()), "{actions:?}");
    assert!(actions.iter().all(|a| a["type"] == "Action.OpenUrl"), "{actions:?}");

    // PagerDuty: trigger and resolve of one alert under floodgate's dedup key.
    let pd = v.pagerduty.log();
    assert_eq!(calls(pd), ["POST /v2/enqueue", "POST /v2/enqueue"]);
    assert_auth("pagerduty", pd, None);
    let dedup = format!("floodgate:incident:{incident}");
    let p = pd.calls();
    let (trigger, resolve) = (body(&p[0]), body(&p[1]));
    assert_eq!(
        (trigger["event_action"].as_str(), resolve["event_action"].as_str()),
        (Some("trigger"), Some("resolve"))
    );
    for e in [&trigger, &resolve] {
        assert_eq!((e["routing_key"].as_str(), e["dedup_key"].as_str()), (Some(SIM_ROUTING_KEY), Some(dedup.as_str())));
    }
    assert_eq!(trigger["payload"]["severity"], "error");
    assert!(trigger["payload"]["summary"].as_str().is_some_and(|s| s.contains("Bulk export by sp-etl")));
    assert_eq!(trigger["payload"]["custom_details"]["floodgate_url"], link.as_str());
    assert_eq!(trigger["payload"]["custom_details"]["entities"]["source_ip"], "203.0.113.66");
    assert_eq!(trigger["links"][0]["href"], link.as_str());
    let alerts = v.pagerduty.alerts_for(&dedup);
    assert_eq!(alerts.len(), 1, "one PagerDuty alert");
    assert_eq!(alerts[0].status, AlertStatus::Resolved);

    store.close().await;
    drop(server);
    v.stop().await;
}
