//! How the simulated Web API reads a call: arguments from a JSON body, a form or the query
//! string; the token from the `Authorization` header (or a form `token`); argument names and
//! types checked against the method's documented list; Block Kit validated; and Slack's
//! `{"ok": false, "error": ...}` refusals.

use super::blocks;
use axum::body::Bytes;
use axum::http::{HeaderMap, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use std::collections::HashMap;

const BOOL_ARGS: &[&str] = &["link_names", "mrkdwn", "reply_broadcast", "unfurl_links", "unfurl_media", "inclusive"];

/// An API error: answered with HTTP 200 and `{"ok": false, "error": <code>, ...}`.
pub(super) struct Refusal(Value);

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        axum::Json(self.0).into_response()
    }
}

pub(super) fn api_error(code: &str) -> Refusal {
    Refusal(json!({"ok": false, "error": code}))
}

pub(super) fn api_error_with(code: &str, extra: Value) -> Refusal {
    let mut body = json!({"ok": false, "error": code});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        b.extend(e.clone());
    }
    Refusal(body)
}

/// Arguments of a call, whatever the encoding, plus the token.
pub(super) struct Args {
    pub(super) map: Map<String, Value>,
    token: Option<String>,
    /// Form and query values are strings; JSON keeps types (blocks as an array).
    json: bool,
    missing_charset: bool,
}

fn bearer(headers: &HeaderMap) -> Option<String> {
    let v = headers.get("authorization")?.to_str().ok()?;
    v.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

pub(super) fn parse_args(headers: &HeaderMap, uri: &Uri, body: &Bytes) -> Result<Args, Refusal> {
    let ctype = headers.get("content-type").and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let mut map = Map::new();
    let mut json_body = false;
    let mut missing_charset = false;
    if let Some(q) = uri.query() {
        for (k, v) in url::form_urlencoded::parse(q.as_bytes()) {
            map.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    if ctype.starts_with("application/json") {
        json_body = true;
        missing_charset = !ctype.contains("charset=utf-8");
        let v: Value = serde_json::from_slice(body).map_err(|_| api_error("invalid_json"))?;
        let Value::Object(obj) = v else {
            return Err(api_error("json_not_object"));
        };
        // With a JSON body Slack reads the token only from the Authorization header.
        if obj.contains_key("token") {
            return Err(api_error("invalid_arguments"));
        }
        map.extend(obj);
    } else if !body.is_empty() {
        if !(ctype.is_empty() || ctype.starts_with("application/x-www-form-urlencoded")) {
            return Err(api_error("invalid_form_data"));
        }
        for (k, v) in url::form_urlencoded::parse(body) {
            map.insert(k.into_owned(), Value::String(v.into_owned()));
        }
    }
    let token = bearer(headers)
        .or_else(|| (!json_body).then(|| map.get("token").and_then(Value::as_str).map(str::to_string)).flatten());
    Ok(Args { map, token, json: json_body, missing_charset })
}

pub(super) fn check_known(args: &Args, known: &[&str]) -> Result<(), Refusal> {
    for (k, v) in &args.map {
        if !known.contains(&k.as_str()) {
            return Err(api_error_with(
                "invalid_arguments",
                json!({"response_metadata": {"messages": [format!("[ERROR] unknown argument '{k}'")]}}),
            ));
        }
        if BOOL_ARGS.contains(&k.as_str()) {
            let ok = match v {
                Value::Bool(_) => true,
                Value::String(s) => matches!(s.as_str(), "true" | "false" | "1" | "0"),
                _ => false,
            };
            if !ok {
                return Err(api_error_with(
                    "invalid_arguments",
                    json!({"response_metadata": {"messages": [format!("[ERROR] expected boolean for '{k}'")]}}),
                ));
            }
        } else if k != "blocks" && k != "attachments" && !v.is_string() {
            return Err(api_error_with(
                "invalid_arguments",
                json!({"response_metadata": {"messages": [format!("[ERROR] expected string for '{k}'")]}}),
            ));
        }
    }
    Ok(())
}

/// Checks the token and one of `scopes`.
pub(super) fn authorize(tokens: &HashMap<String, Vec<String>>, args: &Args, scopes: &[&str]) -> Result<(), Refusal> {
    let Some(token) = args.token.as_deref().filter(|t| !t.is_empty()) else {
        return Err(api_error("not_authed"));
    };
    let Some(granted) = tokens.get(token) else {
        return Err(api_error("invalid_auth"));
    };
    if !scopes.iter().any(|s| granted.iter().any(|g| g == s)) {
        return Err(api_error_with(
            "missing_scope",
            json!({"needed": scopes.join(","), "provided": granted.join(",")}),
        ));
    }
    Ok(())
}

pub(super) fn str_arg<'a>(args: &'a Args, k: &str) -> Option<&'a str> {
    args.map.get(k).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// `blocks` as JSON: an array in a JSON body, a JSON-encoded string in a form.
fn blocks_arg(args: &Args) -> Result<Option<Vec<Value>>, Refusal> {
    let Some(raw) = args.map.get("blocks") else {
        return Ok(None);
    };
    let value = match raw {
        Value::String(s) if !args.json || s.trim_start().starts_with('[') => {
            serde_json::from_str::<Value>(s).map_err(|_| api_error("invalid_blocks_format"))?
        }
        other => other.clone(),
    };
    if let Err(errors) = blocks::validate(&value) {
        let messages: Vec<String> = errors.iter().map(|e| format!("[ERROR] {e}")).collect();
        return Err(api_error_with(
            "invalid_blocks",
            json!({"errors": errors, "response_metadata": {"messages": messages}}),
        ));
    }
    Ok(value.as_array().cloned())
}

/// Validates the content arguments shared by post and update.
pub(super) fn content(args: &Args) -> Result<(Option<String>, Option<Vec<Value>>), Refusal> {
    let text = args.map.get("text").and_then(Value::as_str).map(str::to_string);
    if text.as_deref().is_some_and(|t| t.chars().count() > 40_000) {
        return Err(api_error("msg_too_long"));
    }
    let blocks = blocks_arg(args)?;
    let has_attachments = args.map.get("attachments").is_some();
    if text.as_deref().is_none_or(str::is_empty) && blocks.as_ref().is_none_or(Vec::is_empty) && !has_attachments {
        return Err(api_error("no_text"));
    }
    Ok((text, blocks))
}

pub(super) fn ok(mut body: Value, args: &Args) -> Response {
    body["ok"] = json!(true);
    if args.missing_charset {
        body["warning"] = json!("missing_charset");
        body["response_metadata"] = json!({"warnings": ["missing_charset"]});
    }
    axum::Json(body).into_response()
}
