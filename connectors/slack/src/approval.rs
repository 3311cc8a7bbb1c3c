//! Approval messages: the request with Approve / Deny buttons, and its "decided" update.
//!
//! These are building blocks for the engine's approval flow (issue 5): the engine decides who
//! may approve and records votes; this module only renders what responders see and reads back
//! which button was pressed. The planned requests shown here come from `plan()` with secrets
//! already redacted by the caller; everything else that may hold alert data is escaped.
//!
//! A button's `value` carries `<decision>:<approval id>` and nothing else: the engine must look
//! the approval up by id and check the pressing user itself; a value proves nothing on its own
//! (a signed request proves it came from Slack, not that the user may approve).

use crate::blocks::{FIELD_MAX, SECTION_MAX, context, field_sections, md, section, severity_badge};
use crate::escape::{escape_code_block, escape_truncated, link};

use slack_morphism::prelude::*;
use std::fmt;
use time::OffsetDateTime;

/// `action_id` of the Approve button.
pub const APPROVE_ACTION_ID: &str = "floodgate_approve";
/// `action_id` of the Deny button.
pub const DENY_ACTION_ID: &str = "floodgate_deny";
/// Planned requests shown in full; more are summarised.
const MAX_REQUESTS_SHOWN: usize = 8;

/// A responder's choice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Decision {
    Approve,
    Deny,
}

impl Decision {
    pub fn as_str(self) -> &'static str {
        match self {
            Decision::Approve => "approve",
            Decision::Deny => "deny",
        }
    }
    fn action_id(self) -> &'static str {
        match self {
            Decision::Approve => APPROVE_ACTION_ID,
            Decision::Deny => DENY_ACTION_ID,
        }
    }
}

impl fmt::Display for Decision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Everything an approval request shows (shared with the Teams card).
pub use floodgate_sdk::ApprovalRequest;

/// How an approval ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    Approved,
    Denied,
    /// The deadline passed; `outcome` says what policy did then ("denied", "escalated to oncall-2").
    TimedOut {
        outcome: String,
    },
}

/// Who decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decider {
    /// A Slack user, shown as a mention (which does not notify in an edited message).
    SlackUser(String),
    /// Anyone else, by display name ("alice (web console)"); escaped.
    Named(String),
    /// floodgate itself (auto-approval, timeout).
    Floodgate,
}

/// The result shown in place of the buttons.
#[derive(Debug, Clone)]
pub struct ApprovalOutcome {
    pub verdict: Verdict,
    pub decided_by: Decider,
    pub at: OffsetDateTime,
    pub reason: Option<String>,
}

/// What a pressed button means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalButton {
    pub approval_id: String,
    pub decision: Decision,
}

/// Errors in the request itself (caller bugs, not responder input).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalMessageError {
    #[error("approval id {0:?} must be 1-128 ASCII letters, digits or -_.:")]
    BadApprovalId(String),
}

fn check_approval_id(id: &str) -> Result<(), ApprovalMessageError> {
    let ok = (1..=128).contains(&id.len())
        && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':'));
    if ok { Ok(()) } else { Err(ApprovalMessageError::BadApprovalId(id.chars().take(40).collect())) }
}

/// The value a button carries.
pub fn button_value(approval_id: &str, decision: Decision) -> String {
    format!("{}:{approval_id}", decision.as_str())
}

/// Reads a pressed button back. `None` for buttons that are not floodgate approval buttons, or
/// whose `action_id` and `value` disagree (a tampered or foreign payload).
pub fn parse_button(action_id: &str, value: &str) -> Option<ApprovalButton> {
    let (decision, id) = value.split_once(':')?;
    let decision = match decision {
        "approve" => Decision::Approve,
        "deny" => Decision::Deny,
        _ => return None,
    };
    if action_id != decision.action_id() || check_approval_id(id).is_err() {
        return None;
    }
    Some(ApprovalButton { approval_id: id.to_string(), decision })
}

/// Slack shows this in each reader's own time zone; the fallback is UTC.
fn when(at: OffsetDateTime) -> String {
    let utc = at.to_offset(time::UtcOffset::UTC);
    let fallback = format!(
        "{:04}-{:02}-{:02} {:02}:{:02} UTC",
        utc.year(),
        u8::from(utc.month()),
        utc.day(),
        utc.hour(),
        utc.minute()
    );
    format!("<!date^{}^{{date_short_pretty}} at {{time}}|{fallback}>", utc.unix_timestamp())
}

fn head_blocks(req: &ApprovalRequest) -> Vec<SlackBlock> {
    let mut blocks = vec![section(format!(
        ":lock: *Approval needed* · {} {}",
        severity_badge(req.severity.as_deref().map(str::to_ascii_lowercase).as_deref()),
        escape_truncated(&req.incident_title, 400)
    ))];
    blocks.push(section(format!(
        "*Action:* `{}` (risk: {})\n*What it will do:* {}",
        escape_truncated(&req.action, 200),
        req.risk,
        escape_truncated(&req.plan.summary, SECTION_MAX - 400)
    )));
    blocks.extend(field_sections(&req.evidence));
    for (i, r) in req.plan.requests.iter().take(MAX_REQUESTS_SHOWN).enumerate() {
        let body = r.body.as_ref().map(|b| serde_json::to_string_pretty(b).unwrap_or_default()).unwrap_or_default();
        let raw =
            if body.is_empty() { format!("{} {}", r.method, r.url) } else { format!("{} {}\n{body}", r.method, r.url) };
        blocks.push(section(format!("*Request {}*\n```{}```", i + 1, escape_code_block(&raw, SECTION_MAX - 40))));
    }
    if req.plan.requests.len() > MAX_REQUESTS_SHOWN {
        blocks.push(context(format!(
            "{} more planned requests; see the run in floodgate",
            req.plan.requests.len() - MAX_REQUESTS_SHOWN
        )));
    }
    let mut meta = Vec::new();
    if let Some(a) = &req.approvers {
        meta.push(format!("Approvers: {}", escape_truncated(a, 300)));
    }
    if let Some(at) = req.expires_at {
        meta.push(format!("Expires {}", when(at)));
    }
    meta.push(format!("Incident `{}`", escape_truncated(&req.incident_id, 100)));
    if let Some(l) = req.incident_url.as_deref().and_then(|u| link(u, "Open in floodgate")) {
        meta.push(l);
    }
    blocks.push(context(escape_truncated_join(&meta)));
    blocks
}

/// Context text is limited like a field; joined parts were escaped individually.
fn escape_truncated_join(parts: &[String]) -> String {
    let s = parts.join(" · ");
    if s.chars().count() <= FIELD_MAX {
        s
    } else {
        // Drop trailing parts rather than cut through an escape or a link.
        let mut out = String::new();
        for p in parts {
            if out.chars().count() + p.chars().count() + 3 > FIELD_MAX {
                break;
            }
            if !out.is_empty() {
                out.push_str(" · ");
            }
            out.push_str(p);
        }
        out
    }
}

/// The approval request: summary, evidence, planned requests, and Approve / Deny buttons.
pub fn approval_request_message(req: &ApprovalRequest) -> Result<SlackMessageContent, ApprovalMessageError> {
    check_approval_id(&req.approval_id)?;
    let mut blocks = head_blocks(req);
    let approve = SlackBlockButtonElement::new(SlackBlockPlainTextOnly::from("Approve"))
        .with_action_id(SlackActionId::new(APPROVE_ACTION_ID.to_string()))
        .with_value(button_value(&req.approval_id, Decision::Approve))
        .with_style(SlackBlockButtonStyle::Primary)
        .with_confirm(SlackBlockConfirmItem::new(
            SlackBlockPlainTextOnly::from("Approve this action?"),
            md(format!("This will run: {}", escape_truncated(&req.plan.summary, 250))),
            SlackBlockPlainTextOnly::from("Approve"),
            SlackBlockPlainTextOnly::from("Cancel"),
        ));
    let deny = SlackBlockButtonElement::new(SlackBlockPlainTextOnly::from("Deny"))
        .with_action_id(SlackActionId::new(DENY_ACTION_ID.to_string()))
        .with_value(button_value(&req.approval_id, Decision::Deny))
        .with_style(SlackBlockButtonStyle::Danger);
    blocks.push(
        SlackActionsBlock::new(vec![approve.into(), deny.into()])
            .with_block_id(SlackBlockId::new(format!("floodgate-approval:{}", req.approval_id)))
            .into(),
    );
    let text = escape_truncated(
        &format!("Approval needed: {} (incident: {})", req.plan.summary, req.incident_title),
        crate::blocks::FALLBACK_MAX,
    );
    Ok(SlackMessageContent::new().with_text(text).with_blocks(blocks))
}

/// The same message once decided: the buttons are replaced by who decided, when, and why.
pub fn approval_decided_message(
    req: &ApprovalRequest,
    outcome: &ApprovalOutcome,
) -> Result<SlackMessageContent, ApprovalMessageError> {
    check_approval_id(&req.approval_id)?;
    let mut blocks = head_blocks(req);
    let who = match &outcome.decided_by {
        Decider::SlackUser(id) if crate::blocks::is_mention_id(id) => format!("<@{id}>"),
        Decider::SlackUser(id) => escape_truncated(id, 64),
        Decider::Named(n) => escape_truncated(n, 200),
        Decider::Floodgate => "floodgate".to_string(),
    };
    let (icon, verdict) = match &outcome.verdict {
        Verdict::Approved => (":white_check_mark:", "Approved".to_string()),
        Verdict::Denied => (":no_entry:", "Denied".to_string()),
        Verdict::TimedOut { outcome } => (":hourglass:", format!("Timed out ({outcome})")),
    };
    let mut line = format!("{icon} *{}* by {who} at {}", escape_truncated(&verdict, 250), when(outcome.at));
    if let Some(r) = &outcome.reason {
        line.push_str(&format!("\n>{}", escape_truncated(r, 1000).replace('\n', "\n>")));
    }
    blocks.push(
        SlackSectionBlock::new()
            .with_block_id(SlackBlockId::new(format!("floodgate-approval:{}", req.approval_id)))
            .with_text(md(line))
            .into(),
    );
    let plain_who = match &outcome.decided_by {
        Decider::SlackUser(id) => id.clone(),
        Decider::Named(n) => n.clone(),
        Decider::Floodgate => "floodgate".into(),
    };
    let text =
        escape_truncated(&format!("{verdict} by {plain_who}: {}", req.plan.summary), crate::blocks::FALLBACK_MAX);
    Ok(SlackMessageContent::new().with_text(text).with_blocks(blocks))
}
