//! Approval notifications: tells responders where they are that a step waits for them.
//!
//! - **Slack** (`[approvals] slack_channel`): the approval request with the incident summary,
//!   the evidence, the planned requests and Approve / Deny buttons (pressed buttons come back
//!   to `POST /slack/interactions`); on escalation a new request that mentions the new group's
//!   members; once decided, every posted request is updated to show who decided, when and why.
//! - **Teams** (`[approvals] teams = true`): an Adaptive Card with one signed, single-use,
//!   expiring link per eligible approver; on escalation a new card with links for everyone who
//!   may then vote (links expire with the deadline they were signed with). Teams webhooks cannot update a card, so the decision is not posted.
//! - **PagerDuty** (`[approvals] pagerduty_on_escalation = true`): a page when an approval
//!   escalates, resolved when the approval is decided.
//!
//! Nothing here decides anything. The notifier compares each approval with what each channel
//! has been told (`approval_notices`) and catches up, so a restart or a vendor outage delays
//! notices but never loses one. Delivery is at least once: a crash between the vendor's answer
//! and the database write repeats that one post (a duplicate request is harmless: votes count
//! once whichever message they come from).

mod channels;

use crate::config::{Config, ConfigError};
use crate::engine::Engine;
use crate::playbook::ActionCatalog;
use crate::store::notices::{NoticeDone, NoticeWork};
use crate::store::{ApprovalRow, VoteRow};
use anyhow::Result;
use channels::Channel;
use floodgate_sdk::{Plan, RiskClass};
use serde_json::Value;
use std::time::Duration;

/// How long one delivery may hold its claim before another notifier may retry it.
const LEASE_MS: i64 = 60_000;
/// Longest wait between retries of a failing delivery.
const MAX_BACKOFF_MS: i64 = 5 * 60_000;
/// Longest one vendor call may take before the delivery counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// Everything a notice shows about one approval.
#[derive(Debug, Clone)]
pub struct Brief {
    pub approval: ApprovalRow,
    pub votes: Vec<VoteRow>,
    pub incident_title: String,
    pub severity: Option<String>,
    pub public_url: String,
    pub incident_url: String,
    pub approval_url: String,
    pub action: String,
    pub risk: RiskClass,
    pub plan: Plan,
    pub evidence: Vec<(String, String)>,
    pub approvers: String,
}

/// The notification loop and its channels.
pub struct Notifier {
    engine: Engine,
    channels: Vec<Channel>,
    catalog: ActionCatalog,
    public_url: String,
}

impl Notifier {
    /// The channels `[approvals]` turns on; `None` when none is.
    pub fn from_config(cfg: &Config, engine: Engine) -> Result<Option<Notifier>, ConfigError> {
        let channels = channels::from_config(cfg)?;
        if channels.is_empty() {
            return Ok(None);
        }
        Ok(Some(Notifier { engine, channels, catalog: crate::connectors::catalog(), public_url: cfg.public_url() }))
    }

    /// Names of the channels in use (`slack`, `teams`, `pagerduty`).
    pub fn channel_names(&self) -> Vec<&'static str> {
        self.channels.iter().map(Channel::name).collect()
    }

    /// Runs until the task is aborted: catches up, then waits for an approval change or a
    /// second, whichever comes first.
    pub fn spawn(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            loop {
                if let Err(e) = self.tick().await {
                    tracing::warn!(error = %e, "approval notices: cannot read the database; retrying");
                }
                let _ = tokio::time::timeout(Duration::from_secs(1), self.engine.wait_notices()).await;
            }
        })
    }

    /// Delivers every due notice once, the channels side by side so that a slow or failing
    /// vendor does not hold the others back. Returns how many deliveries were attempted.
    pub async fn tick(&self) -> Result<usize> {
        // At most one channel of each kind: Slack, Teams, PagerDuty.
        let one = |i: usize| async move {
            match self.channels.get(i) {
                Some(c) => self.tick_channel(c).await,
                None => Ok(0),
            }
        };
        let (a, b, c) = tokio::join!(one(0), one(1), one(2));
        Ok(a? + b? + c?)
    }

    /// One channel's due notices, oldest first. The first failure ends the batch: the vendor
    /// is likely down, and the rest wait for the next tick rather than each timing out.
    async fn tick_channel(&self, channel: &Channel) -> Result<usize> {
        let store = self.engine.store();
        let mut attempted = 0;
        for work in store.notices_due(channel.name(), self.engine.now(), 50).await? {
            // The lease starts now, not when the batch was listed.
            let Some(claim) = store.claim_notice(&work, self.engine.now(), LEASE_MS).await? else { continue };
            attempted += 1;
            let outcome = match self.brief(&work.approval).await {
                Ok(brief) => {
                    match tokio::time::timeout(CALL_TIMEOUT, channel.deliver(&work, &brief, &self.engine)).await {
                        Ok(r) => r,
                        Err(_) => Err(format!("{} did not answer within {} s", channel.name(), CALL_TIMEOUT.as_secs())),
                    }
                }
                Err(e) => Err(format!("cannot read the approval's details: {e}")),
            };
            let now = self.engine.now();
            match outcome {
                Ok(done) => {
                    store.notice_done(&claim, &work.approval, &done, now).await?;
                }
                Err(error) => {
                    let backoff = (5_000i64 << work.failures.clamp(0, 16)).min(MAX_BACKOFF_MS);
                    tracing::warn!(
                        approval = %work.approval.id,
                        channel = channel.name(),
                        %error,
                        retry_in_s = backoff / 1000,
                        "approval notice failed"
                    );
                    store.notice_failed(&claim, &work.approval, &error, now + backoff, now).await?;
                    break;
                }
            }
        }
        Ok(attempted)
    }

    /// Loads what a notice shows: the incident, the alert's evidence, the step's action and
    /// risk, the redacted plan stored with the approval, who may approve.
    async fn brief(&self, a: &ApprovalRow) -> Result<Brief> {
        let store = self.engine.store();
        let incident = store.incident(&a.incident_id).await?;
        let run = store.run(&a.run_id).await?;
        let alert = match &run {
            Some(r) => store.alert_body(&r.alert_id).await?.unwrap_or(Value::Null),
            None => Value::Null,
        };
        let step = store.step_execution(&a.step_exec_id).await?;
        let action = step.map(|s| s.action).unwrap_or_else(|| a.step_id.clone());
        let risk = self.catalog.get(&action).map_or(RiskClass::Contain, |s| s.risk);
        let mut plan = serde_json::from_value::<Plan>(a.plan.clone()).unwrap_or_else(|_| Plan::new(a.summary.clone()));
        // Plans are redacted before they are stored; redact again, as every other view does.
        for r in &mut plan.requests {
            r.body = r.body.as_ref().map(floodgate_sdk::text::redact_json);
        }
        let dir = &self.engine.inner().directory;
        let eligible = channels::eligible(a, &a.groups, dir);
        let approvers = format!(
            "{} · {} of {} {}",
            a.groups.join(", "),
            a.quorum,
            eligible.len(),
            if eligible.len() == 1 { "person" } else { "people" }
        );
        let base = self.public_url.trim_end_matches('/');
        Ok(Brief {
            votes: store.approval_votes(&a.id).await?,
            incident_title: incident.as_ref().map_or_else(|| a.incident_id.clone(), |i| i.title.clone()),
            severity: incident.as_ref().map(|i| i.severity.clone()),
            public_url: base.to_string(),
            incident_url: format!("{base}/incidents/{}", a.incident_id),
            approval_url: format!("{base}/approvals/{}", a.id),
            action,
            risk,
            plan,
            evidence: evidence(&alert),
            approvers,
            approval: a.clone(),
        })
    }
}

/// Label/value pairs from the alert that a responder needs to judge the request. Values are
/// untrusted: every channel escapes them for its own markup.
pub fn evidence(alert: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let text = |v: &Value| match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    };
    for (label, key) in [("Alert", "title"), ("Source", "source"), ("Rule", "rule"), ("Severity", "severity")] {
        let v = text(&alert[key]);
        if !v.is_empty() {
            out.push((label.to_string(), v));
        }
    }
    if let Some(c) = alert["confidence"].as_f64() {
        out.push(("Confidence".into(), format!("{c}")));
    }
    if let Some(entities) = alert["entities"].as_object() {
        for (k, v) in entities.iter().take(8) {
            let v = text(v);
            if !v.is_empty() {
                out.push((k.replace('_', " "), v));
            }
        }
    }
    out
}

/// The groups an escalation added since `level_sent` (all groups for the first request).
pub(crate) fn new_groups(a: &ApprovalRow, level_sent: i64) -> &[String] {
    if level_sent < 0 {
        return &a.groups;
    }
    let added = usize::try_from(a.escalation_level - level_sent).unwrap_or(0).min(a.groups.len());
    &a.groups[a.groups.len() - added..]
}

/// Unix milliseconds as a date-time for the channel libraries.
pub(crate) fn datetime(ms: i64) -> Option<time::OffsetDateTime> {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000).ok()
}

impl NoticeDone {
    fn quiet(w: &NoticeWork, level_sent: i64, decided_sent: bool) -> NoticeDone {
        NoticeDone { level_sent, decided_sent, refs: w.refs.clone(), event: None }
    }
}
