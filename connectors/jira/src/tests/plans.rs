//! Plans (no I/O, no secrets), the unconfigured connector, and configuration checks.

use super::*;

#[tokio::test]
async fn plans_show_requests_without_secrets_and_without_io() {
    let (sim, jira) = setup(Flavor::Cloud).await;
    let refs = MemoryRefStore::new();
    let c = ctx("inc-plan");
    let input = json!({"summary": "Suspicious download"});
    let plan = jira
        .plan(&ActionCall { action: "issue.create", input: &input, idempotency_key: "k", ctx: &c, refs: &refs })
        .unwrap();
    assert_eq!(plan.requests.len(), 2);
    assert_eq!(plan.requests[0].method, "POST");
    assert_eq!(plan.requests[0].url, format!("{}/rest/api/3/search/jql", sim.url()));
    assert_eq!(plan.requests[0].body.as_ref().unwrap()["jql"], "labels = \"floodgate-inc-plan\" ORDER BY created ASC");
    assert_eq!(plan.requests[1].url, format!("{}/rest/api/3/issue", sim.url()));
    let body = plan.requests[1].body.as_ref().unwrap();
    assert_eq!(body["fields"]["summary"], "Suspicious download");
    assert_eq!(body["fields"]["description"]["type"], "doc");
    assert!(plan.summary.contains("floodgate-inc-plan"), "{}", plan.summary);
    let shown = serde_json::to_string(&plan).unwrap();
    assert!(!shown.contains(SIM_API_TOKEN) && !shown.contains("Basic "), "{shown}");
    assert!(sim.log().is_empty(), "plan did no I/O");

    let input = json!({"body": "note"});
    let plan = jira
        .plan(&ActionCall { action: "issue.comment", input: &input, idempotency_key: "k", ctx: &c, refs: &refs })
        .unwrap();
    assert_eq!(plan.requests[0].url, format!("{}/rest/api/3/issue/<issue of incident inc-plan>/comment", sim.url()));
    let input = json!({"transition": "Done", "issue": "SEC-9"});
    let plan = jira
        .plan(&ActionCall { action: "issue.transition", input: &input, idempotency_key: "k", ctx: &c, refs: &refs })
        .unwrap();
    assert_eq!(plan.requests[0].method, "GET");
    assert_eq!(plan.requests[1].body.as_ref().unwrap()["transition"]["id"], "<id of transition \"Done\">");

    // Unconfigured: plans render against a placeholder host; execute refuses.
    let unconfigured = JiraKind.build(None).unwrap();
    let input = json!({});
    let call = ActionCall { action: "issue.create", input: &input, idempotency_key: "k", ctx: &c, refs: &refs };
    let plan = unconfigured.plan(&call).unwrap();
    assert_eq!(plan.requests[1].url, "https://<jira-host>/rest/api/3/issue");
    assert_eq!(unconfigured.execute(&call).await.unwrap_err().code(), "not_configured");
}

#[test]
fn config_is_checked_and_never_takes_literal_secrets() {
    let base = json!({"base_url": "https://acme.atlassian.net", "email": "a@b.c", "project": "SEC"});
    let mut literal = base.clone();
    literal["api_token"] = json!("hunter2");
    let e = JiraKind.build(Some(&literal)).err().unwrap().to_string();
    assert!(!e.contains("hunter2"), "{e}");
    let e = JiraKind.build(Some(&base)).err().unwrap().to_string();
    assert!(e.contains("needs email and api_token"), "{e}");
    let dc = json!({"base_url": "https://jira.corp", "flavor": "data-center", "project": "SEC", "api_token": "env:X"});
    assert!(JiraKind.build(Some(&dc)).err().unwrap().to_string().contains("personal_access_token"));
    let mut typo = base.clone();
    typo["projet"] = json!("X");
    assert!(JiraKind.build(Some(&typo)).err().unwrap().to_string().contains("projet"));
    let specs = JiraKind.actions();
    let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
    assert_eq!(names, ["issue.create", "issue.comment", "issue.transition"]);
    assert!(
        specs.iter().all(|s| s.risk == floodgate_sdk::RiskClass::Ticket && !s.revertible && !s.idempotency.is_empty())
    );
    assert_eq!(specs[1].input_schema["required"], json!(["body"]));
}
