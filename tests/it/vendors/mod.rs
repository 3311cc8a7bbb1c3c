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
//!
//! This module holds the shared setup (simulators, config, helpers); the tests are in `flow`
//! (one incident end to end), `resilience` (crashes, 429 storms, refusals), `safety` (untrusted
//! text, secrets in plans) and `catalog` (docs/connectors.md against the action catalog).

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

mod catalog;
mod flow;
mod resilience;
mod safety;

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
