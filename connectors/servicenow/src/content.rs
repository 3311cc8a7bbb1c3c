//! Incident content built from the call context: short description, the plain-text description
//! with the alert evidence and the link back to floodgate, and the severity → urgency/impact
//! mapping.
//!
//! `description` and `work_notes` are plain-text fields, so untrusted alert text goes in as text
//! (control characters removed, lengths capped) inside a serde value; it is never pasted into
//! JSON or into an encoded query.

use floodgate_sdk::CallContext;
use serde_json::Value;

/// `incident.short_description` is 160 characters by default.
pub const SHORT_MAX: usize = 160;
/// `incident.description` and journal entries: 4000 characters by default.
pub const TEXT_MAX: usize = 4000;

fn scalar(v: Option<&Value>) -> Option<String> {
    let s = match v? {
        Value::String(s) => s.trim().to_string(),
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Array(items) => items.iter().filter_map(|i| scalar(Some(i))).collect::<Vec<_>>().join(", "),
        _ => return None,
    };
    (!s.is_empty()).then_some(s)
}

/// Removes control characters other than newline and tab.
pub fn clean(s: &str) -> String {
    s.chars().filter(|c| !c.is_control() || *c == '\n' || *c == '\t').collect()
}

pub fn one_line(s: &str, max: usize) -> String {
    let flat: String = clean(s).chars().map(|c| if c == '\n' || c == '\t' { ' ' } else { c }).collect();
    floodgate_sdk::text::truncate(flat.trim(), max)
}

pub fn title(ctx: &CallContext) -> String {
    scalar(ctx.incident.get("title"))
        .or_else(|| scalar(ctx.alert.get("title")))
        .unwrap_or_else(|| format!("incident {}", ctx.incident_id))
}

pub fn severity(ctx: &CallContext) -> Option<String> {
    scalar(ctx.incident.get("severity")).or_else(|| scalar(ctx.alert.get("severity")))
}

pub fn incident_url(ctx: &CallContext) -> Option<String> {
    let url = url::Url::parse(ctx.incident_url.as_deref()?).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.to_string())
}

pub fn default_short_description(ctx: &CallContext) -> String {
    one_line(&format!("[floodgate] {}", title(ctx)), SHORT_MAX)
}

/// (urgency, impact) for a severity: critical → 1/1 (priority 1) … info → 3/3 (priority 5).
pub fn urgency_impact(severity: Option<&str>) -> (&'static str, &'static str) {
    match severity {
        Some("critical") => ("1", "1"),
        Some("high") => ("1", "2"),
        Some("medium") => ("2", "2"),
        Some("low") => ("2", "3"),
        _ => ("3", "3"),
    }
}

fn evidence(ctx: &CallContext) -> Vec<(String, String)> {
    let a = &ctx.alert;
    let mut rows = Vec::new();
    let mut push = |k: &str, v: Option<String>| {
        if let Some(v) = v {
            rows.push((k.to_string(), one_line(&v, 500)));
        }
    };
    push("Incident", Some(ctx.incident_id.clone()).filter(|s| !s.is_empty()));
    push("Severity", severity(ctx));
    push("Alert", scalar(a.get("title")));
    push("Rule", scalar(a.get("rule")));
    push("Source", scalar(a.get("source")));
    push("Confidence", a.get("confidence").and_then(Value::as_f64).map(|c| format!("{c:.2}")));
    push("Workspace", scalar(a.get("workspace_id")));
    push("Received", scalar(a.get("received_at")));
    push("Alerts in incident", scalar(ctx.incident.get("alert_count")));
    if let Some(Value::Object(entities)) = a.get("entities") {
        for (k, v) in entities {
            push(&format!("Entity {k}"), scalar(Some(v)));
        }
    }
    rows
}

/// The description: the author's text (or an intro), the evidence as `Field: value` lines, the
/// alert's own description and the link back to floodgate.
pub fn description(ctx: &CallContext, text: Option<&str>, with_evidence: bool) -> String {
    let mut out = match text {
        Some(t) => clean(t),
        None => format!("floodgate opened incident {}: {}", ctx.incident_id, one_line(&title(ctx), 500)),
    };
    if with_evidence {
        let rows = evidence(ctx);
        if !rows.is_empty() {
            out.push_str("\n\nAlert evidence\n");
            for (k, v) in rows {
                out.push_str(&format!("- {k}: {v}\n"));
            }
        }
        if let Some(d) = scalar(ctx.alert.get("description")) {
            out.push_str("\nAlert description\n");
            out.push_str(&clean(&floodgate_sdk::text::truncate(&d, 1500)));
            out.push('\n');
        }
    }
    if let Some(u) = incident_url(ctx) {
        out.push_str(&format!("\nfloodgate: {u}\n"));
    }
    floodgate_sdk::text::truncate(out.trim_end(), TEXT_MAX)
}

/// The correlation_id of an incident: the prefix plus the incident id, reduced to characters
/// that cannot change an encoded query, at most 100 characters (the column's default size).
pub fn correlation_id(prefix: &str, incident_id: &str) -> String {
    let id: String = incident_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | ':') { c } else { '-' })
        .collect();
    floodgate_sdk::text::truncate(&format!("{prefix}{id}"), 100)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn correlation_ids_are_query_safe() {
        assert_eq!(correlation_id("floodgate-", "inc^ORactive=true"), "floodgate-inc-ORactive-true");
    }

    #[test]
    fn description_lists_evidence_and_link() {
        let ctx = CallContext {
            incident_id: "inc-1".into(),
            incident: json!({"title": "Exfil", "severity": "high"}),
            alert: json!({"entities": {"source_ip": "203.0.113.9"}, "description": "bad\u{0}stuff"}),
            incident_url: Some("https://fg/i/1".into()),
            ..Default::default()
        };
        let d = description(&ctx, None, true);
        assert!(d.starts_with("floodgate opened incident inc-1: Exfil"), "{d}");
        assert!(d.contains("- Entity source_ip: 203.0.113.9"), "{d}");
        assert!(d.contains("badstuff"), "{d}");
        assert!(d.ends_with("floodgate: https://fg/i/1"), "{d}");
        assert_eq!(urgency_impact(Some("critical")), ("1", "1"));
    }
}
