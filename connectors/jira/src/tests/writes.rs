//! Comments and transitions: dedup by idempotency key, name resolution, lost answers.

use super::*;

#[tokio::test]
async fn a_repeated_comment_is_posted_once() {
    let (sim, jira) = setup(Flavor::Cloud).await;
    let refs = MemoryRefStore::new();
    let c = ctx("inc-c");
    run(&jira, "issue.create", json!({}), "k-create", &c, &refs).await.unwrap();
    let a = run(&jira, "issue.comment", json!({"body": "hello"}), "k-comment", &c, &refs).await.unwrap();
    let b = run(&jira, "issue.comment", json!({"body": "hello"}), "k-comment", &c, &refs).await.unwrap();
    assert_eq!(a.output["comment_id"], b.output["comment_id"]);
    assert_eq!(b.output["created"], false);
    // Crash after Jira stored the comment but before refs were committed: the retry (attempt 2)
    // finds the comment by its hidden property instead of posting it again.
    let fresh = MemoryRefStore::new();
    fresh.put(NS_ISSUE, "inc-c", &json!({"key": "SEC-1", "id": "10001"})).await.unwrap();
    let mut retry = c.clone();
    retry.attempt = 2;
    let r = run(&jira, "issue.comment", json!({"body": "hello"}), "k-comment", &retry, &fresh).await.unwrap();
    assert_eq!(r.output["comment_id"], a.output["comment_id"]);
    assert_eq!(sim.issue("SEC-1").unwrap().comments.len(), 1);
    assert_eq!(sim.log().count("POST", "/rest/api/3/comment/list"), 1);
    // A different key is a different comment.
    run(&jira, "issue.comment", json!({"body": "hello"}), "k-other", &retry, &fresh).await.unwrap();
    assert_eq!(sim.issue("SEC-1").unwrap().comments.len(), 2);
    conformance_done(&sim, 5);
}

#[tokio::test]
async fn comment_on_an_incident_whose_issue_was_never_recorded_finds_it_by_label() {
    let (sim, jira) = setup(Flavor::Cloud).await;
    let c = ctx("inc-find");
    run(&jira, "issue.create", json!({}), "k", &c, &MemoryRefStore::new()).await.unwrap();
    let refs = MemoryRefStore::new();
    let out = run(&jira, "issue.comment", json!({"body": "x"}), "k2", &c, &refs).await.unwrap();
    assert_eq!(out.output["issue"], "SEC-1");
    let e = run(&jira, "issue.comment", json!({"body": "x"}), "k3", &ctx("inc-none"), &refs).await.unwrap_err();
    assert_eq!(e.code(), "no_issue");
    assert!(e.message().contains("run jira.issue.create first"), "{}", e.message());
    conformance_done(&sim, 3);
}

#[tokio::test]
async fn transitions_are_resolved_by_name_at_run_time() {
    let (sim, jira) = setup(Flavor::Cloud).await;
    let refs = MemoryRefStore::new();
    let c = ctx("inc-t");
    run(&jira, "issue.create", json!({}), "k", &c, &refs).await.unwrap();
    // Case-insensitive transition name.
    let out = run(&jira, "issue.transition", json!({"transition": "start progress"}), "t1", &c, &refs).await.unwrap();
    assert_eq!(out.output["transition_id"], "11");
    // Unknown name: a clear error listing what is available from the current status.
    let e = run(&jira, "issue.transition", json!({"transition": "Close Issue"}), "t2", &c, &refs).await.unwrap_err();
    assert_eq!(e.code(), "transition_not_found");
    assert!(!e.is_retryable());
    assert!(e.message().contains("available: \"Stop Progress\", \"Done\""), "{}", e.message());
    assert!(e.message().contains("status \"In Progress\""), "{}", e.message());
    // The name of the target status also works ("To Do" is reached by "Stop Progress").
    let out = run(&jira, "issue.transition", json!({"transition": "To Do"}), "t3", &c, &refs).await.unwrap();
    assert_eq!(out.output["transition"], "Stop Progress");
    // Already in the requested status: nothing to do, not an error.
    sim.set_status("SEC-1", "Done");
    let out = run(&jira, "issue.transition", json!({"transition": "Done"}), "t4", &c, &refs).await.unwrap();
    assert_eq!(out.output["changed"], false);
    // A 409 conflict is resolved again and retried once.
    sim.set_status("SEC-1", "To Do");
    sim.faults().inject(
        Some("POST"),
        Some("/rest/api/3/issue/SEC-1/transitions"),
        Some(1),
        Fault::Status { status: 409, retry_after: None },
    );
    let out = run(&jira, "issue.transition", json!({"transition": "Done"}), "t5", &c, &refs).await.unwrap();
    assert_eq!(out.output["status"], "Done");
    assert_eq!(sim.log().count("POST", "/rest/api/3/issue/SEC-1/transitions"), 4);
    // A bad resolution is Jira's 400, readable.
    sim.set_status("SEC-1", "To Do");
    let e = run(&jira, "issue.transition", json!({"transition": "Done", "resolution": "Fixed"}), "t6", &c, &refs)
        .await
        .unwrap_err();
    assert!(e.message().contains("resolution: Resolution 'Fixed' is not valid"), "{}", e.message());
    conformance_done(&sim, 5);
}

#[tokio::test]
async fn a_transition_whose_answer_was_lost_is_not_repeated() {
    let (sim, jira) = setup(Flavor::Cloud).await;
    let refs = MemoryRefStore::new();
    let c = ctx("inc-tl");
    run(&jira, "issue.create", json!({}), "k", &c, &refs).await.unwrap();
    // The first attempt recorded its intent and sent the POST; Jira applied it; the answer was lost.
    refs.put(
        NS_TRANSITION,
        "t",
        &json!({"state": "sent", "issue": "SEC-1", "transition_id": "31", "to_status": "Done"}),
    )
    .await
    .unwrap();
    sim.set_status("SEC-1", "Done");
    let mut retry = c.clone();
    retry.attempt = 2;
    let out = run(&jira, "issue.transition", json!({"transition": "Done"}), "t", &retry, &refs).await.unwrap();
    assert_eq!(out.output["changed"], true);
    assert_eq!(sim.log().count("POST", "/rest/api/3/issue/SEC-1/transitions"), 0);
    assert_eq!(sim.log().count("GET", "/rest/api/3/issue/SEC-1/transitions"), 0);
    // And once done, repeating the step returns the recorded outcome without calling Jira.
    let n = sim.log().len();
    run(&jira, "issue.transition", json!({"transition": "Done"}), "t", &retry, &refs).await.unwrap();
    assert_eq!(sim.log().len(), n);
}
