//! Crashes, 429 storms and vendor refusals: every incident still ends with exactly one ticket,
//! page and message, and refusals fail the step without retries.

use super::*;

/// A generic alert for incident `n` (each one its own incident: the playbook has no grouping).
fn numbered_alert(n: usize) -> Value {
    json!({"id": format!("evt-5v-{n}"), "title": format!("Bulk export #{n}"), "rule": "bulk-export",
           "severity": "high", "confidence": 0.9, "description": format!("export number {n}"),
           "entities": {"user": format!("user{n}@corp.example"), "source_ip": "203.0.113.66"}})
}

/// Successful (simulator-answered 2xx) calls whose method matches and whose path passes `path`.
fn ok_calls(log: &CallLog, method: &str, path: impl Fn(&str) -> bool) -> usize {
    log.calls()
        .iter()
        .filter(|c| c.method == method && path(&c.path) && !c.faulted && (200..300).contains(&c.status))
        .count()
}

fn rate_limited(log: &CallLog) -> usize {
    log.calls().iter().filter(|c| c.faulted && c.status == 429).count()
}

/// Each incident has exactly one Jira issue (with one comment, in Done), one ServiceNow incident
/// (with one work note), one Slack message (updated in place), one resolved PagerDuty alert, and
/// at least one Teams card; no vendor holds anything for an incident floodgate does not know.
fn assert_exactly_one_of_each(v: &Vendors, incidents: &[String]) {
    let messages = v.slack.messages(SOC_CHANNEL);
    let cards = v.teams.cards();
    for inc in incidents {
        let label = format!("floodgate-{inc}");
        let issues = v.jira.issues_with_label(&label);
        assert_eq!(
            issues.len(),
            1,
            "{inc}: one Jira issue, got {:?}",
            issues.iter().map(|i| &i.key).collect::<Vec<_>>()
        );
        assert_eq!(issues[0].status, "Done", "{inc}");
        assert_eq!(issues[0].comments.len(), 1, "{inc}: one Jira comment");
        let records: Vec<_> =
            v.servicenow.incidents().into_iter().filter(|r| r.get("correlation_id") == label).collect();
        assert_eq!(records.len(), 1, "{inc}: one ServiceNow incident");
        assert_eq!(records[0].work_notes().len(), 1, "{inc}: one work note: {:?}", records[0].work_notes());
        let mine: Vec<_> = messages.iter().filter(|m| all_text(&json!(m.blocks)).contains(inc.as_str())).collect();
        assert_eq!(mine.len(), 1, "{inc}: one Slack message");
        assert!(all_text(&json!(mine[0].blocks)).contains("Contained: sessions of"), "{inc}: the message was updated");
        let alerts = v.pagerduty.alerts_for(&format!("floodgate:incident:{inc}"));
        assert_eq!(alerts.len(), 1, "{inc}: one PagerDuty alert");
        assert_eq!(alerts[0].status, AlertStatus::Resolved, "{inc}");
        assert!(cards.iter().any(|c| all_text(c).contains(inc.as_str())), "{inc}: a Teams card");
    }
    assert_eq!(v.jira.issues().len(), incidents.len(), "no stray Jira issues");
    assert_eq!(v.servicenow.incidents().len(), incidents.len(), "no stray ServiceNow incidents");
    assert_eq!(messages.len(), incidents.len(), "no stray Slack messages");
    assert_eq!(v.pagerduty.alerts().len(), incidents.len(), "no stray PagerDuty alerts");
}

/// Sends every alert still in `pending` until the server stops answering; the answered ones
/// move to `accepted`. A post that got no answer is sent again later: intake dedups it.
async fn send_pending(server: &Server, pending: &mut Vec<Value>, accepted: &mut Vec<Value>) {
    let client = crate::common::client();
    while let Some(alert) = pending.first().cloned() {
        match post_alert(&client, &server.url, &alert).await {
            Some((202, body)) => {
                pending.remove(0);
                if !accepted.iter().any(|a| a["incident_id"] == body["incident_id"]) {
                    accepted.push(body);
                }
            }
            Some((status, body)) => panic!("unexpected {status} {body}"),
            None => return,
        }
    }
}

fn died(server: &mut Server, point: &str) {
    assert!(server.wait_exit(Duration::from_secs(40)).is_some(), "failpoint {point} never fired:\n{}", server.stderr());
    assert!(server.stderr().contains(&format!("failpoint {point}")), "{}", server.stderr());
}

/// floodgate is killed right after vendor calls (before it records them) and right before
/// others, restarted each time; once with its vendor references wiped, which is what a crash
/// between a vendor's answer and the reference's commit leaves behind. Every incident still
/// ends with exactly one ticket, ServiceNow incident, Slack message and PagerDuty alert.
async fn crash_and_retry(backend: Backend) {
    let v = Vendors::start().await;
    let fg = Floodgate::new(backend, &v, &["five-vendors.yaml"]).await;
    let store = fg.store().await;
    // The vendor acted, floodgate has neither the outcome nor the reference: the connectors
    // must find their own work again at the vendor (label search, correlation_id, history
    // marker, comment property, journal marker, dedup key).
    let wipe_refs = async || store.all_dynamic("DELETE FROM external_refs".into(), vec![]).await.expect("wipe refs");
    let mut pending: Vec<Value> = (0..3).map(numbered_alert).collect();
    let mut accepted = Vec::new();

    // One incident alone first, so the first effectful step is known: Jira has the issue,
    // floodgate dies before recording it, and loses the reference.
    let mut first = vec![pending.remove(0)];
    let mut s = fg.serve(Some("step.before_outcome=kill@1"));
    send_pending(&s, &mut first, &mut accepted).await;
    died(&mut s, "step.before_outcome");
    wipe_refs().await;
    pending.splice(0..0, first);

    let mut s = fg.serve(Some("step.after_intent=kill@4"));
    send_pending(&s, &mut pending, &mut accepted).await;
    died(&mut s, "step.after_intent");

    let mut s = fg.serve(Some("step.before_outcome=kill@5"));
    send_pending(&s, &mut pending, &mut accepted).await;
    died(&mut s, "step.before_outcome");
    wipe_refs().await;

    let s = fg.serve(None);
    send_pending(&s, &mut pending, &mut accepted).await;
    assert!(pending.is_empty());
    let runs = finished_runs(&store, 3, &s, Duration::from_secs(90)).await;
    assert_eq!(runs.len(), 3, "one run per incident");
    assert!(runs.iter().all(|r| r.state == "succeeded"), "{runs:?}\n{}", s.stderr());
    let incidents: Vec<String> = accepted.iter().map(|a| a["incident_id"].as_str().expect("id").to_string()).collect();
    assert_eq!(incidents.len(), 3);

    let mut resumed = 0;
    for r in &runs {
        let steps = store.step_executions(&r.id).await.expect("steps");
        resumed += steps.iter().filter(|s| s.attempt > 1).count();
        if r.incident_id == incidents[0] {
            let ticket = step(&steps, "ticket");
            let out = ticket.output.clone().unwrap_or_default();
            assert_eq!(
                (ticket.attempt, &out["created"], &out["found_by"]),
                (2, &json!(false), &json!("search")),
                "{out}"
            );
        }
        // A webhook post has no dedup handle: a second card is possible only for a card step
        // that ran again (the documented limit of Teams workflows).
        let card = step(&steps, "card");
        let cards = v.teams.cards().iter().filter(|c| all_text(c).contains(&r.incident_id)).count();
        assert!(
            cards == 1 || (card.attempt > 1 && cards == 2),
            "{}: {cards} cards after {} attempts",
            r.id,
            card.attempt
        );
    }
    assert!(resumed > 0, "the crashes interrupted no step");
    assert_exactly_one_of_each(&v, &incidents);
    assert_eq!(ok_calls(v.jira.log(), "POST", |p| p == "/rest/api/3/issue"), 3, "one Jira create per incident");
    assert_eq!(ok_calls(v.servicenow.log(), "POST", |p| p == "/api/now/table/incident"), 3);
    assert_eq!(ok_calls(v.slack.log(), "POST", |p| p == "/api/chat.postMessage"), 3);
    store.close().await;
    drop(s);
    v.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_and_retry_sqlite() {
    crash_and_retry(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_and_retry_postgres() {
    crash_and_retry(Backend::Postgres).await;
}

/// Every vendor answers every second request with 429 and `Retry-After: 1`: the runs wait and
/// finish, and nothing is lost or done twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_429_storm_at_every_vendor_is_ridden_out() {
    let v = Vendors::start().await;
    v.jira.faults().rate_limit_every(2, 1, None);
    v.servicenow.faults().rate_limit_every(2, 1, None);
    v.slack.faults().rate_limit_every(2, 1, None);
    v.teams.faults().rate_limit_every(2, 1, None);
    v.pagerduty.faults().rate_limit_every(2, 1, None);
    let fg = Floodgate::new(Backend::Sqlite, &v, &["five-vendors.yaml"]).await;
    let s = fg.serve(None);
    let mut incidents = Vec::new();
    for n in 0..2 {
        incidents.push(send_alert(&s, &numbered_alert(n)).await["incident_id"].as_str().expect("id").to_string());
    }
    let store = fg.store().await;
    let runs = finished_runs(&store, 2, &s, Duration::from_secs(120)).await;
    assert!(runs.iter().all(|r| r.state == "succeeded"), "{runs:?}\n{}", s.stderr());
    for (name, log) in [
        ("jira", v.jira.log()),
        ("servicenow", v.servicenow.log()),
        ("slack", v.slack.log()),
        ("teams", v.teams.log()),
        ("pagerduty", v.pagerduty.log()),
    ] {
        assert!(rate_limited(log) > 0, "{name} never rate-limited floodgate: {:?}", calls(log));
    }
    assert_exactly_one_of_each(&v, &incidents);
    assert_eq!(v.teams.cards().len(), 2, "one Teams card per incident");
    // Every write took effect once: a 429 is a request the vendor did not process.
    assert_eq!(ok_calls(v.jira.log(), "POST", |p| p == "/rest/api/3/issue"), 2);
    assert_eq!(ok_calls(v.jira.log(), "POST", |p| p.ends_with("/comment")), 2);
    assert_eq!(ok_calls(v.jira.log(), "POST", |p| p.ends_with("/transitions")), 2);
    assert_eq!(ok_calls(v.servicenow.log(), "POST", |p| p == "/api/now/table/incident"), 2);
    assert_eq!(ok_calls(v.servicenow.log(), "PATCH", |p| p.starts_with("/api/now/table/incident/")), 2);
    assert_eq!(ok_calls(v.slack.log(), "POST", |p| p == "/api/chat.postMessage"), 2);
    assert_eq!(ok_calls(v.slack.log(), "POST", |p| p == "/api/chat.update"), 2);
    assert_eq!(ok_calls(v.pagerduty.log(), "POST", |p| p == "/v2/enqueue"), 4);
    store.close().await;
    drop(s);
    v.stop().await;
}

/// 4xx answers (Slack: `ok:false`) are final: one request, no retry although the step allows
/// retries, and the step's error names the vendor's reason.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_refusals_are_not_retried_and_fail_the_step_clearly() {
    let v = Vendors::start().await;
    // Teams and PagerDuty accept everything the connectors can send, so their refusal is
    // injected (with each vendor's own 400 body); the others refuse real mistakes.
    v.teams.faults().fail_next(1, 400, None);
    v.pagerduty.faults().fail_next(1, 400, None);
    let fg = Floodgate::new(Backend::Sqlite, &v, &["refusals.yaml"]).await;
    let s = fg.serve(None);
    let accepted = send_alert(&s, &alert_fixture("alert.json")).await;
    let store = fg.store().await;
    let runs = finished_runs(&store, 1, &s, Duration::from_secs(60)).await;
    assert_eq!(runs[0].state, "failed", "{runs:?}");
    let run_error = runs[0].error.clone().unwrap_or_default();
    assert!(run_error.starts_with("step page failed:"), "{run_error}");
    let steps = store.step_executions(accepted["run_id"].as_str().expect("run id")).await.expect("steps");
    let failed = |id: &str, code: &str, says: &str| {
        let st = step(&steps, id);
        assert_eq!(st.state.as_str(), "failed", "{st:?}");
        assert_eq!(st.error_code.as_deref(), Some(code), "{st:?}");
        assert_eq!(st.attempt, 1, "{id} was retried: {st:?}");
        let error = st.error.clone().unwrap_or_default();
        assert!(error.contains(says), "{id}: {error:?} should say {says:?}");
    };
    failed("ticket", "http_400", "Urgent");
    failed("sn_resolve", "http_403", "Data Policy Exception");
    failed("chat", "is_archived", "is_archived");
    failed("card", "http_400", "400");
    failed("page", "invalid_event", "400");
    assert_eq!(step(&steps, "sn_incident").state.as_str(), "succeeded");
    assert!(run_error.contains(step(&steps, "page").error.as_deref().unwrap_or("?")), "{run_error}");

    // Exactly one request per refusal.
    assert_eq!(v.jira.log().count("POST", "/rest/api/3/issue"), 1);
    assert!(v.jira.issues().is_empty());
    assert_eq!(v.servicenow.log().calls().iter().filter(|c| c.method == "PATCH").count(), 1);
    assert_eq!(v.servicenow.incidents()[0].work_notes().len(), 0, "the refused update wrote nothing");
    assert_eq!(v.slack.log().count("POST", "/api/chat.postMessage"), 1);
    assert!(v.slack.messages(floodgate_slack::sim::ARCHIVED_CHANNEL).is_empty());
    assert_eq!(calls(v.teams.log()).len(), 1);
    assert!(v.teams.cards().is_empty());
    assert_eq!(calls(v.pagerduty.log()).len(), 1);
    assert!(v.pagerduty.alerts().is_empty());
    store.close().await;
    drop(s);
    v.stop().await;
}
