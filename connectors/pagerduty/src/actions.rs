//! `pagerduty.event.trigger`, `pagerduty.event.acknowledge`, `pagerduty.event.resolve`.
//!
//! Every event carries floodgate's own `dedup_key`, derived from the incident id alone, so all
//! steps and runs of one incident page one PagerDuty alert, and a repeated trigger lands on
//! the same open alert instead of paging again. On top of that, each step records the event it
//! sent under its idempotency key in `call.refs`, so a retried step sends nothing: this matters
//! for a trigger repeated after a responder resolved the alert in PagerDuty, which PagerDuty
//! would otherwise treat as a new alert.
//!
//! Inputs are optional: the default event is built from the incident and the alert.

use crate::client::{Event, EventAction, EventsApi, Link, Payload, Severity};
use floodgate_sdk::{ActionCall, ActionError, ActionOutput, ActionSpec, CallContext, Plan, RiskClass, input_schema};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};

pub const TRIGGER: &str = "event.trigger";
pub const ACKNOWLEDGE: &str = "event.acknowledge";
pub const RESOLVE: &str = "event.resolve";
const REFS_NS: &str = "pagerduty";
const SUMMARY_MAX: usize = 1024;
const DEDUP_MAX: usize = 255;

/// A link shown on the PagerDuty alert.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LinkInput {
    /// Absolute http(s) URL.
    pub href: String,
    #[serde(default)]
    pub text: Option<String>,
}

/// Input of `pagerduty.event.trigger`. Every field is optional.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerInput {
    /// Alert title in PagerDuty (at most 1024 characters; longer is cut). Default:
    /// `[SEVERITY] <incident title>`.
    #[serde(default)]
    pub summary: Option<String>,
    /// `critical`, `error`, `warning` or `info`, or a floodgate severity (`critical`, `high`,
    /// `medium`, `low`, `info`). Default: the incident's severity, mapped.
    #[serde(default)]
    pub severity: Option<String>,
    /// The affected system. Default: the alert's workspace, else its source.
    #[serde(default)]
    pub source: Option<String>,
    /// Default: the alert's source (e.g. `databricks-audit`).
    #[serde(default)]
    pub component: Option<String>,
    /// Default: the playbook id.
    #[serde(default)]
    pub group: Option<String>,
    /// Default: the alert's rule.
    #[serde(default)]
    pub class: Option<String>,
    /// Extra details, merged over floodgate's defaults (incident, alert, entities).
    #[serde(default)]
    pub custom_details: Map<String, Value>,
    /// Extra links, after the link back to floodgate.
    #[serde(default)]
    pub links: Vec<LinkInput>,
}

/// Input of `pagerduty.event.acknowledge` and `pagerduty.event.resolve`: nothing; the alert is
/// the incident's.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct UpdateInput {}

pub(crate) fn specs() -> Vec<ActionSpec> {
    let how = "dedup_key derived from the incident id (one PagerDuty alert per incident); the event sent is recorded \
               per idempotency key and a repeat sends nothing";
    vec![
        ActionSpec::new(
            TRIGGER,
            "Page on-call: trigger the incident's PagerDuty alert",
            RiskClass::Notify,
            input_schema::<TriggerInput>(),
        )
        .idempotency(how),
        ActionSpec::new(
            ACKNOWLEDGE,
            "Acknowledge the incident's PagerDuty alert",
            RiskClass::Notify,
            input_schema::<UpdateInput>(),
        )
        .idempotency(how),
        ActionSpec::new(
            RESOLVE,
            "Resolve the incident's PagerDuty alert",
            RiskClass::Notify,
            input_schema::<UpdateInput>(),
        )
        .idempotency(how),
    ]
}

/// floodgate's dedup key for an incident: `<prefix>:incident:<id>`, or a hash of the id when
/// that would exceed PagerDuty's 255 characters.
pub fn dedup_key(prefix: &str, incident_id: &str) -> String {
    let plain = format!("{prefix}:incident:{incident_id}");
    if plain.len() <= DEDUP_MAX && incident_id.chars().all(|c| !c.is_control()) {
        return plain;
    }
    let digest = hex::encode(Sha256::digest(incident_id.as_bytes()));
    format!("{prefix}:incident-sha256:{digest}")
}

fn text_at(v: &Value, key: &str) -> Option<String> {
    match v.get(key)? {
        Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

fn truncate_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        s.to_string()
    } else {
        let mut out: String = s.chars().take(max - 1).collect();
        out.push('…');
        out
    }
}

fn http_url(s: &str) -> bool {
    url::Url::parse(s).is_ok_and(|u| matches!(u.scheme(), "http" | "https"))
}

/// floodgate's default details: what a responder reading the page needs first.
fn default_details(ctx: &CallContext) -> Map<String, Value> {
    let mut d = Map::new();
    d.insert("incident_id".into(), json!(ctx.incident_id));
    for (key, from, name) in [
        ("incident_title", &ctx.incident, "title"),
        ("incident_severity", &ctx.incident, "severity"),
        ("alert_count", &ctx.incident, "alert_count"),
        ("alert_id", &ctx.alert, "id"),
        ("alert_title", &ctx.alert, "title"),
        ("rule", &ctx.alert, "rule"),
        ("alert_source", &ctx.alert, "source"),
        ("workspace_id", &ctx.alert, "workspace_id"),
        ("description", &ctx.alert, "description"),
    ] {
        if let Some(v) = from.get(name).filter(|v| !v.is_null()) {
            d.insert(key.into(), v.clone());
        }
    }
    if let Some(c) = ctx.alert.get("confidence").filter(|v| v.is_number()) {
        d.insert("confidence".into(), c.clone());
    }
    if let Some(e) = ctx.alert.get("entities").filter(|v| v.is_object()) {
        d.insert("entities".into(), e.clone());
    }
    if !ctx.playbook_id.is_empty() {
        d.insert("playbook".into(), json!(ctx.playbook_id));
    }
    if !ctx.run_id.is_empty() {
        d.insert("run_id".into(), json!(ctx.run_id));
    }
    if let Some(u) = &ctx.incident_url {
        d.insert("floodgate_url".into(), json!(u));
    }
    d
}

/// The event a step sends, identically for `plan` and `execute`.
pub(crate) fn build_event(call: &ActionCall<'_>, prefix: &str) -> Result<Event, ActionError> {
    let action = match call.action {
        TRIGGER => EventAction::Trigger,
        ACKNOWLEDGE => EventAction::Acknowledge,
        RESOLVE => EventAction::Resolve,
        other => return Err(unknown(other)),
    };
    let ctx = call.ctx;
    let incident = if ctx.incident_id.is_empty() { "<incident-id>" } else { ctx.incident_id.as_str() };
    let dedup_key = dedup_key(prefix, incident);
    if action != EventAction::Trigger {
        let _: UpdateInput = call.parse_input()?;
        return Ok(Event {
            event_action: action,
            dedup_key,
            payload: None,
            client: None,
            client_url: None,
            links: Vec::new(),
        });
    }
    let input: TriggerInput = call.parse_input()?;
    let severity = match &input.severity {
        Some(s) => Severity::from_name(s).ok_or_else(|| {
            ActionError::invalid_input(format!(
                "severity {:?} is not one of critical, error, warning, info (or floodgate's critical, high, medium, low, info)",
                truncate_chars(s, 40)
            ))
        })?,
        // Unknown or missing: page with high urgency rather than miss a security incident.
        None => text_at(&ctx.incident, "severity")
            .or_else(|| text_at(&ctx.alert, "severity"))
            .and_then(|s| Severity::from_name(&s))
            .unwrap_or(Severity::Error),
    };
    let title = text_at(&ctx.incident, "title")
        .or_else(|| text_at(&ctx.alert, "title"))
        .unwrap_or_else(|| format!("floodgate incident {incident}"));
    let sev_label = text_at(&ctx.incident, "severity")
        .or_else(|| text_at(&ctx.alert, "severity"))
        .unwrap_or_else(|| "unknown".into())
        .to_uppercase();
    let summary = input.summary.clone().unwrap_or_else(|| format!("[{sev_label}] {title}"));
    let source = input
        .source
        .clone()
        .or_else(|| ctx.alert.get("entities").and_then(|e| text_at(e, "workspace")))
        .or_else(|| text_at(&ctx.alert, "workspace_id").map(|w| format!("databricks-workspace-{w}")))
        .or_else(|| text_at(&ctx.alert, "source"))
        .unwrap_or_else(|| "floodgate".into());
    // PagerDuty wants an ISO 8601 time; only pass the alert's on if it is one.
    let timestamp = text_at(&ctx.alert, "received_at")
        .filter(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).is_ok());
    let mut custom_details = default_details(ctx);
    custom_details.extend(input.custom_details.clone());
    let mut links = Vec::new();
    if let Some(u) = ctx.incident_url.as_deref().filter(|u| http_url(u)) {
        links.push(Link { href: u.to_string(), text: Some("Open the incident in floodgate".into()) });
    }
    for l in &input.links {
        if !http_url(&l.href) {
            return Err(ActionError::invalid_input(format!(
                "link href {:?} is not an http(s) URL",
                truncate_chars(&l.href, 80)
            )));
        }
        links.push(Link { href: l.href.clone(), text: l.text.clone() });
    }
    Ok(Event {
        event_action: action,
        dedup_key,
        payload: Some(Payload {
            summary: truncate_chars(&summary, SUMMARY_MAX),
            source: truncate_chars(&source, 255),
            severity,
            timestamp,
            component: input.component.clone().or_else(|| text_at(&ctx.alert, "source")),
            group: input.group.clone().or_else(|| (!ctx.playbook_id.is_empty()).then(|| ctx.playbook_id.clone())),
            class: input.class.clone().or_else(|| text_at(&ctx.alert, "rule")),
            custom_details,
        }),
        client: Some("floodgate".into()),
        client_url: ctx.incident_url.clone().filter(|u| http_url(u)),
        links,
    })
}

pub(crate) fn plan(api: &EventsApi, call: &ActionCall<'_>, prefix: &str) -> Result<Plan, ActionError> {
    let event = build_event(call, prefix)?;
    let req = api.request(&event)?;
    let summary = match event.event_action {
        EventAction::Trigger => format!(
            "page PagerDuty: trigger alert {} ({:?})",
            event.dedup_key,
            event.payload.as_ref().map(|p| p.summary.clone()).unwrap_or_default()
        ),
        a => format!("{} PagerDuty alert {}", a.as_str(), event.dedup_key),
    };
    Ok(Plan { summary, requests: vec![req.planned()] })
}

pub(crate) async fn execute(api: &EventsApi, call: &ActionCall<'_>, prefix: &str) -> Result<ActionOutput, ActionError> {
    if call.ctx.incident_id.is_empty() {
        return Err(ActionError::invalid_input(
            "PagerDuty events need an incident: the dedup key is derived from the incident id",
        ));
    }
    let event = build_event(call, prefix)?;
    let key = format!("event:{}", call.idempotency_key);
    if let Some(done) = call.refs.get(REFS_NS, &key).await? {
        let mut out = done;
        out["outcome"] = json!("already_sent");
        return Ok(ActionOutput::new(out));
    }
    let accepted = api.send(&event).await?;
    let record = json!({
        "dedup_key": accepted.dedup_key.clone().unwrap_or_else(|| event.dedup_key.clone()),
        "event_action": event.event_action.as_str(),
        "status": accepted.status,
        "message": accepted.message,
    });
    call.refs.put(REFS_NS, &key, &record).await?;
    let mut out = record;
    out["outcome"] = json!("sent");
    Ok(ActionOutput::new(out).with_note(format!("PagerDuty {} for {}", event.event_action.as_str(), event.dedup_key)))
}

pub(crate) fn unknown(action: &str) -> ActionError {
    ActionError::permanent(
        "unknown_action",
        format!("pagerduty has no action {action:?} (it has {TRIGGER}, {ACKNOWLEDGE} and {RESOLVE})"),
    )
}
