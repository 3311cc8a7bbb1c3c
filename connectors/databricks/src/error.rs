//! Databricks error bodies, in every shape the platform answers with, turned into `ActionError`s.
//!
//! Databricks does not have one error format. The SDKs (databricks-sdk-go `apierr`, -py
//! `errors/parser.py`) recognise, in order:
//! - the standard JSON body `{"error_code": "...", "message": "...", "details": [...]}`, where
//!   old APIs send `error_code` as an integer;
//! - the API 1.2 body `{"error": "text"}` (and the OAuth token endpoint's
//!   `{"error": "invalid_client", "error_description": "..."}`);
//! - SCIM errors `{"schemas": [...], "detail": "...", "status": "404", "scimType": "..."}`, which
//!   the SDKs name `SCIM_<status>`;
//! - a plain string `ERROR_CODE: message` from some account APIs;
//! - an HTML page whose `<pre>` holds the message, from some legacy paths;
//! - an empty body, where the HTTP status text is all there is.
//!
//! The resulting error's `code()` is the Databricks `error_code` when there is one, so playbooks
//! and the engine can match `INVALID_STATE` or `QUOTA_EXCEEDED`; otherwise `http_<status>`.
//! Messages never contain request headers or bodies we sent (they may hold secrets); they hold
//! only what Databricks answered, cut to a readable length.

use floodgate_sdk::ActionError;
use floodgate_sdk::http::Response;
use serde_json::Value;
use std::time::Duration;

/// What a Databricks error body says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiErrorBody {
    /// `INVALID_PARAMETER_VALUE`, `SCIM_404`, `invalid_client`, ... when the body names one.
    pub error_code: Option<String>,
    pub message: String,
}

/// Longest vendor message kept in an error, so a huge HTML page does not flood the timeline.
const MAX_MESSAGE: usize = 600;

/// Messages the SDKs treat as transient even on a 4xx or 5xx status (databricks-sdk-go
/// `apierr/error_overrides.go`, databricks-sdk-py `_base_client.py`).
const TRANSIENT_PATTERNS: &[&str] = &[
    "UnknownWorkerEnvironmentException",
    "does not have any associated worker environments",
    "There is no worker environment with id",
    "Unknown worker environment",
    "ClusterNotReadyException",
    "Timed out after ",
    "deadline exceeded",
    "Please try again later or try a faster operation.",
    "RPC token bucket limit has been exceeded",
];

/// Parses an error body of any documented shape.
pub fn parse_error_body(status: u16, body: &[u8]) -> ApiErrorBody {
    let text = String::from_utf8_lossy(body);
    let trimmed = text.trim();
    if trimmed.is_empty() {
        return ApiErrorBody { error_code: None, message: status_text(status).to_string() };
    }
    if let Ok(Value::Object(map)) = serde_json::from_str::<Value>(trimmed) {
        if let Some(parsed) = parse_json_error(&map) {
            return parsed;
        }
        return ApiErrorBody { error_code: None, message: floodgate_sdk::text::truncate(trimmed, MAX_MESSAGE) };
    }
    if let Some((code, message)) = split_plain_code(trimmed) {
        return ApiErrorBody {
            error_code: Some(code.to_string()),
            message: floodgate_sdk::text::truncate(message, MAX_MESSAGE),
        };
    }
    if let Some(pre) = html_pre(trimmed) {
        return ApiErrorBody { error_code: None, message: floodgate_sdk::text::truncate(&pre, MAX_MESSAGE) };
    }
    ApiErrorBody { error_code: None, message: floodgate_sdk::text::truncate(trimmed, MAX_MESSAGE) }
}

fn parse_json_error(map: &serde_json::Map<String, Value>) -> Option<ApiErrorBody> {
    let str_of = |k: &str| map.get(k).and_then(Value::as_str).map(str::to_string);
    // Standard shape. `error_code` may be a string or (old APIs) an integer.
    if let Some(code) = map.get("error_code") {
        let code = match code {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            _ => None,
        };
        let mut message = str_of("message").unwrap_or_default();
        if let Some(reason) = error_info_reason(map.get("details")) {
            message = format!("{message} (reason: {reason})");
        }
        return Some(ApiErrorBody { error_code: code, message: floodgate_sdk::text::truncate(&message, MAX_MESSAGE) });
    }
    // SCIM (RFC 7644 §3.7.3): the SDKs call these SCIM_<status>.
    if let Some(detail) = str_of("detail") {
        let status = match map.get("status") {
            Some(Value::String(s)) => s.clone(),
            Some(Value::Number(n)) => n.to_string(),
            _ => String::new(),
        };
        let mut message = detail;
        if let Some(t) = str_of("scimType").filter(|t| !t.is_empty()) {
            message = format!("{message} (scimType: {t})");
        }
        return Some(ApiErrorBody {
            error_code: (!status.is_empty()).then(|| format!("SCIM_{status}")),
            message: floodgate_sdk::text::truncate(&message, MAX_MESSAGE),
        });
    }
    // API 1.2 `{"error": "text"}`, or OAuth `{"error": "code", "error_description": "text"}`.
    if let Some(error) = str_of("error") {
        return Some(match str_of("error_description") {
            Some(desc) => {
                ApiErrorBody { error_code: Some(error), message: floodgate_sdk::text::truncate(&desc, MAX_MESSAGE) }
            }
            None => ApiErrorBody { error_code: None, message: floodgate_sdk::text::truncate(&error, MAX_MESSAGE) },
        });
    }
    if let Some(message) = str_of("message") {
        return Some(ApiErrorBody { error_code: None, message: floodgate_sdk::text::truncate(&message, MAX_MESSAGE) });
    }
    None
}

/// `details: [{"@type": "...ErrorInfo", "reason": "..."}]` adds a machine reason worth showing.
fn error_info_reason(details: Option<&Value>) -> Option<String> {
    details?.as_array()?.iter().find_map(|d| {
        let ty = d.get("@type")?.as_str()?;
        if ty.ends_with("ErrorInfo") { d.get("reason")?.as_str().map(str::to_string) } else { None }
    })
}

/// `ERROR_CODE: message` (regex `^([A-Z_]+): (.*)$` in the SDKs).
fn split_plain_code(text: &str) -> Option<(&str, &str)> {
    let first_line = text.lines().next()?;
    let (code, _) = first_line.split_once(": ")?;
    if code.is_empty() || !code.chars().all(|c| c.is_ascii_uppercase() || c == '_') {
        return None;
    }
    let message_start = code.len() + 2;
    Some((code, text[message_start..].trim()))
}

/// The text of the first `<pre>` element of an HTML error page, entities decoded.
fn html_pre(text: &str) -> Option<String> {
    let lower = text.to_ascii_lowercase();
    let open = lower.find("<pre")?;
    let content_start = open + lower[open..].find('>')? + 1;
    let close = content_start + lower[content_start..].find("</pre>")?;
    let raw = text[content_start..close].trim();
    Some(
        raw.replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&amp;", "&"),
    )
}

fn status_text(status: u16) -> &'static str {
    http::StatusCode::from_u16(status).ok().and_then(|s| s.canonical_reason()).unwrap_or("error")
}

/// What to do about an error of this status, for people reading the timeline.
fn advice(status: u16) -> &'static str {
    match status {
        401 => " — check the credentials of this workspace/account in [connectors.databricks]",
        403 => " — the identity floodgate uses lacks a privilege; see docs/databricks.md (least privileges)",
        _ => "",
    }
}

/// Turns a non-2xx Databricks answer into an `ActionError`.
///
/// 429 and 5xx are retryable (the engine retries durably, after `Retry-After`); other 4xx are
/// permanent unless the message is one the SDKs know to be transient.
pub fn api_error(what: &str, resp: &Response) -> ActionError {
    let body = parse_error_body(resp.status, &resp.body);
    classify(what, resp.status, body, resp.retry_after())
}

pub(crate) fn classify(what: &str, status: u16, body: ApiErrorBody, retry_after: Option<Duration>) -> ActionError {
    let code = body.error_code.clone().unwrap_or_else(|| format!("http_{status}"));
    let shown_code = body.error_code.as_deref().map(|c| format!(" {c}")).unwrap_or_default();
    let message = format!("Databricks {what} failed: HTTP {status}{shown_code}: {}{}", body.message, advice(status));
    let transient = TRANSIENT_PATTERNS.iter().any(|p| body.message.contains(p));
    if status == 429 || status >= 500 || transient {
        ActionError::retry_after(&code, message, retry_after)
    } else {
        ActionError::permanent(&code, message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(status: u16, body: &str) -> ApiErrorBody {
        parse_error_body(status, body.as_bytes())
    }

    #[test]
    fn standard_body_with_string_code_and_error_info() {
        let b = p(
            400,
            r#"{"error_code":"INVALID_PARAMETER_VALUE","message":"bad ip","details":[{"@type":"type.googleapis.com/google.rpc.ErrorInfo","reason":"IP_INVALID","domain":"x"}]}"#,
        );
        assert_eq!(b.error_code.as_deref(), Some("INVALID_PARAMETER_VALUE"));
        assert_eq!(b.message, "bad ip (reason: IP_INVALID)");
    }

    #[test]
    fn standard_body_with_integer_code() {
        let b = p(500, r#"{"error_code":500,"message":"boom"}"#);
        assert_eq!(b.error_code.as_deref(), Some("500"));
        assert_eq!(b.message, "boom");
    }

    #[test]
    fn legacy_error_field() {
        let b = p(400, r#"{"error":"Cluster 12 does not exist"}"#);
        assert_eq!(b.error_code, None);
        assert_eq!(b.message, "Cluster 12 does not exist");
    }

    #[test]
    fn oauth_error_and_description() {
        let b = p(401, r#"{"error":"invalid_client","error_description":"Client authentication failed"}"#);
        assert_eq!(b.error_code.as_deref(), Some("invalid_client"));
        assert_eq!(b.message, "Client authentication failed");
    }

    #[test]
    fn scim_error() {
        let b = p(
            404,
            r#"{"schemas":["urn:ietf:params:scim:api:messages:2.0:Error"],"detail":"User 9 not found","status":"404","scimType":"invalidValue"}"#,
        );
        assert_eq!(b.error_code.as_deref(), Some("SCIM_404"));
        assert_eq!(b.message, "User 9 not found (scimType: invalidValue)");
    }

    #[test]
    fn plain_code_colon_message() {
        let b = p(400, "INVALID_STATE: Your current IP 192.0.2.50 will not be allowed");
        assert_eq!(b.error_code.as_deref(), Some("INVALID_STATE"));
        assert_eq!(b.message, "Your current IP 192.0.2.50 will not be allowed");
        // Lower-case prefixes are not codes.
        assert_eq!(p(400, "Error: nope").error_code, None);
    }

    #[test]
    fn html_pre_body() {
        let b = p(
            502,
            "<html><head><title>Error 502</title></head><body><h2>HTTP ERROR 502</h2><pre>Bad Gateway &amp; more</pre></body></html>",
        );
        assert_eq!(b.error_code, None);
        assert_eq!(b.message, "Bad Gateway & more");
    }

    #[test]
    fn empty_body_uses_status_text() {
        assert_eq!(p(404, "").message, "Not Found");
        assert_eq!(p(503, "  ").message, "Service Unavailable");
    }

    #[test]
    fn unknown_text_is_kept_but_cut() {
        let long = "x".repeat(5000);
        let b = p(500, &long);
        assert!(b.message.len() <= MAX_MESSAGE);
    }

    #[test]
    fn classification_uses_error_code_and_status() {
        let e = classify("POST /x", 400, p(400, r#"{"error_code":"QUOTA_EXCEEDED","message":"too many"}"#), None);
        assert_eq!(e.code(), "QUOTA_EXCEEDED");
        assert!(!e.is_retryable());
        assert!(e.message().contains("HTTP 400 QUOTA_EXCEEDED: too many"), "{}", e.message());
        let e = classify("GET /x", 429, p(429, ""), Some(Duration::from_secs(3)));
        assert_eq!(e.code(), "http_429");
        assert!(e.is_retryable());
        assert_eq!(e.retry_after_hint(), Some(Duration::from_secs(3)));
        let e = classify(
            "GET /x",
            400,
            p(400, r#"{"error_code":"INVALID_STATE","message":"ClusterNotReadyException: wait"}"#),
            None,
        );
        assert!(e.is_retryable(), "transient messages retry");
        let e = classify("GET /x", 403, p(403, r#"{"error_code":"PERMISSION_DENIED","message":"no"}"#), None);
        assert!(e.message().contains("least privileges"));
    }
}
