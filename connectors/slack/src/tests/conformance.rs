//! Every request the simulator received, checked against Slack's published Web API spec.
//!
//! The spec (Swagger 2.0) models each method's arguments as `formData`/`query` parameters, the
//! token as a `token` parameter, and `blocks` as a JSON-encoded string. Our requests send JSON
//! with `Authorization: Bearer`, so each request is mapped back to the spec's parameter model
//! before validation: the bearer token becomes `token`, `blocks`/`attachments` are re-encoded
//! as strings, and query strings are typed as the spec declares. Names, types and
//! required-ness are then checked by the spec's own parameter list.

use floodgate_sdk::conformance::{check_json_schema, load, specs_dir, swagger2_params_schema};
use floodgate_sdk::sim::{CallLog, RecordedCall};
use serde_json::{Map, Value};

fn spec_path(path: &str) -> Option<&'static str> {
    match path {
        "/api/chat.postMessage" => Some("/chat.postMessage"),
        "/api/chat.update" => Some("/chat.update"),
        "/api/conversations.history" => Some("/conversations.history"),
        _ => None,
    }
}

/// The request as the spec's parameter model sees it.
fn as_spec_params(call: &RecordedCall, op: &Value) -> Map<String, Value> {
    let mut params = Map::new();
    if let Some(q) = &call.query {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            params.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    if let Some(Value::Object(body)) = call.json() {
        for (k, v) in body {
            let v = match (k.as_str(), v) {
                ("blocks" | "attachments", v) => Value::String(v.to_string()),
                (_, v) => v,
            };
            params.insert(k, v);
        }
    }
    if let Some(token) = call.header("authorization").and_then(|h| h.strip_prefix("Bearer ")) {
        params.insert("token".into(), Value::String(token.to_string()));
    }
    // Query values are text on the wire; give them the type the spec declares.
    if let Some(list) = op.get("parameters").and_then(Value::as_array) {
        for p in list {
            let (Some(name), Some(ty)) = (p["name"].as_str(), p["type"].as_str()) else {
                continue;
            };
            if let Some(Value::String(s)) = params.get(name).cloned() {
                let typed = match ty {
                    "number" => s.parse::<f64>().ok().and_then(serde_json::Number::from_f64).map(Value::Number),
                    "integer" => s.parse::<i64>().ok().map(Value::from),
                    "boolean" => s.parse::<bool>().ok().map(Value::Bool),
                    _ => None,
                };
                if let Some(t) = typed {
                    params.insert(name.to_string(), t);
                }
            }
        }
    }
    params
}

/// Checks every Web API call in `log`; returns how many were checked (0 when skipped).
pub(crate) fn check_log(log: &CallLog) -> usize {
    let Some(dir) = specs_dir() else {
        eprintln!("SKIPPED: Slack Web API conformance (no specs directory)");
        return 0;
    };
    let doc = load(&dir, "slack_web_openapi_v2.json");
    let mut checked = 0;
    for call in log.calls() {
        let Some(path) = spec_path(&call.path) else {
            continue;
        };
        let method = call.method.to_ascii_lowercase();
        let pointer = format!("/paths/{}/{method}", path.replace('/', "~1"));
        let op =
            doc.pointer(&pointer).unwrap_or_else(|| panic!("{} {} is not in Slack's spec", call.method, call.path));
        let schema = swagger2_params_schema(&doc, &method, path).expect("spec parameters");
        let params = Value::Object(as_spec_params(&call, op));
        if let Err(errors) = check_json_schema(&schema, &params) {
            panic!("{} {} does not conform to Slack's spec: {errors:#?}\nparams: {params:#}", call.method, call.path);
        }
        if method == "post" {
            let ctype = call.header("content-type").unwrap_or("");
            let consumes: Vec<&str> =
                op["consumes"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            assert!(
                consumes.iter().any(|c| ctype.starts_with(c)),
                "{} content type {ctype:?} is not one of {consumes:?}",
                call.path
            );
            assert_eq!(ctype, "application/json; charset=utf-8", "Slack wants the charset on JSON bodies");
        }
        checked += 1;
    }
    checked
}

#[test]
fn the_mapping_catches_unknown_and_mistyped_arguments() {
    let Some(dir) = specs_dir() else {
        eprintln!("SKIPPED: Slack Web API conformance (no specs directory)");
        return;
    };
    let doc = load(&dir, "slack_web_openapi_v2.json");
    let schema = swagger2_params_schema(&doc, "post", "/chat.postMessage").expect("params");
    let good =
        serde_json::json!({"token": "xoxb-1", "channel": "C1", "text": "hi", "blocks": "[]", "unfurl_links": false});
    check_json_schema(&schema, &good).expect("good request conforms");
    for bad in [
        serde_json::json!({"token": "xoxb-1", "text": "no channel"}),
        serde_json::json!({"token": "xoxb-1", "channel": "C1", "blocks": [{"type": "divider"}]}),
        serde_json::json!({"token": "xoxb-1", "channel": "C1", "metadata_typo": "x"}),
        serde_json::json!({"channel": "C1", "text": "no token"}),
    ] {
        assert!(check_json_schema(&schema, &bad).is_err(), "{bad}");
    }
}
