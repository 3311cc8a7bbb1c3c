//! The JSON Schema of detection files, for editors (`detections/schema.json`, printed by
//! `floodgate detections schema`). It describes the shape only; `model::compile` is what
//! floodgate itself checks, with positions and more (SQL markers, templates).

use super::model::{ENTITIES, SQL_TYPES, TACTICS};
use serde_json::{Value, json};

const DURATION: &str = r"^([0-9]+(ms|s|m|h|d|w))+$";

fn column(description: &str) -> Value {
    json!({"type": "string", "pattern": "^[A-Za-z_][A-Za-z0-9_]*$", "description": description})
}

pub fn schema() -> Value {
    let entities: serde_json::Map<String, Value> = ENTITIES
        .iter()
        .map(|e| (e.to_string(), column(&format!("The column holding the alert's `{e}` entity."))))
        .collect();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://floodgate.dev/schemas/detection.json",
        "title": "floodgate detection",
        "description": "SQL over Databricks system tables, run on a schedule; each result row becomes an alert (see docs/detections.md).",
        "type": "object",
        "additionalProperties": false,
        "required": ["id", "title", "severity", "sql", "alert"],
        "properties": {
            "id": {"type": "string", "pattern": "^[a-z0-9][a-z0-9_-]{0,62}$", "description": "Stable id; alerts get the rule `detection:<id>`."},
            "title": {"type": "string", "minLength": 1, "maxLength": 200},
            "description": {"type": "string"},
            "severity": {"enum": ["info", "low", "medium", "high", "critical"]},
            "confidence": {"type": "number", "minimum": 0, "maximum": 1, "default": 0.5},
            "tactic": {"enum": TACTICS, "description": "MITRE ATT&CK tactic."},
            "technique": {"type": "string", "pattern": "^T[0-9]{4}(\\.[0-9]{3})?$", "description": "MITRE ATT&CK technique id."},
            "enabled": {"type": "boolean", "default": true},
            "interval": {"type": "string", "pattern": DURATION, "default": "5m", "description": "How often the detection runs."},
            "lookback": {"type": "string", "pattern": DURATION, "description": "How far before the watermark `:since` reaches (for aggregations); the config's overlap if longer."},
            "workspace": {
                "description": "Configured workspace name(s) to run on; default [detections] workspace, else the connector's default.",
                "anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}]
            },
            "params": {
                "type": "object",
                "description": "Constant statement parameters, used in the SQL as :name.",
                "additionalProperties": {
                    "anyOf": [
                        {"type": ["string", "number", "boolean"]},
                        {"type": "object", "additionalProperties": false, "properties": {
                            "type": {"enum": SQL_TYPES},
                            "value": {"type": ["string", "number", "boolean", "null"]}
                        }}
                    ]
                }
            },
            "sql": {"type": "string", "description": "One SELECT/WITH query using :since and :until (also :since_date, :until_date)."},
            "alert": {
                "type": "object",
                "additionalProperties": false,
                "required": ["title"],
                "properties": {
                    "title": {"type": "string", "description": "Template over row, detection and window."},
                    "description": {"type": "string"},
                    "key": {"type": "array", "items": column("A column identifying the finding."), "minItems": 1, "default": ["event_id"]},
                    "severity_column": column("A column whose value (info…critical) overrides the severity."),
                    "entities": {"type": "object", "additionalProperties": false, "properties": entities},
                    "fields": {"type": "object", "additionalProperties": column("A column copied into alert.fields.")}
                }
            }
        }
    })
}
