//! Checks what connectors send against vendors' own published specs (feature `conformance`).
//!
//! The specs are read at test time from the directory named by `FLOODGATE_SPECS_DIR`
//! (default: `../shared/specs` next to the repository). They are never copied into the repo.
//! Where the directory is absent, `specs_dir()` returns `None` and conformance tests print that
//! they were skipped; CI sets `FLOODGATE_REQUIRE_SPECS=1`, which turns that into a failure.

use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The directory holding the vendor specs, or `None` if it does not exist (a user's clone).
/// Panics when `FLOODGATE_REQUIRE_SPECS=1` and the directory is missing, so CI never skips.
pub fn specs_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("FLOODGATE_SPECS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/specs"));
    if dir.is_dir() {
        return Some(dir);
    }
    if std::env::var("FLOODGATE_REQUIRE_SPECS").as_deref() == Ok("1") {
        panic!(
            "vendor specs directory {} is missing and FLOODGATE_REQUIRE_SPECS=1: conformance tests may not be skipped",
            dir.display()
        );
    }
    eprintln!(
        "SKIPPED: vendor specs directory {} not found (set FLOODGATE_SPECS_DIR); conformance checks did not run",
        dir.display()
    );
    None
}

/// Loads a spec file from the specs directory.
pub fn load(dir: &Path, file: &str) -> Value {
    let path = dir.join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read spec {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("spec {} is not JSON: {e}", path.display()))
}

fn pointer_escape(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// OpenAPI 3.0 marks nullable fields with `nullable: true`, which JSON Schema does not know;
/// rewrite them as `type: [T, "null"]` so a `null` the vendor accepts is not reported.
fn openapi_to_json_schema(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if map.get("nullable") == Some(&Value::Bool(true))
                && let Some(Value::String(t)) = map.get("type").cloned()
            {
                map.insert("type".into(), json!([t, "null"]));
            }
            for child in map.values_mut() {
                openapi_to_json_schema(child);
            }
        }
        Value::Array(items) => items.iter_mut().for_each(openapi_to_json_schema),
        _ => {}
    }
}

/// Validates `instance` against the schema found at `pointer` inside `doc`, resolving `$ref`s
/// against the whole document. Returns every violation as "path: message".
pub fn validate_at(doc: &Value, pointer: &str, instance: &Value) -> Result<(), Vec<String>> {
    if doc.pointer(pointer).is_none() {
        return Err(vec![format!("spec has no schema at {pointer}")]);
    }
    let mut root = doc.clone();
    openapi_to_json_schema(&mut root);
    if let Value::Object(m) = &mut root {
        // A `$ref` is a URI fragment: characters such as `{` `}` in OpenAPI paths must be encoded.
        let fragment: String = pointer
            .bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'/' | b'~' | b'-' | b'.' | b'_' => (b as char).to_string(),
                other => format!("%{other:02X}"),
            })
            .collect();
        m.insert("$ref".into(), Value::String(format!("#{fragment}")));
    }
    let validator = jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .build(&root)
        .map_err(|e| vec![format!("spec schema at {pointer} does not compile: {e}")])?;
    let errors: Vec<String> = validator.iter_errors(instance).map(|e| format!("{}: {e}", e.instance_path())).collect();
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

/// Validates a JSON request body against an OpenAPI 3 operation's `application/json` schema.
pub fn check_openapi3_request(doc: &Value, method: &str, path: &str, body: &Value) -> Result<(), Vec<String>> {
    let pointer = format!(
        "/paths/{}/{}/requestBody/content/application~1json/schema",
        pointer_escape(path),
        method.to_ascii_lowercase()
    );
    validate_at(doc, &pointer, body)
}

/// Builds a JSON Schema for a Swagger 2.0 operation's form/query parameters (Slack's spec models
/// every Web API argument that way): an object with one property per parameter, the required
/// ones required, and no others allowed.
pub fn swagger2_params_schema(doc: &Value, method: &str, path: &str) -> Option<Value> {
    let op = doc.pointer(&format!("/paths/{}/{}", pointer_escape(path), method.to_ascii_lowercase()))?;
    let mut props = serde_json::Map::new();
    let mut required = Vec::new();
    for p in op.get("parameters")?.as_array()? {
        let name = p.get("name")?.as_str()?;
        let mut schema = serde_json::Map::new();
        for k in ["type", "enum", "format", "items"] {
            if let Some(v) = p.get(k) {
                schema.insert(k.into(), v.clone());
            }
        }
        props.insert(name.to_string(), Value::Object(schema));
        if p.get("required") == Some(&Value::Bool(true)) {
            required.push(Value::String(name.to_string()));
        }
    }
    Some(json!({"type": "object", "properties": props, "required": required, "additionalProperties": false}))
}

/// Validates `instance` against a standalone JSON Schema document (e.g. the Adaptive Card schema).
pub fn check_json_schema(schema: &Value, instance: &Value) -> Result<(), Vec<String>> {
    let validator = jsonschema::validator_for(schema).map_err(|e| vec![format!("schema does not compile: {e}")])?;
    let errors: Vec<String> = validator.iter_errors(instance).map(|e| format!("{}: {e}", e.instance_path())).collect();
    if errors.is_empty() { Ok(()) } else { Err(errors) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jira_create_issue_schema_accepts_adf_and_rejects_junk() {
        let Some(dir) = specs_dir() else { return };
        let doc = load(&dir, "jira-cloud-platform-rest-v3.openapi.json");
        let good = json!({"fields": {"project": {"key": "SEC"}, "summary": "x", "issuetype": {"name": "Task"},
            "labels": ["floodgate-inc-1"],
            "description": {"type": "doc", "version": 1, "content": [{"type": "paragraph", "content": [{"type": "text", "text": "hi"}]}]}}});
        check_openapi3_request(&doc, "POST", "/rest/api/3/issue", &good).unwrap();
        let bad = json!({"fields": "not an object", "update": 3});
        let errs = check_openapi3_request(&doc, "POST", "/rest/api/3/issue", &bad).unwrap_err();
        assert!(!errs.is_empty());
        // Paths with parameters work too (their braces are encoded in the reference).
        check_openapi3_request(
            &doc,
            "POST",
            "/rest/api/3/issue/{issueIdOrKey}/comment",
            &json!({"body": {"type": "doc", "version": 1, "content": []}}),
        )
        .unwrap();
    }
}
