//! Happy paths: create → comment → transition on Cloud and on Data Center.

use super::*;

#[tokio::test]
async fn cloud_create_comment_transition() {
    let (sim, jira) = setup(Flavor::Cloud).await;
    let refs = MemoryRefStore::new();
    let c = ctx("inc-42");
    let out = run(&jira, "issue.create", json!({}), "k-create", &c, &refs).await.unwrap();
    assert_eq!(out.output["key"], "SEC-1");
    assert_eq!(out.output["created"], true);
    assert_eq!(out.output["url"], format!("{}/browse/SEC-1", sim.url()));
    let issue = sim.issue("SEC-1").unwrap();
    assert_eq!(issue.summary, "[floodgate] Exfiltration from workspace 1234 (high)");
    assert_eq!(issue.labels, ["floodgate-inc-42"]);
    assert_eq!(issue.priority.as_deref(), Some("High"), "severity high maps to the configured priority");
    assert_eq!(issue.custom_fields[SIM_CUSTOM_FIELD], "inc-42", "mapped fact");
    let d = &issue.description;
    assert_eq!(d["type"], "doc");
    let blocks: Vec<&str> = d["content"].as_array().unwrap().iter().map(|b| b["type"].as_str().unwrap()).collect();
    assert!(blocks.contains(&"table"), "{blocks:?}");
    let texts = crate::adf::texts(d);
    assert!(texts.contains(&"203.0.113.66"));
    assert!(texts.iter().any(|t| t.contains("[click](https://evil.example)")), "untrusted text stays text");
    let link = d.to_string();
    assert!(link.contains("\"href\":\"https://floodgate.example.com/incidents/inc-42\""));
    assert!(!link.contains("https://evil.example\"}"), "no link was made from alert data");
    assert_eq!(refs.get(NS_ISSUE, "inc-42").await.unwrap().unwrap()["key"], "SEC-1");

    let out = run(
        &jira,
        "issue.comment",
        json!({"body": "Containment approved by alice.\n\nIP blocked."}),
        "k-comment",
        &c,
        &refs,
    )
    .await
    .unwrap();
    assert_eq!(out.output["issue"], "SEC-1");
    let issue = sim.issue("SEC-1").unwrap();
    assert_eq!(issue.comments.len(), 1);
    assert_eq!(issue.comments[0].body["content"][0]["content"][0]["text"], "Containment approved by alice.");
    assert_eq!(issue.comments[0].properties[0].0, "floodgate");
    assert_eq!(issue.comments[0].properties[0].1["idempotency_key"], "k-comment");

    let out = run(
        &jira,
        "issue.transition",
        json!({"transition": "done", "resolution": "Done", "comment": "Closed by floodgate"}),
        "k-tr",
        &c,
        &refs,
    )
    .await
    .unwrap();
    assert_eq!(out.output["status"], "Done");
    assert_eq!(out.output["transition_id"], "31");
    let issue = sim.issue("SEC-1").unwrap();
    assert_eq!(issue.status, "Done");
    assert_eq!(issue.resolution.as_deref(), Some("Done"));
    assert_eq!(issue.comments.len(), 2, "the transition's comment was added");
    // Basic auth with email + API token on every call.
    assert!(sim.log().calls().iter().all(|c| { c.header("authorization").is_some_and(|a| a.starts_with("Basic ")) }));
    conformance_done(&sim, 4);
}

#[tokio::test]
async fn data_center_create_comment_transition() {
    let (sim, jira) = setup(Flavor::DataCenter).await;
    let refs = MemoryRefStore::new();
    let c = ctx("inc-7");
    let out = run(&jira, "issue.create", json!({"labels": ["security"], "issue_type": "Incident"}), "k1", &c, &refs)
        .await
        .unwrap();
    assert_eq!(out.output["key"], "SEC-1");
    let issue = sim.issue("SEC-1").unwrap();
    assert_eq!(issue.issue_type, "Incident");
    assert_eq!(issue.labels, ["floodgate-inc-7", "security"]);
    let d = issue.description.as_str().expect("v2 descriptions are strings");
    assert!(d.contains("||Field||Value||"), "{d}");
    assert!(d.contains("|Entity: source\\_ip|203.0.113.66|"), "{d}");
    assert!(d.contains("\\[click\\](https://evil.example) \\{html\\}"), "wiki markup escaped: {d}");
    assert!(d.contains("[Open the incident in floodgate|https://floodgate.example.com/incidents/inc-7]"));
    assert_eq!(sim.log().count("POST", "/rest/api/2/search"), 1, "v2 search used for reconciliation");

    run(&jira, "issue.comment", json!({"body": "*not bold* [x|http://evil]"}), "k2", &c, &refs).await.unwrap();
    let issue = sim.issue("SEC-1").unwrap();
    let body = issue.comments[0].body.as_str().unwrap();
    assert!(body.starts_with("\\*not bold\\* \\[x\\|http://evil\\]"), "{body}");

    let out = run(&jira, "issue.transition", json!({"transition": "Start Progress"}), "k3", &c, &refs).await.unwrap();
    assert_eq!(out.output["status"], "In Progress");
    assert_eq!(sim.issue("SEC-1").unwrap().status, "In Progress");
    assert!(sim.log().calls().iter().all(|c| c.header("authorization") == Some(&format!("Bearer {SIM_PAT}"))));
    assert!(sim.log().calls().iter().all(|c| c.path.starts_with("/rest/api/2/")));
}
