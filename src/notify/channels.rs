//! The three notice channels. Each turns "what this channel has seen" plus "where the approval
//! is now" into vendor calls, using the vendor crates' own builders (Block Kit, Adaptive Cards,
//! Events API v2), and says what it did. Errors are plain text for the timeline; no secret is
//! in them (the vendor crates never put tokens or webhook URLs in errors).

use super::{Brief, new_groups};
use crate::config::{Config, ConfigError};
use crate::engine::Engine;
use crate::engine::registry::Directory;
use crate::store::notices::{NoticeDone, NoticeWork};
use crate::store::{ApprovalRow, ApprovalState};
use floodgate_sdk::http::{HttpClient, RetryPolicy};
use serde_json::{Value, json};
use std::time::Duration;

pub(super) enum Channel {
    Slack { client: floodgate_slack::Slack, channel: String },
    Teams { client: floodgate_teams::Teams, link_key: Vec<u8> },
    PagerDuty { api: floodgate_pagerduty::EventsApi },
}

/// One quick retry inside a delivery; the notices table holds the durable retries.
fn http() -> HttpClient {
    HttpClient::new(RetryPolicy {
        max_attempts: 2,
        base_delay: Duration::from_millis(300),
        max_delay: Duration::from_secs(2),
        max_wait: Duration::from_secs(5),
        ..RetryPolicy::default()
    })
    .with_timeout(Duration::from_secs(10))
}

fn connector_table<'a>(cfg: &'a Config, name: &str, key: &str) -> Result<&'a Value, ConfigError> {
    cfg.connectors.get(name).ok_or_else(|| ConfigError(format!("[approvals] {key} needs a [connectors.{name}] table")))
}

fn build_err(key: &str, e: impl std::fmt::Display) -> ConfigError {
    ConfigError(format!("[approvals] {key}: {e}"))
}

pub(super) fn from_config(cfg: &Config) -> Result<Vec<Channel>, ConfigError> {
    let mut out = Vec::new();
    if let Some(channel) = &cfg.approvals.slack_channel {
        let table = connector_table(cfg, "slack", "slack_channel")?;
        let settings = floodgate_slack::SlackSettings::from_value(table).map_err(|e| build_err("slack_channel", e))?;
        if settings.signing_secret().is_none() {
            return Err(ConfigError(
                "[approvals] slack_channel needs signing_secret in [connectors.slack]: without it floodgate cannot tell a real button press from a forged one".into(),
            ));
        }
        out.push(Channel::Slack {
            client: floodgate_slack::Slack::new(settings).with_http(http()),
            channel: channel.clone(),
        });
    }
    if cfg.approvals.teams {
        let table = connector_table(cfg, "teams", "teams")?;
        let settings = floodgate_teams::TeamsSettings::from_value(table).map_err(|e| build_err("teams", e))?;
        let client =
            floodgate_teams::Teams::new(&settings).with_timing(Duration::from_secs(10), Duration::from_secs(2));
        out.push(Channel::Teams { client, link_key: crate::web::try_link_secret(cfg)? });
    }
    if cfg.approvals.pagerduty_on_escalation {
        let table = connector_table(cfg, "pagerduty", "pagerduty_on_escalation")?;
        let settings = floodgate_pagerduty::PagerDutySettings::from_value(table)
            .map_err(|e| build_err("pagerduty_on_escalation", e))?;
        out.push(Channel::PagerDuty { api: floodgate_pagerduty::EventsApi::new(&settings).with_http(http()) });
    }
    Ok(out)
}

fn done(w: &NoticeWork, what: &str, level_sent: i64, decided_sent: bool, refs: Value, extra: Value) -> NoticeDone {
    let mut event = json!({"channel": w.channel, "what": what});
    if let (Some(e), Value::Object(x)) = (event.as_object_mut(), extra) {
        e.extend(x);
    }
    NoticeDone { level_sent, decided_sent, refs, event: Some(event) }
}

fn push_ref(refs: &Value, item: Value) -> Value {
    let mut list = refs.as_array().cloned().unwrap_or_default();
    list.push(item);
    Value::Array(list)
}

impl Channel {
    pub(super) fn name(&self) -> &'static str {
        match self {
            Channel::Slack { .. } => "slack",
            Channel::Teams { .. } => "teams",
            Channel::PagerDuty { .. } => "pagerduty",
        }
    }

    pub(super) async fn deliver(&self, w: &NoticeWork, b: &Brief, engine: &Engine) -> Result<NoticeDone, String> {
        let dir = &engine.inner().directory;
        let a = &w.approval;
        let pending = a.state == ApprovalState::Pending;
        match self {
            Channel::Slack { client, channel } => {
                let req = approval_request(b, &b.approval_url);
                if pending {
                    let mut content = floodgate_slack::approval_request_message(&req).map_err(|e| e.to_string())?;
                    let what = if w.level_sent < 0 { "request" } else { "escalation" };
                    if a.escalation_level > 0 {
                        // Also when the first post comes after an escalation (Slack was down
                        // over the first deadline): the escalated groups must be mentioned.
                        let groups = new_groups(a, w.level_sent.max(0));
                        prepend_escalation(&mut content, groups, dir);
                    }
                    let posted = client.api().post_content(channel, content).await.map_err(|e| e.to_string())?;
                    let refs = push_ref(&w.refs, json!({"channel": posted.channel, "ts": posted.ts}));
                    return Ok(done(w, what, a.escalation_level, false, refs, json!({"ts": posted.ts})));
                }
                let posts: Vec<floodgate_slack::PostedMessage> =
                    serde_json::from_value(w.refs.clone()).unwrap_or_default();
                if posts.is_empty() {
                    return Ok(NoticeDone::quiet(w, w.level_sent, true));
                }
                let outcome = slack_outcome(a, &b.votes, dir);
                let content = floodgate_slack::approval_decided_message(&req, &outcome).map_err(|e| e.to_string())?;
                for p in &posts {
                    match client.api().update_content(p, content.clone()).await {
                        Ok(_) => {}
                        // Deleted or too old to edit: nothing more can be shown on that one.
                        Err(e) if GONE.contains(&e.code()) => {
                            tracing::info!(approval = %a.id, ts = %p.ts, code = e.code(), "slack approval message cannot be updated");
                        }
                        Err(e) => return Err(e.to_string()),
                    }
                }
                Ok(done(w, "decision", w.level_sent, true, w.refs.clone(), json!({"updated": posts.len()})))
            }
            Channel::Teams { client, link_key } => {
                if !pending {
                    // A webhook cannot edit a card it posted; the console shows the decision.
                    return Ok(NoticeDone::quiet(w, w.level_sent, true));
                }
                // Everyone who may vote gets a link on every card: links expire at the deadline
                // they were signed with, and an escalation moves the deadline.
                let people = eligible(a, &a.groups, dir);
                if people.is_empty() {
                    return Ok(NoticeDone::quiet(w, a.escalation_level, false));
                }
                let links: Vec<floodgate_teams::ApprovalLink> = people
                    .iter()
                    .map(|id| {
                        let token = crate::web::links::sign(link_key, &a.id, id, a.deadline);
                        floodgate_teams::ApprovalLink {
                            title: format!("Review as {}", display(dir, id)),
                            url: crate::web::links::url(&b.public_url, &token),
                        }
                    })
                    .collect();
                let card = floodgate_teams::approval_card(&approval_request(b, &b.incident_url), &links)
                    .map_err(|e| format!("approval card: {e}"))?;
                client.webhook().post(&card).await.map_err(|e| e.to_string())?;
                let what = if w.level_sent < 0 { "request" } else { "escalation" };
                Ok(done(w, what, a.escalation_level, false, w.refs.clone(), json!({"links": people.len()})))
            }
            Channel::PagerDuty { api } => {
                if pending {
                    if a.escalation_level <= 0 {
                        // Pages are for escalations only.
                        return Ok(NoticeDone::quiet(w, a.escalation_level, false));
                    }
                    let key = page_key(&a.id, a.escalation_level);
                    api.send(&page(b, &key, new_groups(a, w.level_sent.max(0)))).await.map_err(|e| e.to_string())?;
                    let refs = push_ref(&w.refs, json!(key));
                    return Ok(done(w, "page", a.escalation_level, false, refs, json!({"dedup_key": key})));
                }
                // Keys are deterministic: resolve every level that may have paged, even one whose
                // record was lost (resolving a key PagerDuty does not know is harmless).
                let keys: Vec<String> = (1..=a.escalation_level.max(0)).map(|level| page_key(&a.id, level)).collect();
                if keys.is_empty() {
                    return Ok(NoticeDone::quiet(w, w.level_sent, true));
                }
                for key in &keys {
                    let event = floodgate_pagerduty::Event {
                        event_action: floodgate_pagerduty::EventAction::Resolve,
                        dedup_key: key.clone(),
                        payload: None,
                        client: None,
                        client_url: None,
                        links: Vec::new(),
                    };
                    api.send(&event).await.map_err(|e| e.to_string())?;
                }
                Ok(done(w, "resolve", w.level_sent, true, w.refs.clone(), json!({"resolved": keys.len()})))
            }
        }
    }
}

/// Slack errors after which a posted message can no longer be updated.
const GONE: [&str; 5] =
    ["message_not_found", "cant_update_message", "edit_window_closed", "channel_not_found", "is_archived"];

/// Most people mentioned in one escalation line (a section holds at most 3,000 characters).
const MAX_MENTIONS: usize = 50;

fn page_key(approval_id: &str, level: i64) -> String {
    format!("floodgate-approval-{approval_id}-{level}")
}

/// People in `groups` who may vote on `a` (the action's target may not).
pub(super) fn eligible(a: &ApprovalRow, groups: &[String], dir: &Directory) -> Vec<String> {
    dir.members(groups).into_iter().filter(|id| !crate::engine::approval::is_target(a, id, dir)).collect()
}

fn display(dir: &Directory, id: &str) -> String {
    dir.people.get(id).and_then(|p| p.name.clone()).unwrap_or_else(|| id.to_string())
}

fn approval_request(b: &Brief, link: &str) -> floodgate_sdk::ApprovalRequest {
    floodgate_sdk::ApprovalRequest {
        approval_id: b.approval.id.clone(),
        incident_id: b.approval.incident_id.clone(),
        incident_title: b.incident_title.clone(),
        severity: b.severity.clone(),
        incident_url: Some(link.to_string()),
        action: b.action.clone(),
        risk: b.risk,
        plan: b.plan.clone(),
        evidence: b.evidence.clone(),
        approvers: Some(b.approvers.clone()),
        expires_at: super::datetime(b.approval.deadline),
    }
}

/// Puts "Escalated to <group>: @a @b" above an escalation's request, so the new approvers are
/// notified (a mention in a new message notifies; one in an edited message does not).
fn prepend_escalation(
    content: &mut floodgate_slack::slack_morphism::prelude::SlackMessageContent,
    groups: &[String],
    dir: &Directory,
) {
    use floodgate_slack::escape::escape_mrkdwn;
    use floodgate_slack::slack_morphism::prelude::*;
    let mentions: Vec<String> = dir
        .members(groups)
        .iter()
        .filter_map(|id| dir.people.get(id)?.slack_user_id.as_deref().filter(|s| floodgate_slack::is_member_id(s)))
        .map(|s| format!("<@{s}>"))
        .collect();
    let names: Vec<String> = groups.iter().map(|g| escape_mrkdwn(g)).collect();
    let mut line = format!(":rotating_light: *Escalated* to {}", names.join(", "));
    if !mentions.is_empty() {
        let shown = &mentions[..mentions.len().min(MAX_MENTIONS)];
        line.push_str(&format!(": {}", shown.join(" ")));
        if mentions.len() > shown.len() {
            line.push_str(&format!(" and {} more", mentions.len() - shown.len()));
        }
    }
    let block: SlackBlock =
        SlackSectionBlock::new().with_text(SlackBlockText::MarkDown(SlackBlockMarkDownText::new(line.clone()))).into();
    let mut blocks = content.blocks.take().unwrap_or_default();
    blocks.insert(0, block);
    content.blocks = Some(blocks);
    if let Some(t) = &mut content.text {
        *t = format!("Escalated: {t}");
    }
}

/// Who decided and how, for the Slack message update.
fn slack_outcome(
    a: &ApprovalRow,
    votes: &[crate::store::VoteRow],
    dir: &Directory,
) -> floodgate_slack::ApprovalOutcome {
    use floodgate_slack::{Decider, Verdict};
    let reason = a.decided_reason.clone().unwrap_or_default();
    let at = super::datetime(a.decided_at.unwrap_or(a.deadline)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    let person = |decision: &str| {
        votes.iter().rev().find(|v| v.decision == decision).map(|v| {
            let slack = dir
                .people
                .get(&v.identity)
                .and_then(|p| p.slack_user_id.clone())
                .filter(|s| floodgate_slack::is_member_id(s));
            match slack {
                Some(s) if v.channel == "slack" => Decider::SlackUser(s),
                _ => Decider::Named(format!("{} ({})", display(dir, &v.identity), v.channel)),
            }
        })
    };
    let vote_reason =
        |decision: &str| votes.iter().rev().find(|v| v.decision == decision).and_then(|v| v.reason.clone());
    let (verdict, decided_by, why) = match a.state {
        ApprovalState::Approved if !votes.iter().any(|v| v.decision == "approve") => {
            (Verdict::TimedOut { outcome: "approved by policy".into() }, Decider::Floodgate, Some(reason))
        }
        ApprovalState::Approved => (
            Verdict::Approved,
            person("approve").unwrap_or(Decider::Floodgate),
            vote_reason("approve").or(Some(reason)),
        ),
        ApprovalState::Denied => {
            (Verdict::Denied, person("deny").unwrap_or(Decider::Floodgate), vote_reason("deny").or(Some(reason)))
        }
        ApprovalState::Expired | ApprovalState::Pending => {
            (Verdict::TimedOut { outcome: "denied".into() }, Decider::Floodgate, Some(reason))
        }
    };
    floodgate_slack::ApprovalOutcome { verdict, decided_by, at, reason: why.filter(|r| !r.is_empty()) }
}

/// The PagerDuty page for an escalation.
fn page(b: &Brief, key: &str, groups: &[String]) -> floodgate_pagerduty::Event {
    use floodgate_pagerduty::client::{Link, Payload};
    let summary: String = format!("Approval needed (escalated to {}): {}", groups.join(", "), b.plan.summary)
        .chars()
        .take(1000)
        .collect();
    let mut details = serde_json::Map::new();
    details.insert("incident".into(), json!(b.incident_title));
    details.insert("action".into(), json!(b.action));
    details.insert("approvers".into(), json!(b.approvers));
    floodgate_pagerduty::Event {
        event_action: floodgate_pagerduty::EventAction::Trigger,
        dedup_key: key.to_string(),
        payload: Some(Payload {
            summary,
            source: "floodgate".into(),
            severity: b
                .severity
                .as_deref()
                .and_then(floodgate_pagerduty::Severity::from_name)
                .unwrap_or(floodgate_pagerduty::Severity::Error),
            timestamp: None,
            component: Some(b.action.clone()),
            group: Some(b.approval.incident_id.clone()),
            class: Some("approval".into()),
            custom_details: details,
        }),
        client: Some("floodgate".into()),
        client_url: Some(b.approval_url.clone()),
        links: vec![Link { href: b.approval_url.clone(), text: Some("Review the approval".into()) }],
    }
}
