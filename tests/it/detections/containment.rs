//! Detection → alert → playbook run → Databricks containment, observed at the simulators: the
//! shipped `account-takeover-new-ip` detection finds dana's takeover in the fixture events, the
//! shipped `databricks-account-takeover` playbook investigates, waits for on-call, and then the
//! simulated workspace really holds the block list, the deactivated user and no tokens; Jira
//! and Slack (their simulators) get the ticket and the message.

use super::{Lakehouse, Soc, expected_before, ms, stored_findings};
use crate::harness::Db;
use crate::on_both_databases;
use floodgate::ingest::detections::Outcome;
use floodgate::store::{RunFilter, Store};
use floodgate_jira::Flavor;
use floodgate_jira::sim::{JiraSim, SIM_API_TOKEN, SIM_EMAIL};
use floodgate_slack::sim::{SIM_BOT_TOKEN, SOC_CHANNEL, SlackSim};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const PLAYBOOK: &str = "databricks-account-takeover";

async fn run_of(store: &Store, playbook: &str) -> floodgate::store::RunSummary {
    let runs = store
        .list_runs(&RunFilter { playbook: Some(playbook.into()), limit: 10, ..RunFilter::default() })
        .await
        .unwrap();
    assert_eq!(runs.len(), 1, "one run of {playbook}: {runs:?}");
    runs.into_iter().next().unwrap()
}

async fn step_states(store: &Store, run: &str) -> BTreeMap<String, String> {
    store.step_executions(run).await.unwrap().into_iter().map(|s| (s.step_id, s.state.as_str().to_string())).collect()
}

on_both_databases!(account_takeover_is_detected_and_contained);

async fn account_takeover_is_detected_and_contained(db: Db) {
    let lake = Lakehouse::start().await;
    let (_, dana_token) = lake.sim.create_pat("dana@corp.example", false);
    let dana = lake.sim.user_id(false, "dana@corp.example").unwrap();
    let jira = JiraSim::start(Flavor::Cloud).await.unwrap();
    let slack = SlackSim::start().await.unwrap();
    let secrets = tempfile::tempdir().unwrap();
    std::fs::write(secrets.path().join("jira"), SIM_API_TOKEN).unwrap();
    std::fs::write(secrets.path().join("slack"), SIM_BOT_TOKEN).unwrap();
    let file = |n: &str| format!("file:{}", secrets.path().join(n).display());
    let extra: BTreeMap<String, Value> = BTreeMap::from([
        (
            "jira".to_string(),
            json!({"base_url": jira.url(), "flavor": "cloud", "email": SIM_EMAIL, "api_token": file("jira"), "project": "SEC"}),
        ),
        (
            "slack".to_string(),
            json!({"bot_token": file("slack"), "default_channel": SOC_CHANNEL, "api_base_url": slack.url()}),
        ),
    ]);
    // Half an hour after dana's takeover; the rest of the fixtures happen the next day.
    let soc = Soc::start(db, &lake, extra, ms("2026-09-01T03:30:00Z")).await;

    for (job, r) in soc.poller.run_until_caught_up().await {
        assert!(matches!(r, Ok(Outcome::Committed(_))), "{}: {r:?}", job.detection.id);
    }
    assert_eq!(stored_findings(&soc.store, "databricks-detection").await, expected_before("2026-09-01T03:30:00Z"));

    soc.engine.run_until_idle().await.unwrap();
    let run = run_of(&soc.store, PLAYBOOK).await;
    assert_eq!(run.state, "waiting", "{run:?}");
    let states = step_states(&soc.store, &run.id).await;
    assert_eq!(states["user_activity"], "succeeded", "investigation ran on the simulator: {states:?}");
    assert_eq!(states["ip_activity"], "succeeded", "{states:?}");
    assert!(lake.sim.ip_access_lists(false).is_empty(), "nothing is blocked before on-call approves");

    // On-call approves each containment step in turn; dana herself may not.
    let mut approved = Vec::new();
    for _ in 0..3 {
        let pending: Vec<_> =
            soc.store.pending_approvals().await.unwrap().into_iter().filter(|a| a.run_id == run.id).collect();
        assert_eq!(pending.len(), 1, "one containment step at a time");
        let a = &pending[0];
        let refused = soc.engine.decide(&a.id, "dana", true, Some("it is me"), "cli").await.unwrap();
        assert!(refused.is_err(), "the target of containment cannot approve it");
        soc.engine.decide(&a.id, "alice", true, Some("confirmed with dana's manager"), "cli").await.unwrap().unwrap();
        approved.push(a.step_id.clone());
        soc.engine.run_until_idle().await.unwrap();
    }
    assert_eq!(approved, ["block_ip", "deactivate_user", "revoke_tokens"]);
    let run = run_of(&soc.store, PLAYBOOK).await;
    assert_eq!(run.state, "succeeded", "{run:?}");

    let lists = lake.sim.ip_access_lists(false);
    assert_eq!(lists.len(), 1, "{lists:?}");
    assert_eq!(lists[0]["list_type"], "BLOCK");
    assert_eq!(lists[0]["ip_addresses"], json!(["203.0.113.77"]), "the port in the audit row is not part of the block");
    assert_eq!(lake.sim.user_active(false, &dana), Some(false));
    assert!(!lake.sim.tokens().iter().any(|(id, _)| id == &dana_token), "dana's token is revoked");

    let issues = jira.issues_with_label("account-takeover");
    assert_eq!(issues.len(), 1);
    assert!(issues[0].summary.contains("dana@corp.example"), "{}", issues[0].summary);
    let posted = |needle: &str| {
        slack.messages(SOC_CHANNEL).iter().filter(|m| serde_json::to_string(m).unwrap().contains(needle)).count()
    };
    assert_eq!(posted("Account takeover: dana@corp.example"), 1, "one chat message for the takeover");

    // The other detections' playbooks started too: brute force and token abuse wait for their
    // own approvals; verbose audit logging turned off has nothing to contain, only people to tell.
    for playbook in ["databricks-brute-force", "databricks-token-abuse"] {
        assert_eq!(run_of(&soc.store, playbook).await.state, "waiting", "{playbook}");
    }
    let settings = run_of(&soc.store, "databricks-security-settings").await;
    assert_eq!(settings.state, "succeeded", "{settings:?}");
    assert_eq!(step_states(&soc.store, &settings.id).await["disable_exports"], "skipped");
    assert_eq!(posted("Security setting changed"), 1);
    assert_eq!(jira.issues_with_label("settings").len(), 1);
    jira.stop().await;
    slack.stop().await;
}
