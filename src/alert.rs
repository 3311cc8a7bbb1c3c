//! The normalized alert: what every source format becomes, and what templates see as `alert`.

use crate::playbook::Severity;
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// Well-known entity names connectors and playbooks rely on.
pub const ENTITY_USER: &str = "user";
pub const ENTITY_SOURCE_IP: &str = "source_ip";

#[derive(Debug, Clone, Serialize)]
pub struct Alert {
    pub id: String,
    pub source: String,
    /// The sender's own id; `(source, external_id)` is unique, so a redelivery is a duplicate.
    pub external_id: String,
    /// Rule or detection id (`audit:accounts.login`, a SQL alert id, ...).
    pub rule: Option<String>,
    pub title: String,
    pub description: String,
    pub severity: Severity,
    /// 0.0–1.0.
    pub confidence: f64,
    pub workspace_id: Option<String>,
    /// `user`, `source_ip`, `workspace`, `table`, `token`, ... (strings).
    pub entities: BTreeMap<String, String>,
    /// Everything else the source sent that a playbook may want, format-specific.
    pub fields: Value,
    /// Unix milliseconds.
    pub received_at: i64,
}

impl Alert {
    /// The alert as templates and connectors see it.
    pub fn to_json(&self) -> Value {
        json!({
            "id": self.id,
            "source": self.source,
            "external_id": self.external_id,
            "rule": self.rule,
            "title": self.title,
            "description": self.description,
            "severity": self.severity.as_str(),
            "confidence": self.confidence,
            "workspace_id": self.workspace_id,
            "entities": self.entities.iter().map(|(k, v)| (k.clone(), Value::String(v.clone()))).collect::<Map<String, Value>>(),
            "fields": self.fields,
            "received_at": crate::clock::rfc3339(self.received_at),
        })
    }
}
