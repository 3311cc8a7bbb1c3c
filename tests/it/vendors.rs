//! floodgate with its five vendor connectors, end to end: `floodgate serve` runs as a child
//! process whose `[connectors.*]` tables point at the Jira, ServiceNow, Slack, Teams and
//! PagerDuty simulators started in this test process, with every secret passed the production
//! way (an environment variable named by an `env:` reference). A signed alert starts the run;
//! the tests then read what each simulator received (method, path, key body fields, auth scheme)
//! and the state it ended in.
//!
//! The simulators are the vendor crates' own (feature `sim`): they refuse what the real APIs
//! refuse, so a passing test here means the requests were ones a vendor accepts. These tests
//! must never loosen a simulator, nor assert less than the exact calls where the calls are
//! deterministic: a duplicate ticket or page is precisely the bug they exist to catch.

use crate::harness::{Backend, Db};
use crate::server::{Server, post_alert};
use base64::Engine as _;
use floodgate::store::{RunFilter, RunSummary, StepExecRow, Store};
use floodgate_jira::Flavor;
use floodgate_jira::sim::{JiraSim, SIM_API_TOKEN, SIM_EMAIL};
use floodgate_pagerduty::sim::{AlertStatus, PagerDutySim, SIM_ROUTING_KEY};
use floodgate_sdk::sim::{CallLog, RecordedCall};
use floodgate_servicenow::sim::{SIM_GROUP_NAME, SIM_GROUP_SYS_ID, SIM_PASSWORD, SIM_USER, ServiceNowSim};
use floodgate_slack::sim::{SIM_BOT_TOKEN, SOC_CHANNEL, SlackSim};
use floodgate_teams::sim::TeamsSim;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// `[server] public_url` of every test server: the link back to floodgate in tickets and chat.
const PUBLIC_URL: &str = "https://floodgate.test.example";

fn fixture(name: &str) -> String {
    let path = crate::common::repo().join("tests/data/vendors").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn alert_fixture(name: &str) -> Value {
    serde_json::from_str(&fixture(name)).expect("fixture alert is JSON")
}

/// The five simulators, each on its own port of 127.0.0.1.
struct Vendors {
    jira: JiraSim,
    servicenow: ServiceNowSim,
    slack: SlackSim,
    teams: TeamsSim,
    pagerduty: PagerDutySim,
}

impl Vendors {
    async fn start() -> Vendors {
        Vendors {
            jira: JiraSim::start(Flavor::Cloud).await.expect("jira simulator"),
            servicenow: ServiceNowSim::start().await.expect("servicenow simulator"),
            slack: SlackSim::start().await.expect("slack simulator"),
            teams: TeamsSim::start().await.expect("teams simulator"),
            pagerduty: PagerDutySim::start().await.expect("pagerduty simulator"),
        }
    }

    /// The `[connectors.*]` tables, as an operator writes them: secrets only by reference.
    fn toml(&self) -> String {
        connector_tables(&self.jira.url(), &self.servicenow.url(), &self.slack.url(), &self.pagerduty.url())
    }

    /// The secrets the tables refer to, with the values the simulators accept.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("FLOODGATE_JIRA_API_TOKEN", SIM_API_TOKEN.to_string()),
            ("FLOODGATE_SERVICENOW_PASSWORD", SIM_PASSWORD.to_string()),
            ("FLOODGATE_SLACK_BOT_TOKEN", SIM_BOT_TOKEN.to_string()),
            ("FLOODGATE_TEAMS_WEBHOOK_URL", self.teams.webhook_url()),
            ("FLOODGATE_PAGERDUTY_ROUTING_KEY", SIM_ROUTING_KEY.to_string()),
        ]
    }

    async fn stop(self) {
        self.jira.stop().await;
        self.servicenow.stop().await;
        self.slack.stop().await;
        self.teams.stop().await;
        self.pagerduty.stop().await;
    }
}

fn connector_tables(jira: &str, servicenow: &str, slack: &str, pagerduty: &str) -> String {
    format!(
        r#"
[connectors.jira]
base_url = "{jira}"
flavor = "cloud"
email = "{SIM_EMAIL}"
api_token = "env:FLOODGATE_JIRA_API_TOKEN"
project = "SEC"
priorities = {{ high = "High", critical = "Highest" }}

[connectors.servicenow]
instance_url = "{servicenow}"
username = "{SIM_USER}"
password = "env:FLOODGATE_SERVICENOW_PASSWORD"
assignment_group = "{SIM_GROUP_NAME}"
category = "network"
rate_limit_per_second = 100

[connectors.slack]
bot_token = "env:FLOODGATE_SLACK_BOT_TOKEN"
default_channel = "{SOC_CHANNEL}"
api_base_url = "{slack}"

[connectors.teams]
webhook_url = "env:FLOODGATE_TEAMS_WEBHOOK_URL"

[connectors.pagerduty]
routing_key = "env:FLOODGATE_PAGERDUTY_ROUTING_KEY"
events_api_url = "{pagerduty}"
max_events_per_minute = 6000
"#
    )
}

/// A floodgate installation for one test: its database, config and playbooks.
struct Floodgate {
    _dir: tempfile::TempDir,
    db: Db,
    config: PathBuf,
    env: Vec<(&'static str, String)>,
}

impl Floodgate {
    async fn new(backend: Backend, vendors: &Vendors, playbooks: &[&str]) -> Floodgate {
        let db = Db::new(backend).await;
        let dir = tempfile::tempdir().expect("temp dir");
        let pbdir = dir.path().join("playbooks");
        for name in playbooks {
            crate::common::write(&pbdir, name, fixture(name));
        }
        let config =
            crate::common::write(dir.path(), "floodgate.toml", server_config(&db.url, &pbdir, &vendors.toml()));
        Floodgate { _dir: dir, db, config, env: vendors.env() }
    }

    /// `floodgate serve`, optionally with failpoints armed.
    fn serve(&self, failpoints: Option<&str>) -> Server {
        let mut env: Vec<(&str, &str)> = self.env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        if let Some(f) = failpoints {
            env.push(("FLOODGATE_FAILPOINTS", f));
        }
        Server::start(&self.config, &env)
    }

    async fn store(&self) -> Store {
        Store::connect(&self.db.url, 2).await.expect("test reads floodgate's database")
    }
}

/// Like `server::config`, plus `public_url` and the connector tables.
fn server_config(db_url: &str, playbooks: &Path, connectors: &str) -> String {
    format!(
        r#"playbooks = "{playbooks}"
[server]
listen = "127.0.0.1:0"
public_url = "{PUBLIC_URL}"
[database]
url = "{db_url}"
[engine]
workers = 2
lease = "2s"
poll_interval = "100ms"
[[sources]]
name = "siem"
format = "generic"
auth = {{ type = "hmac-sha256", secret = "env:FLOODGATE_SIEM_SECRET" }}
{connectors}"#,
        playbooks = playbooks.display()
    )
}

/// Posts a signed alert and returns the webhook's answer (incident_id, run_id, ...).
async fn send_alert(server: &Server, alert: &Value) -> Value {
    let (status, body) =
        post_alert(&crate::common::client(), &server.url, alert).await.expect("floodgate answers the webhook");
    assert_eq!(status, 202, "{body}\n{}", server.stderr());
    body
}

/// Waits until `n` runs exist and all have finished.
async fn finished_runs(store: &Store, n: usize, server: &Server, within: Duration) -> Vec<RunSummary> {
    let deadline = Instant::now() + within;
    loop {
        let runs = store.list_runs(&RunFilter { limit: 1000, ..Default::default() }).await.expect("list runs");
        if runs.len() >= n && runs.iter().all(|r| r.finished_at.is_some()) {
            return runs;
        }
        assert!(
            Instant::now() < deadline,
            "runs did not finish: {:?}\n{}",
            runs.iter().map(|r| (&r.id, &r.state, &r.waiting_for, &r.error)).collect::<Vec<_>>(),
            server.stderr()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn step<'a>(steps: &'a [StepExecRow], id: &str) -> &'a StepExecRow {
    steps.iter().find(|s| s.step_id == id).unwrap_or_else(|| panic!("no step {id}: {steps:?}"))
}

/// `METHOD /path` of every call, in order.
fn calls(log: &CallLog) -> Vec<String> {
    log.calls().iter().map(|c| format!("{} {}", c.method, c.path)).collect()
}

fn basic(user: &str, secret: &str) -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("{user}:{secret}")))
}

/// Every call carried exactly this `Authorization` header (`None`: no header at all).
fn assert_auth(vendor: &str, log: &CallLog, expected: Option<&str>) {
    for c in log.calls() {
        assert_eq!(c.header("authorization"), expected, "{vendor}: {} {} sent the wrong credentials", c.method, c.path);
    }
}

fn body(c: &RecordedCall) -> Value {
    c.json().unwrap_or_else(|| panic!("{} {} has no JSON body", c.method, c.path))
}

/// Every string anywhere in a JSON value.
fn strings(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(m) => m.values().for_each(|x| strings(x, out)),
        _ => {}
    }
}

fn all_text(v: &Value) -> String {
    let mut out = Vec::new();
    strings(v, &mut out);
    out.join("\n")
}

/// The Teams card's actions: every object whose `type` starts with `Action.`.
fn card_actions(v: &Value, out: &mut Vec<Value>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| card_actions(x, out)),
        Value::Object(m) => {
            if m.get("type").and_then(Value::as_str).is_some_and(|t| t.starts_with("Action.")) {
                out.push(v.clone());
            }
            m.values().for_each(|x| card_actions(x, out));
        }
        _ => {}
    }
}

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

/// docs/connectors.md lists every action of the compiled-in catalog, with its risk class,
/// revertibility and summary exactly as the connectors declare them. On a mismatch it prints
/// the rows the catalog gives (the idempotency column is written by hand).
#[test]
fn the_connectors_index_matches_the_catalog() {
    let doc = std::fs::read_to_string(crate::common::repo().join("docs/connectors.md")).expect("docs/connectors.md");
    // Action rows: the first cell is a `<connector>.<action>` name.
    let rows: Vec<&str> =
        doc.lines().filter(|l| l.starts_with("| `") && l.split('|').nth(1).is_some_and(|c| c.contains('.'))).collect();
    let mut wanted = Vec::new();
    let mut wrong = Vec::new();
    for kind in floodgate::connectors::kinds() {
        for a in kind.actions() {
            let name = format!("{}.{}", kind.name(), a.name);
            let head = format!("| `{name}` | {} | {} |", a.risk, if a.revertible { "yes" } else { "no" });
            // Markdown would read `<name>` as an HTML tag: the page escapes it.
            let summary = a.summary.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
            let tail = format!(" | {summary} |");
            let row = rows.iter().find(|r| r.starts_with(&format!("| `{name}` |")));
            if !row.is_some_and(|r| r.starts_with(&head) && r.ends_with(&tail)) {
                wrong.push(format!("{name}: found {row:?}"));
            }
            let handle = if a.pure { "pure".to_string() } else { a.idempotency.clone() };
            wanted.push(format!("{head} {handle}{tail}"));
        }
    }
    assert!(
        wrong.is_empty() && rows.len() == wanted.len(),
        "docs/connectors.md disagrees with the catalog ({} rows for {} actions):\n{}\n\nThe catalog's rows:\n{}",
        rows.len(),
        wanted.len(),
        wrong.join("\n"),
        wanted.join("\n")
    );
}
