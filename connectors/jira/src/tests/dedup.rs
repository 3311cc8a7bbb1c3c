//! One issue per incident: refs, label search after a crash or a lost answer, pagination.

use super::*;

#[tokio::test]
async fn second_create_for_the_same_incident_returns_the_existing_issue() {
    let (sim, jira) = setup(Flavor::Cloud).await;
    let refs = MemoryRefStore::new();
    let c = ctx("inc-1");
    let a = run(&jira, "issue.create", json!({}), "step-a", &c, &refs).await.unwrap();
    let b = run(&jira, "issue.create", json!({"summary": "another step"}), "step-b", &c, &refs).await.unwrap();
    assert_eq!(a.output["key"], b.output["key"]);
    assert_eq!(b.output["created"], false);
    assert_eq!(b.output["found_by"], "refs");
    assert_eq!(sim.issues().len(), 1);
    assert_eq!(sim.log().count("POST", "/rest/api/3/issue"), 1);
    // A different incident gets its own issue.
    run(&jira, "issue.create", json!({}), "step-a", &ctx("inc-2"), &refs).await.unwrap();
    assert_eq!(sim.issues().len(), 2);
    conformance_done(&sim, 3);
}

#[tokio::test]
async fn crash_before_refs_were_written_is_reconciled_by_label() {
    for flavor in [Flavor::Cloud, Flavor::DataCenter] {
        let (sim, jira) = setup(flavor).await;
        let c = ctx("inc-crash");
        // Jira created the issue, then floodgate died before committing refs: the retry runs
        // with the refs the database has, i.e. none.
        let first = run(&jira, "issue.create", json!({}), "k", &c, &MemoryRefStore::new()).await.unwrap();
        let mut again = c.clone();
        again.attempt = 2;
        let fresh = MemoryRefStore::new();
        let second = run(&jira, "issue.create", json!({}), "k", &again, &fresh).await.unwrap();
        assert_eq!(first.output["key"], second.output["key"], "{flavor:?}");
        assert_eq!(second.output["found_by"], "search");
        assert_eq!(sim.issues().len(), 1, "{flavor:?}: exactly one issue");
        assert_eq!(fresh.get(NS_ISSUE, "inc-crash").await.unwrap().unwrap()["key"], first.output["key"]);
        if flavor == Flavor::Cloud {
            conformance_done(&sim, 3);
        }
    }
}

#[tokio::test]
async fn lost_create_answer_is_reconciled_not_repeated() {
    let (sim, jira) = setup(Flavor::Cloud).await;
    let refs = MemoryRefStore::new();
    sim.lose_next_create_answers(1);
    let (r, attempts) = run_like_engine(&jira, "issue.create", json!({}), "k", &ctx("inc-lost"), &refs).await;
    let out = r.unwrap();
    assert_eq!(attempts, 2, "the 504 was handed back to the engine, which retried");
    assert_eq!(out.output["found_by"], "search");
    assert_eq!(sim.issues().len(), 1);
    assert_eq!(sim.log().count("POST", "/rest/api/3/issue"), 1, "a create with an unknown outcome is never replayed");
    conformance_done(&sim, 3);
}

#[tokio::test]
async fn reconciliation_follows_next_page_tokens() {
    let (sim, jira) = setup(Flavor::Cloud).await;
    // 55 issues already carry the incident's label (e.g. made by hand): more than one page.
    let http = HttpClient::new(fast());
    for i in 0..55 {
        let req = Request::post(format!("{}/rest/api/3/issue", sim.url()))
            .basic(SIM_EMAIL, &Secret::new(SIM_API_TOKEN))
            .json(json!({"fields": {"project": {"key": "SEC"}, "issuetype": {"name": "Task"},
                "summary": format!("dup {i}"), "labels": ["floodgate-inc-dup"]}}));
        assert_eq!(http.send(&req).await.unwrap().status, 201);
    }
    sim.log().clear();
    let out = run(&jira, "issue.create", json!({}), "k", &ctx("inc-dup"), &MemoryRefStore::new()).await.unwrap();
    assert_eq!(out.output["key"], "SEC-1", "the oldest issue is used");
    assert!(out.notes.iter().any(|n| n.contains("55 issues carry label floodgate-inc-dup")), "{:?}", out.notes);
    let searches = sim.log().matching("POST", "/rest/api/3/search/jql");
    assert_eq!(searches.len(), 2);
    assert!(searches[1].json().unwrap()["nextPageToken"].is_string());
    assert_eq!(sim.issues().len(), 55);
    conformance_done(&sim, 2);
}
