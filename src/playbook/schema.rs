//! The JSON Schema of the playbook format.
//!
//! `base()` is derived from the `raw` types and is what `validate` checks shapes against.
//! `published()` adds the list of known actions so editors can complete `action:`; it is what
//! `floodgate schema` prints and `playbooks/schema.json` holds.

use super::ActionCatalog;
use super::raw::RawPlaybook;
use serde_json::{Value, json};
use std::sync::OnceLock;

pub fn base() -> &'static Value {
    static SCHEMA: OnceLock<Value> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let mut s = serde_json::to_value(schemars::schema_for!(RawPlaybook)).unwrap_or(Value::Bool(true));
        drop_null_branches(&mut s);
        s
    })
}

/// Optional keys are written by leaving them out, never as `null`. schemars models `Option<T>`
/// as "T or null"; dropping the null branch keeps errors inside `group:` or `retry:` pointed at
/// the bad value instead of a vague "matches no alternative".
fn drop_null_branches(v: &mut Value) {
    match v {
        Value::Object(map) => {
            if let Some(Value::Array(alts)) = map.get("anyOf") {
                let non_null: Vec<Value> =
                    alts.iter().filter(|a| a.get("type") != Some(&json!("null"))).cloned().collect();
                if non_null.len() == 1 && alts.len() == 2 {
                    map.remove("anyOf");
                    if let Value::Object(inner) = &non_null[0] {
                        for (k, val) in inner {
                            map.entry(k.clone()).or_insert_with(|| val.clone());
                        }
                    }
                }
            }
            if let Some(Value::Array(types)) = map.get("type") {
                let non_null: Vec<Value> = types.iter().filter(|t| *t != "null").cloned().collect();
                if non_null.len() == 1 {
                    map.insert("type".into(), non_null[0].clone());
                }
            }
            map.values_mut().for_each(drop_null_branches);
        }
        Value::Array(items) => items.iter_mut().for_each(drop_null_branches),
        _ => {}
    }
}

pub fn validator() -> &'static jsonschema::Validator {
    static V: OnceLock<jsonschema::Validator> = OnceLock::new();
    V.get_or_init(|| jsonschema::validator_for(base()).expect("the playbook schema derived from RawPlaybook compiles"))
}

/// The schema for editors: the base schema, an `$id`, and `action` suggestions with summaries.
pub fn published(catalog: &ActionCatalog) -> Value {
    let mut s = base().clone();
    s["$id"] = json!("https://floodgate.dev/schemas/playbook.json");
    let examples: Vec<Value> = catalog.names().map(|n| json!(n)).collect();
    let described: Vec<String> = catalog.iter().map(|(n, a)| format!("`{n}` ({}): {}", a.risk, a.summary)).collect();
    if let Some(action) = s.pointer_mut("/$defs/RawStep/properties/action") {
        action["examples"] = Value::Array(examples.clone());
        action["anyOf"] = json!([{"enum": examples}, {"type": "string"}]);
        let base_desc = action["description"].as_str().unwrap_or("").to_string();
        action["description"] = json!(format!("{base_desc}\n\nKnown actions:\n- {}", described.join("\n- ")));
    }
    s
}

/// Resolves a `$ref` to a local `$defs` entry.
fn resolve<'a>(root: &'a Value, mut s: &'a Value) -> &'a Value {
    for _ in 0..8 {
        match s.get("$ref").and_then(Value::as_str).and_then(|r| r.strip_prefix('#')) {
            Some(ptr) => s = root.pointer(ptr).unwrap_or(s),
            None => break,
        }
    }
    s
}

/// The object schema governing the instance at `pointer` (following properties, items,
/// `$ref` and the non-null branch of `anyOf`).
fn schema_at<'a>(root: &'a Value, pointer: &str) -> Option<&'a Value> {
    let mut s = resolve(root, root);
    for seg in pointer.split('/').skip(1) {
        s = unwrap_any_of(root, s);
        let seg = seg.replace("~1", "/").replace("~0", "~");
        s = if let Some(p) = s.get("properties").and_then(|p| p.get(&seg)) {
            resolve(root, p)
        } else if let Some(items) = s.get("items") {
            resolve(root, items)
        } else {
            return None;
        };
    }
    Some(unwrap_any_of(root, s))
}

fn unwrap_any_of<'a>(root: &'a Value, s: &'a Value) -> &'a Value {
    if let Some(alts) = s.get("anyOf").and_then(Value::as_array) {
        for a in alts {
            let a = resolve(root, a);
            if a.get("properties").is_some() || a.get("items").is_some() {
                return a;
            }
        }
    }
    s
}

/// The keys allowed in the object at `pointer` of a playbook.
pub fn allowed_keys(pointer: &str) -> Vec<String> {
    schema_at(base(), pointer)
        .and_then(|s| s.get("properties"))
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The allowed values at `pointer`, when the schema lists them (enums).
pub fn allowed_values(pointer: &str) -> Vec<String> {
    let Some(s) = schema_at(base(), pointer) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut collect = |v: &Value| {
        if let Some(e) = v.get("enum").and_then(Value::as_array) {
            out.extend(e.iter().filter_map(Value::as_str).map(str::to_string));
        }
        if let Some(c) = v.get("const").and_then(Value::as_str) {
            out.push(c.to_string());
        }
    };
    collect(s);
    for key in ["oneOf", "anyOf"] {
        if let Some(alts) = s.get(key).and_then(Value::as_array) {
            for a in alts {
                collect(resolve(base(), a));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_the_keys_of_each_level() {
        assert!(allowed_keys("").contains(&"steps".to_string()));
        assert!(allowed_keys("/steps").contains(&"containment".to_string()));
        assert!(allowed_keys("/steps/triage/0").contains(&"revert_after".to_string()));
        assert!(allowed_keys("/steps/triage/0/approval").contains(&"quorum".to_string()));
        assert!(allowed_keys("/match").contains(&"when".to_string()));
        assert_eq!(allowed_values("/steps/triage/0/on_error"), vec!["fail", "continue"]);
    }
}
