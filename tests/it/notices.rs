//! Approval notices and Slack buttons, against the Slack, Teams and PagerDuty simulators and a
//! real HTTP server: the request posted with buttons, correctly signed, badly signed and stale
//! button presses, unknown and unauthorised Slack users, double clicks, the message updated to
//! show who decided, escalation mentions and pages, Teams cards with per-approver links, and a
//! failing channel retried without reposting to the others.

use crate::common::write;
use crate::harness::{Db, Harness, NowPub};
use crate::on_both_databases;
use floodgate::config::Config;
use floodgate::engine::Directory;
use floodgate::notify::Notifier;
use floodgate::store::{ApprovalState, RunState, Wait};
use floodgate_pagerduty::sim::{AlertStatus, PagerDutySim, SIM_ROUTING_KEY};
use floodgate_slack::sim::{SIM_BOT_TOKEN, SIM_SIGNING_SECRET, SOC_CHANNEL, SlackSim};
use floodgate_teams::sim::TeamsSim;
use serde_json::{Value, json};

const PLAYBOOK: &str = r#"
id: notices
name: Block with notices
match: {rule: notices}
steps:
  containment:
    - id: block
      name: Block the source IP
      action: test.contain
      approval: {groups: [oncall], timeout: 30m, on_timeout: escalate, escalate_to: [leads]}
      with: {target: "{{ alert.entities.source_ip }}"}
"#;

const ALICE: &str = "U0ALICE001";
const BOB: &str = "U0BOB00001";
const CAROL: &str = "U0CAROL001";

struct Setup {
    h: Harness,
    url: String,
    notifier: Notifier,
    slack: SlackSim,
    teams: TeamsSim,
    pd: PagerDutySim,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

fn config(dir: &std::path::Path, slack: &SlackSim, teams: &TeamsSim, pd: &PagerDutySim) -> Config {
    let f = |name: &str, value: &str| write(dir, name, value).display().to_string();
    let text = format!(
        r#"
[server]
public_url = "https://floodgate.example"
secret = "file:{link}"

[groups]
oncall = ["alice", "bob", "dana"]
leads = ["carol"]

[[identities]]
id = "alice"
name = "Alice Adams"
email = "alice@corp.example"
slack_user_id = "{ALICE}"

[[identities]]
id = "bob"
name = "Bob Brown"
email = "bob@corp.example"
slack_user_id = "{BOB}"

[[identities]]
id = "carol"
name = "Carol Chen"
slack_user_id = "{CAROL}"

[[identities]]
id = "dana"
name = "Dana Diaz"

[approvals]
slack_channel = "{SOC_CHANNEL}"
teams = true
pagerduty_on_escalation = true

[connectors.slack]
bot_token = "file:{bot}"
signing_secret = "file:{signing}"
api_base_url = "{slack_url}"

[connectors.teams]
webhook_url = "file:{webhook}"

[connectors.pagerduty]
routing_key = "file:{routing}"
events_api_url = "{pd_url}"
"#,
        link = f("link", "notices-link-signing-key-0123456789abcdef"),
        bot = f("bot", SIM_BOT_TOKEN),
        signing = f("signing", SIM_SIGNING_SECRET),
        webhook = f("webhook", &teams.webhook_url()),
        routing = f("routing", SIM_ROUTING_KEY),
        slack_url = slack.url(),
        pd_url = pd.url(),
    );
    Config::parse(&text, &dir.join("floodgate.toml")).expect("test config parses")
}

impl Setup {
    async fn start(db: Db) -> Setup {
        let (slack, teams, pd) = (
            SlackSim::start().await.expect("slack simulator"),
            TeamsSim::start().await.expect("teams simulator"),
            PagerDutySim::start().await.expect("pagerduty simulator"),
        );
        let dir = tempfile::tempdir().unwrap();
        let cfg = config(dir.path(), &slack, &teams, &pd);
        let h = Harness::with_directory(db, &[PLAYBOOK], Directory::from_config(&cfg)).await;
        let state = floodgate::api::AppState::from_config(&cfg, h.engine.clone(), h.intake.clone()).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(axum::serve(listener, floodgate::api::router(state)).into_future());
        let notifier = Notifier::from_config(&cfg, h.engine.clone()).unwrap().expect("three channels configured");
        assert_eq!(notifier.channel_names(), ["slack", "teams", "pagerduty"]);
        floodgate_sdk::http::install_crypto_provider();
        Setup { h, url, notifier, slack, teams, pd, http: reqwest::Client::new(), _dir: dir }
    }

    /// An alert aimed at Bob; returns (run id, approval id) once the run waits.
    async fn waiting_run(&self, id: &str) -> (String, String) {
        let alert = json!({"id": id, "rule": "notices", "title": "Impossible travel <!channel>", "severity": "high",
                           "confidence": 0.4, "entities": {"source_ip": "203.0.113.66", "user": "bob@corp.example"}});
        let run = self.h.alert(alert).await.run_id.expect("the playbook matched");
        self.h.settle().await;
        match self.h.run(&run).await.state {
            RunState::Waiting(Wait::Approval(a)) => (run, a),
            other => panic!("expected a wait for approval, got {other:?}"),
        }
    }

    fn now_s(&self) -> i64 {
        self.h.clock.now_ms_pub() / 1000
    }

    /// Posts an interaction body with the given headers; returns (status, JSON body or Null).
    async fn press_raw(&self, body: Vec<u8>, ts: Option<String>, sig: Option<String>) -> (u16, Value) {
        let mut rb = self
            .http
            .post(format!("{}/slack/interactions", self.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(ts) = ts {
            rb = rb.header("x-slack-request-timestamp", ts);
        }
        if let Some(sig) = sig {
            rb = rb.header("x-slack-signature", sig);
        }
        let r = rb.send().await.expect("floodgate answers");
        let status = r.status().as_u16();
        let text = r.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn payload(&self, user: &str, decision: &str, approval: &str, ts: &str) -> Value {
        let action = if decision == "approve" { "floodgate_approve" } else { "floodgate_deny" };
        floodgate_slack::sim::block_actions_payload(
            user,
            SOC_CHANNEL,
            ts,
            action,
            &format!("{decision}:{approval}"),
            &self.slack.response_url(&format!("{user}-{decision}")),
        )
    }

    /// A press signed now with the app's signing secret.
    async fn press(&self, user: &str, decision: &str, approval: &str, ts: &str) -> u16 {
        let req = floodgate_slack::sim::signed_interaction(
            SIM_SIGNING_SECRET,
            self.now_s(),
            &self.payload(user, decision, approval, ts),
        );
        self.press_raw(req.body, Some(req.timestamp), Some(req.signature)).await.0
    }

    /// Ephemeral replies sent to the `response_url` of `id`, waiting briefly for them (they
    /// are sent after Slack got its answer).
    async fn replies(&self, id: &str, n: usize) -> Vec<String> {
        for _ in 0..100 {
            let got: Vec<String> = self
                .slack
                .responses()
                .into_iter()
                .filter(|(rid, _)| rid == id)
                .map(|(_, v)| v["text"].as_str().unwrap_or_default().to_string())
                .collect();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        panic!("no reply for {id}; replies so far: {:?}", self.slack.responses());
    }

    async fn approval(&self, id: &str) -> (ApprovalState, usize) {
        let a = self.h.store.approval(id).await.unwrap().unwrap();
        (a.state, self.h.store.approval_votes(id).await.unwrap().len())
    }

    async fn event_kinds(&self, run: &str) -> Vec<String> {
        let r = self.h.run(run).await;
        self.h.events(&r).await
    }
}

fn block_text(blocks: &[Value]) -> String {
    serde_json::to_string(blocks).unwrap()
}

on_both_databases!(
    slack_buttons_decide_once_for_linked_approvers_and_the_message_shows_who,
    escalation_mentions_the_next_group_pages_and_resolves_the_page,
);

async fn slack_buttons_decide_once_for_linked_approvers_and_the_message_shows_who(db: Db) {
    let s = Setup::start(db).await;
    let (run, apr) = s.waiting_run("n-1").await;
    assert_eq!(s.notifier.tick().await.unwrap(), 3, "slack, teams and pagerduty each looked at the request");

    // Slack: one request with Approve / Deny carrying the approval id; alert text escaped.
    let messages = s.slack.messages(SOC_CHANNEL);
    assert_eq!(messages.len(), 1);
    let msg = &messages[0];
    let blocks = block_text(&msg.blocks);
    assert!(blocks.contains(&format!("approve:{apr}")) && blocks.contains(&format!("deny:{apr}")), "{blocks}");
    assert!(blocks.contains("test.contain") && blocks.contains("203.0.113.66"), "plan and evidence shown: {blocks}");
    assert!(!blocks.contains("<!channel>"), "alert text cannot ping the channel: {blocks}");
    assert!(msg.text.as_deref().is_some_and(|t| t.starts_with("Approval needed")), "{:?}", msg.text);
    // Teams: one card, one signed link per eligible approver; Bob is the target and gets none.
    let cards = s.teams.cards();
    assert_eq!(cards.len(), 1);
    let card = &cards[0];
    floodgate_teams::check_webhook_card(card).expect("a card a webhook can carry");
    let links: Vec<(String, String)> = card["actions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["title"].as_str().unwrap().to_string(), a["url"].as_str().unwrap().to_string()))
        .collect();
    let reviewers: Vec<&str> =
        links.iter().filter(|(t, _)| t.starts_with("Review as")).map(|(t, _)| t.as_str()).collect();
    assert_eq!(reviewers, ["Review as Alice Adams", "Review as Dana Diaz"]);
    assert!(links.iter().all(|(_, u)| u.starts_with("https://floodgate.example/")), "{links:?}");
    // Dana's link opens her approval page on floodgate (signed with the configured key).
    let dana = &links.iter().find(|(t, _)| t == "Review as Dana Diaz").unwrap().1;
    let page = s.http.get(dana.replace("https://floodgate.example", &s.url)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(
        html.contains("approval link for <strong>Dana Diaz</strong>") && html.contains("contain 203.0.113.66"),
        "{html}"
    );
    // PagerDuty pages only on escalation.
    assert!(s.pd.alerts().is_empty());
    assert_eq!(s.notifier.tick().await.unwrap(), 0, "nothing is posted twice");

    // Badly signed, stale, unsigned: 401 with a JSON body; nothing changes.
    let good = floodgate_slack::sim::signed_interaction(
        SIM_SIGNING_SECRET,
        s.now_s(),
        &s.payload(ALICE, "approve", &apr, &msg.ts),
    );
    let forged = floodgate_slack::sim::signed_interaction(
        "not-the-secret",
        s.now_s(),
        &s.payload(ALICE, "approve", &apr, &msg.ts),
    );
    let (st, body) = s.press_raw(forged.body, Some(forged.timestamp), Some(forged.signature)).await;
    assert_eq!((st, body["error"]["code"].as_str()), (401, Some("signature_mismatch")), "{body}");
    let mut tampered = good.body.clone();
    tampered.extend_from_slice(b"&x=1");
    let (st, body) = s.press_raw(tampered, Some(good.timestamp.clone()), Some(good.signature.clone())).await;
    assert_eq!((st, body["error"]["code"].as_str()), (401, Some("signature_mismatch")), "{body}");
    let stale = floodgate_slack::sim::signed_interaction(
        SIM_SIGNING_SECRET,
        s.now_s() - 301,
        &s.payload(ALICE, "approve", &apr, &msg.ts),
    );
    let (st, body) = s.press_raw(stale.body, Some(stale.timestamp), Some(stale.signature)).await;
    assert_eq!((st, body["error"]["code"].as_str()), (401, Some("stale_timestamp")), "{body}");
    let (st, body) = s.press_raw(good.body.clone(), None, None).await;
    assert_eq!((st, body["error"]["code"].as_str()), (401, Some("missing_timestamp")), "{body}");
    assert_eq!(s.approval(&apr).await, (ApprovalState::Pending, 0));

    // Signed, but from someone floodgate does not know, or from the action's target.
    assert_eq!(s.press("U0STRANGER", "approve", &apr, &msg.ts).await, 200);
    let r = s.replies("U0STRANGER-approve", 1).await;
    assert!(r[0].contains("not linked to a floodgate identity"), "{r:?}");
    assert_eq!(s.press(BOB, "approve", &apr, &msg.ts).await, 200);
    let r = s.replies(&format!("{BOB}-approve"), 1).await;
    assert!(r[0].contains("aimed at"), "{r:?}");
    assert_eq!(s.approval(&apr).await, (ApprovalState::Pending, 0), "refusals change nothing");

    // Alice approves; her double click and Slack's redelivery count once.
    let (st, _) = s.press_raw(good.body.clone(), Some(good.timestamp.clone()), Some(good.signature.clone())).await;
    assert_eq!(st, 200);
    assert_eq!(s.press(ALICE, "approve", &apr, &msg.ts).await, 200);
    assert_eq!(s.approval(&apr).await, (ApprovalState::Approved, 1));
    let r = s.replies(&format!("{ALICE}-approve"), 1).await;
    assert!(r.iter().any(|t| t.contains("already recorded")), "{r:?}");
    // A changed mind after the decision is refused.
    assert_eq!(s.press(ALICE, "deny", &apr, &msg.ts).await, 200);
    let r = s.replies(&format!("{ALICE}-deny"), 1).await;
    assert!(r[0].contains("already approved"), "{r:?}");

    // The message now says who decided, and the buttons are gone.
    assert_eq!(s.notifier.tick().await.unwrap(), 3);
    let updated = s.slack.message(SOC_CHANNEL, &msg.ts).unwrap();
    assert_eq!(updated.edits, 1);
    let blocks = block_text(&updated.blocks);
    assert!(blocks.contains("Approved") && blocks.contains(&format!("<@{ALICE}>")), "{blocks}");
    assert!(!blocks.contains(&format!("approve:{apr}")), "buttons replaced: {blocks}");
    assert_eq!(s.teams.cards().len(), 1, "Teams cannot edit a card; nothing more is posted");
    assert_eq!(s.notifier.tick().await.unwrap(), 0);

    s.h.settle().await;
    assert_eq!(s.h.run(&run).await.state, RunState::Succeeded);
    assert_eq!((s.h.vendor.calls("contain"), s.h.vendor.max_effects_per_key()), (1, 1), "the containment ran once");
    let kinds = s.event_kinds(&run).await;
    assert_eq!(kinds.iter().filter(|k| *k == "approval_notified").count(), 3, "{kinds:?}");
    assert!(kinds.iter().filter(|k| *k == "vote_refused").count() >= 2, "{kinds:?}");
}

async fn escalation_mentions_the_next_group_pages_and_resolves_the_page(db: Db) {
    let s = Setup::start(db).await;
    let (_run, apr) = s.waiting_run("n-2").await;
    s.notifier.tick().await.unwrap();
    // Nobody answers within 30 minutes: the approval escalates to the leads.
    s.h.clock.advance(31 * 60_000);
    assert_eq!(s.h.engine.tick_timers().await.unwrap(), 1);
    assert_eq!(s.notifier.tick().await.unwrap(), 3);

    let messages = s.slack.messages(SOC_CHANNEL);
    assert_eq!(messages.len(), 2, "a new message notifies; an edit would not");
    let escalation = block_text(&messages[1].blocks);
    assert!(escalation.contains("Escalated") && escalation.contains(&format!("<@{CAROL}>")), "{escalation}");
    assert!(!escalation.contains(&format!("<@{ALICE}>")), "only the new group is mentioned: {escalation}");
    let cards = s.teams.cards();
    assert_eq!(cards.len(), 2);
    let titles: Vec<&str> = cards[1]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["title"].as_str())
        .filter(|t| t.starts_with("Review as"))
        .collect();
    assert_eq!(titles, ["Review as Alice Adams", "Review as Carol Chen", "Review as Dana Diaz"]);
    // Alice's first link expired with the first deadline; the new card's link works.
    let alice = |card: &Value| {
        let a = card["actions"].as_array().unwrap().iter().find(|a| a["title"] == "Review as Alice Adams").unwrap();
        a["url"].as_str().unwrap().replace("https://floodgate.example", &s.url)
    };
    assert_ne!(s.http.get(alice(&cards[0])).send().await.unwrap().status(), 200);
    assert_eq!(s.http.get(alice(&cards[1])).send().await.unwrap().status(), 200);
    let key = format!("floodgate-approval-{apr}-1");
    let pages = s.pd.alerts_for(&key);
    assert_eq!(pages.len(), 1, "{:?}", s.pd.alerts());
    assert_eq!(pages[0].status, AlertStatus::Triggered);
    assert!(pages[0].summary.contains("escalated to leads"), "{}", pages[0].summary);

    // Carol approves from Slack; both messages show it and the page is resolved.
    let status = s.press(CAROL, "approve", &apr, &messages[1].ts).await;
    assert_eq!(status, 200);
    assert_eq!(s.approval(&apr).await.0, ApprovalState::Approved);
    assert_eq!(s.notifier.tick().await.unwrap(), 3);
    for m in s.slack.messages(SOC_CHANNEL) {
        assert_eq!(m.edits, 1);
        assert!(block_text(&m.blocks).contains(&format!("<@{CAROL}>")));
    }
    assert_eq!(s.pd.alerts_for(&key)[0].status, AlertStatus::Resolved);
    assert_eq!(s.notifier.tick().await.unwrap(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_channel_is_retried_later_without_reposting_the_others() {
    let s = Setup::start(Db::new(crate::harness::Backend::Sqlite).await).await;
    // A post that failed with 500 may or may not have happened, so it is not replayed within the
    // delivery: each of these two failures costs one delivery.
    s.slack.faults().fail_next(2, 500, Some("/api/chat.postMessage"));
    let (run, _apr) = s.waiting_run("n-3").await;
    assert_eq!(s.notifier.tick().await.unwrap(), 3);
    assert!(s.slack.messages(SOC_CHANNEL).is_empty());
    assert_eq!(s.teams.cards().len(), 1);
    let kinds = s.event_kinds(&run).await;
    assert!(kinds.contains(&"approval_notice_failed".to_string()), "the timeline says Slack failed: {kinds:?}");
    // Backing off: nothing is due right away.
    assert_eq!(s.notifier.tick().await.unwrap(), 0);
    s.h.clock.advance(5_001);
    assert_eq!(s.notifier.tick().await.unwrap(), 1, "only Slack is retried");
    assert!(s.slack.messages(SOC_CHANNEL).is_empty(), "still failing");
    s.h.clock.advance(10_001);
    assert_eq!(s.notifier.tick().await.unwrap(), 1);
    assert_eq!(s.slack.messages(SOC_CHANNEL).len(), 1);
    assert_eq!(s.teams.cards().len(), 1, "Teams was not posted again");
    let failed = s.h.events(&s.h.run(&run).await).await.iter().filter(|k| *k == "approval_notice_failed").count();
    assert_eq!(failed, 1, "one timeline entry per failing delivery, not per retry");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactions_need_a_configured_signing_secret() {
    let h = Harness::new(Db::new(crate::harness::Backend::Sqlite).await, &[PLAYBOOK]).await;
    let dir = tempfile::tempdir().unwrap();
    let cfg = Config::parse("", &dir.path().join("floodgate.toml")).unwrap();
    let state = floodgate::api::AppState::from_config(&cfg, h.engine.clone(), h.intake.clone()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/slack/interactions", listener.local_addr().unwrap());
    tokio::spawn(axum::serve(listener, floodgate::api::router(state)).into_future());
    let r = crate::common::client().post(url).body("payload=%7B%7D").send().await.unwrap();
    assert_eq!(r.status(), 404);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "slack_not_configured");
}

/// The whole path inside `floodgate serve`: an alert's approval request appears in Slack by
/// itself, badly signed and stale presses are refused with 401, a signed press decides, the
/// message is updated and the run finishes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_posts_requests_and_takes_signed_slack_presses() {
    use crate::server::{Server, config as server_config, post_alert};
    let slack = SlackSim::start().await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let playbooks = dir.path().join("playbooks");
    write(
        &playbooks,
        "ask.yaml",
        r#"
id: ask
name: Ask first
match: {rule: ask}
steps:
  containment:
    - id: note
      action: core.log
      approval: {groups: [oncall], timeout: 30m}
      with: {message: "approved containment for {{ alert.entities.user }}"}
"#,
    );
    let db = dir.path().join("floodgate.db");
    let extra = format!(
        r#"
[groups]
oncall = ["alice"]
[[identities]]
id = "alice"
slack_user_id = "{ALICE}"
[approvals]
slack_channel = "{SOC_CHANNEL}"
[connectors.slack]
bot_token = "env:FLOODGATE_SLACK_BOT_TOKEN"
signing_secret = "env:FLOODGATE_SLACK_SIGNING_SECRET"
api_base_url = "{}"
"#,
        slack.url()
    );
    let cfg = server_config(dir.path(), &format!("sqlite://{}", db.display()), &playbooks, &extra);
    let server = Server::start(
        &cfg,
        &[("FLOODGATE_SLACK_BOT_TOKEN", SIM_BOT_TOKEN), ("FLOODGATE_SLACK_SIGNING_SECRET", SIM_SIGNING_SECRET)],
    );
    let http = reqwest::Client::new();
    let alert =
        json!({"id": "s-1", "rule": "ask", "title": "t", "severity": "high", "entities": {"user": "eve@corp.example"}});
    let (status, _) = post_alert(&http, &server.url, &alert).await.expect("serve answers");
    assert_eq!(status, 202);

    let wait_for = |what: &str, check: &dyn Fn() -> bool| {
        let start = std::time::Instant::now();
        while !check() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(20),
                "{what} did not happen; log:\n{}",
                server.stderr()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    };
    wait_for("the approval request in Slack", &|| !slack.messages(SOC_CHANNEL).is_empty());
    let msg = slack.messages(SOC_CHANNEL).remove(0);
    let blocks = block_text(&msg.blocks);
    let apr = blocks.split("approve:").nth(1).and_then(|r| r.split('"').next()).expect("an Approve button").to_string();

    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let payload = floodgate_slack::sim::block_actions_payload(
        ALICE,
        SOC_CHANNEL,
        &msg.ts,
        "floodgate_approve",
        &format!("approve:{apr}"),
        &slack.response_url("alice"),
    );
    let press = |req: floodgate_slack::sim::SignedRequest| {
        http.post(format!("{}/slack/interactions", server.url))
            .header("content-type", "application/x-www-form-urlencoded")
            .header("x-slack-request-timestamp", req.timestamp)
            .header("x-slack-signature", req.signature)
            .body(req.body)
            .send()
    };
    for (req, code) in [
        (floodgate_slack::sim::signed_interaction("wrong-secret", now, &payload), "signature_mismatch"),
        (floodgate_slack::sim::signed_interaction(SIM_SIGNING_SECRET, now - 600, &payload), "stale_timestamp"),
    ] {
        let r = press(req).await.unwrap();
        assert_eq!(r.status(), 401);
        let v: Value = r.json().await.unwrap();
        assert_eq!(v["error"]["code"], code);
    }
    assert_eq!(slack.message(SOC_CHANNEL, &msg.ts).unwrap().edits, 0, "refused presses change nothing");
    let r = press(floodgate_slack::sim::signed_interaction(SIM_SIGNING_SECRET, now, &payload)).await.unwrap();
    assert_eq!(r.status(), 200);
    wait_for("the message update", &|| slack.message(SOC_CHANNEL, &msg.ts).is_some_and(|m| m.edits == 1));
    let updated = block_text(&slack.message(SOC_CHANNEL, &msg.ts).unwrap().blocks);
    assert!(updated.contains("Approved") && updated.contains(&format!("<@{ALICE}>")), "{updated}");

    let store = floodgate::store::Store::connect(&format!("sqlite://{}", db.display()), 1).await.unwrap();
    let start = std::time::Instant::now();
    loop {
        let runs = store.list_runs(&floodgate::store::RunFilter { limit: 10, ..Default::default() }).await.unwrap();
        if runs.iter().any(|r| r.state == "succeeded") {
            break;
        }
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "the run did not finish: {runs:?}");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}

/// Two notifiers listing the same work: once one delivered it, the other's claim (made from
/// what it listed earlier) is refused, so nothing is posted twice and no post's record is lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_claim_made_from_stale_work_is_refused() {
    let s = Setup::start(Db::new(crate::harness::Backend::Postgres).await).await;
    let (_run, apr) = s.waiting_run("n-4").await;
    let store = &s.h.store;
    let now = s.h.clock.now_ms_pub();
    let seen_by_a = store.notices_due("slack", now, 10).await.unwrap();
    let seen_by_b = store.notices_due("slack", now, 10).await.unwrap();
    assert_eq!((seen_by_a.len(), seen_by_b.len()), (1, 1));
    assert_eq!(seen_by_a[0].approval.id, apr);
    let claim = store.claim_notice(&seen_by_a[0], now, 60_000).await.unwrap().expect("A claims");
    assert!(store.claim_notice(&seen_by_b[0], now, 60_000).await.unwrap().is_none(), "the lease holds B off");
    let done = floodgate::store::notices::NoticeDone {
        level_sent: 0,
        decided_sent: false,
        refs: json!([{"channel": SOC_CHANNEL, "ts": "1.1"}]),
        event: None,
    };
    assert!(store.notice_done(&claim, &seen_by_a[0].approval, &done, now).await.unwrap());
    assert!(
        store.claim_notice(&seen_by_b[0], now + 1, 60_000).await.unwrap().is_none(),
        "B's work is stale: A delivered it"
    );
    assert!(store.notices_due("slack", now + 1, 10).await.unwrap().is_empty());
    // A claim that lost its lease cannot record anything either.
    s.h.clock.advance(31 * 60_000);
    s.h.engine.tick_timers().await.unwrap();
    let now = s.h.clock.now_ms_pub();
    let w = store.notices_due("slack", now, 10).await.unwrap().remove(0);
    let old = store.claim_notice(&w, now, 60_000).await.unwrap().unwrap();
    let w2 = store.notices_due("slack", now + 61_000, 10).await.unwrap().remove(0);
    let new = store.claim_notice(&w2, now + 61_000, 60_000).await.unwrap().expect("the lease expired");
    assert!(!store.notice_done(&old, &w.approval, &done, now + 62_000).await.unwrap(), "fenced out");
    assert!(store.notice_done(&new, &w2.approval, &done, now + 62_000).await.unwrap());
}

/// Slack was unreachable until after the first deadline: the first post is already an
/// escalation and mentions the new group; Teams links include everyone who may vote, since
/// links signed with the old deadline have expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_post_after_an_escalation_mentions_the_new_group() {
    let s = Setup::start(Db::new(crate::harness::Backend::Sqlite).await).await;
    let (_run, _apr) = s.waiting_run("n-5").await;
    s.h.clock.advance(31 * 60_000);
    assert_eq!(s.h.engine.tick_timers().await.unwrap(), 1);
    assert_eq!(s.notifier.tick().await.unwrap(), 3);
    let messages = s.slack.messages(SOC_CHANNEL);
    assert_eq!(messages.len(), 1);
    let blocks = block_text(&messages[0].blocks);
    assert!(blocks.contains("Escalated") && blocks.contains(&format!("<@{CAROL}>")), "{blocks}");
    let titles: Vec<String> = s.teams.cards()[0]["actions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|a| a["title"].as_str().map(str::to_string))
        .filter(|t| t.starts_with("Review as"))
        .collect();
    assert_eq!(titles, ["Review as Alice Adams", "Review as Carol Chen", "Review as Dana Diaz"]);
    assert_eq!(s.pd.alerts().len(), 1);
}

/// Replies go only to Slack's own hosts (or the configured API's); a signed payload naming
/// another host gets no request from floodgate. Replies are ephemeral and leave the original
/// message alone. A press from a linked person outside the groups, or from the future, is
/// refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_stay_ephemeral_and_on_slack_hosts() {
    use axum::routing::post;
    let s = Setup::start(Db::new(crate::harness::Backend::Sqlite).await).await;
    let (_run, apr) = s.waiting_run("n-6").await;
    s.notifier.tick().await.unwrap();
    let ts = s.slack.messages(SOC_CHANNEL)[0].ts.clone();

    let hits = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let h2 = hits.clone();
    let other = axum::Router::new().route(
        "/{*rest}",
        post(move || {
            h2.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            async { "ok" }
        }),
    );
    let sink = floodgate_sdk::sim::SimServer::start(other).await.unwrap();
    let mut payload = s.payload(CAROL, "approve", &apr, &ts);
    payload["response_url"] = json!(format!("{}/actions/T1/1/x", sink.url()));
    let req = floodgate_slack::sim::signed_interaction(SIM_SIGNING_SECRET, s.now_s(), &payload);
    assert_eq!(s.press_raw(req.body, Some(req.timestamp), Some(req.signature)).await.0, 200);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 0, "no request to a host that is not Slack's");
    assert_eq!(s.approval(&apr).await, (ApprovalState::Pending, 0), "Carol is not in oncall before the escalation");

    assert_eq!(s.press(CAROL, "approve", &apr, &ts).await, 200);
    s.replies(&format!("{CAROL}-approve"), 1).await;
    let reply = s.slack.responses().into_iter().find(|(id, _)| id == &format!("{CAROL}-approve")).unwrap().1;
    assert_eq!(reply["response_type"], "ephemeral");
    assert_eq!(reply["replace_original"], false);
    assert!(reply["text"].as_str().unwrap().contains("not in the approver groups"), "{reply}");

    let future = floodgate_slack::sim::signed_interaction(
        SIM_SIGNING_SECRET,
        s.now_s() + 400,
        &s.payload(ALICE, "approve", &apr, &ts),
    );
    let (st, body) = s.press_raw(future.body, Some(future.timestamp), Some(future.signature)).await;
    assert_eq!((st, body["error"]["code"].as_str()), (401, Some("future_timestamp")), "{body}");
    assert_eq!(s.approval(&apr).await, (ApprovalState::Pending, 0));
}

/// Slack gives up on an interaction after three seconds. With the database busy (another
/// process holds SQLite's write lock), the button press is still answered in time, and the
/// vote is recorded once the lock is released.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_press_is_answered_within_three_seconds_while_the_database_is_busy() {
    let s = Setup::start(Db::new(crate::harness::Backend::Sqlite).await).await;
    let (_run, apr) = s.waiting_run("n-7").await;
    s.notifier.tick().await.unwrap();
    let ts = s.slack.messages(SOC_CHANNEL)[0].ts.clone();

    let other = floodgate::store::Store::connect(&s.h.db.url, 1).await.unwrap();
    let mut busy = other.begin().await.unwrap();
    busy.exec("UPDATE approvals SET quorum = quorum WHERE id = $1", vec![floodgate::store::Arg::from(apr.as_str())])
        .await
        .unwrap();
    let started = std::time::Instant::now();
    assert_eq!(s.press(ALICE, "approve", &apr, &ts).await, 200);
    let answered = started.elapsed();
    assert!(answered < std::time::Duration::from_secs(3), "answered after {answered:?}");
    assert_eq!(s.approval(&apr).await.0, ApprovalState::Pending, "the vote waits for the lock");
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    busy.commit().await.unwrap();
    let start = std::time::Instant::now();
    while s.approval(&apr).await.0 != ApprovalState::Approved {
        assert!(start.elapsed() < std::time::Duration::from_secs(20), "the vote was not recorded after the lock");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(s.approval(&apr).await, (ApprovalState::Approved, 1));
}
