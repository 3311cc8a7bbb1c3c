//! What floodgate's Teams messages show: the incident card and the approval card.
//!
//! Both are built from typed card elements; alert data only ever lands in `TextRun`s (no
//! markdown) or in facts passed through [`card::plain`]. Links come only from floodgate
//! itself (`incident_url`, signed approval pages) or a step's validated http(s) links.

use crate::card::{
    Action, ActionStyle, AdaptiveCard, Color, Container, ContainerStyle, Element, Envelope, Fact, FactSet,
    RichTextBlock, Size, Spacing, TextRun, cut, open_url,
};
use floodgate_sdk::CallContext;
use serde_json::Value;
use time::OffsetDateTime;

const TITLE_MAX: usize = 300;
const MAX_FACTS: usize = 30;
/// (body text, fact value) lengths tried in turn until an incident card fits in 28 KB: alert
/// data is attacker-sized, and a notification must not be lost because a field was long.
const FIT_TIERS: [(usize, usize); 3] = [(12_000, 1_000), (4_000, 400), (1_000, 120)];
const MAX_REQUESTS_SHOWN: usize = 8;
const REQUEST_TEXT_MAX: usize = 2000;

fn text_at(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn severity(ctx: &CallContext) -> Option<String> {
    text_at(&ctx.incident, "severity").or_else(|| text_at(&ctx.alert, "severity")).map(|s| s.to_ascii_lowercase())
}

fn style_for(sev: Option<&str>) -> (ContainerStyle, Color) {
    match sev {
        Some("critical" | "high") => (ContainerStyle::Attention, Color::Attention),
        Some("medium") => (ContainerStyle::Warning, Color::Warning),
        _ => (ContainerStyle::Emphasis, Color::Good),
    }
}

fn paragraph(runs: Vec<TextRun>) -> Element {
    Element::RichTextBlock(RichTextBlock { inlines: runs, spacing: None, separator: None })
}

fn headline(badge: &str, title: &str, sev: Option<&str>) -> Element {
    let (style, color) = style_for(sev);
    Element::Container(Container {
        items: vec![paragraph(vec![
            TextRun::new(format!("{badge} ")).bold().size(Size::Medium).color(color),
            TextRun::new(cut(title, TITLE_MAX)).bold().size(Size::Medium),
        ])],
        style: Some(style),
    })
}

fn facts(list: &[(String, String)], value_max: usize) -> Option<Element> {
    if list.is_empty() {
        return None;
    }
    let mut facts: Vec<Fact> = list.iter().take(MAX_FACTS).map(|(t, v)| Fact::new(t, &cut(v, value_max))).collect();
    if list.len() > MAX_FACTS {
        facts.push(Fact::new("…", &format!("{} more not shown", list.len() - MAX_FACTS)));
    }
    Some(Element::FactSet(FactSet { facts }))
}

fn subtle(text: String) -> Element {
    Element::RichTextBlock(RichTextBlock {
        inlines: vec![TextRun::new(text).subtle().size(Size::Small)],
        spacing: Some(Spacing::Medium),
        separator: Some(true),
    })
}

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

/// The default evidence: severity, confidence, rule, source, alert count, workspace, entities.
pub(crate) fn evidence(ctx: &CallContext) -> Vec<(String, String)> {
    let mut out = Vec::new();
    if let Some(s) = severity(ctx) {
        out.push(("Severity".to_string(), s));
    }
    if let Some(c) = ctx.alert.get("confidence").and_then(Value::as_f64) {
        out.push(("Confidence".into(), format!("{:.0}%", (c * 100.0).clamp(0.0, 100.0))));
    }
    for (label, key) in [("Rule", "rule"), ("Source", "source"), ("Workspace ID", "workspace_id")] {
        if let Some(v) = text_at(&ctx.alert, key) {
            out.push((label.into(), v));
        }
    }
    if let Some(n) = text_at(&ctx.incident, "alert_count") {
        out.push(("Alerts".into(), n));
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

/// What an incident card shows (from a step's input, already validated).
#[derive(Debug, Clone, Default)]
pub(crate) struct CardSpec {
    pub title: Option<String>,
    pub text: Option<String>,
    pub facts: Vec<(String, String)>,
    pub evidence: bool,
    pub status: Option<String>,
    /// Validated http(s) links: (title, url).
    pub links: Vec<(String, String)>,
}

/// The incident card, with texts shortened as far as needed to fit Teams' 28 KB limit. What
/// cannot be shortened (links, many facts) can still exceed it; the webhook refuses to send
/// that with a clear error.
pub(crate) fn fitted_incident_card(ctx: &CallContext, spec: &CardSpec) -> Envelope {
    let mut env = incident_card(ctx, spec, FIT_TIERS[0]);
    for tier in &FIT_TIERS[1..] {
        if env.size() <= crate::client::MAX_MESSAGE_BYTES {
            break;
        }
        env = incident_card(ctx, spec, *tier);
    }
    env
}

/// The incident card: headline with severity, body, evidence, status, footer, and links
/// (floodgate's incident page first).
fn incident_card(ctx: &CallContext, spec: &CardSpec, (text_max, fact_max): (usize, usize)) -> Envelope {
    let sev = severity(ctx);
    let title = spec
        .title
        .clone()
        .or_else(|| text_at(&ctx.incident, "title"))
        .or_else(|| text_at(&ctx.alert, "title"))
        .unwrap_or_else(|| format!("floodgate incident {}", ctx.incident_id));
    let badge = format!("[{}]", sev.as_deref().unwrap_or("unknown").to_uppercase());
    let mut body = vec![headline(&badge, &title, sev.as_deref())];
    if let Some(text) = spec.text.clone().or_else(|| text_at(&ctx.alert, "description")) {
        body.push(paragraph(vec![TextRun::new(cut(&text, text_max))]));
    }
    let mut all_facts = if spec.evidence { evidence(ctx) } else { Vec::new() };
    all_facts.extend(spec.facts.iter().cloned());
    body.extend(facts(&all_facts, fact_max));
    if let Some(status) = &spec.status {
        body.push(paragraph(vec![TextRun::new("Status: ").bold(), TextRun::new(cut(status, 500))]));
    }
    body.push(subtle(footer(ctx)));
    let mut actions: Vec<Action> = Vec::new();
    actions.extend(ctx.incident_url.as_deref().and_then(|u| open_url("Open in floodgate", u, None)));
    actions.extend(spec.links.iter().filter_map(|(t, u)| open_url(t, u, None)));
    let fallback = format!("{badge} {}", cut(&title, TITLE_MAX));
    Envelope::card(AdaptiveCard::new(body, actions, fallback))
}

fn footer(ctx: &CallContext) -> String {
    let mut parts = vec!["floodgate".to_string()];
    if !ctx.incident_id.is_empty() {
        parts.push(format!("incident {}", cut(&ctx.incident_id, 100)));
    }
    if !ctx.playbook_id.is_empty() {
        parts.push(format!("playbook {}", cut(&ctx.playbook_id, 100)));
    }
    parts.join(" · ")
}

/// Everything an approval card shows (the same content as the Slack approval message).
pub use floodgate_sdk::ApprovalRequest;

/// One button on the approval card: a signed, per-approver link to floodgate's approval page.
#[derive(Debug, Clone)]
pub struct ApprovalLink {
    /// The button label, e.g. "Review as Alice".
    pub title: String,
    pub url: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApprovalCardError {
    #[error("an approval card needs at least one approval link")]
    NoLinks,
    #[error("approval link {0:?} is not an http(s) URL")]
    BadLink(String),
    #[error("the approval card is {0} bytes, over Teams' 28 KB limit even with planned requests shortened")]
    TooLarge(usize),
}

fn utc(at: OffsetDateTime) -> String {
    let u = at.to_offset(time::UtcOffset::UTC);
    format!("{:04}-{:02}-{:02} {:02}:{:02} UTC", u.year(), u8::from(u.month()), u.day(), u.hour(), u.minute())
}

/// The approval card: incident summary, evidence, planned requests, and one `Action.OpenUrl`
/// per link. Teams webhooks cannot carry buttons that call back, so each approver follows
/// their own signed link to floodgate's approval page.
pub fn approval_card(req: &ApprovalRequest, links: &[ApprovalLink]) -> Result<Envelope, ApprovalCardError> {
    if links.is_empty() {
        return Err(ApprovalCardError::NoLinks);
    }
    let mut actions = Vec::new();
    for l in links {
        actions.push(
            open_url(&l.title, &l.url, Some(ActionStyle::Positive))
                .ok_or_else(|| ApprovalCardError::BadLink(cut(&l.title, 60)))?,
        );
    }
    if let Some(a) = req.incident_url.as_deref().and_then(|u| open_url("Open incident", u, None)) {
        actions.push(a);
    }
    let sev = req.severity.as_deref().map(str::to_ascii_lowercase);
    let badge = format!("Approval needed · [{}]", sev.as_deref().unwrap_or("unknown").to_uppercase());
    let build = |request_max: usize| -> Envelope {
        let mut body = vec![headline(&badge, &req.incident_title, sev.as_deref())];
        body.push(paragraph(vec![
            TextRun::new("Action: ").bold(),
            TextRun::new(cut(&req.action, 200)).monospace(),
            TextRun::new(format!(" (risk: {})\n", req.risk)),
            TextRun::new("What it will do: ").bold(),
            TextRun::new(cut(&req.plan.summary, 1500)),
        ]));
        body.extend(facts(&req.evidence, 500));
        for (i, r) in req.plan.requests.iter().take(MAX_REQUESTS_SHOWN).enumerate() {
            let body_text =
                r.body.as_ref().map(|b| serde_json::to_string_pretty(b).unwrap_or_default()).unwrap_or_default();
            let raw = if body_text.is_empty() {
                format!("{} {}", r.method, r.url)
            } else {
                format!("{} {}\n{body_text}", r.method, r.url)
            };
            body.push(paragraph(vec![
                TextRun::new(format!("Request {}\n", i + 1)).bold(),
                TextRun::new(cut(&raw, request_max)).monospace(),
            ]));
        }
        if req.plan.requests.len() > MAX_REQUESTS_SHOWN {
            body.push(paragraph(vec![
                TextRun::new(format!(
                    "{} more planned requests; open the incident to see them",
                    req.plan.requests.len() - MAX_REQUESTS_SHOWN
                ))
                .subtle(),
            ]));
        }
        let mut meta = Vec::new();
        if let Some(a) = &req.approvers {
            meta.push(format!("Approvers: {}", cut(a, 300)));
        }
        if let Some(at) = req.expires_at {
            meta.push(format!("Expires {}", utc(at)));
        }
        meta.push(format!("Incident {}", cut(&req.incident_id, 100)));
        meta.push(format!("Approval {}", cut(&req.approval_id, 128)));
        body.push(subtle(meta.join(" · ")));
        let fallback =
            format!("Approval needed: {} (incident: {})", cut(&req.plan.summary, 300), cut(&req.incident_title, 200));
        Envelope::card(AdaptiveCard::new(body, actions.clone(), fallback))
    };
    // Shorten the planned requests until the card fits.
    for max in [REQUEST_TEXT_MAX, 800, 300] {
        let env = build(max);
        if env.size() <= crate::client::MAX_MESSAGE_BYTES {
            return Ok(env);
        }
    }
    Err(ApprovalCardError::TooLarge(build(300).size()))
}
