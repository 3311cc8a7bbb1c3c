//! Ticket content built from the call context: default summary, the evidence table, the link
//! back to floodgate, and the two renderings of a description (ADF for Cloud, escaped plain text
//! for Data Center).
//!
//! Everything read from `ctx.alert` is attacker-controlled. It only ever becomes ADF text nodes
//! (see `adf`) or wiki text with every markup character escaped; it must never be pasted into
//! JSON or markup. Links are made only from floodgate's own `incident_url`.

use crate::adf::{self, Doc};
use crate::config::Fact;
use floodgate_sdk::CallContext;
use serde_json::Value;

/// Jira's limit on `summary`.
pub const SUMMARY_MAX: usize = 255;
/// Jira's limit on a text field such as `description` or a comment body.
pub const TEXT_MAX: usize = 32_000;

/// A string from a JSON scalar (or an array of scalars), or `None` for null, empty or objects.
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

/// The incident's title, falling back to the alert's, then to its id.
pub fn incident_title(ctx: &CallContext) -> String {
    scalar(ctx.incident.get("title"))
        .or_else(|| scalar(ctx.alert.get("title")))
        .unwrap_or_else(|| format!("incident {}", ctx.incident_id))
}

/// The incident's severity (`info` … `critical`), falling back to the alert's.
pub fn severity(ctx: &CallContext) -> Option<String> {
    scalar(ctx.incident.get("severity")).or_else(|| scalar(ctx.alert.get("severity")))
}

/// floodgate's link to the incident, only when it is an absolute http(s) URL.
pub fn incident_url(ctx: &CallContext) -> Option<String> {
    let raw = ctx.incident_url.as_deref()?;
    let url = url::Url::parse(raw).ok()?;
    matches!(url.scheme(), "http" | "https").then(|| url.to_string())
}

/// One line, at most `max` bytes: Jira refuses newlines in `summary`.
pub fn one_line(s: &str, max: usize) -> String {
    let flat: String = adf::clean(s).chars().map(|c| if c == '\n' || c == '\t' { ' ' } else { c }).collect();
    floodgate_sdk::text::truncate(flat.trim(), max)
}

pub fn default_summary(ctx: &CallContext) -> String {
    let sev = severity(ctx).map(|s| format!(" ({s})")).unwrap_or_default();
    one_line(&format!("[floodgate] {}{sev}", incident_title(ctx)), SUMMARY_MAX)
}

/// The alert evidence as (field, value) rows, in a fixed order; unknown values are left out.
pub fn evidence(ctx: &CallContext) -> Vec<(String, String)> {
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
            push(&format!("Entity: {k}"), scalar(Some(v)));
        }
    }
    rows
}

fn alert_description(ctx: &CallContext) -> Option<String> {
    scalar(ctx.alert.get("description"))
}

const LABEL_NOTE: &str = "floodgate finds this issue again by its label";

/// The Cloud description: the author's text (or a default intro), the evidence table, the
/// alert's own description and the link back to floodgate.
pub fn description_adf(ctx: &CallContext, text: Option<&str>, evidence_on: bool, label: &str) -> Doc {
    let mut doc = Doc::new();
    match text {
        Some(t) => doc.content.extend(adf::paragraphs(t)),
        None => {
            let mut intro = adf::text("floodgate opened incident ");
            intro.extend(adf::code(&ctx.incident_id));
            intro.extend(adf::text(": "));
            intro.extend(adf::strong(&incident_title(ctx)));
            doc.push(adf::paragraph(intro));
        }
    }
    if evidence_on {
        let rows = evidence(ctx);
        if !rows.is_empty() {
            doc.push(adf::heading(3, "Alert evidence"));
            doc.push(adf::key_value_table(("Field", "Value"), &rows));
        }
        if let Some(d) = alert_description(ctx) {
            doc.push(adf::heading(3, "Alert description"));
            doc.content.extend(adf::paragraphs(&floodgate_sdk::text::truncate(&d, 4000)));
        }
    }
    if let Some(url) = incident_url(ctx) {
        doc.push(adf::paragraph(adf::link("Open the incident in floodgate", &url)));
    }
    let mut note = adf::text(&format!("{LABEL_NOTE} "));
    note.extend(adf::code(label));
    note.extend(adf::text("."));
    doc.push(adf::paragraph(note));
    doc
}

/// The Data Center description: the same content as plain text, every wiki-markup character
/// escaped, with a wiki table for the evidence.
pub fn description_wiki(ctx: &CallContext, text: Option<&str>, evidence_on: bool, label: &str) -> String {
    let mut out = String::new();
    match text {
        Some(t) => out.push_str(&wiki_escape(&adf::clean(t))),
        None => out.push_str(&format!(
            "floodgate opened incident {}: *{}*",
            wiki_escape(&ctx.incident_id),
            wiki_escape(&one_line(&incident_title(ctx), 500))
        )),
    }
    out.push_str("\n\n");
    if evidence_on {
        let rows = evidence(ctx);
        if !rows.is_empty() {
            out.push_str("h3. Alert evidence\n||Field||Value||\n");
            for (k, v) in &rows {
                out.push_str(&format!("|{}|{}|\n", wiki_escape(k), wiki_escape(v)));
            }
            out.push('\n');
        }
        if let Some(d) = alert_description(ctx) {
            out.push_str("h3. Alert description\n");
            out.push_str(&wiki_escape(&adf::clean(&floodgate_sdk::text::truncate(&d, 4000))));
            out.push_str("\n\n");
        }
    }
    if let Some(url) = incident_url(ctx) {
        out.push_str(&format!("[Open the incident in floodgate|{}]\n\n", wiki_link_target(&url)));
    }
    out.push_str(&format!("{LABEL_NOTE} {}.", wiki_escape(label)));
    floodgate_sdk::text::truncate(&out, TEXT_MAX)
}

/// Escapes Jira wiki markup so the text renders literally: links, macros, images, tables,
/// mentions and inline formatting all start with one of these characters.
pub fn wiki_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if matches!(c, '\\' | '[' | ']' | '{' | '}' | '|' | '!' | '*' | '_' | '^' | '~' | '+' | '-' | '?' | '#') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A URL made safe for `[label|url]`: the characters that would end the link are percent-encoded.
fn wiki_link_target(url: &str) -> String {
    url.replace('|', "%7C").replace(']', "%5D").replace('[', "%5B").replace(' ', "%20")
}

/// A label Jira accepts (no whitespace, at most 255 characters) from any string.
pub fn label_for(prefix: &str, incident_id: &str) -> String {
    let id: String = incident_id
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '-' })
        .collect();
    floodgate_sdk::text::truncate(&format!("{prefix}{id}"), 255)
}

/// The value of a fact for a mapped field, if floodgate knows it.
pub fn fact(ctx: &CallContext, fact: Fact) -> Option<String> {
    let ent = |k: &str| scalar(ctx.alert.get("entities").and_then(|e| e.get(k)));
    match fact {
        Fact::IncidentId => Some(ctx.incident_id.clone()).filter(|s| !s.is_empty()),
        Fact::IncidentUrl => incident_url(ctx),
        Fact::Severity => severity(ctx),
        Fact::AlertRule => scalar(ctx.alert.get("rule")),
        Fact::AlertSource => scalar(ctx.alert.get("source")),
        Fact::SourceIp => ent("source_ip"),
        Fact::User => ent("user"),
        Fact::Workspace => scalar(ctx.alert.get("workspace_id")).or_else(|| ent("workspace")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> CallContext {
        CallContext {
            incident_id: "inc 42/x".into(),
            incident: json!({"id": "inc 42/x", "title": "Exfil\nfrom ws", "severity": "high", "alert_count": 3}),
            alert: json!({"title": "Big download", "rule": "exfil", "confidence": 0.9,
                "entities": {"source_ip": "203.0.113.9", "user": "[x|http://evil]"},
                "description": "{html}<b>x</b>{html}"}),
            incident_url: Some("https://fg.example.com/incidents/42".into()),
            ..Default::default()
        }
    }

    #[test]
    fn labels_have_no_spaces_and_summaries_one_line() {
        assert_eq!(label_for("floodgate-", "inc 42/x"), "floodgate-inc-42-x");
        assert_eq!(default_summary(&ctx()), "[floodgate] Exfil from ws (high)");
    }

    #[test]
    fn wiki_description_escapes_untrusted_markup() {
        let d = description_wiki(&ctx(), None, true, "floodgate-inc-42-x");
        assert!(d.contains("|Entity: user|\\[x\\|http://evil\\]|"), "{d}");
        assert!(d.contains("\\{html\\}"), "{d}");
        assert!(d.contains("[Open the incident in floodgate|https://fg.example.com/incidents/42]"));
        assert!(!d.contains("[x|"), "{d}");
    }

    #[test]
    fn adf_description_has_table_and_link() {
        let v = description_adf(&ctx(), None, true, "floodgate-inc-42-x").to_value();
        let types: Vec<&str> = v["content"].as_array().unwrap().iter().map(|b| b["type"].as_str().unwrap()).collect();
        assert_eq!(types, ["paragraph", "heading", "table", "heading", "paragraph", "paragraph", "paragraph"]);
        assert!(adf::texts(&v).contains(&"[x|http://evil]"));
    }
}
