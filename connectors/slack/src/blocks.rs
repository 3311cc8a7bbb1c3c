//! Block Kit content for incident messages, built as slack-morphism types.
//!
//! Every piece of text that can hold alert data goes through [`crate::escape`] and every
//! `mrkdwn` object is sent with `verbatim: true`, so Slack does not auto-link or auto-mention
//! anything in it. Mentions only exist where a step asks for them with validated IDs.
//! This module must never build Block Kit by formatting JSON text.

use crate::escape::{escape_truncated, link};
use floodgate_sdk::CallContext;
use serde_json::Value;
use sha2::{Digest, Sha256};
use slack_morphism::prelude::*;

/// Slack's limits (Block Kit reference): section text 3000, a field 2000, 10 fields per section.
pub(crate) const SECTION_MAX: usize = 3000;
pub(crate) const FIELD_MAX: usize = 2000;
const FIELDS_PER_SECTION: usize = 10;
/// The notification/fallback text; Slack allows far more, people read far less.
pub(crate) const FALLBACK_MAX: usize = 1500;
/// Fields beyond this are dropped (with a note) so a noisy alert cannot exceed 50 blocks.
const MAX_FIELDS: usize = 30;

/// A `mrkdwn` text object that Slack shows as written (no auto-linking, no auto-mentions).
pub(crate) fn md(text: String) -> SlackBlockText {
    SlackBlockText::MarkDown(SlackBlockMarkDownText::new(text).with_verbatim(true))
}

pub(crate) fn section(text: String) -> SlackBlock {
    SlackSectionBlock::new().with_text(md(text)).into()
}

pub(crate) fn context(text: String) -> SlackBlock {
    SlackContextBlock::new(vec![SlackContextBlockElement::MarkDown(
        SlackBlockMarkDownText::new(text).with_verbatim(true),
    )])
    .into()
}

/// Label/value pairs as two-column section fields, ten per section.
pub(crate) fn field_sections(fields: &[(String, String)]) -> Vec<SlackBlock> {
    let mut shown: Vec<SlackBlockText> = fields
        .iter()
        .take(MAX_FIELDS)
        .map(|(label, value)| {
            let label = escape_truncated(label, 100);
            let room = FIELD_MAX.saturating_sub(label.chars().count() + 4);
            md(format!("*{label}*\n{}", escape_truncated(value, room)))
        })
        .collect();
    let mut blocks: Vec<SlackBlock> = Vec::new();
    while !shown.is_empty() {
        let rest = shown.split_off(shown.len().min(FIELDS_PER_SECTION));
        blocks.push(SlackSectionBlock::new().with_fields(shown).into());
        shown = rest;
    }
    if fields.len() > MAX_FIELDS {
        blocks.push(context(format!("{} more fields not shown", fields.len() - MAX_FIELDS)));
    }
    blocks
}

/// The block id that marks the first block of a named message of one incident, so the
/// message can be found again in the channel history when floodgate lost its reference.
pub(crate) fn marker(scope: &str, name: &str) -> String {
    let mut h = Sha256::new();
    h.update(scope.as_bytes());
    h.update([0u8]);
    h.update(name.as_bytes());
    let digest = hex::encode(h.finalize());
    format!("floodgate-{}", &digest[..24])
}

/// Reads a string (or a number, shown as text) at `key` of a JSON object.
pub(crate) fn text_at(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// A severity as floodgate names it, normalised (`high`, `critical`, ...).
pub(crate) fn severity(ctx: &CallContext) -> Option<String> {
    text_at(&ctx.incident, "severity").or_else(|| text_at(&ctx.alert, "severity")).map(|s| s.to_ascii_lowercase())
}

pub(crate) fn severity_badge(sev: Option<&str>) -> String {
    let (emoji, label) = match sev {
        Some("critical") => (":red_circle:", "CRITICAL"),
        Some("high") => (":large_orange_circle:", "HIGH"),
        Some("medium") => (":large_yellow_circle:", "MEDIUM"),
        Some("low") => (":large_blue_circle:", "LOW"),
        Some("info") => (":white_circle:", "INFO"),
        Some(other) => {
            return format!(":grey_question: *{}*", escape_truncated(&other.to_uppercase(), 20));
        }
        None => (":grey_question:", "UNKNOWN"),
    };
    format!("{emoji} *{label}*")
}

/// The incident's title: the incident's, else the alert's, else its id.
pub(crate) fn incident_title(ctx: &CallContext) -> String {
    text_at(&ctx.incident, "title")
        .or_else(|| text_at(&ctx.alert, "title"))
        .unwrap_or_else(|| format!("floodgate incident {}", ctx.incident_id))
}

/// Human labels for the normalized entity keys.
fn entity_label(key: &str) -> String {
    match key {
        "user" => "User".into(),
        "source_ip" => "Source IP".into(),
        "workspace" => "Workspace".into(),
        "table" => "Table".into(),
        "token" => "Token".into(),
        other => other.replace('_', " "),
    }
}

/// The alert evidence floodgate shows by default: severity, confidence, rule, source, alert
/// count, workspace and every entity.
pub(crate) fn evidence_fields(ctx: &CallContext) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = Vec::new();
    if let Some(s) = severity(ctx) {
        out.push(("Severity".into(), s));
    }
    if let Some(c) = ctx.alert.get("confidence").and_then(Value::as_f64) {
        out.push(("Confidence".into(), format!("{:.0}%", (c * 100.0).clamp(0.0, 100.0))));
    }
    if let Some(r) = text_at(&ctx.alert, "rule") {
        out.push(("Rule".into(), r));
    }
    if let Some(s) = text_at(&ctx.alert, "source") {
        out.push(("Source".into(), s));
    }
    if let Some(n) = text_at(&ctx.incident, "alert_count") {
        out.push(("Alerts".into(), n));
    }
    if let Some(w) = text_at(&ctx.alert, "workspace_id") {
        out.push(("Workspace ID".into(), w));
    }
    if let Some(Value::Object(entities)) = ctx.alert.get("entities") {
        for (k, v) in entities {
            if let Some(s) = v.as_str().filter(|s| !s.is_empty()) {
                out.push((entity_label(k), s.to_string()));
            }
        }
    }
    out
}

/// What one incident message shows (from a step's input, already validated).
#[derive(Debug, Clone, Default)]
pub(crate) struct MessageSpec {
    /// Block id of the first block, see [`marker`].
    pub marker: String,
    pub title: Option<String>,
    pub text: Option<String>,
    pub fields: Vec<(String, String)>,
    pub evidence: bool,
    pub status: Option<String>,
    /// Validated user (`U…`/`W…`) and user-group (`S…`) IDs.
    pub mentions: Vec<String>,
}

/// A mention in Slack's syntax; only ever built from validated IDs.
pub(crate) fn mention(id: &str) -> String {
    if id.starts_with('S') { format!("<!subteam^{id}>") } else { format!("<@{id}>") }
}

pub(crate) fn is_mention_id(id: &str) -> bool {
    slack_id(id, &['U', 'W', 'S'])
}

/// A Slack member id (`U…`, or `W…` on Enterprise Grid): what `slack_user_id` holds and what
/// `<@…>` may mention for a person.
pub fn is_member_id(id: &str) -> bool {
    slack_id(id, &['U', 'W'])
}

fn slack_id(id: &str, prefixes: &[char]) -> bool {
    let mut c = id.chars();
    c.next().is_some_and(|p| prefixes.contains(&p))
        && (3..=32).contains(&id.len())
        && c.all(|ch| ch.is_ascii_uppercase() || ch.is_ascii_digit())
}

/// The default incident message: headline with severity, body, evidence, status, and a
/// footer with the incident id and a link back to floodgate.
pub(crate) fn incident_message(ctx: &CallContext, spec: &MessageSpec) -> SlackMessageContent {
    let sev = severity(ctx);
    let title = spec.title.clone().unwrap_or_else(|| incident_title(ctx));
    let badge = severity_badge(sev.as_deref());
    let mut blocks: Vec<SlackBlock> = Vec::new();

    let headline = format!("{badge} {}", escape_truncated(&title, 500));
    blocks.push(
        SlackSectionBlock::new().with_block_id(SlackBlockId::new(spec.marker.clone())).with_text(md(headline)).into(),
    );
    let mentions: Vec<String> = spec.mentions.iter().map(|m| mention(m)).collect();
    if !mentions.is_empty() {
        blocks.push(section(format!("cc {}", mentions.join(" "))));
    }
    let body = spec.text.clone().or_else(|| text_at(&ctx.alert, "description"));
    if let Some(body) = &body {
        blocks.push(section(escape_truncated(body, SECTION_MAX)));
    }
    let mut fields = if spec.evidence { evidence_fields(ctx) } else { Vec::new() };
    fields.extend(spec.fields.iter().cloned());
    blocks.extend(field_sections(&fields));
    if let Some(status) = &spec.status {
        blocks.push(context(format!("*Status:* {}", escape_truncated(status, 500))));
    }
    blocks.push(context(footer(ctx)));

    let mut fallback = format!("[{}] {}", sev.as_deref().unwrap_or("unknown").to_uppercase(), title);
    if let Some(s) = &spec.status {
        fallback.push_str(&format!(" ({s})"));
    }
    let mut text = escape_truncated(&fallback, FALLBACK_MAX);
    if !mentions.is_empty() {
        // Mentions in the fallback text are what makes the notification reach people.
        text = format!("{} {text}", mentions.join(" "));
    }
    SlackMessageContent::new().with_text(text).with_blocks(blocks)
}

/// "Incident `id` · playbook `p` · Open in floodgate"
pub(crate) fn footer(ctx: &CallContext) -> String {
    let mut parts = Vec::new();
    if !ctx.incident_id.is_empty() {
        parts.push(format!("Incident `{}`", escape_truncated(&ctx.incident_id, 100)));
    }
    if !ctx.playbook_id.is_empty() {
        parts.push(format!("playbook `{}`", escape_truncated(&ctx.playbook_id, 100)));
    }
    if let Some(l) = ctx.incident_url.as_deref().and_then(|u| link(u, "Open in floodgate")) {
        parts.push(l);
    }
    if parts.is_empty() { "floodgate".to_string() } else { format!("floodgate · {}", parts.join(" · ")) }
}
