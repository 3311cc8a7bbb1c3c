//! Source formats: turning what a sender posts into a normalized `Alert`.
//!
//! - `generic`: any JSON object; `[sources.mapping]` says (as JSON pointers) where the id,
//!   title, severity, confidence, rule and entities are.
//! - `databricks-sql-alert`: the notification a Databricks SQL alert sends (v2 payload).
//!   Unknown fields are ignored and optional ones may be missing, as Databricks asks.
//! - `databricks-audit`: one `system.access.audit` row (or a delivered audit-log record, whose
//!   keys are camelCase).
//!
//! Errors name the field that is wrong, for the sender's 400 response.

use crate::alert::{Alert, ENTITY_SOURCE_IP, ENTITY_USER};
use crate::config::{FieldMapping, SourceConfig, SourceFormat};
use crate::playbook::Severity;
use floodgate_sdk::text::truncate;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

const MAX_TITLE: usize = 500;
const MAX_TEXT: usize = 4000;
const MAX_ID: usize = 256;

/// A scalar as text (strings as-is, numbers and booleans printed); `None` for null/missing.
fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.is_empty() => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn severity_of(v: Option<&Value>, default: Severity) -> Result<Severity, String> {
    match v {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) => {
            Severity::parse(s).ok_or_else(|| format!("severity {s:?} is not info, low, medium, high or critical"))
        }
        // Numeric severities 1–5 (common in SIEMs).
        Some(Value::Number(n)) => match n.as_u64() {
            Some(1) => Ok(Severity::Info),
            Some(2) => Ok(Severity::Low),
            Some(3) => Ok(Severity::Medium),
            Some(4) => Ok(Severity::High),
            Some(5) => Ok(Severity::Critical),
            _ => Err(format!("severity {n} is not 1–5 or a name")),
        },
        Some(other) => Err(format!("severity must be a string, found {other}")),
    }
}

/// Confidence as 0.0–1.0; 1–100 is read as a percentage.
fn confidence_of(v: Option<&Value>, default: f64) -> Result<f64, String> {
    let c = match v {
        None | Some(Value::Null) => return Ok(default),
        Some(Value::Number(n)) => n.as_f64().unwrap_or(-1.0),
        Some(Value::String(s)) => s.trim().parse::<f64>().map_err(|_| format!("confidence {s:?} is not a number"))?,
        Some(other) => return Err(format!("confidence must be a number, found {other}")),
    };
    let c = if c > 1.0 && c <= 100.0 { c / 100.0 } else { c };
    if !(0.0..=1.0).contains(&c) || c.is_nan() {
        return Err(format!("confidence {c} is not between 0 and 1 (or 0 and 100)"));
    }
    Ok(c)
}

/// Strips a `:port` suffix from an IPv4 address (audit logs sometimes carry one).
fn strip_port(ip: &str) -> String {
    match ip.rsplit_once(':') {
        Some((host, port)) if host.contains('.') && !host.contains(':') && port.chars().all(|c| c.is_ascii_digit()) => {
            host.to_string()
        }
        _ => ip.to_string(),
    }
}

/// Normalizes a posted body. `id` and `now` become the alert's own id and receipt time.
pub fn normalize(src: &SourceConfig, body: &Value, id: String, now: i64) -> Result<Alert, String> {
    if !body.is_object() {
        return Err("the body must be a JSON object".into());
    }
    let default_sev = src.default_severity.as_deref().and_then(Severity::parse).unwrap_or(Severity::Medium);
    let default_conf = src.default_confidence.unwrap_or(0.5);
    let mut alert = match src.format {
        SourceFormat::Generic => generic(&src.mapping, body, default_sev, default_conf)?,
        SourceFormat::DatabricksSqlAlert => sql_alert(body, default_sev, default_conf, now)?,
        SourceFormat::DatabricksAudit => audit(body, default_sev, default_conf)?,
    };
    alert.id = id;
    alert.source = src.name.clone();
    alert.received_at = now;
    alert.title = truncate(&alert.title, MAX_TITLE);
    alert.description = truncate(&alert.description, MAX_TEXT);
    if alert.external_id.len() > MAX_ID {
        alert.external_id = format!("sha256:{}", hex::encode(Sha256::digest(alert.external_id.as_bytes())));
    }
    alert.entities.retain(|_, v| !v.is_empty());
    for v in alert.entities.values_mut() {
        *v = truncate(v, MAX_ID);
    }
    Ok(alert)
}

fn blank(external_id: String, title: String, severity: Severity, confidence: f64) -> Alert {
    Alert {
        id: String::new(),
        source: String::new(),
        external_id,
        rule: None,
        title,
        description: String::new(),
        severity,
        confidence,
        workspace_id: None,
        entities: BTreeMap::new(),
        fields: Value::Null,
        received_at: 0,
    }
}

fn generic(m: &FieldMapping, body: &Value, sev: Severity, conf: f64) -> Result<Alert, String> {
    let ptr = |p: &Option<String>, default: &str| p.clone().unwrap_or_else(|| default.to_string());
    let id_ptr = ptr(&m.id, "/id");
    let external_id = text(body.pointer(&id_ptr))
        .ok_or_else(|| format!("missing alert id at {id_ptr} (set [sources.mapping] id to where it is)"))?;
    let title_ptr = ptr(&m.title, "/title");
    let title = text(body.pointer(&title_ptr)).unwrap_or_else(|| format!("alert {external_id}"));
    let sev_ptr = ptr(&m.severity, "/severity");
    let severity = severity_of(body.pointer(&sev_ptr), sev).map_err(|e| format!("{sev_ptr}: {e}"))?;
    let conf_ptr = ptr(&m.confidence, "/confidence");
    let confidence = confidence_of(body.pointer(&conf_ptr), conf).map_err(|e| format!("{conf_ptr}: {e}"))?;
    let mut a = blank(external_id, title, severity, confidence);
    a.rule = text(body.pointer(&ptr(&m.rule, "/rule")));
    a.description = text(body.pointer(&ptr(&m.description, "/description"))).unwrap_or_default();
    a.workspace_id = text(body.pointer(&ptr(&m.workspace_id, "/workspace_id")));
    if m.entities.is_empty() {
        if let Some(Value::Object(e)) = body.get("entities") {
            for (k, v) in e {
                if let Some(t) = text(Some(v)) {
                    a.entities.insert(k.clone(), t);
                }
            }
        }
    } else {
        for (name, p) in &m.entities {
            if let Some(t) = text(body.pointer(p)) {
                a.entities.insert(name.clone(), t);
            }
        }
    }
    if let Some(ip) = a.entities.get_mut(ENTITY_SOURCE_IP) {
        *ip = strip_port(ip);
    }
    a.fields = body.clone();
    Ok(a)
}

/// The state a SQL alert reports: an evaluation's state, else the title's "changed status to X".
fn sql_alert_state(inner: &Value, title: &str) -> Option<String> {
    let from_eval = inner["evaluations"]
        .as_array()
        .and_then(|evs| evs.iter().find_map(|e| text(e.get("state")).or_else(|| text(e.get("state_UNVERIFIED")))));
    from_eval.or_else(|| {
        title
            .rsplit_once("changed status to ")
            .map(|(_, s)| s.trim().trim_end_matches('.').split_whitespace().next().unwrap_or("").to_ascii_uppercase())
            .filter(|s| !s.is_empty())
    })
}

fn sql_alert(body: &Value, sev: Severity, conf: f64, now: i64) -> Result<Alert, String> {
    let outer = body
        .get("alert")
        .filter(|v| v.is_object())
        .ok_or("not a Databricks SQL alert notification: the alert object is missing")?;
    let inner = outer.get("alert").filter(|v| v.is_object()).unwrap_or(&Value::Null);
    let alert_id = text(inner.get("id"))
        .or_else(|| text(outer.get("id")))
        .ok_or("not a Databricks SQL alert notification: alert.alert.id is missing")?;
    let name = text(inner.get("name")).unwrap_or_else(|| format!("SQL alert {alert_id}"));
    let title = text(outer.get("title")).unwrap_or_else(|| format!("Alert \"{name}\""));
    let state = sql_alert_state(inner, &title).unwrap_or_else(|| "UNKNOWN".into());
    // The payload carries no evaluation time: a redelivery of the same notification (same
    // content, within the re-trigger interval) is the same alert; a later re-trigger is new and
    // joins the incident through grouping.
    let retrigger = inner["evaluations"][0]["notification"]["seconds_to_retrigger"].as_i64().unwrap_or(0).max(60);
    let bucket = now / (retrigger * 1000);
    let digest = hex::encode(&Sha256::digest(body.to_string().as_bytes())[..8]);
    let external_id = format!("{alert_id}:{state}:{bucket}:{digest}");
    let mut a = blank(external_id, title, sev, conf);
    a.rule = Some(format!("sql-alert:{alert_id}"));
    a.description =
        text(outer.get("description")).or_else(|| text(inner.get("custom_description"))).unwrap_or_default();
    let url_base = text(body.get("url_base"));
    a.workspace_id =
        url_base.as_deref().and_then(|u| u.split(['?', '&']).find_map(|kv| kv.strip_prefix("o=")).map(str::to_string));
    if let Some(w) = &a.workspace_id {
        a.entities.insert("workspace".into(), w.clone());
    }
    let mut fields = Map::new();
    fields.insert("state".into(), json!(state));
    fields.insert("alert_id".into(), json!(alert_id));
    fields.insert("alert_name".into(), json!(name));
    for (k, v) in [
        ("query_text", inner.get("query_text")),
        ("warehouse_id", inner.get("warehouse_id")),
        ("owner", inner.get("owner")),
        ("evaluations", inner.get("evaluations")),
    ] {
        if let Some(v) = v {
            fields.insert(k.into(), v.clone());
        }
    }
    fields.insert("event".into(), body.get("event").cloned().unwrap_or(Value::Null));
    fields.insert("url_base".into(), json!(url_base));
    a.fields = Value::Object(fields);
    Ok(a)
}

fn audit(body: &Value, sev: Severity, conf: f64) -> Result<Alert, String> {
    // System-table rows use snake_case; delivered audit-log files use camelCase.
    let get = |snake: &str, camel: &str| body.get(snake).or_else(|| body.get(camel));
    let service = text(get("service_name", "serviceName")).ok_or("not an audit event: service_name is missing")?;
    let action = text(get("action_name", "actionName")).ok_or("not an audit event: action_name is missing")?;
    let external_id = text(get("event_id", "eventId"))
        .or_else(|| text(get("request_id", "requestId")).map(|r| format!("request:{r}:{service}.{action}")))
        .ok_or("not an audit event: event_id (or request_id) is missing")?;
    let response = get("response", "response").cloned().unwrap_or(Value::Null);
    let status = text(response.get("status_code").or_else(|| response.get("statusCode")));
    let title = match &status {
        Some(s) => format!("{service}.{action} (status {s})"),
        None => format!("{service}.{action}"),
    };
    let mut a = blank(external_id, title, sev, conf);
    a.rule = Some(format!("audit:{service}.{action}"));
    let identity = get("user_identity", "userIdentity").cloned().unwrap_or(Value::Null);
    let params = get("request_params", "requestParams").cloned().unwrap_or(Value::Null);
    let user = text(identity.get("email")).or_else(|| text(params.get("user")));
    if let Some(u) = user {
        a.entities.insert(ENTITY_USER.into(), u);
    }
    if let Some(ip) = text(get("source_ip_address", "sourceIPAddress")) {
        a.entities.insert(ENTITY_SOURCE_IP.into(), strip_port(&ip));
    }
    a.workspace_id = text(get("workspace_id", "workspaceId")).filter(|w| w != "0");
    if let Some(w) = &a.workspace_id {
        a.entities.insert("workspace".into(), w.clone());
    }
    a.description = text(response.get("error_message").or_else(|| response.get("errorMessage"))).unwrap_or_default();
    a.fields = body.clone();
    Ok(a)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::SourceAuth;
    use floodgate_sdk::SecretRef;

    fn src(format: SourceFormat) -> SourceConfig {
        SourceConfig {
            name: "s".into(),
            format,
            auth: SourceAuth::Bearer { token: SecretRef::Env("X".into()) },
            default_severity: None,
            default_confidence: None,
            mapping: FieldMapping::default(),
        }
    }

    fn sample(name: &str) -> String {
        std::fs::read_to_string(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data").join(name)).unwrap()
    }

    #[test]
    fn sql_alert_sample_normalizes() {
        let body: Value = serde_json::from_str(&sample("sql-alert.json")).unwrap();
        let a = normalize(&src(SourceFormat::DatabricksSqlAlert), &body, "alr_1".into(), 1_767_225_600_000).unwrap();
        assert_eq!(a.rule.as_deref(), Some("sql-alert:1122334455667788"));
        assert_eq!(a.fields["state"], "TRIGGERED");
        assert_eq!(a.workspace_id.as_deref(), Some("4242424242424242"));
        assert!(a.external_id.starts_with("1122334455667788:TRIGGERED:"));
        // Tolerates a minimal payload and ignores unknown fields.
        let minimal = json!({"alert": {"title": "Alert \"x\" changed status to OK", "alert": {"id": "5"}}, "new_field": {"a": 1}});
        let a = normalize(&src(SourceFormat::DatabricksSqlAlert), &minimal, "alr_2".into(), 0).unwrap();
        assert_eq!(a.fields["state"], "OK");
        assert!(
            normalize(&src(SourceFormat::DatabricksSqlAlert), &json!({"event": "x"}), "a".into(), 0)
                .unwrap_err()
                .contains("alert object is missing")
        );
    }

    #[test]
    fn audit_rows_normalize_with_entities() {
        for line in sample("audit-events.jsonl").lines().filter(|l| !l.trim().is_empty()) {
            let body: Value = serde_json::from_str(line).unwrap();
            let a = normalize(&src(SourceFormat::DatabricksAudit), &body, "alr".into(), 0).unwrap();
            assert_eq!(a.external_id, body["event_id"].as_str().unwrap());
            assert!(a.rule.as_deref().unwrap().starts_with("audit:"));
            assert!(!a.entities.get("source_ip").is_some_and(|ip| ip.contains(':') && ip.contains('.')));
        }
        let delivered = json!({"serviceName": "accounts", "actionName": "login", "requestId": "r1", "sourceIPAddress": "203.0.113.9:443",
            "userIdentity": {"email": "eve@example.com"}, "response": {"statusCode": 401}, "workspaceId": 123});
        let a = normalize(&src(SourceFormat::DatabricksAudit), &delivered, "alr".into(), 0).unwrap();
        assert_eq!(a.entities["source_ip"], "203.0.113.9");
        assert_eq!(a.entities["user"], "eve@example.com");
        assert_eq!(a.title, "accounts.login (status 401)");
    }

    #[test]
    fn generic_mapping_and_errors_name_the_field() {
        let mut s = src(SourceFormat::Generic);
        let a = normalize(&s, &json!({"id": 7, "title": "t", "severity": "HIGH", "confidence": 90, "entities": {"user": "u", "source_ip": "1.2.3.4"}}), "a".into(), 0).unwrap();
        assert_eq!((a.external_id.as_str(), a.severity, a.confidence), ("7", Severity::High, 0.9));
        assert_eq!(a.entities["user"], "u");
        assert!(normalize(&s, &json!({"title": "t"}), "a".into(), 0).unwrap_err().contains("/id"));
        assert!(
            normalize(&s, &json!({"id": "1", "severity": "urgent"}), "a".into(), 0).unwrap_err().contains("severity")
        );
        assert!(
            normalize(&s, &json!({"id": "1", "confidence": 200}), "a".into(), 0).unwrap_err().contains("confidence")
        );
        assert!(normalize(&s, &json!([1]), "a".into(), 0).unwrap_err().contains("object"));
        s.mapping.id = Some("/event/uid".into());
        s.mapping.entities.insert("user".into(), "/actor/name".into());
        let a = normalize(&s, &json!({"event": {"uid": "x"}, "actor": {"name": "bob"}}), "a".into(), 0).unwrap();
        assert_eq!((a.external_id.as_str(), a.entities["user"].as_str()), ("x", "bob"));
    }
}
