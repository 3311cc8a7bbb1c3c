//! The built-in `core` connector, so playbooks work before any vendor is configured.
//!
//! - `core.log`: records a message on the incident timeline.
//! - `core.set`: computes run variables (`vars.<name>` in later steps).
//! - `core.close`: closes the incident as benign and ends the run (a triage verdict).
//! - `core.noop`: does nothing; measures engine overhead and holds places in drafts.
//! - `core.http`: a generic HTTP request with a templated URL, headers and JSON body. It sends
//!   the step's idempotency key as `Idempotency-Key`, and retries 429/5xx honouring `Retry-After`.
//!
//! Only `core.http` leaves the process; the others are pure and the engine may run them without
//! committing an intent first.

use floodgate_sdk::http::{HttpClient, Replay, Request, RetryPolicy};
use floodgate_sdk::{
    ActionCall, ActionError, ActionOutput, ActionSpec, BuildError, Connector, ConnectorKind, EndRun, Plan, RiskClass,
    input_schema,
};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

/// Input of `core.log`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LogInput {
    /// The message to record on the incident timeline.
    pub message: String,
    /// `info` (default), `warning` or `error`.
    #[serde(default)]
    pub level: Option<LogLevel>,
}

#[derive(Debug, Clone, Copy, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Info,
    Warning,
    Error,
}

/// Input of `core.close`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CloseInput {
    /// Why the incident is benign; shown on the timeline.
    pub reason: String,
}

/// Input of `core.http`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpInput {
    /// GET, POST, PUT, PATCH or DELETE. Default GET.
    #[serde(default)]
    pub method: Option<String>,
    /// Absolute http(s) URL. Use the `urlencode` filter for alert values placed in it.
    pub url: String,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    /// A JSON body, sent as `application/json`.
    #[serde(default)]
    pub json: Option<Value>,
    /// Extra statuses (besides 2xx) that count as success, e.g. `[404]` for a lookup.
    #[serde(default)]
    pub accept_status: Vec<u16>,
}

/// Configuration of `[connectors.core]`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CoreConfig {
    /// When set, `core.http` may only reach these hosts (exact host names).
    #[serde(default)]
    pub allowed_hosts: Option<Vec<String>>,
    /// Timeout of one HTTP request, in seconds. Default 30.
    #[serde(default)]
    pub http_timeout_seconds: Option<u64>,
}

pub struct CoreKind;

impl ConnectorKind for CoreKind {
    fn name(&self) -> &'static str {
        "core"
    }

    fn actions(&self) -> Vec<ActionSpec> {
        actions()
    }

    fn build(&self, config: Option<&Value>) -> Result<Arc<dyn Connector>, BuildError> {
        let cfg: CoreConfig = match config {
            Some(v) => serde_json::from_value(v.clone()).map_err(|e| BuildError::new("core", e.to_string()))?,
            None => CoreConfig::default(),
        };
        let timeout = Duration::from_secs(cfg.http_timeout_seconds.unwrap_or(30));
        Ok(Arc::new(Core {
            http: HttpClient::new(RetryPolicy::default()).with_timeout(timeout),
            allowed_hosts: cfg.allowed_hosts,
        }))
    }
}

fn actions() -> Vec<ActionSpec> {
    vec![
        ActionSpec::new(
            "log",
            "Record a message on the incident timeline",
            RiskClass::Read,
            input_schema::<LogInput>(),
        )
        .pure()
        .idempotency("pure: repeating it only repeats a timeline note"),
        ActionSpec::new(
            "set",
            "Set run variables from the given map (vars.<name> in later steps)",
            RiskClass::Read,
            json!({"type": "object", "description": "Each key becomes vars.<key>.", "additionalProperties": true}),
        )
        .pure()
        .idempotency("pure"),
        ActionSpec::new(
            "close",
            "Close the incident as benign and end the run",
            RiskClass::Read,
            input_schema::<CloseInput>(),
        )
        .pure()
        .idempotency("pure"),
        ActionSpec::new(
            "noop",
            "Do nothing",
            RiskClass::Read,
            json!({"type": "object", "additionalProperties": false}),
        )
        .pure()
        .idempotency("pure"),
        ActionSpec::new("http", "Send an HTTP request", RiskClass::Notify, input_schema::<HttpInput>())
            .idempotency("sends the step's idempotency key as the Idempotency-Key header; the receiver must honour it"),
    ]
}

pub struct Core {
    http: HttpClient,
    allowed_hosts: Option<Vec<String>>,
}

impl Core {
    fn http_request(&self, call: &ActionCall<'_>) -> Result<(Request, Vec<u16>), ActionError> {
        let input: HttpInput = call.parse_input()?;
        let method = input.method.as_deref().unwrap_or("GET").to_ascii_uppercase();
        let url = url::Url::parse(&input.url)
            .map_err(|e| ActionError::invalid_input(format!("url {:?} is not a valid URL: {e}", input.url)))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(ActionError::invalid_input(format!("url scheme {:?} is not http or https", url.scheme())));
        }
        if let Some(allowed) = &self.allowed_hosts {
            let host = url.host_str().unwrap_or("");
            if !allowed.iter().any(|h| h.eq_ignore_ascii_case(host)) {
                return Err(ActionError::permanent(
                    "host_not_allowed",
                    format!("host {host:?} is not in [connectors.core] allowed_hosts"),
                ));
            }
        }
        let mut req = match method.as_str() {
            "GET" => Request::get(url.as_str()),
            "POST" => Request::post(url.as_str()),
            "PUT" => Request::put(url.as_str()),
            "PATCH" => Request::patch(url.as_str()),
            "DELETE" => Request::delete(url.as_str()),
            other => {
                return Err(ActionError::invalid_input(format!(
                    "method {other:?} is not GET, POST, PUT, PATCH or DELETE"
                )));
            }
        };
        for (k, v) in &input.headers {
            if http::HeaderName::from_bytes(k.as_bytes()).is_err() || http::HeaderValue::from_str(v).is_err() {
                return Err(ActionError::invalid_input(format!("header {k:?} has an invalid name or value")));
            }
            req = req.header(k, v);
        }
        req = req.header("Idempotency-Key", call.idempotency_key);
        if let Some(body) = input.json {
            req = req.json(body);
        }
        // The receiver dedups by Idempotency-Key, so a replay after an unknown outcome is safe.
        req = req.replay(Replay::Safe);
        Ok((req, input.accept_status))
    }
}

#[async_trait::async_trait]
impl Connector for Core {
    fn name(&self) -> &str {
        "core"
    }

    fn actions(&self) -> Vec<ActionSpec> {
        actions()
    }

    fn plan(&self, call: &ActionCall<'_>) -> Result<Plan, ActionError> {
        match call.action {
            "log" => {
                let i: LogInput = call.parse_input()?;
                Ok(Plan::new(format!("note on the timeline: {}", i.message)))
            }
            "set" => Ok(Plan::new(format!("set variables {}", keys(call.input)))),
            "close" => {
                let i: CloseInput = call.parse_input()?;
                Ok(Plan::new(format!("close the incident as benign: {}", i.reason)))
            }
            "noop" => Ok(Plan::new("nothing")),
            "http" => {
                let (req, _) = self.http_request(call)?;
                let p = req.planned();
                Ok(Plan { summary: format!("{} {}", p.method, p.url), requests: vec![p] })
            }
            other => Err(unknown(other)),
        }
    }

    async fn execute(&self, call: &ActionCall<'_>) -> Result<ActionOutput, ActionError> {
        match call.action {
            "log" => {
                let i: LogInput = call.parse_input()?;
                let level = match i.level.unwrap_or(LogLevel::Info) {
                    LogLevel::Info => "info",
                    LogLevel::Warning => "warning",
                    LogLevel::Error => "error",
                };
                Ok(ActionOutput::new(json!({"message": i.message, "level": level})).with_note(i.message))
            }
            "set" => {
                let map: Map<String, Value> = call.parse_input()?;
                let mut out = ActionOutput::new(Value::Object(map.clone()));
                out.set_vars = map;
                Ok(out)
            }
            "close" => {
                let i: CloseInput = call.parse_input()?;
                let mut out = ActionOutput::new(json!({"closed": true, "reason": i.reason}))
                    .with_note(format!("closed as benign: {}", i.reason));
                out.end_run = Some(EndRun::ClosedBenign { reason: i.reason });
                Ok(out)
            }
            "noop" => Ok(ActionOutput::new(json!({}))),
            "http" => {
                let (req, accept) = self.http_request(call)?;
                let resp = self.http.send(&req).await?;
                let ok = resp.is_success() || accept.contains(&resp.status);
                let body: Value = serde_json::from_slice(&resp.body)
                    .unwrap_or_else(|_| Value::String(floodgate_sdk::text::truncate(&resp.text(), 64 * 1024)));
                if !ok {
                    return Err(ActionError::from_status(
                        resp.status,
                        format!(
                            "{} {} answered HTTP {}: {}",
                            req.method(),
                            req.url(),
                            resp.status,
                            floodgate_sdk::text::truncate(&resp.text(), 300)
                        ),
                        resp.retry_after(),
                    ));
                }
                Ok(ActionOutput::new(json!({"status": resp.status, "body": body})))
            }
            other => Err(unknown(other)),
        }
    }
}

fn keys(v: &Value) -> String {
    v.as_object().map(|m| m.keys().cloned().collect::<Vec<_>>().join(", ")).unwrap_or_default()
}

fn unknown(action: &str) -> ActionError {
    ActionError::permanent("unknown_action", format!("core has no action {action:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use floodgate_sdk::sim::{CallLog, Faults, SimServer, instrument};
    use floodgate_sdk::{CallContext, MemoryRefStore};

    fn call<'a>(action: &'a str, input: &'a Value, ctx: &'a CallContext, refs: &'a MemoryRefStore) -> ActionCall<'a> {
        ActionCall { action, input, idempotency_key: "fg-key-1", ctx, refs }
    }

    #[tokio::test]
    async fn pure_actions_return_notes_vars_and_end_run() {
        let core = CoreKind.build(None).unwrap();
        let ctx = CallContext::default();
        let refs = MemoryRefStore::new();
        let out = core.execute(&call("log", &json!({"message": "hello"}), &ctx, &refs)).await.unwrap();
        assert_eq!(out.notes, vec!["hello"]);
        let out = core.execute(&call("set", &json!({"a": 1}), &ctx, &refs)).await.unwrap();
        assert_eq!(out.set_vars["a"], 1);
        let out = core.execute(&call("close", &json!({"reason": "scanner"}), &ctx, &refs)).await.unwrap();
        assert_eq!(out.end_run, Some(EndRun::ClosedBenign { reason: "scanner".into() }));
        let err = core.execute(&call("log", &json!({"msg": "x"}), &ctx, &refs)).await.unwrap_err();
        assert_eq!(err.code(), "invalid_input");
    }

    #[tokio::test]
    async fn http_sends_idempotency_key_and_retries_429() {
        let log = CallLog::default();
        let faults = Faults::plain();
        let router =
            axum::Router::new().route("/hook", axum::routing::post(|| async { axum::Json(json!({"ok": true})) }));
        let sim = SimServer::start(instrument(router, log.clone(), faults.clone())).await.unwrap();
        faults.rate_limit_next(2, 0, None);
        let core = CoreKind.build(None).unwrap();
        let ctx = CallContext::default();
        let refs = MemoryRefStore::new();
        let input = json!({"method": "POST", "url": format!("{}/hook", sim.url()), "json": {"a": 1}});
        let out = core.execute(&call("http", &input, &ctx, &refs)).await.unwrap();
        assert_eq!(out.output["status"], 200);
        assert_eq!(out.output["body"]["ok"], true);
        let calls = log.matching("POST", "/hook");
        assert_eq!(calls.len(), 3);
        assert!(calls.iter().all(|c| c.header("idempotency-key") == Some("fg-key-1")));
        let plan = core.plan(&call("http", &input, &ctx, &refs)).unwrap();
        assert_eq!(plan.requests[0].method, "POST");
        assert_eq!(plan.requests[0].body.as_ref().unwrap()["a"], 1);
    }

    #[tokio::test]
    async fn http_refuses_hosts_outside_the_allow_list_and_non_http_schemes() {
        let core = CoreKind.build(Some(&json!({"allowed_hosts": ["hooks.example.com"]}))).unwrap();
        let ctx = CallContext::default();
        let refs = MemoryRefStore::new();
        let e = core
            .execute(&call("http", &json!({"url": "http://169.254.169.254/latest"}), &ctx, &refs))
            .await
            .unwrap_err();
        assert_eq!(e.code(), "host_not_allowed");
        let e = core.plan(&call("http", &json!({"url": "file:///etc/passwd"}), &ctx, &refs)).unwrap_err();
        assert_eq!(e.code(), "invalid_input");
    }
}
