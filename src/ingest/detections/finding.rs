//! One result row of a detection's statement → one `Alert`.
//!
//! The alert's external id is the detection id plus the row's key columns, so the same finding
//! seen again (a later window's overlap, a window re-run after a crash, a second process) is a
//! duplicate of the first and never a second alert. Values from the row are data: they fill
//! entities and fields and are rendered into the title by templates with autoescape off, and
//! connectors escape them for their targets. Nothing here goes back into SQL.

use super::model::Detection;
use crate::alert::{Alert, ENTITY_SOURCE_IP};
use crate::playbook::Severity;
use floodgate_sdk::text::truncate;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

const MAX_TITLE: usize = 500;
const MAX_TEXT: usize = 4000;
const MAX_ENTITY: usize = 256;
/// Readable external ids up to this length; longer keys are hashed.
const MAX_READABLE_ID: usize = 200;

/// The window a statement covered (Unix ms; `until` exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub since: i64,
    pub until: i64,
}

impl Window {
    pub fn to_json(self) -> Value {
        json!({"since": crate::clock::rfc3339(self.since), "until": crate::clock::rfc3339(self.until)})
    }
}

/// A row that cannot become an alert: the detection and its SQL disagree.
#[derive(Debug, Clone, thiserror::Error)]
#[error("detection {detection}: {message}")]
pub struct RowError {
    pub detection: String,
    pub message: String,
}

/// A scalar as text; `None` for null.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn strip_port(ip: &str) -> String {
    match ip.rsplit_once(':') {
        Some((host, port)) if host.contains('.') && !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            host.to_string()
        }
        _ => ip.to_string(),
    }
}

/// `<detection id>:<key values joined by |>`, or `<detection id>:sha256:<hex>` when long.
pub fn external_id(d: &Detection, row: &Map<String, Value>) -> Result<String, RowError> {
    let mut parts = Vec::with_capacity(d.alert.key.len());
    for col in &d.alert.key {
        let v = row.get(col).ok_or_else(|| RowError {
            detection: d.id.clone(),
            message: format!(
                "the result has no column {col:?} named in alert.key (columns: {}); alias it in the SQL or change alert.key",
                row.keys().cloned().collect::<Vec<_>>().join(", ")
            ),
        })?;
        parts.push(text(v).unwrap_or_else(|| "null".into()));
    }
    let key = parts.join("|");
    if key.len() <= MAX_READABLE_ID {
        Ok(format!("{}:{key}", d.id))
    } else {
        Ok(format!("{}:sha256:{}", d.id, hex::encode(Sha256::digest(key.as_bytes()))))
    }
}

/// The template context: `row`, `detection`, `window`.
fn context(d: &Detection, row: &Map<String, Value>, window: Window) -> tera::Context {
    let mut ctx = tera::Context::new();
    ctx.insert("row", row);
    ctx.insert("detection", &detection_json(d));
    ctx.insert("window", &window.to_json());
    ctx
}

fn detection_json(d: &Detection) -> Value {
    json!({
        "id": d.id,
        "title": d.title,
        "severity": d.severity.as_str(),
        "tactic": d.tactic,
        "technique": d.technique,
        "hash": d.hash,
    })
}

/// Builds the alert for one row. `id` and `now` become the alert's own id and receipt time.
pub fn alert(
    d: &Detection,
    source: &str,
    workspace: &str,
    row: &Map<String, Value>,
    window: Window,
    id: String,
    now: i64,
) -> Result<Alert, RowError> {
    let external_id = external_id(d, row)?;
    let ctx = context(d, row, window);
    // A title that cannot render for this row must not lose the finding: fall back to the
    // detection's title and say why in the log.
    let title = d.templates.render_text(&d.alert.title, &ctx).unwrap_or_else(|e| {
        tracing::warn!(detection = %d.id, error = %e, "alert.title did not render for a row; using the detection title");
        d.title.clone()
    });
    let description = match &d.alert.description {
        Some(t) => d.templates.render_text(t, &ctx).unwrap_or_else(|e| {
            tracing::warn!(detection = %d.id, error = %e, "alert.description did not render for a row");
            d.description.clone()
        }),
        None => d.description.clone(),
    };
    let severity = d
        .alert
        .severity_column
        .as_ref()
        .and_then(|c| row.get(c))
        .and_then(text)
        .and_then(|s| Severity::parse(&s))
        .unwrap_or(d.severity);
    let mut entities = BTreeMap::new();
    for (name, col) in &d.alert.entities {
        if let Some(v) = row.get(col).and_then(text).filter(|v| !v.is_empty()) {
            let v = if name == ENTITY_SOURCE_IP { strip_port(&v) } else { v };
            entities.insert(name.clone(), truncate(&v, MAX_ENTITY));
        }
    }
    let workspace_id = entities.get("workspace").filter(|w| w.as_str() != "0").cloned();
    let mut fields = Map::new();
    for (name, col) in &d.alert.fields {
        fields.insert(name.clone(), row.get(col).cloned().unwrap_or(Value::Null));
    }
    let mut det = detection_json(d);
    det["workspace"] = json!(workspace);
    fields.insert("detection".into(), det);
    fields.insert("window".into(), window.to_json());
    fields.insert("row".into(), Value::Object(row.clone()));
    Ok(Alert {
        id,
        source: source.to_string(),
        external_id,
        rule: Some(d.rule()),
        title: truncate(&title, MAX_TITLE),
        description: truncate(&description, MAX_TEXT),
        severity,
        confidence: d.confidence,
        workspace_id,
        entities,
        fields: Value::Object(fields),
        received_at: now,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detection(extra: &str) -> Detection {
        let yaml = format!(
            "id: brute\ntitle: Brute force\nseverity: medium\nsql: \"SELECT * FROM t WHERE e >= :since AND e < :until\"\nalert:\n  title: \"{{{{ row.user }}}} failed {{{{ row.n }}}} times\"\n  key: [user, hour]\n  entities: {{user: user, source_ip: ip, workspace: ws}}\n{extra}"
        );
        super::super::model::compile(yaml.as_bytes(), "brute.yaml").unwrap_or_else(|d| panic!("{d:?}"))
    }

    fn row(v: Value) -> Map<String, Value> {
        v.as_object().unwrap().clone()
    }

    #[test]
    fn rows_become_alerts_with_stable_ids() {
        let d = detection("");
        let w = Window { since: 0, until: 3_600_000 };
        let r = row(
            json!({"user": "eve@corp.example", "hour": "2026-09-01T03:00:00.000Z", "n": 6, "ip": "203.0.113.9:443", "ws": "0"}),
        );
        let a = alert(&d, "databricks-detection", "prod", &r, w, "alr_1".into(), 5).unwrap();
        assert_eq!(a.external_id, "brute:eve@corp.example|2026-09-01T03:00:00.000Z");
        assert_eq!(a.title, "eve@corp.example failed 6 times");
        assert_eq!(a.rule.as_deref(), Some("detection:brute"));
        assert_eq!(a.entities["source_ip"], "203.0.113.9");
        assert_eq!(a.workspace_id, None, "account-level rows carry workspace 0");
        assert_eq!(a.fields["row"]["n"], 6);
        assert_eq!(a.fields["detection"]["workspace"], "prod");
        // The same key with a different count is the same finding.
        let again =
            row(json!({"user": "eve@corp.example", "hour": "2026-09-01T03:00:00.000Z", "n": 9, "ip": "x", "ws": "1"}));
        assert_eq!(external_id(&d, &again).unwrap(), a.external_id);
        let missing = alert(&d, "s", "prod", &row(json!({"user": "x"})), w, "a".into(), 0).unwrap_err();
        assert!(missing.message.contains("no column \"hour\""), "{missing}");
    }

    #[test]
    fn long_keys_are_hashed_and_titles_fall_back() {
        let d = detection("");
        let long = "u".repeat(300);
        let r = row(json!({"user": long, "hour": 1}));
        let a = alert(&d, "s", "prod", &r, Window { since: 0, until: 1 }, "a".into(), 0).unwrap();
        assert!(a.external_id.starts_with("brute:sha256:"), "{}", a.external_id);
        assert_eq!(a.title, "Brute force", "the title template needs row.n, which this row lacks");
    }
}
