//! 429 storms, 4xx never retried, readable error bodies, 5xx retried.

use super::*;

#[tokio::test]
async fn rides_out_a_429_storm_without_loss_or_duplicates() {
    let (sim, jira) = setup(Flavor::Cloud).await;
    let refs = MemoryRefStore::new();
    let c = ctx("inc-storm");
    // Every other call is throttled, then a burst longer than the in-request retries.
    sim.faults().rate_limit_every(2, 0, None);
    run_like_engine(&jira, "issue.create", json!({}), "k-create", &c, &refs).await.0.unwrap();
    for i in 0..5 {
        let (r, _) = run_like_engine(
            &jira,
            "issue.comment",
            json!({"body": format!("update {i}")}),
            &format!("k-c{i}"),
            &c,
            &refs,
        )
        .await;
        r.unwrap();
    }
    sim.faults().clear();
    sim.faults().rate_limit_next(6, 0, Some("/rest/api/3/issue/SEC-1/transitions"));
    let (r, attempts) =
        run_like_engine(&jira, "issue.transition", json!({"transition": "Done"}), "k-tr", &c, &refs).await;
    r.unwrap();
    assert!(attempts >= 2, "the storm outlasted in-request retries and went back to the engine");
    let issue = sim.issue("SEC-1").unwrap();
    assert_eq!(sim.issues().len(), 1);
    assert_eq!(issue.comments.len(), 5, "every comment exactly once");
    assert_eq!(issue.status, "Done");
    let throttled = sim.log().calls().iter().filter(|c| c.status == 429).count();
    assert!(throttled >= 8, "{throttled}");
    // A pause longer than the in-request limit goes back to the engine with Jira's reason and wait.
    sim.faults().rate_limit_next(10, 60, None);
    let e = run(&jira, "issue.comment", json!({"body": "x"}), "k-late", &c, &refs).await.unwrap_err();
    assert!(e.is_retryable());
    assert_eq!(e.code(), "http_429");
    assert_eq!(e.retry_after_hint(), Some(Duration::from_secs(60)));
    assert!(e.message().contains("RateLimit-Reason: jira-burst-based"), "{}", e.message());
    sim.faults().clear();
    conformance_done(&sim, 8);
}

#[tokio::test]
async fn bad_requests_are_never_retried_and_errors_are_readable() {
    let (sim, jira) = setup(Flavor::Cloud).await;
    let refs = MemoryRefStore::new();
    let c = ctx("inc-bad");
    let e =
        run(&jira, "issue.create", json!({"priority": "Urgent", "fields": {"customfield_99999": "x"}}), "k", &c, &refs)
            .await
            .unwrap_err();
    assert!(!e.is_retryable());
    assert_eq!(e.code(), "http_400");
    assert!(e.message().contains("priority: Priority name 'Urgent' is not valid"), "{}", e.message());
    assert!(e.message().contains("customfield_99999: Field 'customfield_99999' cannot be set"), "{}", e.message());
    assert_eq!(sim.log().count("POST", "/rest/api/3/issue"), 1, "400 is not retried");

    let e = run(&jira, "issue.create", json!({"project": "NOPE"}), "k", &c, &refs).await.unwrap_err();
    assert!(e.message().contains("project: valid project is required"), "{}", e.message());

    let e = run(&jira, "issue.comment", json!({"body": "x", "issue": "SEC-999"}), "k", &c, &refs).await.unwrap_err();
    assert_eq!(e.code(), "http_404");
    assert!(e.message().contains("Issue does not exist or you do not have permission to see it."), "{}", e.message());

    let e =
        run(&jira, "issue.comment", json!({"body": "x", "issue": "../../admin"}), "k", &c, &refs).await.unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    let e = run(&jira, "issue.create", json!({"fields": {"labels": ["x"]}}), "k", &c, &refs).await.unwrap_err();
    assert_eq!(e.code(), "invalid_input");
    let e = run(&jira, "issue.create", json!({"colour": "red"}), "k", &c, &refs).await.unwrap_err();
    assert_eq!(e.code(), "invalid_input");

    // Wrong credentials: 401, not retried, and the token never appears in the message.
    let mut bad = config(&sim);
    bad["api_token"] = json!(secret_file("wrong", "wrong-token-value"));
    let wrong = Jira::from_config(&bad, fast()).unwrap();
    let before = sim.log().len();
    let e = run(&wrong, "issue.create", json!({}), "k", &ctx("inc-auth"), &refs).await.unwrap_err();
    assert_eq!(e.code(), "http_401");
    assert!(e.message().contains("check the credentials"), "{}", e.message());
    assert!(!e.message().contains("wrong-token-value"));
    assert_eq!(sim.log().len(), before + 1, "401 is not retried");

    // 5xx on a search is retried in-request (searches are safe to replay).
    sim.faults().fail_next(2, 503, Some("/rest/api/3/search/jql"));
    run(&jira, "issue.create", json!({}), "k", &ctx("inc-5xx"), &refs).await.unwrap();
    conformance_done(&sim, 3);
}

#[tokio::test]
async fn timeouts_are_retried_safely() {
    let sim = JiraSim::start(Flavor::Cloud).await.unwrap();
    let mut cfg = config(&sim);
    cfg["timeout_seconds"] = json!(1);
    let jira = Jira::from_config(&cfg, fast()).unwrap();
    let refs = MemoryRefStore::new();
    // A search that hangs is replayed in-request (it changes nothing).
    sim.faults().hang_next(1, Some("/rest/api/3/search/jql"));
    // A create that hangs has an unknown outcome: it is not replayed in-request; the engine's
    // retry searches by label first, then creates (the simulator never saw the first one).
    sim.faults().hang_next(1, Some("/rest/api/3/issue"));
    let (r, attempts) = run_like_engine(&jira, "issue.create", json!({}), "k", &ctx("inc-hang"), &refs).await;
    let out = r.unwrap();
    assert_eq!(attempts, 2, "the hung create went back to the engine");
    assert_eq!(out.output["created"], true);
    assert_eq!(sim.issues().len(), 1);
    assert_eq!(sim.log().successful("POST", "/rest/api/3/search/jql").len(), 2);
    conformance_done(&sim, 3);
}

#[tokio::test]
async fn simulator_search_filters_projects_and_label_lists_and_pages() {
    let (sim, jira) = setup(Flavor::Cloud).await;
    for i in 0..3 {
        run(&jira, "issue.create", json!({}), "k", &ctx(&format!("inc-{i}")), &MemoryRefStore::new()).await.unwrap();
    }
    let http = HttpClient::new(fast());
    let search = |body: Value| {
        Request::post(format!("{}/rest/api/3/search/jql", sim.url()))
            .basic(SIM_EMAIL, &floodgate_sdk::Secret::new(SIM_API_TOKEN))
            .json(body)
    };
    let jql = r#"project = SEC AND labels in ("floodgate-inc-0", "floodgate-inc-2") ORDER BY created ASC"#;
    let first: Value = http.send(&search(json!({"jql": jql, "maxResults": 1}))).await.unwrap().json().unwrap();
    assert_eq!(first["issues"], json!([{"id": "10001"}]), "ids only by default");
    assert_eq!(first["isLast"], false);
    let token = first["nextPageToken"].as_str().unwrap();
    let second: Value = http
        .send(&search(json!({"jql": jql, "maxResults": 1, "nextPageToken": token, "fields": ["labels"]})))
        .await
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(second["issues"][0]["key"], "SEC-3");
    assert_eq!(second["issues"][0]["fields"], json!({"labels": ["floodgate-inc-2"]}));
    assert_eq!(second["isLast"], true);
    assert!(second.get("nextPageToken").is_none());
    let r = http.send(&search(json!({"jql": "project = NOPE"}))).await.unwrap();
    assert_eq!(r.status, 400);
    assert!(r.text().contains("The value 'NOPE' does not exist for the field 'project'."));
    let r = http.send(&search(json!({"jql": "order by key desc"}))).await.unwrap();
    assert_eq!(r.status, 400, "unbounded queries are refused");
    let r = http.send(&search(json!({"jql": "labels = x", "startAt": 0}))).await.unwrap();
    assert_eq!(r.status, 400, "the /search/jql bean has no startAt");
    let old = Request::post(format!("{}/rest/api/3/search", sim.url()))
        .basic(SIM_EMAIL, &floodgate_sdk::Secret::new(SIM_API_TOKEN))
        .json(json!({"jql": "labels = x"}));
    assert_eq!(http.send(&old).await.unwrap().status, 410, "Cloud removed the old search");
}
